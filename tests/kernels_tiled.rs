//! The workgroup-memory tiled kernels of hardware adapters (`matmul_tiled`, `conv2d_tiled`), run here
//! on this adapter through a context whose budget asks for them, against the same CPU references as
//! the other kernels: batch 1, LeNet-5's shapes, sizes that are not multiples of the 32×32 tile or of
//! the 16-deep k step, and grids past 65,535 workgroups.

mod common;

use std::sync::OnceLock;

use common::{check, rng, to_f64, F32_TOL};
use wgcnn::context::Budget;

use wgcnn::kernels::matmul::*;
use wgcnn::kernels::Kernel;
use wgcnn::reference as cpu;
use wgcnn::shape::LinearGeom;
use wgcnn::{Context, DType, Tensor};

/// This adapter with a discrete GPU's choice of kernels (and this adapter's loop budget).
fn tiled() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        let c = Context::new().expect("the GPU tests need an adapter");
        let budget = Budget { tiled: true, ..c.budget() };
        c.with_budget(budget)
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
        let got = run(linear_forward_fast(c, name, g, &xt, &wt, &bt, &yt).unwrap(), Kernel::MatmulTiled, &yt);
        check(&format!("matmul_tiled.forward/{name}"), &got, &cpu::linear_forward(g, &x64, &w64, &b64), F32_TOL);
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
    assert!(2_100_000usize.div_ceil(32) > 65_535);
}
