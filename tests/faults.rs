//! Crashes and interruptions, injected at chosen moments (`WGCNN_FAULT`, see `src/fault.rs`):
//!
//! - kill -9 at every step of a checkpoint save leaves a model and optimizer file that load as a pair;
//! - SIGINT mid-epoch saves a checkpoint that `--resume` continues to the bytes an uninterrupted run
//!   writes, and so does stopping after one epoch of two (2 epochs == 1 + 1).
#![cfg(unix)]

mod cli;

use cli::*;

#[test]
fn kill_9_during_a_save_leaves_a_consistent_pair() {
    let dir = scratch("kill9");
    let data = data_dir(&dir, 96, 32);
    let d = s(&data);
    for point in ["optim-pending", "before-model", "model-tmp", "model-committed"] {
        let ck = dir.join(format!("{point}.safetensors"));
        let c = s(&ck);
        wgcnn(&dir, &["train", "--data", &d, "--steps", "2", "--save", &c], &[]).ok();
        let old = std::fs::read(&ck).unwrap();
        // A second, longer run dies at `point` while saving over the first.
        let r = wgcnn(&dir, &["train", "--data", &d, "--steps", "4", "--save", &c], &[("WGCNN_FAULT", point)]);
        assert_eq!(r.signal, Some(libc::SIGKILL), "{point}: killed by the fault: {r:#?}");
        let committed = std::fs::read(&ck).unwrap() != old;
        assert_eq!(committed, point == "model-committed", "{point}: the model file is old or new, whole");
        // Whatever is on disk loads as a pair: the model evaluates, and training from it restores the
        // optimizer state that belongs to it (a mixed pair is an error, which would fail here).
        wgcnn(&dir, &["eval", "--model", &c, "--data", &d], &[]).ok();
        let r = wgcnn(&dir, &["train", "--init", &c, "--data", &d, "--steps", "1"], &[]);
        r.ok();
        assert!(r.stderr.contains("resumed optimizer state at step"), "{point}: {}", r.stderr);
        if committed {
            assert!(r.stderr.contains("completed a save"), "{point}: rolled forward: {}", r.stderr);
        }
        // The next save leaves no temporary or pending file behind.
        wgcnn(&dir, &["train", "--init", &c, "--data", &d, "--steps", "1", "--save", &c], &[]).ok();
        let stray = hidden_files(&dir, point);
        assert!(stray.is_empty(), "{point}: left behind {stray:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_model_file_with_another_saves_optimizer_file_is_refused() {
    let dir = scratch("pair");
    let data = data_dir(&dir, 64, 32);
    let d = s(&data);
    wgcnn(&dir, &["train", "--data", &d, "--steps", "2", "--save", "a.safetensors"], &[]).ok();
    wgcnn(&dir, &["train", "--data", &d, "--steps", "3", "--save", "b.safetensors"], &[]).ok();
    std::fs::copy(dir.join("b.optim.safetensors"), dir.join("a.optim.safetensors")).unwrap();
    wgcnn(&dir, &["train", "--init", "a.safetensors", "--data", &d, "--steps", "1"], &[])
        .fails(1, &["a.optim.safetensors", "does not belong to a.safetensors", "Delete it"]);
    std::fs::remove_dir_all(&dir).ok();
}

/// The model and optimizer files of checkpoint `name` in `dir`.
fn pair(dir: &std::path::Path, name: &str) -> (Vec<u8>, Vec<u8>) {
    let read = |n: String| std::fs::read(dir.join(n)).unwrap();
    (read(format!("{name}.safetensors")), read(format!("{name}.optim.safetensors")))
}

#[test]
fn sigint_mid_epoch_saves_a_checkpoint_that_resumes_bit_identically() {
    let dir = scratch("sigint");
    let data = data_dir(&dir, 200, 32); // 7 steps of 32 per epoch, the last one partial
    let d = s(&data);
    let run = ["train", "--data", &d, "--epochs", "2", "--batch-size", "32", "--optimizer", "adam"];
    wgcnn(&dir, &[&run[..], &["--save", "whole.safetensors"]].concat(), &[]).ok();
    let r = wgcnn(&dir, &[&run[..], &["--save", "cut.safetensors"]].concat(), &[("WGCNN_FAULT", "sigint@3")]);
    r.fails(130, &["interrupted", "cut.safetensors", "--resume"]);
    assert!(pair(&dir, "cut") != pair(&dir, "whole"), "stopped early");
    let r = wgcnn(
        &dir,
        &["train", "--init", "cut.safetensors", "--resume", "--data", &d, "--save", "cut.safetensors"],
        &[],
    );
    r.ok();
    assert!(r.stderr.contains("resuming the saved run at epoch 1"), "{}", r.stderr);
    assert!(pair(&dir, "cut") == pair(&dir, "whole"), "resumed == uninterrupted, byte for byte");
    // SIGTERM (a job scheduler's stop) is handled as SIGINT: saved, exit 130, resumable.
    let r = wgcnn(&dir, &[&run[..], &["--save", "term.safetensors"]].concat(), &[("WGCNN_FAULT", "sigterm@9")]);
    r.fails(130, &["interrupted", "term.safetensors"]);
    wgcnn(&dir, &["train", "--init", "term.safetensors", "--resume", "--data", &d, "--save", "term.safetensors"], &[])
        .ok();
    assert!(pair(&dir, "term") == pair(&dir, "whole"), "resumed after SIGTERM == uninterrupted");
    // Resuming a finished run says so.
    wgcnn(&dir, &["train", "--init", "whole.safetensors", "--resume", "--data", &d], &[]).fails(1, &["complete"]);
    // Resuming on other data is refused.
    let other = data_dir(&dir.join("other"), 100, 32);
    wgcnn(&dir, &["train", "--init", "cut.safetensors", "--resume", "--epochs", "3", "--data", &s(&other)], &[])
        .fails(1, &["not the run's"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn two_epochs_equal_one_plus_one_with_the_cosine_schedule() {
    let dir = scratch("one-plus-one");
    let data = data_dir(&dir, 128, 32);
    let d = s(&data);
    let run = ["train", "--data", &d, "--epochs", "2", "--schedule", "cosine", "--save-every-epoch"];
    wgcnn(&dir, &[&run[..], &["--save", "whole.safetensors"]].concat(), &[]).ok();
    // SIGINT during the last step of epoch 1 (step 4 of 4): the run stops at the epoch's end.
    let r = wgcnn(&dir, &[&run[..], &["--save", "half.safetensors"]].concat(), &[("WGCNN_FAULT", "sigint@4")]);
    r.fails(130, &["interrupted"]);
    wgcnn(&dir, &["train", "--init", "half.safetensors", "--resume", "--data", &d, "--save", "half.safetensors"], &[])
        .ok();
    assert!(pair(&dir, "half") == pair(&dir, "whole"), "1 + 1 epochs == 2 epochs, byte for byte");
    std::fs::remove_dir_all(&dir).ok();
}
