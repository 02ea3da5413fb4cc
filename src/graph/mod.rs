//! The graph executor: a model's graph built once for a batch size by the passes of [`crate::ir`]
//! (forward with shapes inferred, autodiff, fusion, buffer planning), then lowered here: every buffer,
//! pipeline, bind group and params buffer created. Running a step only records the prepared launches
//! into one pass.

use crate::context::{Context, KernelSet};
use crate::error::{shape_err, Result};
use crate::ir::fuse::{fuse, KernelOracle, Rewrites};
use crate::ir::{autodiff::autodiff_except, build, in_node, memory, Ir, Role, ValueId};
use crate::kernels::reduce::{correct_accumulate, sum_accumulate};
use crate::kernels::Launch;
use crate::model::ModelSpec;
use crate::ops::{Op, ViewOp};
use crate::shape::{Conv2dGeom, LossGeom, Pool2dGeom};
use crate::tensor::{DType, Tensor};

mod state;

pub use state::{Arena, Metrics, Params};

/// What the fusion rules ask: the fast kernel set is on and the fast kernel takes the shape.
struct Kernels<'a>(&'a Context);

impl KernelOracle for Kernels<'_> {
    fn conv_relu(&self, g: &Conv2dGeom) -> bool {
        self.0.kernels == KernelSet::Fast && crate::kernels::conv_fast::conv2d_forward_fast_takes(g, &self.0.budget())
    }
    fn pool_relu_mask(&self, g: &Pool2dGeom) -> bool {
        self.0.kernels == KernelSet::Fast && crate::kernels::pool::tiles(g)
    }
    fn conv_bn_fold(&self) -> bool {
        self.0.kernels == KernelSet::Fast
    }
    fn linear_relu(&self) -> bool {
        self.0.kernels == KernelSet::Fast
    }
}

/// A model built for one batch size: input, activations, and the prepared forward, loss, metric and
/// backward launches.
pub struct Graph {
    pub batch: usize,
    /// `[batch, c, h, w]` input (written by a gather launch).
    pub x: Tensor,
    /// `[batch]` class labels (u32).
    pub labels: Tensor,
    pub logits: Tensor,
    pub probs: Tensor,
    /// `[batch]` per-sample losses.
    pub loss: Tensor,
    /// The u32 `[seed, step]` pair dropout draws its masks from, when a training graph has dropout: the
    /// trainer writes it before each step.
    pub step: Option<Tensor>,
    /// Each layer's name and output, in layer order (views such as flatten left out). With fused
    /// kernels a conv or fully connected layer and the ReLU after it share one output (post-ReLU);
    /// build on a context with [`crate::KernelSet::Plain`] to see each layer's own output. A training
    /// graph reuses the buffers of values once no later node reads them, so read these after a
    /// forward-only graph's run.
    pub outputs: Vec<(String, Tensor)>,
    /// The graph after every pass, as lowered.
    pub ir: Ir,
    /// The fusion rules that fired.
    pub rewrites: Rewrites,
    forward: Vec<Launch>,
    metrics: Vec<Launch>,
    backward: Vec<Launch>,
    /// Buffers of the values nodes compute: bytes allocated, and bytes the values asked for (the
    /// difference is what reusing dead values' buffers saved).
    pub memory_bytes: (u64, u64),
}

impl Graph {
    /// Build forward (and, when `train`, backward) for `batch` samples.
    pub fn build(
        ctx: &Context,
        spec: &ModelSpec,
        params: &Params,
        metrics: &Metrics,
        batch: usize,
        train: bool,
    ) -> Result<Graph> {
        Graph::build_frozen(ctx, spec, params, metrics, batch, train, &[])
    }

    /// [`Graph::build`] whose backward leaves out the `frozen` parameters (one flag per parameter):
    /// no gradient for them, and no backward at all for the part of the graph that only leads to them.
    pub fn build_frozen(
        ctx: &Context,
        spec: &ModelSpec,
        params: &Params,
        metrics: &Metrics,
        batch: usize,
        train: bool,
        frozen: &[bool],
    ) -> Result<Graph> {
        let f = build::forward(spec, batch, train)?;
        if f.params != params.specs {
            return Err(shape_err("graph", "the parameters were made for another model"));
        }
        let mut ir = f.ir;
        if train {
            autodiff_except(&mut ir, frozen)?;
        }
        let rewrites = fuse(&mut ir, &Kernels(ctx));
        log::debug!("{} at batch {batch} ({}):\n{}", spec.name, if train { "training" } else { "forward" }, ir.dump());
        let plan = memory::plan(&ir, &[f.logits, f.loss, f.probs], !train);
        let memory = Memory::new(ctx, &ir, &plan, params, f.input, f.step)?;
        let (forward, backward) = lower(ctx, &ir, &memory)?;
        let (x, labels, step) = (memory.x.clone(), memory.labels.clone(), memory.step.clone());
        let get = |v: ValueId| memory.tensor(&ir, v);
        let (logits, loss, probs) = (get(f.logits)?, get(f.loss)?, get(f.probs)?);
        let lg = LossGeom { n: batch, classes: spec.classes };
        let metrics_launches = vec![
            sum_accumulate(ctx, "metrics.loss", &loss, &metrics.loss_sum)?,
            correct_accumulate(ctx, "metrics.correct", &lg, &logits, &labels, &metrics.correct)?,
        ];
        let outputs = f
            .layers
            .iter()
            .filter(|(_, v)| !is_view(&ir, *v))
            .map(|(name, v)| Ok((name.clone(), get(*v)?)))
            .collect::<Result<Vec<_>>>()?;
        ctx.check_device_error()?;
        let memory_bytes = (plan.allocated(), plan.requested);
        Ok(Graph {
            batch,
            x,
            labels,
            logits,
            probs,
            loss,
            step,
            outputs,
            ir,
            rewrites,
            forward,
            metrics: metrics_launches,
            backward,
            memory_bytes,
        })
    }

