//! dropout (training form): `[x, step]` → `[y]` with y = x · keep / (1 − p), the mask a hash of the
//! `[seed, step]` pair, the layer's salt and the element; the backward draws the same mask. In a
//! forward-only graph a dropout layer is a view (the identity), as PyTorch's in `eval()`.

use crate::context::Context;
use crate::error::{shape_err, Result};
use crate::kernels::dropout::{dropout_backward, dropout_forward, DropoutParams};
use crate::kernels::Launch;
use crate::ops::{arity, Grad, Meta, Op, OutMeta, Rules};
use crate::reference as cpu;
use crate::tensor::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub enum DropoutOp {
    /// `[x, step]` → `[y]`.
    Forward { p: f32, salt: u32 },
    /// `[dy, step]` → `[dx]`.
    Backward { p: f32, salt: u32 },
}

impl DropoutOp {
    fn p_salt(&self) -> (f32, u32) {
        match *self {
            DropoutOp::Forward { p, salt } | DropoutOp::Backward { p, salt } => (p, salt),
        }
    }
}

impl Rules for DropoutOp {
    fn name(&self) -> &'static str {
        match self {
            DropoutOp::Forward { .. } => "dropout_forward",
            DropoutOp::Backward { .. } => "dropout_backward",
        }
    }

    fn infer(&self, ins: &[Meta<'_>]) -> Result<Vec<OutMeta>> {
        let op = self.name();
        arity(op, ins.len(), &[2])?;
        let ((x, xt), (s, st)) = (ins[0], ins[1]);
        if xt != DType::F32 || st != DType::U32 || s != [2] {
            return Err(shape_err(op, format!("needs f32 data and the u32 [seed, step] pair, got {ins:?}")));
        }
        DropoutParams::new(op, self.p_salt().0, 0, x.iter().product())?;
        Ok(vec![(x.to_vec(), DType::F32)])
    }

    fn backward(&self, gr: &mut Grad<'_>) -> Result<()> {
        if let (DropoutOp::Forward { p, salt }, Some(dy), true) = (self, gr.dy(), gr.needs(0)) {
            let step = gr.input(1);
            let dx = gr.emit("dx", Op::Dropout(DropoutOp::Backward { p: *p, salt: *salt }), &[dy, step])?;
            gr.set(0, dx);
        }
        Ok(())
    }

    fn lower(&self, ctx: &Context, label: &str, ins: &[&Tensor], outs: &[&Tensor]) -> Result<Vec<Launch>> {
        let (p, salt) = self.p_salt();
        Ok(vec![match self {
            DropoutOp::Forward { .. } => dropout_forward(ctx, label, p, salt, ins[0], ins[1], outs[0])?,
            DropoutOp::Backward { .. } => dropout_backward(ctx, label, p, salt, ins[0], ins[1], outs[0])?,
        }])
    }

    fn eval(&self, ins: &[&[f64]], _: &[&[usize]]) -> Result<Vec<Vec<f64>>> {
        let (p, salt) = self.p_salt();
        let params = DropoutParams::new(self.name(), p, salt, ins[0].len())?;
        let (seed, step) = (ins[1][0] as u32, ins[1][1] as u32);
        Ok(vec![cpu::dropout_forward(&params, seed, step, ins[0])])
    }
}
