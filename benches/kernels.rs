//! Each kernel at LeNet-5's shapes (batch 64 and 256), timed with the GPU waited on before the clock
//! stops. Throughput is printed by criterion as `elem/s`: for compute-bound kernels the "elements"
//! are FLOPs (so Gelem/s reads as GFLOP/s), for memory-bound ones criterion prints bytes/s.
//!
//! `cargo bench --bench kernels` (add `-- conv2d` to filter). Each sample records 10 dispatches of
//! the same launch in one submit, so submit/wait overhead is amortised as it is in a training step.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgcnn::kernels::activation::{activation_backward, activation_forward, Activation};
use wgcnn::kernels::conv::*;
use wgcnn::kernels::conv_fast::*;
use wgcnn::kernels::gather::gather_batch;
use wgcnn::kernels::linear::*;
use wgcnn::kernels::loss::{loss_backward, loss_forward, LossKind};
use wgcnn::kernels::matmul::*;
use wgcnn::kernels::optim::{adam_update, sgd_update, Adam, Sgd};
use wgcnn::kernels::pool::*;
use wgcnn::kernels::Launch;
use wgcnn::rng::Rng;
use wgcnn::shape::{Conv2dGeom, LinearGeom, LossGeom, Pool2dGeom};
use wgcnn::{Context, DType, Tensor};

const REPEAT: u64 = 10;

enum Work {
    Flops(u64),
    Bytes(u64),
}

struct Bench<'a> {
    ctx: &'a Context,
    rng: Rng,
}

impl Bench<'_> {
    fn t(&mut self, label: &str, len: usize) -> Tensor {
        Tensor::from_f32(self.ctx, label, &[len], &self.rng.vec_f32(len, -1.0, 1.0)).unwrap()
    }
    fn u(&mut self, label: &str, len: usize, below: u64) -> Tensor {
        let v: Vec<u32> = (0..len).map(|_| self.rng.below(below) as u32).collect();
        Tensor::from_u32(self.ctx, label, &[len], &v).unwrap()
    }
}

fn time(c: &mut Criterion, ctx: &Context, name: &str, work: Work, launch: Launch) {
    time_n(c, ctx, name, work, launch, REPEAT)
}

fn time_n(c: &mut Criterion, ctx: &Context, name: &str, work: Work, launch: Launch, repeat: u64) {
    let mut g = c.benchmark_group("kernels");
    g.sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    g.throughput(match work {
        Work::Flops(f) => Throughput::Elements(f * repeat),
        Work::Bytes(b) => Throughput::Bytes(b * repeat),
    });
    let launches: Vec<&Launch> = (0..repeat).map(|_| &launch).collect();
    g.bench_function(name, |b| {
        b.iter(|| {
            ctx.run(&launches).unwrap();
            ctx.wait().unwrap();
        })
    });
    g.finish();
}

/// Convolutions at LeNet-5's two conv layers, plain and fast, every direction.
fn conv(c: &mut Criterion, b: &mut Bench<'_>, batch: usize) {
    let ctx = b.ctx;
    let s = |name: &str| format!("{name}/b{batch}");
    for (layer, g) in [
        ("conv1", Conv2dGeom::square(batch, 1, 28, 28, 6, 5, 1, 2)),
        ("conv2", Conv2dGeom::square(batch, 6, 14, 14, 16, 5, 1, 0)),
    ] {
        let (x, w, bias, y, dy) =
            (b.t("x", g.x_len()), b.t("w", g.w_len()), b.t("b", g.c_out), b.t("y", g.y_len()), b.t("dy", g.y_len()));
        let (dx, dw, db) = (b.t("dx", g.x_len()), b.t("dw", g.w_len()), b.t("db", g.c_out));
        let flops = 2 * g.macs() as u64;
        time(
            c,
            ctx,
            &s(&format!("conv2d_forward/{layer}")),
            Work::Flops(flops),
            conv2d_forward(ctx, layer, &g, &x, &w, &bias, &y).unwrap(),
        );
        time(
            c,
            ctx,
            &s(&format!("conv2d_backward_input/{layer}")),
            Work::Flops(flops),
            conv2d_backward_input(ctx, layer, &g, &dy, &w, &dx).unwrap(),
        );
        time(
            c,
            ctx,
            &s(&format!("conv2d_backward_weight/{layer}")),
            Work::Flops(flops),
            conv2d_backward_weight(ctx, layer, &g, &dy, &x, &dw).unwrap(),
        );
        let fast = [
            ("conv2d_direct", conv2d_forward_fast(ctx, layer, &g, &x, &w, &bias, &y).unwrap()),
            ("conv2d_direct.flip", conv2d_backward_input_fast(ctx, layer, &g, &dy, &w, &dx).unwrap()),
            ("conv2d_weight_grad", conv2d_backward_weight_fast(ctx, layer, &g, &dy, &x, &dw).unwrap()),
        ];
        for (name, launch) in fast {
            if let Some(l) = launch {
                time(c, ctx, &s(&format!("{name}/{layer}")), Work::Flops(flops), l);
            }
        }
        time(
            c,
            ctx,
            &s(&format!("conv2d_backward_bias/{layer}")),
            Work::Flops(g.y_len() as u64),
            conv2d_backward_bias(ctx, layer, &g, &dy, &db).unwrap(),
        );
    }
}

