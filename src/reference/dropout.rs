use super::{mix32, Real};
use crate::kernels::dropout::DropoutParams;

/// The factor of each element: 0 (dropped) or 1 / (1 − p), as the kernels draw it.
pub fn dropout_factors(p: &DropoutParams, seed: u32, step: u32) -> Vec<f32> {
    let prefix = mix32(step ^ mix32(seed ^ mix32(p.salt)));
    (0..p.len).map(|i| if mix32(i ^ prefix) >= p.threshold { p.scale } else { 0.0 }).collect()
}

/// y = x · factor.
pub fn dropout_forward<T: Real>(p: &DropoutParams, seed: u32, step: u32, x: &[T]) -> Vec<T> {
    x.iter().zip(dropout_factors(p, seed, step)).map(|(&v, f)| v * T::from_f64(f64::from(f))).collect()
}

/// dx = dy · factor (the same mask).
pub fn dropout_backward<T: Real>(p: &DropoutParams, seed: u32, step: u32, dy: &[T]) -> Vec<T> {
    dropout_forward(p, seed, step, dy)
}
