//! The kernels on feature maps against their CPU references: activations, add and pooling, over
//! shapes with batch 1, ragged sizes and grids past 65,535 workgroups. (The coverage ledger is in
//! kernels.rs.)

mod common;

use common::*;
use wgcnn::kernels::activation::{activation_backward, activation_forward, Activation};
use wgcnn::kernels::concat::{concat_backward, concat_backward_add, concat_forward};
use wgcnn::kernels::dropout::{dropout_backward, dropout_forward, DropoutParams};
use wgcnn::kernels::elementwise::{add_forward, add_n_forward};
use wgcnn::kernels::pool::*;
use wgcnn::kernels::Kernel;
use wgcnn::reference as cpu;
use wgcnn::shape::{ConcatGeom, Pool2dGeom};

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
fn three_and_four_term_adds_give_the_chain_of_two_term_adds_bit_for_bit() {
    // add_n_forward sums ((t0 + t1) + t2) + t3 in one pass: the bits a chain of two-term adds gives (the
    // gradient sums autodiff emits at a value with several consumers), and within the rounding of three
    // f32 additions of the f64 sum. Lengths: 1 and 7 (the scalar kernel), 1000 (the vec4 one), and
    // 4,200,001 (the scalar kernel over 65,626 workgroups, past 65,535).
    let c = ctx();
    for (seed, len) in [1usize, 7, 1000, 4_200_001].into_iter().enumerate() {
        let mut r = rng(260 + seed as u64);
        let v: Vec<Vec<f32>> = (0..4).map(|_| r.vec_f32(len, -4.0, 4.0)).collect();
        let t: Vec<wgcnn::Tensor> = v.iter().enumerate().map(|(i, x)| upload(&format!("t{i}"), &[len], x)).collect();
        for terms in [3usize, 4] {
            let ins: Vec<&wgcnn::Tensor> = t[..terms].iter().collect();
            let yt = zeros("y", &[len]);
            let l = add_n_forward(c, "addn", &ins, &yt, false).unwrap();
            assert_eq!(l.kernels().len(), 1, "one dispatch for {terms} terms");
            let got = run_f32(Ok(l), &yt);
            // The chain: acc = t0 + t1, then acc + t2, acc + t3.
            let acc = zeros("acc", &[len]);
            c.run(&[&add_forward(c, "chain", &t[0], &t[1], &acc).unwrap()]).unwrap();
            for tk in &t[2..terms] {
                let next = zeros("next", &[len]);
                c.run(&[&add_forward(c, "chain", &acc, tk, &next).unwrap()]).unwrap();
                acc.write_f32(c, &next.to_f32(c).unwrap()).unwrap();
            }
            let chain = acc.to_f32(c).unwrap();
            let differ = got.iter().zip(&chain).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(differ, 0, "{terms} terms, length {len}: {differ} values differ from the chain");
            let want = (0..len).map(|i| v[..terms].iter().map(|x| f64::from(x[i])).sum()).collect::<Vec<f64>>();
            check(&format!("add_n_forward/{terms}/len{len}"), &got, &want, Tol { atol: 3e-6, rtol: 2e-7 });
        }
    }
    assert!(groups(4_200_001) > 65_535);
    // One term, five terms, or a term of another length: typed errors.
    let (a, b, y) = (zeros("a", &[4]), zeros("b", &[5]), zeros("y", &[4]));
    assert!(add_n_forward(c, "add", &[&a], &y, false).is_err());
    assert!(add_n_forward(c, "add", &[&a, &a, &a, &a, &a], &y, false).is_err());
    assert!(add_n_forward(c, "add", &[&a, &a, &b], &y, false).is_err());
}

