//! The safetensors format, written and read by wgcnn itself:
//!
//! - Writing is deterministic: tensors ordered by dtype width then name, the JSON header's keys sorted
//!   (the `safetensors` crate keeps metadata in a `HashMap`, so its files differ run to run). Two
//!   identical runs give byte-identical checkpoints.
//! - Reading is header first: the 8-byte length and the JSON header (capped at [`MAX_HEADER`]) are read
//!   and checked against the file's size before any tensor data, so a checkpoint of another model is
//!   refused without reading its data, and a lying header cannot make wgcnn allocate what the file
//!   does not hold. Tensor data is read one tensor at a time, only when asked for.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Error, Result};

/// The largest JSON header wgcnn reads (its own are a few KiB; large language models' are ~1 MiB).
pub const MAX_HEADER: u64 = 16 << 20;

pub(crate) fn ckpt_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.display().to_string(), detail: detail.into() }
}

/// A tensor's values: f32 (parameters, buffers, optimizer state) or int64 (`num_batches_tracked`).
#[derive(Clone, Copy, Debug)]
pub enum Data<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
}

impl Data<'_> {
    fn dtype(&self) -> &'static str {
        match self {
            Data::F32(_) => "F32",
            Data::I64(_) => "I64",
        }
    }
    fn bytes(&self) -> &[u8] {
        match self {
            Data::F32(v) => bytemuck::cast_slice(v),
            Data::I64(v) => bytemuck::cast_slice(v),
        }
    }
}

/// One tensor's entry in the header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data_offsets: (u64, u64),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum HeaderValue {
    Metadata(BTreeMap<String, String>),
    Tensor(Entry),
}

/// Serialize named tensors with string metadata, deterministically (see the module docs).
pub fn to_bytes(tensors: &[(String, Vec<usize>, Data<'_>)], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut order: Vec<&(String, Vec<usize>, Data<'_>)> = tensors.iter().collect();
    // Wider dtypes first, so every tensor's data stays aligned to its element size.
    order.sort_by(|a, b| (a.2.dtype() == "F32", &a.0).cmp(&(b.2.dtype() == "F32", &b.0)));
    let mut header = BTreeMap::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".to_string(), HeaderValue::Metadata(metadata.clone()));
    }
    let mut offset = 0u64;
    for (name, shape, data) in &order {
        let want = shape.iter().product::<usize>();
        let have = match data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        };
        if want != have || name == "__metadata__" || header.contains_key(name) {
            return Err(Error::Checkpoint {
                path: String::new(),
                detail: format!("tensor {name:?}: {have} values for shape {shape:?}, or a repeated name"),
            });
        }
        let len = data.bytes().len() as u64;
        let entry = Entry { dtype: data.dtype().into(), shape: shape.clone(), data_offsets: (offset, offset + len) };
        header.insert(name.clone(), HeaderValue::Tensor(entry));
        offset += len;
    }
    let mut json = serde_json::to_vec(&header)
        .map_err(|e| Error::Checkpoint { path: String::new(), detail: format!("header: {e}") })?;
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + json.len() + offset as usize);
    out.extend((json.len() as u64).to_le_bytes());
    out.extend(json);
    for (_, _, data) in order {
        out.extend_from_slice(data.bytes());
    }
    Ok(out)
}

/// What a checkpoint is read from: its file, or its bytes (a file a browser page was given).
trait Source: Read + Seek {}
impl<T: Read + Seek> Source for T {}

/// An open checkpoint whose header has been read and checked; data is read on demand.
pub struct Reader {
    /// The file, or the name the bytes go by (for errors).
    pub path: PathBuf,
    file: Box<dyn Source>,
    /// Where the data section starts in the file.
    data_start: u64,
    pub tensors: BTreeMap<String, Entry>,
    pub metadata: BTreeMap<String, String>,
}

impl Reader {
    /// Open `path` and read its header only.
    pub fn open(path: &Path) -> Result<Reader> {
        let (file, size) = crate::fsio::open_regular(path)?;
        Reader::from_source(path, Box::new(file), size)
    }

