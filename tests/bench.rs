//! The measurement helpers behind `wgcnn bench` and a smoke run of the command itself (tiny sizes;
//! what is checked is the shape and sanity of the figures, never a speed).

mod common;

use common::*;
use wgcnn::bench::{peak_rss_bytes, process_age, profile_launches, time_inference, time_training, TimingSource};
use wgcnn::data::{self, Split};
use wgcnn::kernels::optim::Sgd;
use wgcnn::model::{init_params, lenet5, LeNetConfig};
use wgcnn::train::{Evaluator, Optimizer, Trainer};

fn sgd() -> Optimizer {
    Optimizer::Sgd(Sgd { lr: 0.01, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false })
}

#[test]
fn training_and_inference_timers_report_every_window() {
    let c = ctx();
    let train = data::load(&data::bundled_dir(), Split::Train).unwrap();
    let test = data::load(&data::bundled_dir(), Split::Test).unwrap();
    let spec = lenet5(LeNetConfig::default());
    let init = init_params(&spec.params(), 1);
    let mut trainer = Trainer::new(c, spec.clone(), &train, 16, sgd(), &init).unwrap();
    let t = time_training(c, &mut trainer, 1, 3, 2).unwrap();
    assert_eq!(t.windows.len(), 3);
    assert!(t.windows.iter().all(|r| r.is_finite() && *r > 0.0), "{:?}", t.windows);
    let (lo, hi) = t.windows.iter().fold((f64::MAX, 0.0f64), |(l, h), &r| (l.min(r), h.max(r)));
    assert!(t.median >= lo && t.median <= hi);
    assert_eq!(trainer.optim.step, 7, "warm-up and timed steps are real optimizer steps");

    let eval = Evaluator::new(c, &spec, &trainer.params, &test, 500).unwrap();
    let i = time_inference(c, &eval, 2).unwrap();
    assert_eq!(i.windows.len(), 2);
    assert!(i.median > 0.0);
}

#[test]
fn profile_times_every_launch_of_a_step() {
    let c = ctx();
    let train = data::load(&data::bundled_dir(), Split::Train).unwrap();
    let spec = lenet5(LeNetConfig::default());
    let mut trainer = Trainer::new(c, spec.clone(), &train, 8, sgd(), &init_params(&spec.params(), 2)).unwrap();
    trainer.start_epoch(c, None).unwrap();
    trainer.step(c, 0).unwrap();
    let launches = trainer.step_launches();
    let dispatches: usize = launches.iter().map(|l| l.dispatches()).sum();
    assert_eq!(dispatches, trainer.dispatches_per_step());
    let (source, rows) = profile_launches(c, &launches, 2).unwrap();
    if c.features.contains(wgcnn::wgpu::Features::TIMESTAMP_QUERY) {
        assert_eq!(source, TimingSource::Timestamps);
    }
    assert_eq!(rows.len(), launches.len());
    for (r, l) in rows.iter().zip(&launches) {
        assert_eq!(r.label, l.label);
        assert!(r.seconds.is_finite() && r.seconds >= 0.0, "{}: {}", r.label, r.seconds);
    }
    assert!(rows.iter().map(|r| r.seconds).sum::<f64>() > 0.0);
    // The step's useful work: ≈ 2.26 MFLOP per image for this LeNet-5.
    let flops: u64 = rows.iter().map(|r| r.flops).sum();
    let per_image = flops as f64 / 8.0;
    assert!((2.0e6..2.5e6).contains(&per_image), "{per_image} FLOP per image");
}

#[test]
fn host_figures_come_from_proc() {
    let rss = peak_rss_bytes().expect("Linux reports VmHWM");
    assert!(rss > 1 << 20, "{rss} bytes");
    let age = process_age().expect("Linux reports the start time");
    assert!((0.0..3600.0).contains(&age), "{age} s");
}

/// The number after `"key":` in a flat JSON text.
fn number_after(json: &str, key: &str) -> f64 {
    let at = json.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {json}"));
    let rest = &json[at + key.len() + 3..];
    let end = rest.find([',', '}', ']']).unwrap();
    rest[..end].parse().unwrap_or_else(|_| panic!("{key}: {}", &rest[..end]))
}

