//! The kernels' plans per adapter ([`Budget`]): on a hardware adapter (mocked here, since CI has only
//! lavapipe) the register-blocked kernels take shapes whose loops run past llvmpipe's 65,535-iteration
//! cap, and split reductions aim for a GPU's parallelism; on lavapipe the plans are the ones tuned for it.
//! A discrete GPU's split is also run on lavapipe against the CPU reference.

mod common;

use common::*;
use wgcnn::context::Budget;
use wgcnn::kernels::conv_fast::*;
use wgcnn::kernels::conv_tiled::conv2d_tiled_weight_grad_split;
use wgcnn::kernels::matmul::matmul_takes;
use wgcnn::kernels::reduce::{correct_accumulate, sum_accumulate};
use wgcnn::reference as cpu;
use wgcnn::shape::{Conv2dGeom, LossGeom};
use wgcnn::wgpu::{AdapterInfo, Backend, DeviceType};
use wgcnn::{Context, DType, Tensor};

fn adapter(name: &str, driver: &str, t: DeviceType) -> AdapterInfo {
    AdapterInfo { name: name.into(), driver: driver.into(), ..AdapterInfo::new(t, Backend::Vulkan) }
}

fn lavapipe() -> Budget {
    Budget::for_adapter(&adapter("llvmpipe (LLVM 15.0.6, 256 bits)", "llvmpipe", DeviceType::Cpu))
}

fn h200() -> Budget {
    Budget::for_adapter(&adapter("NVIDIA H200", "NVIDIA", DeviceType::DiscreteGpu))
}

#[test]
fn hardware_adapters_take_the_fast_kernels_past_60000_loop_iterations() {
    let (soft, hard) = (lavapipe(), h200());
    let igpu = Budget::for_adapter(&adapter(
        "Intel(R) Graphics (ADL GT2)",
        "Intel open-source Mesa driver",
        DeviceType::IntegratedGpu,
    ));
    assert_eq!(soft, Budget { loop_iters: 60_000, threads: 4096, reduce_span: 262_144, tiled: false });
    assert!(hard.tiled && igpu.tiled, "GPUs take the workgroup-memory tiled products");
    assert_eq!(hard.reduce_span, 4096, "a GPU spreads metric sums over workgroups of 4,096 elements");
    assert!(hard.loop_iters >= u32::MAX as usize && igpu.loop_iters == hard.loop_iters);
    assert!(hard.threads > igpu.threads && igpu.threads > soft.threads);

    // 2,100 input channels of a 5x5 kernel: 2,100 · 5 · 6 + 1 = 63,001 loop iterations per invocation.
    let wide = Conv2dGeom::square(2, 2100, 12, 12, 16, 5, 1, 2);
    // 2,100 output channels: the input gradient loops over them.
    let deep = Conv2dGeom::square(2, 16, 12, 12, 2100, 5, 1, 2);
    let deep_s2 = Conv2dGeom::square(2, 16, 12, 12, 2100, 5, 2, 2);
    // Rows of 70,000 outputs: one row of the weight gradient is 70,001 iterations.
    let long_rows = Conv2dGeom { kh: 1, pad_h: 0, ..Conv2dGeom::square(1, 2, 1, 70_004, 4, 5, 1, 0) };
    for (b, fast) in [(&soft, false), (&hard, true), (&igpu, true)] {
        assert_eq!(conv2d_forward_fast_takes(&wide, b), fast, "{b:?}: forward over 2,100 channels");
        assert_eq!(conv2d_backward_input_fast_takes(&deep, b), fast, "{b:?}: input gradient, stride 1");
        assert_eq!(conv2d_backward_input_fast_takes(&deep_s2, b), fast, "{b:?}: input gradient, stride 2");
        assert_eq!(conv2d_weight_grad_split(&long_rows, b).is_some(), fast, "{b:?}: weight gradient");
        assert_eq!(matmul_takes(100_000, 1, b, &wgcnn::wgpu::Limits::default()), fast, "{b:?}: k = 100,000");
    }
    // The tiled weight gradient of 4.2M pixels: lavapipe's loop budget clamps a chunk to 26,656 pixels
    // (1,666 steps of 36 iterations), so 158 chunks; a GPU's parallelism asks for 4,096 chunks, which at 1,040 pixels each come to 4,041.
    let big = Conv2dGeom::square(1, 1, 2050, 2050, 1, 3, 1, 1);
    assert_eq!(conv2d_tiled_weight_grad_split(&big, &Budget { tiled: true, ..soft }), Some((26_656, 158)));
    assert_eq!(conv2d_tiled_weight_grad_split(&big, &hard), Some((1_040, 4_041)));
    assert_eq!(conv2d_tiled_weight_grad_split(&big, &soft), None, "lavapipe keeps the register-blocked kernel");
    // Every plan keeps its loops within the budget it was made for.
    let split = conv2d_weight_grad_split(&long_rows, &hard).unwrap();
    assert!(split.iters > 65_535 && split.iters <= hard.loop_iters, "{split:?}");
}

