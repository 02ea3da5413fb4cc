//! The conv forward of hardware adapters (`conv2d_tiled` in `shaders/conv.wgsl`): an implicit matrix
//! product of the weights with the im2col view of the input, staged through workgroup memory in
//! tiles of 16 output channels × 64 output pixels; the stride-1 input gradient through the same
//! kernel, and the weight gradient through its transposed twin. Chosen where [`crate::context::Budget::tiled`]
//! says so (GPUs); tested on lavapipe against the same reference as every conv kernel.

use crate::context::{Budget, Context};
use crate::error::{to_u32, Result};
use crate::kernels::conv::{check_geom, ConvParams};
use crate::kernels::reduce::sum_chunks;
use crate::kernels::{Kernel, Launch, WORKGROUP_SIZE};
use crate::shape::Conv2dGeom;
use crate::tensor::{DType, Tensor};

/// Loop iterations of one invocation: per step of 16 taps, 4 weight loads, 16 gathers, 16 multiply-adds.
fn iters(g: &Conv2dGeom) -> usize {
    (g.c_in * g.kh * g.kw).div_ceil(16) * 36 + 1
}

/// Whether the tiled forward takes `g` under `budget`.
pub fn conv2d_tiled_takes(g: &Conv2dGeom, budget: &Budget) -> bool {
    budget.tiled && iters(g) <= budget.loop_iters
}

/// y = conv(x, w) + b (then ReLU when `relu`) with the tiled kernel; `None` where the budget does not
/// choose it.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_tiled(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    y: &Tensor,
    relu: bool,
) -> Result<Option<Launch>> {
    let op = Kernel::Conv2dTiled.entry_point();
    check_geom(op, g)?;
    x.expect(op, "x", DType::F32, g.x_len())?;
    w.expect(op, "w", DType::F32, g.w_len())?;
    b.expect(op, "b", DType::F32, g.c_out)?;
    y.expect(op, "y", DType::F32, g.y_len())?;
    if !conv2d_tiled_takes(g, &ctx.budget()) {
        return Ok(None);
    }
    let consts = [("RELU", u32::from(relu)), ("FLIP", 0), ("BIAS", 1)];
    Ok(Some(launch(ctx, label, g, &consts, [x, w, b, y])?.with_work(2 * g.macs() as u64, 0)))
}

/// The geometry the tiled kernel sees for the stride-1 input gradient: dy is its input (c_out
/// channels of out_h × out_w), dx its output, padded by k - 1 - pad. `None` for other strides or
/// padding of k or more.
fn transposed(g: &Conv2dGeom) -> Option<Conv2dGeom> {
    if g.stride_h != 1 || g.stride_w != 1 || g.pad_h >= g.kh || g.pad_w >= g.kw {
        return None;
    }
    let (pad_h, pad_w) = (g.kh - 1 - g.pad_h, g.kw - 1 - g.pad_w);
    Some(Conv2dGeom { c_in: g.c_out, h: g.out_h(), w: g.out_w(), c_out: g.c_in, pad_h, pad_w, ..*g })
}

/// Whether the tiled input gradient takes `g` under `budget` (stride 1, padding below the kernel).
pub fn conv2d_backward_input_tiled_takes(g: &Conv2dGeom, budget: &Budget) -> bool {
    transposed(g).is_some_and(|t| conv2d_tiled_takes(&t, budget))
}

