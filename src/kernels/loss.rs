//! Softmax fused with cross-entropy or with the article's squared error (`shaders/loss.wgsl`).

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{to_u32, Result};
use crate::kernels::{Kernel, Launch};
use crate::shape::LossGeom;
use crate::tensor::{DType, Tensor};

/// Mirrors `struct LossParams` in `shaders/loss.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct LossParams {
    pub n: u32,
    pub classes: u32,
    /// Gradient scale: 1/n for a mean over the batch.
    pub scale: f32,
    pub _pad0: u32,
}

impl LossParams {
    pub fn new(op: &str, g: &LossGeom, scale: f32) -> Result<Self> {
        g.validate(op)?;
        to_u32(op, "logits length", g.len())?;
        Ok(LossParams { n: g.n as u32, classes: g.classes as u32, scale, _pad0: 0 })
    }
}

/// The bits of the per-sample loss the forward kernels store for a label that is not a class: a quiet
/// NaN written as a pattern (`BAD_LABEL_BITS` in `shaders/loss.wgsl`), never the result of arithmetic.
pub const BAD_LABEL_LOSS_BITS: u32 = 0x7fc0_0bad;

/// The losses wgcnn offers; both apply softmax to the logits first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossKind {
    /// `−log softmax(z)[label]`.
    CrossEntropy,
    /// ½ Σ (onehot − softmax(z))².
    SquaredError,
}

impl LossKind {
    pub fn forward_kernel(self) -> Kernel {
        match self {
            LossKind::CrossEntropy => Kernel::SoftmaxXentForward,
            LossKind::SquaredError => Kernel::SoftmaxMseForward,
        }
    }
    pub fn backward_kernel(self) -> Kernel {
        match self {
            LossKind::CrossEntropy => Kernel::SoftmaxXentBackward,
            LossKind::SquaredError => Kernel::SoftmaxMseBackward,
        }
    }
}

/// `loss [n]` per sample and `probs [n, classes]` from logits and u32 labels.
pub fn loss_forward(
    ctx: &Context,
    label: &str,
    kind: LossKind,
    g: &LossGeom,
    logits: &Tensor,
    labels: &Tensor,
    loss: &Tensor,
    probs: &Tensor,
) -> Result<Launch> {
    let k = kind.forward_kernel();
    let op = k.entry_point();
    let p = LossParams::new(op, g, 1.0)?;
    logits.expect(op, "logits", DType::F32, g.len())?;
    labels.expect(op, "labels", DType::U32, g.n)?;
    loss.expect(op, "loss", DType::F32, g.n)?;
    probs.expect(op, "probs", DType::F32, g.len())?;
    Ok(ctx
        .launch(k, label, &p, &[logits, labels, loss, probs], g.n as u64, 4 * g.classes as u64)?
        .with_work(0, 4 * (2 * g.len() + 2 * g.n) as u64))
}

/// dlogits = scale · d(loss)/d(logits), from the probs the forward wrote.
pub fn loss_backward(
    ctx: &Context,
    label: &str,
    kind: LossKind,
    g: &LossGeom,
    scale: f32,
    probs: &Tensor,
    labels: &Tensor,
    dlogits: &Tensor,
) -> Result<Launch> {
    let k = kind.backward_kernel();
    let op = k.entry_point();
    let p = LossParams::new(op, g, scale)?;
    probs.expect(op, "probs", DType::F32, g.len())?;
    labels.expect(op, "labels", DType::U32, g.n)?;
    dlogits.expect(op, "dlogits", DType::F32, g.len())?;
    Ok(ctx
        .launch(k, label, &p, &[probs, labels, dlogits], g.len() as u64, g.classes as u64)?
        .with_work(0, 4 * (2 * g.len() + g.n) as u64))
}
