use super::Real;
use crate::shape::Conv2dGeom;

/// Input coordinate read by output coordinate `o` at kernel tap `k`, or None in the zero padding.
fn input_at(o: usize, k: usize, stride: usize, pad: usize, size: usize) -> Option<usize> {
    (o * stride + k).checked_sub(pad).filter(|&i| i < size)
}

/// y = conv(x, w) + b, NCHW.
pub fn conv2d_forward<T: Real>(g: &Conv2dGeom, x: &[T], w: &[T], b: &[T]) -> Vec<T> {
    let plane = g.out_h() * g.out_w();
    let mut y: Vec<T> = (0..g.y_len()).map(|i| b[(i / plane) % g.c_out]).collect();
    for_each_tap(g, |xi, wi, yi| y[yi] += x[xi] * w[wi]);
    y
}

/// Visit every (x index, w index, y index) triple that the forward multiplies together.
fn for_each_tap(g: &Conv2dGeom, mut f: impl FnMut(usize, usize, usize)) {
    let (oh, ow) = (g.out_h(), g.out_w());
    for n in 0..g.n {
        for co in 0..g.c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((n * g.c_out + co) * oh + oy) * ow + ox;
                    for ci in 0..g.c_in {
                        for ky in 0..g.kh {
                            let Some(iy) = input_at(oy, ky, g.stride_h, g.pad_h, g.h) else {
                                continue;
                            };
                            for kx in 0..g.kw {
                                let Some(ix) = input_at(ox, kx, g.stride_w, g.pad_w, g.w) else {
                                    continue;
                                };
                                f(
                                    ((n * g.c_in + ci) * g.h + iy) * g.w + ix,
                                    ((co * g.c_in + ci) * g.kh + ky) * g.kw + kx,
                                    yi,
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// dx = Σ dy·w over every tap reading x.
pub fn conv2d_backward_input<T: Real>(g: &Conv2dGeom, dy: &[T], w: &[T]) -> Vec<T> {
    let mut dx = vec![T::zero(); g.x_len()];
    for_each_tap(g, |xi, wi, yi| dx[xi] += dy[yi] * w[wi]);
    dx
}

/// dw = Σ dy·x over every tap using w.
pub fn conv2d_backward_weight<T: Real>(g: &Conv2dGeom, dy: &[T], x: &[T]) -> Vec<T> {
    let mut dw = vec![T::zero(); g.w_len()];
    for_each_tap(g, |xi, wi, yi| dw[wi] += dy[yi] * x[xi]);
    dw
}

/// `db[co] = Σ dy[n, co, ..]`.
pub fn conv2d_backward_bias<T: Real>(g: &Conv2dGeom, dy: &[T]) -> Vec<T> {
    let plane = g.out_h() * g.out_w();
    let mut db = vec![T::zero(); g.c_out];
    for (i, &v) in dy.iter().enumerate() {
        db[(i / plane) % g.c_out] += v;
    }
    db
}
