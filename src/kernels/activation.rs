//! Elementwise activations (`shaders/activation.wgsl`): ReLU, tanh, sigmoid, forward and backward.
//! Backward takes the forward output `y`, so the forward input need not be kept.

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{shape_err, to_u32, Result};
use crate::kernels::{vec4_fits, Kernel, Launch};
use crate::tensor::{DType, Tensor};

/// Mirrors `struct ElementwiseParams` in `shaders/activation.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ElementwiseParams {
    pub len: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// The activation functions wgcnn offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
}

impl Activation {
    pub fn forward_kernel(self) -> Kernel {
        match self {
            Activation::Relu => Kernel::ReluForward,
            Activation::Tanh => Kernel::TanhForward,
            Activation::Sigmoid => Kernel::SigmoidForward,
        }
    }
    pub fn backward_kernel(self) -> Kernel {
        match self {
            Activation::Relu => Kernel::ReluBackward,
            Activation::Tanh => Kernel::TanhBackward,
            Activation::Sigmoid => Kernel::SigmoidBackward,
        }
    }
}

fn params(op: &str, len: usize) -> Result<ElementwiseParams> {
    if len == 0 {
        return Err(shape_err(op, "empty tensor"));
    }
    Ok(ElementwiseParams { len: to_u32(op, "length", len)?, _pad0: 0, _pad1: 0, _pad2: 0 })
}

/// The ReLU kernels take a vec4 per invocation where the length allows it (the same values, fewer
/// loads and invocations: residual-mini's two ReLU gradients were 8 % of its step on lavapipe).
fn relu_lanes(ctx: &Context, act: Activation, len: usize) -> usize {
    if act == Activation::Relu && vec4_fits(ctx, len) {
        4
    } else {
        1
    }
}

/// y = act(x).
pub fn activation_forward(ctx: &Context, label: &str, act: Activation, x: &Tensor, y: &Tensor) -> Result<Launch> {
    let len = x.len();
    let lanes = relu_lanes(ctx, act, len);
    let k = if lanes == 4 { Kernel::ReluForward4 } else { act.forward_kernel() };
    let op = k.entry_point();
    let p = params(op, len / lanes)?;
    x.expect(op, "x", DType::F32, len)?;
    y.expect(op, "y", DType::F32, len)?;
    Ok(ctx.launch(k, label, &p, &[x, y], (len / lanes) as u64, 0)?.with_work(0, 8 * len as u64))
}

/// dx = dy · act'(from y).
pub fn activation_backward(
    ctx: &Context,
    label: &str,
    act: Activation,
    y: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
) -> Result<Launch> {
    let len = y.len();
    let lanes = relu_lanes(ctx, act, len);
    let k = if lanes == 4 { Kernel::ReluBackward4 } else { act.backward_kernel() };
    let op = k.entry_point();
    let p = params(op, len / lanes)?;
    y.expect(op, "y", DType::F32, len)?;
    dy.expect(op, "dy", DType::F32, len)?;
    dx.expect(op, "dx", DType::F32, len)?;
    Ok(ctx.launch(k, label, &p, &[y, dy, dx], (len / lanes) as u64, 0)?.with_work(0, 12 * len as u64))
}
