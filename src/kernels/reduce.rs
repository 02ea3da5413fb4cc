//! Deterministic reductions for metrics (`shaders/reduce.wgsl`): loss sum and correct-count, added to
//! GPU accumulators, and per-row argmax.

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{to_u32, Result};
use crate::kernels::{Kernel, Launch, WORKGROUP_SIZE};
use crate::shape::LossGeom;
use crate::tensor::{DType, Tensor};

/// Mirrors `struct ReduceParams` in `shaders/reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ReduceParams {
    pub n: u32,
    pub classes: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// acc[0] += Σ x (one workgroup, fixed order).
pub fn sum_accumulate(ctx: &Context, label: &str, x: &Tensor, acc: &Tensor) -> Result<Launch> {
    let op = Kernel::SumAccumulate.entry_point();
    x.expect(op, "x", DType::F32, x.len())?;
    acc.expect(op, "acc", DType::F32, 1)?;
    let p = ReduceParams {
        n: to_u32(op, "length", x.len())?,
        classes: 1,
        _pad0: 0,
        _pad1: 0,
    };
    ctx.launch(
        Kernel::SumAccumulate,
        label,
        &p,
        &[x, acc],
        u64::from(WORKGROUP_SIZE),
    )
}

/// acc[0] += number of rows whose first maximum is at the label.
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
    ctx.launch(
        Kernel::CorrectAccumulate,
        label,
        &p,
        &[logits, labels, acc],
        u64::from(WORKGROUP_SIZE),
    )
}

/// out[n] = index of the first maximum of row n.
pub fn argmax_rows(
    ctx: &Context,
    label: &str,
    g: &LossGeom,
    logits: &Tensor,
    out: &Tensor,
) -> Result<Launch> {
    let op = Kernel::ArgmaxRows.entry_point();
    g.validate(op)?;
    logits.expect(op, "logits", DType::F32, g.len())?;
    out.expect(op, "out", DType::U32, g.n)?;
    let p = row_params(op, g)?;
    ctx.launch(Kernel::ArgmaxRows, label, &p, &[logits, out], g.n as u64)
}

fn row_params(op: &str, g: &LossGeom) -> Result<ReduceParams> {
    to_u32(op, "logits length", g.len())?; // rows and classes are each at most this
    Ok(ReduceParams {
        n: g.n as u32,
        classes: g.classes as u32,
        _pad0: 0,
        _pad1: 0,
    })
}
