//! Forward-only evaluation over a whole data set, the predicted classes and probabilities, and
//! prediction on prepared inputs.

use super::{check_input, Feeder};
use crate::context::Context;
use crate::data::{Dataset, GpuDataset};
use crate::error::{Error, Result};
use crate::graph::{Graph, Metrics, Params};
use crate::kernels::gather::Transform;
use crate::model::ModelSpec;
use crate::tensor::Tensor;

/// Forward-only evaluation over a whole dataset, sharing a trainer's (or a loaded model's) parameters.
pub struct Evaluator {
    /// Images per forward pass.
    pub batch: usize,
    data: GpuDataset,
    order: Tensor,
    feeders: Vec<(usize, Feeder)>,
    metrics: Metrics,
    transform: Transform,
}

/// Loss and accuracy over a dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub correct: u64,
    pub count: usize,
}

/// A forward graph at `batch` images, or at the largest batch (halving) whose tensors fit the
/// device's storage-binding limit: evaluation and prediction of any size then run in chunks.
fn fitting_graph(ctx: &Context, spec: &ModelSpec, params: &Params, metrics: &Metrics, batch: usize) -> Result<Graph> {
    let mut b = batch.max(1);
    loop {
        match Graph::build(ctx, spec, params, metrics, b, false) {
            Err(Error::Limit { op, what, value, limit }) if b > 1 => {
                log::info!("batch {b} does not fit ({op}: {what} {value} > {limit}); trying {}", b / 2);
                b /= 2;
            }
            r => return r,
        }
    }
}

impl Evaluator {
    /// Evaluation of `spec` on `data` in batches of `batch` images (fewer when a batch that large does
    /// not fit the device; see [`Evaluator::batch`]).
    pub fn new(ctx: &Context, spec: &ModelSpec, params: &Params, data: &Dataset, batch: usize) -> Result<Evaluator> {
        let t = Transform { chw: data.shape(), ..Transform::plain(crate::data::DIVISOR, 0) };
        Evaluator::prepared(ctx, spec, params, data, batch, &t)
    }

    /// [`Evaluator::new`] with the inputs normalised by `t` (see [`Preparation::transform`]).
    pub fn prepared(
        ctx: &Context,
        spec: &ModelSpec,
        params: &Params,
        data: &Dataset,
        batch: usize,
        t: &Transform,
    ) -> Result<Evaluator> {
        check_input(spec, data)?;
        let gpu = GpuDataset::upload(ctx, "eval", data)?;
        let order: Vec<u32> = (0..data.len() as u32).collect();
        let order = Tensor::from_u32(ctx, "eval.order", &[data.len()], &order)?;
        let metrics = Metrics::new(ctx, "eval")?;
        let full = fitting_graph(ctx, spec, params, &metrics, batch.clamp(1, data.len().max(1)))?;
        let batch = full.batch;
        let mut feeders = vec![(
            batch,
            Feeder { gather: gpu.gathers(ctx, "eval.gather", t, &order, &full.x, &full.labels)?, graph: full },
        )];
        let rest = data.len() % batch;
        if rest > 0 {
            let graph = Graph::build(ctx, spec, params, &metrics, rest, false)?;
            feeders.push((
                rest,
                Feeder { gather: gpu.gathers(ctx, "eval.gather", t, &order, &graph.x, &graph.labels)?, graph },
            ));
        }
        Ok(Evaluator { batch, data: gpu, order, feeders, metrics, transform: *t })
    }

    /// Loss (mean over samples) and accuracy; one submit per batch, one readback at the end.
    pub fn run(&self, ctx: &Context) -> Result<Evaluation> {
        crate::context::block_on(self.run_async(ctx))
    }

    /// [`Evaluator::run`], awaited.
    pub async fn run_async(&self, ctx: &Context) -> Result<Evaluation> {
        self.metrics.reset(ctx)?;
        let mut first = 0;
        while first < self.data.len {
            first += self.submit_batch(ctx, first)?.graph.batch;
        }
        self.evaluation_async(ctx).await
    }

    /// Point the gathers at the batch starting at item `first` and submit its forward pass (which adds
    /// to the metrics); returns the feeder that ran.
    fn submit_batch(&self, ctx: &Context, first: usize) -> Result<&Feeder> {
        let n = self.data.len;
        let (_, f) = self.feeders.iter().find(|(b, _)| first + b <= n).expect("a feeder fits the rest");
        self.data.point(ctx, &f.gather, &self.transform, &self.order, first, &f.graph.x, &f.graph.labels)?;
        ctx.submit_pass("eval", |pass| {
            f.gather.iter().for_each(|l| l.record(pass));
            f.graph.record_forward(pass);
        })?;
        Ok(f)
    }

