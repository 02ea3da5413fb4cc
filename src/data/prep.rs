//! How a picture becomes a model's input, and the preparation a checkpoint carries.
//!
//! Pictures become `[C, H, W]` bytes:
//! - **channels**: 8-bit grey, grey + alpha, RGB, RGBA and palette pictures are read; transparency is
//!   composited on **black** (`v · a / 255`, rounded); grey → RGB replicates the grey; RGB → grey is
//!   ITU-R 601 luma with PIL's integer arithmetic (`L = (19595 R + 38470 G + 7471 B + 2^15) >> 16`,
//!   as PIL's `convert("L")`);
//! - **size**: resized to `H × W` (aspect not kept, as torchvision's `Resize((H, W))`) with a triangle
//!   (bilinear) filter whose support widens with the scale factor when shrinking, i.e. antialiased,
//!   computed as Pillow computes `Image.resize((W, H), BILINEAR)` — the resize torchvision's `Resize`
//!   runs on PIL images — with the same weights, fixed-point arithmetic, pass order (rows, then
//!   columns) and 8-bit intermediate, so the bytes equal Pillow's (tested against it). A picture already
//!   `H × W` is not resampled.
//!
//! The model then sees `(byte / 255 − mean[c]) / std[c]`, computed by the GPU gather.

use serde::{Deserialize, Serialize};

use super::Dataset;
use crate::error::{data_err, Error, Result};
use crate::kernels::gather::{Transform, MAX_CHANNELS};

/// The smallest picture side accepted: a 1×1 or 4×4 "picture" is a placeholder or a tracking pixel,
/// not an image to resize.
pub const MIN_SIDE: u32 = 8;

/// How `predict` (and the page) turns a user's picture into the model's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PictureMode {
    /// MNIST's preparation (models trained on IDX digits): grey, inverted when the border is light,
    /// the ink's bounding box scaled into 20×20 and centred in 28×28 ([`crate::digits`]).
    Digits,
    /// Converted to C channels and resized to H × W as the module docs say (models trained on
    /// pictures).
    Resize,
}

/// Everything needed to give a trained model the inputs it was trained on, stored in checkpoints
/// (metadata `wgcnn.preparation`, JSON) and used by `eval`, `predict`, `visualize` and the page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preparation {
    /// `[C, H, W]` of the model's input.
    pub input: [usize; 3],
    pub pictures: PictureMode,
    /// Per-channel mean and standard deviation of `byte / 255` (0 and 1: none).
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Class names in label order.
    pub classes: Vec<String>,
}

/// Metadata key of the preparation in a checkpoint.
pub const PREPARATION_KEY: &str = "wgcnn.preparation";

impl Preparation {
    /// What a checkpoint without a recorded preparation was trained on: MNIST-style digits (for a
    /// 1×28×28 input) or resized pictures, `x / 255`, classes named by their numbers.
    pub fn legacy(input: [usize; 3], classes: usize) -> Preparation {
        let pictures = if input == [1, crate::digits::SIDE, crate::digits::SIDE] {
            PictureMode::Digits
        } else {
            PictureMode::Resize
        };
        Preparation {
            input,
            pictures,
            mean: vec![0.0; input[0]],
            std: vec![1.0; input[0]],
            classes: (0..classes).map(|c| c.to_string()).collect(),
        }
    }

    /// The gather's transform for this preparation (no augmentation).
    pub fn transform(&self) -> Transform {
        let mut t = Transform::plain(super::DIVISOR, 0);
        t.chw = self.input;
        for (c, (m, s)) in self.mean.iter().zip(&self.std).enumerate().take(MAX_CHANNELS) {
            (t.mean[c], t.std[c]) = (*m, *s);
        }
        t
    }

    /// Whether the normalisation is the identity (`x / 255`).
    pub fn is_plain(&self) -> bool {
        self.mean.iter().all(|&m| m == 0.0) && self.std.iter().all(|&s| s == 1.0)
    }

