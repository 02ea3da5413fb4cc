//! Batch-norm kernels against the CPU reference (`src/reference/batchnorm.rs`): statistics, training
//! and evaluation normalisation, the running-statistics update, and the backward, over a table of
//! shapes (batch 1, ragged planes, 1x1 planes, a channel with 2.2M values so the split reduction runs
//! 4,090 chunks, and 4.2M channels so every kernel's grid passes 65,535 workgroups; planes of a multiple
//! of 4, where the vec4 kernels run, among them). The split
//! reductions run batchnorm_partial, then batchnorm_moments (the statistics; with the running update in
//! training graphs) or batchnorm_grad_sums (the parameter gradients, whose two sums come from one pass
//! over dy).

mod common;

use common::*;
use wgcnn::kernels::batchnorm::*;
use wgcnn::kernels::Kernel;
use wgcnn::reference as cpu;

/// Sums of m terms in f32, split in runs of ≤ 512 added in order: each partial rounds ~m·2⁻²⁴ of
/// Σ|terms| at worst. Stated: |Δ| ≤ 1e-4 + 1e-6 · Σ|terms| of the channel (the largest over channels).
fn sum_tol(terms_abs_max: f64) -> Tol {
    Tol { atol: 1e-4 + 1e-6 * terms_abs_max, rtol: 0.0 }
}

/// Σ|terms| per channel, the largest.
fn abs_sum(g: &BnGeom, v: &[f64]) -> f64 {
    let mut per = vec![0.0f64; g.c];
    for (i, x) in v.iter().enumerate() {
        per[(i / g.hw) % g.c] += x.abs();
    }
    per.into_iter().fold(0.0, f64::max)
}

