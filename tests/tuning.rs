//! Autotuning (`context/tune.rs`): every variant of a tuned launch gives the reference's values and
//! the same bits as every other variant; the cache file round-trips, and a damaged, foreign or
//! unwritable one is ignored, never fatal. (Every model file training to the same bits with tuning
//! off, forced to each variant and full is in `tests/zoo.rs`.)

mod common;

use std::path::PathBuf;
use std::sync::Mutex;

use common::*;
use wgcnn::context::Tuning;
use wgcnn::kernels::conv_1x1::*;
use wgcnn::kernels::matmul::*;
use wgcnn::kernels::Kernel;
use wgcnn::reference as cpu;
use wgcnn::shape::{Conv2dGeom, LinearGeom};

/// The tests of this file change the shared context's tuning mode one at a time.
static TUNING: Mutex<()> = Mutex::new(());

/// The kernel each forced variant's launch starts with, over every test of this file.
static RAN: Mutex<Vec<Kernel>> = Mutex::new(Vec::new());

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgcnn-tune-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run `build` once per variant index `0..count` (forced), and return each run's output bits and the
/// variant names the context recorded.
fn every_variant(
    count: usize,
    out: &wgcnn::Tensor,
    build: impl Fn() -> wgcnn::Result<wgcnn::kernels::Launch>,
) -> (Vec<Vec<u32>>, Vec<String>) {
    let c = ctx();
    let mut bits = Vec::new();
    let mut names = Vec::new();
    for i in 0..count {
        c.set_tuning_in(Tuning::Force(i), None);
        out.write_f32(c, &vec![f32::NAN; out.len()]).unwrap();
        let launch = build().unwrap();
        // The vec4 variants run matmul_vec4, the others matmul (or conv2d_direct and its kin).
        let name = c.tune_choices().last().map(|t| t.variant.clone()).unwrap_or_default();
        RAN.lock().unwrap_or_else(|e| e.into_inner()).extend(launch.kernels());
        assert_eq!(launch.kernel == Kernel::MatmulVec4, name.starts_with("vec4 "), "{name}: {:?}", launch.kernel);
        assert_eq!(launch.kernel == Kernel::MatmulVec4b, name.starts_with("vec4b "), "{name}: {:?}", launch.kernel);
        assert_eq!(launch.kernel == Kernel::MatmulUb, name.starts_with("uniform-b "), "{name}: {:?}", launch.kernel);
        let got = run_f32(Ok(launch), out);
        bits.push(got.iter().map(|v| v.to_bits()).collect());
        names.push(name);
    }
    c.set_tuning_in(Tuning::Off, None);
    (bits, names)
}

fn same_bits(case: &str, bits: &[Vec<u32>], names: &[String]) {
    for (b, name) in bits.iter().zip(names).skip(1) {
        let differ = b.iter().zip(&bits[0]).filter(|(x, y)| x != y).count();
        assert_eq!(differ, 0, "{case}: variant {name} differs from {} in {differ} values", names[0]);
    }
}

