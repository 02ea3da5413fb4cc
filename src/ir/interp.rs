//! The CPU reference of a whole graph: each node evaluated in order by its op's reference
//! ([`crate::ops::Rules::eval`], the plain loops of [`crate::reference`]) in f64. The GPU trainer is
//! tested against this, as llm.c's C trainer is the spec of its CUDA one.

use crate::error::{shape_err, Result};
use crate::ir::{in_node, Ir, ValueId};

/// Values of a graph after a run (views resolved to their memory's value).
pub struct Values {
    data: Vec<Option<Vec<f64>>>,
    roots: Vec<ValueId>,
}

impl Values {
    /// The value `v` (None when no node computed it and it was not fed).
    pub fn get(&self, v: ValueId) -> Option<&[f64]> {
        self.data[self.roots[v.0 as usize].0 as usize].as_deref()
    }
}

/// Run every node of `ir` on the CPU from `feeds` (input, labels as f64 integers, parameters, buffers).
/// Buffers a node updates in place (batch-norm's running statistics) hold their new values after.
pub fn run(ir: &Ir, feeds: &[(ValueId, Vec<f64>)]) -> Result<Values> {
    let roots: Vec<ValueId> = (0..ir.values.len()).map(|i| ir.root(ValueId(i as u32))).collect();
    let mut data: Vec<Option<Vec<f64>>> = vec![None; ir.values.len()];
    for (v, d) in feeds {
        if d.len() != ir.value(*v).len() {
            return Err(shape_err(&ir.value(*v).name, format!("fed {} values for {:?}", d.len(), ir.value(*v).shape)));
        }
        data[v.0 as usize] = Some(d.clone());
    }
    for node in &ir.nodes {
        let mut ins: Vec<&[f64]> = Vec::new();
        for &x in &node.inputs {
            let d = data[roots[x.0 as usize].0 as usize].as_deref();
            ins.push(d.ok_or_else(|| shape_err(&node.name, format!("input {} has no value", ir.value(x).name)))?);
        }
        let shapes: Vec<&[usize]> = node.inputs.iter().map(|&x| ir.value(x).shape.as_slice()).collect();
        let mut outs = node.op.eval(&ins, &shapes).map_err(|e| in_node(&node.name, e))?;
        // Inputs the op updates in place (their new values follow the outputs).
        let updated = outs.split_off(node.outputs.len().min(outs.len()));
        for (&i, d) in node.op.updates().iter().zip(updated) {
            data[roots[node.inputs[i].0 as usize].0 as usize] = Some(d);
        }
        for (&o, d) in node.outputs.iter().zip(outs) {
            if ir.value(o).alias.is_none() {
                data[o.0 as usize] = Some(d);
            }
        }
    }
    Ok(Values { data, roots })
}
