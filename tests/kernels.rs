//! Every GPU kernel against its CPU reference over a table of shapes: batch 1, LeNet's shapes, sizes
//! that are not multiples of any tile, stride 2, padding 0/1/2, and grids past 65,535 workgroups. This
//! file: conv and linear (plain and fast), the adapter's loop cap, and the coverage ledger of all three
//! kernel test files (kernels_maps.rs: activations, add, pooling; kernels_step.rs: loss, optimizers,
//! gather, reductions; kernels_norm.rs: batch-norm).

mod common;

use common::*;
use wgcnn::kernels::conv::*;
use wgcnn::kernels::conv_fast::*;
use wgcnn::kernels::linear::*;
use wgcnn::kernels::matmul::*;
use wgcnn::kernels::reduce::sum_accumulate;
use wgcnn::kernels::Kernel;
use wgcnn::reference as cpu;
use wgcnn::shape::{Conv2dGeom, LinearGeom};
use wgcnn::Tensor;

/// The conv shape table: rows added later go last, so older rows keep their seeds.
fn conv_table() -> Vec<(&'static str, Conv2dGeom)> {
    let g = |n, c_in, h, w, c_out, kh, kw, s, p| Conv2dGeom {
        n,
        c_in,
        h,
        w,
        c_out,
        kh,
        kw,
        stride_h: s,
        stride_w: s,
        pad_h: p,
        pad_w: p,
    };
    [
        ("lenet_conv1_batch1", g(1, 1, 28, 28, 6, 5, 5, 1, 2)),
        ("lenet_conv1_batch3", g(3, 1, 28, 28, 6, 5, 5, 1, 2)),
        // 64·28 rows of dy: the weight and bias gradients are split into 13 chunks plus sum_chunks.
        ("lenet_conv1_batch64_split", g(64, 1, 28, 28, 6, 5, 5, 1, 2)),
        ("lenet_conv2_batch2", g(2, 6, 14, 14, 16, 5, 5, 1, 0)),
        ("ragged_stride2_pad1_rect", g(3, 3, 13, 11, 5, 3, 2, 2, 1)),
        ("stride2_pad0", g(2, 2, 9, 9, 3, 3, 3, 2, 0)),
        ("pad1_7ch", g(1, 4, 7, 7, 7, 3, 3, 1, 1)),
        ("pad2_stride2_kernel_eq_input", g(2, 3, 5, 5, 2, 5, 5, 2, 2)),
        (
            "mixed_strides",
            Conv2dGeom { stride_h: 1, stride_w: 3, pad_h: 0, pad_w: 2, ..g(1, 2, 10, 12, 3, 3, 4, 1, 0) },
        ),
        // 2100² outputs: 68,907 workgroups of 64, folded into a second grid dimension.
        ("grid_past_65535", g(1, 1, 2100, 2100, 1, 3, 3, 1, 1)),
        // Rows added with the fast kernels go last: the rows above keep their seeds (the 4.4M-term weight
        // gradient above is within 1e-4·|value| for its seed; its f32 error grows with Σ|terms|, not |value|).
        ("lenet_conv2_batch64", g(64, 6, 14, 14, 16, 5, 5, 1, 0)),
        ("kernel7_13_channels", g(2, 13, 17, 19, 13, 7, 7, 1, 3)),
        // conv2d_direct owns 8 columns of a row per invocation here: 4,194,241 rows need 65,536 workgroups.
        // (x is just under the 128 MiB binding limit.)
        ("fast_grid_past_65535", g(1, 1, 4_194_241, 8, 1, 3, 3, 1, 1)),
        // conv2d_direct's 8-column blocks with stride 2 (11 output columns: one full block, one partial).
        ("wide_stride2", g(2, 3, 23, 21, 5, 3, 3, 2, 1)),
        // The stride-2 input gradient (conv2d_backward_input_s2): resnet-mini's downsampling conv, a 1x1
        // projection with odd sizes and 5 input channels (a partial channel block), and 2050² blocks of
        // 2x2 (4,202,500 invocations: 65,665 workgroups).
        ("resnet_s2_3x3_pad1", g(2, 8, 28, 28, 16, 3, 3, 2, 1)),
        ("s2_1x1_projection_odd", g(3, 5, 13, 15, 6, 1, 1, 2, 0)),
        ("s2_grid_past_65535", g(1, 1, 4100, 4100, 1, 1, 1, 2, 0)),
        // 1x1 convolutions run as batched matrix products (the image is the grid's layer): an inception
        // branch, and batch 1 with ragged sizes (its weight gradient needs no sum over images).
        ("1x1_inception_batch3", g(3, 16, 14, 14, 24, 1, 1, 1, 0)),
        ("1x1_batch1_ragged", g(1, 5, 7, 9, 3, 1, 1, 1, 0)),
        // 7×7 planes (49 floats: no vec4 axis in x or y) with channel counts of a multiple of 4: the
        // forward and input gradient read only the weights as vec4 (matmul_vec4b, the default there).
        ("1x1_7x7_batch1_vec4b", g(1, 56, 7, 7, 32, 1, 1, 1, 0)),
        ("1x1_7x7_batch3_vec4b_12ch", g(3, 8, 7, 7, 12, 1, 1, 1, 0)),
        // Without padding, so with subgroups conv2d_direct's forward shares its weights through them
        // (SG): one 5-column block per row, 4,194,398 rows in 65,538 workgroups.
        ("subgroup_grid_past_65535", g(1, 1, 4_194_400, 7, 1, 3, 3, 1, 0)),
    ]
    .to_vec()
}

