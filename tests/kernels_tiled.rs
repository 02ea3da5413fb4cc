//! The workgroup-memory tiled kernels of hardware adapters (`matmul_tiled`, `conv2d_tiled`), run here
//! on this adapter through a context whose budget asks for them, against the same CPU references as
//! the other kernels: batch 1, LeNet-5's shapes, sizes that are not multiples of the 32×32 tile or of
//! the 16-deep k step, and grids past 65,535 workgroups.

mod common;

use std::sync::OnceLock;

use common::trainer::RefTrainer;
use common::{check, relu_of, rng, sample, sgd, to_f64, Tol, F32_TOL};
use wgcnn::context::Budget;

use wgcnn::kernels::conv_fast::{conv2d_backward_input_fast, conv2d_backward_weight_fast, conv2d_forward_fused};
use wgcnn::kernels::conv_tiled::conv2d_tiled_weight_grad_split;
use wgcnn::kernels::matmul::*;
use wgcnn::kernels::Kernel;
use wgcnn::reference as cpu;
use wgcnn::shape::{Conv2dGeom, LinearGeom};
use wgcnn::{Context, DType, Tensor};

/// This adapter with a discrete GPU's choice of kernels (and this adapter's loop budget).
fn tiled() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        let c = Context::new().expect("the GPU tests need an adapter");
        let budget = Budget { tiled: true, ..c.budget() };
        let c = c.with_budget(budget);
        // The tiled kernels are the default variants there; timing would pick lavapipe's favourites.
        c.set_tuning_in(wgcnn::context::Tuning::Off, None);
        c
    })
}

fn upload(label: &str, data: &[f32]) -> Tensor {
    Tensor::from_f32(tiled(), label, &[data.len()], data).unwrap()
}

fn zeros(label: &str, len: usize) -> Tensor {
    Tensor::zeros(tiled(), label, &[len], DType::F32).unwrap()
}

/// Run a launch that must be the tiled kernel `kernel`, and read `out`.
fn run(l: Option<wgcnn::kernels::Launch>, kernel: Kernel, out: &Tensor) -> Vec<f32> {
    let l = l.expect("the fast path takes this shape");
    assert_eq!(l.kernel, kernel);
    out.write_f32(tiled(), &vec![f32::NAN; out.len()]).unwrap();
    tiled().run(&[&l]).unwrap();
    out.to_f32(tiled()).unwrap()
}

#[test]
fn matmul_tiled_matches_the_reference_in_every_role() {
    let c = tiled();
    let table = [
        ("lenet_fc1_batch1", LinearGeom { n: 1, in_f: 400, out_f: 120 }),
        ("lenet_fc2_batch64", LinearGeom { n: 64, in_f: 120, out_f: 84 }),
        ("ragged_1x1", LinearGeom { n: 1, in_f: 1, out_f: 1 }),
        ("ragged_33x17x65", LinearGeom { n: 33, in_f: 17, out_f: 65 }),
        ("ragged_70x250x31", LinearGeom { n: 70, in_f: 250, out_f: 31 }),
        // 65,625 tiles of y (forward) and of dW (weight gradient): the grid folds.
        ("tiles_past_65535", LinearGeom { n: 1, in_f: 2, out_f: 2_100_000 }),
    ];
    // Positive and other products the fused ReLU saw over the table (a 1×1 row has one value).
    let mut signs = (0, 0);
    for (seed, (name, g)) in table.iter().enumerate() {
        let mut r = rng(1400 + seed as u64);
        let (x, w, b, dy) = (
            r.vec_f32(g.x_len(), -1.0, 1.0),
            r.vec_f32(g.w_len(), -1.0, 1.0),
            r.vec_f32(g.out_f, -1.0, 1.0),
            r.vec_f32(g.y_len(), -1.0, 1.0),
        );
        let (x64, w64, b64, dy64) = (to_f64(&x), to_f64(&w), to_f64(&b), to_f64(&dy));
        let (xt, wt, bt, dyt) = (upload("x", &x), upload("w", &w), upload("b", &b), upload("dy", &dy));
        let (yt, dxt, dwt) = (zeros("y", g.y_len()), zeros("dx", g.x_len()), zeros("dw", g.w_len()));
        let got = run(linear_forward_fast(c, name, g, &xt, &wt, &bt, &yt, false).unwrap(), Kernel::MatmulTiled, &yt);
        check(&format!("matmul_tiled.forward/{name}"), &got, &cpu::linear_forward(g, &x64, &w64, &b64), F32_TOL);
        let fused = run(linear_forward_fast(c, name, g, &xt, &wt, &bt, &yt, true).unwrap(), Kernel::MatmulTiled, &yt);
        let (p, q) = relu_of(&format!("matmul_tiled.forward+relu/{name}"), &fused, &got);
        signs = (signs.0 + p, signs.1 + q);
        let dx = linear_backward_input_fast(c, name, g, &dyt, &wt, &dxt).unwrap();
        // The input gradient reduces over out_f: past this adapter's loop budget there is no fast path.
        if matmul_takes(g.out_f, 1, &c.budget(), &c.limits) {
            let got = run(dx, Kernel::MatmulTiled, &dxt);
            let want = cpu::linear_backward_input(g, &dy64, &w64);
            check(&format!("matmul_tiled.backward_input/{name}"), &got, &want, F32_TOL);
        } else {
            assert!(dx.is_none() && c.max_loop_iterations() < u64::MAX, "{name}");
        }
        let got = run(linear_backward_weight_fast(c, name, g, &dyt, &xt, &dwt).unwrap(), Kernel::MatmulTiled, &dwt);
        let want = cpu::linear_backward_weight(g, &dy64, &x64);
        check(&format!("matmul_tiled.backward_weight/{name}"), &got, &want, F32_TOL);
    }
    assert!(signs.0 > 0 && signs.1 > 0, "the fused ReLU saw {} positive and {} other values", signs.0, signs.1);
    assert!(2_100_000usize.div_ceil(32) > 65_535);
}

