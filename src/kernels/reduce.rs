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
    /// Elements (rows) per workgroup of `sum_accumulate` and `correct_accumulate`.
    pub span: u32,
    /// 1: workgroup g stores its sum at `acc[g]` (the first pass of a split); 0: `acc[0] +=` the sum.
    pub store: u32,
    /// `sum_chunks`: where in `out` the sums go.
    pub offset: u32,
    /// `sum_chunks`: where in `partial` the chunks start.
    pub first: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

impl ReduceParams {
    fn new(n: u32, cols: u32, span: u32, store: u32) -> ReduceParams {
        ReduceParams { n, cols, span, store, offset: 0, first: 0, _pad1: 0, _pad2: 0 }
    }
}

/// How a metric reduction over `n` items, each costing `cost` loop iterations, spreads over
/// workgroups: the span of items per workgroup and the number of workgroups. One workgroup (the whole
/// input, as before splits existed) when `n` is within the adapter's [`crate::context::Budget::reduce_span`];
/// never more workgroups than one grid dimension holds, so `workgroup_id.x` is the index.
fn spread(ctx: &Context, n: usize, cost: usize) -> (usize, usize) {
    let per_group = (ctx.budget().reduce_span / cost.max(1)).max(WORKGROUP_SIZE as usize);
    if n <= per_group {
        return (n.max(1), 1);
    }
    let max_groups = ctx.limits.max_compute_workgroups_per_dimension.max(1) as usize;
    let span = per_group.max(n.div_ceil(max_groups));
    (span, n.div_ceil(span))
}

/// Launch one pass of a metric reduction over `groups` workgroups of `span` items.
#[allow(clippy::too_many_arguments)]
fn metric_pass(
    ctx: &Context,
    kernel: Kernel,
    label: &str,
    (n, cols): (usize, usize),
    (span, groups): (usize, usize),
    tensors: &[&Tensor],
    cost: usize,
) -> Result<Launch> {
    let op = kernel.entry_point();
    // Callers checked n · cols fits in u32.
    let p = ReduceParams::new(to_u32(op, "length", n)?, cols as u32, span as u32, u32::from(groups > 1));
    let iters = span.div_ceil(WORKGROUP_SIZE as usize) * cost + 7; // + the tree's levels
    ctx.launch(kernel, label, &p, tensors, groups as u64 * u64::from(WORKGROUP_SIZE), iters as u64)
}

/// `acc[0] += Σ x`, in a fixed order: one workgroup, or for long inputs one workgroup per span whose
/// sums a second one-workgroup pass adds in order (see [`spread`]).
pub fn sum_accumulate(ctx: &Context, label: &str, x: &Tensor, acc: &Tensor) -> Result<Launch> {
    let op = Kernel::SumAccumulate.entry_point();
    x.expect(op, "x", DType::F32, x.len())?;
    acc.expect(op, "acc", DType::F32, 1)?;
    let (span, groups) = spread(ctx, x.len(), 1);
    if groups == 1 {
        return metric_pass(ctx, Kernel::SumAccumulate, label, (x.len(), 1), (span, 1), &[x, acc], 1);
    }
    let partial = Tensor::zeros(ctx, &format!("{label}.partial"), &[groups], DType::F32)?;
    let first = metric_pass(ctx, Kernel::SumAccumulate, label, (x.len(), 1), (span, groups), &[x, &partial], 1)?;
    let label = format!("{label}.total");
    Ok(first.then(metric_pass(ctx, Kernel::SumAccumulate, &label, (groups, 1), (groups, 1), &[&partial, acc], 1)?))
}

/// `acc[0] +=` the number of rows whose first maximum is at the label (split as [`sum_accumulate`]).
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
    row_params(op, g)?;
    let (k, dims, cost) = (Kernel::CorrectAccumulate, (g.n, g.classes), g.classes + 1);
    let (span, groups) = spread(ctx, g.n, cost);
    if groups == 1 {
        return metric_pass(ctx, k, label, dims, (span, 1), &[logits, labels, acc], cost);
    }
    let partial = Tensor::zeros(ctx, &format!("{label}.partial"), &[groups], DType::U32)?;
    let first = metric_pass(ctx, k, label, dims, (span, groups), &[logits, labels, &partial], cost)?;
    let label = format!("{label}.total");
    Ok(first.then(metric_pass(ctx, Kernel::CountAccumulate, &label, (groups, 1), (groups, 1), &[&partial, acc], 1)?))
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
    Ok(ReduceParams::new(g.n as u32, g.classes as u32, 0, 0))
}

/// `out[i] = Σ_c partial[c, i]` for `c in 0..chunks`, in order: the second pass of a split reduction.
pub fn sum_chunks(ctx: &Context, label: &str, partial: &Tensor, chunks: usize, out: &Tensor) -> Result<Launch> {
    sum_chunks_at(ctx, label, partial, chunks, out, 0, out.len())
}

/// `out[offset + i] = Σ_c partial[c, i]` for `c in 0..chunks`, in order, for `i < n` (`partial` is
/// `[chunks, n]`): [`sum_chunks`] into part of a buffer.
pub fn sum_chunks_at(
    ctx: &Context,
    label: &str,
    partial: &Tensor,
    chunks: usize,
    out: &Tensor,
    offset: usize,
    n: usize,
) -> Result<Launch> {
    sum_chunks_from(ctx, label, partial, 0, chunks, out, offset, n)
}

/// [`sum_chunks_at`] of the `[chunks, n]` partial sums starting at element `from` of `partial` (one
/// of several reductions a kernel wrote into one scratch buffer).
#[allow(clippy::too_many_arguments)]
pub fn sum_chunks_from(
    ctx: &Context,
    label: &str,
    partial: &Tensor,
    from: usize,
    chunks: usize,
    out: &Tensor,
    offset: usize,
    n: usize,
) -> Result<Launch> {
    let op = Kernel::SumChunks.entry_point();
    if chunks == 0 || n == 0 {
        return Err(shape_err(op, if chunks == 0 { "zero chunks" } else { "zero sums" }));
    }
    if offset.checked_add(n).is_none_or(|end| end > out.len()) {
        return Err(shape_err(op, format!("sums {offset}..{offset}+{n} run past the {} of out", out.len())));
    }
    out.expect(op, "out", DType::F32, out.len())?;
    if chunks.checked_mul(n).and_then(|len| len.checked_add(from)).is_none_or(|end| end > partial.len()) {
        return Err(shape_err(
            op,
            format!("{chunks} x {n} sums from {from} run past the {} of partial", partial.len()),
        ));
    }
    partial.expect(op, "partial", DType::F32, partial.len())?;
    to_u32(op, "partial length", partial.len())?;
    let p = ReduceParams {
        offset: to_u32(op, "offset", offset)?,
        first: from as u32,
        ..ReduceParams::new(n as u32, chunks as u32, 0, 0)
    };
    let label = format!("{label}.sum_chunks");
    ctx.launch(Kernel::SumChunks, &label, &p, &[partial, out], n as u64, chunks as u64)
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
