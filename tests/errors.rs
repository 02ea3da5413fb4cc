//! Bad input gets a typed error naming the problem, never a panic: adapter selection, dispatch
//! limits, impossible shapes and sizes, mismatched tensors.

mod common;

use common::*;
use wgcnn::context::{parse_backends, select_adapter, AdapterChoice};
use wgcnn::kernels::conv::conv2d_forward;
use wgcnn::kernels::gather::gather_batch;
use wgcnn::kernels::linear::linear_forward;
use wgcnn::kernels::optim::{sgd_update, Sgd};
use wgcnn::kernels::pool::maxpool2d_forward;
use wgcnn::kernels::reduce::sum_chunks;
use wgcnn::kernels::{dispatch_grid, split_rows, CHUNK_ITERS};
use wgcnn::shape::{Conv2dGeom, LinearGeom, Pool2dGeom};
use wgcnn::wgpu::{AdapterInfo, Backend, DeviceType};
use wgcnn::{DType, Error, Tensor};

fn adapter(name: &str, t: DeviceType) -> AdapterInfo {
    AdapterInfo { name: name.into(), ..AdapterInfo::new(t, Backend::Vulkan) }
}

fn expect_shape<T>(r: wgcnn::Result<T>, op: &str, needle: &str) {
    match r {
        Err(Error::Shape { op: o, detail }) => {
            assert_eq!(o, op);
            assert!(detail.contains(needle), "{op}: {detail:?} does not mention {needle:?}");
        }
        Err(e) => panic!("{op}: expected a shape error, got {e}"),
        Ok(_) => panic!("{op}: expected a shape error, got Ok"),
    }
}

fn expect_limit<T>(r: wgcnn::Result<T>, needle: &str) {
    match r {
        Err(e @ Error::Limit { .. }) => assert!(e.to_string().contains(needle), "{e} does not mention {needle:?}"),
        Err(e) => panic!("expected a limit error, got {e}"),
        Ok(_) => panic!("expected a limit error, got Ok"),
    }
}

#[test]
fn adapter_selection_prefers_hardware_and_honours_the_choice() {
    let all = [
        adapter("llvmpipe (LLVM 15)", DeviceType::Cpu),
        adapter("Intel UHD 770", DeviceType::IntegratedGpu),
        adapter("NVIDIA H200", DeviceType::DiscreteGpu),
        adapter("virtio", DeviceType::VirtualGpu),
    ];
    assert_eq!(select_adapter(&all, &AdapterChoice::Auto).unwrap(), 2);
    assert_eq!(select_adapter(&all[..2], &AdapterChoice::Auto).unwrap(), 1);
    assert_eq!(select_adapter(&[all[0].clone(), all[3].clone()], &AdapterChoice::Auto).unwrap(), 1);
    assert_eq!(select_adapter(&all[..1], &AdapterChoice::Auto).unwrap(), 0, "software is the fallback");
    assert_eq!(select_adapter(&all, &AdapterChoice::Software).unwrap(), 0);
    assert_eq!(select_adapter(&all, &AdapterChoice::Hardware).unwrap(), 2);
    assert_eq!(select_adapter(&all, &AdapterChoice::Name("uhd".into())).unwrap(), 1);
    match select_adapter(&all[..1], &AdapterChoice::Hardware) {
        Err(e @ Error::AdapterNotFound { .. }) => assert!(e.to_string().contains("llvmpipe"), "{e}"),
        other => panic!("expected AdapterNotFound, got {other:?}"),
    }
    match select_adapter(&all, &AdapterChoice::Name("radeon".into())) {
        Err(Error::AdapterNotFound { wanted, available }) => {
            assert_eq!(wanted, "radeon");
            assert_eq!(available.len(), 4);
        }
        other => panic!("expected AdapterNotFound, got {other:?}"),
    }
    match select_adapter(&[], &AdapterChoice::Auto) {
        Err(e @ Error::NoAdapter { .. }) => assert!(e.to_string().contains("mesa-vulkan-drivers"), "{e}"),
        other => panic!("expected NoAdapter, got {other:?}"),
    }
}

