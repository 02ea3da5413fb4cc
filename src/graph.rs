//! The graph executor. Built once for a batch size: shapes inferred and checked, backward derived from
//! each layer's backward rule, every buffer allocated, every pipeline, bind group and params buffer
//! created. Running a step only records the prepared launches into one pass.

use std::sync::Arc;

use crate::context::Context;
use crate::context::KernelSet;
use crate::error::{shape_err, Error, Result};
use crate::kernels::activation::{activation_backward, activation_forward, Activation};
use crate::kernels::conv::conv2d_backward_bias;
use crate::kernels::conv_fast::{
    conv2d_backward_input_auto, conv2d_backward_weight_auto, conv2d_forward_auto, conv2d_forward_fused,
};
use crate::kernels::linear::linear_backward_bias;
use crate::kernels::loss::{loss_backward, loss_forward};
use crate::kernels::matmul::{linear_backward_input_auto, linear_backward_weight_auto, linear_forward_auto};
use crate::kernels::pool::{
    avgpool2d_backward, avgpool2d_forward, maxpool2d_backward_auto, maxpool2d_backward_fused, maxpool2d_forward_auto,
    PoolKind,
};
use crate::kernels::reduce::{correct_accumulate, sum_accumulate};
use crate::kernels::Launch;
use crate::model::{Layer, ModelSpec, ParamSpec};
use crate::shape::{Conv2dGeom, LinearGeom, LossGeom, Pool2dGeom};
use crate::tensor::{DType, Tensor};

/// Many tensors in one buffer, each view starting on the device's storage-offset alignment, so a whole
/// arena is one binding (one optimizer dispatch) and each view is a binding of its own. Padding
/// between views is zero and stays zero under every update.
pub struct Arena {
    pub whole: Tensor,
    pub views: Vec<Tensor>,
}

impl Arena {
    /// An arena holding `copies` consecutive copies of the layout of `specs` (Adam keeps two moments).
    pub fn new(ctx: &Context, label: &str, specs: &[ParamSpec], copies: usize) -> Result<Arena> {
        let align = (ctx.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
        let mut offsets = Vec::new();
        let mut at = 0usize;
        for _ in 0..copies {
            for p in specs {
                offsets.push(at);
                at = (at + p.len()).next_multiple_of(align);
            }
        }
        let whole = Tensor::zeros(ctx, label, &[at], DType::F32)?;
        let views = offsets
            .iter()
            .zip(specs.iter().cycle())
            .enumerate()
            .map(|(i, (&off, p))| {
                let copy = i / specs.len().max(1);
                let name = if copies > 1 { format!("{label}{copy}.{}", p.name) } else { format!("{label}.{}", p.name) };
                Tensor {
                    buffer: Arc::clone(&whole.buffer),
                    offset: (off * 4) as u64,
                    shape: p.shape.clone(),
                    dtype: DType::F32,
                    label: name,
                }
            })
            .collect();
        Ok(Arena { whole, views })
    }

    /// Upload one vector per view.
    pub fn write(&self, ctx: &Context, values: &[Vec<f32>]) -> Result<()> {
        if values.len() != self.views.len() {
            return Err(shape_err(
                &self.whole.label,
                format!("{} tensors for {} views", values.len(), self.views.len()),
            ));
        }
        for (v, t) in values.iter().zip(&self.views) {
            t.write_f32(ctx, v)?;
        }
        Ok(())
    }

    /// Download every view (one readback of the whole buffer).
    pub fn read(&self, ctx: &Context) -> Result<Vec<Vec<f32>>> {
        let all = self.whole.to_f32(ctx)?;
        Ok(self
            .views
            .iter()
            .map(|t| {
                let at = (t.offset / 4) as usize;
                all[at..at + t.len()].to_vec()
            })
            .collect())
    }
}

/// The parameters of a model and their gradients, each in one arena.
pub struct Params {
    pub specs: Vec<ParamSpec>,
    pub values: Arena,
    pub grads: Arena,
}

impl Params {
    pub fn new(ctx: &Context, spec: &ModelSpec) -> Result<Params> {
        let specs = spec.params();
        Ok(Params { values: Arena::new(ctx, "param", &specs, 1)?, grads: Arena::new(ctx, "grad", &specs, 1)?, specs })
    }

