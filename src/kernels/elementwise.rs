//! Elementwise ops on two tensors (`shaders/elementwise.wgsl`): `add_forward`, the residual add and the
//! node that sums a value's gradients where it has several consumers.

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{shape_err, to_u32, Result};
use crate::kernels::{vec4_fits, Kernel, Launch};
use crate::tensor::{DType, Tensor};

/// Mirrors `struct AddParams` in `shaders/elementwise.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct AddParams {
    pub len: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// y = a + b (all three of one length).
pub fn add_forward(ctx: &Context, label: &str, a: &Tensor, b: &Tensor, y: &Tensor) -> Result<Launch> {
    add_forward_fused(ctx, label, a, b, y, false)
}

/// y = a + b, or max(a + b, 0) when `relu` (the end of a residual block in one pass).
pub fn add_forward_fused(ctx: &Context, label: &str, a: &Tensor, b: &Tensor, y: &Tensor, relu: bool) -> Result<Launch> {
    let len = a.len();
    // A vec4 per invocation when the length allows it (the same sums, fewer loads on a software adapter).
    let lanes = if vec4_fits(ctx, len) { 4 } else { 1 };
    let k = if lanes == 4 { Kernel::AddForward4 } else { Kernel::AddForward };
    let op = k.entry_point();
    if len == 0 {
        return Err(shape_err(op, "empty tensor"));
    }
    a.expect(op, "a", DType::F32, len)?;
    b.expect(op, "b", DType::F32, len)?;
    y.expect(op, "y", DType::F32, len)?;
    let p = AddParams { len: to_u32(op, "length", len)? / lanes as u32, _pad0: 0, _pad1: 0, _pad2: 0 };
    let consts = [("RELU", u32::from(relu))];
    let threads = (len / lanes) as u64;
    Ok(ctx.launch_with(k, &consts, label, &p, &[a, b, y], threads, 0)?.with_work(len as u64, 12 * len as u64))
}
