//! Every GPU kernel against its CPU reference over a table of shapes: batch 1, LeNet's shapes, sizes
//! that are not multiples of any tile, stride 2, padding 0/1/2, and grids past 65,535 workgroups.

mod common;

use common::*;
use wgcnn::kernels::activation::{activation_backward, activation_forward, Activation};
use wgcnn::kernels::conv::*;
use wgcnn::kernels::conv_fast::*;
use wgcnn::kernels::elementwise::add_forward;
use wgcnn::kernels::gather::gather_batch;
use wgcnn::kernels::linear::*;
use wgcnn::kernels::loss::{loss_backward, loss_forward, LossKind};
use wgcnn::kernels::matmul::*;
use wgcnn::kernels::optim::{adam_update, sgd_update, Adam, Sgd};
use wgcnn::kernels::pool::*;
use wgcnn::kernels::reduce::{argmax_rows, correct_accumulate, sum_accumulate};
use wgcnn::kernels::{Kernel, WORKGROUP_SIZE};
use wgcnn::reference as cpu;
use wgcnn::shape::{Conv2dGeom, LinearGeom, LossGeom, Pool2dGeom};
use wgcnn::Tensor;

/// Workgroups a 1-D dispatch of `threads` would need; > 65,535 means the grid was folded.
fn groups(threads: usize) -> usize {
    threads.div_ceil(WORKGROUP_SIZE as usize)
}

#[test]
fn conv2d_all_directions_match_reference() {
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
    let table = [
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
    ];
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

        let got = run_f32(conv2d_forward(c, name, geom, &xt, &wt, &bt, &yt), &yt);
        check(&format!("conv2d_forward/{name}"), &got, &cpu::conv2d_forward(geom, &x64, &w64, &b64), F32_TOL);
        let got = run_f32(conv2d_backward_input(c, name, geom, &dyt, &wt, &dxt), &dxt);
        check(&format!("conv2d_backward_input/{name}"), &got, &cpu::conv2d_backward_input(geom, &dy64, &w64), F32_TOL);
        let got = run_f32(conv2d_backward_weight(c, name, geom, &dyt, &xt, &dwt), &dwt);
        check(
            &format!("conv2d_backward_weight/{name}"),
            &got,
            &cpu::conv2d_backward_weight(geom, &dy64, &x64),
            F32_TOL,
        );
        let got = run_f32(conv2d_backward_bias(c, name, geom, &dyt, &dbt), &dbt);
        check(&format!("conv2d_backward_bias/{name}"), &got, &cpu::conv2d_backward_bias(geom, &dy64), F32_TOL);

        // The shape-specialised kernels (Conv2dDirect, Conv2dWeightGrad) against the same references.
        let fast_fwd = conv2d_forward_fast(c, name, geom, &xt, &wt, &bt, &yt).unwrap();
        let fast_dx = conv2d_backward_input_fast(c, name, geom, &dyt, &wt, &dxt).unwrap();
        let fast_dw = conv2d_backward_weight_fast(c, name, geom, &dyt, &xt, &dwt).unwrap();
        let stride1 = geom.stride_h == 1 && geom.stride_w == 1;
        assert!(fast_fwd.is_some() && fast_dw.is_some(), "{name}: the fast kernels take every shape of this table");
        assert_eq!(fast_dx.is_some(), stride1, "{name}: the fast input gradient takes exactly the stride-1 shapes");
        if let Some(l) = fast_fwd {
            yt.write_f32(c, &vec![f32::NAN; geom.y_len()]).unwrap();
            let got = run_f32(Ok(l), &yt);
            check(&format!("conv2d_direct/{name}"), &got, &cpu::conv2d_forward(geom, &x64, &w64, &b64), F32_TOL);
        }
        // With the ReLU folded in (RELU): relu(conv(x) + b).
        let fused = conv2d_forward_fused(c, name, geom, &xt, &wt, &bt, &yt, true).unwrap().unwrap();
        yt.write_f32(c, &vec![f32::NAN; geom.y_len()]).unwrap();
        let got = run_f32(Ok(fused), &yt);
        let want: Vec<f64> = cpu::conv2d_forward(geom, &x64, &w64, &b64).iter().map(|v| v.max(0.0)).collect();
        check(&format!("conv2d_direct.relu/{name}"), &got, &want, F32_TOL);
        if let Some(l) = fast_dx {
            dxt.write_f32(c, &vec![f32::NAN; geom.x_len()]).unwrap();
            let got = run_f32(Ok(l), &dxt);
            let want = cpu::conv2d_backward_input(geom, &dy64, &w64);
            check(&format!("conv2d_direct.flip/{name}"), &got, &want, F32_TOL);
        }
        if let Some(l) = fast_dw {
            dwt.write_f32(c, &vec![f32::NAN; geom.w_len()]).unwrap();
            let got = run_f32(Ok(l), &dwt);
            check(
                &format!("conv2d_weight_grad/{name}"),
                &got,
                &cpu::conv2d_backward_weight(geom, &dy64, &x64),
                F32_TOL,
            );
        }
    }
    let big = table.iter().find(|r| r.0 == "grid_past_65535").unwrap().1;
    assert!(groups(big.y_len()) > 65_535 && groups(big.x_len()) > 65_535, "this row must fold the grid");
    let fast_big = table.iter().find(|r| r.0 == "fast_grid_past_65535").unwrap().1;
    assert!(groups(fast_big.n * fast_big.out_h() * fast_big.out_w().div_ceil(8)) > 65_535);
}