#[test]
fn batchnorm_kernels_match_the_reference() {
    let c = ctx();
    let table = [
        ("batch1", 1, 3, 5, 5),
        ("ragged", 2, 4, 7, 9),
        ("lenet", 64, 6, 28, 28),
        ("planes1x1", 3, 5, 1, 1),
        ("long_channel", 2, 2, 1100, 1000),
        ("grid_past_65535", 1, 4_200_000, 1, 2),
        // Planes of a multiple of 4 run the vec4 kernels (batchnorm_partial4, batchnorm_normalize4,
        // batchnorm_backward_input4); "lenet" and "long_channel" (elementwise only: its runs of 538
        // are not a multiple of 4) do too.
        ("vec4_batch1", 1, 3, 4, 6),
        ("vec4_grid_past_65535", 1, 4_200_000, 2, 2),
        // 7×7 and 5×5 planes whose tensors' lengths are multiples of 4: the elementwise kernels run
        // the vec4 kernels in runs across plane boundaries (STRADDLE); batch 1 too.
        ("straddle_7x7", 3, 8, 7, 7),
        ("straddle_batch1_5x5", 1, 4, 5, 5),
    ];
    let (eps, momentum) = (1e-5f32, 0.1f32);
    for (seed, (name, n, ch, h, w)) in table.into_iter().enumerate() {
        let g = BnGeom { n, c: ch, hw: h * w };
        let shape = [n, ch, h, w];
        let mut r = rng(700 + seed as u64);
        let x = r.vec_f32(g.len(), -1.0, 1.0);
        let (wt, bs) = (r.vec_f32(ch, 0.5, 1.5), r.vec_f32(ch, -0.5, 0.5));
        let (rm, rv) = (r.vec_f32(ch, -0.2, 0.2), r.vec_f32(ch, 0.5, 2.0));
        let dy = r.vec_f32(g.len(), -1.0, 1.0);
        let (x64, dy64, w64, b64) = (to_f64(&x), to_f64(&dy), to_f64(&wt), to_f64(&bs));
        let xt = upload("x", &shape, &x);
        let (wtt, bt) = (upload("weight", &[ch], &wt), upload("bias", &[ch], &bs));
        let stats = zeros("stats", &[2, ch]);
        // Statistics, compared as mean and biased variance (the sums over m, divided by m).
        c.run(&[&batchnorm_stats(c, name, &g, &xt, &stats).unwrap()]).unwrap();
        let got = stats.to_f32(c).unwrap();
        let want = cpu::batchnorm_stats(&g, &x64);
        let m = g.m() as f32;
        let per_m = |v: &[f32]| v.iter().map(|s| s / m).collect::<Vec<f32>>();
        let want_m: Vec<f64> = want.iter().map(|s| s / g.m() as f64).collect();
        check(&format!("batchnorm_stats/{name}"), &per_m(&got), &want_m, F32_TOL);
        // Training normalisation.
        let yt = zeros("y", &shape);
        let (mean, invstd) = cpu::batchnorm_moments(&g, &want, f64::from(eps));
        let y = run_f32(batchnorm_normalize(c, name, &g, eps, &xt, &wtt, &bt, BnStats::Batch(&stats), &yt, false), &yt);
        let want_y = cpu::batchnorm_normalize(&g, &x64, &w64, &b64, &mean, &invstd);
        check(&format!("batchnorm_normalize/train/{name}"), &y, &want_y, F32_TOL);
        // The running statistics, updated in place.
        let (rmt, rvt) = (upload("running_mean", &[ch], &rm), upload("running_var", &[ch], &rv));
        c.run(&[&batchnorm_running(c, name, &g, momentum, &stats, &rmt, &rvt).unwrap()]).unwrap();
        let (want_rm, want_rv) = cpu::batchnorm_running(&g, &want, 0.1, &to_f64(&rm), &to_f64(&rv));
        check(&format!("batchnorm_running/mean/{name}"), &rmt.to_f32(c).unwrap(), &want_rm, F32_TOL);
        check(&format!("batchnorm_running/var/{name}"), &rvt.to_f32(c).unwrap(), &want_rv, F32_TOL);
        // The training graph's form: the statistics and the running update in one launch
        // (batchnorm_moments with RUNNING), the same bits as the two launches.
        let (rm2, rv2, stats2) = (upload("rm2", &[ch], &rm), upload("rv2", &[ch], &rv), zeros("stats2", &[2, ch]));
        let l = batchnorm_stats_running(c, name, &g, &xt, &stats2, momentum, &rm2, &rv2).unwrap();
        assert_eq!(l.kernels().len(), 2, "{name}: the partial sums and the merge");
        c.run(&[&l]).unwrap();
        for (what, a, b) in [("stats", &stats2, &stats), ("running_mean", &rm2, &rmt), ("running_var", &rv2, &rvt)] {
            let (a, b) = (a.to_f32(c).unwrap(), b.to_f32(c).unwrap());
            let differ = a.iter().zip(&b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
            assert_eq!(differ, 0, "batchnorm_stats_running/{what}/{name}: {differ} values differ");
        }
        // Evaluation normalisation from the (updated) running statistics.
        let (grm, grv) = (rmt.to_f32(c).unwrap(), rvt.to_f32(c).unwrap());
        let ye = run_f32(
            batchnorm_normalize(c, name, &g, eps, &xt, &wtt, &bt, BnStats::Running(&rmt, &rvt), &yt, false),
            &yt,
        );
        let inv = cpu::batchnorm_invstd(&to_f64(&grv), f64::from(eps));
        let want_ye = cpu::batchnorm_normalize(&g, &x64, &w64, &b64, &to_f64(&grm), &inv);
        check(&format!("batchnorm_normalize/eval/{name}"), &ye, &want_ye, F32_TOL);
        // Backward: the parameter gradients (sums of m terms), then dx from the GPU's own sums.
        let dyt = upload("dy", &shape, &dy);
        let (dwt, dbt) = (zeros("dweight", &[ch]), zeros("dbias", &[ch]));
        let stats64 = to_f64(&got);
        let (want_dw, want_db) = cpu::batchnorm_param_grads(&g, &dy64, &x64, &stats64, f64::from(eps));
        let l = batchnorm_param_grads(c, name, &g, eps, &dyt, &xt, &stats, None, &dwt, &dbt).unwrap();
        // One pass over dy into the chunks, then both sums' chunks in one batchnorm_grad_sums.
        assert_eq!(l.kernels()[1..], [Kernel::BatchnormGradSums], "{name}");
        c.run(&[&l]).unwrap();
        let (dw, db) = (dwt.to_f32(c).unwrap(), dbt.to_f32(c).unwrap());
        check(&format!("batchnorm_param_grads/dweight/{name}"), &dw, &want_dw, sum_tol(abs_sum(&g, &dy64) * 2.0));
        check(&format!("batchnorm_param_grads/dbias/{name}"), &db, &want_db, sum_tol(abs_sum(&g, &dy64)));
        let dxt = zeros("dx", &shape);
        let launch = batchnorm_backward_input(c, name, &g, eps, &dyt, &xt, &stats, &wtt, &dwt, &dbt, None, &dxt);
        let dx = run_f32(launch, &dxt);
        let want_dx =
            cpu::batchnorm_backward_input(&g, &dy64, &x64, &stats64, &w64, &to_f64(&dw), &to_f64(&db), f64::from(eps));
        check(&format!("batchnorm_backward_input/{name}"), &dx, &want_dx, F32_TOL);
        // Fused with a ReLU (bn_relu, bn_relu_backward): the forward against the reference's
        // max(y, 0), and the backward with dy masked by the ReLU's output against the reference of the
        // masked dy and, bit for bit, against relu_backward followed by the unmasked kernels.
        let yr = zeros("y_relu", &shape);
        let y_relu =
            run_f32(batchnorm_normalize(c, name, &g, eps, &xt, &wtt, &bt, BnStats::Batch(&stats), &yr, true), &yr);
        let want_relu: Vec<f64> = want_y.iter().map(|v| v.max(0.0)).collect();
        check(&format!("batchnorm_normalize/train+relu/{name}"), &y_relu, &want_relu, F32_TOL);
        let masked = zeros("dy_masked", &shape);
        let relu_dx = wgcnn::kernels::activation::activation_backward(
            c,
            name,
            wgcnn::kernels::activation::Activation::Relu,
            &yr,
            &dyt,
            &masked,
        );
        let masked64 = to_f64(&run_f32(relu_dx, &masked));
        let (mdw, mdb, mdx) = (zeros("mdw", &[ch]), zeros("mdb", &[ch]), zeros("mdx", &shape));
        let (dwf, dbf, dxf) = (zeros("dwf", &[ch]), zeros("dbf", &[ch]), zeros("dxf", &shape));
        c.run(&[&batchnorm_param_grads(c, name, &g, eps, &masked, &xt, &stats, None, &mdw, &mdb).unwrap()]).unwrap();
        c.run(&[&batchnorm_param_grads(c, name, &g, eps, &dyt, &xt, &stats, Some(&yr), &dwf, &dbf).unwrap()]).unwrap();
        let unfused = batchnorm_backward_input(c, name, &g, eps, &masked, &xt, &stats, &wtt, &mdw, &mdb, None, &mdx);
        c.run(&[&unfused.unwrap()]).unwrap();
        let fused = batchnorm_backward_input(c, name, &g, eps, &dyt, &xt, &stats, &wtt, &dwf, &dbf, Some(&yr), &dxf);
        c.run(&[&fused.unwrap()]).unwrap();
        let (want_mdw, want_mdb) = cpu::batchnorm_param_grads(&g, &masked64, &x64, &stats64, f64::from(eps));
        let gdw = dwf.to_f32(c).unwrap();
        let gdb = dbf.to_f32(c).unwrap();
        check(&format!("masked/dweight/{name}"), &gdw, &want_mdw, sum_tol(abs_sum(&g, &masked64) * 2.0));
        check(&format!("masked/dbias/{name}"), &gdb, &want_mdb, sum_tol(abs_sum(&g, &masked64)));
        let want_mdx = cpu::batchnorm_backward_input(
            &g,
            &masked64,
            &x64,
            &stats64,
            &w64,
            &to_f64(&gdw),
            &to_f64(&gdb),
            f64::from(eps),
        );
        check(&format!("masked/dx/{name}"), &dxf.to_f32(c).unwrap(), &want_mdx, F32_TOL);
        for (what, a, b) in [("dweight", &mdw, &dwf), ("dbias", &mdb, &dbf), ("dx", &mdx, &dxf)] {
            let (a, b) = (a.to_f32(c).unwrap(), b.to_f32(c).unwrap());
            assert!(
                a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
                "{name}: fused {what} differs from relu_backward + batch-norm"
            );
        }
        assert!(masked64.contains(&0.0) && masked64.iter().any(|&v| v != 0.0), "{name}: the mask masks some");
        if name == "grid_past_65535" {
            assert!(groups(ch) > 65_535 && groups(g.len()) > 65_535);
        }
        if name == "vec4_grid_past_65535" {
            // One vec4 per plane: a run of one per invocation in the elementwise kernels.
            assert!(groups(ch) > 65_535 && groups(g.n * g.c * (g.hw / 4).div_ceil(4)) > 65_535);
        }
        if name == "long_channel" {
            assert_eq!(g.chunks(), (538, 4090), "runs of 538 values, 4,090 partial sums per channel");
        }
    }
}

#[test]
fn batchnorm_refuses_what_pytorch_refuses() {
    let c = ctx();
    // One value per channel in training: no variance.
    let g = BnGeom { n: 1, c: 3, hw: 1 };
    let (x, s) = (zeros("x", &[1, 3, 1, 1]), zeros("stats", &[2, 3]));
    let e = batchnorm_stats(c, "bn", &g, &x, &s).err().unwrap().to_string();
    assert!(e.contains("more than one value per channel"), "{e}");
    // Bad eps and momentum, and a wrong-size operand, are typed errors.
    let g = BnGeom { n: 2, c: 3, hw: 1 };
    let (x, w, y) = (zeros("x", &[2, 3, 1, 1]), zeros("w", &[3]), zeros("y", &[2, 3, 1, 1]));
    assert!(batchnorm_normalize(c, "bn", &g, 0.0, &x, &w, &w, BnStats::Batch(&s), &y, false).is_err());
    assert!(batchnorm_running(c, "bn", &g, 1.5, &s, &w, &w).is_err());
    assert!(batchnorm_stats_running(c, "bn", &g, &x, &s, 1.5, &w, &w).is_err());
    let short = zeros("w", &[2]);
    let e = batchnorm_normalize(c, "bn", &g, 1e-5, &x, &short, &w, BnStats::Batch(&s), &y, false)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("weight"), "{e}");
}