#[test]
fn one_gpu_listed_through_two_backends_is_taken_through_the_platforms_own() {
    use wgcnn::context::backend_rank;
    let on = |name: &str, b: Backend, t: DeviceType| AdapterInfo { name: name.into(), ..AdapterInfo::new(t, b) };
    let both = [
        on("RTX 4090", Backend::Vulkan, DeviceType::DiscreteGpu),
        on("RTX 4090", Backend::Dx12, DeviceType::DiscreteGpu),
    ];
    let want = if cfg!(windows) { 1 } else { 0 };
    assert_eq!(select_adapter(&both, &AdapterChoice::Auto).unwrap(), want);
    assert!(backend_rank(Backend::Dx12, true) < backend_rank(Backend::Vulkan, true), "Windows: DX12 first");
    assert!(backend_rank(Backend::Vulkan, false) < backend_rank(Backend::Dx12, false), "elsewhere: Vulkan first");
    assert!(backend_rank(Backend::Metal, false) < backend_rank(Backend::Gl, false), "GL last");
    // The device type still comes first: a discrete GPU through Vulkan beats an integrated one through DX12.
    let mixed =
        [on("iGPU", Backend::Dx12, DeviceType::IntegratedGpu), on("dGPU", Backend::Vulkan, DeviceType::DiscreteGpu)];
    assert_eq!(select_adapter(&mixed, &AdapterChoice::Auto).unwrap(), 1);
}

#[test]
fn environment_values_are_parsed_or_rejected() {
    assert_eq!(AdapterChoice::parse("Software").unwrap(), AdapterChoice::Software);
    assert_eq!(AdapterChoice::parse(" hardware ").unwrap(), AdapterChoice::Hardware);
    assert_eq!(AdapterChoice::parse("").unwrap(), AdapterChoice::Auto);
    assert_eq!(AdapterChoice::parse("H200").unwrap(), AdapterChoice::Name("H200".into()));
    assert_eq!(parse_backends("vulkan").unwrap(), wgcnn::wgpu::Backends::VULKAN);
    assert_eq!(parse_backends("VK, metal").unwrap(), wgcnn::wgpu::Backends::VULKAN | wgcnn::wgpu::Backends::METAL);
    assert_eq!(parse_backends("gl").unwrap(), wgcnn::wgpu::Backends::GL);
    assert_eq!(parse_backends("Vulkan,GLES").unwrap(), wgcnn::wgpu::Backends::VULKAN | wgcnn::wgpu::Backends::GL);
    for bad in ["webgl", "vulkan,foo", ""] {
        match parse_backends(bad) {
            Err(e @ Error::BadEnv { var: "WGPU_BACKEND", .. }) => assert!(e.to_string().contains("vulkan"), "{e}"),
            other => panic!("{bad:?}: expected BadEnv, got {other:?}"),
        }
    }
}

#[test]
fn dispatch_grids_fold_past_the_per_dimension_limit() {
    assert_eq!(dispatch_grid("t", 1, 64, 65_535).unwrap(), [1, 1, 1]);
    assert_eq!(dispatch_grid("t", 0, 64, 65_535).unwrap(), [1, 1, 1]);
    assert_eq!(dispatch_grid("t", 64 * 65_535, 64, 65_535).unwrap(), [65_535, 1, 1]);
    assert_eq!(dispatch_grid("t", 64 * 65_535 + 1, 64, 65_535).unwrap(), [65_535, 2, 1]);
    let g = dispatch_grid("t", 4_294_967_295, 64, 65_535).unwrap();
    assert!(u64::from(g[0]) * u64::from(g[1]) * 64 >= 4_294_967_295 && g[1] <= 65_535);
    expect_limit(dispatch_grid("t", 1 << 33, 64, 65_535), "invocation count");
    expect_limit(dispatch_grid("t", 1 << 30, 1, 1000), "workgroup count");
}

#[test]
fn split_reductions_cover_every_row_within_the_budget() {
    for (rows, cost) in [(1, 1), (1, 100_000), (5000, 1), (64 * 28, 29), (7168, 29), (4096, 1), (4097, 1)] {
        let (per, chunks) = split_rows(rows, cost);
        assert!(per >= 1 && chunks >= 1, "{rows} {cost}");
        assert!(per * chunks >= rows && per * (chunks - 1) < rows, "{rows} rows: {per} x {chunks}");
        assert!(per == 1 || per * cost <= CHUNK_ITERS, "{rows} rows of cost {cost}: {per} per chunk");
    }
}

