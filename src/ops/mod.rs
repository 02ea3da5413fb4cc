//! The ops of the graph, one file per family, each keeping its rules together: shape inference, the
//! backward rule (which emits backward nodes whose inputs are exactly what the op saves), lowering to
//! prepared launches (the fast-or-plain kernel choice), and the CPU reference evaluation.

pub mod activation;
pub mod add;
pub mod batchnorm;
pub mod concat;
pub mod conv;
pub mod dropout;
pub mod linear;
pub mod loss;
pub mod pool;
pub mod view;

use crate::context::Context;
use crate::error::{shape_err, Result};
use crate::ir::{Ir, Node, Role, ValueId};
use crate::kernels::Launch;
use crate::tensor::{DType, Tensor};

pub use activation::ActOp;
pub use add::AddOp;
pub use batchnorm::BatchNormOp;
pub use concat::ConcatOp;
pub use conv::ConvOp;
pub use dropout::DropoutOp;
pub use linear::LinearOp;
pub use loss::LossOp;
pub use pool::PoolOp;
pub use view::ViewOp;

/// An input's shape and dtype, as shape inference sees it.
pub type Meta<'a> = (&'a [usize], DType);
/// An output's shape and dtype.
pub type OutMeta = (Vec<usize>, DType);

/// One family's rules.
pub trait Rules {
    /// The op's name in errors and dumps (the kernel family's name).
    fn name(&self) -> &'static str;
    /// Output shapes and dtypes from the inputs', or a shape error stating both.
    fn infer(&self, ins: &[Meta<'_>]) -> Result<Vec<OutMeta>>;
    /// Emit the nodes computing the gradients of the inputs `g` asks for.
    fn backward(&self, g: &mut Grad<'_>) -> Result<()>;
    /// Prepared launches reading `ins` and writing `outs`.
    fn lower(&self, ctx: &Context, label: &str, ins: &[&Tensor], outs: &[&Tensor]) -> Result<Vec<Launch>>;
    /// The CPU reference: outputs from inputs (integers, e.g. labels and argmax, carried as f64).
    fn eval(&self, ins: &[&[f64]], shapes: &[&[usize]]) -> Result<Vec<Vec<f64>>>;
    /// Index of the input whose memory output 0 views (no data moves), if any.
    fn view_of(&self) -> Option<usize> {
        None
    }
    /// The name of output `i > 0` (appended to the node's name).
    fn output_name(&self, i: usize) -> String {
        format!("out{i}")
    }
    /// Inputs the op overwrites in place (batch-norm's running statistics): [`Rules::eval`] returns
    /// their new values after the outputs.
    fn updates(&self) -> &'static [usize] {
        &[]
    }
}

/// Every op, by family.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Conv(ConvOp),
    Linear(LinearOp),
    Act(ActOp),
    Pool(PoolOp),
    View(ViewOp),
    Add(AddOp),
    Concat(ConcatOp),
    BatchNorm(BatchNormOp),
    Dropout(DropoutOp),
    Loss(LossOp),
}

impl Op {
    fn rules(&self) -> &dyn Rules {
        match self {
            Op::Conv(o) => o,
            Op::Linear(o) => o,
            Op::Act(o) => o,
            Op::Pool(o) => o,
            Op::View(o) => o,
            Op::Add(o) => o,
            Op::Concat(o) => o,
            Op::BatchNorm(o) => o,
            Op::Dropout(o) => o,
            Op::Loss(o) => o,
        }
    }
    pub fn name(&self) -> &'static str {
        self.rules().name()
    }
    pub fn infer(&self, ins: &[Meta<'_>]) -> Result<Vec<OutMeta>> {
        self.rules().infer(ins)
    }
    pub fn backward(&self, g: &mut Grad<'_>) -> Result<()> {
        self.rules().backward(g)
    }
    pub fn lower(&self, ctx: &Context, label: &str, ins: &[&Tensor], outs: &[&Tensor]) -> Result<Vec<Launch>> {
        self.rules().lower(ctx, label, ins, outs)
    }
    pub fn eval(&self, ins: &[&[f64]], shapes: &[&[usize]]) -> Result<Vec<Vec<f64>>> {
        self.rules().eval(ins, shapes)
    }
    pub fn view_of(&self) -> Option<usize> {
        self.rules().view_of()
    }
    pub fn output_name(&self, i: usize) -> String {
        self.rules().output_name(i)
    }
    pub fn updates(&self) -> &'static [usize] {
        self.rules().updates()
    }
}