    /// The metrics summed since the last reset, as an evaluation of the whole set.
    async fn evaluation_async(&self, ctx: &Context) -> Result<Evaluation> {
        let n = self.data.len;
        let (loss, correct) = self.metrics.take_async(ctx).await?;
        Ok(Evaluation { loss: loss / n as f64, accuracy: correct as f64 / n as f64, correct, count: n })
    }

    /// [`Evaluator::run`] and the class probabilities of every item, in order, from the same forward
    /// passes: one submit and one readback per batch.
    pub fn run_with_probabilities(&self, ctx: &Context) -> Result<(Evaluation, Vec<Vec<f32>>)> {
        self.metrics.reset(ctx)?;
        let mut out = Vec::with_capacity(self.data.len);
        let mut first = 0;
        while first < self.data.len {
            let f = self.submit_batch(ctx, first)?;
            let probs = f.graph.probs.to_f32(ctx)?;
            out.extend(probs.chunks(probs.len() / f.graph.batch).map(<[f32]>::to_vec));
            first += f.graph.batch;
        }
        Ok((crate::context::block_on(self.evaluation_async(ctx))?, out))
    }

    /// The class probabilities of every item, in order (see [`Evaluator::run_with_probabilities`]).
    pub fn probabilities(&self, ctx: &Context) -> Result<Vec<Vec<f32>>> {
        Ok(self.run_with_probabilities(ctx)?.1)
    }

    /// The logits and class probabilities of every item, in order, from the same forward passes.
    pub fn logits_and_probabilities(&self, ctx: &Context) -> Result<(Rows, Rows)> {
        let (mut logits, mut probs) = (Vec::with_capacity(self.data.len), Vec::with_capacity(self.data.len));
        let mut first = 0;
        while first < self.data.len {
            let f = self.submit_batch(ctx, first)?;
            for (t, out) in [(&f.graph.logits, &mut logits), (&f.graph.probs, &mut probs)] {
                let v = t.to_f32(ctx)?;
                out.extend(v.chunks(v.len() / f.graph.batch).map(<[f32]>::to_vec));
            }
            first += f.graph.batch;
        }
        Ok((logits, probs))
    }
}

/// One vector per item.
pub type Rows = Vec<Vec<f32>>;

/// The index of the largest value (the first of equal ones).
pub fn argmax(p: &[f32]) -> usize {
    p.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
}

/// Class probabilities of prepared inputs (each `c·h·w` values in [0, 1]), forward only, in batches of
/// at most 1,000 inputs (fewer when that does not fit the device).
pub fn predict(ctx: &Context, spec: &ModelSpec, params: &Params, inputs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
    forward(ctx, spec, params, inputs, |g| &g.probs)
}

/// The logits of prepared inputs (as [`predict`], before the softmax): what an exported ONNX graph
/// gives.
pub fn logits(ctx: &Context, spec: &ModelSpec, params: &Params, inputs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
    forward(ctx, spec, params, inputs, |g| &g.logits)
}

fn forward(
    ctx: &Context,
    spec: &ModelSpec,
    params: &Params,
    inputs: &[Vec<f32>],
    out_of: fn(&Graph) -> &Tensor,
) -> Result<Vec<Vec<f32>>> {
    let [c, h, w] = spec.input;
    if let Some((i, x)) = inputs.iter().enumerate().find(|(_, x)| x.len() != c * h * w) {
        return Err(Error::Train(format!("input {i} has {} values, {} expects {c}x{h}x{w}", x.len(), spec.name)));
    }
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    let metrics = Metrics::new(ctx, "predict")?;
    let full = fitting_graph(ctx, spec, params, &metrics, inputs.len().min(1000))?;
    let mut out = Vec::with_capacity(inputs.len());
    let mut tail = None;
    for chunk in inputs.chunks(full.batch) {
        let graph = if chunk.len() == full.batch {
            &full
        } else {
            tail.insert(Graph::build(ctx, spec, params, &metrics, chunk.len(), false)?)
        };
        graph.x.write_f32(ctx, &chunk.concat())?;
        ctx.submit_pass("predict", |pass| {
            graph.record_forward(pass);
        })?;
        let values = out_of(graph).to_f32(ctx)?;
        out.extend(values.chunks(spec.classes).map(<[f32]>::to_vec));
    }
    Ok(out)
}
