//! Concatenation along channels (`shaders/concat.wgsl`): one launch per input copies it into its
//! channel slice of the output; the backward copies each slice of the output's gradient back out.

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{to_u32, Result};
use crate::kernels::{vec4_fits, Kernel, Launch};
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
    pub start: u32,
    pub total: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// The copy's direction: a part into the whole, the whole's slice out, or the slice out plus another
/// tensor of the part's shape.
#[derive(Clone, Copy)]
enum Dir<'a> {
    Forward,
    Backward,
    BackwardAdd(&'a Tensor),
}

fn launch(ctx: &Context, dir: Dir, label: &str, g: &ConcatGeom, from: &Tensor, to: &Tensor) -> Result<Launch> {
    // Four values per invocation when every run of the copy starts at a multiple of 4 in both tensors:
    // an image's part (c_part · h · w), its slice's start in the whole (offset · h · w) and the whole's
    // image (c_whole · h · w) all multiples of 4, whatever h · w is.
    let lanes = if [g.c_part, g.offset, g.c_whole].iter().all(|&c| vec4_fits(ctx, c * g.hw)) { 4 } else { 1 };
    let kernel = match (dir, lanes) {
        (Dir::Forward, 1) => Kernel::ConcatForward,
        (Dir::Forward, _) => Kernel::ConcatForward4,
        (Dir::Backward, 1) => Kernel::ConcatBackward,
        (Dir::Backward, _) => Kernel::ConcatBackward4,
        (Dir::BackwardAdd(_), 1) => Kernel::ConcatBackwardAdd,
        (Dir::BackwardAdd(_), _) => Kernel::ConcatBackwardAdd4,
    };
    let op = kernel.entry_point();
    g.validate(op)?;
    let (part, whole) = if matches!(dir, Dir::Forward) { (from, to) } else { (to, from) };
    part.expect(op, "part", DType::F32, g.part_len())?;
    if let Dir::BackwardAdd(o) = dir {
        o.expect(op, "other", DType::F32, g.part_len())?;
    }
    whole.expect(op, "whole", DType::F32, g.whole_len())?;
    to_u32(op, "output length", g.whole_len())?;
    let u = |v: usize| v as u32; // each is <= whole_len, checked above
    let p = ConcatParams {
        n: u(g.n),
        c_part: u(g.c_part),
        c_whole: u(g.c_whole),
        offset: u(g.offset),
        start: u(g.offset * g.hw / lanes),
        total: u(g.part_len() / lanes),
        _pad0: 0,
        _pad1: 0,
    };
    let consts = [("PART", u(g.c_part * g.hw / lanes)), ("GAP", u((g.c_whole - g.c_part) * g.hw / lanes))];
    let (tensors, bytes) = match dir {
        Dir::BackwardAdd(o) => (vec![from, o, to], 12 * g.part_len() as u64),
        _ => (vec![from, to], 8 * g.part_len() as u64),
    };
    Ok(ctx.launch_with(kernel, &consts, label, &p, &tensors, (g.part_len() / lanes) as u64, 0)?.with_work(0, bytes))
}

/// Copy `part` into its channel slice of `whole`.
pub fn concat_forward(ctx: &Context, label: &str, g: &ConcatGeom, part: &Tensor, whole: &Tensor) -> Result<Launch> {
    launch(ctx, Dir::Forward, label, g, part, whole)
}

/// dpart = the channel slice of dwhole.
pub fn concat_backward(ctx: &Context, label: &str, g: &ConcatGeom, dwhole: &Tensor, dpart: &Tensor) -> Result<Launch> {
    launch(ctx, Dir::Backward, label, g, dwhole, dpart)
}

/// dpart = the channel slice of dwhole + other (`other` of the part's shape): the copy and a two-term
/// gradient sum in one pass (the fuse pass's `slice_add`).
pub fn concat_backward_add(
    ctx: &Context,
    label: &str,
    g: &ConcatGeom,
    dwhole: &Tensor,
    other: &Tensor,
    dpart: &Tensor,
) -> Result<Launch> {
    launch(ctx, Dir::BackwardAdd(other), label, g, dwhole, dpart)
}