#[test]
fn split_reductions_aim_for_the_adapters_parallelism() {
    // LeNet-5's second conv at batch 256: 5 · 6 · 2 = 60 (row, channel, block) items per chunk.
    let g = Conv2dGeom::square(256, 6, 14, 14, 16, 5, 1, 0);
    let items = |s: &WeightGradSplit| s.layers * g.c_in * g.kh;
    let soft = conv2d_weight_grad_split(&g, &lavapipe()).unwrap();
    let hard = conv2d_weight_grad_split(&g, &h200()).unwrap();
    // lavapipe: ⌈4,096 / 60⌉ = 69 chunks wanted → 38 rows each → 68 chunks (the plan before budgets).
    assert_eq!((soft.rows_per_chunk, soft.chunks), (38, 68), "lavapipe's plan is unchanged");
    // The H200 plan splits to one row per invocation: every (row, item) pair is its own invocation.
    let rows = g.n * g.out_h();
    assert_eq!((hard.rows_per_chunk, hard.chunks), (1, rows), "{hard:?}");
    assert!(hard.chunks * items(&hard) > 100_000);
}

#[test]
fn wide_rows_at_a_large_batch_keep_the_every_row_weight_gradients() {
    // vgg-cifar's 64 -> 64 channels at 16x16, batch 256: for one row per invocation alone, 1,366 rows
    // per chunk fit lavapipe's loop budget, but two input channels' three rows load each row seven
    // times (95,000 iterations). The chunks are sized for them, so they are offered (and lead).
    let g = Conv2dGeom::square(256, 64, 16, 16, 64, 3, 1, 1);
    let b = lavapipe();
    let v = conv2d_weight_grad_variants(&g, &b);
    assert_eq!(v[0].rows, GradRows::ThreeTwo, "{v:?}");
    assert!(v.iter().any(|s| s.rows == GradRows::Three) && v.iter().any(|s| s.rows == GradRows::One), "{v:?}");
    for s in &v {
        assert!(s.iters <= b.loop_iters, "{s:?}");
        assert_eq!((s.rows_per_chunk, s.chunks), (v[0].rows_per_chunk, v[0].chunks), "every layout shares the chunks");
    }
    assert!(v[0].rows_per_chunk * 7 * (1 + g.out_w()) <= b.loop_iters, "{:?}", v[0]);
    // A 1-row kernel has no such layouts: its chunks are as long as one row per invocation allows.
    let rows = Conv2dGeom { kh: 1, pad_h: 0, ..Conv2dGeom::square(256, 64, 16, 16, 64, 3, 1, 1) };
    let one = conv2d_weight_grad_split(&rows, &b).unwrap();
    assert!(one.rows_per_chunk > v[0].rows_per_chunk, "{one:?}");
}