/// dx = conv_transpose(dy, w) for stride 1 with the tiled kernel (flipped taps, no bias); `None`
/// where the budget does not choose it or the stride is not 1.
pub fn conv2d_backward_input_tiled(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Option<Launch>> {
    let op = Kernel::Conv2dTiled.entry_point();
    check_geom(op, g)?;
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    w.expect(op, "w", DType::F32, g.w_len())?;
    dx.expect(op, "dx", DType::F32, g.x_len())?;
    let Some(t) = transposed(g).filter(|t| conv2d_tiled_takes(t, &ctx.budget())) else {
        return Ok(None);
    };
    // b is not read (BIAS is off); w is bound in its place.
    let consts = [("RELU", 0), ("FLIP", 1), ("BIAS", 0)];
    Ok(Some(launch(ctx, label, &t, &consts, [dy, w, w, dx])?.with_work(2 * g.macs() as u64, 0)))
}

/// One `conv2d_tiled` dispatch over the tiles of `g`'s output.
fn launch(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    consts: &[(&'static str, u32)],
    tensors: [&Tensor; 4],
) -> Result<Launch> {
    let op = Kernel::Conv2dTiled.entry_point();
    let tiles = g.c_out.div_ceil(16) * (g.n * g.out_h() * g.out_w()).div_ceil(64);
    let p = ConvParams { total: to_u32(op, "tiles", tiles)?, ..ConvParams::new(op, g, 0)? };
    let threads = tiles as u64 * u64::from(WORKGROUP_SIZE);
    ctx.launch_with(Kernel::Conv2dTiled, consts, label, &p, &tensors, threads, iters(g) as u64)
}

/// How the tiled weight gradient splits the batch's output pixels: pixels per chunk (a multiple of
/// the 16-pixel step) and chunks, enough workgroups for `budget.threads` invocations with every loop
/// within `budget.loop_iters`. `None` where the budget does not choose the tiled kernels.
pub fn conv2d_tiled_weight_grad_split(g: &Conv2dGeom, budget: &Budget) -> Option<(usize, usize)> {
    if !budget.tiled {
        return None;
    }
    let pixels = g.n * g.out_h() * g.out_w();
    let tiles = g.c_out.div_ceil(16) * (g.c_in * g.kh * g.kw).div_ceil(64);
    let wanted = (budget.threads / 64).div_ceil(tiles).clamp(1, pixels.div_ceil(64).max(1));
    let max_span = budget.loop_iters.saturating_sub(1) / 36 * 16;
    if max_span < 16 {
        return None;
    }
    let span = pixels.div_ceil(wanted).next_multiple_of(16).min(max_span);
    let chunks = pixels.div_ceil(span);
    (chunks <= 65_535).then_some((span, chunks))
}

/// dw = Σ over the batch's output pixels of dy ⊗ im2col(x) with the tiled kernel, split into chunks
/// of pixels summed in order by `sum_chunks`; `None` where the budget does not choose it.
pub fn conv2d_backward_weight_tiled(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    dy: &Tensor,
    x: &Tensor,
    dw: &Tensor,
) -> Result<Option<Launch>> {
    let op = Kernel::Conv2dTiledWeightGrad.entry_point();
    check_geom(op, g)?;
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    x.expect(op, "x", DType::F32, g.x_len())?;
    dw.expect(op, "dw", DType::F32, g.w_len())?;
    let Some((span, chunks)) = conv2d_tiled_weight_grad_split(g, &ctx.budget()) else {
        return Ok(None);
    };
    let tiles = g.c_out.div_ceil(16) * (g.c_in * g.kh * g.kw).div_ceil(64);
    let p = ConvParams {
        total: to_u32(op, "tiles", tiles)?,
        rows_per_chunk: to_u32(op, "pixels per chunk", span)?,
        chunks: chunks as u32, // at most 65,535
        ..ConvParams::new(op, g, 0)?
    };
    let out = if chunks == 1 {
        dw.clone()
    } else {
        Tensor::zeros(ctx, &format!("{label}.partial"), &[chunks, g.w_len()], DType::F32)?
    };
    let threads = tiles as u64 * u64::from(WORKGROUP_SIZE);
    let iters = (span / 16 * 36 + 1) as u64;
    let k = Kernel::Conv2dTiledWeightGrad;
    let first = ctx.launch_layered(k, &[], label, &p, &[dy, x, &out], threads, chunks as u32, iters)?;
    let l = if chunks == 1 { first } else { first.then(sum_chunks(ctx, label, &out, chunks, dw)?) };
    Ok(Some(l.with_work(2 * g.macs() as u64, 0)))
}