#[test]
fn conv2d_all_directions_match_reference() {
    let table = conv_table();
    let c = ctx();
    for (seed, (name, geom)) in table.iter().enumerate() {
        let mut r = rng(100 + seed as u64);
        let x = r.vec_f32(geom.x_len(), -1.0, 1.0);
        let w = r.vec_f32(geom.w_len(), -1.0, 1.0);
        let b = r.vec_f32(geom.c_out, -1.0, 1.0);
        let dy = r.vec_f32(geom.y_len(), -1.0, 1.0);
        let (oh, ow) = (geom.out_h(), geom.out_w());
        let (xt, wt, bt) =
            (upload("x", &[geom.x_len()], &x), upload("w", &[geom.w_len()], &w), upload("b", &[geom.c_out], &b));
        let dyt = upload("dy", &[geom.n, geom.c_out, oh, ow], &dy);
        let yt = zeros("y", &[geom.n, geom.c_out, oh, ow]);
        let dxt = zeros("dx", &[geom.x_len()]);
        let dwt = zeros("dw", &[geom.w_len()]);
        let dbt = zeros("db", &[geom.c_out]);
        let (x64, w64, b64, dy64) = (to_f64(&x), to_f64(&w), to_f64(&b), to_f64(&dy));

        let row = ConvRow {
            want_y: cpu::conv2d_forward(geom, &x64, &w64, &b64),
            want_dx: cpu::conv2d_backward_input(geom, &dy64, &w64),
            want_dw: cpu::conv2d_backward_weight(geom, &dy64, &x64),
            t: [xt, wt, bt, dyt, yt, dxt, dwt],
        };
        let [xt, wt, bt, dyt, yt, dxt, dwt] = &row.t;
        let got = run_f32(conv2d_forward(c, name, geom, xt, wt, bt, yt), yt);
        check(&format!("conv2d_forward/{name}"), &got, &row.want_y, F32_TOL);
        let got = run_f32(conv2d_backward_input(c, name, geom, dyt, wt, dxt), dxt);
        check(&format!("conv2d_backward_input/{name}"), &got, &row.want_dx, F32_TOL);
        let got = run_f32(conv2d_backward_weight(c, name, geom, dyt, xt, dwt), dwt);
        check(&format!("conv2d_backward_weight/{name}"), &got, &row.want_dw, F32_TOL);
        let got = run_f32(conv2d_backward_bias(c, name, geom, dyt, &dbt), &dbt);
        check(&format!("conv2d_backward_bias/{name}"), &got, &cpu::conv2d_backward_bias(geom, &dy64), F32_TOL);
        check_fast_conv(name, geom, &row);
    }
    let big = table.iter().find(|r| r.0 == "grid_past_65535").unwrap().1;
    assert!(groups(big.y_len()) > 65_535 && groups(big.x_len()) > 65_535, "this row must fold the grid");
    let s2_big = table.iter().find(|r| r.0 == "s2_grid_past_65535").unwrap().1;
    assert!(groups(s2_big.n * s2_big.h.div_ceil(2) * s2_big.w.div_ceil(2)) > 65_535);
    let fast_big = table.iter().find(|r| r.0 == "fast_grid_past_65535").unwrap().1;
    assert!(groups(fast_big.n * fast_big.out_h() * fast_big.out_w().div_ceil(8)) > 65_535);
    // The vec4b rows' forward and input gradient take matmul_vec4b by default (the weight gradient has
    // no vec4 operand): what runs above wherever tuning is off or cached on a fresh machine (CI). Their
    // weights are uploaded without a uniform window's room, so matmul_ub (the default where the
    // weights are a model's parameters) does not apply; tests/tuning.rs runs it.
    for (name, g) in table.iter().filter(|r| r.0.contains("_vec4b")) {
        let hw = g.h * g.w;
        let t = zeros("t", &[1]);
        let (x, wt, wm) = (
            Operand { t: &t, rows: 1, cols: hw },
            Operand { t: &t, rows: 1, cols: g.c_in },
            Operand { t: &t, rows: g.c_in, cols: 1 },
        );
        let fwd = Batch { count: g.n, a: g.c_in * hw, b: 0, c: g.c_out * hw };
        let v = matmul_variants((hw, g.c_out, g.c_in), &fwd, &x, &wt, false, false);
        assert_eq!(v[0].name(), "vec4b 8x8 b:k", "{name}: forward");
        let dx = Batch { count: g.n, a: g.c_out * hw, b: 0, c: g.c_in * hw };
        let v = matmul_variants((hw, g.c_in, g.c_out), &dx, &x, &wm, false, false);
        assert_eq!(v[0].name(), "vec4b 8x8 b:j", "{name}: input gradient");
    }
}