#[test]
fn conv2d_tiled_matches_the_reference_forward_and_backward() {
    let c = tiled();
    let table = [
        ("lenet_conv1_batch1", Conv2dGeom::square(1, 1, 28, 28, 6, 5, 1, 2)),
        ("lenet_conv2_batch64", Conv2dGeom::square(64, 6, 14, 14, 16, 5, 1, 0)),
        // 19 channels (one full block of 16 and a ragged one), 5·3·4 = 60 taps (not a multiple of 16),
        // a rectangular kernel, unequal strides and padding.
        (
            "ragged_stride2x1",
            Conv2dGeom {
                n: 3,
                c_in: 5,
                h: 13,
                w: 11,
                c_out: 19,
                kh: 3,
                kw: 4,
                stride_h: 2,
                stride_w: 1,
                pad_h: 1,
                pad_w: 2,
            },
        ),
        ("deep_3x3", Conv2dGeom::square(2, 40, 9, 9, 33, 3, 1, 1)),
        // 4,202,500 pixels of one channel: 65,665 tiles, the grid folds.
        ("tiles_past_65535", Conv2dGeom::square(1, 1, 2050, 2050, 1, 3, 1, 1)),
    ];
    for (seed, (name, g)) in table.iter().enumerate() {
        let mut r = rng(1500 + seed as u64);
        let (x, w, b) =
            (r.vec_f32(g.x_len(), -1.0, 1.0), r.vec_f32(g.w_len(), -1.0, 1.0), r.vec_f32(g.c_out, -1.0, 1.0));
        let want = cpu::conv2d_forward(g, &to_f64(&x), &to_f64(&w), &to_f64(&b));
        let (xt, wt, bt, yt) = (upload("x", &x), upload("w", &w), upload("b", &b), zeros("y", g.y_len()));
        for relu in [false, true] {
            let l = conv2d_forward_fused(c, name, g, &xt, &wt, &bt, &yt, relu).unwrap();
            let got = run(l, Kernel::Conv2dTiled, &yt);
            let want: Vec<f64> = want.iter().map(|&v| if relu { v.max(0.0) } else { v }).collect();
            check(&format!("conv2d_tiled/{name}/relu={relu}"), &got, &want, F32_TOL);
        }
        // The stride-1 input gradient: the same kernel over the transposed geometry, flipped taps.
        let dy = r.vec_f32(g.y_len(), -1.0, 1.0);
        let (dyt, dxt) = (upload("dy", &dy), zeros("dx", g.x_len()));
        let l = conv2d_backward_input_fast(c, name, g, &dyt, &wt, &dxt).unwrap();
        if g.stride_h == 1 && g.stride_w == 1 {
            let got = run(l, Kernel::Conv2dTiled, &dxt);
            let want = cpu::conv2d_backward_input(g, &to_f64(&dy), &to_f64(&w));
            check(&format!("conv2d_tiled.backward_input/{name}"), &got, &want, F32_TOL);
        } else {
            assert!(l.is_none_or(|l| l.kernel != Kernel::Conv2dTiled), "{name}: stride 2x1 is not tiled");
        }
        // The weight gradient: chunks of pixels, summed in order by sum_chunks past one chunk. Not on
        // the last row, whose dw is one tile (no fold) and whose 4.2M-pixel sum would take half a
        // minute here; tests/budget.rs checks the split's loop clamp for that shape.
        if *name == "tiles_past_65535" {
            continue;
        }
        let dwt = zeros("dw", g.w_len());
        let (span, chunks) = conv2d_tiled_weight_grad_split(g, &c.budget()).unwrap();
        let l = conv2d_backward_weight_fast(c, name, g, &dyt, &xt, &dwt).unwrap();
        assert_eq!(
            l.as_ref().map(|l| l.dispatches()),
            Some(if chunks > 1 { 2 } else { 1 }),
            "{name}: {span} x {chunks}"
        );
        let got = run(l, Kernel::Conv2dTiledWeightGrad, &dwt);
        let want = cpu::conv2d_backward_weight(g, &to_f64(&dy), &to_f64(&x));
        check(&format!("conv2d_tiled_weight_grad/{name}/{chunks}_chunks"), &got, &want, F32_TOL);
    }
    let big = table.last().unwrap().1;
    assert!(big.c_out.div_ceil(16) * (big.n * big.out_h() * big.out_w()).div_ceil(64) > 65_535);
}

