//! The kernels of a training step around the model against their CPU references: loss, optimizers,
//! the batch gather and the reductions (metrics, split sums). (The coverage ledger is in kernels.rs.)

mod common;

use common::*;
use wgcnn::kernels::gather::gather_batch;
use wgcnn::kernels::loss::{loss_backward, loss_forward, LossKind, BAD_LABEL_LOSS_BITS};
use wgcnn::kernels::optim::{adam_update, sgd_update, Adam, Sgd};
use wgcnn::kernels::reduce::{argmax_rows, correct_accumulate, sum_accumulate};
use wgcnn::kernels::Kernel;
use wgcnn::reference as cpu;
use wgcnn::shape::LossGeom;
use wgcnn::Tensor;

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
        // The NaN is the kernel's explicit bad-label pattern, not the result of a division (a runtime
        // 0/0 gives 0x7fc00000 or 0xffc00000 here, and may be dropped by Metal's fast math).
        assert!(loss[0].is_finite(), "{kind:?}: {loss:?}");
        assert_eq!(loss[1].to_bits(), BAD_LABEL_LOSS_BITS, "{kind:?}: {:#x}", loss[1].to_bits());
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
    // 61,706 = LeNet-5's parameter count (scalar kernels); 61,708 and the longer ones run the vec4
    // kernels; 4.2M folds the scalar kernels' grid, 16.8M the vec4 kernels' (the first two
    // optimizers there). Each vec4 run is also checked bit for bit against a Plain context's scalar
    // kernels.
    let mut plain = wgcnn::Context::new().unwrap();
    plain.kernels = wgcnn::KernelSet::Plain;
    let mut vec4_runs = 0;
    for (seed, len) in [1usize, 61_706, 61_708, 4_200_000, 16_800_000].into_iter().enumerate() {
        let (sgds, adams) = if len > 5_000_000 { (&sgds[1..2], &adams[..1]) } else { (&sgds[..], &adams[..]) };
        let vec4 = len % 4 == 0;
        vec4_runs += usize::from(vec4);
        let mut r = rng(600 + seed as u64);
        let w0 = r.vec_f32(len, -1.0, 1.0);
        let grads: Vec<Vec<f32>> = (0..3).map(|_| r.vec_f32(len, -1.0, 1.0)).collect();
        for (name, opt) in sgds {
            let run = |c: &wgcnn::Context| {
                let up = |l: &str, v: &[f32]| Tensor::from_f32(c, l, &[len], v).unwrap();
                let (pt, bt, gt) = (up("param", &w0), up("buf", &vec![0.0; len]), up("grad", &vec![0.0; len]));
                for (step, g) in grads.iter().enumerate() {
                    gt.write_f32(c, g).unwrap();
                    let l = sgd_update(c, name, opt, step as u64 + 1, &gt, &pt, &bt).unwrap();
                    assert_eq!(l.kernel == Kernel::SgdUpdate4, vec4 && c.kernels == wgcnn::KernelSet::Fast, "{len}");
                    c.run(&[&l]).unwrap();
                }
                [pt, bt].map(|t| t.to_f32(c).unwrap())
            };
            let got = run(c);
            if vec4 {
                same_bits(&format!("sgd_update4/{name}/len{len}"), &got, run(&plain));
            }
            let [pt, bt] = got;
            let (mut w, mut buf) = (w0.clone(), vec![0.0f32; len]);
            for (step, g) in grads.iter().enumerate() {
                cpu::sgd_update(&opt.params(len, step as u64 + 1).unwrap(), g, &mut w, &mut buf);
            }
            // Same f32 formula on both sides: only FMA contraction may differ, by an ulp or so per step.
            let tol = Tol { atol: 1e-6, rtol: 1e-6 };
            check(&format!("sgd_update.param/{name}/len{len}"), &pt, &to_f64(&w), tol);
            check(&format!("sgd_update.buf/{name}/len{len}"), &bt, &to_f64(&buf), tol);
        }
        for (name, opt) in adams {
            let run = |c: &wgcnn::Context| {
                let up = |l: &str, v: &[f32]| Tensor::from_f32(c, l, &[len], v).unwrap();
                let zero = vec![0.0; len];
                let (pt, mt, vt, gt) = (up("param", &w0), up("m", &zero), up("v", &zero), up("grad", &zero));
                for (step, g) in grads.iter().enumerate() {
                    gt.write_f32(c, g).unwrap();
                    let l = adam_update(c, name, opt, step as u64 + 1, &gt, &pt, &mt, &vt).unwrap();
                    assert_eq!(l.kernel == Kernel::AdamUpdate4, vec4 && c.kernels == wgcnn::KernelSet::Fast, "{len}");
                    c.run(&[&l]).unwrap();
                }
                [pt, mt, vt].map(|t| t.to_f32(c).unwrap())
            };
            let got = run(c);
            if vec4 {
                same_bits(&format!("adam_update4/{name}/len{len}"), &got, run(&plain));
            }
            let (mut w, mut m, mut v) = (w0.clone(), vec![0.0f32; len], vec![0.0f32; len]);
            for (step, g) in grads.iter().enumerate() {
                cpu::adam_update(&opt.params(len, step as u64 + 1).unwrap(), g, &mut w, &mut m, &mut v);
            }
            let tol = Tol { atol: 1e-6, rtol: 1e-5 };
            check(&format!("adam_update.param/{name}/len{len}"), &got[0], &to_f64(&w), tol);
            check(&format!("adam_update.exp_avg/{name}/len{len}"), &got[1], &to_f64(&m), tol);
            check(&format!("adam_update.exp_avg_sq/{name}/len{len}"), &got[2], &to_f64(&v), tol);
        }
    }
    assert_eq!(vec4_runs, 3);
    assert!(groups(16_800_000 / 4) > 65_535, "the vec4 kernels' grid folds");
}

