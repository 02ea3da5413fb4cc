//! The loss on the logits: softmax with cross-entropy or with the article's squared error. Forward
//! writes per-sample losses and the probabilities; backward reads the probabilities and the labels.
//! The batch mean (PyTorch's default reduction) is the gradient's scale.

use crate::context::Context;
use crate::error::{shape_err, Result};
use crate::kernels::loss::{loss_backward, loss_forward, LossKind};
use crate::kernels::Launch;
use crate::ops::{arity, Grad, Meta, Op, OutMeta, Rules};
use crate::reference as cpu;
use crate::shape::LossGeom;
use crate::tensor::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub enum LossOp {
    /// `[logits [n, classes], labels [n]]` → `[loss [n], probs [n, classes]]`.
    Forward(LossKind),
    /// `[probs, labels]` → `[dlogits]`, scaled by 1/n.
    Backward(LossKind),
}

fn geom(probs: &[usize]) -> LossGeom {
    LossGeom { n: probs[0], classes: probs[1] }
}

impl Rules for LossOp {
    fn name(&self) -> &'static str {
        match self {
            LossOp::Forward(k) => k.forward_kernel().entry_point(),
            LossOp::Backward(k) => k.backward_kernel().entry_point(),
        }
    }

    fn infer(&self, ins: &[Meta<'_>]) -> Result<Vec<OutMeta>> {
        let op = self.name();
        arity(op, ins.len(), &[2])?;
        let ((z, zt), (l, lt)) = (ins[0], ins[1]);
        if z.len() != 2 || zt != DType::F32 || lt != DType::U32 || l != [z[0]] {
            return Err(shape_err(op, format!("needs f32 [n, classes] and u32 labels [n], got {z:?} and {l:?}")));
        }
        geom(z).validate(op)?;
        Ok(match self {
            LossOp::Forward(_) => vec![(vec![z[0]], DType::F32), (z.to_vec(), DType::F32)],
            LossOp::Backward(_) => vec![(z.to_vec(), DType::F32)],
        })
    }

    fn backward(&self, gr: &mut Grad<'_>) -> Result<()> {
        if let (LossOp::Forward(kind), true) = (self, gr.needs(0)) {
            let (probs, labels) = (gr.output(1), gr.input(1));
            let dz = gr.emit("backward", Op::Loss(LossOp::Backward(*kind)), &[probs, labels])?;
            gr.set(0, dz);
        }
        Ok(())
    }

    fn lower(&self, ctx: &Context, label: &str, ins: &[&Tensor], outs: &[&Tensor]) -> Result<Vec<Launch>> {
        let g = geom(&ins[0].shape);
        Ok(vec![match self {
            LossOp::Forward(k) => loss_forward(ctx, label, *k, &g, ins[0], ins[1], outs[0], outs[1])?,
            LossOp::Backward(k) => loss_backward(ctx, label, *k, &g, 1.0 / g.n as f32, ins[0], ins[1], outs[0])?,
        }])
    }

    fn eval(&self, ins: &[&[f64]], shapes: &[&[usize]]) -> Result<Vec<Vec<f64>>> {
        let g = geom(shapes[0]);
        let labels: Vec<u32> = ins[1].iter().map(|&l| l as u32).collect();
        let scale = 1.0 / g.n as f64;
        Ok(match self {
            LossOp::Forward(LossKind::CrossEntropy) => {
                let (l, p) = cpu::softmax_xent_forward(&g, ins[0], &labels);
                vec![l, p]
            }
            LossOp::Forward(LossKind::SquaredError) => {
                let (l, p) = cpu::softmax_mse_forward(&g, ins[0], &labels);
                vec![l, p]
            }
            LossOp::Backward(LossKind::CrossEntropy) => vec![cpu::softmax_xent_backward(&g, scale, ins[0], &labels)],
            LossOp::Backward(LossKind::SquaredError) => vec![cpu::softmax_mse_backward(&g, scale, ins[0], &labels)],
        })
    }

    fn output_name(&self, _: usize) -> String {
        "probs".into()
    }
}
