//! Turning a user's picture into an MNIST-like 28×28 input as the MNIST set was prepared: grey, white
//! ink on black, the ink's bounding box scaled to fit 20×20 (aspect kept), then placed so that the
//! ink's centre of mass falls on pixel (14, 14) of the 28×28 field — where it lies in MNIST's own
//! digits (the bundled sample's mean is (14.0, 14.0), spread 0.3 pixel). A digit whose centre of mass
//! is far off its box's centre (a 7, a 1 with a flag) therefore sits off-centre, as in MNIST; the box
//! is kept inside the field (the placement is clamped), so no ink is cut off.
//!
//! Polarity: MNIST digits are light on a dark background. A picture whose border is, on average,
//! lighter than mid-grey (a dark digit on white paper) is inverted first.

use std::path::Path;

use crate::error::{data_err, io_err, Result};

/// Side of the square LeNet-5 input.
pub const SIDE: usize = 28;
/// Side of the box the digit is scaled into (MNIST's 20×20 inside 28×28).
const INNER: f32 = 20.0;
/// Where MNIST puts a digit's centre of mass: pixel (14, 14), whose centre is at 14.5 in continuous
/// coordinates (pixel i covers [i, i + 1)).
const MASS_AT: f32 = 14.5;

/// The most pixels a picture may have (40 megapixels, e.g. 8000×5000): larger ones are refused from
/// their header, before decoding, so a small file cannot demand gigabytes.
pub const MAX_PIXELS: u64 = 40_000_000;

/// Decode a PNG or JPEG picture, refusing one over [`MAX_PIXELS`] before decoding it.
pub fn decode_picture(path: &Path) -> Result<image::DynamicImage> {
    decode_with(path, || {
        let (f, size) = crate::fsio::open_regular(path)?;
        Ok((std::io::BufReader::new(f), size))
    })
}

/// [`decode_picture`] on a file's bytes (e.g. a picture a browser page was given), `name` naming it
/// in errors.
pub fn decode_picture_bytes(name: &Path, bytes: &[u8]) -> Result<image::DynamicImage> {
    decode_with(name, || Ok((std::io::Cursor::new(bytes), bytes.len() as u64)))
}

/// Decode what `source` opens (a reader and its size; opened twice: for the header, then the image).
fn decode_with<R: std::io::BufRead + std::io::Seek>(
    path: &Path,
    source: impl Fn() -> Result<(R, u64)>,
) -> Result<image::DynamicImage> {
    let open = || -> Result<image::ImageReader<R>> {
        let (r, size) = source()?;
        if size == 0 {
            return Err(data_err(path, "the file is empty, not an image"));
        }
        image::ImageReader::new(r).with_guessed_format().map_err(|e| io_err(path, e))
    };
    let unreadable = |e: image::ImageError| data_err(path, format!("not a readable PNG or JPEG image: {e}"));
    let (w, h) = open()?.into_dimensions().map_err(unreadable)?;
    if w == 0 || h == 0 {
        return Err(data_err(path, "the image has no pixels"));
    }
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(data_err(path, format!("{w}x{h} pixels: over the {MAX_PIXELS}-pixel cap on pictures")));
    }
    let mut reader = open()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(4 * MAX_PIXELS + (64 << 20));
    reader.limits(limits);
    reader.decode().map_err(unreadable)
}

/// Grey pixels of a picture, transparency composited over a background that contrasts with the ink
/// (a dark digit on a transparent background reads as a dark digit on white paper, a light one as on
/// black), so transparent PNGs are not read as blank.
pub fn to_grey(img: &image::DynamicImage) -> image::GrayImage {
    if !img.color().has_alpha() {
        return img.to_luma8();
    }
    let la = img.to_luma_alpha8();
    let (ink, weight) = la.pixels().fold((0.0f64, 0.0f64), |(s, w), p| {
        let a = f64::from(p.0[1]);
        (s + a * f64::from(p.0[0]), w + a)
    });
    let background: u32 = if weight > 0.0 && ink / weight < 127.5 { 255 } else { 0 };
    image::GrayImage::from_fn(la.width(), la.height(), |x, y| {
        let [l, a] = la.get_pixel(x, y).0;
        let (l, a) = (u32::from(l), u32::from(a));
        image::Luma([((l * a + background * (255 - a) + 127) / 255) as u8])
    })
}

/// Load an image file (PNG or JPEG) as a `[28·28]` input in [0, 1], white ink on black.
pub fn load_digit(path: &Path) -> Result<Vec<f32>> {
    Ok(prepare(decode_picture(path)?))
}

/// [`load_digit`] on a file's bytes, `name` naming it in errors.
pub fn load_digit_bytes(name: &Path, bytes: &[u8]) -> Result<Vec<f32>> {
    Ok(prepare(decode_picture_bytes(name, bytes)?))
}