/// What a backward rule works with: the forward node, its outputs' gradients, which inputs need one,
/// and the graph to emit into. Gradients set with [`Grad::set`] are summed by autodiff where a value
/// has several consumers.
pub struct Grad<'a> {
    pub ir: &'a mut Ir,
    pub node: &'a Node,
    /// The gradient of each output (None: nothing downstream needs it).
    pub dys: Vec<Option<ValueId>>,
    /// Whether each input needs a gradient.
    pub need: Vec<bool>,
    /// The gradient of each input, as set by the rule.
    pub dxs: Vec<Option<ValueId>>,
}

impl Grad<'_> {
    /// The gradient of output 0.
    pub fn dy(&self) -> Option<ValueId> {
        self.dys.first().copied().flatten()
    }
    pub fn needs(&self, input: usize) -> bool {
        self.need.get(input).copied().unwrap_or(false)
    }
    /// Input `i` of the forward node.
    pub fn input(&self, i: usize) -> ValueId {
        self.node.inputs[i]
    }
    /// Output `i` of the forward node.
    pub fn output(&self, i: usize) -> ValueId {
        self.node.outputs[i]
    }
    /// Append a backward node named `<node>.<suffix>` with one output, and return that output.
    pub fn emit(&mut self, suffix: &str, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        let outs = self.emit_all(suffix, op, inputs)?;
        let name = || format!("{}.{suffix}", self.node.name);
        outs.first().copied().ok_or_else(|| shape_err(&name(), "a gradient node without an output"))
    }
    /// Append a backward node named `<node>.<suffix>` and return all its outputs.
    pub fn emit_all(&mut self, suffix: &str, op: Op, inputs: &[ValueId]) -> Result<Vec<ValueId>> {
        let name = format!("{}.{suffix}", self.node.name);
        let outs = self.ir.push(&name, op, inputs)?;
        if let Some(n) = self.ir.nodes.last_mut() {
            n.backward = true;
        }
        Ok(outs)
    }
    /// Input `i`'s gradient is `v`.
    pub fn set(&mut self, i: usize, v: ValueId) {
        self.dxs[i] = Some(v);
        debug_assert_ne!(self.ir.value(v).role, Role::Input);
    }
}

/// Check the number of inputs an op received.
pub(crate) fn arity(op: &str, ins: usize, want: &[usize]) -> Result<()> {
    if !want.contains(&ins) {
        return Err(shape_err(op, format!("takes {want:?} inputs, got {ins}")));
    }
    Ok(())
}

/// Check an input's rank (`what` names it in the error).
pub(crate) fn rank(op: &str, what: &str, shape: &[usize], r: usize, layout: &str) -> Result<()> {
    if shape.len() != r {
        return Err(shape_err(op, format!("expects {what} of shape {layout}, got {shape:?}")));
    }
    Ok(())
}

/// The bias input of a conv or linear node (`ins[2]`), or, for a layer without bias, a zero tensor of
/// `len` made now (at build time) that `slot` keeps alive while the launch is prepared.
pub(crate) fn bias_or_zeros<'a>(
    ctx: &Context,
    label: &str,
    ins: &[&'a Tensor],
    len: usize,
    slot: &'a mut Option<Tensor>,
) -> Result<&'a Tensor> {
    match ins.get(2) {
        Some(b) => Ok(*b),
        None => Ok(slot.insert(Tensor::zeros(ctx, &format!("{label}.no_bias"), &[len], DType::F32)?)),
    }
}
