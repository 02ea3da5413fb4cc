//! The executor end to end: the first steps of GPU training against the CPU reference trainer (the
//! same IR, interpreted with the reference kernels), bit-identity with the previous release,
//! determinism, no GPU object created per step, buffer reuse, and a short run on the bundled sample.

mod common;

use common::trainer::RefTrainer;
use common::*;
use wgcnn::data::{self, Split};
use wgcnn::kernels::activation::Activation;
use wgcnn::kernels::loss::LossKind;
use wgcnn::kernels::optim::{Adam, Sgd};
use wgcnn::kernels::pool::PoolKind;
use wgcnn::model::{init_params, lenet5, LeNetConfig, ModelSpec};
use wgcnn::train::{fit, Evaluator, Optimizer, Schedule, TrainConfig, Trainer};
use wgcnn::Error;

/// FNV-1a over a checkpoint's tensors in name order (each name's bytes, then its f32 little-endian).
fn tensor_hash(path: &std::path::Path) -> u64 {
    let loaded = wgcnn::checkpoint::read(path).unwrap();
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for (name, (_, values)) in &loaded.tensors {
        let bytes = name.bytes().chain(values.iter().flat_map(|v| v.to_le_bytes()));
        for b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

#[test]
fn lenet5_through_the_ir_trains_bit_identically_to_the_previous_release() {
    // `wgcnn train --epochs 1 --save X`, every other flag at its default, hashed as above. The reference
    // is the release before the IR (the fixed layer chain, commit 268ba07) on lavapipe: the same seed
    // gives the same checkpoint tensors to the bit. (10 epochs, the full defaults, were compared by
    // hand: identical too; see docs/ir.md.) Other adapters round differently; there the run is checked
    // against itself.
    const REFERENCE: u64 = 0xd816_fcd8_ec6a_5ed4;
    let dir = std::env::temp_dir().join(format!("wgcnn-bits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |name: &str| {
        let path = dir.join(name);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgcnn"))
            .args(["train", "--epochs", "1", "--json", "--save"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        tensor_hash(&path)
    };
    let h = run("a.safetensors");
    if ctx().info.name.starts_with("llvmpipe") {
        assert_eq!(h, REFERENCE, "LeNet-5's weights after one default epoch differ from the previous release's");
    } else {
        assert_eq!(h, run("b.safetensors"), "two identical runs differ");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Four branches (1x1, 3x3, 5x5 convs and a padded 3x3 max-pool) of one pooled value, joined by concat,
/// then a global average pool: the pooled value's gradient is a sum of four.
fn inception_like() -> ModelSpec {
    use wgcnn::kernels::activation::Activation::Relu;
    use wgcnn::model::{Conv2d, LayerOp, Linear, ModelBuilder, Pool2d};
    ModelBuilder::new("inception-like", [1, 28, 28], 10)
        .layer("stem", Conv2d::new(4, 3).padding(1))
        .layer("stem.relu", Relu)
        .layer("pool", Pool2d::max(2)) // [n, 4, 14, 14]
        .layer_from("b1", Conv2d::new(4, 1).bias(false), &["pool"]) // no bias, as before a batch-norm
        .layer_from("b3", Conv2d::new(4, 3).padding(1), &["pool"])
        .layer_from("b5", Conv2d::new(2, 5).padding(2), &["pool"])
        .layer_from("bp", Pool2d::max(3).stride(1).padding(1), &["pool"]) // a padded pool branch
        .layer_from("cat", LayerOp::Concat, &["b1", "b3", "b5", "bp"]) // [n, 14, 14, 14]
        .layer("cat.relu", Relu)
        .layer("gap", LayerOp::GlobalAvgPool) // [n, 14, 1, 1]
        .layer("flatten", LayerOp::Flatten)
        .layer("fc", Linear::new(10))
        .build()
        .unwrap()
}

/// LeNet-5 with dropout (p = 0.5) after each hidden fully connected layer, as AlexNet does.
fn lenet_dropout() -> ModelSpec {
    let mut text = std::fs::read_to_string("models/lenet5.toml").unwrap();
    for relu in ["relu3", "relu4"] {
        let at = text.find(&format!("name = \"{relu}\"\nop = \"relu\"\n")).unwrap();
        let end = text[at..].find("\n\n").map_or(text.len(), |e| at + e);
        text.insert_str(end, &format!("\n\n[[layer]]\nname = \"drop.{relu}\"\nop = \"dropout\"\np = 0.5"));
    }
    wgcnn::model::file::parse(&text).unwrap()
}

#[test]
fn first_steps_match_the_cpu_reference_trainer() {
    // 20 images in batches of 8: steps of 8, 8 and the partial 4 exercise both built graphs. LeNet-5 in
    // three configurations, a model file with a residual connection (a value with two consumers, whose
    // gradient is a sum) and an Inception-like block (concat of three branches, global average pool),
    // against the IR interpreted on the CPU.
    //
    // SGD cases run the reference trainer on its own gradients: losses agree to 1e-5 relative and,
    // after 4 updates, parameters (|w| ≤ 0.2 at init) to 2e-5 + 1e-4·|w|.
    // The Adam case checks the GPU gradients against the reference gradients every step (F32_TOL,
    // as the kernels), then applies the reference Adam to the GPU's gradients: Adam divides each
    // update by √v, so where a gradient sits at f32 noise level its update follows that noise, and
    // comparing parameters after f32-vs-f64 gradients would test rounding, not the engine.
    let data = sample(20);
    let cases = [
        ("relu_max_xent_sgd", LeNetConfig::default(), sgd()),
        (
            "tanh_avg_mse_adam",
            LeNetConfig { activation: Activation::Tanh, pool: PoolKind::Avg, loss: LossKind::SquaredError },
            Optimizer::Adam(Adam { lr: 3e-3, weight_decay: 1e-3, ..Adam::default() }),
        ),
        (
            "sigmoid_max_xent_nesterov",
            LeNetConfig { activation: Activation::Sigmoid, ..LeNetConfig::default() },
            Optimizer::Sgd(Sgd { lr: 0.1, momentum: 0.5, dampening: 0.0, weight_decay: 0.0, nesterov: true }),
        ),
    ];
    let residual = wgcnn::model::file::load(std::path::Path::new("models/residual-mini.toml")).unwrap();
    let cases: Vec<(&str, ModelSpec, Optimizer)> = cases
        .into_iter()
        .map(|(name, cfg, opt)| (name, lenet5(cfg), opt))
        .chain([
            ("residual_mini_dag_sgd", residual, sgd()),
            ("inception_like_concat_gap_sgd", inception_like(), sgd()),
            ("lenet_dropout_sgd", lenet_dropout(), sgd()),
        ])
        .collect();
    let c = ctx();
    for (name, spec, opt) in cases {
        let specs = spec.params();
        let init = init_params(&specs, 7);
        let adam = matches!(opt, Optimizer::Adam(_));
        let mut t = Trainer::new(c, spec.clone(), &data, 8, opt, &init).unwrap();
        t.start_epoch(c, None).unwrap();
        let mut r = RefTrainer::new(&spec, &init, opt);
        let item = spec.input.iter().product::<usize>();
        for (s, (first, b)) in [(0usize, 8usize), (8, 8), (16, 4), (0, 8)].into_iter().enumerate() {
            let got = t.step(c, s % 3).unwrap();
            assert_eq!(got, b);
            let gpu_loss = t.metrics.take(c).unwrap().0 / b as f64;
            let gpu_grads = t.params.grads.read(c).unwrap();
            let x: Vec<f64> =
                data.images[first * item..(first + b) * item].iter().map(|&v| f64::from(v as f32 / 255.0)).collect();
            let labels: Vec<u32> = data.labels[first..first + b].iter().map(|&l| u32::from(l)).collect();
            let (want, ref_grads) = r.step(&x, &labels, if adam { Some(&gpu_grads) } else { None });
            check(
                &format!("training loss/{name}/step{}", s + 1),
                &[gpu_loss as f32],
                &[want],
                Tol { atol: 1e-5, rtol: 1e-5 },
            );
            for (i, p) in specs.iter().enumerate() {
                check(&format!("training grad/{name}/step{}/{}", s + 1, p.name), &gpu_grads[i], &ref_grads[i], F32_TOL);
            }
        }
        let gpu_params = t.params.values.read(c).unwrap();
        let tol = if adam { Tol { atol: 1e-6, rtol: 1e-6 } } else { Tol { atol: 2e-5, rtol: 1e-4 } };
        for (i, p) in specs.iter().enumerate() {
            check(&format!("training params/{name}/{}", p.name), &gpu_params[i], &to_f64(&r.params[i]), tol);
        }
    }
}

#[test]
fn same_seed_gives_identical_losses_and_weights() {
    let data = sample(64);
    let spec = lenet5(LeNetConfig::default());
    let init = init_params(&spec.params(), 3);
    let read = |t: Trainer| t.params.values.read(ctx()).unwrap();
    let (l1, t1) = gpu_steps(&spec, &data, 16, sgd(), &init, 6);
    let (l2, t2) = gpu_steps(&spec, &data, 16, sgd(), &init, 6);
    let (p1, p2) = (read(t1), read(t2));
    assert_eq!(l1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), l2.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    for (a, b) in p1.iter().zip(&p2) {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "weights differ between identical runs");
    }
    let other = init_params(&spec.params(), 4);
    let (l3, _) = gpu_steps(&spec, &data, 16, sgd(), &other, 6);
    assert_ne!(l1, l3, "a different seed must change the run");
}

#[test]
fn a_training_step_creates_no_gpu_objects() {
    // A context of its own: the shared one counts what the tests running beside this one create.
    let c = &wgcnn::Context::new().unwrap();
    let data = sample(40);
    let spec = lenet5(LeNetConfig::default());
    let init = init_params(&spec.params(), 1);
    let mut t = Trainer::new(c, spec, &data, 16, Optimizer::Adam(Adam::default()), &init).unwrap();
    t.start_epoch(c, None).unwrap();
    t.step(c, 0).unwrap(); // warm: everything was built in Trainer::new
    let before = c.objects_created();
    for i in 0..6 {
        t.step(c, i % t.steps_per_epoch()).unwrap(); // includes the partial last batch (40 = 16 + 16 + 8)
    }
    c.wait().unwrap();
    assert_eq!(c.objects_created(), before, "buffers, bind groups or pipelines were created inside training steps");
    // The counter does see creations: a metrics readback makes one staging buffer (both sums in one).
    t.metrics.take(c).unwrap();
    assert_eq!(c.objects_created(), before + 1);
    assert!(t.dispatches_per_step() > 20);
}

#[test]
fn one_epoch_on_the_bundled_sample_learns_to_read_digits() {
    // The full 8,000-image training set, one epoch, batch 64, SGD + momentum at lr 0.05, seed 1:
    // measured 89.7 % test accuracy on the 2,000 test digits on lavapipe; 85 % leaves room for another
    // adapter's rounding while failing any broken gradient (chance is 10 %).
    let c = ctx();
    let train = data::load(&data::bundled_dir(), Split::Train).unwrap();
    let test = data::load(&data::bundled_dir(), Split::Test).unwrap();
    let spec = lenet5(LeNetConfig::default());
    let opt = Optimizer::Sgd(Sgd { lr: 0.05, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false });
    let mut t = Trainer::new(c, spec.clone(), &train, 64, opt, &init_params(&spec.params(), 1)).unwrap();
    let e = Evaluator::new(c, &spec, &t.params, &test, 1000).unwrap();
    let before = e.run(c).unwrap();
    let cfg = TrainConfig { log_every: 25, schedule: Schedule::Constant, ..TrainConfig::default() };
    let s = fit(c, &mut t, &e, &cfg, &mut |_| {}).unwrap();
    eprintln!(
        "one epoch: test accuracy {:.4} (before {:.4}), loss {:.4}",
        s.test.accuracy, before.accuracy, s.test.loss
    );
    assert_eq!((s.steps, s.images), (125, 8000), "every image once per epoch");
    assert!(s.test.accuracy >= 0.85, "test accuracy {:.4} after one epoch", s.test.accuracy);
    assert!(s.test.loss < before.loss / 3.0, "loss {:.4} vs {:.4} before", s.test.loss, before.loss);

    // predict on pictures: the first 30 test digits written as 84×84 PNGs, dark ink on white paper
    // (so the loader must invert and rescale them), against the same digits fed directly.
    let dir = std::env::temp_dir().join(format!("wgcnn-predict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut pictures = Vec::new();
    let mut direct = Vec::new();
    for i in 0..30 {
        let d = test.image(i);
        let img = image::GrayImage::from_fn(84, 84, |x, y| image::Luma([255 - d[(y / 3 * 28 + x / 3) as usize]]));
        let path = dir.join(format!("digit{i}.png"));
        img.save(&path).unwrap();
        pictures.push(wgcnn::digits::load_digit(&path).unwrap());
        direct.push(d.iter().map(|&v| f32::from(v) / 255.0).collect::<Vec<f32>>());
    }
    let argmax =
        |p: &Vec<f32>| p.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0;
    let from_png: Vec<usize> =
        wgcnn::train::predict(c, &spec, &t.params, &pictures).unwrap().iter().map(argmax).collect();
    let from_idx: Vec<usize> =
        wgcnn::train::predict(c, &spec, &t.params, &direct).unwrap().iter().map(argmax).collect();
    let right = |pred: &[usize]| pred.iter().zip(&test.labels).filter(|(p, l)| **p == usize::from(**l)).count();
    let agree = from_png.iter().zip(&from_idx).filter(|(a, b)| a == b).count();
    // MNIST placed each digit's centre of mass at pixel (14, 14) and so does the preparation: a digit
    // scaled up 3× and prepared again lands where it was, differing only by the resampling.
    let moved: Vec<f32> = pictures
        .iter()
        .zip(&direct)
        .map(|(p, d)| p.iter().zip(d).map(|(a, b)| (a - b).abs()).sum::<f32>() / d.iter().sum::<f32>())
        .collect();
    let worst = moved.iter().copied().fold(0.0f32, f32::max);
    let mean = moved.iter().sum::<f32>() / moved.len() as f32;
    eprintln!(
        "predict: {}/30 right from PNG, {}/30 from the IDX bytes, {agree}/30 the same; |PNG − IDX| / ink: mean {mean:.3}, worst {worst:.3}",
        right(&from_png),
        right(&from_idx)
    );
    // Measured on lavapipe: mean 0.25, worst 0.49, 27/30 the same (centring the box instead, as
    // before: worst 1.27, 25/30 the same). The rest is resampling: the box's edge rows are partly lit.
    assert!(worst < 0.75, "a digit moved when prepared again: |PNG − IDX| / ink up to {worst:.3}");
    // The IDX digits are what the model was trained on; the prepared PNGs differ by resampling.
    assert!(right(&from_idx) >= 24, "{} of 30", right(&from_idx));
    assert!(right(&from_png) >= 22, "{} of 30", right(&from_png));
    // Bad pictures are errors naming the file.
    let junk = dir.join("junk.png");
    std::fs::write(&junk, b"not a picture").unwrap();
    for (p, needle) in [(dir.join("missing.png"), "missing.png"), (junk, "not a readable PNG or JPEG")] {
        match wgcnn::digits::load_digit(&p) {
            Err(e) => assert!(e.to_string().contains(needle), "{e}"),
            Ok(_) => panic!("{} loaded", p.display()),
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_page_s_shipped_model_reads_the_bundled_test_digits() {
    // web/static/model/lenet5.safetensors, trained with the drawn-digit augmentation (docs/browser.md:
    // `wgcnn train --epochs 20 --augment rotate=15,shear=20,scale=0.15,shift=2,thick=1 --seed 1`), stays
    // a good reader of MNIST's own digits: measured 98.85 % of the sample's 2,000 test digits on
    // lavapipe; issue 23 asks for at least 97.5 %. (How it reads drawn digits is the browser test's.)
    let c = ctx();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/static/model/lenet5.safetensors");
    let (spec, state, prep) = wgcnn::checkpoint::load_prepared(&path).unwrap();
    assert_eq!(spec.name, "lenet5");
    let test = data::load(&data::bundled_dir(), Split::Test).unwrap();
    let mut params = wgcnn::graph::Params::new(c, &spec).unwrap();
    params.write_state(c, &state).unwrap();
    let ev = Evaluator::prepared(c, &spec, &params, &test, 1000, &prep.transform()).unwrap();
    let r = ev.run(c).unwrap();
    eprintln!("shipped model: {:.2} % of {} test digits, loss {:.4}", 100.0 * r.accuracy, test.len(), r.loss);
    assert!(r.accuracy >= 0.975, "the shipped model reads {:.2} % of the test digits", 100.0 * r.accuracy);
}

#[test]
fn impossible_graphs_fail_at_build_naming_the_layer() {
    let c = ctx();
    let spec = lenet5(LeNetConfig::default());
    let params = wgcnn::graph::Params::new(c, &spec).unwrap();
    let metrics = wgcnn::graph::Metrics::new(c, "m").unwrap();
    // A batch whose buffers exceed any binding limit: refused before anything runs.
    match wgcnn::graph::Graph::build(c, &spec, &params, &metrics, 400_000, true) {
        Err(e @ Error::Limit { .. }) => {
            assert!(e.to_string().contains("input") || e.to_string().contains("conv1"), "{e}")
        }
        Err(e) => panic!("expected a limit error, got {e}"),
        Ok(_) => panic!("built a graph of 400,000 images"),
    }
    // A layer whose output is past the binding limit (3,000,000 maps of 8x8 from a 1x1 conv: 768 MB;
    // the weights stay small).
    let wide = wgcnn::model::ModelBuilder::new("wide", [1, 8, 8], 2)
        .layer("wide", wgcnn::model::Conv2d::new(3_000_000, 1))
        .layer("pool", wgcnn::model::Pool2d::avg(8))
        .layer("flatten", wgcnn::model::LayerOp::Flatten)
        .layer("fc", wgcnn::model::Linear::new(2))
        .build()
        .unwrap();
    match wgcnn::graph::Params::new(c, &wide).and_then(|p| wgcnn::graph::Graph::build(c, &wide, &p, &metrics, 1, false))
    {
        Err(e @ Error::Limit { .. }) => assert!(e.to_string().starts_with("wide"), "{e}"),
        Err(e) => panic!("expected a limit error naming the layer, got {e}"),
        Ok(_) => panic!("built a 768 MB activation"),
    }
    // Parameters of another model.
    let other = lenet5(LeNetConfig { pool: PoolKind::Avg, ..LeNetConfig::default() });
    let residual = wgcnn::model::file::load(std::path::Path::new("models/residual-mini.toml")).unwrap();
    assert!(wgcnn::graph::Graph::build(c, &other, &params, &metrics, 2, false).is_ok(), "same parameters");
    match wgcnn::graph::Graph::build(c, &residual, &params, &metrics, 2, false) {
        Err(e) => assert!(e.to_string().contains("another model"), "{e}"),
        Ok(_) => panic!("built a graph on another model's parameters"),
    }
    assert!(wgcnn::graph::Graph::build(c, &spec, &params, &metrics, 0, false).is_err());
}

#[test]
fn the_training_graph_reuses_dead_buffers_and_keeps_lenets_dispatch_count() {
    // LeNet-5 at batch 64: values a later node no longer reads (e.g. conv1's output once the pool ran:
    // the fused pool backward reads the pool's output) lend their buffers to later gradients. The
    // training tests above check the results stay right.
    let c = ctx();
    let spec = lenet5(LeNetConfig::default());
    let params = wgcnn::graph::Params::new(c, &spec).unwrap();
    let metrics = wgcnn::graph::Metrics::new(c, "test").unwrap();
    let g = wgcnn::graph::Graph::build(c, &spec, &params, &metrics, 64, true).unwrap();
    let (allocated, requested) = g.memory_bytes;
    eprintln!("planned buffers: {allocated} bytes allocated for {requested} bytes requested");
    assert!(requested > 0 && allocated * 10 < requested * 6, "{allocated} of {requested} bytes");
    // Forward, loss, metrics and backward: with the gather and the optimizer, 33 dispatches a step
    // (conv_relu, linear_relu and pool_relu_mask each fired twice), and 4 more on a software adapter, where conv2d_direct runs a
    // row's edge blocks in dispatches of their own (conv1: 3 dispatches, conv2 and its input
    // gradient: 2 each). Counted with every launch's default variant (a context of its own with tuning
    // off: a tuning cache may choose variants of two dispatches).
    if c.kernels == wgcnn::KernelSet::Fast {
        let own = wgcnn::Context::new().unwrap();
        own.set_tuning_in(wgcnn::context::Tuning::Off, None);
        let params = wgcnn::graph::Params::new(&own, &spec).unwrap();
        let metrics = wgcnn::graph::Metrics::new(&own, "test").unwrap();
        let g = wgcnn::graph::Graph::build(&own, &spec, &params, &metrics, 64, true).unwrap();
        let edges = if own.is_software() { 4 } else { 0 };
        assert_eq!(g.dispatches(), 33 + edges, "{}", g.ir.dump());
        let rules: Vec<&str> = g.rewrites.iter().map(|r| r.0).collect();
        assert_eq!(rules, ["conv_relu", "conv_relu", "linear_relu", "linear_relu", "pool_relu_mask", "pool_relu_mask"]);
    }
    let forward_only = wgcnn::graph::Graph::build(c, &spec, &params, &metrics, 64, false).unwrap();
    assert_eq!(forward_only.memory_bytes.0, forward_only.memory_bytes.1, "forward-only graphs keep every value");
}

#[test]
fn lowering_a_tiny_dag_prepares_one_launch_per_computing_node_in_order() {
    // input → conv1 → relu1 → conv2 → skip = relu1 + conv2 → flatten → fc: relu1 has two readers, so
    // its gradient is a sum; the flatten and the add's backward are views and pass-throughs (no launch).
    use wgcnn::kernels::activation::Activation::Relu;
    use wgcnn::model::{Conv2d, LayerOp, Linear, ModelBuilder};
    let c = ctx();
    let spec = ModelBuilder::new("tiny", [1, 6, 6], 3)
        .layer("conv1", Conv2d::new(2, 3).padding(1))
        .layer("relu1", Relu)
        .layer("conv2", Conv2d::new(2, 3).padding(1))
        .layer_from("skip", LayerOp::Add, &["relu1", "conv2"])
        .layer("flatten", LayerOp::Flatten)
        .layer("fc", Linear::new(3))
        .build()
        .unwrap();
    let params = wgcnn::graph::Params::new(c, &spec).unwrap();
    let metrics = wgcnn::graph::Metrics::new(c, "m").unwrap();
    let g = wgcnn::graph::Graph::build(c, &spec, &params, &metrics, 2, true).unwrap();
    let labels: Vec<&str> = g.launches().map(|l| l.label.as_str()).collect();
    let fused = c.kernels == wgcnn::KernelSet::Fast;
    let mut want = vec![if fused { "conv1+relu1" } else { "conv1" }];
    want.extend(if fused { vec![] } else { vec!["relu1"] });
    want.extend(["conv2", "skip", "fc", "loss", "metrics.loss", "metrics.correct", "loss.backward"]);
    want.extend(["fc.dw", "fc.db", "fc.dx", "conv2.dw", "conv2.db", "conv2.dx", "relu1.grad_sum1", "relu1.dx"]);
    want.extend(["conv1.dw", "conv1.db"]);
    assert_eq!(labels, want, "{}", g.ir.dump());
    // Every value a launch reads or writes has a buffer of its size; the flatten views the skip's.
    let skip = &g.outputs.iter().find(|o| o.0 == "skip").unwrap().1;
    assert_eq!(skip.shape, [2, 2, 6, 6]);
    assert!(g.outputs.iter().all(|o| o.0 != "flatten"), "a view is not a layer output of its own");
}

#[test]
fn dropout_draws_masks_in_training_and_is_the_identity_in_evaluation() {
    let c = ctx();
    let (spec, plain) = (lenet_dropout(), lenet5(LeNetConfig::default()));
    let params = wgcnn::graph::Params::new(c, &spec).unwrap();
    params.values.write(c, &init_params(&spec.params(), 2)).unwrap();
    let metrics = wgcnn::graph::Metrics::new(c, "m").unwrap();
    let count = |g: &wgcnn::graph::Graph| g.launches().filter(|l| l.label.starts_with("drop.")).count();
    let train = wgcnn::graph::Graph::build(c, &spec, &params, &metrics, 4, true).unwrap();
    assert_eq!((count(&train), train.step.is_some()), (4, true), "two dropout layers, forward and backward");
    let eval = wgcnn::graph::Graph::build(c, &spec, &params, &metrics, 4, false).unwrap();
    assert_eq!((count(&eval), eval.step.is_none()), (0, true), "evaluation draws no mask");
    // Without masks the model computes what LeNet-5 computes with the same weights.
    let inputs: Vec<Vec<f32>> = (0..3).map(|i| rng(60 + i).vec_f32(784, 0.0, 1.0)).collect();
    let with = wgcnn::train::predict(c, &spec, &params, &inputs).unwrap();
    let without = wgcnn::train::predict(c, &plain, &params, &inputs).unwrap();
    assert_eq!(with, without);
}

#[test]
fn frozen_layers_get_no_backward_and_the_rest_trains_as_without_them() {
    // LeNet-5 with both convs frozen: no gradient or update for them, no backward below fc1 at all
    // (fewer dispatches), and fc1..fc3 get the same gradients and updates, bit for bit, as in the
    // unfrozen run from the same weights and batch.
    let c = ctx();
    let data = sample(16);
    let spec = lenet5(LeNetConfig::default());
    let init = init_params(&spec.params(), 3);
    let mut plain = Trainer::new(c, spec.clone(), &data, 8, sgd(), &init).unwrap();
    let mut frozen = Trainer::new(c, spec.clone(), &data, 8, sgd(), &init).unwrap();
    frozen.freeze(c, &["conv1".to_string(), "conv2".to_string()]).unwrap();
    assert!(
        frozen.dispatches_per_step() + 6 <= plain.dispatches_per_step(),
        "{} vs {}",
        frozen.dispatches_per_step(),
        plain.dispatches_per_step()
    );
    for t in [&mut plain, &mut frozen] {
        t.start_epoch(c, None).unwrap();
        t.step(c, 0).unwrap();
    }
    let (pg, fg) = (plain.params.grads.read(c).unwrap(), frozen.params.grads.read(c).unwrap());
    let (pw, fw) = (plain.params.values.read(c).unwrap(), frozen.params.values.read(c).unwrap());
    let bits = |v: &Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (i, p) in spec.params().iter().enumerate() {
        if p.name.starts_with("conv") {
            assert!(fg[i].iter().all(|&g| g == 0.0), "{}: no gradient computed", p.name);
            assert_eq!(bits(&fw[i]), bits(&init[i]), "{}: frozen", p.name);
            assert_ne!(bits(&pw[i]), bits(&init[i]), "{}: trained without freezing", p.name);
        } else {
            assert_eq!(bits(&fg[i]), bits(&pg[i]), "{}: the same gradient", p.name);
            assert_eq!(bits(&fw[i]), bits(&pw[i]), "{}: the same update", p.name);
        }
    }
    let e = frozen.freeze(c, &["pool1".to_string()]).err().unwrap().to_string();
    assert!(e.contains("--freeze pool1") && e.contains("no weights"), "{e}");
}