#[test]
fn batchnorm_fold_matches_the_reference() {
    // w' = w · s and b' = (b − mean) · s + beta, s = gamma / √(var + eps): one rounding each (plus the
    // square root), so 1e-6 relative. Rows: a 1x1 conv, resnet's 3x3, and 4.2M weights (65,625 groups).
    let c = ctx();
    let tol = Tol { atol: 1e-7, rtol: 1e-6 };
    for (seed, (c_out, per)) in [(1usize, 1usize), (16, 72), (7, 25), (2, 2_100_000)].into_iter().enumerate() {
        let mut r = rng(800 + seed as u64);
        let (w, b) = (r.vec_f32(c_out * per, -1.0, 1.0), r.vec_f32(c_out, -1.0, 1.0));
        let bn: Vec<Vec<f32>> = vec![
            r.vec_f32(c_out, 0.5, 1.5),
            r.vec_f32(c_out, -0.5, 0.5),
            r.vec_f32(c_out, -0.2, 0.2),
            r.vec_f32(c_out, 0.5, 2.0),
        ];
        let (wt, bt) = (upload("w", &[c_out, per], &w), upload("b", &[c_out], &b));
        let bnt: Vec<_> = bn.iter().map(|v| upload("bn", &[c_out], v)).collect();
        let (w2, b2) = (zeros("w2", &[c_out, per]), zeros("b2", &[c_out]));
        let l = batchnorm_fold(c, "fold", 1e-5, &wt, &bt, [&bnt[0], &bnt[1], &bnt[2], &bnt[3]], &w2, &b2).unwrap();
        c.run(&[&l]).unwrap();
        let bn64: Vec<Vec<f64>> = bn.iter().map(|v| to_f64(v)).collect();
        let (want_w, want_b) =
            cpu::batchnorm_fold(&to_f64(&w), &to_f64(&b), [&bn64[0], &bn64[1], &bn64[2], &bn64[3]], 1e-5);
        check(&format!("batchnorm_fold/w/{c_out}x{per}"), &w2.to_f32(c).unwrap(), &want_w, tol);
        check(&format!("batchnorm_fold/b/{c_out}x{per}"), &b2.to_f32(c).unwrap(), &want_b, tol);
    }
    assert!(groups(2 * 2_100_000) > 65_535);
}

