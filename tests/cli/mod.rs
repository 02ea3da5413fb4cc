//! Running the `wgcnn` binary in tests: exit status, output, and the child's peak memory (ru_maxrss
//! from wait4, which is the child's VmHWM), plus small MNIST-format data folders cut from the sample.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One finished run of the binary.
#[derive(Debug)]
pub struct Run {
    /// The exit code, or `None` when a signal ended it (then `signal` says which).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The child's peak resident memory in bytes.
    pub peak_rss: u64,
}

impl Run {
    /// Assert the run failed with exit code `code` and an error mentioning every one of `needles`.
    pub fn fails(&self, code: i32, needles: &[&str]) -> &Run {
        assert_eq!(self.code, Some(code), "expected exit {code}: {self:#?}");
        for n in needles {
            assert!(self.stderr.contains(n), "stderr does not mention {n:?}: {}", self.stderr);
        }
        assert!(!self.stderr.contains("panicked"), "a panic: {}", self.stderr);
        self
    }

    /// Assert the run succeeded.
    pub fn ok(&self) -> &Run {
        assert_eq!(self.code, Some(0), "expected success: {self:#?}");
        self
    }

    /// Its stdout as JSON (`--json`), which must parse.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// Hidden files (temporaries, pending files) in `dir` whose names contain `part`.
pub fn hidden_files(dir: &Path, part: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.contains(part))
        .collect()
}

/// Run `wgcnn ARGS` in `dir` with extra environment `env`; the software adapter is used as in CI.
/// The child is reaped by `wait4` (which also reports its peak memory), not `Child::wait`.
#[allow(clippy::zombie_processes)]
pub fn wgcnn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgcnn"))
        .args(args)
        .current_dir(dir)
        .env("WGCNN_ADAPTER", std::env::var("WGCNN_ADAPTER").unwrap_or_else(|_| "software".into()))
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the wgcnn binary starts");
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                r.read_to_string(&mut s).ok();
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let (status, peak_rss) = wait_with_rusage(child.id() as i32);
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else {
        (None, Some(libc::WTERMSIG(status)))
    };
    Run { code, signal, stdout: out.join().unwrap(), stderr: err.join().unwrap(), peak_rss }
}

/// Wait for `pid` and return its status and peak RSS in bytes.
fn wait_with_rusage(pid: i32) -> (i32, u64) {
    let mut status = 0;
    // SAFETY: a plain wait4 on our own child with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed: {}", std::io::Error::last_os_error());
    (status, usage.ru_maxrss as u64 * 1024)
}

/// A fresh empty folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgcnn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// IDX bytes: magic, dimensions, payload.
pub fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(payload);
    v
}

/// Write a data folder with the first `train` and `test` images of the bundled sample's splits
/// (repeated when more are asked for than it has).
pub fn data_dir(dir: &Path, train: usize, test: usize) -> PathBuf {
    use wgcnn::data::{bundled_dir, load, Split};
    let out = dir.join("data");
    std::fs::create_dir_all(&out).unwrap();
    for (split, n, prefix) in [(Split::Train, train, "train"), (Split::Test, test, "t10k")] {
        let d = load(&bundled_dir(), split).unwrap();
        let item = d.item_size();
        let images: Vec<u8> = (0..n).flat_map(|i| d.image(i % d.len()).to_vec()).collect();
        let labels: Vec<u8> = (0..n).map(|i| d.labels[i % d.len()]).collect();
        assert_eq!(images.len(), n * item);
        std::fs::write(out.join(format!("{prefix}-images-idx3-ubyte")), idx(0x0803, &[n as u32, 28, 28], &images))
            .unwrap();
        std::fs::write(out.join(format!("{prefix}-labels-idx1-ubyte")), idx(0x0801, &[n as u32], &labels)).unwrap();
    }
    out
}

/// The paths as strings, for argument lists.
pub fn s(p: &Path) -> String {
    p.display().to_string()
}