#[test]
fn pooling_matches_reference() {
    let table = [
        ("lenet_pool1_batch1", Pool2dGeom::square(1, 6, 28, 28, 2, 2)),
        ("lenet_pool2_batch4", Pool2dGeom::square(4, 16, 10, 10, 2, 2)),
        // Tiles two windows per invocation (2 wide on rows of a multiple of 4; LeNet's pool1 above):
        // odd batch and channel counts, and 3-row windows.
        ("tile_pairs_ragged", Pool2dGeom::square(3, 5, 6, 12, 2, 2)),
        (
            "tile_pairs_3x2_window",
            Pool2dGeom { n: 2, c: 3, h: 9, w: 8, kh: 3, kw: 2, stride_h: 3, stride_w: 2, pad_h: 0, pad_w: 0 },
        ),
        ("ragged_odd_input", Pool2dGeom::square(2, 3, 7, 9, 2, 2)),
        ("overlapping_3s2", Pool2dGeom::square(2, 2, 11, 10, 3, 2)),
        (
            "rect_window",
            Pool2dGeom { n: 1, c: 3, h: 9, w: 8, kh: 3, kw: 2, stride_h: 1, stride_w: 2, pad_h: 0, pad_w: 0 },
        ),
        ("window_eq_input", Pool2dGeom::square(3, 2, 5, 5, 5, 1)),
        // Padding (PyTorch's: padded cells never win a max, count as zeros in an average).
        ("pad1_3s2_ragged", Pool2dGeom::square(2, 3, 7, 8, 3, 2).padded(1)),
        ("pad1_2s2", Pool2dGeom::square(2, 3, 6, 6, 2, 2).padded(1)),
        ("pad1_3s1_batch1", Pool2dGeom::square(1, 2, 5, 5, 3, 1).padded(1)),
        // global_avgpool's geometry: one window over each whole (here non-square) plane.
        (
            "global_plane_7x9",
            Pool2dGeom { n: 2, c: 3, h: 7, w: 9, kh: 7, kw: 9, stride_h: 7, stride_w: 9, pad_h: 0, pad_w: 0 },
        ),
        // 2-wide windows on even rows not a multiple of 4 (each window's rows one vec2).
        (
            "vec2_tiles_3x2_window",
            Pool2dGeom { n: 3, c: 4, h: 9, w: 6, kh: 3, kw: 2, stride_h: 3, stride_w: 2, pad_h: 0, pad_w: 0 },
        ),
        ("vec2_tiles_inception_batch1", Pool2dGeom::square(1, 5, 14, 14, 2, 2)),
        // 4.2M windows of 2x2 on 4,098-wide rows: 65,634 workgroups, past 65,535.
        ("vec2_tiles_grid_past_65535", Pool2dGeom::square(1, 1, 4100, 4098, 2, 2)),
        // 4.4M input elements (backward) and 1.1M outputs.
        ("grid_past_65535", Pool2dGeom::square(1, 1, 2100, 2100, 2, 2)),
        // 4.4M windows: the tiled kernels (one invocation per window) fold their grid too.
        ("tiles_grid_past_65535", Pool2dGeom::square(1, 1, 4200, 4200, 2, 2)),
        // Padded windows over 4.4M input elements: the backward's grid folds.
        ("pad1_grid_past_65535", Pool2dGeom::square(1, 1, 2100, 2100, 3, 2).padded(1)),
        // An inception branch's 3x3 stride-1 padded pool with 4.4M outputs: the plain kernels' grids
        // fold (the window kernels' default run of 7 needs 8x fewer invocations; tests/tuning.rs
        // runs every run on this shape, run 1's grid folding).
        ("pad1_3s1_grid_past_65535", Pool2dGeom::square(1, 1, 2100, 2100, 3, 1).padded(1)),
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

        // The specialised kernels: MaxPool2dTilesForward/Backward where the windows tile the input,
        // MaxPool2dWindowForward/Backward elsewhere; both exactly the plain kernels' values (the same
        // order of comparisons and sums), the backward against the plain kernel's bits.
        let plain_dx = got;
        let tiled = g.kh == g.stride_h && g.kw == g.stride_w && g.h % g.kh == 0 && g.w % g.kw == 0 && g.pad_h == 0;
        let fwd =
            maxpool2d_forward_fast(c, name, g, &xt, &yt, &argt).unwrap().expect("every shape has a fast max-pool");
        let which = if tiled { "tiles" } else { "window" };
        let pairs = tiles_in_pairs(c, g);
        let vec2 = tiles_in_vec2(c, g);
        assert!(!(pairs || vec2) || tiled, "{name}");
        assert!(!(pairs && vec2), "{name}");
        let kernel = match (tiled, pairs, vec2) {
            (true, true, _) => Kernel::MaxPool2dTilesForward4,
            (true, false, true) => Kernel::MaxPool2dTilesForward2,
            (true, false, false) => Kernel::MaxPool2dTilesForward,
            _ => Kernel::MaxPool2dWindowForward,
        };
        assert_eq!(fwd.kernel, kernel, "{name}");
        yt.write_f32(c, &vec![f32::NAN; g.y_len()]).unwrap();
        argt.write_u32(c, &vec![u32::MAX; g.y_len()]).unwrap();
        c.run(&[&fwd]).unwrap();
        let exact = Tol { atol: 0.0, rtol: 0.0 };
        check(&format!("maxpool2d_{which}_forward/{name}"), &yt.to_f32(c).unwrap(), &want_y, exact);
        check_u32(&format!("maxpool2d_{which}_forward.argmax/{name}"), &argt.to_u32(c).unwrap(), &want_arg);
        dxt.write_f32(c, &vec![f32::NAN; g.x_len()]).unwrap();
        let l = maxpool2d_backward_fast(c, name, g, &dyt, &argt, &dxt).unwrap().unwrap();
        let kernel = match (tiled, pairs, vec2) {
            (true, true, _) => Kernel::MaxPool2dTilesBackward4,
            (true, false, true) => Kernel::MaxPool2dTilesBackward2,
            (true, false, false) => Kernel::MaxPool2dTilesBackward,
            _ => Kernel::MaxPool2dWindowBackward,
        };
        assert_eq!(l.kernel, kernel, "{name}");
        let got = run_f32(Ok(l), &dxt);
        let want_dx = cpu::maxpool2d_backward(g, &dy64, &want_arg);
        check(&format!("maxpool2d_{which}_backward/{name}"), &got, &want_dx, F32_TOL);
        let differ = got.iter().zip(&plain_dx).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(
            differ, 0,
            "maxpool2d_{which}_backward/{name}: {differ} values differ from maxpool2d_backward's bits"
        );
        if tiled {
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
        } else {
            // The ReLU mask is for tiles only (the fuse rule asks `tiles`).
            assert!(maxpool2d_backward_fused(c, name, g, &dyt, &argt, &yt, &dxt, true).unwrap().is_none(), "{name}");
        }

        let got = run_f32(avgpool2d_forward(c, name, g, &xt, &yt), &yt);
        check(&format!("avgpool2d_forward/{name}"), &got, &cpu::avgpool2d_forward(g, &x64), F32_TOL);
        let got = run_f32(avgpool2d_backward(c, name, g, &dyt, &dxt), &dxt);
        check(&format!("avgpool2d_backward/{name}"), &got, &cpu::avgpool2d_backward(g, &dy64), F32_TOL);
    }
    let row = |name: &str| table.iter().find(|r| r.0 == name).unwrap().1;
    assert!(groups(row("grid_past_65535").x_len()) > 65_535);
    assert!(groups(row("tiles_grid_past_65535").y_len()) > 65_535);
    // The two-window kernels run on every tiled row of a multiple of 4: LeNet's pool1, the ragged and
    // 3-row ones, and the 2100- and 4200-wide ones (2.2M pairs: 34,453 workgroups; a grid past 65,535
    // would need an input past the 128 MiB binding limit, as for the other vec4 kernels).
    let paired = table.iter().filter(|(_, g)| tiles_in_pairs(c, g)).count();
    assert_eq!(paired, 5, "rows run by maxpool2d_tiles_forward4 / _backward4");
    // The vec2-row kernels run on the tiled rows 2 wide on even rows not a multiple of 4: LeNet's
    // second pool, 3-row windows, inception-mini's second pool at batch 1, and 4.2M windows past
    // 65,535 workgroups.
    let vec2 = table.iter().filter(|(_, g)| tiles_in_vec2(c, g)).count();
    assert_eq!(vec2, 4, "rows run by maxpool2d_tiles_forward2 / _backward2");
    assert!(groups(row("vec2_tiles_grid_past_65535").y_len()) > 65_535);
    assert!(groups(row("pad1_grid_past_65535").x_len()) > 65_535);
    assert!(groups(row("pad1_3s1_grid_past_65535").y_len()) > 65_535);
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
    // A 4-wide row: both windows in one invocation of maxpool2d_tiles_forward4.
    assert!(tiles_in_pairs(c, &g));
    c.run(&[&maxpool2d_forward_fast(c, "ties", &g, &xt, &yt, &argt).unwrap().unwrap()]).unwrap();
    check_u32("maxpool2d_tiles_forward4.argmax/ties", &argt.to_u32(c).unwrap(), &want_arg);
}

