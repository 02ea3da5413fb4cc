//! Every reference backward checked against central differences of its reference forward, in f64.
//! No GPU needed: these prove the spec the GPU kernels are compared with.
//!
//! L(inputs) = Σ r ⊙ forward(inputs) for a fixed random r; the analytic gradient is backward(r).
//! Central differences with h = 1e-6 in f64 err by ~h²·|f'''| + 2⁻⁵²·|L|/h ≈ 1e-9, so the stated
//! tolerance |analytic − numeric| ≤ 1e-6 + 1e-6·|numeric| leaves a wide margin without hiding a wrong
//! formula (those err by O(|r|) = O(1)).

use wgcnn::reference as cpu;
use wgcnn::rng::Rng;
use wgcnn::shape::{ConcatGeom, Conv2dGeom, LinearGeom, LossGeom, Pool2dGeom};

const H: f64 = 1e-6;
const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-6;

fn rand(r: &mut Rng, len: usize) -> Vec<f64> {
    (0..len).map(|_| r.uniform(-1.0, 1.0)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Central-difference gradient of `f` at `x`.
fn numeric(f: impl Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let mut x = x.to_vec();
    (0..x.len())
        .map(|i| {
            let v = x[i];
            x[i] = v + H;
            let up = f(&x);
            x[i] = v - H;
            let down = f(&x);
            x[i] = v;
            (up - down) / (2.0 * H)
        })
        .collect()
}

fn assert_grad(case: &str, analytic: &[f64], numeric: &[f64]) {
    assert_eq!(analytic.len(), numeric.len(), "{case}: length");
    let mut worst = (0.0, 0);
    for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
        let d = (a - n).abs();
        if d > worst.0 {
            worst = (d, i);
        }
        assert!(d <= ATOL + RTOL * n.abs(), "{case}: element {i}: analytic {a} vs numeric {n} (|Δ| = {d:e})");
    }
    eprintln!("GRADCHECK {case} max |Δ| {:e} at [{}] over {} elements", worst.0, worst.1, analytic.len());
}

#[test]
fn conv2d_backward_input_weight_bias() {
    let g = |n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw| Conv2dGeom {
        n,
        c_in,
        h,
        w,
        c_out,
        kh,
        kw,
        stride_h: sh,
        stride_w: sw,
        pad_h: ph,
        pad_w: pw,
    };
    let table = [
        ("lenet_like_pad2", g(1, 1, 6, 6, 2, 5, 5, 1, 1, 2, 2)),
        ("stride2_pad1_ragged", g(2, 2, 7, 6, 3, 3, 3, 2, 2, 1, 1)),
        ("rect_kernel_mixed_stride", g(2, 3, 5, 8, 2, 2, 3, 1, 2, 0, 1)),
    ];
    for (seed, (name, geom)) in table.iter().enumerate() {
        let mut r = Rng::new(10 + seed as u64);
        let (x, w, b, up) = (
            rand(&mut r, geom.x_len()),
            rand(&mut r, geom.w_len()),
            rand(&mut r, geom.c_out),
            rand(&mut r, geom.y_len()),
        );
        let dx = cpu::conv2d_backward_input(geom, &up, &w);
        let num = numeric(|x| dot(&up, &cpu::conv2d_forward(geom, x, &w, &b)), &x);
        assert_grad(&format!("conv2d_backward_input/{name}"), &dx, &num);
        let dw = cpu::conv2d_backward_weight(geom, &up, &x);
        let num = numeric(|w| dot(&up, &cpu::conv2d_forward(geom, &x, w, &b)), &w);
        assert_grad(&format!("conv2d_backward_weight/{name}"), &dw, &num);
        let db = cpu::conv2d_backward_bias(geom, &up);
        let num = numeric(|b| dot(&up, &cpu::conv2d_forward(geom, &x, &w, b)), &b);
        assert_grad(&format!("conv2d_backward_bias/{name}"), &db, &num);
    }
}

#[test]
fn activations_backward() {
    let mut r = Rng::new(20);
    // Keep ReLU's inputs away from its kink at 0, where the derivative does not exist.
    let x: Vec<f64> = rand(&mut r, 50).into_iter().map(|v| if v.abs() < 1e-3 { 0.5 } else { 3.0 * v }).collect();
    let up = rand(&mut r, 50);
    type F = fn(&[f64]) -> Vec<f64>;
    type B = fn(&[f64], &[f64]) -> Vec<f64>;
    let table: [(&str, F, B); 3] = [
        ("relu_backward", cpu::relu_forward::<f64>, cpu::relu_backward::<f64>),
        ("tanh_backward", cpu::tanh_forward::<f64>, cpu::tanh_backward::<f64>),
        ("sigmoid_backward", cpu::sigmoid_forward::<f64>, cpu::sigmoid_backward::<f64>),
    ];
    for (name, fwd, bwd) in table {
        let analytic = bwd(&fwd(&x), &up);
        let num = numeric(|x| dot(&up, &fwd(x)), &x);
        assert_grad(name, &analytic, &num);
    }
}

#[test]
fn pooling_backward() {
    let table = [
        ("2x2s2", Pool2dGeom::square(2, 2, 6, 6, 2, 2)),
        ("3x3s2_overlap_ragged", Pool2dGeom::square(1, 2, 7, 8, 3, 2)),
        (
            "rect_3x2_s1x2",
            Pool2dGeom { n: 1, c: 1, h: 5, w: 6, kh: 3, kw: 2, stride_h: 1, stride_w: 2, pad_h: 0, pad_w: 0 },
        ),
        ("pad1_3x3s2", Pool2dGeom::square(1, 2, 7, 6, 3, 2).padded(1)),
        ("pad1_2x2s2", Pool2dGeom::square(2, 1, 5, 5, 2, 2).padded(1)),
        // global_avgpool: one window over each whole plane.
        (
            "global_5x7",
            Pool2dGeom { n: 2, c: 3, h: 5, w: 7, kh: 5, kw: 7, stride_h: 5, stride_w: 7, pad_h: 0, pad_w: 0 },
        ),
    ];
    for (seed, (name, g)) in table.iter().enumerate() {
        let mut r = Rng::new(30 + seed as u64);
        // Distinct values (no ties within 2h), so max is differentiable at x.
        let x = rand(&mut r, g.x_len());
        let up = rand(&mut r, g.y_len());
        let (_, arg) = cpu::maxpool2d_forward(g, &x);
        let analytic = cpu::maxpool2d_backward(g, &up, &arg);
        let num = numeric(|x| dot(&up, &cpu::maxpool2d_forward(g, x).0), &x);
        assert_grad(&format!("maxpool2d_backward/{name}"), &analytic, &num);
        let analytic = cpu::avgpool2d_backward(g, &up);
        let num = numeric(|x| dot(&up, &cpu::avgpool2d_forward(g, x)), &x);
        assert_grad(&format!("avgpool2d_backward/{name}"), &analytic, &num);
    }
}

#[test]
fn linear_backward_input_weight_bias() {
    for (seed, g) in
        [LinearGeom { n: 1, in_f: 7, out_f: 3 }, LinearGeom { n: 5, in_f: 12, out_f: 10 }].iter().enumerate()
    {
        let mut r = Rng::new(40 + seed as u64);
        let (x, w, b, up) =
            (rand(&mut r, g.x_len()), rand(&mut r, g.w_len()), rand(&mut r, g.out_f), rand(&mut r, g.y_len()));
        let num = numeric(|x| dot(&up, &cpu::linear_forward(g, x, &w, &b)), &x);
        assert_grad(&format!("linear_backward_input/{g:?}"), &cpu::linear_backward_input(g, &up, &w), &num);
        let num = numeric(|w| dot(&up, &cpu::linear_forward(g, &x, w, &b)), &w);
        assert_grad(&format!("linear_backward_weight/{g:?}"), &cpu::linear_backward_weight(g, &up, &x), &num);
        let num = numeric(|b| dot(&up, &cpu::linear_forward(g, &x, &w, b)), &b);
        assert_grad(&format!("linear_backward_bias/{g:?}"), &cpu::linear_backward_bias(g, &up), &num);
    }
}

#[test]
fn losses_backward_with_mean_scale() {
    for (seed, g) in [LossGeom { n: 1, classes: 10 }, LossGeom { n: 4, classes: 5 }].iter().enumerate() {
        let mut r = Rng::new(50 + seed as u64);
        let z: Vec<f64> = rand(&mut r, g.len()).into_iter().map(|v| 4.0 * v).collect();
        let labels: Vec<u32> = (0..g.n).map(|_| r.below(g.classes as u64) as u32).collect();
        let scale = 1.0 / g.n as f64;
        // L = scale · Σ_n loss_n, i.e. PyTorch's mean reduction.
        let (_, p) = cpu::softmax_xent_forward(g, &z, &labels);
        let num = numeric(|z| scale * cpu::softmax_xent_forward(g, z, &labels).0.iter().sum::<f64>(), &z);
        assert_grad(&format!("softmax_xent_backward/{g:?}"), &cpu::softmax_xent_backward(g, scale, &p, &labels), &num);
        let (_, p) = cpu::softmax_mse_forward(g, &z, &labels);
        let num = numeric(|z| scale * cpu::softmax_mse_forward(g, z, &labels).0.iter().sum::<f64>(), &z);
        assert_grad(&format!("softmax_mse_backward/{g:?}"), &cpu::softmax_mse_backward(g, scale, &p, &labels), &num);
    }
}

#[test]
fn xent_forward_matches_closed_form() {
    // −log softmax for logits [0, ln 3] and label 1: p = 3/4, loss = ln(4/3).
    let g = LossGeom { n: 1, classes: 2 };
    let (loss, p) = cpu::softmax_xent_forward(&g, &[0.0, 3f64.ln()], &[1]);
    assert!((loss[0] - (4.0f64 / 3.0).ln()).abs() < 1e-15 && (p[1] - 0.75).abs() < 1e-15);
    // Squared error of the same: ½((1 − 3/4)² + (0 − 1/4)²) = 1/16.
    let (loss, _) = cpu::softmax_mse_forward(&g, &[0.0, 3f64.ln()], &[1]);
    assert!((loss[0] - 0.0625).abs() < 1e-15);
}

#[test]
fn optimizer_references_follow_torch_optim_by_hand() {
    use wgcnn::kernels::optim::{Adam, Sgd};
    // Optimizers have no gradient to check; their references are checked against the torch.optim
    // update rules worked by hand for w = 1 and two steps of g = 1.
    let run_sgd = |opt: Sgd| {
        let (mut w, mut buf) = ([1.0f32], [0.0f32]);
        for step in 1..=2 {
            cpu::sgd_update(&opt.params(1, step).unwrap(), &[1.0], &mut w, &mut buf);
        }
        (w[0], buf[0])
    };
    let base = Sgd { lr: 0.1, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false };
    // buf = 1 then 1.9; w = 1 − 0.1 − 0.19.
    let (w, buf) = run_sgd(base);
    assert!((w - 0.71).abs() < 1e-6 && (buf - 1.9).abs() < 1e-6, "momentum: {w} {buf}");
    // Nesterov: g + μ·buf = 1.9 then 1 + 0.9·1.9 = 2.71; w = 1 − 0.19 − 0.271.
    let (w, _) = run_sgd(Sgd { nesterov: true, ..base });
    assert!((w - 0.539).abs() < 1e-6, "nesterov: {w}");
    // Weight decay 0.5: g1 = 1.5, buf = 1.5, w = 0.85; g2 = 1.425, buf = 2.775, w = 0.5725.
    let (w, buf) = run_sgd(Sgd { weight_decay: 0.5, ..base });
    assert!((w - 0.5725).abs() < 1e-6 && (buf - 2.775).abs() < 1e-6, "weight decay: {w} {buf}");
    // Dampening 0.5: first step buf = g (no dampening), then 0.9 + 0.5 = 1.4; w = 1 − 0.1 − 0.14.
    let (w, _) = run_sgd(Sgd { dampening: 0.5, ..base });
    assert!((w - 0.76).abs() < 1e-6, "dampening: {w}");
    // Adam, lr 0.1, constant g = 1: m̂ = v̂ = 1 every step, so each step moves by lr/(1 + eps).
    let adam = Adam { lr: 0.1, ..Adam::default() };
    let (mut w, mut m, mut v) = ([1.0f32], [0.0f32], [0.0f32]);
    for step in 1..=2 {
        cpu::adam_update(&adam.params(1, step).unwrap(), &[1.0], &mut w, &mut m, &mut v);
    }
    assert!((w[0] - 0.8).abs() < 1e-6, "adam: {}", w[0]);
    assert!((m[0] - 0.19).abs() < 1e-6 && (v[0] - 0.001999).abs() < 1e-9, "adam moments: {} {}", m[0], v[0]);
}

#[test]
fn concat_backward_is_the_slice_of_the_gradient() {
    // L = Σ r ⊙ concat(a, b, c): each part's gradient is its channel slice of r.
    let (n, cs, hw) = (2, [2usize, 3, 1], 6);
    let c_whole: usize = cs.iter().sum();
    let mut r = Rng::new(40);
    let parts: Vec<Vec<f64>> = cs.iter().map(|&c| rand(&mut r, n * c * hw)).collect();
    let up = rand(&mut r, n * c_whole * hw);
    let geoms: Vec<ConcatGeom> = cs
        .iter()
        .scan(0, |off, &c| {
            let g = ConcatGeom { n, c_part: c, c_whole, offset: *off, hw };
            *off += c;
            Some(g)
        })
        .collect();
    let forward = |parts: &[Vec<f64>]| {
        geoms.iter().zip(parts).fold(vec![0.0; n * c_whole * hw], |whole, (g, p)| cpu::concat_forward(g, p, &whole))
    };
    for (k, g) in geoms.iter().enumerate() {
        let analytic = cpu::concat_backward(g, &up);
        let num = numeric(
            |x| {
                let mut ps = parts.clone();
                ps[k] = x.to_vec();
                dot(&up, &forward(&ps))
            },
            &parts[k],
        );
        assert_grad(&format!("concat_backward/part{k}"), &analytic, &num);
    }
}

#[test]
fn dropout_backward_applies_the_forward_mask() {
    let params = wgcnn::kernels::dropout::DropoutParams::new("dropout", 0.4, 2, 50).unwrap();
    let mut r = Rng::new(41);
    let (x, up) = (rand(&mut r, 50), rand(&mut r, 50));
    let analytic = cpu::dropout_backward(&params, 5, 9, &up);
    let num = numeric(|x| dot(&up, &cpu::dropout_forward(&params, 5, 9, x)), &x);
    assert_grad("dropout_backward", &analytic, &num);
    assert!(analytic.contains(&0.0) && analytic.iter().any(|&v| v != 0.0), "some dropped, some kept");
}

#[test]
fn batchnorm_backward_through_the_batch_statistics() {
    // Training form: y = (x − mean(x)) / √(var(x) + eps) · w + b with batch statistics, so dx carries
    // the statistics' dependence on x. Shapes: batch 1, ragged planes, 1x1 planes (m = batch).
    use wgcnn::kernels::batchnorm::BnGeom;
    for (seed, (n, c, hw)) in [(1, 3, 10), (3, 2, 7), (5, 4, 1)].into_iter().enumerate() {
        let g = BnGeom { n, c, hw };
        let eps = 1e-5;
        let mut r = Rng::new(60 + seed as u64);
        let (x, w, b, up) = (rand(&mut r, g.len()), rand(&mut r, c), rand(&mut r, c), rand(&mut r, g.len()));
        let forward = |x: &[f64], w: &[f64], b: &[f64]| {
            let stats = cpu::batchnorm_stats(&g, x);
            let (mean, invstd) = cpu::batchnorm_moments(&g, &stats, eps);
            cpu::batchnorm_normalize(&g, x, w, b, &mean, &invstd)
        };
        let stats = cpu::batchnorm_stats(&g, &x);
        let (dw, db) = cpu::batchnorm_param_grads(&g, &up, &x, &stats, eps);
        let dx = cpu::batchnorm_backward_input(&g, &up, &x, &stats, &w, &dw, &db, eps);
        let case = format!("batchnorm/{n}x{c}x{hw}");
        assert_grad(&format!("{case}/dx"), &dx, &numeric(|v| dot(&up, &forward(v, &w, &b)), &x));
        assert_grad(&format!("{case}/dweight"), &dw, &numeric(|v| dot(&up, &forward(&x, v, &b)), &w));
        assert_grad(&format!("{case}/dbias"), &db, &numeric(|v| dot(&up, &forward(&x, &w, v)), &b));
    }
}
