//! Elementwise ops on tensors of one shape (`shaders/elementwise.wgsl`): `add_forward`, the residual add
//! and the node that sums a value's gradients where it has several consumers (up to four terms a pass).

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
    add_n_forward(ctx, label, &[a, b], y, relu)
}

/// The most terms one [`add_n_forward`] pass adds.
pub const MAX_TERMS: usize = 4;

/// y = ((t0 + t1) + t2) + t3 over 2 to [`MAX_TERMS`] terms of one length (the sums a chain of two-term
/// adds makes, in one pass and one dispatch), or its ReLU when `relu`.
pub fn add_n_forward(ctx: &Context, label: &str, terms: &[&Tensor], y: &Tensor, relu: bool) -> Result<Launch> {
    let len = y.len();
    // A vec4 per invocation when the length allows it (the same sums, fewer loads on a software adapter).
    let lanes = if vec4_fits(ctx, len) { 4 } else { 1 };
    let k = if lanes == 4 { Kernel::AddForward4 } else { Kernel::AddForward };
    let op = k.entry_point();
    if len == 0 {
        return Err(shape_err(op, "empty tensor"));
    }
    if !(2..=MAX_TERMS).contains(&terms.len()) {
        return Err(shape_err(op, format!("adds 2 to {MAX_TERMS} terms, got {}", terms.len())));
    }
    for (i, t) in terms.iter().enumerate() {
        t.expect(op, &format!("term {i}"), DType::F32, len)?;
    }
    y.expect(op, "y", DType::F32, len)?;
    let p = AddParams { len: to_u32(op, "length", len)? / lanes as u32, _pad0: 0, _pad1: 0, _pad2: 0 };
    let consts = [("RELU", u32::from(relu)), ("TERMS", terms.len() as u32)];
    let threads = (len / lanes) as u64;
    // Terms past the count are bound to the first (not read).
    let bound = [terms[0], terms[1], terms.get(2).unwrap_or(&terms[0]), terms.get(3).unwrap_or(&terms[0]), y];
    let (flops, bytes) = ((terms.len() - 1) * len, 4 * (terms.len() + 1) * len);
    Ok(ctx.launch_with(k, &consts, label, &p, &bound, threads, 0)?.with_work(flops as u64, bytes as u64))
}