/// A decoded picture as a `[28·28]` input.
fn prepare(img: image::DynamicImage) -> Vec<f32> {
    // A digit needs no more than 1024 pixels a side; larger pictures are scaled down first.
    let img = if img.width().max(img.height()) > 1024 {
        img.resize(1024, 1024, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    let grey = to_grey(&img);
    to_mnist(grey.as_raw(), grey.width() as usize, grey.height() as usize)
}

/// Prepare `w × h` grey pixels (0 = black) as described in the module docs.
pub fn to_mnist(pixels: &[u8], w: usize, h: usize) -> Vec<f32> {
    let border: Vec<u8> = (0..w)
        .flat_map(|x| [pixels[x], pixels[(h - 1) * w + x]])
        .chain((0..h).flat_map(|y| [pixels[y * w], pixels[y * w + w - 1]]))
        .collect();
    let border_mean = border.iter().map(|&v| f64::from(v)).sum::<f64>() / border.len() as f64;
    let ink: Vec<f32> =
        pixels.iter().map(|&v| if border_mean > 127.5 { 255 - v } else { v }).map(|v| f32::from(v) / 255.0).collect();
    if w == SIDE && h == SIDE {
        return ink; // already MNIST-sized: used as is
    }
    // Bounding box of the ink (pixels brighter than a quarter).
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if ink[y * w + x] > 0.25 {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
    }
    if x0 > x1 {
        return vec![0.0; SIDE * SIDE]; // blank picture
    }
    let (bw, bh) = ((x1 - x0 + 1) as f32, (y1 - y0 + 1) as f32);
    let scale = INNER / bw.max(bh);
    let (ow, oh) = (bw * scale, bh * scale);
    // The ink's centre of mass in the box (continuous coordinates: pixel x covers [x, x + 1)), which
    // area-average resampling carries to (c - x0) · scale + ox in the output.
    let (mut mass, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let v = f64::from(ink[y * w + x]);
            (mass, mx, my) = (mass + v, mx + v * (x - x0) as f64, my + v * (y - y0) as f64);
        }
    }
    let (cx, cy) = ((mx / mass) as f32 + 0.5, (my / mass) as f32 + 0.5);
    let place = |c: f32, extent: f32| (MASS_AT - c * scale).clamp(0.0, SIDE as f32 - extent);
    let (ox, oy) = (place(cx, ow), place(cy, oh));
    // Area-average resampling: each output pixel averages the source pixels it covers.
    let mut out = vec![0.0f32; SIDE * SIDE];
    for (i, o) in out.iter_mut().enumerate() {
        let (px, py) = ((i % SIDE) as f32, (i / SIDE) as f32);
        let (sx0, sy0) = ((px - ox) / scale + x0 as f32, (py - oy) / scale + y0 as f32);
        let (sx1, sy1) = (sx0 + 1.0 / scale, sy0 + 1.0 / scale);
        let (mut sum, mut area) = (0.0f32, 0.0f32);
        let (xa, xb) = (sx0.floor().max(x0 as f32) as usize, (sx1.ceil() as usize).min(x1 + 1));
        let (ya, yb) = (sy0.floor().max(y0 as f32) as usize, (sy1.ceil() as usize).min(y1 + 1));
        for sy in ya..yb {
            let cover_y = (sy1.min(sy as f32 + 1.0) - sy0.max(sy as f32)).max(0.0);
            for sx in xa..xb {
                let cover = cover_y * (sx1.min(sx as f32 + 1.0) - sx0.max(sx as f32)).max(0.0);
                sum += cover * ink[sy * w + sx];
                area += cover;
            }
        }
        let full = (sx1 - sx0) * (sy1 - sy0);
        *o = if area > 0.0 { sum / full.max(area) } else { 0.0 };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dark_ink_on_white_is_inverted_and_centred() {
        // A 60×40 white picture with a black 10×30 bar off-centre.
        let (w, h) = (60, 40);
        let mut px = vec![255u8; w * h];
        fill(&mut px, w, 40..50, 5..35, 0);
        let d = to_mnist(&px, w, h);
        assert_eq!(d.len(), 784);
        let (cx, cy) = centre_of_mass(&d);
        assert!((cx - 14.0).abs() < 0.05 && (cy - 14.0).abs() < 0.05, "centre of mass ({cx}, {cy})");
        assert!(d[14 * 28 + 14] > 0.9, "the bar is white after inversion");
        assert_eq!(d[0], 0.0, "the background is black");
        // 20 rows tall after scaling 30 → 20.
        let rows = (0..28).filter(|y| d[y * 28 + 14] > 0.5).count();
        assert!((19..=21).contains(&rows), "{rows} rows");
    }

    /// Paint the rectangle `xs` × `ys` of a `w`-wide grey picture with `v`.
    fn fill(px: &mut [u8], w: usize, xs: std::ops::Range<usize>, ys: std::ops::Range<usize>, v: u8) {
        for y in ys {
            px[y * w + xs.start..y * w + xs.end].fill(v);
        }
    }

    /// The centre of mass of a 28×28 input, in pixel indices.
    fn centre_of_mass(d: &[f32]) -> (f32, f32) {
        let mass: f32 = d.iter().sum();
        let cx = d.iter().enumerate().map(|(i, v)| (i % SIDE) as f32 * v).sum::<f32>() / mass;
        let cy = d.iter().enumerate().map(|(i, v)| (i / SIDE) as f32 * v).sum::<f32>() / mass;
        (cx, cy)
    }

    /// Columns (rows) holding ink brighter than 0.25: the first and the last.
    fn ink_span(d: &[f32], column: bool) -> (usize, usize) {
        let lit: Vec<usize> = (0..SIDE)
            .filter(|&a| (0..SIDE).any(|b| d[if column { b * SIDE + a } else { a * SIDE + b }] > 0.25))
            .collect();
        (lit[0], lit[lit.len() - 1])
    }

    #[test]
    fn a_seven_is_placed_by_its_centre_of_mass_not_its_box() {
        // A 7 drawn as lines on 200×200 white paper: a top bar and a stem going down-left.
        // Its ink is mostly at the top, so its box sits lower than centred, as MNIST's 7s do.
        let (w, h) = (200, 200);
        let mut px = vec![255u8; w * h];
        fill(&mut px, w, 50..150, 40..52, 0);
        for y in 52..170 {
            let x = 136 - (y - 52) * 60 / 118;
            fill(&mut px, w, x..x + 14, y..y + 1, 0);
        }
        let d = to_mnist(&px, w, h);
        let (cx, cy) = centre_of_mass(&d);
        assert!((cx - 14.0).abs() < 0.05 && (cy - 14.0).abs() < 0.05, "centre of mass ({cx}, {cy})");
        let (top, bottom) = ink_span(&d, false);
        assert!(top > 4 && bottom <= 27, "rows {top}..={bottom}: lower than a centred box (4..=23)");
        let (left, right) = ink_span(&d, true);
        assert!(right - left + 1 >= 15, "columns {left}..={right}: the box is 100 · 20 / 130 ≈ 15.4 wide");
    }

    #[test]
    fn a_lopsided_mark_keeps_its_box_inside_the_field() {
        // A long thin line with a heavy blob at its top: its centre of mass sits near the box's top,
        // where placing it at (14, 14) would push the box's bottom out; the box is clamped inside.
        let (w, h) = (100, 100);
        let mut px = vec![0u8; w * h];
        fill(&mut px, w, 48..53, 0..100, 255);
        fill(&mut px, w, 20..80, 0..20, 255);
        let d = to_mnist(&px, w, h);
        let (top, bottom) = ink_span(&d, false);
        assert_eq!((top, bottom), (8, 27), "the 20-tall box, clamped at the bottom edge");
        let total: f32 = d.iter().sum();
        let (_, cy) = centre_of_mass(&d);
        assert!(cy < 14.0 && total > 20.0, "centre of mass {cy}, ink {total}");
    }

    #[test]
    fn transparency_is_composited_against_the_ink() {
        // A black stroke on a fully transparent (also black) background: the background becomes white.
        let mut img = image::RgbaImage::new(28, 28);
        for y in 4..24 {
            img.put_pixel(14, y, image::Rgba([0, 0, 0, 255]));
        }
        let g = to_grey(&image::DynamicImage::ImageRgba8(img));
        assert_eq!(g.get_pixel(0, 0).0[0], 255, "transparent background is paper white");
        assert_eq!(g.get_pixel(14, 10).0[0], 0, "the ink stays black");
        let d = to_mnist(g.as_raw(), 28, 28);
        assert!(d[10 * 28 + 14] > 0.99 && d[0] == 0.0, "after inversion the digit is white on black");
        // White ink on transparent: composited over black.
        let mut img = image::RgbaImage::new(28, 28);
        img.put_pixel(3, 3, image::Rgba([255, 255, 255, 255]));
        let g = to_grey(&image::DynamicImage::ImageRgba8(img));
        assert_eq!((g.get_pixel(0, 0).0[0], g.get_pixel(3, 3).0[0]), (0, 255));
    }

    #[test]
    fn mnist_sized_light_on_dark_is_kept() {
        let mut px = vec![0u8; 784];
        px[400] = 255;
        let d = to_mnist(&px, 28, 28);
        assert_eq!(d[400], 1.0);
        assert_eq!(d.iter().filter(|&&v| v > 0.0).count(), 1);
    }
}