/// Activations over conv1's output.
fn activations(c: &mut Criterion, b: &mut Bench<'_>, batch: usize) {
    let ctx = b.ctx;
    let s = |name: &str| format!("{name}/b{batch}");
    let n = batch * 6 * 28 * 28;
    let (x, y, dy, dx) = (b.t("x", n), b.t("y", n), b.t("dy", n), b.t("dx", n));
    for act in [Activation::Relu, Activation::Tanh, Activation::Sigmoid] {
        time(
            c,
            ctx,
            &s(act.forward_kernel().entry_point()),
            Work::Bytes(8 * n as u64),
            activation_forward(ctx, "act", act, &x, &y).unwrap(),
        );
        time(
            c,
            ctx,
            &s(act.backward_kernel().entry_point()),
            Work::Bytes(12 * n as u64),
            activation_backward(ctx, "act", act, &y, &dy, &dx).unwrap(),
        );
    }
}

/// Pooling over conv1's output, plain and tiled.
fn pooling(c: &mut Criterion, b: &mut Bench<'_>, batch: usize) {
    let ctx = b.ctx;
    let s = |name: &str| format!("{name}/b{batch}");
    let pg = Pool2dGeom::square(batch, 6, 28, 28, 2, 2);
    let (px, py, pdy, pdx) = (b.t("x", pg.x_len()), b.t("y", pg.y_len()), b.t("dy", pg.y_len()), b.t("dx", pg.x_len()));
    let arg = Tensor::zeros(ctx, "argmax", &[pg.y_len()], DType::U32).unwrap();
    let fwd_bytes = (4 * pg.x_len() + 8 * pg.y_len()) as u64;
    time(
        c,
        ctx,
        &s("maxpool2d_forward/pool1"),
        Work::Bytes(fwd_bytes),
        maxpool2d_forward(ctx, "pool1", &pg, &px, &py, &arg).unwrap(),
    );
    let l = maxpool2d_forward(ctx, "pool1", &pg, &px, &py, &arg).unwrap();
    ctx.run(&[&l]).unwrap();
    time(
        c,
        ctx,
        &s("maxpool2d_backward/pool1"),
        Work::Bytes(fwd_bytes),
        maxpool2d_backward(ctx, "pool1", &pg, &pdy, &arg, &pdx).unwrap(),
    );
    time(
        c,
        ctx,
        &s("avgpool2d_forward/pool1"),
        Work::Bytes(fwd_bytes),
        avgpool2d_forward(ctx, "pool1", &pg, &px, &py).unwrap(),
    );
    time(
        c,
        ctx,
        &s("avgpool2d_backward/pool1"),
        Work::Bytes(fwd_bytes),
        avgpool2d_backward(ctx, "pool1", &pg, &pdy, &pdx).unwrap(),
    );
}

/// The fully connected layers, plain and as matmuls.
fn linear(c: &mut Criterion, b: &mut Bench<'_>, batch: usize) {
    let ctx = b.ctx;
    let s = |name: &str| format!("{name}/b{batch}");
    for (layer, g) in [
        ("fc1", LinearGeom { n: batch, in_f: 400, out_f: 120 }),
        ("fc2", LinearGeom { n: batch, in_f: 120, out_f: 84 }),
        ("fc3", LinearGeom { n: batch, in_f: 84, out_f: 10 }),
    ] {
        let (x, w, bias, y, dy) =
            (b.t("x", g.x_len()), b.t("w", g.w_len()), b.t("b", g.out_f), b.t("y", g.y_len()), b.t("dy", g.y_len()));
        let (dx, dw, db) = (b.t("dx", g.x_len()), b.t("dw", g.w_len()), b.t("db", g.out_f));
        let flops = 2 * (g.n * g.in_f * g.out_f) as u64;
        time(
            c,
            ctx,
            &s(&format!("linear_forward/{layer}")),
            Work::Flops(flops),
            linear_forward(ctx, layer, &g, &x, &w, &bias, &y, false).unwrap(),
        );
        time(
            c,
            ctx,
            &s(&format!("linear_backward_input/{layer}")),
            Work::Flops(flops),
            linear_backward_input(ctx, layer, &g, &dy, &w, &dx).unwrap(),
        );
        time(
            c,
            ctx,
            &s(&format!("linear_backward_weight/{layer}")),
            Work::Flops(flops),
            linear_backward_weight(ctx, layer, &g, &dy, &x, &dw).unwrap(),
        );
        let fast = [
            ("matmul.forward", linear_forward_fast(ctx, layer, &g, &x, &w, &bias, &y, false).unwrap()),
            ("matmul.backward_input", linear_backward_input_fast(ctx, layer, &g, &dy, &w, &dx).unwrap()),
            ("matmul.backward_weight", linear_backward_weight_fast(ctx, layer, &g, &dy, &x, &dw).unwrap()),
        ];
        for (name, launch) in fast {
            if let Some(l) = launch {
                time(c, ctx, &s(&format!("{name}/{layer}")), Work::Flops(flops), l);
            }
        }
        time(
            c,
            ctx,
            &s(&format!("linear_backward_bias/{layer}")),
            Work::Flops(g.y_len() as u64),
            linear_backward_bias(ctx, layer, &g, &dy, &db).unwrap(),
        );
    }
}

