//! Inverted dropout (`shaders/dropout.wgsl`): the mask is a hash of (seed, step, layer salt, element),
//! recomputed by the backward, so nothing but the `[seed, step]` pair changes between steps.

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{shape_err, to_u32, Result};
use crate::kernels::{Kernel, Launch};
use crate::tensor::{DType, Tensor};

/// Mirrors `struct DropoutParams` in `shaders/dropout.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct DropoutParams {
    pub len: u32,
    pub threshold: u32,
    pub scale: f32,
    pub salt: u32,
}

impl DropoutParams {
    /// Drop probability `p` in [0, 1) (checked), for `len` elements, layer `salt`.
    pub fn new(op: &str, p: f32, salt: u32, len: usize) -> Result<DropoutParams> {
        if !(0.0..1.0).contains(&p) {
            return Err(shape_err(op, format!("drop probability {p} is not in [0, 1)")));
        }
        if len == 0 {
            return Err(shape_err(op, "empty tensor"));
        }
        let threshold = (f64::from(p) * 4_294_967_296.0).round().min(f64::from(u32::MAX)) as u32;
        Ok(DropoutParams { len: to_u32(op, "length", len)?, threshold, scale: 1.0 / (1.0 - p), salt })
    }
}

fn launch(ctx: &Context, k: Kernel, label: &str, p: f32, salt: u32, ts: [&Tensor; 3]) -> Result<Launch> {
    let op = k.entry_point();
    let [a, step, out] = ts;
    let params = DropoutParams::new(op, p, salt, a.len())?;
    a.expect(op, "input", DType::F32, a.len())?;
    step.expect(op, "step", DType::U32, 2)?;
    out.expect(op, "output", DType::F32, a.len())?;
    Ok(ctx.launch(k, label, &params, &ts, a.len() as u64, 0)?.with_work(0, 8 * a.len() as u64))
}

/// y = x · keep / (1 − p); `step` holds `[seed, step]`.
pub fn dropout_forward(
    ctx: &Context,
    label: &str,
    p: f32,
    salt: u32,
    x: &Tensor,
    step: &Tensor,
    y: &Tensor,
) -> Result<Launch> {
    launch(ctx, Kernel::DropoutForward, label, p, salt, [x, step, y])
}

/// dx = dy · keep / (1 − p), the same mask as the forward of the same step.
pub fn dropout_backward(
    ctx: &Context,
    label: &str,
    p: f32,
    salt: u32,
    dy: &Tensor,
    step: &Tensor,
    dx: &Tensor,
) -> Result<Launch> {
    launch(ctx, Kernel::DropoutBackward, label, p, salt, [dy, step, dx])
}
