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

use super::resize::resize_bilinear;
pub use super::transform::{channel_stats, Augment, Normalize, IMAGENET_MEAN, IMAGENET_STD};
use super::Dataset;
use crate::error::{data_err, Result};
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

    /// How a model reading `input` trained on `train` (of source `kind`) prepares its pictures, with
    /// the normalisation `normalize` resolves on `train`.
    pub fn of(
        input: [usize; 3],
        kind: super::SourceKind,
        train: &Dataset,
        normalize: &Normalize,
    ) -> Result<Preparation> {
        let (mean, std) = normalize.resolve(train, kind == super::SourceKind::Idx)?;
        Ok(Preparation { input, pictures: kind.picture_mode(input), mean, std, classes: train.class_names.clone() })
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
