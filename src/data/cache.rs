//! The decoded-picture cache: a folder's pictures, once decoded and converted to a model's `[C, H, W]`,
//! are kept as one file so the next run starts from it instead of decoding again.
//!
//! `WGCNN_DATA_CACHE` names the folder (`off` disables it); unset, it is `$XDG_CACHE_HOME/wgcnn/data`
//! or `~/.cache/wgcnn/data` (never the data folder itself, which may be read-only or shared). A file's
//! name is a digest of everything that decides its contents: the format version, the folder, every
//! file's path, size and modification time, its label, the class names and `[C, H, W]`. A changed,
//! added or removed picture therefore misses the cache. The file is framed (magic, counts, an FNV-1a
//! digest of its bytes): one that is damaged or from another version is ignored and rewritten; a
//! cache that cannot be written is a warning, never an error.

use std::path::PathBuf;

use super::folder::Listing;
use crate::error::{io_err, Result};
use crate::fsio::{fnv1a as fnv, FNV_OFFSET as FNV0};

const MAGIC: &[u8; 8] = b"WGCNNDC1";
const HEADER: usize = 32;

/// The cache folder, or `None` when disabled.
pub fn folder() -> Option<PathBuf> {
    crate::fsio::cache_folder("WGCNN_DATA_CACHE", "data")
}

/// The cache key of `listing` converted to `input`: 128 bits of two FNV-1a streams, hex.
pub fn key(listing: &Listing, input: [usize; 3]) -> Result<String> {
    let mut text = format!("v1 {:?} {input:?} {:?}\n", listing.root, listing.classes);
    for (p, label) in &listing.files {
        let m = std::fs::metadata(p).map_err(|e| io_err(p, e))?;
        let mtime = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
        text += &format!("{:?} {} {} {} {label}\n", p, m.len(), mtime.as_secs(), mtime.subsec_nanos());
    }
    let a = fnv(FNV0, text.as_bytes());
    let b = fnv(a ^ 0x9e37_79b9_7f4a_7c15, text.as_bytes());
    Ok(format!("{a:016x}{b:016x}"))
}

fn path_of(key: &str) -> Option<PathBuf> {
    folder().map(|d| d.join(format!("{key}.bin")))
}

/// The cached pictures of `key` (`items` of `input`), with the file they came from, or `None` (logged
/// when a file was there but unusable).
pub fn read(key: &str, items: usize, input: [usize; 3]) -> Option<(PathBuf, Vec<u8>)> {
    let path = path_of(key)?;
    let item: usize = input.iter().product();
    let want = HEADER + items + items * item;
    let (_, len) = crate::fsio::open_regular(&path).ok()?;
    if len != want as u64 {
        log::warn!("data cache {}: {len} bytes, expected {want}; ignored and replaced", path.display());
        return None;
    }
    let mut bytes = std::fs::read(&path).ok()?;
    let head = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let intact = bytes.len() == want
        && &bytes[..8] == MAGIC
        && head(8) == items as u64
        && head(16) == item as u64
        && head(24) == fnv(FNV0, &bytes[HEADER..]);
    if !intact {
        log::warn!("data cache {}: not an intact cache file; ignored and replaced", path.display());
        return None;
    }
    // The labels are part of the key; the pictures follow them.
    let images = bytes.split_off(HEADER + items);
    Some((path, images))
}

/// Cache `images` (with `labels`) under `key`; a failure is a warning.
pub fn write(key: &str, labels: &[u8], images: &[u8]) {
    let Some(path) = path_of(key) else { return };
    let item = images.len() / labels.len().max(1);
    let mut bytes = Vec::with_capacity(HEADER + labels.len() + images.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(labels.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&(item as u64).to_le_bytes());
    bytes.extend_from_slice(&[0; 8]);
    bytes.extend_from_slice(labels);
    bytes.extend_from_slice(images);
    let digest = fnv(FNV0, &bytes[HEADER..]);
    bytes[24..32].copy_from_slice(&digest.to_le_bytes());
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .map_err(|e| io_err(&path, e))
        .and_then(|_| crate::fsio::write_atomic(&path, &bytes));
    if let Err(e) = written {
        log::warn!("data cache not written ({e}); the next run decodes the pictures again");
    }
}