/// One conv row's tensors (x, w, b, dy, y, dx, dw) and the references of y, dx and dw.
struct ConvRow {
    t: [Tensor; 7],
    want_y: Vec<f64>,
    want_dx: Vec<f64>,
    want_dw: Vec<f64>,
}

/// The shape-specialised kernels (Conv2dDirect, Conv2dWeightGrad) against the same references.
fn check_fast_conv(name: &str, geom: &Conv2dGeom, row: &ConvRow) {
    let c = ctx();
    let [xt, wt, bt, dyt, yt, dxt, dwt] = &row.t;
    let fast_fwd = conv2d_forward_fast(c, name, geom, xt, wt, bt, yt).unwrap();
    let fast_dx = conv2d_backward_input_fast(c, name, geom, dyt, wt, dxt).unwrap();
    let fast_dw = conv2d_backward_weight_fast(c, name, geom, dyt, xt, dwt).unwrap();
    let stride1 = geom.stride_h == 1 && geom.stride_w == 1;
    let stride2 = geom.stride_h == 2 && geom.stride_w == 2;
    assert!(fast_fwd.is_some() && fast_dw.is_some(), "{name}: the fast kernels take every shape of this table");
    assert_eq!(fast_dx.is_some(), stride1 || stride2, "{name}: the fast input gradient takes strides 1 and 2");
    if let Some(l) = fast_fwd {
        if name.starts_with("subgroup_") {
            let sg = l.kernel == Kernel::Conv2dDirectSg;
            assert_eq!(sg, c.subgroup_size().is_some(), "{name}: conv2d_direct with subgroups ({:?})", l.kernel);
        }
        yt.write_f32(c, &vec![f32::NAN; geom.y_len()]).unwrap();
        let kernel = l.kernel.entry_point();
        let got = run_f32(Ok(l), yt);
        check(&format!("{kernel}/{name}"), &got, &row.want_y, F32_TOL);
    }
    // With the ReLU folded in (RELU): relu(conv(x) + b).
    let fused = conv2d_forward_fused(c, name, geom, xt, wt, bt, yt, true).unwrap().unwrap();
    yt.write_f32(c, &vec![f32::NAN; geom.y_len()]).unwrap();
    let got = run_f32(Ok(fused), yt);
    let want: Vec<f64> = row.want_y.iter().map(|v| v.max(0.0)).collect();
    check(&format!("conv2d_direct.relu/{name}"), &got, &want, F32_TOL);
    if let Some(l) = fast_dx {
        dxt.write_f32(c, &vec![f32::NAN; geom.x_len()]).unwrap();
        let got = run_f32(Ok(l), dxt);
        let want = &row.want_dx;
        let kernel = if stride2 { "conv2d_backward_input_s2" } else { "conv2d_direct.flip" };
        let kernel = if geom.kh == 1 && geom.kw == 1 && !stride2 { "matmul.conv1x1_dx" } else { kernel };
        check(&format!("{kernel}/{name}"), &got, want, F32_TOL);
    }
    if let Some(l) = fast_dw {
        dwt.write_f32(c, &vec![f32::NAN; geom.w_len()]).unwrap();
        let kernel = l.kernel.entry_point();
        let got = run_f32(Ok(l), dwt);
        check(&format!("{kernel}/{name}"), &got, &row.want_dw, F32_TOL);
    }
}