#[test]
fn every_matmul_variant_gives_the_reference_and_the_same_bits() {
    let _lock = TUNING.lock().unwrap_or_else(|e| e.into_inner());
    let c = ctx();
    // LeNet-5's layers, rows that are not a multiple of 8, batch 1 (the forward of each takes the vec4
    // kernel), and a ragged shape (k = 65) that only the scalar kernel takes. The gradients' vec4
    // variants apply where their own operands allow.
    let table = [
        ("lenet_fc1_batch64", LinearGeom { n: 64, in_f: 400, out_f: 120 }, true),
        ("lenet_fc2_batch36", LinearGeom { n: 36, in_f: 120, out_f: 84 }, true),
        ("rows_12_by_8_over_16", LinearGeom { n: 12, in_f: 16, out_f: 8 }, true),
        ("batch1_400x120", LinearGeom { n: 1, in_f: 400, out_f: 120 }, true),
        ("lenet_fc3_batch7", LinearGeom { n: 7, in_f: 84, out_f: 10 }, true),
        ("ragged_33x65x17", LinearGeom { n: 33, in_f: 65, out_f: 17 }, false),
    ];
    for (seed, (name, g, vec_forward)) in table.iter().enumerate() {
        let mut r = rng(700 + seed as u64);
        let x = r.vec_f32(g.x_len(), -1.0, 1.0);
        let w = r.vec_f32(g.w_len(), -1.0, 1.0);
        let b = r.vec_f32(g.out_f, -1.0, 1.0);
        let dy = r.vec_f32(g.y_len(), -1.0, 1.0);
        let (x64, w64, b64, dy64) = (to_f64(&x), to_f64(&w), to_f64(&b), to_f64(&dy));
        let (xt, wt, bt) =
            (upload("x", &[g.n, g.in_f], &x), upload("w", &[g.out_f, g.in_f], &w), upload("b", &[g.out_f], &b));
        let dyt = upload("dy", &[g.n, g.out_f], &dy);
        let (yt, dxt, dwt) = (zeros("y", &[g.y_len()]), zeros("dx", &[g.x_len()]), zeros("dw", &[g.w_len()]));
        let tiled = c.budget().tiled;
        // Forward: a = x (along k), b = Wᵀ (along k).
        let fa = Operand { t: &xt, rows: g.in_f, cols: 1 };
        let fb = Operand { t: &wt, rows: 1, cols: g.in_f };
        let batch1 = Batch { count: 1, a: 0, b: 0, c: 0 };
        let ub = matmul_ub_takes(c, g.n, &batch1, &fb, tiled);
        let variants = matmul_variants((g.n, g.out_f, g.in_f), &batch1, &fa, &fb, tiled, ub);
        assert_eq!(variants.iter().any(|v| v.vec.is_some()), *vec_forward, "{name}: vec4 variants of the forward");
        let (bits, names) = every_variant(variants.len(), &yt, || {
            Ok(linear_forward_fast(c, name, g, &xt, &wt, &bt, &yt, false)?.unwrap())
        });
        let want = cpu::linear_forward(g, &x64, &w64, &b64);
        check(
            &format!("forward/{name}/{}", names[0]),
            &bits[0].iter().map(|&v| f32::from_bits(v)).collect::<Vec<_>>(),
            &want,
            F32_TOL,
        );
        assert_eq!(names, variants.iter().map(MatmulVariant::name).collect::<Vec<_>>(), "{name}: forced variants");
        same_bits(&format!("forward/{name}"), &bits, &names);
        // With the layer's ReLU fused (linear_relu): every variant max(y, 0) of the same bits.
        let (relu_bits, relu_names) = every_variant(variants.len(), &yt, || {
            Ok(linear_forward_fast(c, name, g, &xt, &wt, &bt, &yt, true)?.unwrap())
        });
        assert_eq!(relu_names, names, "{name}: forced variants with the ReLU");
        same_bits(&format!("forward+relu/{name}"), &relu_bits, &relu_names);
        let f32s = |b: &[u32]| b.iter().map(|&v| f32::from_bits(v)).collect::<Vec<_>>();
        assert_relu_of(&format!("forward+relu/{name}"), &f32s(&relu_bits[0]), &f32s(&bits[0]));
        // Input gradient (b along j) and weight gradient (a along m, b along j).
        let (bits, names) =
            every_variant(8, &dxt, || Ok(linear_backward_input_fast(c, name, g, &dyt, &wt, &dxt)?.unwrap()));
        let got: Vec<f32> = bits[0].iter().map(|&v| f32::from_bits(v)).collect();
        check(&format!("backward_input/{name}"), &got, &cpu::linear_backward_input(g, &dy64, &w64), F32_TOL);
        same_bits(&format!("backward_input/{name}"), &bits, &names);
        let (bits, names) =
            every_variant(8, &dwt, || Ok(linear_backward_weight_fast(c, name, g, &dyt, &xt, &dwt)?.unwrap()));
        let got: Vec<f32> = bits[0].iter().map(|&v| f32::from_bits(v)).collect();
        check(&format!("backward_weight/{name}"), &got, &cpu::linear_backward_weight(g, &dy64, &x64), F32_TOL);
        same_bits(&format!("backward_weight/{name}"), &bits, &names);
    }
}