    /// Record forward, loss and metric accumulation.
    pub fn record_forward(&self, pass: &mut wgpu::ComputePass<'_>) {
        for l in self.forward.iter().chain(&self.metrics) {
            l.record(pass);
        }
    }

    /// Record the backward launches (loss gradient first).
    pub fn record_backward(&self, pass: &mut wgpu::ComputePass<'_>) {
        for l in &self.backward {
            l.record(pass);
        }
    }

    /// Every launch in recording order: forward, metrics, backward.
    pub fn launches(&self) -> impl Iterator<Item = &Launch> {
        self.forward.iter().chain(&self.metrics).chain(&self.backward)
    }

    /// Dispatches recorded by forward + metrics + backward.
    pub fn dispatches(&self) -> usize {
        self.launches().map(Launch::dispatches).sum()
    }
}

/// The memory of a graph's values: the input and label buffers, the parameter arenas, and the
/// planned buffers.
struct Memory<'a> {
    x: Tensor,
    labels: Tensor,
    step: Option<Tensor>,
    params: &'a Params,
    buffers: Vec<Tensor>,
    slot: Vec<Option<usize>>,
}

impl<'a> Memory<'a> {
    /// Allocate the input, the labels and every planned buffer (all at build time).
    fn new(
        ctx: &Context,
        ir: &Ir,
        plan: &memory::Plan,
        params: &'a Params,
        input: ValueId,
        step: Option<ValueId>,
    ) -> Result<Memory<'a>> {
        let x = Tensor::zeros(ctx, "input", &ir.value(input).shape, DType::F32)?;
        let step = step.map(|_| Tensor::zeros(ctx, "step", &[2], DType::U32)).transpose()?;
        let labels = Tensor::zeros(ctx, "labels", &[ir.value(input).shape[0]], DType::U32)?;
        // Each buffer is named after the largest value it holds, so a limit error names a layer.
        let buffers = plan
            .sizes
            .iter()
            .zip(&plan.owners)
            .map(|(&b, &v)| Tensor::zeros(ctx, &ir.value(v).name, &[(b / 4) as usize], DType::F32))
            .collect::<Result<Vec<_>>>()?;
        Ok(Memory { x, labels, step, params, buffers, slot: plan.slot.clone() })
    }

    /// The tensor of value `v`: a view of its memory with its shape, dtype and name.
    fn tensor(&self, ir: &Ir, v: ValueId) -> Result<Tensor> {
        let (val, root) = (ir.value(v), ir.root(v));
        let base = match ir.value(root).role {
            Role::Input => Some(&self.x),
            Role::Labels => Some(&self.labels),
            Role::Step => self.step.as_ref(),
            Role::Param(i) => self.params.values.views.get(i),
            Role::ParamGrad(i) => self.params.grads.views.get(i),
            Role::Buffer(i) => self.params.buffers.views.get(i),
            Role::Temp => self.slot[root.0 as usize].and_then(|s| self.buffers.get(s)),
        };
        let base = base.ok_or_else(|| shape_err("graph", format!("{} has no buffer", val.name)))?;
        Ok(Tensor { shape: val.shape.clone(), dtype: val.dtype, label: val.name.clone(), ..base.clone() })
    }
}

/// Lower every node into its op's prepared launches on its values' tensors: (forward, backward).
fn lower(ctx: &Context, ir: &Ir, memory: &Memory<'_>) -> Result<(Vec<Launch>, Vec<Launch>)> {
    let (mut forward, mut backward) = (Vec::new(), Vec::new());
    for node in &ir.nodes {
        let ins = node.inputs.iter().map(|&v| memory.tensor(ir, v)).collect::<Result<Vec<_>>>()?;
        let outs = node.outputs.iter().map(|&v| memory.tensor(ir, v)).collect::<Result<Vec<_>>>()?;
        let (ins, outs): (Vec<&Tensor>, Vec<&Tensor>) = (ins.iter().collect(), outs.iter().collect());
        let launches = node.op.lower(ctx, &node.name, &ins, &outs).map_err(|e| in_node(&node.name, e))?;
        if node.backward { &mut backward } else { &mut forward }.extend(launches);
    }
    Ok((forward, backward))
}

/// Whether the node writing `v` is a view (flatten): its output is its input's memory.
fn is_view(ir: &Ir, v: ValueId) -> bool {
    ir.producer(v).is_some_and(|p| matches!(ir.nodes[p].op, Op::View(ViewOp::Flatten | ViewOp::Reshape(_))))
}