#[test]
fn linear_all_directions_match_reference() {
    let table = [
        ("lenet_fc1_batch1", LinearGeom { n: 1, in_f: 400, out_f: 120 }),
        ("lenet_fc2_batch64", LinearGeom { n: 64, in_f: 120, out_f: 84 }),
        ("lenet_fc3_batch7", LinearGeom { n: 7, in_f: 84, out_f: 10 }),
        ("ragged_1x1", LinearGeom { n: 1, in_f: 1, out_f: 1 }),
        ("ragged_33x65x17", LinearGeom { n: 33, in_f: 65, out_f: 17 }),
        // 5,000 rows: the weight and bias gradients are split into 2 chunks plus sum_chunks.
        ("batch5000_split", LinearGeom { n: 5000, in_f: 20, out_f: 10 }),
        // Past 65,535 workgroups: y (forward), x (backward_input), W (backward_weight) in turn.
        ("grid_past_65535_y", LinearGeom { n: 4100, in_f: 8, out_f: 1025 }),
        ("grid_past_65535_x", LinearGeom { n: 4100, in_f: 1025, out_f: 8 }),
        ("grid_past_65535_w", LinearGeom { n: 8, in_f: 2050, out_f: 2050 }),
    ];
    let c = ctx();
    // Positive and other products the fused ReLU saw over the table (a 1×1 row has one value).
    let mut signs = (0, 0);
    for (seed, (name, g)) in table.iter().enumerate() {
        let mut r = rng(400 + seed as u64);
        let x = r.vec_f32(g.x_len(), -1.0, 1.0);
        let w = r.vec_f32(g.w_len(), -1.0, 1.0);
        let b = r.vec_f32(g.out_f, -1.0, 1.0);
        let dy = r.vec_f32(g.y_len(), -1.0, 1.0);
        let (x64, w64, b64, dy64) = (to_f64(&x), to_f64(&w), to_f64(&b), to_f64(&dy));
        let (xt, wt, bt) =
            (upload("x", &[g.n, g.in_f], &x), upload("w", &[g.out_f, g.in_f], &w), upload("b", &[g.out_f], &b));
        let dyt = upload("dy", &[g.n, g.out_f], &dy);
        let (yt, dxt, dwt, dbt) =
            (zeros("y", &[g.y_len()]), zeros("dx", &[g.x_len()]), zeros("dw", &[g.w_len()]), zeros("db", &[g.out_f]));
        let want_y = cpu::linear_forward(g, &x64, &w64, &b64);
        let got = run_f32(linear_forward(c, name, g, &xt, &wt, &bt, &yt, false), &yt);
        check(&format!("linear_forward/{name}"), &got, &want_y, F32_TOL);
        // With its ReLU (the fuse pass's linear_relu): max(y, 0) of the same sums, bit for bit.
        yt.write_f32(c, &vec![f32::NAN; yt.len()]).unwrap();
        let got_relu = run_f32(linear_forward(c, name, g, &xt, &wt, &bt, &yt, true), &yt);
        check(&format!("linear_forward+relu/{name}"), &got_relu, &cpu::relu_forward(&want_y), F32_TOL);
        let (p, q) = relu_of(&format!("linear_forward+relu/{name}"), &got_relu, &got);
        signs = (signs.0 + p, signs.1 + q);
        let got = run_f32(linear_backward_input(c, name, g, &dyt, &wt, &dxt), &dxt);
        check(&format!("linear_backward_input/{name}"), &got, &cpu::linear_backward_input(g, &dy64, &w64), F32_TOL);
        let got = run_f32(linear_backward_weight(c, name, g, &dyt, &xt, &dwt), &dwt);
        check(&format!("linear_backward_weight/{name}"), &got, &cpu::linear_backward_weight(g, &dy64, &x64), F32_TOL);
        let got = run_f32(linear_backward_bias(c, name, g, &dyt, &dbt), &dbt);
        check(&format!("linear_backward_bias/{name}"), &got, &cpu::linear_backward_bias(g, &dy64), F32_TOL);

        // The register-blocked matmul kernel in each of the three roles (every row here has k <= 5,000).
        for t in [&yt, &dxt, &dwt] {
            t.write_f32(c, &vec![f32::NAN; t.len()]).unwrap();
        }
        let got = run_f32(Ok(linear_forward_fast(c, name, g, &xt, &wt, &bt, &yt, false).unwrap().unwrap()), &yt);
        check(&format!("matmul.forward/{name}"), &got, &want_y, F32_TOL);
        yt.write_f32(c, &vec![f32::NAN; yt.len()]).unwrap();
        let got_relu = run_f32(Ok(linear_forward_fast(c, name, g, &xt, &wt, &bt, &yt, true).unwrap().unwrap()), &yt);
        check(&format!("matmul.forward+relu/{name}"), &got_relu, &cpu::relu_forward(&want_y), F32_TOL);
        let (p, q) = relu_of(&format!("matmul.forward+relu/{name}"), &got_relu, &got);
        signs = (signs.0 + p, signs.1 + q);
        let got = run_f32(Ok(linear_backward_input_fast(c, name, g, &dyt, &wt, &dxt).unwrap().unwrap()), &dxt);
        check(&format!("matmul.backward_input/{name}"), &got, &cpu::linear_backward_input(g, &dy64, &w64), F32_TOL);
        let got = run_f32(Ok(linear_backward_weight_fast(c, name, g, &dyt, &xt, &dwt).unwrap().unwrap()), &dwt);
        let want = cpu::linear_backward_weight(g, &dy64, &x64);
        check(&format!("matmul.backward_weight/{name}"), &got, &want, F32_TOL);
    }
    assert!(signs.0 > 0 && signs.1 > 0, "the fused ReLU saw {} positive and {} other values", signs.0, signs.1);
    let n = table.len();
    assert!(groups(table[n - 3].1.y_len()) > 65_535);
    assert!(groups(table[n - 2].1.x_len()) > 65_535);
    assert!(groups(table[n - 1].1.w_len()) > 65_535);
}

