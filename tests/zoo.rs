//! The model zoo (`models/*.toml`) and batch-norm end to end: the GPU trainer against the CPU reference
//! trainer on resnet-mini and inception-mini (loss, every gradient, parameters and running statistics),
//! evaluation from the running statistics, checkpoints with int64 counters, and determinism of every
//! model file.

mod common;

use common::trainer::RefTrainer;
use common::*;
use wgcnn::ir::{build, interp, Role, ValueId};
use wgcnn::model::{file, init_params, ModelSpec};
use wgcnn::train::{Optimizer, Trainer};

fn zoo(name: &str) -> ModelSpec {
    file::load(std::path::Path::new(&format!("models/{name}.toml"))).unwrap()
}

/// Every model file of `models/`, by name.
fn model_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("models")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".toml").map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn resnet_and_inception_minis_match_the_cpu_reference_trainer() {
    // 6 images in batches of 4: steps of 4, the partial 2, then 4 again (both graphs). SGD with momentum;
    // the reference updates with the GPU's gradients (checked against its own every step), so both
    // start each step from the same weights: with batch-norm every activation sits near the ReLU's
    // kink, and f32-vs-f64 weight drift would flip single ReLUs and test rounding, not the engine.
    // Losses to 1e-5 relative; gradients F32_TOL (as the kernels); after 3 updates, parameters to
    // 1e-6 + 1e-6·|w| and running statistics (updated by each step's batch statistics) to
    // 1e-5 + 1e-4·|value|.
    let data = sample(6);
    let c = ctx();
    for name in ["resnet-mini", "inception-mini"] {
        let spec = zoo(name);
        let specs = spec.params();
        let init = init_params(&specs, 13);
        let mut t = Trainer::new(c, spec.clone(), &data, 4, sgd(), &init).unwrap();
        t.start_epoch(c, None).unwrap();
        let mut r = RefTrainer::new(&spec, &init, sgd());
        let item = spec.input.iter().product::<usize>();
        for (s, (first, b)) in [(0usize, 4usize), (4, 2), (0, 4)].into_iter().enumerate() {
            assert_eq!(t.step(c, s % 2).unwrap(), b);
            let gpu_loss = t.metrics.take(c).unwrap().0 / b as f64;
            let gpu_grads = t.params.grads.read(c).unwrap();
            let x: Vec<f64> =
                data.images[first * item..(first + b) * item].iter().map(|&v| f64::from(v as f32 / 255.0)).collect();
            let labels: Vec<u32> = data.labels[first..first + b].iter().map(|&l| u32::from(l)).collect();
            let (want, ref_grads) = r.step(&x, &labels, Some(&gpu_grads));
            let tol = Tol { atol: 1e-5, rtol: 1e-5 };
            check(&format!("zoo loss/{name}/step{}", s + 1), &[gpu_loss as f32], &[want], tol);
            for (i, p) in specs.iter().enumerate() {
                check(&format!("zoo grad/{name}/step{}/{}", s + 1, p.name), &gpu_grads[i], &ref_grads[i], F32_TOL);
            }
        }
        let gpu_params = t.params.values.read(c).unwrap();
        for (i, p) in specs.iter().enumerate() {
            let tol = Tol { atol: 1e-6, rtol: 1e-6 };
            check(&format!("zoo params/{name}/{}", p.name), &gpu_params[i], &to_f64(&r.params[i]), tol);
        }
        let gpu_buffers = t.params.buffers.read(c).unwrap();
        assert!(!gpu_buffers.is_empty(), "{name} has batch-norm layers");
        for (i, b) in spec.buffers().iter().enumerate() {
            let tol = Tol { atol: 1e-5, rtol: 1e-4 };
            check(&format!("zoo buffers/{name}/{}", b.name), &gpu_buffers[i], &r.buffers[i], tol);
        }
        assert!(t.params.tracked.iter().all(|(_, n)| *n == 3), "num_batches_tracked counts the 3 steps");
    }
}

#[test]
fn evaluation_normalises_with_the_running_statistics() {
    // After a few training steps (so the running statistics are not their defaults), the GPU's forward
    // graph in evaluation form (each batch-norm folded into its conv) against the unfused graph
    // interpreted on the CPU with the GPU's parameters and buffers: probabilities to F32_TOL.
    let c = ctx();
    let data = sample(16);
    let spec = zoo("resnet-mini");
    let (_, t) = gpu_steps(&spec, &data, 8, sgd(), &init_params(&spec.params(), 2), 4);
    let (params, buffers) = (t.params.values.read(c).unwrap(), t.params.buffers.read(c).unwrap());
    assert!(buffers.iter().any(|b| b.iter().any(|&v| v != 0.0 && v != 1.0)), "the running statistics moved");
    let n = 3;
    let item = spec.input.iter().product::<usize>();
    let inputs: Vec<Vec<f32>> =
        (0..n).map(|i| data.images[i * item..(i + 1) * item].iter().map(|&v| f32::from(v) / 255.0).collect()).collect();
    let got: Vec<f32> = wgcnn::train::predict(c, &spec, &t.params, &inputs).unwrap().concat();
    // With the fast kernels every conv + batch-norm pair of resnet-mini is folded into one conv.
    let metrics = wgcnn::graph::Metrics::new(c, "m").unwrap();
    let g = wgcnn::graph::Graph::build(c, &spec, &t.params, &metrics, n, false).unwrap();
    let folds = g.rewrites.iter().filter(|(rule, _)| *rule == "conv_bn_fold").count();
    assert_eq!(folds, spec.tracked().len(), "{:?}", g.rewrites);
    let f = build::forward(&spec, n, false).unwrap();
    let mut feeds = vec![(f.input, to_f64(&inputs.concat())), (f.labels, vec![0.0; n])];
    feeds.extend(f.ir.params().into_iter().zip(&params).map(|(v, p)| (v, to_f64(p))));
    for (k, b) in buffers.iter().enumerate() {
        let v = f.ir.values.iter().position(|v| v.role == Role::Buffer(k)).unwrap();
        feeds.push((ValueId(v as u32), to_f64(b)));
    }
    let values = interp::run(&f.ir, &feeds).unwrap();
    check("resnet-mini eval probabilities", &got, values.get(f.probs).unwrap(), F32_TOL);
}

