//! Writing results without losing anything: outputs are checked before long work (a real test write,
//! so a read-only folder or a full disk is found before training, not after), written atomically (a
//! temporary file in the same folder, fsync, rename), and only ever onto a regular file or a missing
//! path: a device file, FIFO or folder at the path is refused, never replaced.
//!
//! A symbolic link to a regular file is kept: the file it points at is replaced. Temporary files of a
//! process that died (kill -9) are removed the next time the same path is written.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Error, Result};

fn refuse(path: &Path, why: impl Into<String>) -> Error {
    Error::Io { path: path.display().to_string(), source: std::io::Error::other(why.into()) }
}

/// What kind of thing a path names, in words, for errors ("a directory", "a FIFO", ...).
pub fn kind_of(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device file";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// The file to write for output `path`: `path` itself when it is missing or a regular file, the
/// target of a symbolic link to a regular file; anything else is refused with what it is.
pub fn output_target(path: &Path) -> Result<PathBuf> {
    let link = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return output_dir(path).map(|_| path.to_path_buf()),
        Err(e) => return Err(io_err(path, e)),
    };
    let target = if link.file_type().is_symlink() {
        let resolved = fs::canonicalize(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => refuse(path, "is a dangling symbolic link: refusing to write through it"),
            _ => io_err(path, e),
        })?;
        let meta = fs::metadata(&resolved).map_err(|e| io_err(&resolved, e))?;
        if !meta.is_file() {
            return Err(refuse(
                path,
                format!("links to {}, {}: refusing to replace it", resolved.display(), kind_of(&meta)),
            ));
        }
        resolved
    } else {
        if !link.is_file() {
            return Err(refuse(
                path,
                format!("is {}: refusing to replace it (write to a regular file)", kind_of(&link)),
            ));
        }
        path.to_path_buf()
    };
    output_dir(&target)?;
    Ok(target)
}

/// The folder `path` would be written into, or an error naming it when it does not exist.
pub fn output_dir(path: &Path) -> Result<&Path> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(io_err(dir, std::io::Error::new(std::io::ErrorKind::NotFound, "folder does not exist")));
    }
    Ok(dir)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Check before long work that `path` can be written with about `bytes` bytes: the target is a
/// regular file or missing, and a test file of that size is written, synced and removed beside it.
pub fn check_output(path: &Path, bytes: u64) -> Result<()> {
    let target = output_target(path)?;
    let dir = output_dir(&target)?;
    let probe = dir.join(format!(".{}.probe-{}", file_name(&target), std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&probe)?;
        let block = vec![0u8; 1 << 20];
        let mut left = bytes.max(1);
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            f.write_all(&block[..n])?;
            left -= n as u64;
        }
        f.sync_all()
    })();
    let _ = fs::remove_file(&probe);
    result.map_err(|e| {
        refuse(path, format!("cannot be written ({e}; checked with a {bytes}-byte test write before starting)"))
    })
}

/// Remove temporary and probe files that earlier processes left beside `target` when they were killed.
fn clean_stale(dir: &Path, target: &Path) {
    let prefixes = [format!(".{}.tmp-", file_name(target)), format!(".{}.probe-", file_name(target))];
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = prefixes.iter().find_map(|p| name.strip_prefix(p.as_str())) else { continue };
        if !process_alive(pid) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Whether process `pid` still runs (Linux: `/proc/PID`); where that cannot be told, assume it does.
fn process_alive(pid: &str) -> bool {
    let proc = Path::new("/proc");
    if pid == std::process::id().to_string() || !proc.join("self").exists() {
        return true;
    }
    pid.parse::<u32>().is_ok_and(|p| proc.join(p.to_string()).exists())
}

/// Write `bytes` to `path` atomically (temp file + fsync + rename + folder fsync): a crash leaves
/// either the old file or the new one, whole.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_then(path, bytes, "")
}

/// [`write_atomic`] with a named fault point (see [`crate::fault`]) between the temporary file's
/// sync and the rename.
pub(crate) fn write_atomic_then(path: &Path, bytes: &[u8], fault: &str) -> Result<()> {
    let target = output_target(path)?;
    let dir = output_dir(&target)?;
    clean_stale(dir, &target);
    let tmp = dir.join(format!(".{}.tmp-{}", file_name(&target), std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        crate::fault::point(fault);
        fs::rename(&tmp, &target)?;
        sync_dir(dir);
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

/// Make a rename in `dir` durable (Unix; elsewhere the rename is what the platform offers).
pub(crate) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Open `path` for reading when it is a regular file (following links), with an error saying what
/// it is otherwise: a FIFO would block, a directory or device is not data.
pub fn open_regular(path: &Path) -> Result<(fs::File, u64)> {
    let meta = fs::metadata(path).map_err(|e| match fs::symlink_metadata(path) {
        Ok(l) if l.file_type().is_symlink() && e.kind() == std::io::ErrorKind::NotFound => {
            let to = fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default();
            refuse(path, format!("is a dangling symbolic link (to {to})"))
        }
        _ => io_err(path, e),
    })?;
    if !meta.is_file() {
        return Err(refuse(path, format!("is {}, not a file", kind_of(&meta))));
    }
    let f = fs::File::open(path).map_err(|e| io_err(path, e))?;
    Ok((f, meta.len()))
}

/// FNV-1a's 64-bit offset basis: the starting value of [`fnv1a`].
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bits, continued from `h` over `bytes` (start from [`FNV_OFFSET`]): the one digest of the
/// crate's files (checkpoint digests, the pipeline and data caches' frames and keys).
pub fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A cache folder of wgcnn's: the folder the environment variable `var` names (`off` or `0`: none),
/// else `$XDG_CACHE_HOME/wgcnn` or `~/.cache/wgcnn` (its folder `sub` unless empty); `None` when
/// disabled or there is no home.
pub fn cache_folder(var: &str, sub: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if v == "off" || v == "0" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|d| if sub.is_empty() { d.join("wgcnn") } else { d.join("wgcnn").join(sub) }),
    }
}