#[test]
fn concat_matches_reference() {
    // (name, n, channels of each part, h, w). A copy is exact: the tolerance is 0. Where every run of the
    // copy starts at a multiple of 4 in both tensors (each part's c · h · w, its offset · h · w and the
    // whole's c · h · w multiples of 4) the copies run concat_forward4 / concat_backward4 (a vec4 per
    // invocation), on odd planes too; the others the scalar kernels. Each kind has a batch-1 row and a
    // row past 65,535 workgroups. concat_backward_add (the slice plus another tensor) runs on every row.
    let table: [(&str, usize, &[usize], usize, usize); 9] = [
        ("batch1_two_parts", 1, &[2, 3], 5, 5),
        ("ragged_three_parts", 3, &[1, 4, 2], 7, 3),
        ("inception_like", 2, &[8, 16, 4, 4], 6, 6),
        ("vec4_batch1_odd_channels", 1, &[3, 1, 5], 2, 2),
        ("vec4_densenet_like", 5, &[16, 8, 8], 14, 14),
        // 7×7 planes, every channel count a multiple of 4: vec4 runs across plane boundaries.
        ("vec4_odd_planes", 3, &[8, 16, 4, 4], 7, 7),
        // 7×7 planes and one part of 2 channels: its slice and the next start off the vec4 grid.
        ("odd_planes_ragged", 2, &[4, 2, 4], 7, 7),
        // The second part has 4,205,000 elements: 65,704 workgroups, past 65,535.
        ("grid_past_65535", 1, &[1, 2], 1450, 1450),
        // The first part has 16,820,000 elements, 4,205,000 vec4s: 65,704 workgroups.
        ("vec4_grid_past_65535", 1, &[2, 1], 2900, 2900),
    ];
    let c = ctx();
    let exact = Tol { atol: 0.0, rtol: 0.0 };
    for (seed, (name, n, cs, h, w)) in table.into_iter().enumerate() {
        let mut r = rng(400 + seed as u64);
        let c_whole: usize = cs.iter().sum();
        let whole_len = n * c_whole * h * w;
        let wt = zeros("whole", &[n, c_whole, h, w]);
        let dy = r.vec_f32(whole_len, -1.0, 1.0);
        let dyt = upload("dy", &[n, c_whole, h, w], &dy);
        let mut want = vec![0.0f64; whole_len];
        let mut offset = 0;
        for (k, &cp) in cs.iter().enumerate() {
            let g = ConcatGeom { n, c_part: cp, c_whole, offset, hw: h * w };
            let aligned = [cp, offset, c_whole].iter().all(|&ch| (ch * h * w) % 4 == 0);
            let (fwd, bwd) = if aligned {
                (Kernel::ConcatForward4, Kernel::ConcatBackward4)
            } else {
                (Kernel::ConcatForward, Kernel::ConcatBackward)
            };
            let part = r.vec_f32(g.part_len(), -1.0, 1.0);
            let pt = upload("part", &[n, cp, h, w], &part);
            let l = concat_forward(c, name, &g, &pt, &wt).unwrap();
            assert_eq!(l.kernels(), [fwd], "{name} part {k}");
            c.run(&[&l]).unwrap();
            want = cpu::concat_forward(&g, &to_f64(&part), &want);
            let dxt = zeros("dx", &[n, cp, h, w]);
            let l = concat_backward(c, name, &g, &dyt, &dxt).unwrap();
            assert_eq!(l.kernels(), [bwd], "{name} part {k}");
            let got = run_f32(Ok(l), &dxt);
            check(&format!("concat_backward/{name}/part{k}"), &got, &cpu::concat_backward(&g, &to_f64(&dy)), exact);
            // The slice plus another gradient of the part in one pass (the fuse pass's slice_add): the
            // bits of the copy then add_forward, and the f64 sum rounded once.
            let other = r.vec_f32(g.part_len(), -1.0, 1.0);
            let (ot, st) = (upload("other", &[n, cp, h, w], &other), zeros("sum", &[n, cp, h, w]));
            let l = concat_backward_add(c, name, &g, &dyt, &ot, &st).unwrap();
            let add = if aligned { Kernel::ConcatBackwardAdd4 } else { Kernel::ConcatBackwardAdd };
            assert_eq!(l.kernels(), [add], "{name} part {k}");
            let fused = run_f32(Ok(l), &st);
            let pair = run_f32(add_forward(c, "pair", &dxt, &ot, &st), &st);
            let differ = fused.iter().zip(&pair).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(differ, 0, "concat_backward_add/{name}/part{k}: {differ} values differ from copy + add");
            let want = cpu::add_forward(&cpu::concat_backward(&g, &to_f64(&dy)), &to_f64(&other));
            check(&format!("concat_backward_add/{name}/part{k}"), &fused, &want, Tol { atol: 0.0, rtol: 6e-8 });
            offset += cp;
        }
        check(&format!("concat_forward/{name}"), &wt.to_f32(c).unwrap(), &want, exact);
    }
    assert!(groups(2 * 1450 * 1450) > 65_535);
    assert!(groups(2 * 2900 * 2900 / 4) > 65_535);
    // A slice past the whole's channels is a typed error.
    let g = ConcatGeom { n: 1, c_part: 2, c_whole: 3, offset: 2, hw: 4 };
    assert!(concat_forward(c, "bad", &g, &zeros("p", &[1, 2, 2, 2]), &zeros("w", &[1, 3, 2, 2])).is_err());
}

