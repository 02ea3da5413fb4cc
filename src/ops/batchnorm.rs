//! batchnorm2d (PyTorch's `BatchNorm2d`). Training: `[x, weight, bias, running_mean, running_var]` →
//! `[y, stats]` with the batch statistics' sums saved for the backward, and the running statistics
//! updated in place (the only op that writes an input: [`Rules::updates`]). Evaluation: the same inputs
//! → `[y]` from the running statistics. The backward emits the weight and bias gradients (split
//! reductions of dy · x̂ and dy, one node and one pass over dy) and the input gradient, which reads them.

use crate::context::Context;
use crate::error::{shape_err, Result};
use crate::kernels::batchnorm::{
    batchnorm_backward_input, batchnorm_fold, batchnorm_normalize, batchnorm_param_grads, batchnorm_stats_running,
    check_training, BnGeom, BnStats,
};
use crate::kernels::Launch;
use crate::ops::{arity, Grad, Meta, Op, OutMeta, Rules};
use crate::reference as cpu;
use crate::tensor::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub enum BatchNormOp {
    /// `[x, weight, bias, running_mean, running_var]` → `[y, stats]`; updates the running statistics.
    /// With `relu` (set by the fuse pass's `bn_relu` rule, after autodiff) y is max(y, 0).
    Train { eps: f32, momentum: f32, relu: bool },
    /// `[x, weight, bias, running_mean, running_var]` → `[y]` (with `relu`, max(y, 0)).
    Eval { eps: f32, relu: bool },
    /// `[dy, x, stats]` → `[Σ dy · x̂, Σ dy]`, the weight's and the bias's gradients. With `relu_mask`
    /// (set by the fuse pass's `bn_relu_backward` rule) a last input `y`, the output of the ReLU fused
    /// after the batch-norm: dy is the gradient of y and counts only where y > 0 (the ReLU's backward,
    /// applied here).
    ParamGrads { eps: f32, relu_mask: bool },
    /// `[dy, x, stats, weight, dweight, dbias]` → `[dx]` (`relu_mask` as for `ParamGrads`).
    InputGrad { eps: f32, relu_mask: bool },
    /// `[conv weight, (conv bias,) weight, bias, running_mean, running_var]` → `[w', b']`: the weights of
    /// one conv computing conv + evaluation-form batch-norm (see [`crate::ir::fuse`]).
    FoldConv { eps: f32 },
}

impl BatchNormOp {
    fn eps(&self) -> f32 {
        match *self {
            BatchNormOp::Train { eps, .. }
            | BatchNormOp::Eval { eps, .. }
            | BatchNormOp::ParamGrads { eps, .. }
            | BatchNormOp::InputGrad { eps, .. }
            | BatchNormOp::FoldConv { eps } => eps,
        }
    }

    /// Whether dy is masked by a fused ReLU's output (the last input).
    fn relu_mask(&self) -> bool {
        matches!(self, BatchNormOp::ParamGrads { relu_mask: true, .. } | BatchNormOp::InputGrad { relu_mask: true, .. })
    }
}

