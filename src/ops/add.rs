//! add: `[a, b]` → `[a + b]` (one shape). A residual connection in a model, and the node autodiff emits
//! to sum the gradients of a value with several consumers. Its backward passes dy to both inputs.

use crate::context::Context;
use crate::error::{shape_err, Result};
use crate::kernels::elementwise::add_forward;
use crate::kernels::Launch;
use crate::ops::{arity, Grad, Meta, OutMeta, Rules};
use crate::reference as cpu;
use crate::tensor::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct AddOp;

impl Rules for AddOp {
    fn name(&self) -> &'static str {
        "add"
    }

    fn infer(&self, ins: &[Meta<'_>]) -> Result<Vec<OutMeta>> {
        arity("add", ins.len(), &[2])?;
        let (a, b) = (ins[0], ins[1]);
        if a != b || a.1 != DType::F32 {
            return Err(shape_err("add", format!("adds two f32 inputs of one shape, got {:?} and {:?}", a.0, b.0)));
        }
        Ok(vec![(a.0.to_vec(), DType::F32)])
    }

    fn backward(&self, gr: &mut Grad<'_>) -> Result<()> {
        if let Some(dy) = gr.dy() {
            for i in 0..2 {
                if gr.needs(i) {
                    gr.set(i, dy);
                }
            }
        }
        Ok(())
    }

    fn lower(&self, ctx: &Context, label: &str, ins: &[&Tensor], outs: &[&Tensor]) -> Result<Vec<Launch>> {
        Ok(vec![add_forward(ctx, label, ins[0], ins[1], outs[0])?])
    }

    fn eval(&self, ins: &[&[f64]], _: &[&[usize]]) -> Result<Vec<Vec<f64>>> {
        Ok(vec![cpu::add_forward(ins[0], ins[1])])
    }
}
