//! The GL backend next to Vulkan: the same training on both, and one context shared by threads.
//!
//! One context shared by threads while one of them runs a long submit. On wgpu's GL backend the
//! context sits behind a lock whose waiters panic after 6 s ("Could not lock adapter context"), so a
//! submit of more than 6 s used to kill any thread that only wanted to create, fill, run or release a
//! buffer meanwhile; wgcnn now serialises its GPU calls there (`Context::serial`). On the other backends
//! the same test checks that sharing a context between threads gives correct results.

#[cfg(unix)]
mod cli;
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use wgcnn::kernels::activation::{activation_forward, Activation};
use wgcnn::kernels::conv::conv2d_forward;
use wgcnn::reference as cpu;
use wgcnn::shape::Conv2dGeom;

/// How long the long submit lasts: past wgpu's 6 s GL lock timeout.
const LONG: Duration = Duration::from_secs(8);

#[test]
fn a_long_submit_does_not_starve_the_other_threads() {
    let c = ctx();
    // The plain conv kernel (one output per invocation): slow enough to calibrate a long submit.
    let g = Conv2dGeom::square(8, 16, 28, 28, 32, 5, 1, 2);
    let mut r = rng(5);
    let (x, w, b) = (r.vec_f32(g.x_len(), -1.0, 1.0), r.vec_f32(g.w_len(), -1.0, 1.0), r.vec_f32(g.c_out, -1.0, 1.0));
    let (xt, wt, bt) = (upload("x", &[g.x_len()], &x), upload("w", &[g.w_len()], &w), upload("b", &[g.c_out], &b));
    let yt = zeros("y", &[g.y_len()]);
    let conv = conv2d_forward(c, "long", &g, &xt, &wt, &bt, &yt).unwrap();
    let t = Instant::now();
    c.run(&[&conv]).unwrap();
    c.wait().unwrap();
    let once = t.elapsed().max(Duration::from_millis(1));
    let repeats = (LONG.as_secs_f64() / once.as_secs_f64()).ceil().clamp(1.0, 100_000.0) as usize;
    let want = cpu::conv2d_forward(&g, &to_f64(&x), &to_f64(&w), &to_f64(&b));

    let done = AtomicBool::new(false);
    let (long_took, others) = std::thread::scope(|s| {
        let long = s.spawn(|| {
            let t = Instant::now();
            c.run(&vec![&conv; repeats]).unwrap();
            c.wait().unwrap();
            let took = t.elapsed();
            done.store(true, Ordering::SeqCst);
            took
        });
        let workers: Vec<_> = (0..3u64)
            .map(|i| {
                let done = &done;
                s.spawn(move || {
                    let mut rounds = 0;
                    let mut r = rng(50 + i);
                    // At least one round each, started while the long submit is (most likely) running.
                    while rounds == 0 || !done.load(Ordering::SeqCst) {
                        let v = r.vec_f32(1000, -1.0, 1.0);
                        let (vt, out) = (upload("v", &[1000], &v), zeros("relu", &[1000]));
                        let l = activation_forward(c, "relu", Activation::Relu, &vt, &out).unwrap();
                        let got = run_f32(Ok(l), &out);
                        check(&format!("relu/thread{i}"), &got, &cpu::relu_forward(&to_f64(&v)), F32_TOL);
                        rounds += 1;
                    }
                    rounds
                })
            })
            .collect();
        (long.join().unwrap(), workers.into_iter().map(|w| w.join().unwrap()).collect::<Vec<usize>>())
    });
    eprintln!("long submit: {repeats} x {once:?} = {long_took:?}; rounds of the other threads: {others:?}");
    check("conv2d_forward/long", &yt.to_f32(c).unwrap(), &want, F32_TOL);
    assert!(others.iter().all(|&n| n >= 1));
}

