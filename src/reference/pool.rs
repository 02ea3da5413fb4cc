use super::Real;
use crate::shape::Pool2dGeom;

/// y = window max, argmax = position in the `[h, w]` plane (the first maximum wins; padding never does).
pub fn maxpool2d_forward<T: Real>(g: &Pool2dGeom, x: &[T]) -> (Vec<T>, Vec<u32>) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut y = Vec::with_capacity(g.y_len());
    let mut arg = Vec::with_capacity(g.y_len());
    for plane in 0..g.n * g.c {
        let base = plane * g.h * g.w;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best: Option<(T, usize)> = None;
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let Some((iy, ix)) = g.cell(oy, ox, ky, kx) else { continue };
                        let at = iy * g.w + ix;
                        let v = x[base + at];
                        if best.is_none_or(|(b, _)| v > b) {
                            best = Some((v, at));
                        }
                    }
                }
                let (v, at) = best.unwrap_or((T::zero(), 0)); // a valid geometry has a cell in every window
                y.push(v);
                arg.push(at as u32);
            }
        }
    }
    (y, arg)
}

/// `dx[argmax] += dy`.
pub fn maxpool2d_backward<T: Real>(g: &Pool2dGeom, dy: &[T], argmax: &[u32]) -> Vec<T> {
    let per_plane = g.out_h() * g.out_w();
    let mut dx = vec![T::zero(); g.x_len()];
    for (o, (&d, &a)) in dy.iter().zip(argmax).enumerate() {
        dx[(o / per_plane) * g.h * g.w + a as usize] += d;
    }
    dx
}

/// Visit (input index, output index) of every window element.
fn for_each_window_element(g: &Pool2dGeom, mut f: impl FnMut(usize, usize)) {
    let (oh, ow) = (g.out_h(), g.out_w());
    for plane in 0..g.n * g.c {
        for oy in 0..oh {
            for ox in 0..ow {
                let o = (plane * oh + oy) * ow + ox;
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        if let Some((iy, ix)) = g.cell(oy, ox, ky, kx) {
                            f((plane * g.h + iy) * g.w + ix, o);
                        }
                    }
                }
            }
        }
    }
}

/// y = window mean over kh·kw cells, padding counted as zeros (`count_include_pad=True`).
pub fn avgpool2d_forward<T: Real>(g: &Pool2dGeom, x: &[T]) -> Vec<T> {
    let area = T::from_f64((g.kh * g.kw) as f64);
    let mut y = vec![T::zero(); g.y_len()];
    for_each_window_element(g, |i, o| y[o] += x[i]);
    y.into_iter().map(|v| v / area).collect()
}

/// dx += dy / area for every window covering the element.
pub fn avgpool2d_backward<T: Real>(g: &Pool2dGeom, dy: &[T]) -> Vec<T> {
    let area = T::from_f64((g.kh * g.kw) as f64);
    let mut dx = vec![T::zero(); g.x_len()];
    for_each_window_element(g, |i, o| dx[i] += dy[o] / area);
    dx
}
