//! add: `[a, b]` → `[a + b]` (one shape). A residual connection in a model, and the node autodiff emits
//! to sum the gradients of a value with several consumers: there up to four terms, `((a + b) + c) + d`
//! in one pass (the sums a chain of two-term adds makes). Its backward passes dy to every input.
//! With `relu` (set by the fuse pass's `add_relu` rule, after autodiff) it writes `max(a + b, 0)`: the
//! add and the ReLU at the end of a residual block in one pass.

use crate::context::Context;
use crate::error::{shape_err, Result};
use crate::kernels::elementwise::{add_n_forward, MAX_TERMS};
use crate::kernels::Launch;
use crate::ops::{arity, Grad, Meta, OutMeta, Rules};
use crate::reference as cpu;
use crate::tensor::{DType, Tensor};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AddOp {
    /// Apply a ReLU to the sum (fused; see `ir/fuse.rs`).
    pub relu: bool,
}

impl Rules for AddOp {
    fn name(&self) -> &'static str {
        if self.relu {
            "add+relu"
        } else {
            "add"
        }
    }

    fn infer(&self, ins: &[Meta<'_>]) -> Result<Vec<OutMeta>> {
        arity("add", ins.len(), &[2, 3, 4])?;
        let a = ins[0];
        if ins.iter().any(|t| *t != a) || a.1 != DType::F32 {
            let shapes: Vec<&[usize]> = ins.iter().map(|t| t.0).collect();
            return Err(shape_err("add", format!("adds f32 inputs of one shape, got {shapes:?}")));
        }
        debug_assert!(ins.len() <= MAX_TERMS);
        Ok(vec![(a.0.to_vec(), DType::F32)])
    }

    fn backward(&self, gr: &mut Grad<'_>) -> Result<()> {
        if self.relu {
            // The rule fires after autodiff: a fused add is never differentiated.
            return Err(shape_err("add+relu", "a fused add has no backward (fuse after autodiff)"));
        }
        if let Some(dy) = gr.dy() {
            for i in 0..gr.node.inputs.len() {
                if gr.needs(i) {
                    gr.set(i, dy);
                }
            }
        }
        Ok(())
    }

    fn lower(&self, ctx: &Context, label: &str, ins: &[&Tensor], outs: &[&Tensor]) -> Result<Vec<Launch>> {
        Ok(vec![add_n_forward(ctx, label, ins, outs[0], self.relu)?])
    }

    fn eval(&self, ins: &[&[f64]], _: &[&[usize]]) -> Result<Vec<Vec<f64>>> {
        let y = ins[2..].iter().fold(cpu::add_forward(ins[0], ins[1]), |acc, t| cpu::add_forward(&acc, t));
        Ok(vec![if self.relu { y.into_iter().map(|v| v.max(0.0)).collect() } else { y }])
    }
}