    /// Check the preparation fits a model of `input` and `classes` (e.g. one read from a checkpoint).
    pub fn check(&self, input: [usize; 3], classes: usize) -> std::result::Result<(), String> {
        let c = input[0];
        if self.input != input {
            return Err(format!("it prepares {:?} inputs, the model reads {input:?}", self.input));
        }
        if self.mean.len() != c || self.std.len() != c {
            return Err(format!("{} means and {} deviations for {c} channels", self.mean.len(), self.std.len()));
        }
        if self.mean.iter().any(|m| !m.is_finite()) || self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(format!(
                "mean {:?} std {:?}: needs finite values and positive deviations",
                self.mean, self.std
            ));
        }
        if c > MAX_CHANNELS {
            return Err(format!("{c} channels: at most {MAX_CHANNELS} are normalised"));
        }
        if self.classes.len() != classes {
            return Err(format!("{} class names for a model of {classes} classes", self.classes.len()));
        }
        Ok(())
    }

    /// The JSON stored in checkpoints.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// How inputs are normalised (`--normalize`).
#[derive(Clone, Debug, PartialEq)]
pub enum Normalize {
    /// Pictures (folders, CIFAR): the training split's statistics; IDX files: none (`x / 255`).
    Auto,
    /// The training split's per-channel mean and standard deviation (any source).
    Computed,
    /// `x / 255`.
    None,
    /// ImageNet's statistics (mean 0.485, 0.456, 0.406; std 0.229, 0.224, 0.225), as torchvision's
    /// pretrained weights expect; grey models get their luma.
    Imagenet,
    /// Given per channel (one value each applies to every channel).
    Given(Vec<f32>, Vec<f32>),
}

impl std::str::FromStr for Normalize {
    type Err = String;
    /// `auto`, `computed`, `none`, `imagenet` or `M1,M2,M3/S1,S2,S3`.
    fn from_str(s: &str) -> std::result::Result<Normalize, String> {
        match s {
            "auto" => return Ok(Normalize::Auto),
            "computed" => return Ok(Normalize::Computed),
            "none" => return Ok(Normalize::None),
            "imagenet" => return Ok(Normalize::Imagenet),
            _ => {}
        }
        let list = |t: &str| -> std::result::Result<Vec<f32>, String> {
            t.split(',')
                .map(|v| v.trim().parse::<f32>().map_err(|e| format!("{v:?}: {e}")))
                .filter(|v| v.as_ref().map_or(true, |v| v.is_finite()))
                .collect()
        };
        let (m, sd) = s.split_once('/').ok_or_else(|| {
            format!("{s:?}: expected auto, computed, none, imagenet or MEANS/STDS (e.g. 0.49,0.48,0.45/0.25,0.24,0.26)")
        })?;
        let (mean, std) = (list(m)?, list(sd)?);
        if mean.is_empty() || mean.len() != std.len() {
            return Err(format!("{} means and {} deviations: give one of each per channel", mean.len(), std.len()));
        }
        if std.iter().any(|&v| v <= 0.0) {
            return Err(format!("deviations {std:?} must be > 0"));
        }
        Ok(Normalize::Given(mean, std))
    }
}

/// ImageNet's per-channel statistics (torchvision's pretrained models).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl Normalize {
    /// The (mean, std) per channel of `train` under this choice, for a source of kind `idx` or not.
    pub fn resolve(&self, train: &Dataset, idx: bool) -> Result<(Vec<f32>, Vec<f32>)> {
        let c = train.channels;
        let plain = (vec![0.0; c], vec![1.0; c]);
        let (mean, std) = match self {
            Normalize::Auto if idx => plain,
            Normalize::None => plain,
            Normalize::Auto | Normalize::Computed => channel_stats(train),
            Normalize::Imagenet if c == 3 => (IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec()),
            Normalize::Imagenet => {
                let luma = |v: [f32; 3]| 0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2];
                (vec![luma(IMAGENET_MEAN); c], vec![luma(IMAGENET_STD); c])
            }
            Normalize::Given(m, s) if m.len() == 1 => (vec![m[0]; c], vec![s[0]; c]),
            Normalize::Given(m, s) if m.len() == c => (m.clone(), s.clone()),
            Normalize::Given(m, _) => {
                return Err(Error::Train(format!(
                    "--normalize gives {} means, the model's input has {c} channels",
                    m.len()
                )))
            }
        };
        if std.iter().any(|&s| !(s > 0.0 && s.is_finite())) {
            return Err(data_err(
                &train.source,
                format!("a channel is constant (std {std:?}): nothing to normalise by; pass --normalize none"),
            ));
        }
        Ok((mean, std))
    }
}