    /// Read a checkpoint held in memory (e.g. a file a browser page was given), `name` naming it in
    /// errors; checked exactly as a file is.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<Reader> {
        let size = bytes.len() as u64;
        Reader::from_source(name, Box::new(std::io::Cursor::new(bytes)), size)
    }

    fn from_source(path: &Path, mut file: Box<dyn Source>, size: u64) -> Result<Reader> {
        let bad = |d: String| ckpt_err(path, format!("not a valid safetensors file: {d}"));
        if size < 8 {
            return Err(bad(format!("{size} bytes, too short for the header length")));
        }
        let mut n = [0u8; 8];
        file.read_exact(&mut n).map_err(|e| io_err(path, e))?;
        let n = u64::from_le_bytes(n);
        if n > MAX_HEADER || n > size - 8 {
            return Err(bad(format!(
                "the header length is {n} bytes: over the file's {size} bytes or the cap of {MAX_HEADER}"
            )));
        }
        let mut json = vec![0u8; n as usize];
        file.read_exact(&mut json).map_err(|e| io_err(path, e))?;
        let header: BTreeMap<String, HeaderValue> =
            serde_json::from_slice(&json).map_err(|e| bad(format!("its JSON header: {e}")))?;
        let (mut tensors, mut metadata) = (BTreeMap::new(), BTreeMap::new());
        for (name, v) in header {
            match (name.as_str(), v) {
                ("__metadata__", HeaderValue::Metadata(m)) => metadata = m,
                (_, HeaderValue::Tensor(e)) if name != "__metadata__" => {
                    tensors.insert(name, e);
                }
                _ => return Err(bad(format!("{name:?} is neither a tensor nor the metadata"))),
            }
        }
        check_layout(path, &tensors, size - 8 - n)?;
        Ok(Reader { path: path.to_path_buf(), file, data_start: 8 + n, tensors, metadata })
    }

    /// Read tensor `name`'s raw bytes.
    fn bytes(&mut self, name: &str) -> Result<Vec<u8>> {
        let e = self.tensors.get(name).ok_or_else(|| ckpt_err(&self.path, format!("has no tensor {name}")))?;
        let (a, b) = e.data_offsets;
        let mut buf = vec![0u8; (b - a) as usize];
        self.file.seek(SeekFrom::Start(self.data_start + a)).map_err(|e| io_err(&self.path, e))?;
        self.file.read_exact(&mut buf).map_err(|e| io_err(&self.path, e))?;
        Ok(buf)
    }

    /// Tensor `name` as f32 values.
    pub fn f32(&mut self, name: &str) -> Result<Vec<f32>> {
        self.expect(name, "F32")?;
        Ok(bytemuck::pod_collect_to_vec(&self.bytes(name)?))
    }

    /// Tensor `name` as int64 values.
    pub fn i64(&mut self, name: &str) -> Result<Vec<i64>> {
        self.expect(name, "I64")?;
        Ok(bytemuck::pod_collect_to_vec(&self.bytes(name)?))
    }

    fn expect(&self, name: &str, dtype: &str) -> Result<()> {
        match self.tensors.get(name) {
            Some(e) if e.dtype == dtype => Ok(()),
            Some(e) => Err(ckpt_err(&self.path, format!("{name} is {}, expected {dtype}", e.dtype))),
            None => Err(ckpt_err(&self.path, format!("has no tensor {name}"))),
        }
    }
}

/// Check the entries tile the data section exactly, with sizes that match dtype × shape, and that
/// every dtype is one wgcnn reads.
fn check_layout(path: &Path, tensors: &BTreeMap<String, Entry>, data_len: u64) -> Result<()> {
    let mut spans: Vec<(u64, u64, &String)> = Vec::with_capacity(tensors.len());
    for (name, e) in tensors {
        let width = match e.dtype.as_str() {
            "F32" => 4u64,
            "I64" => 8,
            other => return Err(ckpt_err(path, format!("{name} is {other}, wgcnn reads F32 (and I64 counters)"))),
        };
        let count = e.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        let (a, b) = e.data_offsets;
        if count.and_then(|c| c.checked_mul(width)) != b.checked_sub(a) {
            return Err(ckpt_err(
                path,
                format!("{name}: offsets {a}..{b} do not hold {} of shape {:?}", e.dtype, e.shape),
            ));
        }
        spans.push((a, b, name));
    }
    spans.sort();
    let mut at = 0;
    for (a, b, name) in spans {
        if a != at {
            return Err(ckpt_err(path, format!("{name} starts at byte {a} of the data, expected {at}")));
        }
        at = b;
    }
    if at != data_len {
        return Err(ckpt_err(
            path,
            format!("the tensors cover {at} bytes, the file holds {data_len} after its header"),
        ));
    }
    Ok(())
}

/// A 64-bit FNV-1a digest, as 16 hex digits: ties a model file to its optimizer file.
pub fn digest(parts: &[&[u8]]) -> String {
    let h = parts.iter().fold(crate::fsio::FNV_OFFSET, |h, p| crate::fsio::fnv1a(h, p));
    format!("{h:016x}")
}