#[test]
fn activations_match_reference() {
    let c = ctx();
    // 4,200,000 elements: 65,625 workgroups, past the 65,535 per-dimension limit.
    for (seed, len) in [1usize, 7, 64, 65, 1000, 4_200_000].into_iter().enumerate() {
        let mut r = rng(200 + seed as u64);
        let x = r.vec_f32(len, -4.0, 4.0);
        let dy = r.vec_f32(len, -1.0, 1.0);
        let xt = upload("x", &[len], &x);
        let dyt = upload("dy", &[len], &dy);
        let yt = zeros("y", &[len]);
        let dxt = zeros("dx", &[len]);
        for act in [Activation::Relu, Activation::Tanh, Activation::Sigmoid] {
            let fwd = act.forward_kernel().entry_point();
            let bwd = act.backward_kernel().entry_point();
            let y = run_f32(activation_forward(c, fwd, act, &xt, &yt), &yt);
            let x64 = to_f64(&x);
            let want = match act {
                Activation::Relu => cpu::relu_forward(&x64),
                Activation::Tanh => cpu::tanh_forward(&x64),
                Activation::Sigmoid => cpu::sigmoid_forward(&x64),
            };
            // Transcendentals: WGSL exp/tanh are not correctly rounded; 1e-5 absolute on outputs in [-1, 1].
            check(&format!("{fwd}/len{len}"), &y, &want, Tol { atol: 1e-5, rtol: 1e-5 });
            let got = run_f32(activation_backward(c, bwd, act, &yt, &dyt, &dxt), &dxt);
            // The backward is checked on the GPU's own y, so it tests the backward formula alone.
            let (y64, dy64) = (to_f64(&y), to_f64(&dy));
            let want = match act {
                Activation::Relu => cpu::relu_backward(&y64, &dy64),
                Activation::Tanh => cpu::tanh_backward(&y64, &dy64),
                Activation::Sigmoid => cpu::sigmoid_backward(&y64, &dy64),
            };
            check(&format!("{bwd}/len{len}"), &got, &want, Tol { atol: 1e-6, rtol: 1e-6 });
        }
    }
}

#[test]
fn add_matches_reference() {
    let c = ctx();
    // 4,200,000 elements: 65,625 workgroups, past the 65,535 per-dimension limit. A sum of two f32 is
    // correctly rounded, so the result is the f64 sum rounded once: 1 ulp (6e-8 relative) at most.
    for (seed, len) in [1usize, 7, 64, 65, 1000, 4_200_000].into_iter().enumerate() {
        let mut r = rng(250 + seed as u64);
        let (a, b) = (r.vec_f32(len, -4.0, 4.0), r.vec_f32(len, -4.0, 4.0));
        let (at, bt, yt) = (upload("a", &[len], &a), upload("b", &[len], &b), zeros("y", &[len]));
        let got = run_f32(add_forward(c, "add", &at, &bt, &yt), &yt);
        let want = cpu::add_forward(&to_f64(&a), &to_f64(&b));
        check(&format!("add_forward/len{len}"), &got, &want, Tol { atol: 0.0, rtol: 6e-8 });
    }
    // Mismatched lengths are a typed error.
    let (a, b, y) = (zeros("a", &[4]), zeros("b", &[5]), zeros("y", &[4]));
    assert!(add_forward(c, "add", &a, &b, &y).is_err());
}

