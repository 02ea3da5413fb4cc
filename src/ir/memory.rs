//! Buffer planning: every value a node computes gets a slot of a buffer allocated once at build time.
//! A value's life runs from the node that writes it to the last node that reads it (or any view of
//! it); `keep` values (what the caller reads after a run) live to the end. Values whose lives do not
//! overlap share a buffer: largest first, each into the smallest buffer that is free for its whole
//! life ("greedy by size"), so small values fill the gaps large ones leave. A node never writes into a
//! buffer one of its own inputs uses (their lives meet at that node).

use crate::ir::{Ir, Role, ValueId};
use crate::tensor::padded_bytes;

/// Which buffer each value uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Per value: its buffer (None for values bound from outside, views and values no node writes).
    pub slot: Vec<Option<usize>>,
    /// Byte size of each buffer.
    pub sizes: Vec<u64>,
    /// The value each buffer was made for (its largest), to name it in labels and errors.
    pub owners: Vec<ValueId>,
    /// Bytes the planned values ask for in all (the sum of their sizes).
    pub requested: u64,
}

impl Plan {
    /// Bytes allocated for the buffers.
    pub fn allocated(&self) -> u64 {
        self.sizes.iter().sum()
    }
}

/// Plan the buffers of `ir`. With `keep_all`, no buffer is reused (every value stays readable).
pub fn plan(ir: &Ir, keep: &[ValueId], keep_all: bool) -> Plan {
    let n = ir.values.len();
    let planned = |v: ValueId| {
        let val = ir.value(v);
        val.role == Role::Temp && val.alias.is_none()
    };
    let mut def = vec![None; n];
    let mut last = vec![0usize; n];
    for (i, node) in ir.nodes.iter().enumerate() {
        for &o in &node.outputs {
            def[o.0 as usize] = Some(i);
            last[o.0 as usize] = last[o.0 as usize].max(i);
        }
        for &x in &node.inputs {
            let r = ir.root(x).0 as usize;
            last[r] = last[r].max(i);
        }
    }
    for &k in keep {
        last[ir.root(k).0 as usize] = usize::MAX;
    }
    if keep_all {
        last.fill(usize::MAX);
    }
    // Greedy by size: the largest values are placed first, each in the smallest buffer whose values
    // so far all live at other times (or a new one), so small values fill the gaps of large ones.
    let mut order: Vec<(u64, usize)> = (0..n)
        .filter(|&v| planned(ValueId(v as u32)) && def[v].is_some())
        .map(|v| (padded_bytes(ir.values[v].dtype.bytes(ir.values[v].len())), v))
        .collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut plan = Plan { slot: vec![None; n], sizes: Vec::new(), owners: Vec::new(), requested: 0 };
    let mut lives: Vec<Vec<(usize, usize)>> = Vec::new(); // per buffer: the (first, last) node of each value
    for (need, v) in order {
        let life = (def[v].unwrap_or(0), last[v].max(def[v].unwrap_or(0)));
        plan.requested += need;
        let free = |b: usize| lives[b].iter().all(|&(d, l)| l < life.0 || life.1 < d);
        let best = (0..plan.sizes.len()).filter(|&b| plan.sizes[b] >= need && free(b)).min_by_key(|&b| plan.sizes[b]);
        let b = best.unwrap_or_else(|| {
            plan.sizes.push(need);
            plan.owners.push(ValueId(v as u32));
            lives.push(Vec::new());
            plan.sizes.len() - 1
        });
        lives[b].push(life);
        plan.slot[v] = Some(b);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::Activation;
    use crate::ops::{ActOp, Op, ViewOp};
    use crate::tensor::DType;

    /// x → a → b → c → d (ReLUs of 16, 16, 16, 16 floats) and a flatten view of b read by d's node.
    fn chain() -> (Ir, Vec<ValueId>) {
        let mut ir = Ir::default();
        let x = ir.add_value("x", &[4, 4], DType::F32, Role::Input);
        let relu = || Op::Act(ActOp::Forward(Activation::Relu));
        let a = ir.push("a", relu(), &[x]).unwrap()[0];
        let b = ir.push("b", relu(), &[a]).unwrap()[0];
        let v = ir.push("v", Op::View(ViewOp::Flatten), &[b]).unwrap()[0];
        let c = ir.push("c", relu(), &[a]).unwrap()[0];
        let d = ir.push("d", relu(), &[v]).unwrap()[0];
        (ir, vec![x, a, b, v, c, d])
    }

    #[test]
    fn dead_values_give_their_buffers_to_later_ones() {
        let (ir, ids) = chain();
        let [x, a, b, v, c, d] = ids[..] else { unreachable!() };
        let p = plan(&ir, &[d], false);
        // a lives to c (node 3), b through its view to d (node 4): c cannot take either.
        let s = |v: ValueId| p.slot[v.0 as usize];
        assert_eq!((s(x), s(v)), (None, None), "inputs and views get no buffer of their own");
        assert!(s(a) != s(b) && s(c) != s(a) && s(c) != s(b));
        // d is written after a died (its last reader, c, ran before d's node): d reuses a's buffer.
        assert_eq!(s(d), s(a));
        assert_eq!(p.sizes.len(), 3);
        assert_eq!((p.requested, p.allocated()), (4 * 64, 3 * 64));
        // Nothing is shared when every value is kept.
        let all = plan(&ir, &[], true);
        assert_eq!(all.sizes.len(), 4);
    }

    #[test]
    fn live_ranges_never_overlap_in_one_buffer() {
        let (ir, _) = chain();
        let p = plan(&ir, &[], false);
        let range = |v: usize| {
            let def = ir.nodes.iter().position(|n| n.outputs.iter().any(|o| o.0 as usize == v)).unwrap();
            let last = (0..ir.nodes.len())
                .filter(|&i| ir.nodes[i].inputs.iter().any(|&x| ir.root(x).0 as usize == v))
                .max()
                .unwrap_or(def);
            (def, last)
        };
        for a in 0..ir.values.len() {
            for b in a + 1..ir.values.len() {
                if p.slot[a].is_some() && p.slot[a] == p.slot[b] {
                    let ((d1, l1), (d2, l2)) = (range(a), range(b));
                    assert!(l1 < d2 || l2 < d1, "values {a} and {b} share a buffer while both live");
                }
            }
        }
    }
}