#[test]
fn bench_command_smoke_run_prints_one_json_object() {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_wgcnn")).args(["bench", "--smoke", "--json"]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let json = stdout.trim();
    assert!(json.starts_with('{') && json.ends_with('}') && json.lines().count() == 1, "{json}");
    assert!(json.contains("\"training\":[{\"batch\":8,"), "{json}");
    assert!(number_after(json, "images_per_sec") > 0.0);
    assert_eq!(number_after(json, "submits_per_step"), 1.0);
    assert!(number_after(json, "dispatches_per_step") >= 20.0);
    assert!(number_after(json, "first_step_seconds") > 0.0);
    assert!(number_after(json, "gpu_bytes_allocated") > 0.0);
    assert!(number_after(json, "total_ms") > 0.0);
    assert!(json.contains("\"kernel\":\"conv2d_"), "the per-kernel table names the kernels: {json}");
    // The adapter's ceiling (a 128³ product in a smoke run, timed after the one window) and each
    // row's share of it.
    assert_eq!(number_after(json, "ceiling_side"), 128.0);
    let (ceiling, gflops) = (number_after(json, "ceiling_gflops"), number_after(json, "gflops"));
    assert!(ceiling > 0.0, "{json}");
    let fraction = number_after(json, "ceiling_fraction");
    assert!((fraction - gflops / ceiling).abs() <= 1e-9 * fraction.max(1.0), "{fraction} vs {gflops} / {ceiling}");
}

#[test]
fn the_ceiling_is_the_best_product_on_the_adapter() {
    // `time_ceiling` times the product the fast kernel set picks for 256³ and gives each run's GFLOP/s;
    // `wgcnn bench --ceiling --json` reports the 1024³ one.
    let t = wgcnn::bench::time_ceiling(ctx(), 256, 3).unwrap();
    assert_eq!(t.windows.len(), 3);
    assert!(t.windows.iter().all(|g| g.is_finite() && *g > 0.0), "{:?}", t.windows);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgcnn"))
        .args(["bench", "--ceiling", "--json", "--windows", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(number_after(stdout.trim(), "side"), 1024.0);
    assert!(number_after(stdout.trim(), "gflops") > 0.0, "{stdout}");
}

#[test]
fn bench_zoo_times_every_model_file_of_a_folder() {
    // Two model files (LeNet-5 and the residual one) in a folder of their own, a smoke run: one table
    // row per model and batch size, each with its fraction of the ceiling; the PyTorch columns hold
    // figures where python3 imports torch and "-" with a line saying it was skipped where not. The
    // JSON form lists each model's whole report and the tuned launches.
    let dir = std::env::temp_dir().join(format!("wgcnn-zoo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    for m in ["lenet5.toml", "residual-mini.toml"] {
        std::fs::copy(models.join(m), dir.join(m)).unwrap();
    }
    std::fs::write(dir.join("notes.txt"), "not a model").unwrap();
    let zoo = dir.to_str().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgcnn"))
        .args(["bench", "--zoo", zoo, "--smoke"])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8_lossy(&out.stderr).to_string());
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("zoo       2 model files"), "{stderr}");
    let torch = !stderr.contains("PyTorch   skipped: python3 cannot import torch");
    let rows: Vec<&str> =
        stdout.lines().filter(|l| l.starts_with("lenet5 ") || l.starts_with("residual-mini ")).collect();
    assert_eq!(rows.len(), 2, "one row per model at batch 8: {stdout}");
    for r in &rows {
        let cells: Vec<&str> = r.split_whitespace().collect();
        assert_eq!(cells[1], "8", "{r}");
        // images/s, the ceiling timed beside this model's windows, and the fraction of it.
        assert!(cells[2].parse::<f64>().unwrap() > 0.0 && cells[4].parse::<f64>().unwrap() > 0.0, "{r}");
        assert!(cells[5].ends_with('%'), "{r}");
        assert_eq!(cells[8] != "-", torch, "PyTorch column where torch imports, '-' where not: {r}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgcnn"))
        .args(["bench", "--zoo", zoo, "--smoke", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|m| m["report"]["training"][0]["images_per_sec"].as_f64().unwrap() > 0.0), "{json}");
    assert!(list[0]["report"]["tuned"].as_array().is_some_and(|t| !t.is_empty()), "{json}");
    // Each model's rows carry the ceiling timed after each of its windows, and the fraction of it.
    for m in list {
        let row = &m["report"]["training"][0];
        assert_eq!(row["ceilings"].as_array().map(Vec::len), Some(1), "{json}");
        let fraction = row["ceiling_fraction"].as_f64().unwrap();
        let expect = row["gflops"].as_f64().unwrap() / row["ceilings"][0].as_f64().unwrap();
        assert!((fraction - expect).abs() <= 1e-9 * fraction.max(1.0), "{fraction} vs {expect}");
        assert_eq!(m["ceiling_fraction"][0].as_f64(), Some(fraction), "{json}");
    }
    // An empty folder is an error that says so.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgcnn"))
        .args(["bench", "--zoo", empty.to_str().unwrap(), "--smoke"])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no model files"));
    let _ = std::fs::remove_dir_all(&dir);
}