#[test]
fn pooling_matches_reference() {
    let table = [
        ("lenet_pool1_batch1", Pool2dGeom::square(1, 6, 28, 28, 2, 2)),
        ("lenet_pool2_batch4", Pool2dGeom::square(4, 16, 10, 10, 2, 2)),
        ("ragged_odd_input", Pool2dGeom::square(2, 3, 7, 9, 2, 2)),
        ("overlapping_3s2", Pool2dGeom::square(2, 2, 11, 10, 3, 2)),
        ("rect_window", Pool2dGeom { n: 1, c: 3, h: 9, w: 8, kh: 3, kw: 2, stride_h: 1, stride_w: 2 }),
        ("window_eq_input", Pool2dGeom::square(3, 2, 5, 5, 5, 1)),
        // 4.4M input elements (backward) and 1.1M outputs.
        ("grid_past_65535", Pool2dGeom::square(1, 1, 2100, 2100, 2, 2)),
        // 4.4M windows: the tiled kernels (one invocation per window) fold their grid too.
        ("tiles_grid_past_65535", Pool2dGeom::square(1, 1, 4200, 4200, 2, 2)),
    ];
    let c = ctx();
    for (seed, (name, g)) in table.iter().enumerate() {
        let mut r = rng(300 + seed as u64);
        let x = r.vec_f32(g.x_len(), -1.0, 1.0);
        let dy = r.vec_f32(g.y_len(), -1.0, 1.0);
        let (x64, dy64) = (to_f64(&x), to_f64(&dy));
        let xt = upload("x", &[g.x_len()], &x);
        let dyt = upload("dy", &[g.y_len()], &dy);
        let yt = zeros("y", &[g.y_len()]);
        let argt = zeros_u32("argmax", &[g.y_len()]);
        let dxt = zeros("dx", &[g.x_len()]);

        let l = maxpool2d_forward(c, name, g, &xt, &yt, &argt).unwrap();
        c.run(&[&l]).unwrap();
        let (want_y, want_arg) = cpu::maxpool2d_forward(g, &x64);
        check(&format!("maxpool2d_forward/{name}"), &yt.to_f32(c).unwrap(), &want_y, Tol { atol: 0.0, rtol: 0.0 });
        check_u32(&format!("maxpool2d_forward.argmax/{name}"), &argt.to_u32(c).unwrap(), &want_arg);
        let got = run_f32(maxpool2d_backward(c, name, g, &dyt, &argt, &dxt), &dxt);
        check(&format!("maxpool2d_backward/{name}"), &got, &cpu::maxpool2d_backward(g, &dy64, &want_arg), F32_TOL);

        // The tiled kernels (MaxPool2dTilesForward/Backward) where the windows tile the input.
        let tiled = g.kh == g.stride_h && g.kw == g.stride_w && g.h % g.kh == 0 && g.w % g.kw == 0;
        let fwd = maxpool2d_forward_fast(c, name, g, &xt, &yt, &argt).unwrap();
        assert_eq!(fwd.is_some(), tiled, "{name}");
        if let Some(l) = fwd {
            yt.write_f32(c, &vec![f32::NAN; g.y_len()]).unwrap();
            argt.write_u32(c, &vec![u32::MAX; g.y_len()]).unwrap();
            c.run(&[&l]).unwrap();
            let exact = Tol { atol: 0.0, rtol: 0.0 };
            check(&format!("maxpool2d_tiles_forward/{name}"), &yt.to_f32(c).unwrap(), &want_y, exact);
            check_u32(&format!("maxpool2d_tiles_forward.argmax/{name}"), &argt.to_u32(c).unwrap(), &want_arg);
            dxt.write_f32(c, &vec![f32::NAN; g.x_len()]).unwrap();
            let l = maxpool2d_backward_fast(c, name, g, &dyt, &argt, &dxt).unwrap().unwrap();
            let got = run_f32(Ok(l), &dxt);
            check(
                &format!("maxpool2d_tiles_backward/{name}"),
                &got,
                &cpu::maxpool2d_backward(g, &dy64, &want_arg),
                exact,
            );
            // With the mask of a ReLU before the pool (RELU_MASK): the pooled input is relu(x).
            let relu_x: Vec<f32> = x.iter().map(|v| v.max(0.0)).collect();
            xt.write_f32(c, &relu_x).unwrap();
            c.run(&[&maxpool2d_forward_fast(c, name, g, &xt, &yt, &argt).unwrap().unwrap()]).unwrap();
            let (want_y, want_arg) = cpu::maxpool2d_forward(g, &to_f64(&relu_x));
            dxt.write_f32(c, &vec![f32::NAN; g.x_len()]).unwrap();
            let l = maxpool2d_backward_fused(c, name, g, &dyt, &argt, &yt, &dxt, true).unwrap().unwrap();
            let got = run_f32(Ok(l), &dxt);
            let pooled = cpu::maxpool2d_backward(g, &dy64, &want_arg);
            // relu'(x) at each window's argmax is 1 exactly when the window's maximum is positive.
            let mut live = vec![false; g.x_len()];
            for (o, &a) in want_arg.iter().enumerate() {
                let plane = o / (g.out_h() * g.out_w());
                live[plane * g.h * g.w + a as usize] = want_y[o] > 0.0;
            }
            let want: Vec<f64> = pooled.iter().zip(&live).map(|(&d, &l)| if l { d } else { 0.0 }).collect();
            check(&format!("maxpool2d_tiles_backward.relu_mask/{name}"), &got, &want, exact);
            xt.write_f32(c, &x).unwrap();
        }

        let got = run_f32(avgpool2d_forward(c, name, g, &xt, &yt), &yt);
        check(&format!("avgpool2d_forward/{name}"), &got, &cpu::avgpool2d_forward(g, &x64), F32_TOL);
        let got = run_f32(avgpool2d_backward(c, name, g, &dyt, &dxt), &dxt);
        check(&format!("avgpool2d_backward/{name}"), &got, &cpu::avgpool2d_backward(g, &dy64), F32_TOL);
    }
    assert!(groups(table[table.len() - 2].1.x_len()) > 65_535);
    assert!(groups(table.last().unwrap().1.y_len()) > 65_535);
}

