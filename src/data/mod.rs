//! Data sets: where pictures come from, how they become the model's `[C, H, W]` bytes, and the set
//! resident on the GPU.
//!
//! `--data DIR` is one of four sources, detected from what the folder holds, in this order:
//!
//! 1. **IDX** ([`idx`]): `train-images-idx3-ubyte[.gz]` and the other three MNIST-format files;
//! 2. **CIFAR binary** ([`cifar`]): `data_batch_1.bin`… with `test_batch.bin` (CIFAR-10), or
//!    `train.bin` with `test.bin` (CIFAR-100, fine or coarse labels);
//! 3. **image folders with splits** ([`folder`]): `DIR/train/<class>/*` with `DIR/test/<class>/*` (or
//!    `DIR/val/<class>/*`);
//! 4. **one image folder** ([`folder`]): `DIR/<class>/*`, split into training and validation sets by
//!    `val_split` (stratified, seeded).
//!
//! Every source yields [`Dataset`]s of u8 pictures already in the model's `[C, H, W]` layout
//! ([`prep`] converts channels and resizes); picture folders are decoded once, in parallel, and cached
//! ([`cache`]). On the GPU the bytes stay resident ([`GpuDataset`]) and the gather kernel normalises
//! (and in training augments) each batch.

pub mod cache;
pub mod cifar;
pub mod folder;
mod gpu;
pub mod idx;
pub mod prep;
pub mod resize;
pub mod transform;

use std::path::{Path, PathBuf};

pub use gpu::{check_fits, GpuDataset};
pub use idx::{load, read_idx, read_idx_bytes};
pub use prep::{PictureMode, Preparation};
pub use transform::{Augment, Normalize};

use crate::error::{data_err, Result};

/// Pictures and labels of one split, as bytes.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// `len × channels × rows × cols` bytes: each picture channel by channel (planar), rows top to
    /// bottom; 0 = black.
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub channels: usize,
    pub rows: usize,
    pub cols: usize,
    /// The class names, in label order (IDX files: "0" to "9").
    pub class_names: Vec<String>,
    /// Where it came from (for errors).
    pub source: PathBuf,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Bytes per picture.
    pub fn item_size(&self) -> usize {
        self.channels * self.rows * self.cols
    }
    /// `[channels, rows, cols]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.rows, self.cols]
    }
    /// Bytes of picture `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * self.item_size()..(i + 1) * self.item_size()]
    }
    /// The items `keep` (in that order), as a new set.
    pub fn select(&self, keep: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(keep.len() * self.item_size());
        keep.iter().for_each(|&i| images.extend_from_slice(self.image(i)));
        Dataset { images, labels: keep.iter().map(|&i| self.labels[i]).collect(), ..self.empty_like() }
    }
    /// A set with no pictures and this one's layout, class names and source.
    pub(crate) fn empty_like(&self) -> Dataset {
        Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            channels: self.channels,
            rows: self.rows,
            cols: self.cols,
            class_names: self.class_names.clone(),
            source: self.source.clone(),
        }
    }
}