/// Per-channel mean and (population) standard deviation of `byte / 255` over a whole set, in one pass:
/// a 256-bin histogram per channel, then the moments in f64 (exact sums, so the figures equal numpy's
/// `x.mean(axis=(0, 2, 3))`, `x.std(axis=(0, 2, 3))` to f32 rounding).
pub fn channel_stats(d: &Dataset) -> (Vec<f32>, Vec<f32>) {
    let (c, plane) = (d.channels, d.rows * d.cols);
    let mut hist = vec![[0u64; 256]; c];
    for item in d.images.chunks_exact(d.item_size().max(1)) {
        for (ch, h) in hist.iter_mut().enumerate() {
            item[ch * plane..(ch + 1) * plane].iter().for_each(|&b| h[b as usize] += 1);
        }
    }
    let moments = |h: &[u64; 256]| {
        let n: u64 = h.iter().sum();
        let (s1, s2) = h.iter().enumerate().fold((0f64, 0f64), |(a, b), (v, &k)| {
            let x = v as f64 / 255.0;
            (a + k as f64 * x, b + k as f64 * x * x)
        });
        let mean = s1 / n.max(1) as f64;
        let var = (s2 / n.max(1) as f64 - mean * mean).max(0.0);
        (mean as f32, var.sqrt() as f32)
    };
    hist.iter().map(moments).unzip()
}

/// How the training split is augmented (`--augment crop=4,flip`), on the GPU in the gather.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augment {
    /// Random crop of the picture padded with this many zero pixels on each side (0: none).
    pub crop: u32,
    /// Random horizontal flips.
    pub flip: bool,
}

impl std::str::FromStr for Augment {
    type Err = String;
    /// `none`, or a comma list of `crop=N` and `flip`.
    fn from_str(s: &str) -> std::result::Result<Augment, String> {
        let mut a = Augment::default();
        if s == "none" {
            return Ok(a);
        }
        for part in s.split(',').map(str::trim) {
            match part.split_once('=') {
                None if part == "flip" => a.flip = true,
                Some(("crop", n)) => {
                    a.crop = n.parse().map_err(|e| format!("crop={n}: {e} (a padding in pixels)"))?;
                }
                _ => return Err(format!("{part:?}: expected crop=N or flip (e.g. crop=4,flip)")),
            }
        }
        Ok(a)
    }
}

impl Augment {
    pub fn is_none(&self) -> bool {
        *self == Augment::default()
    }
}

