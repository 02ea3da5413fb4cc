//! Rewrite rules that merge two nodes into one launch where the kernels take the shape:
//!
//! - `conv_relu`: a conv whose output only a ReLU reads computes the ReLU itself (the conv then writes
//!   the ReLU's output value; its own becomes a view of it).
//! - `conv_bn_fold`: in an evaluation graph, a conv whose output only a batch-norm reads folds the
//!   batch-norm into its weights: a `batchnorm_fold` node computes w' and b' from the conv's weights,
//!   the batch-norm's parameters and running statistics on each run, and the conv (now with bias b')
//!   writes the batch-norm's output value.
//! - `bn_relu`: a batch-norm (training or evaluation) whose output only a ReLU reads applies the ReLU
//!   in its normalisation kernel; its backward reads x and the statistics, never y, and the ReLU's
//!   backward then reads the batch-norm's output.
//! - `bn_relu_backward`: that ReLU's backward, where only the batch-norm's backward nodes (the
//!   parameter gradients and the input gradient) read its result, is applied by those two kernels: they read the
//!   incoming gradient and the ReLU's output and mask as the ReLU's backward does (the same bits).
//!   It runs after `pool_relu_mask`, which takes the ReLU's backward first where a max-pool follows.
//! - `linear_relu`: a fully connected layer whose output only a ReLU reads stores max(y, 0) itself,
//!   as `conv_relu` does (every kernel of the layer takes it; the oracle keeps it off where each
//!   layer's own output is wanted).
//! - `add_relu`: an add (a residual block's end) whose output only a ReLU reads computes the ReLU
//!   itself, as `conv_relu` does; the ReLU's backward then reads the add's output.
//! - `pool_relu_mask`: the ReLU backward after a max-pool backward (when the pool read the ReLU's
//!   output) is applied by the pool's backward, which then reads the pool's output.
//! - `slice_add`: a two-term gradient sum one of whose terms is a concat's gradient slice that only
//!   the sum reads (a dense block's input, read by the next layer and by the next concat) becomes one
//!   node that adds the slice of the whole's gradient to the other term: the slice is never stored on
//!   its own (the same bits: a sum of two values does not depend on their order).
//!
//! Each rule asks a [`KernelOracle`] whether the shape is taken, so the graph never holds a node the
//! kernels cannot run.

use crate::ir::{Ir, Node, ValueId};
use crate::kernels::activation::Activation;
use crate::ops::{ActOp, AddOp, BatchNormOp, ConcatOp, ConvOp, LinearOp, Op, PoolOp};
use crate::shape::{Conv2dGeom, Pool2dGeom};

/// What the fusion rules ask the kernels.
pub trait KernelOracle {
    /// A conv with its ReLU in the same kernel.
    fn conv_relu(&self, g: &Conv2dGeom) -> bool;
    /// A max-pool backward applying the mask of the ReLU before the pool.
    fn pool_relu_mask(&self, g: &Pool2dGeom) -> bool;
    /// Batch-norm folded into the conv before it (off where each layer's own output is wanted).
    fn conv_bn_fold(&self) -> bool;
    /// A fully connected layer with its ReLU in the same kernel (every linear kernel takes it; off
    /// where each layer's own output is wanted, as `conv_relu` is).
    fn linear_relu(&self) -> bool;
}

