//! conv2d: x `[n, c_in, h, w]`, w `[c_out, c_in, k, k]`, optional b `[c_out]` → y `[n, c_out, oh, ow]`,
//! and its three gradients.

use crate::context::Context;
use crate::error::{shape_err, Result};
use crate::kernels::conv::conv2d_backward_bias;
use crate::kernels::conv_fast::{
    conv2d_backward_input_auto, conv2d_backward_weight_auto, conv2d_forward_auto, conv2d_forward_fused,
};
use crate::kernels::Launch;
use crate::ops::{arity, bias_or_zeros, rank, Grad, Meta, Op, OutMeta, Rules};
use crate::reference as cpu;
use crate::shape::Conv2dGeom;
use crate::tensor::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub enum ConvOp {
    /// `[x, w]` or `[x, w, b]` → `[y]`; with `relu`, y = relu(conv) (set by the fusion pass).
    Forward { stride: usize, pad: usize, relu: bool },
    /// `[dy, w]` → `[dx]`.
    BackwardInput(Conv2dGeom),
    /// `[dy, x]` → `[dw]`.
    BackwardWeight(Conv2dGeom),
    /// `[dy]` → `[db]`.
    BackwardBias(Conv2dGeom),
}

/// The geometry of a forward conv from its input and weight shapes (both rank 4, checked).
pub fn geom(x: &[usize], w: &[usize], stride: usize, pad: usize) -> Conv2dGeom {
    Conv2dGeom { kh: w[2], kw: w[3], ..Conv2dGeom::square(x[0], x[1], x[2], x[3], w[0], w[2], stride, pad) }
}

fn infer_forward(ins: &[Meta<'_>], stride: usize, pad: usize) -> Result<Conv2dGeom> {
    let op = "conv2d";
    arity(op, ins.len(), &[2, 3])?;
    let (x, w) = (ins[0].0, ins[1].0);
    rank(op, "an input", x, 4, "[n, c, h, w]")?;
    rank(op, "a weight", w, 4, "[c_out, c_in, kh, kw]")?;
    if x[1] != w[1] {
        return Err(shape_err(op, format!("input {x:?} has {} channels, the weight {w:?} expects {}", x[1], w[1])));
    }
    if let Some((b, _)) = ins.get(2) {
        if *b != [w[0]] {
            return Err(shape_err(op, format!("bias {b:?} does not match the weight {w:?}")));
        }
    }
    let g = geom(x, w, stride, pad);
    g.validate(op)?;
    Ok(g)
}

impl Rules for ConvOp {
    fn name(&self) -> &'static str {
        match self {
            ConvOp::Forward { relu: false, .. } => "conv2d",
            ConvOp::Forward { relu: true, .. } => "conv2d+relu",
            ConvOp::BackwardInput(_) => "conv2d_backward_input",
            ConvOp::BackwardWeight(_) => "conv2d_backward_weight",
            ConvOp::BackwardBias(_) => "conv2d_backward_bias",
        }
    }

    fn infer(&self, ins: &[Meta<'_>]) -> Result<Vec<OutMeta>> {
        let expect = |i: usize, len: usize| -> Result<()> {
            match ins.get(i) {
                Some((s, DType::F32)) if s.iter().product::<usize>() == len => Ok(()),
                other => Err(shape_err(self.name(), format!("input {i} is {other:?}, expected {len} f32 values"))),
            }
        };
        let out = match self {
            ConvOp::Forward { stride, pad, .. } => {
                let g = infer_forward(ins, *stride, *pad)?;
                vec![g.n, g.c_out, g.out_h(), g.out_w()]
            }
            ConvOp::BackwardInput(g) => {
                expect(0, g.y_len())?;
                expect(1, g.w_len())?;
                vec![g.n, g.c_in, g.h, g.w]
            }
            ConvOp::BackwardWeight(g) => {
                expect(0, g.y_len())?;
                expect(1, g.x_len())?;
                vec![g.c_out, g.c_in, g.kh, g.kw]
            }
            ConvOp::BackwardBias(g) => {
                expect(0, g.y_len())?;
                vec![g.c_out]
            }
        };
        Ok(vec![(out, DType::F32)])
    }

    fn backward(&self, gr: &mut Grad<'_>) -> Result<()> {
        let (ConvOp::Forward { stride, pad, relu: false }, Some(dy)) = (self, gr.dy()) else {
            return Ok(()); // backward nodes have no backward; fused nodes exist only after autodiff
        };
        let (x, w) = (gr.input(0), gr.input(1));
        let g = geom(&gr.ir.value(x).shape, &gr.ir.value(w).shape, *stride, *pad);
        if gr.needs(1) {
            let dw = gr.emit("dw", Op::Conv(ConvOp::BackwardWeight(g)), &[dy, x])?;
            gr.set(1, dw);
        }
        if gr.node.inputs.len() == 3 && gr.needs(2) {
            let db = gr.emit("db", Op::Conv(ConvOp::BackwardBias(g)), &[dy])?;
            gr.set(2, db);
        }
        if gr.needs(0) {
            let dx = gr.emit("dx", Op::Conv(ConvOp::BackwardInput(g)), &[dy, w])?;
            gr.set(0, dx);
        }
        Ok(())
    }

    fn lower(&self, ctx: &Context, label: &str, ins: &[&Tensor], outs: &[&Tensor]) -> Result<Vec<Launch>> {
        let y = outs[0];
        let l = match self {
            ConvOp::Forward { stride, pad, relu } => {
                let g = geom(&ins[0].shape, &ins[1].shape, *stride, *pad);
                let mut zeros = None;
                let b = bias_or_zeros(ctx, label, ins, g.c_out, &mut zeros)?;
                if *relu {
                    conv2d_forward_fused(ctx, label, &g, ins[0], ins[1], b, y, true)?
                        .ok_or_else(|| shape_err(label, "the fused conv+ReLU kernel does not take this shape"))?
                } else {
                    conv2d_forward_auto(ctx, label, &g, ins[0], ins[1], b, y)?
                }
            }
            ConvOp::BackwardInput(g) => conv2d_backward_input_auto(ctx, label, g, ins[0], ins[1], y)?,
            ConvOp::BackwardWeight(g) => conv2d_backward_weight_auto(ctx, label, g, ins[0], ins[1], y)?,
            ConvOp::BackwardBias(g) => conv2d_backward_bias(ctx, label, g, ins[0], y)?,
        };
        Ok(vec![l])
    }

    fn eval(&self, ins: &[&[f64]], shapes: &[&[usize]]) -> Result<Vec<Vec<f64>>> {
        Ok(vec![match self {
            ConvOp::Forward { stride, pad, relu } => {
                let g = geom(shapes[0], shapes[1], *stride, *pad);
                let zeros = vec![0.0; g.c_out];
                let y = cpu::conv2d_forward(&g, ins[0], ins[1], ins.get(2).copied().unwrap_or(&zeros));
                if *relu {
                    cpu::relu_forward(&y)
                } else {
                    y
                }
            }
            ConvOp::BackwardInput(g) => cpu::conv2d_backward_input(g, ins[0], ins[1]),
            ConvOp::BackwardWeight(g) => cpu::conv2d_backward_weight(g, ins[0], ins[1]),
            ConvOp::BackwardBias(g) => cpu::conv2d_backward_bias(g, ins[0]),
        }])
    }
}
