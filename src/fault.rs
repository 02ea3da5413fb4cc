//! Fault injection for the crash tests (`tests/faults.rs`): `WGCNN_FAULT=NAME` makes the process kill
//! itself with SIGKILL when it reaches the point `NAME` (e.g. between the two files of a save), and
//! `WGCNN_FAULT=sigint@STEP` (or `sigterm@STEP`) sends it SIGINT (SIGTERM) after training step `STEP`,
//! as a user's Ctrl-C (or a job scheduler) would.
//! Unset (the normal case) every point is one cached environment lookup.

use std::sync::OnceLock;

fn wanted() -> Option<&'static str> {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    FAULT.get_or_init(|| std::env::var("WGCNN_FAULT").ok().filter(|v| !v.is_empty())).as_deref()
}

fn signal_self(signal: &str) {
    // `kill` rather than a libc call: the library denies unsafe code (two reviewed exceptions, the
    // pipeline cache and the shader modules' runtime checks).
    let _ = std::process::Command::new("kill").args([signal, &std::process::id().to_string()]).status();
}

/// Die here, as `kill -9` would, when `WGCNN_FAULT` names this point.
pub fn point(name: &str) {
    if !name.is_empty() && wanted() == Some(name) {
        log::warn!("WGCNN_FAULT={name}: killing this process");
        signal_self("-KILL");
        std::thread::sleep(std::time::Duration::from_secs(60)); // the signal arrives meanwhile
    }
}

/// Interrupt the run after global training step `step` when `WGCNN_FAULT=sigint@STEP` or
/// `sigterm@STEP`.
pub fn after_step(step: usize) {
    let Some((signal, at)) = wanted().and_then(|w| w.split_once('@')) else { return };
    if at.parse() == Ok(step) {
        match signal {
            "sigint" => signal_self("-INT"),
            "sigterm" => signal_self("-TERM"),
            _ => {}
        }
    }
}
