//! What the gather kernel does to the bytes of a picture besides scaling them: per-channel
//! normalisation (its statistics computed here, on the training split) and augmentation (random crop and
//! flip, drawn on the GPU).

use serde::{Deserialize, Serialize};

use super::Dataset;
use crate::error::{data_err, Error, Result};
use crate::kernels::gather::Warp;

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

/// How the training split is augmented (`--augment crop=4,flip`, `--augment rotate=12,shear=15,thick=1`),
/// on the GPU in the gather. Every item draws its own crop offset, flip and warp from `(seed, epoch, item)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Random crop of the picture padded with this many zero pixels on each side (0: none).
    pub crop: u32,
    /// Random horizontal flips.
    pub flip: bool,
    /// Random rotation by up to this many degrees either way.
    #[serde(default)]
    pub rotate: f32,
    /// Random slant (shear `x += tan(a)·y`) by up to this many degrees either way.
    #[serde(default)]
    pub shear: f32,
    /// Random scale by a factor in `[1 − scale, 1 + scale]`.
    #[serde(default)]
    pub scale: f32,
    /// Random shift by up to this many pixels on each axis (continuous, unlike `crop`).
    #[serde(default)]
    pub shift: f32,
    /// Random stroke thickness: each picture's strokes grow or shrink by up to this many pixels.
    #[serde(default)]
    pub thick: f32,
}

const AUGMENT_HELP: &str = "expected none or a comma list of crop=N, flip, rotate=DEG, shear=DEG, scale=F, shift=PX, \
     thick=PX (e.g. crop=4,flip or rotate=12,shear=15,scale=0.1,shift=2,thick=1)";

impl std::str::FromStr for Augment {
    type Err = String;
    /// `none`, or a comma list of `crop=N`, `flip`, `rotate=DEG`, `shear=DEG`, `scale=F`, `shift=PX`
    /// and `thick=PX`.
    fn from_str(s: &str) -> std::result::Result<Augment, String> {
        let mut a = Augment::default();
        if s.trim() == "none" {
            return Ok(a);
        }
        for part in s.split(',').map(str::trim) {
            let number = |n: &str, what: &str| -> std::result::Result<f32, String> {
                let v: f32 = n.trim().parse().map_err(|e| format!("{part}: {e} ({what})"))?;
                if !v.is_finite() {
                    return Err(format!("{part}: not a finite number ({what})"));
                }
                Ok(v)
            };
            match part.split_once('=') {
                None if part == "flip" => a.flip = true,
                Some(("crop", n)) => {
                    a.crop = n.trim().parse().map_err(|e| format!("crop={n}: {e} (a padding in pixels)"))?;
                }
                Some(("rotate", n)) => a.rotate = number(n, "an angle in degrees")?,
                Some(("shear", n)) => a.shear = number(n, "an angle in degrees")?,
                Some(("scale", n)) => a.scale = number(n, "a relative size change")?,
                Some(("shift", n)) => a.shift = number(n, "a distance in pixels")?,
                Some(("thick", n)) => a.thick = number(n, "a stroke radius change in pixels")?,
                _ => return Err(format!("{part:?}: {AUGMENT_HELP}")),
            }
        }
        a.check_ranges()?;
        Ok(a)
    }
}

impl std::fmt::Display for Augment {
    /// The `--augment` spelling that parses back to `self` (`none` when nothing is augmented).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.crop > 0 {
            parts.push(format!("crop={}", self.crop));
        }
        if self.flip {
            parts.push("flip".into());
        }
        for (name, v) in [
            ("rotate", self.rotate),
            ("shear", self.shear),
            ("scale", self.scale),
            ("shift", self.shift),
            ("thick", self.thick),
        ] {
            if v != 0.0 {
                parts.push(format!("{name}={v}"));
            }
        }
        if parts.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&parts.join(","))
    }
}

