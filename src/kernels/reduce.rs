//! Deterministic reductions for metrics (`shaders/reduce.wgsl`): loss sum and correct-count, added to
//! GPU accumulators, and per-row argmax.

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::shape_err;
use crate::error::{to_u32, Result};
use crate::kernels::{Kernel, Launch, WORKGROUP_SIZE};
use crate::shape::LossGeom;
use crate::tensor::{DType, Tensor};

/// Mirrors `struct ReduceParams` in `shaders/reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ReduceParams {
    /// Elements (per chunk for `sum_chunks`) or rows.
    pub n: u32,
    /// Row length, or number of chunks for `sum_chunks`.
    pub cols: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// `acc[0] += Σ x` (one workgroup, fixed order).
pub fn sum_accumulate(ctx: &Context, label: &str, x: &Tensor, acc: &Tensor) -> Result<Launch> {
    let op = Kernel::SumAccumulate.entry_point();
    x.expect(op, "x", DType::F32, x.len())?;
    acc.expect(op, "acc", DType::F32, 1)?;
    let p = ReduceParams { n: to_u32(op, "length", x.len())?, cols: 1, _pad0: 0, _pad1: 0 };
    let iters = x.len().div_ceil(WORKGROUP_SIZE as usize) + 7; // + the tree's levels
    ctx.launch(Kernel::SumAccumulate, label, &p, &[x, acc], u64::from(WORKGROUP_SIZE), iters as u64)
}

/// `acc[0] +=` the number of rows whose first maximum is at the label.
pub fn correct_accumulate(
    ctx: &Context,
    label: &str,
    g: &LossGeom,
    logits: &Tensor,
    labels: &Tensor,
    acc: &Tensor,
) -> Result<Launch> {
    let op = Kernel::CorrectAccumulate.entry_point();
    g.validate(op)?;
    logits.expect(op, "logits", DType::F32, g.len())?;
    labels.expect(op, "labels", DType::U32, g.n)?;
    acc.expect(op, "acc", DType::U32, 1)?;
    let p = row_params(op, g)?;
    let iters = g.n.div_ceil(WORKGROUP_SIZE as usize) * (g.classes + 1) + 7;
    ctx.launch(Kernel::CorrectAccumulate, label, &p, &[logits, labels, acc], u64::from(WORKGROUP_SIZE), iters as u64)
}

/// `out[n]` = index of the first maximum of row `n`.
pub fn argmax_rows(ctx: &Context, label: &str, g: &LossGeom, logits: &Tensor, out: &Tensor) -> Result<Launch> {
    let op = Kernel::ArgmaxRows.entry_point();
    g.validate(op)?;
    logits.expect(op, "logits", DType::F32, g.len())?;
    out.expect(op, "out", DType::U32, g.n)?;
    let p = row_params(op, g)?;
    ctx.launch(Kernel::ArgmaxRows, label, &p, &[logits, out], g.n as u64, g.classes as u64)
}

fn row_params(op: &str, g: &LossGeom) -> Result<ReduceParams> {
    to_u32(op, "logits length", g.len())?; // rows and classes are each at most this
    Ok(ReduceParams { n: g.n as u32, cols: g.classes as u32, _pad0: 0, _pad1: 0 })
}

/// `out[i] = Σ_c partial[c, i]` for `c in 0..chunks`, in order: the second pass of a split reduction.
pub fn sum_chunks(ctx: &Context, label: &str, partial: &Tensor, chunks: usize, out: &Tensor) -> Result<Launch> {
    let op = Kernel::SumChunks.entry_point();
    if chunks == 0 {
        return Err(shape_err(op, "zero chunks"));
    }
    out.expect(op, "out", DType::F32, out.len())?;
    partial.expect(op, "partial", DType::F32, chunks * out.len())?;
    to_u32(op, "partial length", partial.len())?;
    let p = ReduceParams { n: out.len() as u32, cols: chunks as u32, _pad0: 0, _pad1: 0 };
    let label = format!("{label}.sum_chunks");
    ctx.launch(Kernel::SumChunks, &label, &p, &[partial, out], out.len() as u64, chunks as u64)
}

/// Run `kernel`, which writes `chunks` partial results of `out.len()` elements each (`[chunks, len]`),
/// then — when there is more than one chunk — `sum_chunks` into `out`. With one chunk the kernel
/// writes `out` directly. The scratch buffer is allocated here, once, when the launch is built.
pub(crate) fn split_reduction<P: Pod>(
    ctx: &Context,
    label: &str,
    kernel: Kernel,
    params: &P,
    inputs: &[&Tensor],
    out: &Tensor,
    chunks: usize,
    loop_iters: usize,
) -> Result<Launch> {
    let mut bound = inputs.to_vec();
    if chunks <= 1 {
        bound.push(out);
        return ctx.launch(kernel, label, params, &bound, out.len() as u64, loop_iters as u64);
    }
    let partial = Tensor::zeros(ctx, &format!("{label}.partial"), &[chunks, out.len()], DType::F32)?;
    bound.push(&partial);
    let first = ctx.launch(kernel, label, params, &bound, (chunks * out.len()) as u64, loop_iters as u64)?;
    Ok(first.then(sum_chunks(ctx, label, &partial, chunks, out)?))
}