#[test]
fn training_steps_on_the_tiled_kernels_match_the_cpu_reference_trainer() {
    // LeNet-5 (two 5x5 convs with fused ReLUs, three linear layers) and the residual model file,
    // trained on the tiled context: loss and every gradient of 3 steps (8, 8 and a partial 4) as in
    // tests/training.rs, and the graphs must have built the tiled kernels.
    use wgcnn::model::{init_params, lenet5, LeNetConfig};
    use wgcnn::train::Trainer;
    let c = tiled();
    let data = sample(20);
    let residual = wgcnn::model::file::load(std::path::Path::new("models/residual-mini.toml")).unwrap();
    for (name, spec) in [("lenet5", lenet5(LeNetConfig::default())), ("residual_mini", residual)] {
        let specs = spec.params();
        let init = init_params(&specs, 7);
        let mut t = Trainer::new(c, spec.clone(), &data, 8, sgd(), &init).unwrap();
        t.start_epoch(c, None).unwrap();
        let mut r = RefTrainer::new(&spec, &init, sgd());
        let item = spec.input.iter().product::<usize>();
        for (s, (first, b)) in [(0usize, 8usize), (8, 8), (16, 4)].into_iter().enumerate() {
            assert_eq!(t.step(c, s).unwrap(), b);
            let gpu_loss = t.metrics.take(c).unwrap().0 / b as f64;
            let gpu_grads = t.params.grads.read(c).unwrap();
            let x: Vec<f64> =
                data.images[first * item..(first + b) * item].iter().map(|&v| f64::from(v as f32 / 255.0)).collect();
            let labels: Vec<u32> = data.labels[first..first + b].iter().map(|&l| u32::from(l)).collect();
            let (want, ref_grads) = r.step(&x, &labels, None);
            check(
                &format!("tiled loss/{name}/step{}", s + 1),
                &[gpu_loss as f32],
                &[want],
                Tol { atol: 1e-5, rtol: 1e-5 },
            );
            for (i, p) in specs.iter().enumerate() {
                check(&format!("tiled grad/{name}/step{}/{}", s + 1, p.name), &gpu_grads[i], &ref_grads[i], F32_TOL);
            }
        }
    }
    let built = c.pipeline_specs();
    let has = |k: Kernel| built.iter().any(|(b, _)| *b == k);
    assert!(has(Kernel::Conv2dTiled) && has(Kernel::MatmulTiled), "{built:?}");
    // Both models' convs have stride 1: the forward and both gradients are all tiled.
    assert!(has(Kernel::Conv2dTiledWeightGrad), "{built:?}");
    let blocked = has(Kernel::Conv2dDirect) || has(Kernel::Conv2dDirectSg) || has(Kernel::Conv2dWeightGrad);
    assert!(!blocked, "the tiled context took a register-blocked conv: {built:?}");
}