#[test]
fn maxpool_ties_pick_the_first_maximum() {
    // NaN is not tested: WGSL lets implementations assume no NaN (llvmpipe drops `v != v`), so
    // max-pool gives no NaN guarantee; the trainer watches the loss instead.
    let c = ctx();
    let g = Pool2dGeom::square(1, 1, 2, 4, 2, 2);
    let x = [1.0, 1.0, 2.0, 3.0, 1.0, 1.0, 3.0, 0.0];
    let xt = upload("x", &[8], &x);
    let yt = zeros("y", &[2]);
    let argt = zeros_u32("argmax", &[2]);
    c.run(&[&maxpool2d_forward(c, "ties", &g, &xt, &yt, &argt).unwrap()]).unwrap();
    let (want_y, want_arg) = cpu::maxpool2d_forward(&g, &to_f64(&x));
    assert_eq!(want_arg, vec![0, 3]);
    check_u32("maxpool2d_forward.argmax/ties", &argt.to_u32(c).unwrap(), &want_arg);
    check("maxpool2d_forward/ties", &yt.to_f32(c).unwrap(), &want_y, Tol { atol: 0.0, rtol: 0.0 });
    c.run(&[&maxpool2d_forward_fast(c, "ties", &g, &xt, &yt, &argt).unwrap().unwrap()]).unwrap();
    check_u32("maxpool2d_tiles_forward.argmax/ties", &argt.to_u32(c).unwrap(), &want_arg);
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
        let got = run_f32(linear_forward(c, name, g, &xt, &wt, &bt, &yt), &yt);
        check(&format!("linear_forward/{name}"), &got, &cpu::linear_forward(g, &x64, &w64, &b64), F32_TOL);
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
        let got = run_f32(Ok(linear_forward_fast(c, name, g, &xt, &wt, &bt, &yt).unwrap().unwrap()), &yt);
        check(&format!("matmul.forward/{name}"), &got, &cpu::linear_forward(g, &x64, &w64, &b64), F32_TOL);
        let got = run_f32(Ok(linear_backward_input_fast(c, name, g, &dyt, &wt, &dxt).unwrap().unwrap()), &dxt);
        check(&format!("matmul.backward_input/{name}"), &got, &cpu::linear_backward_input(g, &dy64, &w64), F32_TOL);
        let got = run_f32(Ok(linear_backward_weight_fast(c, name, g, &dyt, &xt, &dwt).unwrap().unwrap()), &dwt);
        let want = cpu::linear_backward_weight(g, &dy64, &x64);
        check(&format!("matmul.backward_weight/{name}"), &got, &want, F32_TOL);
    }
    let n = table.len();
    assert!(groups(table[n - 3].1.y_len()) > 65_535);
    assert!(groups(table[n - 2].1.x_len()) > 65_535);
    assert!(groups(table[n - 1].1.w_len()) > 65_535);
}

