//! Rewrite rules that merge two nodes into one launch where the kernels take the shape:
//!
//! - `conv_relu`: a conv whose output only a ReLU reads computes the ReLU itself (the conv then writes
//!   the ReLU's output value; its own becomes a view of it).
//! - `pool_relu_mask`: the ReLU backward after a max-pool backward (when the pool read the ReLU's
//!   output) is applied by the pool's backward, which then reads the pool's output.
//!
//! Each rule asks a [`KernelOracle`] whether the shape is taken, so the graph never holds a node the
//! kernels cannot run.

use crate::ir::{Ir, ValueId};
use crate::kernels::activation::Activation;
use crate::ops::{ActOp, ConvOp, Op, PoolOp};
use crate::shape::{Conv2dGeom, Pool2dGeom};

/// What the fusion rules ask the kernels.
pub trait KernelOracle {
    /// A conv with its ReLU in the same kernel.
    fn conv_relu(&self, g: &Conv2dGeom) -> bool;
    /// A max-pool backward applying the mask of the ReLU before the pool.
    fn pool_relu_mask(&self, g: &Pool2dGeom) -> bool;
}

/// Which rules fired, in order: (rule, node name after the rewrite).
pub type Rewrites = Vec<(&'static str, String)>;

/// Apply every rule wherever it fires.
pub fn fuse(ir: &mut Ir, oracle: &dyn KernelOracle) -> Rewrites {
    let mut done = Vec::new();
    conv_relu(ir, oracle, &mut done);
    pool_relu_mask(ir, oracle, &mut done);
    done
}

/// The node reading `v` when it is the only reader (through aliases too).
fn only_reader(ir: &Ir, v: ValueId) -> Option<usize> {
    match ir.readers(v)[..] {
        [r] => Some(r),
        _ => None,
    }
}

fn conv_relu(ir: &mut Ir, oracle: &dyn KernelOracle, done: &mut Rewrites) {
    let mut i = 0;
    while i < ir.nodes.len() {
        let n = &ir.nodes[i];
        let fire = match (&n.op, n.inputs.as_slice()) {
            (Op::Conv(ConvOp::Forward { stride, pad, relu: false }), [x, w, ..]) => {
                let g = crate::ops::conv::geom(&ir.value(*x).shape, &ir.value(*w).shape, *stride, *pad);
                only_reader(ir, n.outputs[0])
                    .filter(|&r| ir.nodes[r].op == Op::Act(ActOp::Forward(Activation::Relu)))
                    .filter(|_| oracle.conv_relu(&g))
            }
            _ => None,
        };
        if let Some(r) = fire {
            let relu = ir.nodes.remove(r);
            let (old, new) = (ir.nodes[i].outputs[0], relu.outputs[0]);
            ir.value_mut(old).alias = Some(new);
            let conv = &mut ir.nodes[i];
            conv.outputs[0] = new;
            conv.name = format!("{}+{}", conv.name, relu.name);
            if let Op::Conv(ConvOp::Forward { relu, .. }) = &mut conv.op {
                *relu = true;
            }
            done.push(("conv_relu", conv.name.clone()));
        }
        i += 1;
    }
}

/// Whether an op's output is a ReLU's (a ReLU, or a conv with its ReLU fused).
fn applies_relu(op: &Op) -> bool {
    matches!(op, Op::Act(ActOp::Forward(Activation::Relu)) | Op::Conv(ConvOp::Forward { relu: true, .. }))
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
            r = ir.push("t", Op::Add(crate::ops::AddOp), &[r, c]).unwrap()[0];
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
}