#[test]
fn this_contexts_budget_is_its_adapters() {
    let c = ctx();
    assert_eq!(c.budget(), Budget::for_adapter(&c.info));
    if c.max_loop_iterations() < u64::MAX {
        assert_eq!(c.budget().loop_iters, 60_000, "llvmpipe keeps its margin below the cap");
    }
}

#[test]
fn a_discrete_gpus_weight_gradient_split_matches_the_reference_on_this_adapter() {
    // The H200's parallelism with this adapter's loop budget: one output row per invocation, 20x the
    // chunks of lavapipe's plan, summed by the second pass in order.
    let own = ctx().budget();
    let budget = Budget { loop_iters: own.loop_iters, ..h200() };
    let c = Context::new().unwrap().with_budget(budget);
    let g = Conv2dGeom::square(64, 6, 14, 14, 16, 5, 1, 0);
    let split = conv2d_weight_grad_split(&g, &budget).unwrap();
    assert_eq!(split.rows_per_chunk, 1);
    assert!(split.chunks >= 10 * conv2d_weight_grad_split(&g, &own).unwrap().chunks);
    let mut r = rng(7);
    let (x, dy) = (r.vec_f32(g.x_len(), -1.0, 1.0), r.vec_f32(g.y_len(), -1.0, 1.0));
    let xt = Tensor::from_f32(&c, "x", &[g.x_len()], &x).unwrap();
    let dyt = Tensor::from_f32(&c, "dy", &[g.y_len()], &dy).unwrap();
    let dwt = Tensor::zeros(&c, "dw", &[g.w_len()], DType::F32).unwrap();
    let l = conv2d_backward_weight_fast(&c, "dw_h200_split", &g, &dyt, &xt, &dwt).unwrap().expect("fast path");
    c.run(&[&l]).unwrap();
    let want = cpu::conv2d_backward_weight(&g, &to_f64(&dy), &to_f64(&x));
    check("conv2d_weight_grad/h200_split", &dwt.to_f32(&c).unwrap(), &want, F32_TOL);
}

#[test]
fn a_gpus_metric_reductions_spread_over_workgroups_and_match_the_reference_here() {
    // A batch of 10,000 rows of 10 logits: one workgroup on lavapipe; on a GPU's budget 27 workgroups
    // (4,096 / 11 = 372 rows each) for the correct-count and 25 for the loss sum, then the totals.
    let own = ctx().budget();
    let c = Context::new().unwrap().with_budget(Budget { loop_iters: own.loop_iters, ..h200() });
    let g = LossGeom { n: 10_000, classes: 10 };
    let mut r = rng(9);
    let z = r.vec_f32(g.len(), -1.0, 1.0);
    let labels: Vec<u32> = (0..g.n).map(|_| r.below(10) as u32).collect();
    let zt = Tensor::from_f32(&c, "z", &[g.n, g.classes], &z).unwrap();
    let lt = Tensor::from_u32(&c, "labels", &[g.n], &labels).unwrap();
    let acc = Tensor::from_f32(&c, "acc", &[1], &[0.25]).unwrap();
    let cacc = Tensor::from_u32(&c, "correct", &[1], &[1]).unwrap();
    let sum = sum_accumulate(&c, "loss", &zt, &acc).unwrap();
    let cor = correct_accumulate(&c, "correct", &g, &zt, &lt, &cacc).unwrap();
    assert_eq!((sum.dispatches(), cor.dispatches()), (2, 2));
    assert_eq!((sum.grids()[0][0], cor.grids()[0][0]), (25, 27), "workgroups of the first passes");
    c.run(&[&sum, &cor]).unwrap();
    let z64 = to_f64(&z);
    check("sum_accumulate/h200_span", &acc.to_f32(&c).unwrap(), &[cpu::sum_accumulate(0.25, &z64)], F32_TOL);
    let want = cpu::correct_accumulate(1, &g, &z64, &labels);
    check_u32("correct_accumulate/h200_span", &cacc.to_u32(&c).unwrap(), &[want]);
}
