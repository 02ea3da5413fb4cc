//! Views: the same memory with another shape (no launch). flatten `[n, c, h, w]` → `[n, c·h·w]`; its
//! backward is a reshape of the gradient back.

use crate::context::Context;
use crate::error::{shape_err, Result};
use crate::kernels::Launch;
use crate::ops::{arity, Grad, Meta, Op, OutMeta, Rules};
use crate::tensor::Tensor;

#[derive(Clone, Debug, PartialEq)]
pub enum ViewOp {
    /// `[x]` → `[x viewed as [n, rest]]`.
    Flatten,
    /// `[x]` → `[x viewed as the shape]`.
    Reshape(Vec<usize>),
}

impl Rules for ViewOp {
    fn name(&self) -> &'static str {
        match self {
            ViewOp::Flatten => "flatten",
            ViewOp::Reshape(_) => "reshape",
        }
    }

    fn infer(&self, ins: &[Meta<'_>]) -> Result<Vec<OutMeta>> {
        arity(self.name(), ins.len(), &[1])?;
        let (x, dtype) = ins[0];
        let len: usize = x.iter().product();
        let shape = match self {
            ViewOp::Flatten if x.is_empty() => return Err(shape_err("flatten", "a scalar has no batch dimension")),
            ViewOp::Flatten => vec![x[0], len / x[0].max(1)],
            ViewOp::Reshape(s) if s.iter().product::<usize>() == len => s.clone(),
            ViewOp::Reshape(s) => return Err(shape_err("reshape", format!("{x:?} cannot be viewed as {s:?}"))),
        };
        Ok(vec![(shape, dtype)])
    }

    fn backward(&self, gr: &mut Grad<'_>) -> Result<()> {
        if let (Some(dy), true) = (gr.dy(), gr.needs(0)) {
            let shape = gr.ir.value(gr.input(0)).shape.clone();
            let dx = gr.emit("dx", Op::View(ViewOp::Reshape(shape)), &[dy])?;
            gr.set(0, dx);
        }
        Ok(())
    }

    fn lower(&self, _: &Context, _: &str, _: &[&Tensor], _: &[&Tensor]) -> Result<Vec<Launch>> {
        Ok(Vec::new())
    }

    fn eval(&self, ins: &[&[f64]], _: &[&[usize]]) -> Result<Vec<Vec<f64>>> {
        Ok(vec![ins[0].to_vec()])
    }

    fn view_of(&self) -> Option<usize> {
        Some(0)
    }
}