    /// Indices of layer `layer`'s `.weight` and `.bias`.
    fn weight_bias(&self, layer: &str) -> (usize, usize) {
        let at = |suffix: &str| {
            let name = format!("{layer}.{suffix}");
            self.specs.iter().position(|p| p.name == name).expect("parameter names come from the same spec")
        };
        (at("weight"), at("bias"))
    }

    /// Total learnable values.
    pub fn count(&self) -> usize {
        self.specs.iter().map(ParamSpec::len).sum()
    }
}

/// Loss sum and correct count, accumulated on the GPU and read back rarely.
pub struct Metrics {
    pub loss_sum: Tensor,
    pub correct: Tensor,
}

impl Metrics {
    pub fn new(ctx: &Context, label: &str) -> Result<Metrics> {
        Ok(Metrics {
            loss_sum: Tensor::zeros(ctx, &format!("{label}.loss_sum"), &[1], DType::F32)?,
            correct: Tensor::zeros(ctx, &format!("{label}.correct"), &[1], DType::U32)?,
        })
    }

    /// Read (loss sum, correct count) and reset both to zero.
    pub fn take(&self, ctx: &Context) -> Result<(f64, u64)> {
        let loss = self.loss_sum.to_f32(ctx)?[0];
        let correct = self.correct.to_u32(ctx)?[0];
        self.loss_sum.write_f32(ctx, &[0.0])?;
        self.correct.write_u32(ctx, &[0])?;
        Ok((f64::from(loss), u64::from(correct)))
    }
}

/// Prefix an error with the layer it came from, so a build error names the op.
fn in_layer(layer: &str, e: Error) -> Error {
    match e {
        Error::Shape { op, detail } => Error::Shape { op: format!("{layer} ({op})"), detail },
        Error::Limit { op, what, value, limit } => Error::Limit { op: format!("{layer} ({op})"), what, value, limit },
        e => e,
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
    /// Each layer's tag (e.g. `conv1`, `act1.relu`, `pool2.max`) and output, in layer order. With fused
    /// kernels a conv and the ReLU after it share one output (post-ReLU); build on a context with
    /// [`crate::KernelSet::Plain`] to see each layer's own output. In a training graph the backward pass
    /// reuses the buffers of outputs it does not read, so read these after a forward-only run.
    pub outputs: Vec<(String, Tensor)>,
    forward: Vec<Launch>,
    metrics: Vec<Launch>,
    backward: Vec<Launch>,
    /// Gradient buffers: bytes newly allocated, and bytes the backward pass asked for (the difference is
    /// what reusing dead forward values and consumed gradients saved).
    pub gradient_bytes: (u64, u64),
}

/// Buffers of a training graph's backward pass: forward values no remaining backward launch reads, and
/// gradients already consumed, are handed out again for later gradients (best fit by size). Every
/// buffer is still allocated at build time; nothing is created per step.
struct BufferPool {
    free: Vec<Arc<wgpu::Buffer>>,
    /// Bytes of the buffers this pool allocated, and bytes requested from it.
    allocated: u64,
    requested: u64,
}

impl BufferPool {
    fn new() -> BufferPool {
        BufferPool { free: Vec::new(), allocated: 0, requested: 0 }
    }

    /// An f32 tensor of `shape`: a view of the smallest free buffer that holds it, or a new buffer.
    fn take(&mut self, ctx: &Context, label: &str, shape: &[usize]) -> Result<Tensor> {
        let need = crate::tensor::padded_bytes(shape.iter().product::<usize>() as u64 * 4);
        self.requested += need;
        let best = self.free.iter().enumerate().filter(|(_, b)| b.size() >= need).min_by_key(|(_, b)| b.size());
        match best.map(|(i, _)| i) {
            Some(i) => {
                let buffer = self.free.swap_remove(i);
                Ok(Tensor { buffer, offset: 0, shape: shape.to_vec(), dtype: DType::F32, label: label.to_string() })
            }
            None => {
                let t = Tensor::zeros(ctx, label, shape, DType::F32)?;
                self.allocated += t.buffer.size();
                Ok(t)
            }
        }
    }

    /// Hand `t`'s whole buffer back (only whole-buffer tensors are pooled).
    fn give(&mut self, t: &Tensor) {
        if t.offset == 0 {
            self.give_buffer(&t.buffer);
        }
    }

    fn give_buffer(&mut self, b: &Arc<wgpu::Buffer>) {
        if !self.free.iter().any(|f| Arc::ptr_eq(f, b)) {
            self.free.push(Arc::clone(b));
        }
    }
}

/// One layer's output and what its backward needs.
struct Node {
    y: Tensor,
    /// Max-pool argmax, when the layer is a max-pool.
    argmax: Option<Tensor>,
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
        if batch == 0 {
            return Err(shape_err("graph", "batch size 0"));
        }
        let [c0, h0, w0] = spec.input;
        let x = Tensor::zeros(ctx, "input", &[batch, c0, h0, w0], DType::F32)?;
        let labels = Tensor::zeros(ctx, "labels", &[batch], DType::U32)?;
        let mut forward = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut cur = x.clone();
        // With the fast kernels, a ReLU after a conv runs inside the conv's kernel, and a max-pool's
        // backward applies the mask of the ReLU before it (one launch each instead of two).
        let fuse = ctx.kernels == KernelSet::Fast;
        let relu_at = |i: usize| fuse && matches!(spec.layers.get(i), Some(Layer::Act(Activation::Relu)));
        // Forward, inferring every shape.
        let mut relu_done = false;
        for (i, layer) in spec.layers.iter().enumerate() {
            let tag = layer_tag(layer, i);
            if relu_done {
                // This ReLU ran inside the conv before it: its output is the conv's.
                relu_done = false;
                nodes.push(Node { y: cur.clone(), argmax: None });
                continue;
            }
            let (node, launch, fused) =
                forward_layer(ctx, &tag, layer, &cur, params, relu_at(i + 1)).map_err(|e| in_layer(&tag, e))?;
            relu_done = fused;
            if let Some(l) = launch {
                forward.push(l);
            }
            cur = node.y.clone();
            nodes.push(node);
        }
        if cur.shape != [batch, spec.classes] {
            return Err(shape_err(
                "graph",
                format!("the last layer gives {:?}, the loss needs [{batch}, {}]", cur.shape, spec.classes),
            ));
        }
        let lg = LossGeom { n: batch, classes: spec.classes };
        let logits = cur;
        let probs = Tensor::zeros(ctx, "probs", &[batch, spec.classes], DType::F32)?;
        let loss = Tensor::zeros(ctx, "loss", &[batch], DType::F32)?;
        forward.push(loss_forward(ctx, "loss", spec.loss, &lg, &logits, &labels, &loss, &probs)?);
        let metrics_launches = vec![
            sum_accumulate(ctx, "metrics.loss", &loss, &metrics.loss_sum)?,
            correct_accumulate(ctx, "metrics.correct", &lg, &logits, &labels, &metrics.correct)?,
        ];
        let mut backward = Vec::new();
        let mut pool = BufferPool::new();
        if train {
            // Backward, derived: walk the layers in reverse, each applying its own rule. The mean
            // over the batch (PyTorch's default reduction) is the loss gradient's scale.
            // Which backward layers read each forward buffer: a conv or linear layer its input (for dW), an
            // activation its own output (unless a max-pool's backward applies its mask), a folding
            // max-pool its own output. A buffer goes to the pool once the walk is below its lowest reader.
            let n = spec.layers.len();
            // fold[k]: the ReLU at layer k has its backward applied by the max-pool after it (decided
            // here once; backward_layer is told, and its fused launcher must take the shape).
            let fold: Vec<bool> = (0..n)
                .map(|k| {
                    relu_at(k)
                        && match (spec.layers.get(k + 1), &nodes[k].y) {
                            (Some(Layer::Pool { kind: PoolKind::Max, k: w, stride }), y) if y.shape.len() == 4 => {
                                crate::kernels::pool::tiles(&pool_geom(y, *w, *stride))
                            }
                            _ => false,
                        }
                })
                .collect();
            // The lowest backward layer reading each node buffer (n: none): a conv or linear layer reads
            // its input, an activation its output unless folded, a folding max-pool its output. The logits
            // stay out (the caller may read them), and so does x (never a node).
            let mut min_reader: Vec<(Arc<wgpu::Buffer>, usize)> = Vec::new();
            for (k, nd) in nodes.iter().enumerate() {
                let own = match spec.layers[k] {
                    Layer::Act(_) => !fold[k],
                    Layer::Pool { kind: PoolKind::Max, .. } => k > 0 && fold[k - 1],
                    _ => false,
                };
                let next = matches!(spec.layers.get(k + 1), Some(Layer::Conv2d { .. } | Layer::Linear { .. }));
                let reader = if own {
                    k
                } else if next {
                    k + 1
                } else {
                    n
                };
                match min_reader.iter_mut().find(|(b, _)| Arc::ptr_eq(b, &nd.y.buffer)) {
                    Some(e) => e.1 = e.1.min(reader),
                    None if !Arc::ptr_eq(&nd.y.buffer, &logits.buffer) => {
                        min_reader.push((Arc::clone(&nd.y.buffer), reader))
                    }
                    None => {}
                }
            }
            // Hand to the pool every buffer whose lowest reader is past layer i.
            let mut release_below = |i: usize, pool: &mut BufferPool| {
                min_reader.retain(|(b, k)| {
                    if *k > i {
                        pool.give_buffer(b);
                    }
                    *k <= i
                })
            };
            release_below(n, &mut pool);
            let mut dy = pool.take(ctx, "d.logits", &logits.shape)?;
            backward.push(loss_backward(
                ctx,
                "loss.backward",
                spec.loss,
                &lg,
                1.0 / batch as f32,
                &probs,
                &labels,
                &dy,
            )?);
            for (i, layer) in spec.layers.iter().enumerate().rev() {
                release_below(i, &mut pool);
                if fold[i] {
                    continue; // the max-pool after this ReLU applied its mask: dy passes through
                }
                let tag = layer_tag(layer, i);
                let input = if i == 0 { &x } else { &nodes[i - 1].y };
                let need_dx = i > 0; // the data batch needs no gradient
                let relu_mask = i > 0 && fold[i - 1];
                let (dx, launches) =
                    backward_layer(ctx, &tag, layer, input, &nodes[i], &dy, params, need_dx, relu_mask, &mut pool)
                        .map_err(|e| in_layer(&tag, e))?;
                backward.extend(launches);
                match dx {
                    Some(d) => {
                        // dy has been consumed (unless dx is a view of it, as through a flatten).
                        if !Arc::ptr_eq(&d.buffer, &dy.buffer) {
                            pool.give(&dy);
                        }
                        dy = d;
                    }
                    None => break,
                }
            }
        }
        ctx.check_device_error()?;
        let outputs =
            spec.layers.iter().enumerate().zip(&nodes).map(|((i, l), n)| (layer_tag(l, i), n.y.clone())).collect();
        let gradient_bytes = (pool.allocated, pool.requested);
        Ok(Graph {
            batch,
            x,
            labels,
            logits,
            probs,
            loss,
            outputs,
            forward,
            metrics: metrics_launches,
            backward,
            gradient_bytes,
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
        self.forward.iter().chain(&self.metrics).chain(&self.backward).map(Launch::dispatches).sum()
    }
}

fn layer_tag(layer: &Layer, i: usize) -> String {
    match layer {
        Layer::Conv2d { name, .. } | Layer::Linear { name, .. } => name.to_string(),
        Layer::Act(a) => format!("act{i}.{a:?}").to_lowercase(),
        Layer::Pool { kind, .. } => format!("pool{i}.{kind:?}").to_lowercase(),
        Layer::Flatten => format!("flatten{i}"),
    }
}

fn expect_rank(tag: &str, t: &Tensor, rank: usize) -> Result<()> {
    if t.shape.len() != rank {
        return Err(shape_err(tag, format!("expects a rank-{rank} input, got {:?}", t.shape)));
    }
    Ok(())
}

fn conv_geom(t: &Tensor, c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize) -> Conv2dGeom {
    Conv2dGeom::square(t.shape[0], c_in, t.shape[2], t.shape[3], c_out, k, stride, pad)
}

fn pool_geom(t: &Tensor, k: usize, stride: usize) -> Pool2dGeom {
    Pool2dGeom::square(t.shape[0], t.shape[1], t.shape[2], t.shape[3], k, stride)
}

/// A layer's forward launch. With `relu_after`, a conv may fold the ReLU that follows it into its own
/// kernel (reported by the returned flag).
fn forward_layer(
    ctx: &Context,
    tag: &str,
    layer: &Layer,
    x: &Tensor,
    params: &Params,
    relu_after: bool,
) -> Result<(Node, Option<Launch>, bool)> {
    let new = |shape: &[usize]| Tensor::zeros(ctx, tag, shape, DType::F32);
    match *layer {
        Layer::Conv2d { name, c_in, c_out, k, stride, pad } => {
            expect_rank(tag, x, 4)?;
            let g = conv_geom(x, c_in, c_out, k, stride, pad);
            if x.shape[1] != c_in {
                return Err(shape_err(tag, format!("expects {c_in} input channels, got {:?}", x.shape)));
            }
            g.validate(tag)?;
            let y = new(&[g.n, c_out, g.out_h(), g.out_w()])?;
            let (wi, bi) = params.weight_bias(name);
            let (w, b) = (&params.values.views[wi], &params.values.views[bi]);
            if relu_after {
                if let Some(l) = conv2d_forward_fused(ctx, &format!("{tag}+relu"), &g, x, w, b, &y, true)? {
                    return Ok((Node { y, argmax: None }, Some(l), true));
                }
            }
            let l = conv2d_forward_auto(ctx, tag, &g, x, w, b, &y)?;
            Ok((Node { y, argmax: None }, Some(l), false))
        }
        Layer::Act(a) => {
            let y = new(&x.shape)?;
            let l = activation_forward(ctx, tag, a, x, &y)?;
            Ok((Node { y, argmax: None }, Some(l), false))
        }
        Layer::Pool { kind, k, stride } => {
            expect_rank(tag, x, 4)?;
            let g = pool_geom(x, k, stride);
            g.validate(tag)?;
            let y = new(&[g.n, g.c, g.out_h(), g.out_w()])?;
            match kind {
                PoolKind::Max => {
                    let arg = Tensor::zeros(ctx, &format!("{tag}.argmax"), &y.shape, DType::U32)?;
                    let l = maxpool2d_forward_auto(ctx, tag, &g, x, &y, &arg)?;
                    Ok((Node { y, argmax: Some(arg) }, Some(l), false))
                }
                PoolKind::Avg => {
                    let l = avgpool2d_forward(ctx, tag, &g, x, &y)?;
                    Ok((Node { y, argmax: None }, Some(l), false))
                }
            }
        }
        Layer::Flatten => {
            let n = x.shape[0];
            let y = Tensor { shape: vec![n, x.len() / n.max(1)], label: tag.to_string(), ..x.clone() };
            Ok((Node { y, argmax: None }, None, false))
        }
        Layer::Linear { name, in_f, out_f } => {
            expect_rank(tag, x, 2)?;
            if x.shape[1] != in_f {
                return Err(shape_err(tag, format!("expects {in_f} input features, got {:?}", x.shape)));
            }
            let g = LinearGeom { n: x.shape[0], in_f, out_f };
            let y = new(&[g.n, out_f])?;
            let (wi, bi) = params.weight_bias(name);
            let (w, b) = (&params.values.views[wi], &params.values.views[bi]);
            let l = linear_forward_auto(ctx, tag, &g, x, w, b, &y)?;
            Ok((Node { y, argmax: None }, Some(l), false))
        }
    }
}

/// A layer's backward rule: from dy (the gradient of its output) emit the launches for its parameter
/// gradients and, when `need_dx`, the gradient of its input (returned). With `relu_mask`, a max-pool
/// also applies the backward of the ReLU before it (the caller has checked that its shape allows it).
#[allow(clippy::too_many_arguments)]
fn backward_layer(
    ctx: &Context,
    tag: &str,
    layer: &Layer,
    x: &Tensor,
    node: &Node,
    dy: &Tensor,
    params: &Params,
    need_dx: bool,
    relu_mask: bool,
    pool: &mut BufferPool,
) -> Result<(Option<Tensor>, Vec<Launch>)> {
    let label = format!("d.{tag}");
    let mut dx_like = |t: &Tensor| pool.take(ctx, &label, &t.shape);
    let mut out = Vec::new();
    let dx = match *layer {
        Layer::Conv2d { name, c_in, c_out, k, stride, pad } => {
            let g = conv_geom(x, c_in, c_out, k, stride, pad);
            let (wi, bi) = params.weight_bias(name);
            let (w, dw, db) = (&params.values.views[wi], &params.grads.views[wi], &params.grads.views[bi]);
            out.push(conv2d_backward_weight_auto(ctx, &format!("{name}.dw"), &g, dy, x, dw)?);
            out.push(conv2d_backward_bias(ctx, &format!("{name}.db"), &g, dy, db)?);
            if need_dx {
                let dx = dx_like(x)?;
                out.push(conv2d_backward_input_auto(ctx, &format!("{name}.dx"), &g, dy, w, &dx)?);
                Some(dx)
            } else {
                None
            }
        }
        Layer::Act(a) => {
            let dx = dx_like(x)?;
            out.push(activation_backward(ctx, &format!("{tag}.dx"), a, &node.y, dy, &dx)?);
            Some(dx)
        }
        Layer::Pool { kind, k, stride } => {
            let g = pool_geom(x, k, stride);
            let dx = dx_like(x)?;
            match (kind, &node.argmax) {
                (PoolKind::Max, Some(arg)) if relu_mask => {
                    let label = format!("{tag}.dx+relu.dx");
                    let fused = maxpool2d_backward_fused(ctx, &label, &g, dy, arg, &node.y, &dx, true)?;
                    out.push(fused.ok_or_else(|| shape_err(tag, "the ReLU mask needs windows that tile the input"))?)
                }
                (PoolKind::Max, Some(arg)) => {
                    out.push(maxpool2d_backward_auto(ctx, &format!("{tag}.dx"), &g, dy, arg, &dx)?)
                }
                _ => out.push(avgpool2d_backward(ctx, &format!("{tag}.dx"), &g, dy, &dx)?),
            }
            Some(dx)
        }
        Layer::Flatten => Some(Tensor { shape: x.shape.clone(), label: format!("d.{tag}"), ..dy.clone() }),
        Layer::Linear { name, in_f, out_f } => {
            let g = LinearGeom { n: x.shape[0], in_f, out_f };
            let (wi, bi) = params.weight_bias(name);
            let (w, dw, db) = (&params.values.views[wi], &params.grads.views[wi], &params.grads.views[bi]);
            out.push(linear_backward_weight_auto(ctx, &format!("{name}.dw"), &g, dy, x, dw)?);
            out.push(linear_backward_bias(ctx, &format!("{name}.db"), &g, dy, db)?);
            if need_dx {
                let dx = dx_like(x)?;
                out.push(linear_backward_input_auto(ctx, &format!("{name}.dx"), &g, dy, w, &dx)?);
                Some(dx)
            } else {
                None
            }
        }
    };
    Ok((dx, out))
}
