//! Pooling over square windows: max (which also outputs the argmax its backward gathers by) and
//! average, and their gradients. The max-pool backward can also apply the mask of a ReLU before the
//! pool (set by the fusion pass).

use crate::context::Context;
use crate::error::{shape_err, Result};
use crate::kernels::pool::{
    avgpool2d_backward, avgpool2d_forward, maxpool2d_backward_auto, maxpool2d_backward_fused, maxpool2d_forward_auto,
};
use crate::kernels::Launch;
use crate::ops::{arity, rank, Grad, Meta, Op, OutMeta, Rules};
use crate::reference as cpu;
use crate::shape::Pool2dGeom;
use crate::tensor::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub enum PoolOp {
    /// `[x]` → `[y, argmax]`.
    Max { k: usize, stride: usize, pad: usize },
    /// `[dy, argmax]` → `[dx]`; with `relu_mask`, `[dy, argmax, y]` → `[dx]` where the gradient passes
    /// only through windows whose maximum y is positive (the backward of a ReLU before the pool).
    MaxBackward { g: Pool2dGeom, relu_mask: bool },
    /// `[x]` → `[y]`.
    Avg { k: usize, stride: usize, pad: usize },
    /// `[dy]` → `[dx]`.
    AvgBackward(Pool2dGeom),
    /// `[x]` → `[y]`: the mean of each whole `[h, w]` plane, `[n, c, 1, 1]` (PyTorch's
    /// `AdaptiveAvgPool2d(1)`); its backward is `AvgBackward` with the plane as the window.
    GlobalAvg,
}

fn geom(x: &[usize], k: usize, stride: usize, pad: usize) -> Pool2dGeom {
    Pool2dGeom::square(x[0], x[1], x[2], x[3], k, stride).padded(pad)
}

/// A window over the whole `[h, w]` plane.
fn global(x: &[usize]) -> Pool2dGeom {
    Pool2dGeom { kh: x[2], kw: x[3], stride_h: x[2], stride_w: x[3], ..geom(x, 1, 1, 0) }
}

