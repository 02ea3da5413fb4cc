use super::Real;
use crate::shape::LossGeom;

/// acc + Σ x.
pub fn sum_accumulate<T: Real>(acc: T, x: &[T]) -> T {
    x.iter().fold(acc, |a, &v| a + v)
}

/// Index of the first maximum of each row.
pub fn argmax_rows<T: Real>(g: &LossGeom, z: &[T]) -> Vec<u32> {
    (0..g.n)
        .map(|n| {
            let row = &z[n * g.classes..(n + 1) * g.classes];
            let mut best = 0;
            for (k, &v) in row.iter().enumerate().skip(1) {
                if v > row[best] {
                    best = k;
                }
            }
            best as u32
        })
        .collect()
}

/// acc + number of rows whose first maximum is the label.
pub fn correct_accumulate<T: Real>(acc: u32, g: &LossGeom, z: &[T], labels: &[u32]) -> u32 {
    acc + argmax_rows(g, z).iter().zip(labels).filter(|(a, l)| a == l).count() as u32
}
