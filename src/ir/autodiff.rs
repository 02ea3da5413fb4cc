//! Reverse-mode differentiation: walk the forward nodes from the loss back, asking each op's backward
//! rule for its inputs' gradients. A value read by several nodes receives one gradient from each; they
//! are summed by `add` nodes of their own, in the order the consumers were visited (deterministic).
//! Parameter gradients end up with [`Role::ParamGrad`], i.e. in the gradient arena.

use std::collections::BTreeMap;

use crate::error::{shape_err, Result};
use crate::ir::{in_node, Ir, Role, ValueId};
use crate::kernels::elementwise::MAX_TERMS;
use crate::ops::{AddOp, Grad, LossOp, Op};

/// Append the backward graph of `ir` (whose loss node is the last `Loss` forward node).
pub fn autodiff(ir: &mut Ir) -> Result<()> {
    autodiff_except(ir, &[])
}

/// [`autodiff`] for the parameters not `frozen` (one flag per parameter index; missing flags are
/// false): a frozen parameter gets no gradient, and nodes that only lead to frozen parameters and the
/// input are not differentiated at all (fine-tuning a head costs only the head's backward).
pub fn autodiff_except(ir: &mut Ir, frozen: &[bool]) -> Result<()> {
    let forward = ir.nodes.len();
    let root = (0..forward)
        .rev()
        .find(|&i| matches!(ir.nodes[i].op, Op::Loss(LossOp::Forward(_))))
        .ok_or_else(|| shape_err("autodiff", "the graph has no loss"))?;
    // Which values depend on a parameter (and so need a gradient).
    let mut need = vec![false; ir.values.len()];
    for (i, v) in ir.values.iter().enumerate() {
        need[i] = matches!(v.role, Role::Param(k) if !frozen.get(k).copied().unwrap_or(false));
    }
    for n in &ir.nodes[..forward] {
        if n.inputs.iter().any(|v| need[v.0 as usize]) {
            for o in &n.outputs {
                need[o.0 as usize] = true;
            }
        }
    }
    let mut pending: BTreeMap<ValueId, Vec<ValueId>> = BTreeMap::new();
    for i in (0..=root).rev() {
        let node = ir.nodes[i].clone();
        let dys: Vec<Option<ValueId>> =
            node.outputs.iter().map(|&o| sum(ir, o, pending.remove(&o).unwrap_or_default())).collect::<Result<_>>()?;
        if i != root && dys.iter().all(Option::is_none) {
            continue;
        }
        let need_in: Vec<bool> = node.inputs.iter().map(|v| need[v.0 as usize]).collect();
        if !need_in.contains(&true) {
            continue;
        }
        let mut g = Grad { ir, node: &node, dys, need: need_in, dxs: vec![None; node.inputs.len()] };
        node.op.backward(&mut g).map_err(|e| in_node(&node.name, e))?;
        for (&x, dx) in node.inputs.iter().zip(g.dxs) {
            if let Some(dx) = dx {
                pending.entry(x).or_default().push(dx);
            }
        }
    }
    for p in ir.params() {
        let Role::Param(k) = ir.value(p).role else { continue };
        if frozen.get(k).copied().unwrap_or(false) {
            // (A batch-norm computes its weight's and bias's sums for its input gradient anyway:
            // they stay temporaries, not gradients.)
            pending.remove(&p);
            continue;
        }
        if let Some(g) = sum(ir, p, pending.remove(&p).unwrap_or_default())? {
            let name = format!("d.{}", ir.value(p).name);
            let v = ir.value_mut(g);
            if v.alias.is_some() || v.role != Role::Temp {
                return Err(shape_err(&v.name.clone(), "a parameter's gradient must be computed by a node of its own"));
            }
            v.role = Role::ParamGrad(k);
            v.name = name;
        }
    }
    Ok(())
}