/// The loss over 10 classes and the batch gather from an 8,000-image set.
fn loss_and_gather(c: &mut Criterion, b: &mut Bench<'_>, batch: usize) {
    let ctx = b.ctx;
    let s = |name: &str| format!("{name}/b{batch}");
    let lg = LossGeom { n: batch, classes: 10 };
    let (z, p, loss, dz) = (b.t("z", lg.len()), b.t("p", lg.len()), b.t("loss", batch), b.t("dz", lg.len()));
    let labels = b.u("labels", batch, 10);
    time(
        c,
        ctx,
        &s("softmax_xent_forward"),
        Work::Bytes(12 * lg.len() as u64),
        loss_forward(ctx, "loss", LossKind::CrossEntropy, &lg, &z, &labels, &loss, &p).unwrap(),
    );
    time(
        c,
        ctx,
        &s("softmax_xent_backward"),
        Work::Bytes(8 * lg.len() as u64),
        loss_backward(ctx, "loss", LossKind::CrossEntropy, &lg, 1.0 / batch as f32, &p, &labels, &dz).unwrap(),
    );
    let images: Vec<u8> = (0..8000 * 784).map(|i| (i % 251) as u8).collect();
    let it = Tensor::from_u8(ctx, "images", &[8000, 784], &images).unwrap();
    let lt = Tensor::from_u8(ctx, "labels", &[8000], &vec![3u8; 8000]).unwrap();
    let idx = b.u("indices", batch, 8000);
    let (gx, gy) = (b.t("x", batch * 784), Tensor::zeros(ctx, "y", &[batch], DType::U32).unwrap());
    time(
        c,
        ctx,
        &s("gather_batch"),
        Work::Bytes(5 * (batch * 784) as u64),
        gather_batch(ctx, "gather", 255.0, &it, &lt, &idx, 0, &gx, &gy).unwrap(),
    );
}

fn kernels(c: &mut Criterion) {
    let ctx = Context::new().expect("a GPU adapter (or lavapipe) is needed for benchmarks");
    eprintln!("adapter: {}", wgcnn::context::describe_adapter(&ctx.info));
    let mut b = Bench { ctx: &ctx, rng: Rng::new(1) };
    let ctx = &ctx;
    for batch in [64usize, 256] {
        conv(c, &mut b, batch);
        activations(c, &mut b, batch);
        pooling(c, &mut b, batch);
        linear(c, &mut b, batch);
        loss_and_gather(c, &mut b, batch);
    }
    // Optimizers over LeNet-5's 61,706 parameters (independent of batch).
    let n = 61_706;
    let (g, w, m, v) = (b.t("g", n), b.t("w", n), b.t("m", n), b.t("v", n));
    let sgd = Sgd { lr: 0.01, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false };
    time(c, ctx, "sgd_update/lenet5", Work::Bytes(20 * n as u64), sgd_update(ctx, "sgd", &sgd, 2, &g, &w, &m).unwrap());
    time(
        c,
        ctx,
        "adam_update/lenet5",
        Work::Bytes(28 * n as u64),
        adam_update(ctx, "adam", &Adam::default(), 2, &g, &w, &m, &v).unwrap(),
    );
    // The plain matmul ceiling: 1024³ through linear_forward.
    let g = LinearGeom { n: 1024, in_f: 1024, out_f: 1024 };
    let (x, w, bias, y) = (b.t("x", g.x_len()), b.t("w", g.w_len()), b.t("b", g.out_f), b.t("y", g.y_len()));
    time_n(
        c,
        ctx,
        "linear_forward/matmul1024",
        Work::Flops(2 * 1024 * 1024 * 1024),
        linear_forward(ctx, "mm", &g, &x, &w, &bias, &y, false).unwrap(),
        1,
    );
    // The register-blocked matmul kernel on the same product.
    time_n(
        c,
        ctx,
        "matmul/matmul1024",
        Work::Flops(2 * 1024 * 1024 * 1024),
        linear_forward_fast(ctx, "mm", &g, &x, &w, &bias, &y, false).unwrap().expect("k = 1024 fits one invocation"),
        1,
    );
}

criterion_group!(benches, kernels);
criterion_main!(benches);