/// Convert a decoded picture to `[C, H, W]` bytes as the module docs say; `path` names it in errors.
pub fn picture_to_input(path: &std::path::Path, img: &image::DynamicImage, [c, h, w]: [usize; 3]) -> Result<Vec<u8>> {
    use image::DynamicImage as D;
    let deep = matches!(
        img,
        D::ImageLuma16(_)
            | D::ImageLumaA16(_)
            | D::ImageRgb16(_)
            | D::ImageRgba16(_)
            | D::ImageRgb32F(_)
            | D::ImageRgba32F(_)
    );
    if deep {
        return Err(data_err(
            path,
            format!("{:?} picture: wgcnn reads 8-bit pictures (convert it to 8 bits)", img.color()),
        ));
    }
    if img.width() < MIN_SIDE || img.height() < MIN_SIDE {
        return Err(data_err(
            path,
            format!("{}x{} pixels: pictures must be at least {MIN_SIDE}x{MIN_SIDE}", img.width(), img.height()),
        ));
    }
    if c != 1 && c != 3 {
        return Err(data_err(path, format!("the model reads {c} channels: pictures become 1 (grey) or 3 (RGB)")));
    }
    let (w32, h32) = (u32::try_from(w), u32::try_from(h));
    let (Ok(w32), Ok(h32)) = (w32, h32) else {
        return Err(data_err(path, format!("the model's input {h}x{w} is too large for a picture")));
    };
    let resize = |i: &D| -> D {
        let (iw, ih) = (i.width() as usize, i.height() as usize);
        match i {
            D::ImageLuma8(g) => D::ImageLuma8(
                image::GrayImage::from_raw(w32, h32, resize_bilinear(g.as_raw(), iw, ih, 1, w, h)).expect("sized"),
            ),
            other => {
                let rgb = other.to_rgb8();
                D::ImageRgb8(
                    image::RgbImage::from_raw(w32, h32, resize_bilinear(rgb.as_raw(), iw, ih, 3, w, h)).expect("sized"),
                )
            }
        }
    };
    let has_alpha = img.color().has_alpha();
    let out = if c == 1 {
        let grey = if img.color().has_color() {
            let rgb = rgb_on_black(img, has_alpha);
            D::ImageLuma8(image::GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
                let [r, g, b] = rgb.get_pixel(x, y).0;
                let l = (19595 * u32::from(r) + 38470 * u32::from(g) + 7471 * u32::from(b) + 0x8000) >> 16;
                image::Luma([l as u8])
            }))
        } else if has_alpha {
            let la = img.to_luma_alpha8();
            D::ImageLuma8(image::GrayImage::from_fn(la.width(), la.height(), |x, y| {
                let [l, a] = la.get_pixel(x, y).0;
                image::Luma([on_black(l, a)])
            }))
        } else {
            D::ImageLuma8(img.to_luma8())
        };
        resize(&grey).into_luma8().into_raw()
    } else {
        let rgb = D::ImageRgb8(rgb_on_black(img, has_alpha));
        let rgb = resize(&rgb).into_rgb8();
        let plane = w * h;
        let mut planar = vec![0u8; 3 * plane];
        for (i, px) in rgb.pixels().enumerate() {
            for ch in 0..3 {
                planar[ch * plane + i] = px.0[ch];
            }
        }
        planar
    };
    Ok(out)
}

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

fn on_black(v: u8, a: u8) -> u8 {
    ((u32::from(v) * u32::from(a) + 127) / 255) as u8
}

/// The picture as RGB with any transparency composited on black (grey replicated).
fn rgb_on_black(img: &image::DynamicImage, has_alpha: bool) -> image::RgbImage {
    if !has_alpha {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        image::Rgb([on_black(r, a), on_black(g, a), on_black(b, a)])
    })
}

/// A drawing (`w × h` grey bytes, 255 = ink, white on black) as the model's `[C, H, W]` bytes, converted
/// and resized as pictures are.
pub fn grey_to_input(pixels: &[u8], w: usize, h: usize, input: [usize; 3]) -> Result<Vec<u8>> {
    let at = std::path::Path::new("drawing");
    let (Ok(w32), Ok(h32)) = (u32::try_from(w), u32::try_from(h)) else {
        return Err(data_err(at, format!("{w}x{h} pixels: too large")));
    };
    let img = image::GrayImage::from_raw(w32, h32, pixels.to_vec())
        .ok_or_else(|| data_err(at, format!("{} bytes for {w}x{h} pixels", pixels.len())))?;
    picture_to_input(at, &image::DynamicImage::ImageLuma8(img), input)
}

/// `d` in the layout `input`: as it is when it already has it, otherwise every picture converted
/// (channels, then size) as the module docs say.
pub fn conform(d: Dataset, input: [usize; 3]) -> Result<Dataset> {
    if d.shape() == input {
        return Ok(d);
    }
    let [c, h, w] = d.shape();
    let mut images = Vec::with_capacity(d.len() * input.iter().product::<usize>());
    for i in 0..d.len() {
        let src = d.image(i);
        let img = if c == 1 {
            image::DynamicImage::ImageLuma8(
                image::GrayImage::from_raw(w as u32, h as u32, src.to_vec()).expect("sized"),
            )
        } else if c == 3 {
            let plane = h * w;
            let px: Vec<u8> = (0..plane).flat_map(|p| [src[p], src[plane + p], src[2 * plane + p]]).collect();
            image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(w as u32, h as u32, px).expect("sized"))
        } else {
            return Err(data_err(&d.source, format!("{c}-channel pictures cannot be converted")));
        };
        let at = d.source.join(format!("#{i}"));
        images.extend(picture_to_input(&at, &img, input)?);
    }
    Ok(Dataset { images, channels: input[0], rows: input[1], cols: input[2], ..d })
}