#[test]
fn losses_match_reference() {
    let c = ctx();
    let table = [
        ("batch1", LossGeom { n: 1, classes: 10 }),
        ("lenet_batch64", LossGeom { n: 64, classes: 10 }),
        ("ragged_65x3", LossGeom { n: 65, classes: 3 }),
        ("one_class", LossGeom { n: 5, classes: 1 }),
        // 4.2M logits: the backward grid folds.
        ("grid_past_65535", LossGeom { n: 420_000, classes: 10 }),
    ];
    for (seed, (name, g)) in table.iter().enumerate() {
        let mut r = rng(500 + seed as u64);
        // Large logits (±30) exercise the max-subtraction; exp(30) alone would lose digits.
        let z = r.vec_f32(g.len(), -30.0, 30.0);
        let labels: Vec<u32> = (0..g.n).map(|_| r.below(g.classes as u64) as u32).collect();
        let scale = 1.0 / g.n as f32;
        let zt = upload("logits", &[g.n, g.classes], &z);
        let lt = Tensor::from_u32(c, "labels", &[g.n], &labels).unwrap();
        let (losst, probst, dzt) = (zeros("loss", &[g.n]), zeros("probs", &[g.len()]), zeros("dz", &[g.len()]));
        for kind in [LossKind::CrossEntropy, LossKind::SquaredError] {
            let (fwd, bwd) = (kind.forward_kernel().entry_point(), kind.backward_kernel().entry_point());
            c.run(&[&loss_forward(c, name, kind, g, &zt, &lt, &losst, &probst).unwrap()]).unwrap();
            let z64 = to_f64(&z);
            let (want_loss, want_p) = match kind {
                LossKind::CrossEntropy => cpu::softmax_xent_forward(g, &z64, &labels),
                LossKind::SquaredError => cpu::softmax_mse_forward(g, &z64, &labels),
            };
            // Losses up to ~60 from logits of ±30: 1e-5 relative covers exp/log rounding.
            check(&format!("{fwd}.loss/{name}"), &losst.to_f32(c).unwrap(), &want_loss, Tol { atol: 1e-5, rtol: 1e-5 });
            check(&format!("{fwd}.probs/{name}"), &probst.to_f32(c).unwrap(), &want_p, Tol { atol: 1e-6, rtol: 1e-5 });
            let got = run_f32(loss_backward(c, name, kind, g, scale, &probst, &lt, &dzt), &dzt);
            let p64 = to_f64(&probst.to_f32(c).unwrap());
            let want = match kind {
                LossKind::CrossEntropy => cpu::softmax_xent_backward(g, f64::from(scale), &p64, &labels),
                LossKind::SquaredError => cpu::softmax_mse_backward(g, f64::from(scale), &p64, &labels),
            };
            check(&format!("{bwd}/{name}"), &got, &want, Tol { atol: 1e-7, rtol: 1e-5 });
        }
    }
}