#[test]
fn loop_cap_of_the_adapter_is_a_typed_error_not_a_wrong_answer() {
    // llvmpipe silently ends each invocation's loops after 65,535 iterations; a launch that would
    // need more must be refused up front. Elsewhere there is no cap and the same launch runs.
    // argmax_rows loops over a row: 70,000 classes is one invocation of 70,000 iterations.
    let c = ctx();
    let g = wgcnn::shape::LossGeom { n: 2, classes: 70_000 };
    let (zt, out) = (zeros("z", &[g.n, g.classes]), zeros_u32("argmax", &[g.n]));
    let r = wgcnn::kernels::reduce::argmax_rows(c, "too_long", &g, &zt, &out);
    if c.max_loop_iterations() < u64::MAX {
        assert_eq!(c.max_loop_iterations(), 65_535);
        match r {
            Err(wgcnn::Error::Limit { what, value, .. }) => {
                assert!(what.contains("loop iterations"), "{what}");
                assert_eq!(value, 70_000);
            }
            other => panic!("expected a loop limit error, got {:?}", other.map(|_| ())),
        }
    } else {
        assert!(r.is_ok());
    }
    // A sum of 4,480,000 elements (70,000 per invocation of one workgroup) spreads over workgroups
    // instead, and runs everywhere.
    let n = 64 * 70_000;
    let (xt, acc) = (upload("x", &[n], &vec![1.0; n]), zeros("acc", &[1]));
    c.run(&[&sum_accumulate(c, "long_sum", &xt, &acc).unwrap()]).unwrap();
    assert_eq!(acc.to_f32(c).unwrap(), [n as f32]);
}

