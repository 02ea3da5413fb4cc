//! linear: x `[n, in]` · Wᵀ (W `[out, in]`) + optional b `[out]` → y `[n, out]`, and its gradients.

use crate::context::Context;
use crate::error::{shape_err, Result};
use crate::kernels::linear::linear_backward_bias;
use crate::kernels::matmul::{linear_backward_input_auto, linear_backward_weight_auto, linear_forward_auto};
use crate::kernels::Launch;
use crate::ops::{arity, bias_or_zeros, rank, Grad, Meta, Op, OutMeta, Rules};
use crate::reference as cpu;
use crate::shape::LinearGeom;
use crate::tensor::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub enum LinearOp {
    /// `[x, w]` or `[x, w, b]` → `[y]`; with `relu`, max(y, 0) (the fuse pass's `linear_relu`).
    Forward { relu: bool },
    /// `[dy, w]` → `[dx]`.
    BackwardInput(LinearGeom),
    /// `[dy, x]` → `[dw]`.
    BackwardWeight(LinearGeom),
    /// `[dy]` → `[db]`.
    BackwardBias(LinearGeom),
}

fn geom(x: &[usize], w: &[usize]) -> LinearGeom {
    LinearGeom { n: x[0], in_f: w[1], out_f: w[0] }
}

impl Rules for LinearOp {
    fn name(&self) -> &'static str {
        match self {
            LinearOp::Forward { relu: false } => "linear",
            LinearOp::Forward { relu: true } => "linear+relu",
            LinearOp::BackwardInput(_) => "linear_backward_input",
            LinearOp::BackwardWeight(_) => "linear_backward_weight",
            LinearOp::BackwardBias(_) => "linear_backward_bias",
        }
    }

    fn infer(&self, ins: &[Meta<'_>]) -> Result<Vec<OutMeta>> {
        let op = self.name();
        let expect = |i: usize, len: usize| -> Result<()> {
            match ins.get(i) {
                Some((s, DType::F32)) if s.iter().product::<usize>() == len => Ok(()),
                other => Err(shape_err(op, format!("input {i} is {other:?}, expected {len} f32 values"))),
            }
        };
        let out = match self {
            LinearOp::Forward { .. } => {
                arity(op, ins.len(), &[2, 3])?;
                let (x, w) = (ins[0].0, ins[1].0);
                rank(op, "an input", x, 2, "[n, features] (add a flatten layer before it)")?;
                rank(op, "a weight", w, 2, "[out, in]")?;
                if x[1] != w[1] {
                    return Err(shape_err(
                        op,
                        format!("input {x:?} has {} features, the weight {w:?} expects {}", x[1], w[1]),
                    ));
                }
                if let Some((b, _)) = ins.get(2) {
                    if *b != [w[0]] {
                        return Err(shape_err(op, format!("bias {b:?} does not match the weight {w:?}")));
                    }
                }
                let g = geom(x, w);
                g.validate(op)?;
                vec![g.n, g.out_f]
            }
            LinearOp::BackwardInput(g) => {
                expect(0, g.y_len())?;
                expect(1, g.w_len())?;
                vec![g.n, g.in_f]
            }
            LinearOp::BackwardWeight(g) => {
                expect(0, g.y_len())?;
                expect(1, g.x_len())?;
                vec![g.out_f, g.in_f]
            }
            LinearOp::BackwardBias(g) => {
                expect(0, g.y_len())?;
                vec![g.out_f]
            }
        };
        Ok(vec![(out, DType::F32)])
    }

    fn backward(&self, gr: &mut Grad<'_>) -> Result<()> {
        // (A fused ReLU comes after autodiff: the graphs it differentiates hold none.)
        let (LinearOp::Forward { relu: false }, Some(dy)) = (self, gr.dy()) else {
            return Ok(());
        };
        let (x, w) = (gr.input(0), gr.input(1));
        let g = geom(&gr.ir.value(x).shape, &gr.ir.value(w).shape);
        if gr.needs(1) {
            let dw = gr.emit("dw", Op::Linear(LinearOp::BackwardWeight(g)), &[dy, x])?;
            gr.set(1, dw);
        }
        if gr.node.inputs.len() == 3 && gr.needs(2) {
            let db = gr.emit("db", Op::Linear(LinearOp::BackwardBias(g)), &[dy])?;
            gr.set(2, db);
        }
        if gr.needs(0) {
            let dx = gr.emit("dx", Op::Linear(LinearOp::BackwardInput(g)), &[dy, w])?;
            gr.set(0, dx);
        }
        Ok(())
    }

    fn lower(&self, ctx: &Context, label: &str, ins: &[&Tensor], outs: &[&Tensor]) -> Result<Vec<Launch>> {
        let y = outs[0];
        let l = match self {
            LinearOp::Forward { relu } => {
                let g = geom(&ins[0].shape, &ins[1].shape);
                let mut zeros = None;
                let b = bias_or_zeros(ctx, label, ins, g.out_f, &mut zeros)?;
                linear_forward_auto(ctx, label, &g, ins[0], ins[1], b, y, *relu)?
            }
            LinearOp::BackwardInput(g) => linear_backward_input_auto(ctx, label, g, ins[0], ins[1], y)?,
            LinearOp::BackwardWeight(g) => linear_backward_weight_auto(ctx, label, g, ins[0], ins[1], y)?,
            LinearOp::BackwardBias(g) => linear_backward_bias(ctx, label, g, ins[0], y)?,
        };
        Ok(vec![l])
    }

    fn eval(&self, ins: &[&[f64]], shapes: &[&[usize]]) -> Result<Vec<Vec<f64>>> {
        Ok(vec![match self {
            LinearOp::Forward { relu } => {
                let g = geom(shapes[0], shapes[1]);
                let zeros = vec![0.0; g.out_f];
                let y = cpu::linear_forward(&g, ins[0], ins[1], ins.get(2).copied().unwrap_or(&zeros));
                if *relu {
                    cpu::relu_forward(&y)
                } else {
                    y
                }
            }
            LinearOp::BackwardInput(g) => cpu::linear_backward_input(g, ins[0], ins[1]),
            LinearOp::BackwardWeight(g) => cpu::linear_backward_weight(g, ins[0], ins[1]),
            LinearOp::BackwardBias(g) => cpu::linear_backward_bias(g, ins[0]),
        }])
    }
}
