//! Resampling as Pillow's `Image.resize(BILINEAR)` computes it (and so torchvision's `Resize` on PIL
//! pictures): the antialiased triangle filter's weights in f64, turned into 22-bit fixed point, rows
//! first and then columns, with an 8-bit picture between the passes (Pillow up to 12.x; byte-equal in
//! `tests/data_sources.rs`).

/// Bits of the fixed-point filter weights (Pillow's `PRECISION_BITS`).
const PRECISION: u32 = 22;

/// For each output position along an axis of `len` pixels resized to `out`: the first input pixel and
/// the fixed-point weights of the input pixels it reads (the antialiased triangle filter, support
/// widened by the scale when shrinking).
fn bilinear_weights(len: usize, out: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = len as f64 / out as f64;
    let widen = scale.max(1.0);
    let support = widen; // the triangle's support, 1, times the widening
    (0..out)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale;
            let lo = ((centre - support + 0.5) as i64).max(0) as usize;
            let hi = ((centre + support + 0.5) as i64).min(len as i64) as usize;
            let raw: Vec<f64> = (lo..hi)
                .map(|x| {
                    // Times the reciprocal, as Pillow computes it (a division rounds differently).
                    let t = ((x as f64 - centre + 0.5) * (1.0 / widen)).abs();
                    if t < 1.0 {
                        1.0 - t
                    } else {
                        0.0
                    }
                })
                .collect();
            let sum: f64 = raw.iter().sum();
            let one = f64::from(1u32 << PRECISION);
            let fixed = raw
                .iter()
                .map(|&k| {
                    let k = if sum != 0.0 { k / sum } else { k };
                    if k < 0.0 {
                        (k * one - 0.5).trunc() as i64
                    } else {
                        (k * one + 0.5).trunc() as i64
                    }
                })
                .collect();
            (lo, fixed)
        })
        .collect()
}

/// `acc` (a fixed-point sum with its rounding half added) as a byte.
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION).clamp(0, 255) as u8
}

/// Resize interleaved 8-bit pixels (`c` channels, `w × h`) to `ow × oh` as Pillow's BILINEAR resize
/// does: rows first (into 8-bit pixels), then columns, each pass skipped when its size is unchanged.
pub fn resize_bilinear(src: &[u8], w: usize, h: usize, c: usize, ow: usize, oh: usize) -> Vec<u8> {
    let half = 1i64 << (PRECISION - 1);
    let rows = if ow != w {
        let wx = bilinear_weights(w, ow);
        let mut out = vec![0u8; ow * h * c];
        for y in 0..h {
            for (x, (lo, k)) in wx.iter().enumerate() {
                for ch in 0..c {
                    let acc = k
                        .iter()
                        .enumerate()
                        .fold(half, |a, (i, &kk)| a + i64::from(src[(y * w + lo + i) * c + ch]) * kk);
                    out[(y * ow + x) * c + ch] = clip8(acc);
                }
            }
        }
        out
    } else {
        src.to_vec()
    };
    if oh == h {
        return rows;
    }
    let wy = bilinear_weights(h, oh);
    let mut out = vec![0u8; ow * oh * c];
    for (y, (lo, k)) in wy.iter().enumerate() {
        for x in 0..ow {
            for ch in 0..c {
                let acc = k
                    .iter()
                    .enumerate()
                    .fold(half, |a, (i, &kk)| a + i64::from(rows[((lo + i) * ow + x) * c + ch]) * kk);
                out[(y * ow + x) * c + ch] = clip8(acc);
            }
        }
    }
    out
}
