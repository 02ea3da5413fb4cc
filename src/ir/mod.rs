//! The op graph: values (shape, dtype, role, optional alias for views) and nodes (op, inputs, outputs,
//! name) with typed ids, in topological order. A DAG: a value may have several consumers and a node
//! several inputs.
//!
//! A model becomes a graph in passes, each its own small function with its own tests:
//!
//! ```text
//! ModelSpec ─▶ build::forward ─▶ autodiff ─▶ fuse ─▶ memory::plan ─▶ graph::Graph (lowered launches)
//!              (shapes inferred)  (training)  (rewrite  (buffers)
//!                                             rules)
//! ```
//!
//! Each op's rules (shape inference, backward, lowering, CPU reference) live together in
//! [`crate::ops`]; [`interp`] runs a graph on the CPU with the reference kernels.

pub mod autodiff;
pub mod build;
pub mod fuse;
pub mod interp;
pub mod memory;

use crate::error::{shape_err, Error, Result};
use crate::ops::Op;
use crate::tensor::DType;

/// A value of the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// A node of the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

/// Where a value's memory comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The image batch (written by the gather launch).
    Input,
    /// The class labels (u32).
    Labels,
    /// The `[seed, step]` pair (u32) the trainer writes before each step (dropout's masks).
    Step,
    /// Parameter `i` of the model (a view of the parameter arena).
    Param(usize),
    /// The gradient of parameter `i` (a view of the gradient arena).
    ParamGrad(usize),
    /// Buffer `i` of the model (batch-norm's running statistics; a view of the buffer arena, which
    /// the optimizer does not touch).
    Buffer(usize),
    /// Computed by a node; its buffer is planned ([`memory::plan`]).
    Temp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub role: Role,
    /// This value is a view of another's memory (e.g. a flatten): the same bytes, another shape.
    pub alias: Option<ValueId>,
}

impl Value {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The launch label: the layer name for forward nodes (`conv1`), with the gradient's name for
    /// backward ones (`conv1.dw`, `conv1.dx`), both joined by `+` once fused (`conv1+relu1`).
    pub name: String,
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
    /// Emitted by [`autodiff`].
    pub backward: bool,
}

/// Values and nodes, nodes in topological (and recording) order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ir {
    pub values: Vec<Value>,
    pub nodes: Vec<Node>,
}

/// Prefix an error with the node it came from, so a build error names the layer and the op.
pub fn in_node(name: &str, e: Error) -> Error {
    match e {
        Error::Shape { op, detail } => Error::Shape { op: format!("{name} ({op})"), detail },
        Error::Limit { op, what, value, limit } => Error::Limit { op: format!("{name} ({op})"), what, value, limit },
        e => e,
    }
}

impl Ir {
    pub fn value(&self, v: ValueId) -> &Value {
        &self.values[v.0 as usize]
    }

    pub fn value_mut(&mut self, v: ValueId) -> &mut Value {
        &mut self.values[v.0 as usize]
    }

    /// A value no node produces (input, labels, parameters).
    pub fn add_value(&mut self, name: &str, shape: &[usize], dtype: DType, role: Role) -> ValueId {
        self.values.push(Value { name: name.to_string(), shape: shape.to_vec(), dtype, role, alias: None });
        ValueId(self.values.len() as u32 - 1)
    }

    /// Append a node: its op infers the outputs' shapes from the inputs' (or fails naming the node).
    pub fn push(&mut self, name: &str, op: Op, inputs: &[ValueId]) -> Result<Vec<ValueId>> {
        if let Some(v) = inputs.iter().find(|v| v.0 as usize >= self.values.len()) {
            return Err(shape_err(name, format!("input {v:?} is not a value of this graph")));
        }
        let shapes: Vec<(&[usize], DType)> =
            inputs.iter().map(|&v| (self.value(v).shape.as_slice(), self.value(v).dtype)).collect();
        let outs = op.infer(&shapes).map_err(|e| in_node(name, e))?;
        let view = op.view_of();
        let mut outputs = Vec::new();
        for (i, (shape, dtype)) in outs.into_iter().enumerate() {
            let vname = if i == 0 { name.to_string() } else { format!("{name}.{}", op.output_name(i)) };
            let id = self.add_value(&vname, &shape, dtype, Role::Temp);
            self.value_mut(id).alias = view.filter(|_| i == 0).map(|k| self.root(inputs[k]));
            outputs.push(id);
        }
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs: inputs.to_vec(),
            outputs: outputs.clone(),
            backward: false,
        });
        Ok(outputs)
    }

    /// The value whose memory `v` uses (following aliases).
    pub fn root(&self, mut v: ValueId) -> ValueId {
        while let Some(a) = self.value(v).alias {
            v = a;
        }
        v
    }

    /// The node producing `v`, if any.
    pub fn producer(&self, v: ValueId) -> Option<usize> {
        self.nodes.iter().position(|n| n.outputs.contains(&v))
    }

    /// Nodes reading `v`'s memory (through any alias of it), in order.
    pub fn readers(&self, v: ValueId) -> Vec<usize> {
        let root = self.root(v);
        (0..self.nodes.len()).filter(|&i| self.nodes[i].inputs.iter().any(|&x| self.root(x) == root)).collect()
    }

    /// The ids of the parameter values, by parameter index.
    pub fn params(&self) -> Vec<ValueId> {
        let mut ps: Vec<(usize, ValueId)> = (0..self.values.len())
            .filter_map(|i| match self.values[i].role {
                Role::Param(k) => Some((k, ValueId(i as u32))),
                _ => None,
            })
            .collect();
        ps.sort();
        ps.into_iter().map(|(_, v)| v).collect()
    }

    /// A one-line-per-node listing (for tests and `RUST_LOG=debug`).
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            let names = |vs: &[ValueId]| vs.iter().map(|&v| self.value(v).name.clone()).collect::<Vec<_>>().join(", ");
            s += &format!("{}: {:?}({}) -> {}\n", n.name, n.op, names(&n.inputs), names(&n.outputs));
        }
        s
    }
}