impl Augment {
    pub fn is_none(&self) -> bool {
        *self == Augment::default()
    }

    /// The gather's warp: the angles in radians, the shear as a factor.
    pub fn warp(&self) -> Warp {
        Warp {
            rotate: self.rotate.to_radians(),
            shear: self.shear.to_radians().tan(),
            scale: self.scale,
            shift: self.shift,
            thick: self.thick,
        }
    }

    /// The limits that hold whatever the picture: every figure finite and at least 0, rotate below 180,
    /// shear below 60 and scale below 1 (the parser's checks and [`Augment::check`]'s first).
    fn check_ranges(&self) -> std::result::Result<(), String> {
        let figures = [
            ("rotate", self.rotate, 180.0),
            ("shear", self.shear, 60.0),
            ("scale", self.scale, 1.0),
            ("shift", self.shift, f32::INFINITY),
            ("thick", self.thick, f32::INFINITY),
        ];
        for (name, v, max) in figures {
            if !(v.is_finite() && (0.0..max).contains(&v)) {
                return Err(match max.is_finite() {
                    true => format!("{name}={v} must be at least 0 and below {max}"),
                    false => format!("{name}={v} must be a finite number, at least 0"),
                });
            }
        }
        Ok(())
    }

    /// Check the augmentation fits a model input `[C, H, W]`: the ranges above (for values built in
    /// code or read from a resume record), the crop's padding smaller than the picture, the shift
    /// smaller than half of it and the stroke change smaller than a quarter.
    pub fn check(&self, [_, h, w]: [usize; 3]) -> Result<()> {
        let bad = |what: String| Err(Error::Train(format!("--augment {what} for the {h}x{w} input")));
        self.check_ranges().or_else(bad)?;
        let side = h.min(w) as f32;
        if self.crop as usize >= h.min(w) {
            return bad(format!("crop={} must be smaller than the picture", self.crop));
        }
        if self.shift >= side / 2.0 {
            return bad(format!("shift={} must be smaller than half the picture", self.shift));
        }
        if self.thick >= side / 4.0 {
            return bad(format!("thick={} must be smaller than a quarter of the picture", self.thick));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Augment;

    #[test]
    fn augment_parses_prints_and_checks() {
        let a: Augment = "rotate=12, shear=15,scale=0.1,shift=2,thick=1,crop=2,flip".parse().unwrap();
        let want = Augment { crop: 2, flip: true, rotate: 12.0, shear: 15.0, scale: 0.1, shift: 2.0, thick: 1.0 };
        assert_eq!(a, want);
        assert_eq!(a.to_string(), "crop=2,flip,rotate=12,shear=15,scale=0.1,shift=2,thick=1");
        assert_eq!(a.to_string().parse::<Augment>().unwrap(), a, "the printed form parses back");
        assert_eq!("none".parse::<Augment>().unwrap().to_string(), "none");
        let w = a.warp();
        assert!((w.rotate - 12f32.to_radians()).abs() < 1e-7 && (w.shear - 15f32.to_radians().tan()).abs() < 1e-7);
        assert!(a.check([1, 28, 28]).is_ok());
        for (bad, says) in [
            ("rotate=-1", "at least 0"),
            ("rotate=180", "below 180"),
            ("shear=60", "below 60"),
            ("scale=1", "below 1"),
            ("shift=nan", "shift=nan"),
            ("thick=x", "thick=x"),
            ("spin=3", "rotate=DEG"),
        ] {
            let e = bad.parse::<Augment>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        // The picture bounds the shift and the stroke change.
        let e = Augment { shift: 14.0, ..Augment::default() }.check([1, 28, 28]).unwrap_err().to_string();
        assert!(e.contains("shift=14") && e.contains("28x28"), "{e}");
        let e = Augment { thick: 2.0, ..Augment::default() }.check([1, 8, 8]).unwrap_err().to_string();
        assert!(e.contains("thick=2"), "{e}");
    }
}