/// Which split of a data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// The IDX files' prefix.
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Pixel scale: inputs are x / 255 before normalisation (the GPU data set's gathers apply it).
pub const DIVISOR: f32 = 255.0;

/// Number of classes of IDX files (digits, Fashion-MNIST's ten garments).
pub const CLASSES: usize = 10;

/// The most classes a data set may have: labels are stored as one byte each.
pub const MAX_CLASSES: usize = 256;

/// The largest data file wgcnn reads (pixels or labels after decompression): 4 GiB, what a `u32` byte
/// offset addresses. Sizes are checked against the header's promise before the body is read.
pub const MAX_BYTES: u64 = 4 << 30;

/// Check the test images have the training images' size (the model sees one size).
pub fn check_same_size(dir: &Path, train: &Dataset, test: &Dataset) -> Result<()> {
    if train.shape() != test.shape() {
        let [c, h, w] = test.shape();
        let [tc, th, tw] = train.shape();
        return Err(data_err(
            &test.source,
            format!(
                "test images are {c}x{h}x{w}, the training images ({}) are {tc}x{th}x{tw}: one model reads one \
                 size (data folder {})",
                train.source.display(),
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// The default data set: the real MNIST sample bundled with the crate (8,000 train, 2,000 test).
pub fn bundled_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data").join("mnist-sample")
}

/// What kind of source a data folder is (see the module docs for the detection order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Idx,
    Cifar10,
    Cifar100,
    /// `train/` and `test/` (or `val/`) folders of class folders.
    FolderSplits,
    /// Class folders, split by `val_split`.
    Folder,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Idx => "IDX files",
            SourceKind::Cifar10 => "CIFAR-10 binary",
            SourceKind::Cifar100 => "CIFAR-100 binary",
            SourceKind::FolderSplits => "image folders (train/test)",
            SourceKind::Folder => "an image folder (split by --val-split)",
        }
    }

    /// How a picture given to `predict` is prepared for a model trained on this source.
    pub fn picture_mode(self, input: [usize; 3]) -> PictureMode {
        if self == SourceKind::Idx && input == [1, crate::digits::SIDE, crate::digits::SIDE] {
            PictureMode::Digits
        } else {
            PictureMode::Resize
        }
    }
}

/// Which CIFAR-100 labels to train on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CifarLabels {
    /// The 100 fine classes.
    #[default]
    Fine,
    /// The 20 superclasses.
    Coarse,
}

/// Messages of a long load (decoding pictures).
#[derive(Clone, Debug)]
pub enum LoadProgress {
    /// Pictures decoded so far, of all to decode.
    Decoding { done: usize, total: usize },
    /// The decoded set came from the cache file.
    Cached(PathBuf),
    /// Files skipped: not PNG or JPEG by their extension (e.g. `.txt`, `.csv`), or names starting
    /// with a dot (`.DS_Store`).
    Skipped { count: usize, examples: Vec<PathBuf> },
}

/// How to load a data folder.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The model's input `[C, H, W]`: pictures are converted to it.
    pub input: [usize; 3],
    /// With one image folder: the fraction of each class held out for validation.
    pub val_split: f64,
    /// Seed of the validation split.
    pub seed: u64,
    pub cifar_labels: CifarLabels,
    /// Use (and write) the decoded-picture cache ([`cache`]).
    pub cache: bool,
    /// Only the test split is needed (`eval`): where the training pictures are a folder of their own,
    /// they are listed (for the class names) but not decoded, and [`Splits::train`] is empty.
    pub test_only: bool,
}

impl LoadOptions {
    /// Defaults for a model reading `input`: a 10 % validation split from seed 1, fine labels, cached.
    pub fn new(input: [usize; 3]) -> LoadOptions {
        LoadOptions { input, val_split: 0.1, seed: 1, cifar_labels: CifarLabels::Fine, cache: true, test_only: false }
    }
}

/// A data folder loaded: both splits in the model's layout.
#[derive(Clone, Debug)]
pub struct Splits {
    pub kind: SourceKind,
    pub train: Dataset,
    pub test: Dataset,
}

/// Which kind of source `dir` holds (see the module docs), or an error saying what it holds.
pub fn detect(dir: &Path) -> Result<SourceKind> {
    if !dir.is_dir() {
        if dir == bundled_dir() {
            return Err(data_err(
                dir,
                "the bundled MNIST sample is not here (this path was compiled into the binary; it moves with \
                 the source tree, not the binary): pass --data DIR",
            ));
        }
        return Err(data_err(
            dir,
            "not a directory (expected IDX files, CIFAR .bin files, or folders of pictures, one per class)",
        ));
    }
    let has = |n: &str| std::fs::symlink_metadata(dir.join(n)).is_ok();
    if [
        "train-images-idx3-ubyte",
        "train-images-idx3-ubyte.gz",
        "train-images.idx3-ubyte",
        "train-images.idx3-ubyte.gz",
    ]
    .iter()
    .any(|n| has(n))
    {
        return Ok(SourceKind::Idx);
    }
    if has("data_batch_1.bin") {
        return Ok(SourceKind::Cifar10);
    }
    if has("train.bin") {
        return Ok(SourceKind::Cifar100);
    }
    if dir.join("train").is_dir() {
        return Ok(SourceKind::FolderSplits);
    }
    Ok(SourceKind::Folder)
}

/// Load both splits of `dir` in the layout `opts.input`, telling `progress` about long work.
pub fn load_splits(dir: &Path, opts: &LoadOptions, progress: &mut dyn FnMut(LoadProgress)) -> Result<Splits> {
    let kind = detect(dir)?;
    let (train, test) = match kind {
        SourceKind::Idx => {
            let (train, test) = (load(dir, Split::Train)?, load(dir, Split::Test)?);
            check_same_size(dir, &train, &test)?;
            (prep::conform(train, opts.input)?, prep::conform(test, opts.input)?)
        }
        SourceKind::Cifar10 | SourceKind::Cifar100 => {
            let (train, test) = cifar::load(dir, kind, opts.cifar_labels)?;
            (prep::conform(train, opts.input)?, prep::conform(test, opts.input)?)
        }
        SourceKind::FolderSplits | SourceKind::Folder => folder::load(dir, kind, opts, progress)?,
    };
    Ok(Splits { kind, train, test })
}
