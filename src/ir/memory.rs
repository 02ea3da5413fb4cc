//! Buffer planning: every value a node computes gets a slot of a buffer allocated once at build time.
//! A value's life runs from the node that writes it to the last node that reads it (or any view of
//! it); `keep` values (what the caller reads after a run) live to the end. Walking the nodes in order,
//! the slots of values whose life has ended are handed out again, best fit by size. A node never
//! writes into a slot one of its own inputs uses.

use crate::ir::{Ir, Role, ValueId};
use crate::tensor::padded_bytes;

/// Which buffer each value uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Per value: its buffer (None for values bound from outside, views and values no node writes).
    pub slot: Vec<Option<usize>>,
    /// Byte size of each buffer.
    pub sizes: Vec<u64>,
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
    let mut plan = Plan { slot: vec![None; n], sizes: Vec::new(), requested: 0 };
    let mut live: Vec<(usize, usize)> = Vec::new(); // (value, slot)
    let mut free: Vec<usize> = Vec::new();
    for (i, node) in ir.nodes.iter().enumerate() {
        live.retain(|&(v, s)| {
            let ended = last[v] < i;
            if ended {
                free.push(s);
            }
            !ended
        });
        for &o in &node.outputs {
            if !planned(o) || def[o.0 as usize] != Some(i) || plan.slot[o.0 as usize].is_some() {
                continue;
            }
            let need = padded_bytes(ir.value(o).dtype.bytes(ir.value(o).len()));
            plan.requested += need;
            let best =
                free.iter().enumerate().filter(|(_, &s)| plan.sizes[s] >= need).min_by_key(|(_, &s)| plan.sizes[s]);
            let slot = match best.map(|(k, _)| k) {
                Some(k) => free.swap_remove(k),
                None => {
                    plan.sizes.push(need);
                    plan.sizes.len() - 1
                }
            };
            plan.slot[o.0 as usize] = Some(slot);
            live.push((o.0 as usize, slot));
        }
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
