// Shared by the targets: the readers under test take paths, as the CLI gives them, so each input is
// written to a file in memory-backed /dev/shm (or the temp folder) first.

use std::path::PathBuf;

pub fn input_file(name: &str, data: &[u8]) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let dir = base.join(format!("wgcnn-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}
