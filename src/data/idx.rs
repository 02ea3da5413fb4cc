//! MNIST-format IDX files (raw or gzip) with clear errors.
//!
//! Our own reader rather than the `mnist` crate: that crate panics on a missing or malformed file and
//! knows only fixed file names and counts; this one checks magic numbers, dimensions, lengths and labels
//! and names the file in every error, and reads Fashion-MNIST or any same-format set of any size.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{bundled_dir, Dataset, Split, CLASSES, MAX_BYTES};
use crate::error::{data_err, io_err, Result};

fn find(dir: &Path, prefix: &str, kind: &str, idx: &str) -> Result<PathBuf> {
    let names = [
        format!("{prefix}-{kind}-{idx}-ubyte.gz"),
        format!("{prefix}-{kind}-{idx}-ubyte"),
        format!("{prefix}-{kind}.{idx}-ubyte.gz"),
        format!("{prefix}-{kind}.{idx}-ubyte"),
    ];
    // The first name present in any form: a link, folder or FIFO there is reported as such when read.
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| std::fs::symlink_metadata(p).is_ok())
        .ok_or_else(|| data_err(dir, format!("no {prefix} {kind} file: expected one of {}", names.join(", "))))
}

/// A data file's byte stream: the file, or its gzip members decompressed one after another.
fn open_stream(path: &Path) -> Result<(Box<dyn Read>, Option<u64>)> {
    let (mut f, size) = crate::fsio::open_regular(path)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(|e| io_err(path, e))?;
    use std::io::Seek;
    f.rewind().map_err(|e| io_err(path, e))?;
    Ok(unzipped(std::io::BufReader::new(f), n == 2 && magic == [0x1f, 0x8b], size))
}

/// The stream of `reader` (`size` bytes), gunzipped when `gz`; the size only when it is the data's.
fn unzipped<R: std::io::BufRead + 'static>(reader: R, gz: bool, size: u64) -> (Box<dyn Read>, Option<u64>) {
    if gz {
        (Box::new(flate2::bufread::MultiGzDecoder::new(reader)), None)
    } else {
        (Box::new(reader), Some(size))
    }
}

/// Read an IDX file of unsigned bytes with `want_dims` dimensions (raw or gzip): the header first,
/// then exactly the bytes it promises (checked against the file's size, or the decompressed stream,
/// before they are read), so a lying header costs no memory. Returns (dims, data).
pub fn read_idx(path: &Path, want_dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let (stream, raw_size) = open_stream(path)?;
    read_idx_stream(path, stream, raw_size, want_dims)
}

/// [`read_idx`] on a file's bytes (raw or gzip; e.g. fetched by a browser page), `name` naming it in
/// errors.
pub fn read_idx_bytes(name: &Path, bytes: Vec<u8>, want_dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let (gz, size) = (bytes.starts_with(&[0x1f, 0x8b]), bytes.len() as u64);
    let (stream, raw_size) = unzipped(std::io::Cursor::new(bytes), gz, size);
    read_idx_stream(name, stream, raw_size, want_dims)
}

