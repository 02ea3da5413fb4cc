use super::mix32;
use crate::kernels::gather::Transform;

/// `x[b, j] = images[indices[b] * item_size + j] / divisor; y[b] = labels[indices[b]]`;
/// an index past the end gives zeros and label `u32::MAX`.
pub fn gather_batch(divisor: f32, images: &[u8], labels: &[u8], indices: &[u32]) -> (Vec<f32>, Vec<u32>) {
    let t = Transform::plain(divisor, images.len() / labels.len().max(1));
    gather_batch_transformed(&t, images, labels, indices)
}

/// The crop offsets `(dx, dy)` in `[0, 2 pad]` and the flip of item `item` under `t`.
pub fn augmentation_of(t: &Transform, item: u32) -> (u32, u32, bool) {
    let h1 = mix32(item ^ mix32(t.epoch ^ mix32(t.seed)));
    let h2 = mix32(h1);
    let span = 2 * t.pad + 1;
    ((h1 >> 1) % span, h2 % span, t.flip && h1 & 1 == 1)
}

/// [`gather_batch`] with normalisation and augmentation: element `(c, y, x)` of item `i` reads the
/// byte at `(c, y + dy − pad, x' + dx − pad)` (0 outside the picture) where `x' = width − 1 − x` when
/// flipped (with a warp, [`warped`]'s value at `(x', y)` with that crop offset instead of the byte), then
/// `x = (byte / divisor − mean[c]) / std[c]`.
pub fn gather_batch_transformed(t: &Transform, images: &[u8], labels: &[u8], indices: &[u32]) -> (Vec<f32>, Vec<u32>) {
    let item = images.len() / labels.len();
    let [_, h, w] = t.chw;
    let plane = h * w;
    let mut x = Vec::with_capacity(indices.len() * item);
    let mut y = Vec::with_capacity(indices.len());
    for &i in indices {
        if (i as usize) >= labels.len() {
            x.extend(std::iter::repeat_n(0.0, item));
            y.push(u32::MAX);
            continue;
        }
        let src = &images[i as usize * item..(i as usize + 1) * item];
        let (dx, dy, flip) = if t.augments() { augmentation_of(t, i) } else { (t.pad, t.pad, false) };
        let draw = (!t.warp.is_none()).then(|| warp_of(t, i));
        let pad = t.pad as usize;
        for j in 0..item {
            let (c, r) = (j / plane, j % plane);
            let (mut px, py) = (r % w, r / w);
            if flip {
                px = w - 1 - px;
            }
            let channel = &src[c * plane..(c + 1) * plane];
            let value = match &draw {
                Some(d) => warped(d, channel, [h, w], [px, py], [dx as f32 - pad as f32, dy as f32 - pad as f32]),
                None => {
                    let (sx, sy) = (px + dx as usize, py + dy as usize);
                    let inside = sx >= pad && sx < w + pad && sy >= pad && sy < h + pad;
                    if inside {
                        f32::from(channel[(sy - pad) * w + (sx - pad)])
                    } else {
                        0.0
                    }
                }
            };
            x.push((value / t.divisor - t.mean[c]) / t.std[c]);
        }
        y.push(u32::from(labels[i as usize]));
    }
    (x, y)
}

/// A draw in `[-1, 1)` from a hash (its top 24 bits, as the shader).
fn signed_unit(h: u32) -> f32 {
    (h >> 8) as f32 * (2.0 / 16_777_216.0) - 1.0
}

/// The plane's value at `(sx, sy)` (pixel centres at integer + 0.5), bilinear, zero outside.
fn bilinear(plane: &[u8], [h, w]: [usize; 2], sx: f32, sy: f32) -> f32 {
    let (fx, fy) = (sx - 0.5, sy - 0.5);
    let (x0, y0) = (fx.floor(), fy.floor());
    let (wx, wy) = (fx - x0, fy - y0);
    let at = |x: i64, y: i64| {
        if x >= 0 && (x as usize) < w && y >= 0 && (y as usize) < h {
            f32::from(plane[y as usize * w + x as usize])
        } else {
            0.0
        }
    };
    let (ix, iy) = (x0 as i64, y0 as i64);
    let (v0, v1, v2, v3) = (at(ix, iy), at(ix + 1, iy), at(ix, iy + 1), at(ix + 1, iy + 1));
    let top = v0 + (v1 - v0) * wx;
    let bottom = v2 + (v3 - v2) * wx;
    top + (bottom - top) * wy
}

/// One item's warp, drawn as the shader draws it: the content is scaled by `scale`, slanted
/// (`x += shear·y`), rotated by `angle` radians (clockwise on screen, y pointing down) and moved by
/// `shift` pixels, about the picture's centre; its strokes grow by `thick` pixels (shrink when negative).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarpDraw {
    pub angle: f32,
    pub shear: f32,
    pub scale: f32,
    pub shift: [f32; 2],
    pub thick: f32,
}

/// The warp item `item` draws under `t` (from the hashes after the crop's and flip's).
pub fn warp_of(t: &Transform, item: u32) -> WarpDraw {
    let h2 = mix32(mix32(item ^ mix32(t.epoch ^ mix32(t.seed))));
    let h3 = mix32(h2);
    let h4 = mix32(h3);
    let h5 = mix32(h4);
    let h6 = mix32(h5);
    let h7 = mix32(h6);
    let h8 = mix32(h7);
    let wp = t.warp;
    WarpDraw {
        angle: signed_unit(h3) * wp.rotate,
        shear: signed_unit(h4) * wp.shear,
        scale: 1.0 + signed_unit(h5) * wp.scale,
        shift: [signed_unit(h6) * wp.shift, signed_unit(h7) * wp.shift],
        thick: signed_unit(h8) * wp.thick,
    }
}

/// The warped value of output pixel `(x, y)` (already flipped) of `plane` with the crop offset
/// `(ox, oy)`, as `warped` in `shaders/gather.wgsl`: the move, rotation, shear and scale undone about
/// the picture's centre, a bilinear sample, then the stroke thickened (the maximum over 8 points on a
/// circle of radius `thick` around the sample) or thinned (the minimum).
pub fn warped(d: &WarpDraw, plane: &[u8], [h, w]: [usize; 2], [x, y]: [usize; 2], [ox, oy]: [f32; 2]) -> f32 {
    let (cx, cy) = (w as f32 * 0.5, h as f32 * 0.5);
    let u = x as f32 + 0.5 - cx - d.shift[0];
    let v = y as f32 + 0.5 - cy - d.shift[1];
    let (c, sn) = (d.angle.cos(), d.angle.sin());
    let ry = c * v - sn * u;
    let rx = c * u + sn * v;
    let sx = (rx - d.shear * ry) / d.scale + cx + ox;
    let sy = ry / d.scale + cy + oy;
    let mut value = bilinear(plane, [h, w], sx, sy);
    if d.thick != 0.0 {
        let r = d.thick.abs();
        let e = r * std::f32::consts::FRAC_1_SQRT_2;
        for (ax, ay) in [(r, 0.0), (-r, 0.0), (0.0, r), (0.0, -r), (e, e), (-e, e), (e, -e), (-e, -e)] {
            let o = bilinear(plane, [h, w], sx + ax, sy + ay);
            value = if d.thick > 0.0 { value.max(o) } else { value.min(o) };
        }
    }
    value
}