/// Every value of `a` has the bits of the same value of `b`.
fn same_bits(what: &str, a: &[Vec<f32>], b: impl AsRef<[Vec<f32>]>) {
    for (k, (u, v)) in a.iter().zip(b.as_ref()).enumerate() {
        let differ = u.iter().zip(v).filter(|(p, q)| p.to_bits() != q.to_bits()).count();
        assert!(
            u.len() == v.len() && differ == 0,
            "{what}: output {k}: {differ} values differ from the scalar kernel's"
        );
    }
}

#[test]
fn gather_batch_matches_reference() {
    let c = ctx();
    let mut r = rng(700);
    // 101 items of 784 bytes: the dataset's byte length is not a multiple of 4 per item boundary.
    // Items of a multiple of 4 bytes run gather_batch4 (a word, four values per invocation), the odd
    // ones gather_batch; each has a row whose grid folds.
    for (name, items, item, batch) in [
        ("mnist_like", 101usize, 784usize, 64usize),
        ("odd_item_size", 13, 7, 5),
        ("batch1", 3, 784, 1),
        ("odd_grid_past_65535", 13, 7, 600_000),
        ("vec4_grid_past_65535", 50, 784, 21_500),
    ] {
        let images: Vec<u8> = (0..items * item).map(|_| r.below(256) as u8).collect();
        let labels: Vec<u8> = (0..items).map(|_| r.below(10) as u8).collect();
        let mut indices: Vec<u32> = (0..batch).map(|_| r.below(items as u64) as u32).collect();
        indices[batch / 2] = items as u32 + 3; // out of range: zeros and label u32::MAX
        let it = Tensor::from_u8(c, "images", &[items, item], &images).unwrap();
        let lt = Tensor::from_u8(c, "labels", &[items], &labels).unwrap();
        let idt = Tensor::from_u32(c, "indices", &[batch], &indices).unwrap();
        let (xt, yt) = (zeros("x", &[batch, item]), zeros_u32("y", &[batch]));
        let l = gather_batch(c, name, 255.0, &it, &lt, &idt, 0, &xt, &yt).unwrap();
        assert_eq!(l.kernel == Kernel::GatherBatch4, item % 4 == 0, "{name}");
        c.run(&[&l]).unwrap();
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
    assert!(groups(600_000 * 7) > 65_535 && groups(21_500 * 784 / 4) > 65_535);
}

/// Run `gather_shard` with transform `t` over `images`/`labels` split into buffers of `shard` items
/// (one launch each, one submit), filling `x` and `y` from `indices`.
fn run_sharded_gather(
    name: &str,
    t: &wgcnn::kernels::gather::Transform,
    (images, labels): (&[u8], &[u8]),
    shard: usize,
    indices: &Tensor,
    (x, y): (&Tensor, &Tensor),
) {
    let c = ctx();
    let (items, item) = (labels.len(), images.len() / labels.len());
    let mut buffers = Vec::new();
    for first in (0..items).step_by(shard) {
        let end = (first + shard).min(items);
        let it = Tensor::from_u8(c, "images", &[end - first, item], &images[first * item..end * item]).unwrap();
        buffers.push((it, Tensor::from_u8(c, "labels", &[end - first], &labels[first..end]).unwrap(), first));
    }
    let launches: Vec<_> = buffers
        .iter()
        .map(|(it, lt, first)| {
            wgcnn::kernels::gather::gather_shard(c, name, t, (it, lt, *first, items), indices, 0, x, y).unwrap()
        })
        .collect();
    c.run(&launches.iter().collect::<Vec<_>>()).unwrap();
}

/// A random gather case: `items` pictures of `chw` bytes with labels below 10, `batch` indices into
/// them, and a transform normalising each channel by a random mean and deviation (no augmentation).
fn random_gather_case(
    r: &mut wgcnn::rng::Rng,
    items: usize,
    chw: [usize; 3],
    batch: usize,
) -> (Vec<u8>, Vec<u8>, Vec<u32>, wgcnn::kernels::gather::Transform) {
    let item = chw.iter().product::<usize>();
    let images: Vec<u8> = (0..items * item).map(|_| r.below(256) as u8).collect();
    let labels: Vec<u8> = (0..items).map(|_| r.below(10) as u8).collect();
    let indices: Vec<u32> = (0..batch).map(|_| r.below(items as u64) as u32).collect();
    let mut t = wgcnn::kernels::gather::Transform::plain(255.0, item);
    t.chw = chw;
    for ch in 0..chw[0] {
        t.mean[ch] = r.uniform(0.1, 0.6) as f32;
        t.std[ch] = r.uniform(0.1, 0.4) as f32;
    }
    (images, labels, indices, t)
}

/// Gather `indices` under `t` on the GPU (the set split into shards of `shard` items) and check x and
/// y against the CPU reference (`what` names the check); returns the reference's x.
fn check_gather(
    what: &str,
    t: &wgcnn::kernels::gather::Transform,
    (images, labels): (&[u8], &[u8]),
    indices: &[u32],
    shard: usize,
    tol: Tol,
) -> Vec<f32> {
    let c = ctx();
    let (batch, item) = (indices.len(), t.chw.iter().product::<usize>());
    let idt = Tensor::from_u32(c, "indices", &[batch], indices).unwrap();
    let (xt, yt) = (zeros("x", &[batch, item]), zeros_u32("y", &[batch]));
    run_sharded_gather(what, t, (images, labels), shard, &idt, (&xt, &yt));
    let (want_x, want_y) = cpu::gather_batch_transformed(t, images, labels, indices);
    check(&format!("{what}.x"), &xt.to_f32(c).unwrap(), &to_f64(&want_x), tol);
    check_u32(&format!("{what}.y"), &yt.to_u32(c).unwrap(), &want_y);
    want_x
}

#[test]
fn gather_batch_normalises_and_augments_as_the_reference() {
    // Per-channel normalisation, random crops (zero padding) and flips drawn from (seed, epoch, item),
    // against the CPU reference over a table of layouts: grey and RGB, ragged sizes, batch 1, a grid
    // past 65,535 workgroups, and a set split into shards. Tolerance: WGSL lets a division be 2.5 ULP
    // off, so |Δ| ≤ 1e-6 + 1e-6·|ref| (values are within ±10); labels exact.
    use wgcnn::kernels::gather::Transform;
    let mut r = rng(710);
    let tol = Tol { atol: 1e-6, rtol: 1e-6 };
    for (name, items, chw, batch, pad, flip, shard) in [
        ("rgb_crop_flip", 37usize, [3usize, 9usize, 11usize], 20usize, 2u32, true, 37usize),
        ("grey_crop4", 50, [1, 28, 28], 64, 4, false, 50),
        ("rgb_flip_only", 5, [3, 32, 32], 7, 0, true, 5),
        ("normalise_only", 9, [3, 5, 3], 9, 0, false, 9),
        // Planes of a multiple of 4 values without crop or flip: gather_batch4, one shard and several.
        ("normalise_words", 9, [3, 8, 8], 9, 0, false, 9),
        ("sharded_words", 23, [3, 4, 4], 16, 0, false, 10),
        ("batch1", 3, [3, 8, 8], 1, 3, true, 3),
        ("sharded", 23, [3, 6, 7], 16, 1, true, 10),
        ("grid_past_65535", 40, [3, 32, 32], 1400, 4, true, 40),
    ] {
        let (images, labels, mut indices, mut t) = random_gather_case(&mut r, items, chw, batch);
        indices[batch / 2] = items as u32 + 1; // past the end: zeros, label u32::MAX
        (t.pad, t.flip, t.seed, t.epoch) = (pad, flip, 12345, 3);
        check_gather(&format!("gather_batch/{name}"), &t, (&images, &labels), &indices, shard, tol);
        if t.augments() {
            // The draws change with the epoch and differ between items.
            let (dx, dy, f) = cpu::augmentation_of(&t, 0);
            let other = Transform { epoch: 4, ..t };
            let moved = (0..items as u32).any(|i| cpu::augmentation_of(&other, i) != cpu::augmentation_of(&t, i));
            let varied = (1..items as u32).any(|i| cpu::augmentation_of(&t, i) != (dx, dy, f));
            assert!(moved && varied, "{name}: the augmentation does not vary");
        }
    }
    assert!(groups(1400 * 3072) > 65_535);
}

#[test]
fn augmentation_draws_are_uniform() {
    // Over 20,000 items, every crop offset in [0, 2·pad] appears about equally often on both axes and
    // about half the items are flipped (each within 5 % of its expected share).
    let mut t = wgcnn::kernels::gather::Transform::plain(255.0, 3 * 32 * 32);
    (t.chw, t.pad, t.flip, t.seed, t.epoch) = ([3, 32, 32], 4, true, 7, 1);
    let (mut xs, mut ys, mut flips) = ([0usize; 9], [0usize; 9], 0usize);
    let n = 20_000;
    for i in 0..n as u32 {
        let (dx, dy, f) = cpu::augmentation_of(&t, i);
        xs[dx as usize] += 1;
        ys[dy as usize] += 1;
        flips += usize::from(f);
    }
    let expect = n as f64 / 9.0;
    for (axis, counts) in [("dx", xs), ("dy", ys)] {
        for (v, &k) in counts.iter().enumerate() {
            assert!((k as f64 - expect).abs() < 0.05 * expect, "{axis} = {v}: {k} of {n}, expected about {expect:.0}");
        }
    }
    assert!((flips as f64 - n as f64 / 2.0).abs() < 0.05 * n as f64 / 2.0, "{flips} of {n} flipped");
}

#[test]
fn gather_warps_as_the_reference() {
    // Random rotation, shear, scale, shift and stroke thickness (`--augment rotate=..`), alone and with
    // crop and flip, against the CPU reference: grey digits, ragged RGB, batch 1, a set split into shards,
    // a grid past 65,535 workgroups. Tolerance |Δ| ≤ 1e-4 (values within ±10): the shader's sin and cos
    // round differently from Rust's (a few ULP of an angle), which moves a sample by under 1e-5 pixels,
    // and bilinear sampling is continuous in its position; labels exact.
    use wgcnn::kernels::gather::{Transform, Warp};
    let mut r = rng(711);
    let tol = Tol { atol: 1e-4, rtol: 0.0 };
    let full = Warp { rotate: 0.3, shear: 0.25, scale: 0.2, shift: 2.5, thick: 1.2 };
    for (name, items, chw, batch, pad, flip, warp, shard) in [
        ("grey_all", 30usize, [1usize, 28usize, 28usize], 40usize, 0u32, false, full, 30usize),
        ("rgb_crop_flip_warp", 17, [3, 9, 11], 20, 2, true, full, 17),
        ("thick_only", 12, [1, 12, 10], 12, 0, false, Warp { thick: 1.5, ..Warp::default() }, 12),
        ("rotate_only", 12, [1, 13, 13], 12, 0, false, Warp { rotate: 3.0, ..Warp::default() }, 12),
        ("batch1", 3, [1, 8, 8], 1, 1, true, full, 3),
        ("sharded", 23, [1, 6, 7], 16, 0, false, full, 10),
        ("grid_past_65535", 20, [1, 28, 28], 6000, 0, false, full, 20),
    ] {
        let (images, labels, mut indices, mut t) = random_gather_case(&mut r, items, chw, batch);
        if batch > 1 {
            indices[batch / 2] = items as u32 + 1;
        }
        (t.pad, t.flip, t.warp, t.seed, t.epoch) = (pad, flip, warp, 99, 2);
        let want_x = check_gather(&format!("gather_batch.warp/{name}"), &t, (&images, &labels), &indices, shard, tol);
        // A warp changes the pictures: not the plain gather's values.
        let (plain_x, _) =
            cpu::gather_batch_transformed(&Transform { warp: Warp::default(), ..t }, &images, &labels, &indices);
        let moved = plain_x.iter().zip(&want_x).filter(|(a, b)| (*a - *b).abs() > 0.1).count();
        assert!(moved > want_x.len() / 10, "{name}: the warp moved only {moved} of {} values", want_x.len());
    }
    assert!(groups(6000 * 784) > 65_535);
}

#[test]
fn warp_moves_ink_where_its_draw_says() {
    // The reference's meaning, checked by geometry: a smooth blob of ink at (10, 11) in a 28x28 picture
    // lands, after an item's warp, with its centre of mass at the draw's affine image of (10, 11) —
    // scaled, slanted (x += k·y), rotated and moved about the centre (14, 14) — to 0.15 px; a stroke
    // grown (thick > 0) holds more ink than the plain picture and a thinned one less.
    use wgcnn::kernels::gather::{Transform, Warp};
    let (h, w) = (28usize, 28usize);
    let blob: Vec<u8> = (0..h * w)
        .map(|i| {
            let (x, y) = ((i % w) as f32 + 0.5, (i / w) as f32 + 0.5);
            let d2 = (x - 10.0).powi(2) + (y - 11.0).powi(2);
            (255.0 * (-d2 / 4.5).exp()).round() as u8
        })
        .collect();
    let mut t = Transform::plain(255.0, h * w);
    t.chw = [1, h, w];
    (t.seed, t.epoch) = (5, 1);
    t.warp = Warp { rotate: 0.4, shear: 0.3, scale: 0.2, shift: 2.0, thick: 0.0 };
    let ink = |pic: &dyn Fn(usize, usize) -> f32| {
        let (mut m, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
        for y in 0..h {
            for x in 0..w {
                let v = f64::from(pic(x, y));
                (m, mx, my) = (m + v, mx + v * (x as f64 + 0.5), my + v * (y as f64 + 0.5));
            }
        }
        (m, mx / m, my / m)
    };
    let (m0, _, _) = ink(&|x, y| f32::from(blob[y * w + x]));
    for item in 0..40u32 {
        let d = cpu::warp_of(&t, item);
        let (_, gx, gy) = ink(&|x, y| cpu::warped(&d, &blob, [h, w], [x, y], [0.0, 0.0]));
        let (px, py) = ((10.0 - 14.0) * d.scale, (11.0 - 14.0) * d.scale);
        let px = px + d.shear * py;
        let (c, s) = (d.angle.cos(), d.angle.sin());
        let (qx, qy) = (c * px - s * py + 14.0 + d.shift[0], s * px + c * py + 14.0 + d.shift[1]);
        let err = ((gx - f64::from(qx)).powi(2) + (gy - f64::from(qy)).powi(2)).sqrt();
        assert!(err < 0.15, "item {item}: ink at ({gx:.2}, {gy:.2}), the draw {d:?} puts it at ({qx:.2}, {qy:.2})");
    }
    t.warp = Warp { thick: 1.0, ..Warp::default() };
    let (mut grown, mut thinned) = (0, 0);
    for item in 0..40u32 {
        let d = cpu::warp_of(&t, item);
        let (m, _, _) = ink(&|x, y| cpu::warped(&d, &blob, [h, w], [x, y], [0.0, 0.0]));
        if d.thick > 0.05 {
            assert!(m > m0 * 1.02, "item {item}: thick {} but ink {m:.0} vs {m0:.0}", d.thick);
            grown += 1;
        } else if d.thick < -0.05 {
            assert!(m < m0 * 0.98, "item {item}: thick {} but ink {m:.0} vs {m0:.0}", d.thick);
            thinned += 1;
        }
    }
    assert!(grown > 5 && thinned > 5, "{grown} grown, {thinned} thinned of 40");
}

#[test]
fn reductions_match_reference() {
    let c = ctx();
    let table = [
        ("batch1", LossGeom { n: 1, classes: 10 }),
        ("lenet_batch64", LossGeom { n: 64, classes: 10 }),
        ("ragged_1000x7", LossGeom { n: 1000, classes: 7 }),
        ("long_300000", LossGeom { n: 300_000, classes: 1 }),
        // Past one workgroup's span on every adapter (262,144 elements, 23,831 rows of 10 on a CPU
        // adapter): several workgroups store partial sums, count_accumulate / sum_accumulate add them.
        ("split_1000003", LossGeom { n: 1_000_003, classes: 1 }),
        ("split_rows_30001x10", LossGeom { n: 30_001, classes: 10 }),
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
        if name.starts_with("split") {
            // Partial sums, then the total: sum_accumulate again, or count_accumulate for the counts.
            assert_eq!(sum.dispatches(), 2, "{name}: sum_accumulate split");
            assert_eq!(cor.dispatches(), 2, "{name}: correct_accumulate + count_accumulate");
        }
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

#[test]
fn gather_over_shards_matches_reference() {
    // A data set split over several buffers (as one past the storage-binding limit is): one launch per
    // shard fills the rows of its items, the last also the rows past the end; together they equal the
    // one-buffer gather bit for bit.
    let c = ctx();
    let mut r = rng(720);
    for (name, items, item, batch, shard) in [
        ("three_shards", 101usize, 784usize, 64usize, 40usize),
        ("shard_of_one", 7, 9, 12, 1),
        ("odd_bytes", 13, 7, 5, 6),
    ] {
        let images: Vec<u8> = (0..items * item).map(|_| r.below(256) as u8).collect();
        let labels: Vec<u8> = (0..items).map(|_| r.below(10) as u8).collect();
        let mut indices: Vec<u32> = (0..batch).map(|_| r.below(items as u64) as u32).collect();
        indices[batch / 2] = items as u32 + 3;
        let idt = Tensor::from_u32(c, "indices", &[batch], &indices).unwrap();
        let (xt, yt) = (zeros("x", &[batch, item]), zeros_u32("y", &[batch]));
        let t = wgcnn::kernels::gather::Transform::plain(255.0, item);
        run_sharded_gather(name, &t, (&images, &labels), shard, &idt, (&xt, &yt));
        let (want_x, want_y) = cpu::gather_batch(255.0, &images, &labels, &indices);
        check(
            &format!("gather_shard.x/{name}"),
            &xt.to_f32(c).unwrap(),
            &to_f64(&want_x),
            Tol { atol: 0.0, rtol: 0.0 },
        );
        check_u32(&format!("gather_shard.y/{name}"), &yt.to_u32(c).unwrap(), &want_y);
    }
}

#[test]
fn a_sharded_gpu_dataset_feeds_the_same_batches() {
    let c = ctx();
    let data = sample(1000);
    let whole = wgcnn::data::GpuDataset::upload(c, "whole", &data).unwrap();
    let split = wgcnn::data::GpuDataset::upload_sharded(c, "split", &data, 300).unwrap();
    assert_eq!((whole.shards.len(), split.shards.len()), (1, 4));
    let mut perm: Vec<u32> = (0..1000).collect();
    rng(730).shuffle(&mut perm);
    let pt = Tensor::from_u32(c, "perm", &[1000], &perm).unwrap();
    let feed = |d: &wgcnn::data::GpuDataset, first: usize| {
        let (x, y) = (zeros("x", &[50, 784]), zeros_u32("y", &[50]));
        let t = wgcnn::kernels::gather::Transform::plain(255.0, 784);
        let l = d.gathers(c, "g", &t, &pt, &x, &y).unwrap();
        d.point(c, &l, &t, &pt, first, &x, &y).unwrap();
        c.run(&l.iter().collect::<Vec<_>>()).unwrap();
        (x.to_f32(c).unwrap(), y.to_u32(c).unwrap())
    };
    for first in [0, 350, 950] {
        assert!(feed(&whole, first) == feed(&split, first), "batch at {first} differs across shards");
    }
}

#[test]
fn a_plain_gather_refuses_an_augmenting_transform() {
    // A gather built for plain batches is compiled without the crop, flip and warp code (the AUGMENT
    // constant): pointing it at an augmenting transform is an error, not plain batches in disguise; one
    // built with that transform takes it, and a plain transform as well.
    let c = ctx();
    let data = sample(100);
    let d = wgcnn::data::GpuDataset::upload(c, "d", &data).unwrap();
    let pt = Tensor::from_u32(c, "perm", &[100], &(0..100).collect::<Vec<u32>>()).unwrap();
    let (x, y) = (zeros("x", &[10, 784]), zeros_u32("y", &[10]));
    let plain = wgcnn::kernels::gather::Transform::plain(255.0, 784);
    let flip = wgcnn::kernels::gather::Transform { flip: true, ..plain };
    let built_plain = d.gathers(c, "g", &plain, &pt, &x, &y).unwrap();
    assert_eq!(built_plain[0].constant("AUGMENT"), Some(0));
    let e = d.point(c, &built_plain, &flip, &pt, 0, &x, &y).unwrap_err().to_string();
    assert!(e.contains("built for plain batches"), "{e}");
    let built_flip = d.gathers(c, "g", &flip, &pt, &x, &y).unwrap();
    assert_eq!(built_flip[0].constant("AUGMENT"), Some(1));
    d.point(c, &built_flip, &flip, &pt, 0, &x, &y).unwrap();
    d.point(c, &built_flip, &plain, &pt, 0, &x, &y).unwrap();
}
