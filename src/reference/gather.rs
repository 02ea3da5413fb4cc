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
/// flipped, then `x = (byte / divisor − mean[c]) / std[c]`.
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
        for j in 0..item {
            let (c, r) = (j / plane, j % plane);
            let (mut px, py) = (r % w, r / w);
            if flip {
                px = w - 1 - px;
            }
            let (sx, sy) = (px + dx as usize, py + dy as usize);
            let pad = t.pad as usize;
            let inside = sx >= pad && sx < w + pad && sy >= pad && sy < h + pad;
            let byte = if inside { src[c * plane + (sy - pad) * w + (sx - pad)] } else { 0 };
            x.push((f32::from(byte) / t.divisor - t.mean[c]) / t.std[c]);
        }
        y.push(u32::from(labels[i as usize]));
    }
    (x, y)
}
