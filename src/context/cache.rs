//! wgpu's pipeline cache kept on disk, where the backend has one (Vulkan): the driver's compiled
//! pipelines of one run are handed to the next, so its first step need not compile them again.
//!
//! `WGCNN_PIPELINE_CACHE` names the folder (`off` disables it); unset, it is `$XDG_CACHE_HOME/wgcnn`
//! or `~/.cache/wgcnn`. One file per adapter (wgpu's `pipeline_cache_key`: backend, vendor, device),
//! framed by wgcnn: a magic, the length and an FNV-1a digest of wgpu's data, which wgpu checks only
//! by its header. A file that is missing, damaged or from another driver is ignored (the cache starts
//! empty) and replaced at the next save; a cache that cannot be saved is a warning, never an error.

use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"WGCNNPC1";
/// The largest cache file read (a driver's cache of wgcnn's ~200 pipelines is a few MiB).
const MAX_BYTES: u64 = 256 << 20;

/// The pipeline cache of a context and the file it is loaded from and saved to.
pub(crate) struct DiskCache {
    pub(crate) cache: wgpu::PipelineCache,
    path: PathBuf,
    /// The digest of the data last loaded or saved: a save of unchanged data writes nothing.
    digest: Option<u64>,
}

fn fnv(bytes: &[u8]) -> u64 {
    crate::fsio::fnv1a(crate::fsio::FNV_OFFSET, bytes)
}

/// The cache folder from `WGCNN_PIPELINE_CACHE` or the platform's cache home; `None` when disabled.
fn folder() -> Option<PathBuf> {
    crate::fsio::cache_folder("WGCNN_PIPELINE_CACHE", "")
}

/// wgpu's data from a framed file, or `None` (logged) when it is missing or not intact.
fn read_framed(path: &Path) -> Option<Vec<u8>> {
    let (_, len) = crate::fsio::open_regular(path).ok()?;
    if len > MAX_BYTES {
        log::warn!("pipeline cache {}: {len} bytes, over the {MAX_BYTES}-byte cap; ignored", path.display());
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let intact = bytes.len() >= 24 && &bytes[..8] == MAGIC && {
        let n = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
        let d = u64::from_le_bytes(bytes[16..24].try_into().ok()?);
        n == (bytes.len() - 24) as u64 && d == fnv(&bytes[24..])
    };
    if !intact {
        log::warn!("pipeline cache {}: not an intact wgcnn cache file; ignored and replaced", path.display());
        return None;
    }
    Some(bytes[24..].to_vec())
}

impl DiskCache {
    /// The cache for `info`'s adapter when the device has `PIPELINE_CACHE` and a cache folder is set.
    pub(crate) fn open(device: &wgpu::Device, info: &wgpu::AdapterInfo) -> Option<DiskCache> {
        if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
            return None;
        }
        let key = wgpu::util::pipeline_cache_key(info)?;
        let path = folder()?.join(format!("{key}.bin"));
        let data = read_framed(&path);
        let digest = data.as_deref().map(fnv);
        #[allow(unsafe_code)]
        // SAFETY: wgpu requires the data to come from `PipelineCache::get_data` of an earlier cache.
        // It does: wgcnn writes these files only from `get_data` (`save`), atomically, framed with
        // the data's length and digest, which `read_framed` checks; wgpu then checks its own header
        // (magic, version, backend, adapter and driver keys) and `fallback` starts an empty cache
        // when that does not match.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("wgcnn.pipelines"),
                data: data.as_deref(),
                fallback: true,
            })
        };
        log::info!(
            "pipeline cache {}: {}",
            path.display(),
            data.map_or("empty".into(), |d| format!("{} bytes loaded", d.len()))
        );
        Some(DiskCache { cache, path, digest })
    }

    /// Write the cache's current data when it changed since it was loaded or last saved; `Ok(false)`
    /// when there was nothing new.
    pub(crate) fn save(&mut self) -> crate::Result<bool> {
        let Some(data) = self.cache.get_data() else { return Ok(false) };
        let digest = fnv(&data);
        if self.digest == Some(digest) {
            return Ok(false);
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| crate::Error::Io { path: dir.display().to_string(), source: e })?;
        }
        let mut framed = Vec::with_capacity(24 + data.len());
        framed.extend_from_slice(MAGIC);
        framed.extend_from_slice(&(data.len() as u64).to_le_bytes());
        framed.extend_from_slice(&digest.to_le_bytes());
        framed.extend_from_slice(&data);
        crate::fsio::write_atomic(&self.path, &framed)?;
        self.digest = Some(digest);
        Ok(true)
    }
}