#[test]
fn loss_with_bad_label_is_nan_not_a_crash() {
    let c = ctx();
    let g = LossGeom { n: 2, classes: 3 };
    let zt = upload("logits", &[2, 3], &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
    let lt = Tensor::from_u32(c, "labels", &[2], &[1, 7]).unwrap();
    let (losst, probst) = (zeros("loss", &[2]), zeros("probs", &[6]));
    for kind in [LossKind::CrossEntropy, LossKind::SquaredError] {
        c.run(&[&loss_forward(c, "bad_label", kind, &g, &zt, &lt, &losst, &probst).unwrap()]).unwrap();
        let loss = losst.to_f32(c).unwrap();
        assert!(loss[0].is_finite() && loss[1].is_nan(), "{kind:?}: {loss:?}");
    }
}

#[test]
fn optimizers_match_reference_over_several_steps() {
    let c = ctx();
    let sgds = [
        ("sgd_plain", Sgd { lr: 0.1, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false }),
        ("sgd_momentum", Sgd { lr: 0.05, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false }),
        ("sgd_nesterov_wd", Sgd { lr: 0.05, momentum: 0.9, dampening: 0.0, weight_decay: 1e-2, nesterov: true }),
        ("sgd_dampening", Sgd { lr: 0.05, momentum: 0.5, dampening: 0.3, weight_decay: 0.0, nesterov: false }),
    ];
    let adams =
        [("adam_default", Adam::default()), ("adam_wd", Adam { lr: 3e-3, weight_decay: 1e-2, ..Adam::default() })];
    // 61,706 = LeNet-5's parameter count; 4.2M folds the grid.
    for (seed, len) in [1usize, 61_706, 4_200_000].into_iter().enumerate() {
        let mut r = rng(600 + seed as u64);
        let w0 = r.vec_f32(len, -1.0, 1.0);
        let grads: Vec<Vec<f32>> = (0..3).map(|_| r.vec_f32(len, -1.0, 1.0)).collect();
        for (name, opt) in &sgds {
            let (pt, bt, gt) = (upload("param", &[len], &w0), zeros("buf", &[len]), zeros("grad", &[len]));
            let (mut w, mut buf) = (w0.clone(), vec![0.0f32; len]);
            for (step, g) in grads.iter().enumerate() {
                let step = step as u64 + 1;
                gt.write_f32(c, g).unwrap();
                c.run(&[&sgd_update(c, name, opt, step, &gt, &pt, &bt).unwrap()]).unwrap();
                cpu::sgd_update(&opt.params(len, step).unwrap(), g, &mut w, &mut buf);
            }
            // Same f32 formula on both sides: only FMA contraction may differ, by an ulp or so per step.
            let tol = Tol { atol: 1e-6, rtol: 1e-6 };
            check(&format!("sgd_update.param/{name}/len{len}"), &pt.to_f32(c).unwrap(), &to_f64(&w), tol);
            check(&format!("sgd_update.buf/{name}/len{len}"), &bt.to_f32(c).unwrap(), &to_f64(&buf), tol);
        }
        for (name, opt) in &adams {
            let (pt, mt, vt, gt) =
                (upload("param", &[len], &w0), zeros("m", &[len]), zeros("v", &[len]), zeros("grad", &[len]));
            let (mut w, mut m, mut v) = (w0.clone(), vec![0.0f32; len], vec![0.0f32; len]);
            for (step, g) in grads.iter().enumerate() {
                let step = step as u64 + 1;
                gt.write_f32(c, g).unwrap();
                c.run(&[&adam_update(c, name, opt, step, &gt, &pt, &mt, &vt).unwrap()]).unwrap();
                cpu::adam_update(&opt.params(len, step).unwrap(), g, &mut w, &mut m, &mut v);
            }
            let tol = Tol { atol: 1e-6, rtol: 1e-5 };
            check(&format!("adam_update.param/{name}/len{len}"), &pt.to_f32(c).unwrap(), &to_f64(&w), tol);
            check(&format!("adam_update.exp_avg/{name}/len{len}"), &mt.to_f32(c).unwrap(), &to_f64(&m), tol);
            check(&format!("adam_update.exp_avg_sq/{name}/len{len}"), &vt.to_f32(c).unwrap(), &to_f64(&v), tol);
        }
    }
}

#[test]
fn gather_batch_matches_reference() {
    let c = ctx();
    let mut r = rng(700);
    // 101 items of 784 bytes: the dataset's byte length is not a multiple of 4 per item boundary.
    for (name, items, item, batch) in [
        ("mnist_like", 101usize, 784usize, 64usize),
        ("odd_item_size", 13, 7, 5),
        ("batch1", 3, 784, 1),
        ("grid_past_65535", 50, 784, 5400),
    ] {
        let images: Vec<u8> = (0..items * item).map(|_| r.below(256) as u8).collect();
        let labels: Vec<u8> = (0..items).map(|_| r.below(10) as u8).collect();
        let mut indices: Vec<u32> = (0..batch).map(|_| r.below(items as u64) as u32).collect();
        indices[batch / 2] = items as u32 + 3; // out of range: zeros and label u32::MAX
        let it = Tensor::from_u8(c, "images", &[items, item], &images).unwrap();
        let lt = Tensor::from_u8(c, "labels", &[items], &labels).unwrap();
        let idt = Tensor::from_u32(c, "indices", &[batch], &indices).unwrap();
        let (xt, yt) = (zeros("x", &[batch, item]), zeros_u32("y", &[batch]));
        c.run(&[&gather_batch(c, name, 255.0, &it, &lt, &idt, 0, &xt, &yt).unwrap()]).unwrap();
        let (want_x, want_y) = cpu::gather_batch(255.0, &images, &labels, &indices);
        // Both sides compute byte / 255 in f32: bit-identical.
        check(
            &format!("gather_batch.x/{name}"),
            &xt.to_f32(c).unwrap(),
            &to_f64(&want_x),
            Tol { atol: 0.0, rtol: 0.0 },
        );
        check_u32(&format!("gather_batch.y/{name}"), &yt.to_u32(c).unwrap(), &want_y);
    }
    assert!(groups(5400 * 784) > 65_535);
}

#[test]
fn reductions_match_reference() {
    let c = ctx();
    let table = [
        ("batch1", LossGeom { n: 1, classes: 10 }),
        ("lenet_batch64", LossGeom { n: 64, classes: 10 }),
        ("ragged_1000x7", LossGeom { n: 1000, classes: 7 }),
        ("long_300000", LossGeom { n: 300_000, classes: 1 }),
    ];
    for (seed, (name, g)) in table.into_iter().enumerate() {
        let mut r = rng(800 + seed as u64);
        let z = r.vec_f32(g.len(), -1.0, 1.0);
        let labels: Vec<u32> = (0..g.n).map(|_| r.below(g.classes as u64) as u32).collect();
        let zt = upload("logits", &[g.n, g.classes], &z);
        let lt = Tensor::from_u32(c, "labels", &[g.n], &labels).unwrap();
        let acc = upload("acc", &[1], &[0.5]);
        let cacc = Tensor::from_u32(c, "correct", &[1], &[3]).unwrap();
        let out = zeros_u32("argmax", &[g.n]);
        // Twice: accumulators add across launches.
        let sum = sum_accumulate(c, name, &zt, &acc).unwrap();
        let cor = correct_accumulate(c, name, &g, &zt, &lt, &cacc).unwrap();
        c.run(&[&sum, &cor, &sum, &cor]).unwrap();
        c.run(&[&argmax_rows(c, name, &g, &zt, &out).unwrap()]).unwrap();
        let z64 = to_f64(&z);
        let once = cpu::sum_accumulate(0.0, &z64);
        check(&format!("sum_accumulate/{name}"), &acc.to_f32(c).unwrap(), &[0.5 + 2.0 * once], F32_TOL);
        let want_arg = cpu::argmax_rows(&g, &z64);
        check_u32(&format!("argmax_rows/{name}"), &out.to_u32(c).unwrap(), &want_arg);
        let once = cpu::correct_accumulate(0, &g, &z64, &labels);
        check_u32(&format!("correct_accumulate/{name}"), &cacc.to_u32(c).unwrap(), &[3 + 2 * once]);
    }
}

#[test]
fn argmax_rows_and_sum_chunks_fold_large_grids() {
    let c = ctx();
    let mut r = rng(850);
    let g = LossGeom { n: 4_200_000, classes: 1 };
    let z = r.vec_f32(g.len(), -1.0, 1.0);
    let zt = upload("logits", &[g.n, 1], &z);
    let out = zeros_u32("argmax", &[g.n]);
    c.run(&[&argmax_rows(c, "grid_past_65535", &g, &zt, &out).unwrap()]).unwrap();
    check_u32("argmax_rows/grid_past_65535", &out.to_u32(c).unwrap(), &cpu::argmax_rows(&g, &to_f64(&z)));
    // 3 chunks of 4.2M elements summed in order.
    let (chunks, len) = (3, 4_200_000);
    let partial = r.vec_f32(chunks * len, -1.0, 1.0);
    let pt = upload("partial", &[chunks, len], &partial);
    let sums = zeros("sums", &[len]);
    c.run(&[&wgcnn::kernels::reduce::sum_chunks(c, "grid_past_65535", &pt, chunks, &sums).unwrap()]).unwrap();
    let want: Vec<f64> = (0..len).map(|i| (0..chunks).map(|k| f64::from(partial[k * len + i])).sum()).collect();
    check("sum_chunks/grid_past_65535", &sums.to_f32(c).unwrap(), &want, F32_TOL);
    assert!(groups(len) > 65_535 && groups(g.n) > 65_535);
}

#[test]
fn loop_cap_of_the_adapter_is_a_typed_error_not_a_wrong_answer() {
    // llvmpipe silently ends each invocation's loops after 65,535 iterations; a launch that would
    // need more must be refused up front. Elsewhere there is no cap and the same launch runs.
    let c = ctx();
    let n = 64 * 70_000;
    let xt = zeros("x", &[n]);
    let acc = zeros("acc", &[1]);
    let r = sum_accumulate(c, "too_long", &xt, &acc);
    if c.max_loop_iterations() < u64::MAX {
        assert_eq!(c.max_loop_iterations(), 65_535);
        match r {
            Err(wgcnn::Error::Limit { what, value, .. }) => {
                assert!(what.contains("loop iterations"), "{what}");
                assert!(value > 65_535);
            }
            other => panic!("expected a loop limit error, got {:?}", other.map(|_| ())),
        }
    } else {
        assert!(r.is_ok());
    }
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
    let src = include_str!("kernels.rs");
    for k in Kernel::ALL {
        assert!(src.contains(k.entry_point()) || src.contains(&format!("{k:?}")), "{:?} has no test", k);
    }
}

#[test]
fn gather_batch_reads_from_an_offset_in_the_index_list() {
    let c = ctx();
    let mut r = rng(710);
    let (items, item) = (20usize, 9usize);
    let images: Vec<u8> = (0..items * item).map(|_| r.below(256) as u8).collect();
    let labels: Vec<u8> = (0..items).map(|_| r.below(10) as u8).collect();
    let mut perm: Vec<u32> = (0..items as u32).collect();
    r.shuffle(&mut perm);
    let it = Tensor::from_u8(c, "images", &[items, item], &images).unwrap();
    let lt = Tensor::from_u8(c, "labels", &[items], &labels).unwrap();
    let pt = Tensor::from_u32(c, "perm", &[items], &perm).unwrap();
    let (xt, yt) = (zeros("x", &[6, item]), zeros_u32("y", &[6]));
    let l = gather_batch(c, "offset", 255.0, &it, &lt, &pt, 0, &xt, &yt).unwrap();
    for first in [0usize, 6, 14] {
        l.set_params(c, &wgcnn::kernels::gather::gather_params(255.0, &it, &lt, &pt, first, &xt, &yt).unwrap());
        c.run(&[&l]).unwrap();
        let (want_x, want_y) = cpu::gather_batch(255.0, &images, &labels, &perm[first..first + 6]);
        check(
            &format!("gather_batch.x/first{first}"),
            &xt.to_f32(c).unwrap(),
            &to_f64(&want_x),
            Tol { atol: 0.0, rtol: 0.0 },
        );
        check_u32(&format!("gather_batch.y/first{first}"), &yt.to_u32(c).unwrap(), &want_y);
    }
    assert!(wgcnn::kernels::gather::gather_params(255.0, &it, &lt, &pt, 15, &xt, &yt).is_err(), "past the end");
}