#[test]
fn every_batched_matmul_variant_of_a_1x1_conv_gives_the_same_bits() {
    let _lock = TUNING.lock().unwrap_or_else(|e| e.into_inner());
    let c = ctx();
    // 6×6 planes take the vec4 kernel (36 pixels); 7×7 ones (49) have no vec4 axis, so the forward and
    // the input gradient read only the weights as vec4 (matmul_vec4b); 3 images, 8 → 12 channels, and
    // batch 1. The weights are in a buffer with a uniform window's room (as the parameter arena makes
    // them), so both also run as matmul_ub (4 blocks), the images' rows folded into one axis. The last
    // row (one channel in and out, k = 1: no vec4 axis) folds 16.8M rows into blocks of 4 rows:
    // 65,664 workgroups, past 65,535.
    let table = [(3, 8, 12, 6, false), (3, 8, 12, 7, false), (1, 8, 12, 7, false), (1, 1, 1, 4100, true)];
    for (n, c_in, c_out, hw, big) in table {
        let g = Conv2dGeom { n, c_in, h: hw, w: hw, c_out, kh: 1, kw: 1, stride_h: 1, stride_w: 1, pad_h: 0, pad_w: 0 };
        let name = format!("conv1x1_n{n}_{c_in}to{c_out}_{hw}x{hw}");
        let mut r = rng(800 + (n * hw) as u64);
        let x = r.vec_f32(g.x_len(), -1.0, 1.0);
        let w = r.vec_f32(g.w_len(), -1.0, 1.0);
        let b = r.vec_f32(g.c_out, -1.0, 1.0);
        let wt =
            wgcnn::Tensor::zeros_with_room(c, "w", &[g.w_len()], wgcnn::DType::F32, wgcnn::kernels::UNIFORM_WINDOW)
                .unwrap();
        wt.write_f32(c, &w).unwrap();
        let (xt, bt) = (upload("x", &[g.x_len()], &x), upload("b", &[g.c_out], &b));
        let yt = zeros("y", &[g.y_len()]);
        let p = hw * hw;
        let fwd = Batch { count: n, a: c_in * p, b: 0, c: c_out * p };
        let (xo, wo) = (Operand { t: &xt, rows: 1, cols: p }, Operand { t: &wt, rows: 1, cols: c_in });
        assert!(matmul_ub_takes(c, p, &fwd, &wo, false), "{name}");
        let count = matmul_variants((p, c_out, c_in), &fwd, &xo, &wo, false, true).len();
        let (bits, names) =
            every_variant(count, &yt, || Ok(conv1x1_forward(c, &name, &g, &xt, &wt, &bt, &yt)?.unwrap()));
        let vec = hw % 2 == 0 && !big;
        assert_eq!(names.iter().any(|n| n.starts_with("vec4 ")), vec, "{name}: variants {names:?}");
        assert_eq!(names.iter().any(|n| n.starts_with("vec4b ")), !vec && !big, "{name}: variants {names:?}");
        assert_eq!(names.iter().filter(|n| n.starts_with("uniform-b ")).count(), 4, "{name}: variants {names:?}");
        let got: Vec<f32> = bits[0].iter().map(|&v| f32::from_bits(v)).collect();
        check(&name, &got, &cpu::conv2d_forward(&g, &to_f64(&x), &to_f64(&w), &to_f64(&b)), F32_TOL);
        same_bits(&name, &bits, &names);
        if big {
            assert!(groups(n * p / 4) > 65_535, "{name}: the 4-row blocks must fold the grid");
            continue;
        }
        // The input gradient: w read along its rows (b along j).
        let dy = r.vec_f32(g.y_len(), -1.0, 1.0);
        let (dyt, dxt) = (upload("dy", &[g.y_len()], &dy), zeros("dx", &[g.x_len()]));
        let (bits, names) =
            every_variant(12, &dxt, || Ok(conv1x1_backward_input(c, &name, &g, &dyt, &wt, &dxt)?.unwrap()));
        assert_eq!(names.iter().any(|n| n.starts_with("vec4b ") && n.ends_with("b:j")), !vec, "{name}: {names:?}");
        assert_eq!(names.iter().filter(|n| n.starts_with("uniform-b ")).count(), 4, "{name}: variants {names:?}");
        let got: Vec<f32> = bits[0].iter().map(|&v| f32::from_bits(v)).collect();
        check(&format!("{name}.dx"), &got, &cpu::conv2d_backward_input(&g, &to_f64(&dy), &to_f64(&w)), F32_TOL);
        same_bits(&format!("{name}.dx"), &bits, &names);
    }
}

