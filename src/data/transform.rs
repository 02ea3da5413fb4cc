//! What the gather kernel does to the bytes of a picture besides scaling them: per-channel
//! normalisation (its statistics computed here, on the training split) and augmentation (random crop and
//! flip, drawn on the GPU).

use serde::{Deserialize, Serialize};

use super::Dataset;
use crate::error::{data_err, Error, Result};

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
        let (mean, std) = match self {
            Normalize::Auto if idx => (vec![0.0; c], vec![1.0; c]),
            Normalize::Auto | Normalize::Computed => channel_stats(train),
            fixed => fixed.without_data(c).map_err(Error::Train)?.unwrap_or((vec![0.0; c], vec![1.0; c])),
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

/// Per-channel (mean, std).
pub type MeanStd = (Vec<f32>, Vec<f32>);

impl Normalize {
    /// The (mean, std) for `c` channels of a choice that needs no data (`none`, `imagenet`, given
    /// values); `None` for `auto` (whatever the caller already has); an error for `computed` or a
    /// count of values that fits no channel count.
    pub fn without_data(&self, c: usize) -> std::result::Result<Option<MeanStd>, String> {
        Ok(Some(match self {
            Normalize::Auto => return Ok(None),
            Normalize::Computed => return Err("--normalize computed needs the training pictures".into()),
            Normalize::None => (vec![0.0; c], vec![1.0; c]),
            Normalize::Imagenet if c == 3 => (IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec()),
            Normalize::Imagenet => {
                let luma = |v: [f32; 3]| 0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2];
                (vec![luma(IMAGENET_MEAN); c], vec![luma(IMAGENET_STD); c])
            }
            Normalize::Given(m, s) if m.len() == 1 => (vec![m[0]; c], vec![s[0]; c]),
            Normalize::Given(m, s) if m.len() == c => (m.clone(), s.clone()),
            Normalize::Given(m, _) => {
                return Err(format!("--normalize gives {} means, the model's input has {c} channels", m.len()))
            }
        }))
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

    /// Check the augmentation fits a model input `[C, H, W]`: the crop's padding must be smaller than
    /// the picture.
    pub fn check(&self, [_, h, w]: [usize; 3]) -> Result<()> {
        if self.crop as usize >= h.min(w) {
            return Err(Error::Train(format!("--augment crop={} must be smaller than the {h}x{w} input", self.crop)));
        }
        Ok(())
    }
}
