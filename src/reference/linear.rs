use super::Real;
use crate::shape::LinearGeom;

/// y = x·Wᵀ + b.
pub fn linear_forward<T: Real>(g: &LinearGeom, x: &[T], w: &[T], b: &[T]) -> Vec<T> {
    let mut y = vec![T::zero(); g.y_len()];
    for n in 0..g.n {
        for o in 0..g.out_f {
            let mut acc = T::zero();
            for k in 0..g.in_f {
                acc += x[n * g.in_f + k] * w[o * g.in_f + k];
            }
            y[n * g.out_f + o] = acc + b[o];
        }
    }
    y
}

/// dx = dy·W.
pub fn linear_backward_input<T: Real>(g: &LinearGeom, dy: &[T], w: &[T]) -> Vec<T> {
    let mut dx = vec![T::zero(); g.x_len()];
    for n in 0..g.n {
        for o in 0..g.out_f {
            for k in 0..g.in_f {
                dx[n * g.in_f + k] += dy[n * g.out_f + o] * w[o * g.in_f + k];
            }
        }
    }
    dx
}

/// dW = dyᵀ·x.
pub fn linear_backward_weight<T: Real>(g: &LinearGeom, dy: &[T], x: &[T]) -> Vec<T> {
    let mut dw = vec![T::zero(); g.w_len()];
    for n in 0..g.n {
        for o in 0..g.out_f {
            for k in 0..g.in_f {
                dw[o * g.in_f + k] += dy[n * g.out_f + o] * x[n * g.in_f + k];
            }
        }
    }
    dw
}

/// db = column sums of dy.
pub fn linear_backward_bias<T: Real>(g: &LinearGeom, dy: &[T]) -> Vec<T> {
    let mut db = vec![T::zero(); g.out_f];
    for (i, &v) in dy.iter().enumerate() {
        db[i % g.out_f] += v;
    }
    db
}