/// `wgcnn train` through llvmpipe's OpenGL gives the loss and accuracy it gives through lavapipe's
/// Vulkan: the same WGSL, translated to GLSL instead of SPIR-V. Linux only, where wgpu reaches GL
/// through EGL (`.ci/run` installs Mesa's EGL and GL drivers).
#[cfg(target_os = "linux")]
#[test]
fn gl_trains_to_the_same_loss_as_vulkan() {
    let dir = cli::scratch("backends");
    let data = cli::data_dir(&dir, 1024, 256);
    let run = |backend: &str| {
        let args = ["train", "--data", &cli::s(&data), "--epochs", "2", "--batch-size", "32", "--json"];
        let r = cli::wgcnn(&dir, &args, &[("WGPU_BACKEND", backend), ("WGCNN_ADAPTER", "software")]);
        r.ok();
        let j = r.json();
        assert!(j["adapter"].as_str().unwrap().contains("llvmpipe"), "{backend}: {j}");
        let e = &j["epochs"][1];
        [e["train_loss"].as_f64().unwrap(), j["test_loss"].as_f64().unwrap(), j["test_accuracy"].as_f64().unwrap()]
    };
    let (vk, gl) = (run("vulkan"), run("gl"));
    eprintln!("second epoch's [train loss, test loss, test accuracy]: vulkan {vk:?}, gl {gl:?}");
    // 64 steps of the default SGD move the test loss well below ln 10 = 2.3026 (measured: 2.19).
    assert!(gl[1] < 2.25 && gl[2] > 0.2, "64 steps on GL should learn: {gl:?}");
    // Two shader compilers (SPIR-V and GLSL into the same LLVM) may round differently: 1e-4 relative.
    for (a, b) in vk.iter().zip(&gl) {
        assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "vulkan {vk:?} vs gl {gl:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The driver's pipeline cache on disk (Vulkan): written at the end of a run, framed with wgcnn's
/// magic, length and digest; a damaged file is ignored with a warning and replaced; `off` writes none.
#[cfg(unix)]
#[test]
fn the_pipeline_cache_file_is_written_checked_and_replaced() {
    let dir = cli::scratch("pipeline-cache");
    let cache = dir.join("cache");
    let folder = cli::s(&cache);
    let env = [("WGPU_BACKEND", "vulkan"), ("WGCNN_PIPELINE_CACHE", folder.as_str()), ("RUST_LOG", "wgcnn=info")];
    let train = ["train", "--steps", "1", "--json"];
    cli::wgcnn(&dir, &train, &env).ok();
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    assert!(file.file_name().unwrap().to_string_lossy().starts_with("wgpu_pipeline_cache_vulkan_"));
    let bytes = std::fs::read(file).unwrap();
    assert_eq!(&bytes[..8], b"WGCNNPC1");
    assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().unwrap()), bytes.len() as u64 - 24);
    // The second run loads it.
    let r = cli::wgcnn(&dir, &train, &env);
    r.ok();
    assert!(r.stderr.contains(&format!("{} bytes loaded", bytes.len() - 24)), "{}", r.stderr);
    // One flipped byte of wgpu's data: ignored, the run succeeds, and the file is intact again.
    let mut bad = bytes.clone();
    *bad.last_mut().unwrap() ^= 0x55;
    std::fs::write(file, &bad).unwrap();
    let r = cli::wgcnn(&dir, &train, &env);
    r.ok();
    assert!(r.stderr.contains("not an intact wgcnn cache file"), "{}", r.stderr);
    assert_eq!(std::fs::read(file).unwrap(), bytes);
    // Disabled: nothing is written.
    let off = dir.join("off");
    cli::wgcnn(&dir, &train, &[("WGPU_BACKEND", "vulkan"), ("WGCNN_PIPELINE_CACHE", "off"), ("HOME", &cli::s(&off))])
        .ok();
    assert!(!off.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A machine with only OpenGL: with no Vulkan driver to be found (the loader pointed at a missing
/// one) and `WGPU_BACKEND` unset, wgcnn falls back to GL and trains there.
#[cfg(target_os = "linux")]
#[test]
fn without_vulkan_wgcnn_falls_back_to_gl() {
    let dir = cli::scratch("gl-fallback");
    let missing = dir.join("no-such-icd.json");
    let missing = cli::s(&missing);
    let env = [("VK_ICD_FILENAMES", missing.as_str()), ("VK_DRIVER_FILES", missing.as_str()), ("WGPU_BACKEND", "")];
    let info = cli::wgcnn(&dir, &["info"], &env);
    info.ok();
    assert!(info.stdout.lines().any(|l| l.starts_with("backend") && l.contains("Gl")), "{}", info.stdout);
    let r = cli::wgcnn(&dir, &["train", "--steps", "3", "--json"], &env);
    r.ok();
    assert!(r.json()["adapter"].as_str().unwrap().contains("llvmpipe"));
    let _ = std::fs::remove_dir_all(&dir);
}
