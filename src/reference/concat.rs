use super::Real;
use crate::shape::ConcatGeom;

/// `whole` with `part` copied into its channel slice.
pub fn concat_forward<T: Real>(g: &ConcatGeom, part: &[T], whole: &[T]) -> Vec<T> {
    let mut out = whole.to_vec();
    for (i, &v) in part.iter().enumerate() {
        out[g.whole_index(i)] = v;
    }
    out
}

/// The channel slice of `dwhole` that belongs to the part.
pub fn concat_backward<T: Real>(g: &ConcatGeom, dwhole: &[T]) -> Vec<T> {
    (0..g.part_len()).map(|i| dwhole[g.whole_index(i)]).collect()
}