#[test]
fn dropout_matches_reference_and_draws_fresh_masks_each_step() {
    // The mask must match the reference hash exactly; kept values are x·scale in f32 (one rounding:
    // 6e-8 relative). 4,200,000 elements: 65,625 workgroups, past 65,535.
    let c = ctx();
    let tol = Tol { atol: 0.0, rtol: 6e-8 };
    for (seed, len) in [1usize, 7, 65, 1000, 4_200_000].into_iter().enumerate() {
        let mut r = rng(500 + seed as u64);
        let x = r.vec_f32(len, 0.5, 1.5); // never 0: a zero output means dropped
        let (xt, yt, dxt) = (upload("x", &[len], &x), zeros("y", &[len]), zeros("dx", &[len]));
        for (p, salt, pair) in [(0.0f32, 3u32, [9u32, 1u32]), (0.3, 3, [9, 1]), (0.3, 3, [9, 2]), (0.75, 4, [1, 7])] {
            let st = wgcnn::Tensor::from_u32(c, "step", &[2], &pair).unwrap();
            let case = format!("p{p}/salt{salt}/step{pair:?}/len{len}");
            let params = DropoutParams::new("dropout", p, salt, len).unwrap();
            let got = run_f32(dropout_forward(c, "dropout", p, salt, &xt, &st, &yt), &yt);
            let want = cpu::dropout_forward(&params, pair[0], pair[1], &to_f64(&x));
            check(&format!("dropout_forward/{case}"), &got, &want, tol);
            let got_dx = run_f32(dropout_backward(c, "dropout", p, salt, &xt, &st, &dxt), &dxt);
            assert_eq!(got, got_dx, "{case}: the backward draws the forward's mask");
            if len == 4_200_000 {
                // The keep rate is 1 - p within 5 standard deviations.
                let kept = got.iter().filter(|&&v| v != 0.0).count() as f64 / len as f64;
                let sd = (f64::from(p) * (1.0 - f64::from(p)) / len as f64).sqrt();
                assert!((kept - (1.0 - f64::from(p))).abs() <= 5.0 * sd + 1e-12, "{case}: kept {kept}");
            }
        }
    }
    // Another step draws another mask; bad probabilities are typed errors.
    let f = |step| cpu::dropout_factors(&DropoutParams::new("d", 0.5, 0, 1000).unwrap(), 1, step);
    assert_ne!(f(1), f(2));
    let t = zeros("t", &[4]);
    let st = wgcnn::Tensor::from_u32(c, "step", &[2], &[0, 0]).unwrap();
    for p in [1.0f32, -0.1, f32::NAN] {
        assert!(dropout_forward(c, "dropout", p, 0, &t, &st, &t).is_err(), "p = {p}");
    }
}
