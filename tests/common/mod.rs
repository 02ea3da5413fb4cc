//! Helpers shared by the GPU test files: one context per test binary, seeded data, and a comparison
//! that says where it failed.
#![allow(dead_code)]

pub mod trainer;

use std::sync::OnceLock;

use wgcnn::context::describe_adapter;
use wgcnn::rng::Rng;
use wgcnn::{Context, Tensor};

/// The shared GPU context. No adapter is a test failure, never a skip: in CI `.ci/run` sets
/// `WGCNN_ADAPTER=software`, so these tests run on lavapipe or fail.
pub fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        let c = Context::new().unwrap_or_else(|e| panic!("the GPU tests need an adapter: {e}"));
        eprintln!("GPU tests run on: {}", describe_adapter(&c.info));
        c
    })
}

/// Workgroups a 1-D dispatch of `threads` would need; > 65,535 means the grid was folded.
pub fn groups(threads: usize) -> usize {
    threads.div_ceil(wgcnn::kernels::WORKGROUP_SIZE as usize)
}

/// The first `n` training images of the bundled sample.
pub fn sample(n: usize) -> wgcnn::data::Dataset {
    let mut d = wgcnn::data::load(&wgcnn::data::bundled_dir(), wgcnn::data::Split::Train).unwrap();
    d.images.truncate(n * d.item_size());
    d.labels.truncate(n);
    d
}

/// SGD as `wgcnn train` runs it by default (lr 0.05, momentum 0.9, weight decay 1e-3).
pub fn sgd() -> wgcnn::train::Optimizer {
    use wgcnn::kernels::optim::Sgd;
    wgcnn::train::Optimizer::Sgd(Sgd { lr: 0.05, momentum: 0.9, dampening: 0.0, weight_decay: 1e-3, nesterov: false })
}

/// Run `steps` GPU training steps from `init` in file order; return the per-step mean losses and the
/// trainer.
pub fn gpu_steps(
    spec: &wgcnn::model::ModelSpec,
    data: &wgcnn::data::Dataset,
    batch: usize,
    opt: wgcnn::train::Optimizer,
    init: &[Vec<f32>],
    steps: usize,
) -> (Vec<f64>, wgcnn::train::Trainer) {
    let c = ctx();
    let mut t = wgcnn::train::Trainer::new(c, spec.clone(), data, batch, opt, init).unwrap();
    t.start_epoch(c, None).unwrap();
    let mut losses = Vec::new();
    for i in 0..steps {
        let b = t.step(c, i % t.steps_per_epoch()).unwrap();
        losses.push(t.metrics.take(c).unwrap().0 / b as f64);
    }
    (losses, t)
}

pub fn rng(seed: u64) -> Rng {
    Rng::new(seed)
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

pub fn upload(label: &str, shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_f32(ctx(), label, shape, data).unwrap()
}

pub fn zeros(label: &str, shape: &[usize]) -> Tensor {
    Tensor::zeros(ctx(), label, shape, wgcnn::DType::F32).unwrap()
}

pub fn zeros_u32(label: &str, shape: &[usize]) -> Tensor {
    Tensor::zeros(ctx(), label, shape, wgcnn::DType::U32).unwrap()
}

/// Run one launch and download its f32 output.
pub fn run_f32(launch: wgcnn::Result<wgcnn::kernels::Launch>, out: &Tensor) -> Vec<f32> {
    let l = launch.unwrap();
    ctx().run(&[&l]).unwrap();
    out.to_f32(ctx()).unwrap()
}

/// Tolerance `atol + rtol·|ref|`.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub atol: f64,
    pub rtol: f64,
}

/// Forward and backward f32 kernels vs the f64 reference on inputs in [-1, 1]: a sum of K products
/// in f32 carries an error of order sqrt(K)·2⁻²⁴·|terms|; 1e-4 leaves headroom for K up to ~10⁵
/// without hiding a wrong index (which errs by O(1)).
pub const F32_TOL: Tol = Tol { atol: 1e-4, rtol: 1e-4 };

/// Compare `got` (GPU) with `want` (reference); panic naming the case, the number of mismatches and
/// the worst element. Returns the max |Δ| so tests can report it.
pub fn check(case: &str, got: &[f32], want: &[f64], tol: Tol) -> f64 {
    assert_eq!(got.len(), want.len(), "{case}: length {} vs reference {}", got.len(), want.len());
    let mut bad = 0;
    let mut worst = (0.0f64, 0usize);
    let mut max_abs = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = f64::from(g);
        let d = if g.is_nan() && w.is_nan() { 0.0 } else { (g - w).abs() };
        let d = if d.is_nan() { f64::INFINITY } else { d };
        max_abs = max_abs.max(d);
        let excess = d - (tol.atol + tol.rtol * w.abs());
        if excess > 0.0 {
            bad += 1;
            if excess > worst.0 {
                worst = (excess, i);
            }
        }
    }
    if bad > 0 {
        let i = worst.1;
        panic!(
            "{case}: {bad} of {} elements off by more than {tol:?}; max |Δ| = {max_abs:e}; worst at [{i}]: gpu {} vs ref {}",
            got.len(),
            got[i],
            want[i]
        );
    }
    eprintln!("MAXERR {case} {max_abs:e}");
    max_abs
}

/// A fused ReLU's output against the same kernel's output without it: each element is the plain one
/// where that is positive (bit for bit) and zero elsewhere, so the fusion changes nothing but the
/// ReLU. Returns how many plain values were positive and how many were not.
pub fn relu_of(case: &str, fused: &[f32], plain: &[f32]) -> (usize, usize) {
    assert_eq!(fused.len(), plain.len(), "{case}: length");
    for (i, (&f, &p)) in fused.iter().zip(plain).enumerate() {
        let ok = if p > 0.0 { f.to_bits() == p.to_bits() } else { f == 0.0 };
        assert!(ok, "{case}: element {i} is {f}, the ReLU of {p} expected");
    }
    let positive = plain.iter().filter(|&&p| p > 0.0).count();
    (positive, plain.len() - positive)
}

/// [`relu_of`], and the case has values on both sides of zero (or it would not test the ReLU).
pub fn assert_relu_of(case: &str, fused: &[f32], plain: &[f32]) {
    let (positive, rest) = relu_of(case, fused, plain);
    assert!(positive > 0 && rest > 0, "{case}: {positive} positive and {rest} other values");
}

/// Exact comparison for integer outputs.
pub fn check_u32(case: &str, got: &[u32], want: &[u32]) {
    assert_eq!(got.len(), want.len(), "{case}: length");
    let bad: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
    assert!(
        bad.is_empty(),
        "{case}: {} of {} differ; first at [{}]: gpu {} vs ref {}",
        bad.len(),
        got.len(),
        bad[0],
        got[bad[0]],
        want[bad[0]]
    );
    eprintln!("MAXERR {case} exact");
}
