//! CIFAR-10 and CIFAR-100 in their binary layout: records of label byte(s) then 3,072 bytes of a 32×32
//! picture, red plane, green plane, blue plane, rows top to bottom (exactly the `[3, 32, 32]` layout
//! wgcnn keeps).
//!
//! - CIFAR-10: `data_batch_1.bin`, `data_batch_2.bin`, … (consecutive from 1) and `test_batch.bin`;
//!   records of 1 + 3,072 bytes; class names from `batches.meta.txt` (one a line) when present.
//! - CIFAR-100: `train.bin` and `test.bin`; records of 2 + 3,072 bytes (coarse label, fine label);
//!   names from `fine_label_names.txt` / `coarse_label_names.txt` when present.
//!
//! A file whose length is not a whole number of records, or a label past the classes, is an error
//! naming the file (and the record).

use std::path::{Path, PathBuf};

use super::{CifarLabels, Dataset, SourceKind};
use crate::error::{data_err, io_err, Result};

/// Side of a CIFAR picture.
pub const SIDE: usize = 32;
/// Bytes of one CIFAR picture.
pub const PICTURE: usize = 3 * SIDE * SIDE;

/// The largest CIFAR file read (the real ones are 30 MiB and 150 MiB).
const MAX_FILE: u64 = 1 << 30;

/// How a CIFAR kind's records hold their labels: label bytes per record, classes, and which label
/// byte is read (CIFAR-100 records hold (coarse, fine)).
fn layout(kind: SourceKind, labels: CifarLabels) -> (usize, usize, usize) {
    match (kind, labels) {
        (SourceKind::Cifar10, _) => (1, 10, 0),
        (_, CifarLabels::Fine) => (2, 100, 1),
        (_, CifarLabels::Coarse) => (2, 20, 0),
    }
}

/// An empty 3×32×32 set with these class names.
fn empty(class_names: Vec<String>, source: PathBuf) -> Dataset {
    Dataset { images: Vec::new(), labels: Vec::new(), channels: 3, rows: SIDE, cols: SIDE, class_names, source }
}

/// Training and test sets of the CIFAR folder `dir` of kind `kind` (CIFAR-10 or CIFAR-100).
pub fn load(dir: &Path, kind: SourceKind, labels: CifarLabels) -> Result<(Dataset, Dataset)> {
    let (label_bytes, classes, which) = layout(kind, labels);
    let (train_files, test_file, names_file) = if kind == SourceKind::Cifar10 {
        let mut files = Vec::new();
        while dir.join(format!("data_batch_{}.bin", files.len() + 1)).exists() {
            files.push(dir.join(format!("data_batch_{}.bin", files.len() + 1)));
        }
        (files, dir.join("test_batch.bin"), "batches.meta.txt")
    } else {
        let names = if labels == CifarLabels::Fine { "fine_label_names.txt" } else { "coarse_label_names.txt" };
        (vec![dir.join("train.bin")], dir.join("test.bin"), names)
    };
    let names = class_names(&dir.join(names_file), classes)?;
    let read = |files: &[PathBuf]| -> Result<Dataset> {
        let mut d = empty(names.clone(), files.first().cloned().unwrap_or_else(|| dir.to_path_buf()));
        for f in files {
            read_records(f, label_bytes, which, classes, &mut d)?;
        }
        Ok(d)
    };
    let (train, test) = (read(&train_files)?, read(std::slice::from_ref(&test_file))?);
    if train.is_empty() {
        return Err(data_err(&train.source, "holds no pictures"));
    }
    if test.is_empty() {
        return Err(data_err(&test_file, "holds no pictures"));
    }
    Ok((train, test))
}

/// Append the records of `path` to `d`.
fn read_records(path: &Path, label_bytes: usize, which: usize, classes: usize, d: &mut Dataset) -> Result<()> {
    let (mut f, len) = crate::fsio::open_regular(path)?;
    if len > MAX_FILE {
        return Err(data_err(path, format!("{len} bytes: over the {MAX_FILE}-byte cap on a CIFAR file")));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(&mut f, &mut bytes).map_err(|e| io_err(path, e))?;
    if bytes.len() as u64 != len {
        return Err(data_err(path, format!("changed while being read ({len} bytes, then {})", bytes.len())));
    }
    append_records(path, &bytes, label_bytes, which, classes, d)
}

/// A CIFAR file's contents as a data set (e.g. bytes a browser page was given), `name` naming it in
/// errors: `kind` says which CIFAR (10: one label byte; 100: coarse and fine), `labels` which of
/// CIFAR-100's labels; classes are numbered.
pub fn from_bytes(name: &Path, bytes: &[u8], kind: SourceKind, labels: CifarLabels) -> Result<Dataset> {
    let (label_bytes, classes, which) = layout(kind, labels);
    let mut d = empty((0..classes).map(|c| c.to_string()).collect(), name.to_path_buf());
    append_records(name, bytes, label_bytes, which, classes, &mut d)?;
    Ok(d)
}

/// Append the records in `bytes` (the contents of `path`) to `d`.
fn append_records(
    path: &Path,
    bytes: &[u8],
    label_bytes: usize,
    which: usize,
    classes: usize,
    d: &mut Dataset,
) -> Result<()> {
    let record = label_bytes + PICTURE;
    let len = bytes.len() as u64;
    if len == 0 || !len.is_multiple_of(record as u64) {
        return Err(data_err(
            path,
            format!(
                "{len} bytes is not a whole number of {record}-byte records ({label_bytes} label byte(s) + a \
                 3x32x32 picture): not a CIFAR-{} binary file, or truncated",
                if label_bytes == 1 { 10 } else { 100 }
            ),
        ));
    }
    for (i, r) in bytes.chunks_exact(record).enumerate() {
        let label = r[which];
        if label as usize >= classes {
            return Err(data_err(path, format!("record {i}: label {label} is not a class 0..{}", classes - 1)));
        }
        d.labels.push(label);
        d.images.extend_from_slice(&r[label_bytes..]);
    }
    Ok(())
}

/// Names from a `*.txt` file of one name a line (blank lines ignored), or the class numbers when the
/// file is absent; a file with another number of names is an error.
fn class_names(path: &Path, classes: usize) -> Result<Vec<String>> {
    if !path.exists() {
        return Ok((0..classes).map(|c| c.to_string()).collect());
    }
    let (f, len) = crate::fsio::open_regular(path)?;
    if len > 1 << 20 {
        return Err(data_err(path, format!("{len} bytes: too large for a list of class names")));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::BufReader::new(f), &mut text)
        .map_err(|e| data_err(path, format!("not a text file of class names: {e}")))?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    if names.len() != classes {
        return Err(data_err(path, format!("{} class names for {classes} classes", names.len())));
    }
    Ok(names)
}