/// The gradient of `v` from its consumers' contributions: none, the one, or their sum in order, up to
/// [`MAX_TERMS`] terms a node (`((p0 + p1) + p2) + p3`, then that and the next three: the sums a
/// chain of two-term adds makes, in fewer passes).
fn sum(ir: &mut Ir, v: ValueId, parts: Vec<ValueId>) -> Result<Option<ValueId>> {
    let mut it = parts.into_iter();
    let Some(mut acc) = it.next() else { return Ok(None) };
    let rest: Vec<ValueId> = it.collect();
    for (k, terms) in rest.chunks(MAX_TERMS - 1).enumerate() {
        let name = format!("{}.grad_sum{}", ir.value(v).name, k + 1);
        let ins: Vec<ValueId> = std::iter::once(acc).chain(terms.iter().copied()).collect();
        acc = ir.push(&name, Op::Add(AddOp::default()), &ins)?[0];
        if let Some(n) = ir.nodes.last_mut() {
            n.backward = true;
        }
    }
    Ok(Some(acc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Node;
    use crate::kernels::activation::Activation;
    use crate::kernels::loss::LossKind;
    use crate::ops::{ActOp, LinearOp, ViewOp};
    use crate::tensor::DType;

    /// x [2,3] → fc (w [4,3]) → h; relu(h) → r; r + h → s; flatten(s) → loss. `h` has two consumers.
    fn fan_out() -> Ir {
        let mut ir = Ir::default();
        let x = ir.add_value("x", &[2, 3], DType::F32, Role::Input);
        let l = ir.add_value("labels", &[2], DType::U32, Role::Labels);
        let w = ir.add_value("fc.weight", &[4, 3], DType::F32, Role::Param(0));
        let h = ir.push("fc", Op::Linear(LinearOp::Forward { relu: false }), &[x, w]).unwrap()[0];
        let r = ir.push("relu", Op::Act(ActOp::Forward(Activation::Relu)), &[h]).unwrap()[0];
        let s = ir.push("add", Op::Add(AddOp::default()), &[r, h]).unwrap()[0];
        let f = ir.push("flat", Op::View(ViewOp::Flatten), &[s]).unwrap()[0];
        ir.push("loss", Op::Loss(LossOp::Forward(LossKind::CrossEntropy)), &[f, l]).unwrap();
        ir
    }

    #[test]
    fn a_value_with_five_consumers_gets_a_four_term_sum_then_a_two_term_one() {
        // x → fc → h; h feeds five ReLUs whose outputs are added pairwise into one loss.
        let mut ir = Ir::default();
        let x = ir.add_value("x", &[2, 3], DType::F32, Role::Input);
        let l = ir.add_value("labels", &[2], DType::U32, Role::Labels);
        let w = ir.add_value("fc.weight", &[4, 3], DType::F32, Role::Param(0));
        let h = ir.push("fc", Op::Linear(LinearOp::Forward { relu: false }), &[x, w]).unwrap()[0];
        let relus: Vec<ValueId> = (0..5)
            .map(|i| ir.push(&format!("relu{i}"), Op::Act(ActOp::Forward(Activation::Relu)), &[h]).unwrap()[0])
            .collect();
        let mut s = relus[0];
        for (i, &r) in relus.iter().enumerate().skip(1) {
            s = ir.push(&format!("add{i}"), Op::Add(AddOp::default()), &[s, r]).unwrap()[0];
        }
        let f = ir.push("flat", Op::View(ViewOp::Flatten), &[s]).unwrap()[0];
        ir.push("loss", Op::Loss(LossOp::Forward(LossKind::CrossEntropy)), &[f, l]).unwrap();
        autodiff(&mut ir).unwrap();
        let sums: Vec<&Node> = ir.nodes.iter().filter(|n| n.name.starts_with("fc.grad_sum")).collect();
        assert_eq!(sums.len(), 2, "{}", ir.dump());
        assert_eq!((sums[0].name.as_str(), sums[0].inputs.len()), ("fc.grad_sum1", 4));
        assert_eq!((sums[1].name.as_str(), sums[1].inputs.len()), ("fc.grad_sum2", 2));
        // The second adds the first's sum and the fifth part: the order of a chain of two-term adds.
        assert_eq!(sums[1].inputs[0], sums[0].outputs[0]);
    }

    #[test]
    fn a_value_with_two_consumers_gets_one_sum_node() {
        let mut ir = fan_out();
        autodiff(&mut ir).unwrap();
        let names: Vec<&str> = ir.nodes.iter().filter(|n| n.backward).map(|n| n.name.as_str()).collect();
        // loss → flatten's reshape → add passes dy to both inputs → relu.dx → h's two parts summed → fc.dw.
        assert_eq!(names, ["loss.backward", "flat.dx", "relu.dx", "fc.grad_sum1", "fc.dw"], "{}", ir.dump());
        let sum = ir.nodes.iter().find(|n| n.name == "fc.grad_sum1").unwrap();
        // In visiting order: the add's contribution (its dy) first, then the ReLU's.
        let relu_dx = ir.nodes.iter().find(|n| n.name == "relu.dx").unwrap().outputs[0];
        assert_eq!(ir.value(sum.inputs[1]).name, ir.value(relu_dx).name);
        let dw = ir.nodes.last().unwrap().outputs[0];
        assert_eq!(ir.value(dw).role, Role::ParamGrad(0));
        assert_eq!(ir.value(dw).shape, [4, 3]);
    }

    #[test]
    fn the_data_gets_no_gradient_and_a_graph_without_loss_is_an_error() {
        let mut ir = fan_out();
        autodiff(&mut ir).unwrap();
        assert!(!ir.nodes.iter().any(|n| n.name == "fc.dx"), "{}", ir.dump());
        let mut no_loss = Ir::default();
        let x = no_loss.add_value("x", &[2, 3], DType::F32, Role::Input);
        no_loss.push("relu", Op::Act(ActOp::Forward(Activation::Relu)), &[x]).unwrap();
        assert!(autodiff(&mut no_loss).is_err());
    }
}
