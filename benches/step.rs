//! One whole LeNet-5 training step (gather, forward, loss, metrics, backward, SGD update: one submit)
//! at batch 64 and 256 on the bundled MNIST sample, the GPU waited on before the clock stops.
//! Throughput is printed as images/s (criterion's `elem/s`).
//!
//! `cargo bench --bench step`; compare kernel sets with `WGCNN_KERNELS=plain cargo bench --bench step`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgcnn::data::{self, Split};
use wgcnn::kernels::optim::Sgd;
use wgcnn::model::{init_params, lenet5, LeNetConfig};
use wgcnn::train::{Optimizer, Trainer};
use wgcnn::Context;

fn step(c: &mut Criterion) {
    let ctx = Context::new().expect("a GPU adapter (or lavapipe) is needed for benchmarks");
    eprintln!("adapter: {} ({:?} kernels)", wgcnn::context::describe_adapter(&ctx.info), ctx.kernels);
    let train = data::load(&data::bundled_dir(), Split::Train).expect("the bundled MNIST sample");
    let spec = lenet5(LeNetConfig::default());
    let init = init_params(&spec.params(), 1);
    let opt = Optimizer::Sgd(Sgd { lr: 0.01, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false });
    let mut g = c.benchmark_group("step");
    g.sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    for batch in [64usize, 256] {
        let mut trainer = Trainer::new(&ctx, spec.clone(), &train, batch, opt, &init).unwrap();
        trainer.start_epoch(&ctx, None).unwrap();
        let full = trainer.full_steps();
        let mut i = 0usize;
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("lenet5_sgd/b{batch}"), |b| {
            b.iter(|| {
                trainer.step(&ctx, i % full).unwrap();
                i += 1;
                ctx.wait().unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, step);
criterion_main!(benches);
