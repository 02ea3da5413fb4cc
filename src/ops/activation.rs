//! Elementwise activations (ReLU, tanh, sigmoid): x → y, and dx from (y, dy), so the forward input
//! need not be kept.

use crate::context::Context;
use crate::error::{shape_err, Result};
use crate::kernels::activation::{activation_backward, activation_forward, Activation};
use crate::kernels::Launch;
use crate::ops::{arity, Grad, Meta, Op, OutMeta, Rules};
use crate::reference as cpu;
use crate::tensor::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub enum ActOp {
    /// `[x]` → `[y]`.
    Forward(Activation),
    /// `[y, dy]` → `[dx]`.
    Backward(Activation),
}

impl Rules for ActOp {
    fn name(&self) -> &'static str {
        match self {
            ActOp::Forward(a) => a.forward_kernel().entry_point(),
            ActOp::Backward(a) => a.backward_kernel().entry_point(),
        }
    }

    fn infer(&self, ins: &[Meta<'_>]) -> Result<Vec<OutMeta>> {
        let op = self.name();
        arity(op, ins.len(), if matches!(self, ActOp::Forward(_)) { &[1] } else { &[2] })?;
        if ins.iter().any(|(s, d)| *d != DType::F32 || *s != ins[0].0) {
            return Err(shape_err(op, format!("inputs must be f32 of one shape, got {ins:?}")));
        }
        Ok(vec![(ins[0].0.to_vec(), DType::F32)])
    }

    fn backward(&self, gr: &mut Grad<'_>) -> Result<()> {
        if let (ActOp::Forward(a), Some(dy), true) = (self, gr.dy(), gr.needs(0)) {
            let y = gr.output(0);
            let dx = gr.emit("dx", Op::Act(ActOp::Backward(*a)), &[y, dy])?;
            gr.set(0, dx);
        }
        Ok(())
    }

    fn lower(&self, ctx: &Context, label: &str, ins: &[&Tensor], outs: &[&Tensor]) -> Result<Vec<Launch>> {
        Ok(vec![match self {
            ActOp::Forward(a) => activation_forward(ctx, label, *a, ins[0], outs[0])?,
            ActOp::Backward(a) => activation_backward(ctx, label, *a, ins[0], ins[1], outs[0])?,
        }])
    }

    fn eval(&self, ins: &[&[f64]], _: &[&[usize]]) -> Result<Vec<Vec<f64>>> {
        Ok(vec![match self {
            ActOp::Forward(Activation::Relu) => cpu::relu_forward(ins[0]),
            ActOp::Forward(Activation::Tanh) => cpu::tanh_forward(ins[0]),
            ActOp::Forward(Activation::Sigmoid) => cpu::sigmoid_forward(ins[0]),
            ActOp::Backward(Activation::Relu) => cpu::relu_backward(ins[0], ins[1]),
            ActOp::Backward(Activation::Tanh) => cpu::tanh_backward(ins[0], ins[1]),
            ActOp::Backward(Activation::Sigmoid) => cpu::sigmoid_backward(ins[0], ins[1]),
        }])
    }
}
