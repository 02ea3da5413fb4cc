//! concat: inputs `[n, c_i, h, w]` joined along channels into `[n, Σc_i, h, w]` (an Inception block's
//! branches, a dense block's growing input). One copy launch per input; the backward hands each input
//! its channel slice of the gradient (or, fused, adds it to the input's other gradient).

use crate::context::Context;
use crate::error::{shape_err, Result};
use crate::kernels::concat::{concat_backward, concat_backward_add, concat_forward};
use crate::kernels::Launch;
use crate::ops::{Grad, Meta, Op, OutMeta, Rules};
use crate::reference as cpu;
use crate::shape::ConcatGeom;
use crate::tensor::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub enum ConcatOp {
    /// `[x_1, …, x_k]` (k ≥ 2) → `[y]`.
    Forward,
    /// `[dy]` → `[dx_i]`: the slice of input i.
    Backward(ConcatGeom),
    /// `[dy, other]` → `[dx_i + other]`: the slice of input i added to another gradient of that input
    /// (the fuse pass's `slice_add`: a dense block's input, read by the next layer and the next concat).
    BackwardAdd(ConcatGeom),
}

/// The geometry of each input of a concat of inputs with these shapes (rank 4, checked).
fn parts(shapes: &[&[usize]]) -> Vec<ConcatGeom> {
    let c_whole = shapes.iter().map(|s| s[1]).sum();
    let mut offset = 0;
    shapes
        .iter()
        .map(|s| {
            let g = ConcatGeom { n: s[0], c_part: s[1], c_whole, offset, hw: s[2] * s[3] };
            offset += s[1];
            g
        })
        .collect()
}

impl Rules for ConcatOp {
    fn name(&self) -> &'static str {
        match self {
            ConcatOp::Forward => "concat",
            ConcatOp::Backward(_) => "concat_backward",
            ConcatOp::BackwardAdd(_) => "concat_backward+add",
        }
    }

    fn infer(&self, ins: &[Meta<'_>]) -> Result<Vec<OutMeta>> {
        match self {
            ConcatOp::Forward => {
                let first = ins.first().map(|m| m.0).unwrap_or(&[]);
                let same = |s: &[usize]| s.len() == 4 && s[0] == first[0] && s[2..] == first[2..];
                if ins.len() < 2 || first.len() != 4 || ins.iter().any(|(s, d)| *d != DType::F32 || !same(s)) {
                    let shapes: Vec<&[usize]> = ins.iter().map(|m| m.0).collect();
                    return Err(shape_err(
                        "concat",
                        format!("joins 2 or more f32 [n, c, h, w] inputs of one n, h and w, got {shapes:?}"),
                    ));
                }
                let c = ins.iter().map(|(s, _)| s[1]).sum();
                Ok(vec![(vec![first[0], c, first[2], first[3]], DType::F32)])
            }
            ConcatOp::Backward(g) => match ins {
                [(s, DType::F32)] if s.iter().product::<usize>() == g.whole_len() && g.hw > 0 => {
                    Ok(vec![(vec![g.n, g.c_part, s[2], s[3]], DType::F32)])
                }
                _ => Err(shape_err("concat_backward", format!("expects the gradient of the whole {g:?}, got {ins:?}"))),
            },
            ConcatOp::BackwardAdd(g) => {
                let slice = ConcatOp::Backward(*g).infer(&ins[..ins.len().min(1)])?;
                match ins {
                    [_, (s, DType::F32)] if *s == slice[0].0.as_slice() => Ok(slice),
                    _ => Err(shape_err(
                        "concat_backward+add",
                        format!("expects the whole's gradient and a part's of {g:?}, got {ins:?}"),
                    )),
                }
            }
        }
    }

    fn backward(&self, gr: &mut Grad<'_>) -> Result<()> {
        let (ConcatOp::Forward, Some(dy)) = (self, gr.dy()) else { return Ok(()) };
        let shapes: Vec<Vec<usize>> = gr.node.inputs.iter().map(|&v| gr.ir.value(v).shape.clone()).collect();
        let refs: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
        for (i, g) in parts(&refs).into_iter().enumerate() {
            if gr.needs(i) {
                let dx = gr.emit(&format!("dx{i}"), Op::Concat(ConcatOp::Backward(g)), &[dy])?;
                gr.set(i, dx);
            }
        }
        Ok(())
    }

    fn lower(&self, ctx: &Context, label: &str, ins: &[&Tensor], outs: &[&Tensor]) -> Result<Vec<Launch>> {
        match self {
            ConcatOp::Forward => {
                let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape.as_slice()).collect();
                let gs = parts(&shapes);
                let each = ins.iter().zip(&gs).enumerate();
                each.map(|(i, (x, g))| concat_forward(ctx, &format!("{label}.{i}"), g, x, outs[0])).collect()
            }
            ConcatOp::Backward(g) => Ok(vec![concat_backward(ctx, label, g, ins[0], outs[0])?]),
            ConcatOp::BackwardAdd(g) => Ok(vec![concat_backward_add(ctx, label, g, ins[0], ins[1], outs[0])?]),
        }
    }

    fn eval(&self, ins: &[&[f64]], shapes: &[&[usize]]) -> Result<Vec<Vec<f64>>> {
        Ok(vec![match self {
            ConcatOp::Forward => {
                let gs = parts(shapes);
                let mut whole = vec![0.0; gs.first().map_or(0, ConcatGeom::whole_len)];
                for (x, g) in ins.iter().zip(&gs) {
                    whole = cpu::concat_forward(g, x, &whole);
                }
                whole
            }
            ConcatOp::Backward(g) => cpu::concat_backward(g, ins[0]),
            ConcatOp::BackwardAdd(g) => cpu::add_forward(&cpu::concat_backward(g, ins[0]), ins[1]),
        }])
    }
}