fn read_idx_stream(
    path: &Path,
    mut stream: Box<dyn Read>,
    raw_size: Option<u64>,
    want_dims: usize,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let gz = |e: std::io::Error| {
        if raw_size.is_none() {
            data_err(path, format!("corrupt gzip stream: {e}"))
        } else {
            io_err(path, e)
        }
    };
    let mut head = vec![0u8; 4];
    let got = read_full(&mut stream, &mut head).map_err(gz)?;
    check_magic(path, &head[..got], want_dims)?;
    head.resize(4 + 4 * want_dims, 0);
    if read_full(&mut stream, &mut head[4..]).map_err(gz)? < 4 * want_dims {
        return Err(data_err(path, "truncated IDX header"));
    }
    let dims = header_dims(&head, want_dims);
    let want = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).filter(|&w| w <= MAX_BYTES);
    let Some(want) = want else {
        return Err(data_err(
            path,
            format!("header {dims:?} promises more than the {MAX_BYTES}-byte cap on a data file"),
        ));
    };
    if let Some(size) = raw_size {
        let have = size - head.len() as u64;
        if have < want {
            return Err(data_err(
                path,
                format!("truncated: header {dims:?} needs {want} bytes of data, file has {have}"),
            ));
        }
        if have > want {
            return Err(data_err(path, format!("{} bytes of trailing data after {want} ({dims:?})", have - want)));
        }
    }
    // Grows with what arrives (a truncated stream costs what it holds, not what it promised).
    let mut body = Vec::with_capacity(want.min(64 << 20) as usize);
    (&mut stream).take(want).read_to_end(&mut body).map_err(gz)?;
    if (body.len() as u64) < want {
        let have = body.len();
        return Err(data_err(
            path,
            format!("truncated: header {dims:?} needs {want} bytes of data, the stream holds {have}"),
        ));
    }
    let mut extra = [0u8; 1];
    if read_full(&mut stream, &mut extra).map_err(gz)? > 0 {
        return Err(data_err(path, format!("trailing data after the {want} bytes of {dims:?}")));
    }
    Ok((dims, body))
}

/// Read until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

fn check_magic(path: &Path, b: &[u8], want_dims: usize) -> Result<()> {
    if b.len() < 4 {
        return Err(data_err(path, format!("{} bytes: too short for an IDX header", b.len())));
    }
    if b[0] != 0 || b[1] != 0 || b[2] != 0x08 || b[3] as usize != want_dims {
        return Err(data_err(
            path,
            format!(
                "bad IDX magic {:02x}{:02x}{:02x}{:02x}: expected 000008{want_dims:02x} (unsigned bytes, {want_dims} dimensions)",
                b[0], b[1], b[2], b[3]
            ),
        ));
    }
    Ok(())
}

fn header_dims(head: &[u8], ndims: usize) -> Vec<usize> {
    (0..ndims).map(|i| u32::from_be_bytes(head[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize).collect()
}

/// Load the `train-*` or `t10k-*` images and labels from `dir`.
pub fn load(dir: &Path, split: Split) -> Result<Dataset> {
    if !dir.is_dir() {
        if dir == bundled_dir() {
            return Err(data_err(
                dir,
                "the bundled MNIST sample is not here (this path was compiled into the binary; it moves with \
                 the source tree, not the binary): pass --data DIR, a folder holding train-* and t10k-* IDX files",
            ));
        }
        return Err(data_err(dir, "not a directory (expected a folder holding train-* and t10k-* IDX files)"));
    }
    let prefix = split.prefix();
    let ipath = find(dir, prefix, "images", "idx3")?;
    let lpath = find(dir, prefix, "labels", "idx1")?;
    let labels = read_idx(&lpath, 1)?;
    let images = read_idx(&ipath, 3)?;
    Dataset::from_idx(&ipath, images, &lpath, labels)
}

impl Dataset {
    /// A split from its images and labels files' contents (as [`read_idx`] returns them), checked as
    /// [`load`] checks files: as many labels as images, no empty set, every label a class.
    pub fn from_idx(
        ipath: &Path,
        (idims, images): (Vec<usize>, Vec<u8>),
        lpath: &Path,
        (ldims, labels): (Vec<usize>, Vec<u8>),
    ) -> Result<Dataset> {
        if idims[0] != ldims[0] {
            return Err(data_err(lpath, format!("{} labels for {} images in {}", ldims[0], idims[0], ipath.display())));
        }
        if idims[0] == 0 || idims[1] == 0 || idims[2] == 0 {
            return Err(data_err(ipath, format!("empty image set {idims:?}")));
        }
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= CLASSES) {
            return Err(data_err(lpath, format!("label {l} at item {i} is not a class 0..{}", CLASSES - 1)));
        }
        Ok(Dataset {
            images,
            labels,
            channels: 1,
            rows: idims[1],
            cols: idims[2],
            class_names: (0..CLASSES).map(|c| c.to_string()).collect(),
            source: ipath.to_path_buf(),
        })
    }
}