#[test]
fn runs_on_the_adapter_the_environment_asks_for() {
    // .ci/run sets WGCNN_ADAPTER=software: there these tests must be running on lavapipe.
    let c = ctx();
    if std::env::var("WGCNN_ADAPTER").is_ok_and(|v| v.eq_ignore_ascii_case("software")) {
        assert!(c.is_software(), "asked for the software adapter, got {:?}", c.info);
    }
    assert!(!c.info.name.is_empty());
}

#[test]
fn every_kernel_is_covered_by_this_file() {
    // A new Kernel variant must get a test row here: this list is the coverage ledger.
    let src = [
        include_str!("kernels.rs"),
        include_str!("kernels_maps.rs"),
        include_str!("kernels_step.rs"),
        include_str!("kernels_norm.rs"),
        include_str!("kernels_tiled.rs"),
        include_str!("tuning.rs"),
    ]
    .concat();
    for k in Kernel::ALL {
        assert!(src.contains(k.entry_point()) || src.contains(&format!("{k:?}")), "{:?} has no test", k);
    }
}

/// A dispatch with fewer workgroups of 64 than 8 per CPU runs, on a software adapter, in smaller
/// workgroups (32, 16 or 8; never fewer threads than a subgroup) so that every CPU thread gets some:
/// LeNet-5's conv2 bias gradient at batch 64 is 32 invocations, one workgroup of 64. Kernels that share
/// workgroup memory or number their work by workgroup keep 64, as does a large dispatch and every
/// dispatch on a GPU. The small launch matches the reference; that the workgroup size leaves the bits
/// alone is what `tests/training.rs`' hash of LeNet-5's weights after an epoch checks (its small
/// dispatches run split).
#[test]
fn small_dispatches_run_in_smaller_workgroups_on_software_adapters() {
    let c = ctx();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let small = c.workgroup_for(Kernel::Conv2dBackwardBias4, 32, 1);
    if c.is_software() {
        assert!(small < 64 && small >= c.subgroup_size().unwrap_or(8).max(8), "{small}");
        assert!(32u64.div_ceil(u64::from(small)) > 1, "one workgroup leaves a CPU thread idle");
    } else {
        assert_eq!(small, 64);
    }
    assert_eq!(c.workgroup_for(Kernel::SumAccumulate, 32, 1), 64, "workgroup memory: fixed");
    assert_eq!(c.workgroup_for(Kernel::MatmulTiled, 32, 1), 64, "numbered by workgroup: fixed");
    assert_eq!(c.workgroup_for(Kernel::Conv2dBackwardBias4, 64 * 8 * cpus, 1), 64, "enough workgroups");
    assert_eq!(c.workgroup_for(Kernel::Conv2dBackwardBias4, 64, 8 * cpus as u32), 64, "layers count too");

    // LeNet-5's conv2 at batch 64: its bias gradient as the graph launches it.
    let geom = Conv2dGeom::square(64, 6, 14, 14, 16, 5, 1, 0);
    let mut rng = wgcnn::rng::Rng::new(21);
    let dy = rng.vec_f32(geom.y_len(), -1.0, 1.0);
    let dyt = Tensor::from_f32(c, "dy", &[geom.y_len()], &dy).unwrap();
    let dbt = zeros("db", &[geom.c_out]);
    let launch = conv2d_backward_bias(c, "db", &geom, &dyt, &dbt).unwrap();
    assert_eq!(launch.constant("WG").unwrap_or(64), small, "the launch's workgroup size");
    let got = run_f32(Ok(launch), &dbt);
    check("conv2d_backward_bias/lenet_conv2_b64", &got, &cpu::conv2d_backward_bias(&geom, &to_f64(&dy)), F32_TOL);
}
