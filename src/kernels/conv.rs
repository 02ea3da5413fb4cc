//! 2-D convolution (`shaders/conv.wgsl`): forward, backward_input, backward_weight, backward_bias.

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{to_u32, Result};
use crate::kernels::reduce::split_reduction;
use crate::kernels::{split_rows, Kernel, Launch};
use crate::shape::Conv2dGeom;
use crate::tensor::{DType, Tensor};

/// Mirrors `struct ConvParams` in `shaders/conv.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ConvParams {
    pub n: u32,
    pub c_in: u32,
    pub h: u32,
    pub w: u32,
    pub c_out: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_h: u32,
    pub pad_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub total: u32,
    /// Split reductions: (n, oy) rows one invocation sums.
    pub rows_per_chunk: u32,
    /// Split reductions: partial results per element.
    pub chunks: u32,
}

/// A geometry every conv kernel (plain or fast) can index: valid, and its largest tensor addressable
/// with u32 (the largest flat index any conv kernel computes is below it).
pub(crate) fn check_geom(op: &str, g: &Conv2dGeom) -> Result<()> {
    g.validate(op)?;
    to_u32(op, "largest tensor length", g.x_len().max(g.y_len()).max(g.w_len()))?;
    Ok(())
}

impl ConvParams {
    /// Params for `op`, writing `total` elements; every size must fit in a u32.
    pub fn new(op: &str, g: &Conv2dGeom, total: usize) -> Result<Self> {
        check_geom(op, g)?;
        let u = |v: usize| v as u32; // safe: each is <= the largest tensor length, checked
        Ok(ConvParams {
            n: u(g.n),
            c_in: u(g.c_in),
            h: u(g.h),
            w: u(g.w),
            c_out: u(g.c_out),
            kh: u(g.kh),
            kw: u(g.kw),
            stride_h: to_u32(op, "stride_h", g.stride_h)?,
            stride_w: to_u32(op, "stride_w", g.stride_w)?,
            pad_h: to_u32(op, "pad_h", g.pad_h)?,
            pad_w: to_u32(op, "pad_w", g.pad_w)?,
            out_h: u(g.out_h()),
            out_w: u(g.out_w()),
            total: to_u32(op, "output length", total)?,
            rows_per_chunk: 0,
            chunks: 1,
        })
    }
}

impl ConvParams {
    /// Params of a split reduction writing `chunks` partial results of `len` elements.
    pub fn with_split(op: &str, g: &Conv2dGeom, len: usize, rows_per_chunk: usize, chunks: usize) -> Result<Self> {
        let total = len.saturating_mul(chunks);
        Ok(ConvParams {
            rows_per_chunk: to_u32(op, "rows per chunk", rows_per_chunk)?,
            chunks: to_u32(op, "chunks", chunks)?,
            ..ConvParams::new(op, g, total)?
        })
    }
}

/// y = conv(x, w) + b.
pub fn conv2d_forward(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    y: &Tensor,
) -> Result<Launch> {
    let op = Kernel::Conv2dForward.entry_point();
    let p = ConvParams::new(op, g, g.y_len())?;
    x.expect(op, "x", DType::F32, g.x_len())?;
    w.expect(op, "w", DType::F32, g.w_len())?;
    b.expect(op, "b", DType::F32, g.c_out)?;
    y.expect(op, "y", DType::F32, g.y_len())?;
    let iters = g.c_in * (g.kh * (g.kw + 1) + 1);
    Ok(ctx
        .launch(Kernel::Conv2dForward, label, &p, &[x, w, b, y], g.y_len() as u64, iters as u64)?
        .with_work(2 * g.macs() as u64, 0))
}

/// dx = conv_transpose(dy, w).
pub fn conv2d_backward_input(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Launch> {
    let op = Kernel::Conv2dBackwardInput.entry_point();
    let p = ConvParams::new(op, g, g.x_len())?;
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    w.expect(op, "w", DType::F32, g.w_len())?;
    dx.expect(op, "dx", DType::F32, g.x_len())?;
    let iters = g.c_out * (g.kh * (g.kw + 1) + 1);
    Ok(ctx
        .launch(Kernel::Conv2dBackwardInput, label, &p, &[dy, w, dx], g.x_len() as u64, iters as u64)?
        .with_work(2 * g.macs() as u64, 0))
}

/// dw = correlation of x with dy, summed over the batch (a split reduction over the (n, oy) rows).
pub fn conv2d_backward_weight(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    dy: &Tensor,
    x: &Tensor,
    dw: &Tensor,
) -> Result<Launch> {
    let op = Kernel::Conv2dBackwardWeight.entry_point();
    g.validate(op)?;
    let (rows_per_chunk, chunks) = split_rows(g.n * g.out_h(), g.out_w() + 1);
    let p = ConvParams::with_split(op, g, g.w_len(), rows_per_chunk, chunks)?;
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    x.expect(op, "x", DType::F32, g.x_len())?;
    dw.expect(op, "dw", DType::F32, g.w_len())?;
    let iters = rows_per_chunk * (g.out_w() + 1);
    Ok(split_reduction(ctx, label, Kernel::Conv2dBackwardWeight, &p, &[dy, x], dw, chunks, iters)?
        .with_work(2 * g.macs() as u64, 0))
}

/// db = Σ over batch and positions of dy (a split reduction over the (n, oy) rows).
pub fn conv2d_backward_bias(ctx: &Context, label: &str, g: &Conv2dGeom, dy: &Tensor, db: &Tensor) -> Result<Launch> {
    let op = Kernel::Conv2dBackwardBias.entry_point();
    g.validate(op)?;
    let (rows_per_chunk, chunks) = split_rows(g.n * g.out_h(), g.out_w() + 1);
    let p = ConvParams::with_split(op, g, g.c_out, rows_per_chunk, chunks)?;
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    db.expect(op, "db", DType::F32, g.c_out)?;
    let iters = rows_per_chunk * (g.out_w() + 1);
    // The same sums in the same order, dy read as vec4s where its length allows.
    let kernel =
        if super::vec4_fits(ctx, g.y_len()) { Kernel::Conv2dBackwardBias4 } else { Kernel::Conv2dBackwardBias };
    Ok(split_reduction(ctx, label, kernel, &p, &[dy], db, chunks, iters)?.with_work(g.y_len() as u64, 0))
}
