//! Fully connected layer (`shaders/linear.wgsl`): y = x·Wᵀ + b, and the matmuls of its gradients.

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{to_u32, Result};
use crate::kernels::reduce::split_reduction;
use crate::kernels::{split_rows, Kernel, Launch};
use crate::shape::LinearGeom;
use crate::tensor::{DType, Tensor};

/// Mirrors `struct LinearParams` in `shaders/linear.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct LinearParams {
    pub n: u32,
    pub in_f: u32,
    pub out_f: u32,
    pub total: u32,
    /// Split reductions: batch rows one invocation sums.
    pub rows_per_chunk: u32,
    /// Split reductions: partial results per element.
    pub chunks: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

impl LinearParams {
    pub fn new(op: &str, g: &LinearGeom, total: usize) -> Result<Self> {
        g.validate(op)?;
        let biggest = g.x_len().max(g.w_len()).max(g.y_len());
        to_u32(op, "largest tensor length", biggest)?;
        Ok(LinearParams {
            n: g.n as u32,
            in_f: g.in_f as u32,
            out_f: g.out_f as u32,
            total: to_u32(op, "output length", total)?,
            rows_per_chunk: 0,
            chunks: 1,
            _pad0: 0,
            _pad1: 0,
        })
    }

    /// Params of a split reduction over the batch writing `chunks` partials of `len` elements.
    pub fn with_split(op: &str, g: &LinearGeom, len: usize, rows_per_chunk: usize, chunks: usize) -> Result<Self> {
        let total = len.saturating_mul(chunks);
        Ok(LinearParams {
            rows_per_chunk: to_u32(op, "rows per chunk", rows_per_chunk)?,
            chunks: to_u32(op, "chunks", chunks)?,
            ..LinearParams::new(op, g, total)?
        })
    }
}

/// y = x·Wᵀ + b; with `relu`, max(y, 0) (the layer and its ReLU in one pass).
#[allow(clippy::too_many_arguments)]
pub fn linear_forward(
    ctx: &Context,
    label: &str,
    g: &LinearGeom,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    y: &Tensor,
    relu: bool,
) -> Result<Launch> {
    let op = Kernel::LinearForward.entry_point();
    let p = LinearParams::new(op, g, g.y_len())?;
    x.expect(op, "x", DType::F32, g.x_len())?;
    w.expect(op, "w", DType::F32, g.w_len())?;
    b.expect(op, "b", DType::F32, g.out_f)?;
    y.expect(op, "y", DType::F32, g.y_len())?;
    Ok(ctx
        .launch_with(
            Kernel::LinearForward,
            &[("RELU", u32::from(relu))],
            label,
            &p,
            &[x, w, b, y],
            g.y_len() as u64,
            g.in_f as u64,
        )?
        .with_work(2 * (g.n * g.in_f * g.out_f) as u64, 0))
}

/// dx = dy·W.
pub fn linear_backward_input(
    ctx: &Context,
    label: &str,
    g: &LinearGeom,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Launch> {
    let op = Kernel::LinearBackwardInput.entry_point();
    let p = LinearParams::new(op, g, g.x_len())?;
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    w.expect(op, "w", DType::F32, g.w_len())?;
    dx.expect(op, "dx", DType::F32, g.x_len())?;
    Ok(ctx
        .launch(Kernel::LinearBackwardInput, label, &p, &[dy, w, dx], g.x_len() as u64, g.out_f as u64)?
        .with_work(2 * (g.n * g.in_f * g.out_f) as u64, 0))
}

/// dW = dyᵀ·x (a split reduction over the batch).
pub fn linear_backward_weight(
    ctx: &Context,
    label: &str,
    g: &LinearGeom,
    dy: &Tensor,
    x: &Tensor,
    dw: &Tensor,
) -> Result<Launch> {
    let op = Kernel::LinearBackwardWeight.entry_point();
    g.validate(op)?;
    let (rows_per_chunk, chunks) = split_rows(g.n, 1);
    let p = LinearParams::with_split(op, g, g.w_len(), rows_per_chunk, chunks)?;
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    x.expect(op, "x", DType::F32, g.x_len())?;
    dw.expect(op, "dw", DType::F32, g.w_len())?;
    Ok(split_reduction(ctx, label, Kernel::LinearBackwardWeight, &p, &[dy, x], dw, chunks, rows_per_chunk)?
        .with_work(2 * (g.n * g.in_f * g.out_f) as u64, 0))
}

/// db = column sums of dy (a split reduction over the batch).
pub fn linear_backward_bias(ctx: &Context, label: &str, g: &LinearGeom, dy: &Tensor, db: &Tensor) -> Result<Launch> {
    let op = Kernel::LinearBackwardBias.entry_point();
    g.validate(op)?;
    let (rows_per_chunk, chunks) = split_rows(g.n, 1);
    let p = LinearParams::with_split(op, g, g.out_f, rows_per_chunk, chunks)?;
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    db.expect(op, "db", DType::F32, g.out_f)?;
    Ok(split_reduction(ctx, label, Kernel::LinearBackwardBias, &p, &[dy], db, chunks, rows_per_chunk)?
        .with_work((g.n * g.out_f) as u64, 0))
}