/// Which rules fired, in order: (rule, node name after the rewrite).
pub type Rewrites = Vec<(&'static str, String)>;

/// Apply every rule wherever it fires.
pub fn fuse(ir: &mut Ir, oracle: &dyn KernelOracle) -> Rewrites {
    let mut done = Vec::new();
    conv_bn_fold(ir, oracle, &mut done);
    conv_relu(ir, oracle, &mut done);
    linear_relu(ir, oracle, &mut done);
    bn_relu(ir, &mut done);
    add_relu(ir, &mut done);
    pool_relu_mask(ir, oracle, &mut done);
    bn_relu_backward(ir, &mut done);
    slice_add(ir, &mut done);
    done
}

/// The node reading `v` when it is the only reader (through aliases too).
fn only_reader(ir: &Ir, v: ValueId) -> Option<usize> {
    match ir.readers(v)[..] {
        [r] => Some(r),
        _ => None,
    }
}

fn conv_bn_fold(ir: &mut Ir, oracle: &dyn KernelOracle, done: &mut Rewrites) {
    let mut i = 0;
    while i < ir.nodes.len() {
        let n = &ir.nodes[i];
        let fire = match &n.op {
            Op::Conv(ConvOp::Forward { relu: false, .. }) if oracle.conv_bn_fold() => only_reader(ir, n.outputs[0])
                .filter(|&r| {
                    matches!(ir.nodes[r].op, Op::BatchNorm(BatchNormOp::Eval { relu: false, .. }))
                        && ir.nodes[r].inputs[0] == n.outputs[0]
                }),
            _ => None,
        };
        if let Some(r) = fire {
            let bn = ir.nodes.remove(r);
            let Op::BatchNorm(BatchNormOp::Eval { eps, .. }) = bn.op else { unreachable!("matched above") };
            let mut inputs = ir.nodes[i].inputs[1..].to_vec(); // conv weight (and bias)
            inputs.extend_from_slice(&bn.inputs[1..]); // weight, bias, running_mean, running_var
            let name = format!("{}.fold", bn.name);
            let Ok(folded) = ir.push(&name, Op::BatchNorm(BatchNormOp::FoldConv { eps }), &inputs) else {
                ir.nodes.insert(r, bn); // (shapes were checked when the graph was built)
                i += 1;
                continue;
            };
            let fold = ir.nodes.pop().expect("the node just pushed");
            ir.nodes.insert(i, fold);
            i += 1;
            let (old, new) = (ir.nodes[i].outputs[0], bn.outputs[0]);
            ir.value_mut(old).alias = Some(new);
            let conv = &mut ir.nodes[i];
            conv.inputs.truncate(1);
            conv.inputs.extend_from_slice(&folded);
            conv.outputs[0] = new;
            conv.name = format!("{}+{}", conv.name, bn.name);
            done.push(("conv_bn_fold", conv.name.clone()));
        }
        i += 1;
    }
}

fn conv_relu(ir: &mut Ir, oracle: &dyn KernelOracle, done: &mut Rewrites) {
    let takes = |ir: &Ir, n: &Node| match (&n.op, n.inputs.as_slice()) {
        (Op::Conv(ConvOp::Forward { stride, pad, relu: false }), [x, w, ..]) => {
            oracle.conv_relu(&crate::ops::conv::geom(&ir.value(*x).shape, &ir.value(*w).shape, *stride, *pad))
        }
        _ => false,
    };
    absorb_relu(ir, done, "conv_relu", takes, |op| {
        if let Op::Conv(ConvOp::Forward { relu, .. }) = op {
            *relu = true;
        }
    });
}

fn linear_relu(ir: &mut Ir, oracle: &dyn KernelOracle, done: &mut Rewrites) {
    let takes = |_: &Ir, n: &Node| oracle.linear_relu() && n.op == Op::Linear(LinearOp::Forward { relu: false });
    absorb_relu(ir, done, "linear_relu", takes, |op| *op = Op::Linear(LinearOp::Forward { relu: true }));
}

fn bn_relu(ir: &mut Ir, done: &mut Rewrites) {
    let takes = |_: &Ir, n: &Node| {
        matches!(n.op, Op::BatchNorm(BatchNormOp::Train { relu: false, .. } | BatchNormOp::Eval { relu: false, .. }))
    };
    absorb_relu(ir, done, "bn_relu", takes, |op| {
        if let Op::BatchNorm(BatchNormOp::Train { relu, .. } | BatchNormOp::Eval { relu, .. }) = op {
            *relu = true;
        }
    });
}

fn add_relu(ir: &mut Ir, done: &mut Rewrites) {
    let takes = |_: &Ir, n: &Node| n.op == Op::Add(AddOp { relu: false });
    absorb_relu(ir, done, "add_relu", takes, |op| *op = Op::Add(AddOp { relu: true }));
}

/// Where a node that `takes` says can compute a ReLU has its output read by a ReLU alone, the node
/// computes the ReLU (`set` marks its op) and writes the ReLU's output value; its own output becomes
/// a view of that value, and the ReLU node goes.
fn absorb_relu(
    ir: &mut Ir,
    done: &mut Rewrites,
    rule: &'static str,
    takes: impl Fn(&Ir, &Node) -> bool,
    set: impl Fn(&mut Op),
) {
    let mut i = 0;
    while i < ir.nodes.len() {
        let n = &ir.nodes[i];
        let fire = if takes(ir, n) {
            only_reader(ir, n.outputs[0]).filter(|&r| {
                ir.nodes[r].op == Op::Act(ActOp::Forward(Activation::Relu)) && ir.nodes[r].inputs[0] == n.outputs[0]
            })
        } else {
            None
        };
        if let Some(r) = fire {
            let relu = ir.nodes.remove(r);
            let (old, new) = (ir.nodes[i].outputs[0], relu.outputs[0]);
            ir.value_mut(old).alias = Some(new);
            let n = &mut ir.nodes[i];
            n.outputs[0] = new;
            n.name = format!("{}+{}", n.name, relu.name);
            set(&mut n.op);
            done.push((rule, n.name.clone()));
        }
        i += 1;
    }
}

/// Where a ReLU's backward reads the output y of a training batch-norm with that ReLU fused
/// (`bn_relu`) and only that batch-norm's backward nodes read its result, those nodes take the
/// ReLU's incoming gradient and y instead and mask the gradient themselves; the ReLU's backward goes.
fn bn_relu_backward(ir: &mut Ir, done: &mut Rewrites) {
    let mut i = 0;
    while i < ir.nodes.len() {
        let n = &ir.nodes[i];
        let fire = match (&n.op, n.inputs.as_slice()) {
            (Op::Act(ActOp::Backward(Activation::Relu)), &[y, dy]) => {
                let dz = n.outputs[0];
                let bn = ir.producer(y).filter(|&b| {
                    matches!(ir.nodes[b].op, Op::BatchNorm(BatchNormOp::Train { relu: true, .. }))
                        && ir.nodes[b].outputs[0] == y
                });
                bn.map(|b| (ir.nodes[b].inputs[0], ir.nodes[b].outputs[1]))
                    .map(|(x, stats)| (ir.readers(dz), x, stats))
                    .filter(|(readers, x, stats)| {
                        !readers.is_empty()
                            && ir.value(dz).role == crate::ir::Role::Temp
                            && readers.iter().all(|&r| {
                                let rn = &ir.nodes[r];
                                let grad = matches!(
                                    rn.op,
                                    Op::BatchNorm(
                                        BatchNormOp::ParamGrads { relu_mask: false, .. }
                                            | BatchNormOp::InputGrad { relu_mask: false, .. }
                                    )
                                );
                                grad && rn.inputs[0] == dz
                                    && rn.inputs[1] == *x
                                    && rn.inputs[2] == *stats
                                    && !rn.inputs[1..].contains(&dz)
                            })
                    })
                    .map(|(readers, ..)| (readers, y, dy))
            }
            _ => None,
        };
        if let Some((readers, y, dy)) = fire {
            let relu_dx = ir.nodes.remove(i);
            for r in readers {
                let n = &mut ir.nodes[r - 1]; // (after the ReLU's backward, which is gone)
                n.inputs[0] = dy;
                n.inputs.push(y);
                n.name = format!("{}+{}", relu_dx.name, n.name);
                if let Op::BatchNorm(
                    BatchNormOp::ParamGrads { relu_mask, .. } | BatchNormOp::InputGrad { relu_mask, .. },
                ) = &mut n.op
                {
                    *relu_mask = true;
                }
                done.push(("bn_relu_backward", n.name.clone()));
            }
            continue;
        }
        i += 1;
    }
}

/// Whether an op's output is a ReLU's (a ReLU, or a conv, linear, add or batch-norm with its ReLU
/// fused).
fn applies_relu(op: &Op) -> bool {
    matches!(
        op,
        Op::Act(ActOp::Forward(Activation::Relu))
            | Op::Conv(ConvOp::Forward { relu: true, .. })
            | Op::Linear(LinearOp::Forward { relu: true })
            | Op::Add(AddOp { relu: true })
            | Op::BatchNorm(BatchNormOp::Train { relu: true, .. } | BatchNormOp::Eval { relu: true, .. })
    )
}

fn pool_relu_mask(ir: &mut Ir, oracle: &dyn KernelOracle, done: &mut Rewrites) {
    let mut i = 0;
    while i < ir.nodes.len() {
        let fire = match (&ir.nodes[i].op, ir.nodes[i].inputs.as_slice()) {
            (Op::Pool(PoolOp::MaxBackward { g, relu_mask: false }), [_, argmax]) => {
                // The forward pool (producer of the argmax), its input, and the ReLU producing that.
                let pool = ir.producer(*argmax);
                let pooled = pool.map(|p| ir.nodes[p].inputs[0]);
                let relu_out = pooled.filter(|&v| ir.producer(v).is_some_and(|k| applies_relu(&ir.nodes[k].op)));
                only_reader(ir, ir.nodes[i].outputs[0])
                    .filter(|&r| {
                        let rn = &ir.nodes[r];
                        rn.op == Op::Act(ActOp::Backward(Activation::Relu))
                            && Some(rn.inputs[0]) == relu_out
                            && rn.inputs[1] == ir.nodes[i].outputs[0]
                    })
                    .filter(|_| oracle.pool_relu_mask(g))
                    .zip(pool)
            }
            _ => None,
        };
        if let Some((r, pool)) = fire {
            let pool_y = ir.nodes[pool].outputs[0];
            let relu_dx = ir.nodes.remove(r);
            let (old, new) = (ir.nodes[i].outputs[0], relu_dx.outputs[0]);
            ir.value_mut(old).alias = Some(new);
            let n = &mut ir.nodes[i];
            n.inputs.push(pool_y);
            n.outputs[0] = new;
            n.name = format!("{}+{}", n.name, relu_dx.name);
            if let Op::Pool(PoolOp::MaxBackward { relu_mask, .. }) = &mut n.op {
                *relu_mask = true;
            }
            done.push(("pool_relu_mask", n.name.clone()));
        }
        i += 1;
    }
}

fn slice_add(ir: &mut Ir, done: &mut Rewrites) {
    let mut i = 0;
    while i < ir.nodes.len() {
        let n = &ir.nodes[i];
        let fire = if n.op == Op::Add(AddOp { relu: false }) && n.inputs.len() == 2 && n.inputs[0] != n.inputs[1] {
            (0..2).find_map(|k| {
                let v = n.inputs[k];
                let j = ir.producer(v)?;
                match ir.nodes[j].op {
                    Op::Concat(ConcatOp::Backward(g)) if only_reader(ir, v) == Some(i) => Some((k, j, g)),
                    _ => None,
                }
            })
        } else {
            None
        };
        if let Some((k, j, g)) = fire {
            let slice = ir.nodes.remove(j);
            let at = if j < i { i - 1 } else { i };
            let n = &mut ir.nodes[at];
            let other = n.inputs[1 - k];
            n.inputs = vec![slice.inputs[0], other];
            n.op = Op::Concat(ConcatOp::BackwardAdd(g));
            n.name = format!("{}+{}", slice.name, n.name);
            done.push(("slice_add", n.name.clone()));
            i = at;
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::autodiff::autodiff;
    use crate::ir::Role;
    use crate::kernels::loss::LossKind;
    use crate::ops::{LossOp, ViewOp};
    use crate::tensor::DType;

    struct Says(bool, bool);
    impl KernelOracle for Says {
        fn conv_relu(&self, _: &Conv2dGeom) -> bool {
            self.0
        }
        fn pool_relu_mask(&self, _: &Pool2dGeom) -> bool {
            self.1
        }
        fn conv_bn_fold(&self) -> bool {
            self.0
        }
        fn linear_relu(&self) -> bool {
            self.0
        }
    }

    /// conv → relu → max-pool → flatten → loss, with gradients; `tap` adds a second reader of the
    /// conv's output (an add of it to the ReLU's).
    fn net(tap: bool) -> Ir {
        let mut ir = Ir::default();
        let x = ir.add_value("x", &[2, 1, 4, 4], DType::F32, Role::Input);
        let l = ir.add_value("labels", &[2], DType::U32, Role::Labels);
        let w = ir.add_value("c.weight", &[1, 1, 3, 3], DType::F32, Role::Param(0));
        let conv = Op::Conv(ConvOp::Forward { stride: 1, pad: 1, relu: false });
        let c = ir.push("c", conv, &[x, w]).unwrap()[0];
        let mut r = ir.push("r", Op::Act(ActOp::Forward(Activation::Relu)), &[c]).unwrap()[0];
        if tap {
            r = ir.push("t", Op::Add(crate::ops::AddOp::default()), &[r, c]).unwrap()[0];
        }
        let p = ir.push("p", Op::Pool(PoolOp::Max { k: 2, stride: 2, pad: 0 }), &[r]).unwrap()[0];
        let f = ir.push("f", Op::View(ViewOp::Flatten), &[p]).unwrap()[0];
        ir.push("loss", Op::Loss(LossOp::Forward(LossKind::CrossEntropy)), &[f, l]).unwrap();
        autodiff(&mut ir).unwrap();
        ir
    }

    fn names(ir: &Ir) -> Vec<&str> {
        ir.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    #[test]
    fn conv_relu_and_the_pool_mask_fire_where_the_kernels_take_the_shape() {
        let mut ir = net(false);
        let before = ir.nodes.len();
        let done = fuse(&mut ir, &Says(true, true));
        assert_eq!(done, [("conv_relu", "c+r".to_string()), ("pool_relu_mask", "p.dx+r.dx".to_string())]);
        assert_eq!(ir.nodes.len(), before - 2);
        assert_eq!(names(&ir), ["c+r", "p", "f", "loss", "loss.backward", "f.dx", "p.dx+r.dx", "c.dw"]);
        // The conv writes the ReLU's output; its own output is now a view of it.
        let conv = &ir.nodes[0];
        assert_eq!(ir.value(conv.outputs[0]).name, "r");
        assert_eq!(ir.root(ValueId(3)), conv.outputs[0]);
        // The fused backward reads the pool's output.
        let pb = &ir.nodes[6];
        assert_eq!(pb.inputs.len(), 3);
        assert_eq!(pb.inputs[2], ir.nodes[1].outputs[0]);
    }

    #[test]
    fn nothing_fires_when_the_kernels_say_no_or_another_node_reads_the_value() {
        let mut ir = net(false);
        let want = ir.clone();
        assert!(fuse(&mut ir, &Says(false, false)).is_empty());
        assert_eq!(ir, want);
        // The conv's output has a second reader (the add), and the pool reads the add, not the ReLU.
        let mut tapped = net(true);
        let want = tapped.clone();
        assert!(fuse(&mut tapped, &Says(true, true)).is_empty(), "{}", tapped.dump());
        assert_eq!(tapped, want);
    }

    #[test]
    fn a_batch_norm_after_a_conv_folds_into_it_in_evaluation_and_computes_the_same() {
        use crate::ir::{build, interp};
        use crate::model::{BatchNorm2d, Conv2d, LayerOp, Linear, ModelBuilder};
        let spec = ModelBuilder::new("fold", [1, 6, 6], 3)
            .layer("conv", Conv2d::new(2, 3).bias(false))
            .layer("bn", BatchNorm2d::default())
            .layer("relu", Activation::Relu)
            .layer("flatten", LayerOp::Flatten)
            .layer("fc", Linear::new(3))
            .build()
            .unwrap();
        let f = build::forward(&spec, 2, false).unwrap();
        let mut ir = f.ir.clone();
        let done = fuse(&mut ir, &Says(true, false));
        assert_eq!(done, [("conv_bn_fold", "conv+bn".to_string()), ("conv_relu", "conv+bn+relu".to_string())]);
        assert_eq!(names(&ir), ["bn.fold", "conv+bn+relu", "flatten", "fc", "loss"], "{}", ir.dump());
        // The folded graph computes what the unfused one does (f64, so to rounding).
        let mut r = crate::rng::Rng::new(3);
        let mut feeds = vec![(f.input, (0..72).map(|_| r.uniform(-1.0, 1.0)).collect()), (f.labels, vec![0.0, 2.0])];
        for v in (0..f.ir.values.len()).map(|i| ValueId(i as u32)) {
            let val = f.ir.value(v);
            if matches!(val.role, Role::Param(_) | Role::Buffer(_)) {
                feeds.push((v, (0..val.len()).map(|_| r.uniform(0.2, 1.0)).collect()));
            }
        }
        let (a, b) = (interp::run(&f.ir, &feeds).unwrap(), interp::run(&ir, &feeds).unwrap());
        let (pa, pb) = (a.get(f.probs).unwrap(), b.get(f.probs).unwrap());
        assert!(pa.iter().zip(pb).all(|(x, y)| (x - y).abs() < 1e-12), "{pa:?} vs {pb:?}");
        // Training graphs keep the batch-norm (batch statistics cannot fold).
        let mut train = build::forward(&spec, 2, true).unwrap().ir;
        assert!(fuse(&mut train, &Says(true, false)).iter().all(|(rule, _)| *rule != "conv_bn_fold"));
    }

    /// A residual block's end: relu(conv(x) + x) → flatten → loss, with gradients; `tap` adds a
    /// second reader of the sum.
    fn residual(tap: bool) -> Ir {
        let mut ir = Ir::default();
        let x = ir.add_value("x", &[2, 1, 4, 4], DType::F32, Role::Input);
        let l = ir.add_value("labels", &[2], DType::U32, Role::Labels);
        let w = ir.add_value("c.weight", &[1, 1, 3, 3], DType::F32, Role::Param(0));
        let conv = Op::Conv(ConvOp::Forward { stride: 1, pad: 1, relu: false });
        let c = ir.push("c", conv, &[x, w]).unwrap()[0];
        let s = ir.push("sum", Op::Add(AddOp::default()), &[c, x]).unwrap()[0];
        let mut r = ir.push("r", Op::Act(ActOp::Forward(Activation::Relu)), &[s]).unwrap()[0];
        if tap {
            r = ir.push("t", Op::Add(AddOp::default()), &[r, s]).unwrap()[0];
        }
        let f = ir.push("f", Op::View(ViewOp::Flatten), &[r]).unwrap()[0];
        ir.push("loss", Op::Loss(LossOp::Forward(LossKind::CrossEntropy)), &[f, l]).unwrap();
        autodiff(&mut ir).unwrap();
        ir
    }

    #[test]
    fn add_relu_fuses_the_end_of_a_residual_block_and_computes_the_same() {
        use crate::ir::interp;
        let unfused = residual(false);
        let mut ir = unfused.clone();
        // The conv's output is read by the add only, but no ReLU follows the conv: conv_relu stays off.
        let done = fuse(&mut ir, &Says(true, true));
        assert_eq!(done, [("add_relu", "sum+r".to_string())], "{}", ir.dump());
        assert_eq!(ir.nodes.len(), unfused.nodes.len() - 1);
        let add = ir.nodes.iter().find(|n| n.name == "sum+r").unwrap();
        assert_eq!(add.op, Op::Add(AddOp { relu: true }));
        assert_eq!(ir.value(add.outputs[0]).name, "r");
        // The ReLU's backward reads the fused add's output.
        let rb = ir.nodes.iter().find(|n| n.op == Op::Act(ActOp::Backward(Activation::Relu))).unwrap();
        assert_eq!(rb.inputs[0], add.outputs[0]);
        // Loss and every gradient as before (f64 interpreter, to rounding).
        let mut g = crate::rng::Rng::new(5);
        let x: Vec<f64> = (0..32).map(|_| g.uniform(-1.0, 1.0)).collect();
        let w: Vec<f64> = (0..9).map(|_| g.uniform(-1.0, 1.0)).collect();
        let feeds = vec![(ValueId(0), x), (ValueId(1), vec![1.0, 0.0]), (ValueId(2), w)];
        let (a, b) = (interp::run(&unfused, &feeds).unwrap(), interp::run(&ir, &feeds).unwrap());
        let loss = unfused.nodes.iter().find(|n| n.name == "loss").unwrap().outputs[0];
        let dw = (0..unfused.values.len())
            .map(|i| ValueId(i as u32))
            .find(|&v| unfused.value(v).role == Role::ParamGrad(0))
            .unwrap();
        for v in [loss, dw] {
            let (pa, pb) = (a.get(v).unwrap(), b.get(v).unwrap());
            assert!(
                pa.iter().zip(pb).all(|(p, q)| (p - q).abs() < 1e-12),
                "{}: {pa:?} vs {pb:?}",
                unfused.value(v).name
            );
        }
        // A second reader of the sum keeps the ReLU apart.
        let mut tapped = residual(true);
        let want = tapped.clone();
        assert!(fuse(&mut tapped, &Says(true, true)).is_empty(), "{}", tapped.dump());
        assert_eq!(tapped, want);
    }

    /// x [3, 5] → fc1 (with bias) → relu → fc2 → loss, with gradients; `tap` adds a second reader of
    /// fc1's output (an add of it to the ReLU's).
    fn mlp(tap: bool) -> Ir {
        let mut ir = Ir::default();
        let x = ir.add_value("x", &[3, 5], DType::F32, Role::Input);
        let l = ir.add_value("labels", &[3], DType::U32, Role::Labels);
        let w1 = ir.add_value("fc1.weight", &[4, 5], DType::F32, Role::Param(0));
        let b1 = ir.add_value("fc1.bias", &[4], DType::F32, Role::Param(1));
        let w2 = ir.add_value("fc2.weight", &[2, 4], DType::F32, Role::Param(2));
        let linear = Op::Linear(LinearOp::Forward { relu: false });
        let h = ir.push("fc1", linear.clone(), &[x, w1, b1]).unwrap()[0];
        let mut r = ir.push("r", Op::Act(ActOp::Forward(Activation::Relu)), &[h]).unwrap()[0];
        if tap {
            r = ir.push("t", Op::Add(AddOp::default()), &[r, h]).unwrap()[0];
        }
        let y = ir.push("fc2", linear, &[r, w2]).unwrap()[0];
        ir.push("loss", Op::Loss(LossOp::Forward(LossKind::CrossEntropy)), &[y, l]).unwrap();
        autodiff(&mut ir).unwrap();
        ir
    }

    #[test]
    fn linear_relu_fuses_a_layer_and_its_relu_and_computes_the_same() {
        use crate::ir::interp;
        let unfused = mlp(false);
        let mut ir = unfused.clone();
        // Off where the oracle says so (each layer's own output wanted), and then nothing changes.
        assert!(fuse(&mut ir, &Says(false, false)).is_empty());
        assert_eq!(ir, unfused);
        let done = fuse(&mut ir, &Says(true, false));
        assert_eq!(done, [("linear_relu", "fc1+r".to_string())], "{}", ir.dump());
        assert_eq!(ir.nodes.len(), unfused.nodes.len() - 1);
        let fc1 = &ir.nodes[0];
        assert_eq!(fc1.op, Op::Linear(LinearOp::Forward { relu: true }));
        assert_eq!(fc1.op.name(), "linear+relu");
        assert_eq!(ir.value(fc1.outputs[0]).name, "r");
        // The ReLU's backward reads the fused layer's output.
        let rb = ir.nodes.iter().find(|n| n.op == Op::Act(ActOp::Backward(Activation::Relu))).unwrap();
        assert_eq!(rb.inputs[0], fc1.outputs[0]);
        // Loss and every gradient as before (f64 interpreter; the same operations, so exactly).
        let mut g = crate::rng::Rng::new(8);
        let mut draw = |n: usize| (0..n).map(|_| g.uniform(-1.0, 1.0)).collect::<Vec<f64>>();
        let feeds = vec![
            (ValueId(0), draw(15)),
            (ValueId(1), vec![1.0, 0.0, 1.0]),
            (ValueId(2), draw(20)),
            (ValueId(3), draw(4)),
            (ValueId(4), draw(8)),
        ];
        let (a, b) = (interp::run(&unfused, &feeds).unwrap(), interp::run(&ir, &feeds).unwrap());
        let wanted: Vec<ValueId> = (0..unfused.values.len())
            .map(|i| ValueId(i as u32))
            .filter(|&v| matches!(unfused.value(v).role, Role::ParamGrad(_)) || unfused.value(v).name == "loss")
            .collect();
        assert_eq!(wanted.len(), 4, "the loss and three parameter gradients");
        for v in wanted {
            let (pa, pb) = (a.get(v).unwrap(), b.get(v).unwrap());
            assert_eq!(pa, pb, "{}", unfused.value(v).name);
        }
        // The layer's output read by another node too: the ReLU stays apart.
        let mut tapped = mlp(true);
        let want = tapped.clone();
        assert!(fuse(&mut tapped, &Says(true, true)).is_empty(), "{}", tapped.dump());
        assert_eq!(tapped, want);
    }

    /// A dense block in miniature: h = relu(conv0(x)); cat = concat(h, conv1(h)) → flatten → loss. h
    /// has two readers, so its gradient sums conv1's input gradient and cat's slice of h.
    fn dense() -> Ir {
        let mut ir = Ir::default();
        let x = ir.add_value("x", &[2, 1, 2, 2], DType::F32, Role::Input);
        let l = ir.add_value("labels", &[2], DType::U32, Role::Labels);
        let w0 = ir.add_value("c0.weight", &[2, 1, 3, 3], DType::F32, Role::Param(0));
        let w1 = ir.add_value("c1.weight", &[1, 2, 3, 3], DType::F32, Role::Param(1));
        let conv = Op::Conv(ConvOp::Forward { stride: 1, pad: 1, relu: false });
        let c0 = ir.push("c0", conv.clone(), &[x, w0]).unwrap()[0];
        let h = ir.push("h", Op::Act(ActOp::Forward(Activation::Relu)), &[c0]).unwrap()[0];
        let c1 = ir.push("c1", conv, &[h, w1]).unwrap()[0];
        let cat = ir.push("cat", Op::Concat(ConcatOp::Forward), &[h, c1]).unwrap()[0];
        let f = ir.push("f", Op::View(ViewOp::Flatten), &[cat]).unwrap()[0];
        ir.push("loss", Op::Loss(LossOp::Forward(LossKind::CrossEntropy)), &[f, l]).unwrap();
        autodiff(&mut ir).unwrap();
        ir
    }

    #[test]
    fn slice_add_sums_a_concat_slice_into_the_other_gradient_and_computes_the_same() {
        use crate::ir::interp;
        let unfused = dense();
        let mut ir = unfused.clone();
        let done = fuse(&mut ir, &Says(false, false));
        assert_eq!(done, [("slice_add", "cat.dx0+h.grad_sum1".to_string())], "{}", ir.dump());
        assert_eq!(ir.nodes.len(), unfused.nodes.len() - 1);
        let fused = ir.nodes.iter().find(|n| n.name == "cat.dx0+h.grad_sum1").unwrap();
        assert!(matches!(fused.op, Op::Concat(ConcatOp::BackwardAdd(g)) if g.offset == 0 && g.c_part == 2));
        // It reads the whole's gradient and conv1's input gradient.
        let whole_grad = ir.nodes.iter().find(|n| n.name == "cat.dx1").unwrap().inputs[0];
        assert_eq!(fused.inputs[0], whole_grad);
        assert_eq!(ir.producer(fused.inputs[1]).map(|p| ir.nodes[p].name.as_str()), Some("c1.dx"));
        // Loss and both weight gradients as before (f64 interpreter, to rounding).
        let mut g = crate::rng::Rng::new(6);
        let x: Vec<f64> = (0..8).map(|_| g.uniform(-1.0, 1.0)).collect();
        let w0: Vec<f64> = (0..18).map(|_| g.uniform(-1.0, 1.0)).collect();
        let w1: Vec<f64> = (0..18).map(|_| g.uniform(-1.0, 1.0)).collect();
        let feeds = vec![(ValueId(0), x), (ValueId(1), vec![3.0, 7.0]), (ValueId(2), w0), (ValueId(3), w1)];
        let (a, b) = (interp::run(&unfused, &feeds).unwrap(), interp::run(&ir, &feeds).unwrap());
        let loss = unfused.nodes.iter().find(|n| n.name == "loss").unwrap().outputs[0];
        let grads = (0..unfused.values.len())
            .map(|i| ValueId(i as u32))
            .filter(|&v| matches!(unfused.value(v).role, Role::ParamGrad(_)));
        let mut checked = 0;
        for v in std::iter::once(loss).chain(grads) {
            let (pa, pb) = (a.get(v).unwrap(), b.get(v).unwrap());
            assert!(
                pa.iter().zip(pb).all(|(p, q)| (p - q).abs() < 1e-12),
                "{}: {pa:?} vs {pb:?}",
                unfused.value(v).name
            );
            checked += 1;
        }
        assert_eq!(checked, 3, "the loss and two weight gradients");
        // A three-term sum is left alone (its order is not that of a two-term add).
        let mut three = dense();
        let sum = three.nodes.iter().position(|n| n.name == "h.grad_sum1").unwrap();
        let extra = three.nodes[sum].inputs[0];
        three.nodes[sum].inputs.push(extra);
        assert!(fuse(&mut three, &Says(false, false)).is_empty(), "{}", three.dump());
    }

    #[test]
    fn bn_relu_fuses_a_training_batch_norm_and_its_relu_and_computes_the_same() {
        use crate::ir::{build, interp};
        use crate::model::{BatchNorm2d, Conv2d, LayerOp, Linear, ModelBuilder};
        let spec = ModelBuilder::new("bnrelu", [1, 6, 6], 3)
            .layer("conv", Conv2d::new(2, 3).bias(false))
            .layer("bn", BatchNorm2d::default())
            .layer("relu", Activation::Relu)
            .layer("flatten", LayerOp::Flatten)
            .layer("fc", Linear::new(3))
            .build()
            .unwrap();
        let f = build::forward(&spec, 4, true).unwrap();
        let mut unfused = f.ir.clone();
        autodiff(&mut unfused).unwrap();
        let mut ir = unfused.clone();
        // The conv's ReLU rule does not apply (a batch-norm reads the conv); bn_relu does, and
        // bn_relu_backward hands the ReLU's backward to the batch-norm's two backward nodes.
        let done = fuse(&mut ir, &Says(true, true));
        let want =
            [("bn_relu", "bn+relu"), ("bn_relu_backward", "relu.dx+bn.dw_db"), ("bn_relu_backward", "relu.dx+bn.dx")]
                .map(|(r, n)| (r, n.to_string()));
        assert_eq!(done, want, "{}", ir.dump());
        assert_eq!(ir.nodes.len(), unfused.nodes.len() - 2);
        let bn = ir.nodes.iter().find(|n| n.name == "bn+relu").unwrap();
        assert!(matches!(bn.op, Op::BatchNorm(BatchNormOp::Train { relu: true, .. })));
        assert!(ir.nodes.iter().all(|n| n.op != Op::Act(ActOp::Backward(Activation::Relu))));
        for n in ir.nodes.iter().filter(|n| n.name.starts_with("relu.dx+")) {
            assert_eq!(n.inputs.last(), Some(&bn.outputs[0]), "{} reads the fused output as its mask", n.name);
        }
        // Loss, every parameter's gradient and the running statistics as before (f64, to rounding).
        let mut r = crate::rng::Rng::new(4);
        let mut feeds =
            vec![(f.input, (0..144).map(|_| r.uniform(-1.0, 1.0)).collect()), (f.labels, vec![0.0, 2.0, 1.0, 1.0])];
        for v in (0..unfused.values.len()).map(|i| ValueId(i as u32)) {
            let val = unfused.value(v);
            if matches!(val.role, Role::Param(_) | Role::Buffer(_)) {
                feeds.push((v, (0..val.len()).map(|_| r.uniform(0.2, 1.0)).collect()));
            }
        }
        let (a, b) = (interp::run(&unfused, &feeds).unwrap(), interp::run(&ir, &feeds).unwrap());
        let mut compared = 0;
        for v in (0..unfused.values.len()).map(|i| ValueId(i as u32)) {
            if matches!(unfused.value(v).role, Role::ParamGrad(_)) || v == f.probs {
                let (pa, pb) = (a.get(v).unwrap(), b.get(v).unwrap());
                assert!(pa.iter().zip(pb).all(|(p, q)| (p - q).abs() < 1e-12), "{}", unfused.value(v).name);
                compared += 1;
            }
        }
        assert_eq!(compared, 6, "probabilities and the five parameters' gradients");
        // A second reader of the ReLU's backward result keeps that backward apart.
        let mut tapped = unfused.clone();
        let dz = tapped.nodes.iter().find(|n| n.op == Op::Act(ActOp::Backward(Activation::Relu))).unwrap().outputs[0];
        tapped.push("tap", Op::Add(AddOp::default()), &[dz, dz]).unwrap();
        let done = fuse(&mut tapped, &Says(true, true));
        assert_eq!(done, [("bn_relu", "bn+relu".to_string())], "{}", tapped.dump());
        // Evaluation graphs: with the fold it is conv_bn_fold + conv_relu; without, bn_relu.
        let mut eval = build::forward(&spec, 2, false).unwrap().ir;
        assert_eq!(fuse(&mut eval, &Says(false, false)), [("bn_relu", "bn+relu".to_string())]);
    }
}