#[test]
fn the_tuning_cache_round_trips_and_a_bad_one_is_ignored() {
    let _lock = TUNING.lock().unwrap_or_else(|e| e.into_inner());
    let c = ctx();
    let g = LinearGeom { n: 64, in_f: 400, out_f: 120 };
    let mut r = rng(900);
    let (xt, wt, bt) = (
        upload("x", &[g.n, g.in_f], &r.vec_f32(g.x_len(), -1.0, 1.0)),
        upload("w", &[g.out_f, g.in_f], &r.vec_f32(g.w_len(), -1.0, 1.0)),
        upload("b", &[g.out_f], &r.vec_f32(g.out_f, -1.0, 1.0)),
    );
    let yt = zeros("y", &[g.y_len()]);
    let build = || linear_forward_fast(c, "tuned", &g, &xt, &wt, &bt, &yt, false).unwrap().unwrap();
    let last = || c.tune_choices().last().cloned().unwrap();
    let dir = temp_dir("cache");

    // Full: every variant timed, the fastest kept and written.
    c.set_tuning_in(Tuning::Full, Some(dir.clone()));
    let file = c.tuning_file().unwrap();
    build();
    let timed = last();
    assert_eq!(timed.how, "timed");
    assert!(timed.timings.len() >= 2 && timed.timings.iter().all(|(_, s)| *s > 0.0), "{timed:?}");
    // Every variant keeps the best time it had when it left the running, and the choice is the
    // fastest of them all (a variant taken out of the running was behind the leader).
    let fastest = timed.timings.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    assert_eq!(fastest.0, timed.variant, "{timed:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("matmul {} among ", timed.shape))).unwrap();
    assert!(line.ends_with(&format!("\t{}", timed.variant)), "{text}");

    // Cached (a new context's view: the file is read again): the same variant, nothing timed.
    c.set_tuning_in(Tuning::Cached, Some(dir.clone()));
    build();
    let cached = last();
    assert_eq!((cached.how, &cached.variant), ("cached", &timed.variant));

    // A choice made among other variants (an older build's list), a damaged file, or one written for
    // another adapter or build: not taken, the default used; Full times the shape again and replaces it.
    let (key, _) = line.split_once('\t').unwrap();
    let other = text.replace(
        line,
        &format!("{}00000000\t{}", key.trim_end_matches(|c: char| c.is_ascii_hexdigit()), timed.variant),
    );
    assert_ne!(other, text);
    for bad in
        [other.as_bytes(), b"\x00\xffnot a cache", b"wgcnn-tune 1\nanother adapter | x\nmatmul 1x1x1\tscalar 8x8\n"]
    {
        std::fs::write(&file, bad).unwrap();
        c.set_tuning_in(Tuning::Cached, Some(dir.clone()));
        build();
        assert_eq!(last().how, "default");
        c.set_tuning_in(Tuning::Full, Some(dir.clone()));
        build();
        assert_eq!(last().how, "timed");
        assert!(std::fs::read_to_string(&file).unwrap().starts_with("wgcnn-tune 1\n"));
    }

    // A folder that cannot be made (a file is in the way): tuning works, the file is not written.
    let blocked = dir.join("blocked");
    std::fs::write(&blocked, b"a file").unwrap();
    c.set_tuning_in(Tuning::Full, Some(blocked.join("sub")));
    build();
    assert_eq!(last().how, "timed");

    // Off: the default, whatever the file says.
    c.set_tuning_in(Tuning::Off, Some(dir.clone()));
    build();
    assert_eq!(last().how, "default");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wgcnn_tune_values_are_parsed_or_refused() {
    assert_eq!(Tuning::parse("off").unwrap(), Tuning::Off);
    assert_eq!(Tuning::parse(" Cached ").unwrap(), Tuning::Cached);
    assert_eq!(Tuning::parse("full").unwrap(), Tuning::Full);
    let e = Tuning::parse("fast").unwrap_err().to_string();
    assert!(e.contains("WGCNN_TUNE") && e.contains("off, cached or full"), "{e}");
    assert_eq!(wgcnn::context::parse_tune_budget(" 0.5").unwrap(), std::time::Duration::from_millis(500));
    assert_eq!(wgcnn::context::parse_tune_budget("0").unwrap(), std::time::Duration::ZERO);
    for bad in ["-1", "NaN", "5s", "inf"] {
        let e = wgcnn::context::parse_tune_budget(bad).unwrap_err().to_string();
        assert!(e.contains("WGCNN_TUNE_BUDGET") && e.contains("seconds"), "{bad}: {e}");
    }
}

#[test]
fn every_conv_variant_gives_the_reference_and_the_same_bits() {
    use wgcnn::kernels::conv_fast::*;
    let _lock = TUNING.lock().unwrap_or_else(|e| e.into_inner());
    let c = ctx();
    let geom = |n, c_in, h, w, c_out, k, stride, pad| Conv2dGeom {
        n,
        c_in,
        h,
        w,
        c_out,
        kh: k,
        kw: k,
        stride_h: stride,
        stride_w: stride,
        pad_h: pad,
        pad_w: pad,
    };
    // LeNet-5's two layers, batch 1 with ragged sizes, 3×3 stride-2 layers, and 3×3 with 12 channels.
    let table = [
        ("lenet_conv1", geom(2, 1, 28, 28, 6, 5, 1, 2)),
        ("lenet_conv2", geom(3, 6, 14, 14, 16, 5, 1, 0)),
        ("batch1_ragged_3x3", geom(1, 3, 9, 7, 5, 3, 1, 1)),
        ("stride2_3x3", geom(2, 4, 10, 10, 8, 3, 2, 1)),
        ("3x3_12ch", geom(2, 8, 12, 12, 12, 3, 1, 1)),
        // Stride 2 with 6 input channels: the stride-2 input gradient's 8-channel block, partly empty.
        ("stride2_6ch_odd", geom(1, 6, 9, 9, 5, 3, 2, 1)),
        // The 3x3 weight gradient's 16-channel block, and 35 channels in blocks of 12, the last short;
        // the stride-2 input gradient's 16-channel block over 10 channels.
        ("3x3_16ch", geom(2, 3, 6, 5, 16, 3, 1, 1)),
        ("3x3_35ch_stride2", geom(1, 10, 7, 6, 35, 3, 2, 1)),
        // A dense block's layer (growth 8) with an odd input channel count: the weight gradient's two
        // input channels per invocation (conv2d_weight_grad_k3c2), the last pair short; and at stride 2.
        ("densenet_3x3_odd_cin", geom(1, 17, 14, 13, 8, 3, 1, 1)),
        ("k3c2_stride2", geom(2, 6, 9, 9, 8, 3, 2, 1)),
        // 5x5 on rows on the vec4 grid without padding (the weight gradient's vec4 loads, the input's
        // shift 0), 6 output channels in one block.
        ("k5_grid_unpadded", geom(3, 2, 12, 12, 6, 5, 1, 0)),
        // A batch of whole subgroups (8 on lavapipe) with padding: conv2d_direct's subgroup variants
        // (SG) in both directions, ragged rows, 5 channels in blocks that are partly empty.
        ("subgroup_batch8_padded", geom(8, 3, 11, 9, 5, 5, 1, 2)),
        // Input channels (and their pairs) in whole subgroups: the 3x3 weight gradients' subgroup
        // variants (dy shared by the lanes), 12 output channels, ragged rows; and at stride 2.
        ("subgroup_dy_16cin", geom(2, 16, 7, 6, 12, 3, 1, 1)),
        ("subgroup_dy_stride2", geom(1, 8, 9, 9, 10, 3, 2, 1)),
    ];
    // Software Vulkan (lavapipe, so CI) has subgroups of one size: the SG variants below are tested
    // there, not skipped.
    if c.is_software() && c.info.backend == wgpu::Backend::Vulkan {
        assert!(c.subgroup_size().is_some(), "lavapipe offers subgroups of one size");
    }
    // conv2d_direct with its weights shared through subgroup shuffles (Conv2dDirectSg): offered, and
    // first, where the device has subgroups of one size and a subgroup's lanes share their kernel rows
    // (`pad` 0, or a batch of whole subgroups).
    let sg_offered =
        |g: &Conv2dGeom, pad: usize| c.subgroup_size().is_some_and(|s| pad == 0 || g.n.is_multiple_of(s as usize));
    let base = |n: &String| n.trim_end_matches(" subgroup-w").to_string();
    for (seed, (name, g)) in table.iter().enumerate() {
        let mut r = rng(1000 + seed as u64);
        let x = r.vec_f32(g.x_len(), -1.0, 1.0);
        let w = r.vec_f32(g.w_len(), -1.0, 1.0);
        let b = r.vec_f32(g.c_out, -1.0, 1.0);
        let dy = r.vec_f32(g.y_len(), -1.0, 1.0);
        let (x64, w64, b64, dy64) = (to_f64(&x), to_f64(&w), to_f64(&b), to_f64(&dy));
        let (xt, bt, dyt) =
            (upload("x", &[g.x_len()], &x), upload("b", &[g.c_out], &b), upload("dy", &[g.y_len()], &dy));
        // Weights in a buffer with a uniform window's room (as the parameter arena makes them), and
        // without (storage variants only).
        let roomy =
            wgcnn::Tensor::zeros_with_room(c, "w", &[g.w_len()], wgcnn::DType::F32, wgcnn::kernels::UNIFORM_WINDOW)
                .unwrap();
        roomy.write_f32(c, &w).unwrap();
        let tight = upload("w", &[g.w_len()], &w);
        let (yt, dxt, dwt) = (zeros("y", &[g.y_len()]), zeros("dx", &[g.x_len()]), zeros("dw", &[g.w_len()]));
        for (which, wt) in [("window", &roomy), ("storage", &tight)] {
            let case = format!("{name}/{which}");
            let (bits, names) =
                every_variant(24, &yt, || Ok(conv2d_forward_fast(c, name, g, &xt, wt, &bt, &yt)?.unwrap()));
            assert_eq!(names.iter().any(|n| n.contains("uniform")), which == "window", "{case}: {names:?}");
            // The packed copy of the weights is the window's whatever buffer the weights are in.
            assert!(names.iter().any(|n| n.contains("packed-w")), "{case}: {names:?}");
            // Storage where the weights have no window of their own; rows split evenly (LeNet-5's
            // 10-wide conv2 output as 5 + 5, the 7-wide one as one block of 7).
            let layout =
                |n: &String| base(n).trim_end_matches(" vec4-x").trim_end_matches(" batch-fastest").to_string();
            let storage = names.iter().any(|n| layout(n).ends_with("col"));
            assert_eq!(storage, which == "storage", "{case}: {names:?}");
            // The input rows as vec4 windows (VX) on software adapters where the input is whole vec4s
            // at stride 1, by default, with the first layout also offered with scalar loads.
            let vx = c.is_software() && g.stride_w == 1 && g.x_len() % 4 == 0;
            assert_eq!(names.iter().any(|n| n.ends_with(" vec4-x")), vx, "{case}: {names:?}");
            assert_eq!(base(&names[0]).ends_with(" vec4-x"), vx, "{case}: {names:?}");
            if vx {
                assert!(names.iter().any(|n| n == base(&names[0]).trim_end_matches(" vec4-x")), "{case}: {names:?}");
            }
            let sg = sg_offered(g, g.pad_h);
            assert_eq!(names.iter().any(|n| n.ends_with(" subgroup-w")), sg, "{case}: {names:?}");
            assert_eq!(names[0].ends_with(" subgroup-w"), sg, "{case}: the default first: {names:?}");
            // Invocations in both orders (batch-fastest first on software adapters, last on GPUs).
            let nfast = names.iter().filter(|n| n.contains(" batch-fastest")).count();
            assert!(nfast >= 1 && nfast < names.len(), "{case}: {names:?}");
            let even = match g.w + 2 * g.pad_w - g.kw + 1 {
                10 => Some("4ch x 5col"),
                7 => Some("3ch x 7col"),
                _ => None,
            };
            if let Some(even) = even {
                assert!(names.iter().any(|n| n.starts_with(even)), "{case}: {names:?}");
            }
            let got: Vec<f32> = bits[0].iter().map(|&v| f32::from_bits(v)).collect();
            check(&format!("forward/{case}"), &got, &cpu::conv2d_forward(g, &x64, &w64, &b64), F32_TOL);
            same_bits(&format!("forward/{case}"), &bits, &names);
            let (bits, names) =
                every_variant(24, &dxt, || Ok(conv2d_backward_input_fast(c, name, g, &dyt, wt, &dxt)?.unwrap()));
            if g.stride_w == 2 {
                // conv2d_backward_input_s2: 4 input channels per invocation, and 8 where there are more.
                // (One variant alone is not recorded: the names are then an earlier launch's.)
                let s2_8ch = names.iter().any(|n| n == "8ch" || n == "8ch uniform-w");
                assert_eq!(s2_8ch, g.c_in > 4, "{case}: {names:?}");
                // 16 channels where 3x3 taps with padding 1 share their dy loads.
                let s2_16ch = names.iter().any(|n| n.starts_with("16ch"));
                assert_eq!(s2_16ch, g.c_in > 8 && g.kh == 3 && g.pad_h == 1, "{case}: {names:?}");
            }
            if g.stride_w == 1 {
                // A convolution of dy padded by k - 1 - pad.
                let sg = sg_offered(g, g.kh - 1 - g.pad_h);
                assert_eq!(names.iter().any(|n| n.ends_with(" subgroup-w")), sg, "{case}: {names:?}");
            }
            let got: Vec<f32> = bits[0].iter().map(|&v| f32::from_bits(v)).collect();
            check(&format!("backward_input/{case}"), &got, &cpu::conv2d_backward_input(g, &dy64, &w64), F32_TOL);
            same_bits(&format!("backward_input/{case}"), &bits, &names);
        }
        let (bits, names) =
            every_variant(32, &dwt, || Ok(conv2d_backward_weight_fast(c, name, g, &dyt, &xt, &dwt)?.unwrap()));
        let distinct: std::collections::HashSet<_> = names.iter().collect();
        assert!(distinct.len() > 1, "{name}: weight-gradient variants {names:?}");
        // 3-row kernels also run conv2d_weight_grad_k3, and kernels up to 5x5 conv2d_weight_grad_rows
        // (every row in one invocation).
        assert_eq!(names.iter().any(|n| n.ends_with("x 3 rows")), g.kh == 3, "{name}: {names:?}");
        // ... and, over two input channels per invocation, conv2d_weight_grad_k3c2.
        let two = names.iter().any(|n| n.ends_with("x 2 inputs"));
        assert_eq!(two, g.kh == 3 && g.c_in > 1, "{name}: {names:?}");
        // The default: two input channels per invocation at stride 1 (the widest such block), the
        // widest block of one at stride 2.
        let first = match *name {
            "3x3_16ch" => Some("8ch x 3 rows x 2 inputs"),
            "densenet_3x3_odd_cin" => Some("8ch x 3 rows x 2 inputs"),
            "3x3_35ch_stride2" => Some("12ch x 3 rows"),
            "k3c2_stride2" => Some("8ch x 3 rows"),
            _ => None,
        };
        if let Some(first) = first {
            assert_eq!(names.first().map(String::as_str), Some(first), "{name}: the default first: {names:?}");
        }
        // dy shared through subgroup shuffles (conv2d_weight_grad_k3 and _k3c2 from the subgroup
        // module) where a subgroup's lanes share their chunk: input channels, or their pairs, in whole
        // subgroups; the widest one-channel block so first.
        let sg = c.subgroup_size().is_some_and(|s| {
            let s = s as usize;
            g.kh == 3 && g.kw == 3 && (g.c_in.is_multiple_of(s) || (g.c_in > 1 && g.c_in.div_ceil(2).is_multiple_of(s)))
        });
        assert_eq!(names.iter().any(|n| n.ends_with(" subgroup-dy")), sg, "{name}: {names:?}");
        // conv2d_weight_grad_lanes (input channels x output-channel blocks sharing their loads): with
        // subgroups, at stride 1 where a kernel of 2 to 5 rows and up to 5 columns takes the arrays.
        let lanes = c.subgroup_size().is_some() && g.stride_w == 1 && g.kh > 1 && g.kh <= 5 && g.kw <= 5;
        assert_eq!(names.iter().any(|n| n.ends_with("co") && n.contains(" subgroup ")), lanes, "{name}: {names:?}");
        // ... first (4 output-channel blocks) on unpadded kernels wider than 3 with several input
        // channels (LeNet-5's conv2).
        let lead = lanes && g.pad_h == 0 && g.kw > 3 && g.c_in >= 2;
        assert_eq!(names[0].ends_with("ci x 4co"), lead, "{name}: the default first: {names:?}");
        if *name == "subgroup_dy_16cin" && sg {
            assert_eq!(names[0], "12ch x 3 rows subgroup-dy", "{name}: the default first: {names:?}");
        }
        assert!(names.iter().any(|n| n.ends_with("rows arrays")), "{name}: {names:?}");
        // ... and with vec4 loads where the rows are on the vec4 grid at stride 1.
        let vec4 = g.stride_w == 1 && g.w % 4 == 0 && g.out_w() % 4 == 0 && g.kh > 1 && g.kh <= 5 && g.kw <= 5;
        assert_eq!(names.iter().any(|n| n.ends_with("rows arrays vec4")), vec4, "{name}: {names:?}");
        let got: Vec<f32> = bits[0].iter().map(|&v| f32::from_bits(v)).collect();
        check(&format!("backward_weight/{name}"), &got, &cpu::conv2d_backward_weight(g, &dy64, &x64), F32_TOL);
        same_bits(&format!("backward_weight/{name}"), &bits, &names);
    }
    // Every conv kernel the variants add ran: conv2d_pack_weights (before conv2d_direct's packed-w
    // variants), conv2d_weight_grad_k3, conv2d_weight_grad_k3c2, conv2d_weight_grad_rows and
    // conv2d_backward_input_s2.
    let ran = RAN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for k in [
        Kernel::Conv2dDirectSg,
        Kernel::Conv2dWeightGradK3Sg,
        Kernel::Conv2dWeightGradK3c2Sg,
        Kernel::Conv2dWeightGradLanes,
    ] {
        assert_eq!(ran.contains(&k), c.subgroup_size().is_some(), "{k:?}: the subgroup module");
    }
    for k in [
        Kernel::Conv2dPackWeights,
        Kernel::Conv2dWeightGradK3,
        Kernel::Conv2dWeightGradK3c2,
        Kernel::Conv2dWeightGradRows,
        Kernel::Conv2dBackwardInputS2,
    ] {
        assert!(ran.contains(&k), "{k:?} never ran");
    }
}

#[test]
fn every_max_pool_window_run_gives_the_reference_and_the_same_bits() {
    use wgcnn::kernels::pool::*;
    use wgcnn::shape::Pool2dGeom;
    let _lock = TUNING.lock().unwrap_or_else(|e| e.into_inner());
    let c = ctx();
    // inception-mini's 3x3 stride-1 padded pools (14- and 7-wide rows: runs of 7), batch 1 with a row
    // no run divides, stride 2 (forward runs only), a 5x5 window and an unpadded 3x3.
    let table = [
        ("inception_3s1_14", Pool2dGeom::square(2, 3, 14, 14, 3, 1).padded(1)),
        ("inception_3s1_7", Pool2dGeom::square(3, 2, 7, 7, 3, 1).padded(1)),
        (
            "batch1_3s1_ragged",
            Pool2dGeom { n: 1, c: 2, h: 6, w: 11, kh: 3, kw: 3, stride_h: 1, stride_w: 1, pad_h: 1, pad_w: 1 },
        ),
        ("stem_3s2", Pool2dGeom::square(2, 2, 13, 12, 3, 2).padded(1)),
        ("window5_s1", Pool2dGeom::square(1, 2, 9, 10, 5, 1).padded(2)),
        ("unpadded_3s1", Pool2dGeom::square(2, 1, 8, 9, 3, 1)),
        // 4.4M outputs and input elements: run 1's grids fold past 65,535 workgroups (the longer runs'
        // grids are 2-8x smaller; tests/kernels_maps.rs runs the default one on the same shape).
        ("grid_past_65535", Pool2dGeom::square(1, 1, 2100, 2100, 3, 1).padded(1)),
    ];
    for (seed, (name, g)) in table.iter().enumerate() {
        let mut r = rng(1300 + seed as u64);
        // Values on a coarse grid, so that windows hold ties: the first maximum must win in every run.
        let x: Vec<f32> = r.vec_f32(g.x_len(), -3.0, 3.0).iter().map(|v| v.round()).collect();
        let dy = r.vec_f32(g.y_len(), -1.0, 1.0);
        let (xt, dyt) = (upload("x", &[g.x_len()], &x), upload("dy", &[g.y_len()], &dy));
        let (yt, argt, dxt) = (zeros("y", &[g.y_len()]), zeros_u32("argmax", &[g.y_len()]), zeros("dx", &[g.x_len()]));
        let (want_y, want_arg) = cpu::maxpool2d_forward(g, &to_f64(&x));
        let want_dx = cpu::maxpool2d_backward(g, &to_f64(&dy), &want_arg);
        let runs = window_runs(g, false);
        assert!(runs.len() > 1, "{name}: forward runs {runs:?}");
        let (bits, names) =
            every_variant(runs.len(), &yt, || Ok(maxpool2d_forward_fast(c, name, g, &xt, &yt, &argt)?.unwrap()));
        assert_eq!(names, runs.iter().map(|r| format!("run {r}")).collect::<Vec<_>>(), "{name}");
        let exact = Tol { atol: 0.0, rtol: 0.0 };
        check(
            &format!("forward/{name}"),
            &bits[0].iter().map(|&v| f32::from_bits(v)).collect::<Vec<_>>(),
            &want_y,
            exact,
        );
        same_bits(&format!("forward/{name}"), &bits, &names);
        // The argmax of every run (the last forced one is in argt; each run is checked in turn).
        for (i, run) in runs.iter().enumerate() {
            c.set_tuning_in(Tuning::Force(i), None);
            argt.write_u32(c, &vec![u32::MAX - 1; g.y_len()]).unwrap();
            c.run(&[&maxpool2d_forward_fast(c, name, g, &xt, &yt, &argt).unwrap().unwrap()]).unwrap();
            check_u32(&format!("forward.argmax/{name}/run {run}"), &argt.to_u32(c).unwrap(), &want_arg);
        }
        c.set_tuning_in(Tuning::Off, None);
        let runs = window_runs(g, true);
        assert_eq!(runs.len() > 1, g.stride_w == 1, "{name}: backward runs {runs:?}");
        let (bits, names) =
            every_variant(runs.len(), &dxt, || Ok(maxpool2d_backward_fast(c, name, g, &dyt, &argt, &dxt)?.unwrap()));
        check(
            &format!("backward/{name}"),
            &bits[0].iter().map(|&v| f32::from_bits(v)).collect::<Vec<_>>(),
            &want_dx,
            F32_TOL,
        );
        same_bits(&format!("backward/{name}"), &bits, &names);
    }
    let big = table.last().unwrap().1;
    assert!(groups(big.y_len()) > 65_535 && groups(big.x_len()) > 65_535);
}

/// `conv2d_direct`'s dispatches along a row (`edge_parts`): every column block once, the first and
/// last alone (EDGE 1 and 2), and the blocks between them (EDGE 3) only where each column they read,
/// and the one before their first that the shader's sliding window loads, lies inside the row (they
/// read with no bounds test); else one dispatch of every block (EDGE 0). Every geometry up to 40
/// wide, kernels 1-7 wide, strides 1-3, any padding below the kernel, blocks of 1-8 columns.
#[test]
fn conv_edge_dispatches_cover_every_block_and_read_inside_the_row() {
    use wgcnn::kernels::conv_fast::edge_parts;
    let mut kinds = [0usize; 4];
    for w in 1..=40usize {
        for kw in 1..=7usize {
            for sw in 1..=3usize {
                for pw in 0..kw {
                    if w + 2 * pw < kw {
                        continue;
                    }
                    let ow = (w + 2 * pw - kw) / sw + 1;
                    for cols in 1..=8usize {
                        let parts = edge_parts(ow, cols, (w, sw, pw, kw));
                        let blocks = ow.div_ceil(cols);
                        let case = format!("w{w} k{kw} s{sw} p{pw} ow{ow} cols{cols}: {parts:?}");
                        assert_eq!(parts.iter().map(|p| p.1).sum::<usize>(), blocks, "{case}");
                        let edges: Vec<u32> = parts.iter().map(|p| p.0).collect();
                        let expected: &[u32] = match blocks {
                            1 => &[1],
                            2 => &[1, 2],
                            _ if edges == [0] => &[0],
                            _ => &[1, 3, 2],
                        };
                        assert_eq!(edges, expected, "{case}");
                        for &(edge, m) in &parts {
                            kinds[edge as usize] += 1;
                            if edge != 3 {
                                continue;
                            }
                            assert_eq!(m, blocks - 2, "{case}");
                            for b in 1..=m {
                                let first = (b * cols * sw) as i64 - pw as i64 - 1;
                                assert!(first >= 0, "{case}: block {b} loads column {first}");
                                let last = (((b * cols + cols - 1) * sw + kw - 1) as i64) - pw as i64;
                                assert!(last < w as i64, "{case}: block {b} reads column {last}");
                            }
                        }
                        // The middle blocks go untested only where they could not: the first or
                        // the last of them would read padding.
                        if edges == [0] {
                            let first = (cols * sw) as i64 - pw as i64 - 1;
                            let last = ((((blocks - 2) * cols + cols - 1) * sw + kw - 1) as i64) - pw as i64;
                            assert!(first < 0 || last >= w as i64, "{case}: could split");
                        }
                    }
                }
            }
        }
    }
    assert!(kinds.iter().all(|&k| k > 0), "every kind of dispatch is reached: {kinds:?}");
}