impl Rules for PoolOp {
    fn name(&self) -> &'static str {
        match self {
            PoolOp::Max { .. } => "maxpool2d",
            PoolOp::MaxBackward { relu_mask: false, .. } => "maxpool2d_backward",
            PoolOp::MaxBackward { relu_mask: true, .. } => "maxpool2d_backward+relu_backward",
            PoolOp::Avg { .. } => "avgpool2d",
            PoolOp::AvgBackward(_) => "avgpool2d_backward",
            PoolOp::GlobalAvg => "global_avgpool",
        }
    }

    fn infer(&self, ins: &[Meta<'_>]) -> Result<Vec<OutMeta>> {
        let op = self.name();
        let (k, stride, pad, g) = match self {
            PoolOp::Max { k, stride, pad } | PoolOp::Avg { k, stride, pad } => (*k, *stride, *pad, None),
            PoolOp::GlobalAvg => (0, 0, 0, None),
            PoolOp::MaxBackward { g, .. } | PoolOp::AvgBackward(g) => (g.kh, g.stride_h, g.pad_h, Some(*g)),
        };
        let Some(g) = g else {
            arity(op, ins.len(), &[1])?;
            rank(op, "an input", ins[0].0, 4, "[n, c, h, w]")?;
            let g = if *self == PoolOp::GlobalAvg { global(ins[0].0) } else { geom(ins[0].0, k, stride, pad) };
            g.validate(op)?;
            let y = vec![g.n, g.c, g.out_h(), g.out_w()];
            return Ok(match self {
                PoolOp::Max { .. } => vec![(y.clone(), DType::F32), (y, DType::U32)],
                _ => vec![(y, DType::F32)],
            });
        };
        let want: &[(DType, usize)] = match self {
            PoolOp::MaxBackward { relu_mask: true, .. } => &[(DType::F32, 0), (DType::U32, 0), (DType::F32, 0)],
            PoolOp::MaxBackward { .. } => &[(DType::F32, 0), (DType::U32, 0)],
            _ => &[(DType::F32, 0)],
        };
        arity(op, ins.len(), &[want.len()])?;
        for (i, ((s, d), (wd, _))) in ins.iter().zip(want).enumerate() {
            if d != wd || s.iter().product::<usize>() != g.y_len() {
                return Err(shape_err(
                    op,
                    format!("input {i} is {d:?} {s:?}, expected {wd:?} of {} values", g.y_len()),
                ));
            }
        }
        Ok(vec![(vec![g.n, g.c, g.h, g.w], DType::F32)])
    }

    fn backward(&self, gr: &mut Grad<'_>) -> Result<()> {
        let (Some(dy), true) = (gr.dy(), gr.needs(0)) else {
            return Ok(());
        };
        let x = gr.ir.value(gr.input(0)).shape.clone();
        let dx = match self {
            PoolOp::Max { k, stride, pad } => {
                let op = PoolOp::MaxBackward { g: geom(&x, *k, *stride, *pad), relu_mask: false };
                gr.emit("dx", Op::Pool(op), &[dy, gr.output(1)])?
            }
            PoolOp::Avg { k, stride, pad } => {
                gr.emit("dx", Op::Pool(PoolOp::AvgBackward(geom(&x, *k, *stride, *pad))), &[dy])?
            }
            PoolOp::GlobalAvg => gr.emit("dx", Op::Pool(PoolOp::AvgBackward(global(&x))), &[dy])?,
            _ => return Ok(()),
        };
        gr.set(0, dx);
        Ok(())
    }

    fn lower(&self, ctx: &Context, label: &str, ins: &[&Tensor], outs: &[&Tensor]) -> Result<Vec<Launch>> {
        Ok(vec![match self {
            PoolOp::Max { k, stride, pad } => {
                let g = geom(&ins[0].shape, *k, *stride, *pad);
                maxpool2d_forward_auto(ctx, label, &g, ins[0], outs[0], outs[1])?
            }
            PoolOp::MaxBackward { g, relu_mask: true } => {
                maxpool2d_backward_fused(ctx, label, g, ins[0], ins[1], ins[2], outs[0], true)?
                    .ok_or_else(|| shape_err(label, "the ReLU mask needs windows that tile the input"))?
            }
            PoolOp::MaxBackward { g, .. } => maxpool2d_backward_auto(ctx, label, g, ins[0], ins[1], outs[0])?,
            PoolOp::Avg { k, stride, pad } => {
                avgpool2d_forward(ctx, label, &geom(&ins[0].shape, *k, *stride, *pad), ins[0], outs[0])?
            }
            PoolOp::AvgBackward(g) => avgpool2d_backward(ctx, label, g, ins[0], outs[0])?,
            PoolOp::GlobalAvg => avgpool2d_forward(ctx, label, &global(&ins[0].shape), ins[0], outs[0])?,
        }])
    }

    fn eval(&self, ins: &[&[f64]], shapes: &[&[usize]]) -> Result<Vec<Vec<f64>>> {
        let index = |v: &[f64]| v.iter().map(|&a| a as u32).collect::<Vec<u32>>();
        Ok(match self {
            PoolOp::Max { k, stride, pad } => {
                let (y, arg) = cpu::maxpool2d_forward(&geom(shapes[0], *k, *stride, *pad), ins[0]);
                vec![y, arg.into_iter().map(f64::from).collect()]
            }
            PoolOp::MaxBackward { g, relu_mask } => {
                let dy: Vec<f64> = match relu_mask {
                    true => ins[0].iter().zip(ins[2]).map(|(&d, &y)| if y > 0.0 { d } else { 0.0 }).collect(),
                    false => ins[0].to_vec(),
                };
                vec![cpu::maxpool2d_backward(g, &dy, &index(ins[1]))]
            }
            PoolOp::Avg { k, stride, pad } => vec![cpu::avgpool2d_forward(&geom(shapes[0], *k, *stride, *pad), ins[0])],
            PoolOp::AvgBackward(g) => vec![cpu::avgpool2d_backward(g, ins[0])],
            PoolOp::GlobalAvg => vec![cpu::avgpool2d_forward(&global(shapes[0]), ins[0])],
        })
    }

    fn output_name(&self, _: usize) -> String {
        "argmax".into()
    }
}