/// The vec4 kernels (planes and lengths of a multiple of 4) against the scalar ones that a
/// `KernelSet::Plain` context runs, bit for bit: batchnorm_partial4 (statistics, parameter gradients
/// plain and masked), batchnorm_normalize4 (batch and running statistics, with and without the ReLU),
/// batchnorm_backward_input4 (plain and masked; both on plane-sized runs and, on 7×7 and 5×5
/// planes, on runs across plane boundaries), add_forward4 (with and without the ReLU),
/// relu_forward4, relu_backward4,
/// concat_forward4, concat_backward4 and conv2d_backward_bias4 (dy as the output of a 1x1 conv: rows
/// 2 and 6 wide start off a multiple of 4, and batch 64's chunks of rows span images).
#[test]
fn vec4_kernels_give_the_scalar_kernels_bits() {
    use wgcnn::kernels::activation::{activation_backward, activation_forward, Activation};
    use wgcnn::kernels::concat::{concat_backward, concat_forward};
    use wgcnn::kernels::conv::conv2d_backward_bias;
    use wgcnn::kernels::elementwise::add_forward_fused;
    use wgcnn::shape::{ConcatGeom, Conv2dGeom};
    let mut plain = wgcnn::Context::new().unwrap();
    plain.kernels = wgcnn::KernelSet::Plain;
    let fast = ctx();
    assert_eq!(fast.kernels, wgcnn::KernelSet::Fast);
    let eps = 1e-5f32;
    // The last three have planes of 49 and 25 values: runs of the elementwise kernels across planes.
    let shapes = [(1, 3, 2, 2), (5, 7, 6, 6), (64, 16, 14, 14), (64, 32, 7, 7), (3, 4, 5, 5), (1, 4, 5, 5)];
    for (seed, (n, ch, h, w)) in shapes.into_iter().enumerate() {
        let g = BnGeom { n, c: ch, hw: h * w };
        let shape = [n, ch, h, w];
        let mut r = rng(900 + seed as u64);
        let x = r.vec_f32(g.len(), -1.0, 1.0);
        let dy = r.vec_f32(g.len(), -1.0, 1.0);
        let (wt, bs) = (r.vec_f32(ch, 0.5, 1.5), r.vec_f32(ch, -0.5, 0.5));
        let (rm, rv) = (r.vec_f32(ch, -0.2, 0.2), r.vec_f32(ch, 0.5, 2.0));
        let run = |c: &wgcnn::Context| -> Vec<(&'static str, Vec<f32>)> {
            let up = |l: &str, s: &[usize], v: &[f32]| wgcnn::Tensor::from_f32(c, l, s, v).unwrap();
            let zero = |l: &str, s: &[usize]| wgcnn::Tensor::zeros(c, l, s, wgcnn::DType::F32).unwrap();
            let (xt, dyt, wtt, bt) =
                (up("x", &shape, &x), up("dy", &shape, &dy), up("w", &[ch], &wt), up("b", &[ch], &bs));
            let (rmt, rvt) = (up("rm", &[ch], &rm), up("rv", &[ch], &rv));
            let stats = zero("stats", &[2, ch]);
            c.run(&[&batchnorm_stats(c, "s", &g, &xt, &stats).unwrap()]).unwrap();
            let (y, yr, ye) = (zero("y", &shape), zero("yr", &shape), zero("ye", &shape));
            let norm = |out: &wgcnn::Tensor, s: BnStats<'_>, relu: bool| {
                c.run(&[&batchnorm_normalize(c, "n", &g, eps, &xt, &wtt, &bt, s, out, relu).unwrap()]).unwrap()
            };
            norm(&y, BnStats::Batch(&stats), false);
            norm(&yr, BnStats::Batch(&stats), true);
            norm(&ye, BnStats::Running(&rmt, &rvt), false);
            let mut outs = vec![];
            for (mask, tag) in [(None, "plain"), (Some(&yr), "masked")] {
                let (dw, db, dx) = (zero("dw", &[ch]), zero("db", &[ch]), zero("dx", &shape));
                c.run(&[&batchnorm_param_grads(c, tag, &g, eps, &dyt, &xt, &stats, mask, &dw, &db).unwrap()]).unwrap();
                let l = batchnorm_backward_input(c, tag, &g, eps, &dyt, &xt, &stats, &wtt, &dw, &db, mask, &dx);
                c.run(&[&l.unwrap()]).unwrap();
                outs.push((if mask.is_some() { "masked dweight" } else { "dweight" }, dw.to_f32(c).unwrap()));
                outs.push((if mask.is_some() { "masked dbias" } else { "dbias" }, db.to_f32(c).unwrap()));
                outs.push((if mask.is_some() { "masked dx" } else { "dx" }, dx.to_f32(c).unwrap()));
            }
            let (sum, sum_relu) = (zero("sum", &shape), zero("sum_relu", &shape));
            c.run(&[&add_forward_fused(c, "a", &xt, &dyt, &sum, false).unwrap()]).unwrap();
            c.run(&[&add_forward_fused(c, "a", &xt, &dyt, &sum_relu, true).unwrap()]).unwrap();
            // x and dy as the two parts of a concatenation along channels, and back.
            let whole = zero("whole", &[n, 2 * ch, h, w]);
            let back = zero("back", &shape);
            for (k, part) in [&xt, &dyt].into_iter().enumerate() {
                let cg = ConcatGeom { n, c_part: ch, c_whole: 2 * ch, offset: k * ch, hw: h * w };
                c.run(&[&concat_forward(c, "c", &cg, part, &whole).unwrap()]).unwrap();
            }
            let cg = ConcatGeom { n, c_part: ch, c_whole: 2 * ch, offset: ch, hw: h * w };
            c.run(&[&concat_backward(c, "c", &cg, &whole, &back).unwrap()]).unwrap();
            let (relu_y, relu_dx) = (zero("relu y", &shape), zero("relu dx", &shape));
            c.run(&[&activation_forward(c, "r", Activation::Relu, &dyt, &relu_y).unwrap()]).unwrap();
            c.run(&[&activation_backward(c, "r", Activation::Relu, &relu_y, &xt, &relu_dx).unwrap()]).unwrap();
            let conv = Conv2dGeom::square(n, 1, h, w, ch, 1, 1, 0);
            let conv_db = zero("conv db", &[ch]);
            c.run(&[&conv2d_backward_bias(c, "cb", &conv, &dyt, &conv_db).unwrap()]).unwrap();
            outs.extend([
                ("conv bias grad", conv_db.to_f32(c).unwrap()),
                ("relu", relu_y.to_f32(c).unwrap()),
                ("relu backward", relu_dx.to_f32(c).unwrap()),
                ("stats", stats.to_f32(c).unwrap()),
                ("y", y.to_f32(c).unwrap()),
                ("y relu", yr.to_f32(c).unwrap()),
                ("y eval", ye.to_f32(c).unwrap()),
                ("add", sum.to_f32(c).unwrap()),
                ("add relu", sum_relu.to_f32(c).unwrap()),
                ("concat", whole.to_f32(c).unwrap()),
                ("concat backward", back.to_f32(c).unwrap()),
            ]);
            outs
        };
        let (a, b) = (run(fast), run(&plain));
        for ((what, u), (_, v)) in a.iter().zip(&b) {
            let same = u.len() == v.len() && u.iter().zip(v).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{n}x{ch}x{h}x{w}: {what} of the vec4 kernels differs from the scalar kernels'");
        }
        assert_eq!(b.iter().find(|o| o.0 == "concat backward").unwrap().1, dy, "the concat's second part is dy");
    }
}
