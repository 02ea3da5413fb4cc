//! Concatenation along channels (`shaders/concat.wgsl`): one launch per input copies it into its
//! channel slice of the output; the backward copies each slice of the output's gradient back out.

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{to_u32, Result};
use crate::kernels::{Kernel, Launch};
use crate::shape::ConcatGeom;
use crate::tensor::{DType, Tensor};

/// Mirrors `struct ConcatParams` in `shaders/concat.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ConcatParams {
    pub n: u32,
    pub c_part: u32,
    pub c_whole: u32,
    pub offset: u32,
    pub hw: u32,
    pub total: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

fn launch(ctx: &Context, kernel: Kernel, label: &str, g: &ConcatGeom, from: &Tensor, to: &Tensor) -> Result<Launch> {
    let op = kernel.entry_point();
    g.validate(op)?;
    let (part, whole) = if kernel == Kernel::ConcatForward { (from, to) } else { (to, from) };
    part.expect(op, "part", DType::F32, g.part_len())?;
    whole.expect(op, "whole", DType::F32, g.whole_len())?;
    to_u32(op, "output length", g.whole_len())?;
    let u = |v: usize| v as u32; // each is <= whole_len, checked above
    let p = ConcatParams {
        n: u(g.n),
        c_part: u(g.c_part),
        c_whole: u(g.c_whole),
        offset: u(g.offset),
        hw: u(g.hw),
        total: u(g.part_len()),
        _pad0: 0,
        _pad1: 0,
    };
    let consts = [("PART", u(g.c_part * g.hw)), ("GAP", u((g.c_whole - g.c_part) * g.hw))];
    Ok(ctx
        .launch_with(kernel, &consts, label, &p, &[from, to], g.part_len() as u64, 0)?
        .with_work(0, 8 * g.part_len() as u64))
}

/// Copy `part` into its channel slice of `whole`.
pub fn concat_forward(ctx: &Context, label: &str, g: &ConcatGeom, part: &Tensor, whole: &Tensor) -> Result<Launch> {
    launch(ctx, Kernel::ConcatForward, label, g, part, whole)
}

/// dpart = the channel slice of dwhole.
pub fn concat_backward(ctx: &Context, label: &str, g: &ConcatGeom, dwhole: &Tensor, dpart: &Tensor) -> Result<Launch> {
    launch(ctx, Kernel::ConcatBackward, label, g, dwhole, dpart)
}
