//! Elementwise activations (`shaders/activation.wgsl`): ReLU, tanh, sigmoid, forward and backward.
//! Backward takes the forward output `y`, so the forward input need not be kept.

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{shape_err, to_u32, Result};
use crate::kernels::{Kernel, Launch};
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

/// y = act(x).
pub fn activation_forward(ctx: &Context, label: &str, act: Activation, x: &Tensor, y: &Tensor) -> Result<Launch> {
    let k = act.forward_kernel();
    let op = k.entry_point();
    let p = params(op, x.len())?;
    x.expect(op, "x", DType::F32, x.len())?;
    y.expect(op, "y", DType::F32, x.len())?;
    Ok(ctx.launch(k, label, &p, &[x, y], x.len() as u64, 0)?.with_work(0, 8 * x.len() as u64))
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
    let k = act.backward_kernel();
    let op = k.entry_point();
    let p = params(op, y.len())?;
    y.expect(op, "y", DType::F32, y.len())?;
    dy.expect(op, "dy", DType::F32, y.len())?;
    dx.expect(op, "dx", DType::F32, y.len())?;
    Ok(ctx.launch(k, label, &p, &[y, dy, dx], y.len() as u64, 0)?.with_work(0, 12 * y.len() as u64))
}