#[test]
fn checkpoints_keep_running_statistics_and_int64_counters() {
    let c = ctx();
    let dir = std::env::temp_dir().join(format!("wgcnn-zoo-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("resnet.safetensors");
    let spec = zoo("resnet-mini");
    let (_, t) = gpu_steps(&spec, &sample(16), 8, sgd(), &init_params(&spec.params(), 3), 3);
    wgcnn::checkpoint::save_trainer(c, &path, &t).unwrap();
    let raw = wgcnn::checkpoint::read(&path).unwrap();
    assert_eq!(raw.ints.len(), spec.tracked().len(), "one int64 num_batches_tracked per batch-norm");
    assert!(raw.ints.values().all(|(shape, v)| shape.is_empty() && v == &[3]), "{:?}", raw.ints);
    let (loaded_spec, state) = wgcnn::checkpoint::load_model(&path).unwrap();
    assert_eq!(loaded_spec, spec);
    let bits = |v: &[Vec<f32>]| v.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&state.buffers), bits(&t.params.buffers.read(c).unwrap()), "running statistics round-trip");
    assert_eq!(bits(&state.params), bits(&t.params.values.read(c).unwrap()));
    assert_eq!(state.tracked, vec![3; spec.tracked().len()]);
    // A checkpoint without a batch-norm's buffers does not fit the model: the error names them (and
    // not the num_batches_tracked counters, which may be missing, as PyTorch accepts).
    let meta = wgcnn::checkpoint::model_metadata(&spec);
    let short = dir.join("short.safetensors");
    wgcnn::checkpoint::save_params(&short, &spec.params(), &state.params, &meta).unwrap();
    let e = wgcnn::checkpoint::load_model(&short).err().unwrap().to_string();
    assert!(e.contains("stem.bn.running_mean") && !e.contains("num_batches_tracked"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_model_file_trains_deterministically_whatever_the_tuning() {
    // Same seed, same bits: 3 steps of batch 8 per model file (dropout masks seeded alike), with
    // tuning off, with every launch forced to its second, third and fourth variant, and with full
    // tuning (variants timed, a fresh cache file written), parameters and buffers compared bit for
    // bit; and each step's loss is finite. Colour models read
    // the digits as RGB pictures (converted and resized as picture folders are), normalised and
    // augmented (crop and flip) on the GPU.
    let c = ctx();
    let digits = sample(24);
    for name in model_files() {
        let spec = zoo(&name);
        let data = wgcnn::data::prep::conform(digits.clone(), spec.input).unwrap();
        let init = init_params(&spec.params(), 5);
        let run = || {
            let mut t = Trainer::new(c, spec.clone(), &data, 8, Optimizer::Adam(Default::default()), &init).unwrap();
            if spec.input[0] == 3 {
                let (mean, std) = wgcnn::data::prep::channel_stats(&data);
                let prep = wgcnn::data::Preparation { mean, std, ..t.prep.clone() };
                t.set_preparation(c, prep, wgcnn::data::Augment { crop: 4, flip: true, ..Default::default() }).unwrap();
            }
            t.set_seed(9);
            t.start_epoch(c, None).unwrap();
            let mut losses = Vec::new();
            for i in 0..3 {
                let b = t.step(c, i).unwrap();
                losses.push((t.metrics.take(c).unwrap().0 / b as f64).to_bits());
            }
            let mut bits: Vec<u32> = t.params.values.read(c).unwrap().concat().iter().map(|v| v.to_bits()).collect();
            bits.extend(t.params.buffers.read(c).unwrap().concat().iter().map(|v| v.to_bits()));
            (losses, bits)
        };
        use wgcnn::context::Tuning;
        let cache = std::env::temp_dir().join(format!("wgcnn-zoo-tune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        c.set_tuning_in(Tuning::Off, None);
        let a = run();
        assert!(a.0.iter().all(|&l| f64::from_bits(l).is_finite()), "{name}: losses {:?}", a.0);
        for mode in [Tuning::Force(1), Tuning::Force(2), Tuning::Force(3), Tuning::Full, Tuning::Cached] {
            c.set_tuning_in(mode, Some(cache.clone()));
            assert_eq!(a, run(), "{name}: tuning {mode:?} differs from tuning off");
        }
        let choices = c.tune_choices();
        assert!(choices.iter().any(|t| t.how == "timed"), "{name}: nothing was timed");
        assert!(choices.iter().any(|t| t.how == "cached"), "{name}: no cached choice was taken");
        c.set_tuning_in(Tuning::Off, None);
        let _ = std::fs::remove_dir_all(&cache);
    }
}