/// Check `[n, c, h, w]` data and `[c]` per-channel inputs (`per_channel` of them from input `from`).
fn check(op: &str, ins: &[Meta<'_>], per_channel: std::ops::Range<usize>) -> Result<BnGeom> {
    let x = ins[0].0;
    if x.len() != 4 || ins.iter().any(|m| m.1 != DType::F32) {
        return Err(shape_err(op, format!("expects f32 data of shape [n, c, h, w], got {ins:?}")));
    }
    for i in per_channel {
        if ins[i].0 != [x[1]] {
            return Err(shape_err(op, format!("input {i} has shape {:?}, the data has {} channels", ins[i].0, x[1])));
        }
    }
    Ok(BnGeom::of(x))
}

/// `y`, or max(y, 0) elementwise when `relu` (a fused batch-norm + ReLU).
fn relu_if(relu: bool, y: Vec<f64>) -> Vec<f64> {
    if relu {
        y.into_iter().map(|v| v.max(0.0)).collect()
    } else {
        y
    }
}

/// dy, masked by the fused ReLU's output `y` when `relu_mask` (the ReLU's backward).
fn masked_dy(relu_mask: bool, dy: &[f64], y: Option<&&[f64]>) -> Vec<f64> {
    match y {
        Some(y) if relu_mask => cpu::relu_backward(y, dy),
        _ => dy.to_vec(),
    }
}

impl Rules for BatchNormOp {
    fn name(&self) -> &'static str {
        match self {
            BatchNormOp::Train { relu: false, .. } => "batchnorm2d",
            BatchNormOp::Train { relu: true, .. } => "batchnorm2d+relu",
            BatchNormOp::Eval { relu: false, .. } => "batchnorm2d_eval",
            BatchNormOp::Eval { relu: true, .. } => "batchnorm2d_eval+relu",
            BatchNormOp::ParamGrads { relu_mask: false, .. } => "batchnorm2d_param_grads",
            BatchNormOp::ParamGrads { relu_mask: true, .. } => "relu_backward+batchnorm2d_param_grads",
            BatchNormOp::InputGrad { relu_mask: false, .. } => "batchnorm2d_input_grad",
            BatchNormOp::InputGrad { relu_mask: true, .. } => "relu_backward+batchnorm2d_input_grad",
            BatchNormOp::FoldConv { .. } => "batchnorm_fold",
        }
    }

    fn infer(&self, ins: &[Meta<'_>]) -> Result<Vec<OutMeta>> {
        let op = self.name();
        let x = ins.first().map(|m| m.0.to_vec()).unwrap_or_default();
        match self {
            BatchNormOp::Train { .. } | BatchNormOp::Eval { .. } => {
                arity(op, ins.len(), &[5])?;
                let g = check(op, ins, 1..5)?;
                let mut outs = vec![(x, DType::F32)];
                if let BatchNormOp::Train { .. } = self {
                    outs.push((vec![2, g.c], DType::F32));
                }
                Ok(outs)
            }
            BatchNormOp::ParamGrads { .. } => {
                arity(op, ins.len(), &[3 + usize::from(self.relu_mask())])?;
                let g = check(op, &ins[..2], 0..0)?;
                if ins[1].0 != x || ins[2].0 != [2, g.c] || (self.relu_mask() && ins[3].0 != x) {
                    return Err(shape_err(op, format!("dy, x and stats do not match: {ins:?}")));
                }
                Ok(vec![(vec![g.c], DType::F32), (vec![g.c], DType::F32)])
            }
            BatchNormOp::FoldConv { .. } => {
                arity(op, ins.len(), &[5, 6])?;
                let c = ins[0].0.first().copied().unwrap_or(0);
                if ins.iter().any(|m| m.1 != DType::F32) || ins[1..].iter().any(|m| m.0 != [c]) {
                    return Err(shape_err(
                        op,
                        format!("needs a [c_out, ...] weight and [c_out] operands, got {ins:?}"),
                    ));
                }
                Ok(vec![(ins[0].0.to_vec(), DType::F32), (vec![c], DType::F32)])
            }
            BatchNormOp::InputGrad { .. } => {
                arity(op, ins.len(), &[6 + usize::from(self.relu_mask())])?;
                let g = check(op, &[ins[0], ins[3], ins[4], ins[5]], 1..4)?;
                if ins[1].0 != x || ins[2].0 != [2, g.c] || (self.relu_mask() && ins[6].0 != x) {
                    return Err(shape_err(op, format!("dy, x and stats do not match: {ins:?}")));
                }
                Ok(vec![(x, DType::F32)])
            }
        }
    }

    fn backward(&self, gr: &mut Grad<'_>) -> Result<()> {
        if let BatchNormOp::Train { relu: true, .. } = self {
            // The rule fires after autodiff: a fused batch-norm is never differentiated.
            return Err(shape_err(self.name(), "a fused batch-norm has no backward (fuse after autodiff)"));
        }
        let (BatchNormOp::Train { eps, .. }, Some(dy)) = (self, gr.dy()) else { return Ok(()) };
        let eps = *eps;
        let (x, w, stats) = (gr.input(0), gr.input(1), gr.output(1));
        let grads =
            gr.emit_all("dw_db", Op::BatchNorm(BatchNormOp::ParamGrads { eps, relu_mask: false }), &[dy, x, stats])?;
        let &[dw, db] = grads.as_slice() else {
            return Err(shape_err(self.name(), format!("parameter gradients with {} outputs", grads.len())));
        };
        gr.set(1, dw);
        gr.set(2, db);
        if gr.needs(0) {
            let op = Op::BatchNorm(BatchNormOp::InputGrad { eps, relu_mask: false });
            let dx = gr.emit("dx", op, &[dy, x, stats, w, dw, db])?;
            gr.set(0, dx);
        }
        Ok(())
    }

    fn lower(&self, ctx: &Context, label: &str, ins: &[&Tensor], outs: &[&Tensor]) -> Result<Vec<Launch>> {
        let g = if ins[0].shape.len() >= 2 { BnGeom::of(&ins[0].shape) } else { BnGeom { n: 1, c: 1, hw: 1 } };
        let eps = self.eps();
        Ok(match self {
            BatchNormOp::Train { momentum, relu, .. } => vec![
                batchnorm_stats_running(ctx, label, &g, ins[0], outs[1], *momentum, ins[3], ins[4])?,
                batchnorm_normalize(
                    ctx,
                    label,
                    &g,
                    eps,
                    ins[0],
                    ins[1],
                    ins[2],
                    BnStats::Batch(outs[1]),
                    outs[0],
                    *relu,
                )?,
            ],
            BatchNormOp::Eval { relu, .. } => {
                let running = BnStats::Running(ins[3], ins[4]);
                vec![batchnorm_normalize(ctx, label, &g, eps, ins[0], ins[1], ins[2], running, outs[0], *relu)?]
            }
            BatchNormOp::ParamGrads { .. } => {
                let mask = ins.get(3).copied();
                vec![batchnorm_param_grads(ctx, label, &g, eps, ins[0], ins[1], ins[2], mask, outs[0], outs[1])?]
            }
            BatchNormOp::InputGrad { .. } => vec![batchnorm_backward_input(
                ctx,
                label,
                &g,
                eps,
                ins[0],
                ins[1],
                ins[2],
                ins[3],
                ins[4],
                ins[5],
                ins.get(6).copied(),
                outs[0],
            )?],
            BatchNormOp::FoldConv { .. } => {
                // A conv without bias folds with a zero bias (made now, at build time).
                let (conv, bn) = ins.split_at(ins.len() - 4);
                let zeros;
                let b = match conv {
                    [_, b] => *b,
                    _ => {
                        zeros = Tensor::zeros(ctx, &format!("{label}.no_bias"), &[ins[0].shape[0]], DType::F32)?;
                        &zeros
                    }
                };
                vec![batchnorm_fold(ctx, label, eps, ins[0], b, [bn[0], bn[1], bn[2], bn[3]], outs[0], outs[1])?]
            }
        })
    }

    fn eval(&self, ins: &[&[f64]], shapes: &[&[usize]]) -> Result<Vec<Vec<f64>>> {
        let g = if shapes[0].len() >= 2 { BnGeom::of(shapes[0]) } else { BnGeom { n: 1, c: 1, hw: 1 } };
        let eps = f64::from(self.eps());
        Ok(match self {
            BatchNormOp::Train { momentum, relu, .. } => {
                check_training(self.name(), &g)?;
                let stats = cpu::batchnorm_stats(&g, ins[0]);
                let (mean, invstd) = cpu::batchnorm_moments(&g, &stats, eps);
                let y = relu_if(*relu, cpu::batchnorm_normalize(&g, ins[0], ins[1], ins[2], &mean, &invstd));
                let (rm, rv) = cpu::batchnorm_running(&g, &stats, f64::from(*momentum), ins[3], ins[4]);
                vec![y, stats, rm, rv]
            }
            BatchNormOp::Eval { relu, .. } => {
                let invstd = cpu::batchnorm_invstd(ins[4], eps);
                vec![relu_if(*relu, cpu::batchnorm_normalize(&g, ins[0], ins[1], ins[2], ins[3], &invstd))]
            }
            BatchNormOp::ParamGrads { .. } => {
                let dy = masked_dy(self.relu_mask(), ins[0], ins.get(3));
                let (dw, db) = cpu::batchnorm_param_grads(&g, &dy, ins[1], ins[2], eps);
                vec![dw, db]
            }
            BatchNormOp::InputGrad { .. } => {
                let dy = masked_dy(self.relu_mask(), ins[0], ins.get(6));
                vec![cpu::batchnorm_backward_input(&g, &dy, ins[1], ins[2], ins[3], ins[4], ins[5], eps)]
            }
            BatchNormOp::FoldConv { .. } => {
                let (bias, bn) = ins.split_at(ins.len() - 4);
                let zeros = vec![0.0; shapes[0][0]];
                let b = if bias.len() == 2 { bias[1] } else { &zeros };
                let (w2, b2) = cpu::batchnorm_fold(bias[0], b, [bn[0], bn[1], bn[2], bn[3]], eps);
                vec![w2, b2]
            }
        })
    }

    fn updates(&self) -> &'static [usize] {
        match self {
            BatchNormOp::Train { .. } => &[3, 4],
            _ => &[],
        }
    }

    fn output_name(&self, i: usize) -> String {
        if i == 1 {
            "stats".into()
        } else {
            format!("out{i}")
        }
    }
}
