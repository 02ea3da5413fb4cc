//! MNIST-format IDX files (raw or gzip) with clear errors, and the dataset resident on the GPU.
//!
//! Our own reader rather than the `mnist` crate: that crate panics on a missing or malformed file and
//! knows only fixed file names and counts; this one checks magic numbers, dimensions, lengths and labels
//! and names the file in every error, and reads Fashion-MNIST or any same-format set of any size.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::context::Context;
use crate::error::{data_err, io_err, Result};
use crate::tensor::Tensor;

/// Images and labels of one split, as bytes.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// `len × rows × cols` pixels, row-major, 0 = background.
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Bytes per image.
    pub fn item_size(&self) -> usize {
        self.rows * self.cols
    }
    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * self.item_size()..(i + 1) * self.item_size()]
    }
}

/// Which split of a data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Number of classes the labels may use (digits, Fashion-MNIST's ten garments).
pub const CLASSES: usize = 10;

/// The largest file wgcnn will decompress (a guard against corrupt or hostile gzip streams).
const MAX_BYTES: u64 = 1 << 30;

fn find(dir: &Path, prefix: &str, kind: &str, idx: &str) -> Result<PathBuf> {
    let names = [
        format!("{prefix}-{kind}-{idx}-ubyte.gz"),
        format!("{prefix}-{kind}-{idx}-ubyte"),
        format!("{prefix}-{kind}.{idx}-ubyte.gz"),
        format!("{prefix}-{kind}.{idx}-ubyte"),
    ];
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| data_err(dir, format!("no {prefix} {kind} file: expected one of {}", names.join(", "))))
}

/// Read a whole file, gunzipping it when it starts with the gzip magic.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| io_err(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .take(MAX_BYTES)
            .read_to_end(&mut out)
            .map_err(|e| data_err(path, format!("corrupt gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parse an IDX file of unsigned bytes with `want_dims` dimensions; returns (dims, data).
pub fn parse_idx(path: &Path, bytes: &[u8], want_dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    if bytes.len() < 4 {
        return Err(data_err(path, format!("{} bytes: too short for an IDX header", bytes.len())));
    }
    let (zero, dtype, ndims) = (u16::from_be_bytes([bytes[0], bytes[1]]), bytes[2], bytes[3] as usize);
    if zero != 0 || dtype != 0x08 || ndims != want_dims {
        return Err(data_err(
            path,
            format!(
                "bad IDX magic {:02x}{:02x}{:02x}{:02x}: expected 000008{want_dims:02x} (unsigned bytes, {want_dims} dimensions)",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(data_err(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let want = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let have = bytes.len() - header;
    match want {
        Some(w) if w == have => Ok((dims, bytes[header..].to_vec())),
        Some(w) if w > have => {
            Err(data_err(path, format!("truncated: header {dims:?} needs {w} bytes of data, file has {have}")))
        }
        Some(w) => Err(data_err(path, format!("{} bytes of trailing data after {w} ({dims:?})", have - w))),
        None => Err(data_err(path, format!("impossible dimensions {dims:?}"))),
    }
}

/// Load the `train-*` or `t10k-*` images and labels from `dir`.
pub fn load(dir: &Path, split: Split) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(data_err(dir, "not a directory (expected a folder holding train-* and t10k-* IDX files)"));
    }
    let prefix = split.prefix();
    let ipath = find(dir, prefix, "images", "idx3")?;
    let lpath = find(dir, prefix, "labels", "idx1")?;
    let (idims, images) = parse_idx(&ipath, &read_maybe_gz(&ipath)?, 3)?;
    let (ldims, labels) = parse_idx(&lpath, &read_maybe_gz(&lpath)?, 1)?;
    if idims[0] != ldims[0] {
        return Err(data_err(&lpath, format!("{} labels for {} images in {}", ldims[0], idims[0], ipath.display())));
    }
    if idims[0] == 0 || idims[1] == 0 || idims[2] == 0 {
        return Err(data_err(&ipath, format!("empty image set {idims:?}")));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= CLASSES) {
        return Err(data_err(&lpath, format!("label {l} at item {i} is not a class 0..{}", CLASSES - 1)));
    }
    Ok(Dataset { images, labels, rows: idims[1], cols: idims[2] })
}

/// The default data set: the real MNIST sample bundled with the crate (8,000 train, 2,000 test).
pub fn bundled_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data").join("mnist-sample")
}

/// A dataset resident on the GPU as bytes, ready for `gather_batch`.
pub struct GpuDataset {
    pub images: Tensor,
    pub labels: Tensor,
    pub len: usize,
    pub rows: usize,
    pub cols: usize,
}

impl GpuDataset {
    pub fn upload(ctx: &Context, name: &str, d: &Dataset) -> Result<GpuDataset> {
        Ok(GpuDataset {
            images: Tensor::from_u8(ctx, &format!("{name}.images"), &[d.len(), d.rows, d.cols], &d.images)?,
            labels: Tensor::from_u8(ctx, &format!("{name}.labels"), &[d.len()], &d.labels)?,
            len: d.len(),
            rows: d.rows,
            cols: d.cols,
        })
    }
}