#[test]
fn impossible_geometries_are_shape_errors() {
    let c = ctx();
    let t = |len| zeros("t", &[len]);
    let bad = Conv2dGeom::square(1, 1, 4, 4, 1, 7, 1, 1); // 7x7 kernel on a 6x6 padded input
    expect_shape(
        conv2d_forward(c, "conv", &bad, &t(16), &t(49), &t(1), &t(1)),
        "conv2d_forward",
        "larger than the padded input",
    );
    let zero = Conv2dGeom::square(1, 0, 4, 4, 1, 3, 1, 1);
    expect_shape(conv2d_forward(c, "conv", &zero, &t(1), &t(1), &t(1), &t(1)), "conv2d_forward", "zero-sized");
    let zero_stride = Conv2dGeom::square(1, 1, 4, 4, 1, 3, 0, 1);
    expect_shape(conv2d_forward(c, "conv", &zero_stride, &t(16), &t(9), &t(1), &t(16)), "conv2d_forward", "zero-sized");
    let pool = Pool2dGeom::square(1, 1, 3, 3, 4, 1);
    let arg = zeros_u32("arg", &[1]);
    expect_shape(maxpool2d_forward(c, "pool", &pool, &t(9), &t(1), &arg), "maxpool2d_forward", "larger than the input");
    let lin = LinearGeom { n: 0, in_f: 3, out_f: 2 };
    expect_shape(linear_forward(c, "fc", &lin, &t(1), &t(6), &t(2), &t(1), false), "linear_forward", "zero-sized");
}

#[test]
fn mismatched_tensors_are_shape_errors_naming_the_operand() {
    let c = ctx();
    let g = Conv2dGeom::square(2, 1, 8, 8, 3, 3, 1, 0);
    let (x, w, b, y) = (zeros("x", &[g.x_len()]), zeros("w", &[g.w_len()]), zeros("b", &[3]), zeros("y", &[g.y_len()]));
    let short_w = zeros("conv1.weight", &[g.w_len() - 1]);
    expect_shape(conv2d_forward(c, "conv", &g, &x, &short_w, &b, &y), "conv2d_forward", "conv1.weight");
    let y_u32 = zeros_u32("y", &[g.y_len()]);
    expect_shape(conv2d_forward(c, "conv", &g, &x, &w, &b, &y_u32), "conv2d_forward", "expected F32");
    let lin = LinearGeom { n: 4, in_f: 10, out_f: 3 };
    expect_shape(
        linear_forward(
            c,
            "fc",
            &lin,
            &zeros("x", &[4, 11]),
            &zeros("w", &[3, 10]),
            &zeros("b", &[3]),
            &zeros("y", &[12]),
            false,
        ),
        "linear_forward",
        "44 elements, expected 40",
    );
    let p = zeros("p", &[10]);
    expect_shape(
        sgd_update(
            c,
            "sgd",
            &Sgd { lr: 0.1, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false },
            1,
            &p,
            &zeros("w", &[9]),
            &p,
        ),
        "sgd_update",
        "param",
    );
    let nesterov = Sgd { lr: 0.1, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: true };
    expect_shape(sgd_update(c, "sgd", &nesterov, 1, &p, &p, &p), "sgd_update", "Nesterov");
    let images = Tensor::from_u8(c, "images", &[10], &[0; 10]).unwrap();
    let labels = Tensor::from_u8(c, "labels", &[3], &[0; 3]).unwrap();
    let idx = Tensor::from_u32(c, "idx", &[1], &[0]).unwrap();
    expect_shape(
        gather_batch(c, "g", 255.0, &images, &labels, &idx, 0, &zeros("x", &[3]), &zeros_u32("y", &[1])),
        "gather_batch",
        "labels",
    );
    expect_shape(sum_chunks(c, "s", &p, 3, &zeros("out", &[4])), "sum_chunks", "partial");
    expect_shape(sum_chunks(c, "s", &p, 0, &zeros("out", &[4])), "sum_chunks", "zero chunks");
    let past = wgcnn::kernels::reduce::sum_chunks_at(c, "s", &p, 3, &zeros("out", &[4]), 2, 4);
    expect_shape(past, "sum_chunks", "run past the 4 of out");
}

#[test]
fn impossible_sizes_are_limit_errors_and_uploads_are_checked() {
    let c = ctx();
    expect_limit(Tensor::zeros(c, "huge", &[1 << 40], DType::F32), "buffer size");
    expect_limit(Tensor::zeros(c, "overflow", &[usize::MAX, 2], DType::F32), "element count");
    let t = zeros("t", &[4]);
    expect_shape(t.write_f32(c, &[1.0; 5]), "t", "5 elements");
    expect_shape(t.write_u32(c, &[1; 4]), "write_u32", "expected U32");
    expect_shape(t.to_u32(c), "to_u32", "expected U32");
    // A conv whose per-thread loop would pass llvmpipe's cap: refused up front there.
    let deep = Conv2dGeom::square(1, 3000, 5, 5, 1, 5, 1, 0);
    let r = conv2d_forward(
        c,
        "deep",
        &deep,
        &zeros("x", &[deep.x_len()]),
        &zeros("w", &[deep.w_len()]),
        &zeros("b", &[1]),
        &zeros("y", &[1]),
    );
    if c.max_loop_iterations() < u64::MAX {
        expect_limit(r, "loop iterations");
    } else {
        assert!(r.is_ok());
    }
}
