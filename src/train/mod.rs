//! Training and evaluation on the GPU: the dataset and a per-epoch permutation live on the device, and
//! a whole step (gather, forward, loss, metrics, backward, optimizer) is one encoder and one submit.

mod eval;
mod fit;
mod optimizer;

pub use eval::*;
pub use fit::*;
pub use optimizer::*;

use crate::context::Context;
use crate::data::{Augment, Dataset, GpuDataset, Preparation};
use crate::error::{Error, Result};
use crate::graph::{Graph, Metrics, Params};
use crate::kernels::gather::Transform;
use crate::kernels::Launch;
use crate::model::ModelSpec;
use crate::rng::Rng;
use crate::tensor::{DType, Tensor};

/// A graph with the gather launches (one per data shard) that feed it.
pub(crate) struct Feeder {
    pub(crate) graph: Graph,
    pub(crate) gather: Vec<Launch>,
}

/// Everything a training run keeps on the GPU.
pub struct Trainer {
    pub spec: ModelSpec,
    pub params: Params,
    pub optim: OptimizerState,
    pub batch_size: usize,
    train: GpuDataset,
    /// The epoch's order of training items.
    perm: Tensor,
    full: Feeder,
    /// The final partial batch of an epoch, when the set size is not a multiple of the batch size.
    tail: Option<Feeder>,
    pub metrics: Metrics,
    /// The seed dropout's masks and the augmentation are drawn from (see [`Trainer::set_seed`]).
    seed: u32,
    /// How the training pictures are prepared (saved with the model).
    pub prep: Preparation,
    /// How the training pictures are augmented.
    pub augment: Augment,
    /// The epoch in progress (1-based; the augmentation's draws depend on it).
    epoch: u32,
}

pub use crate::data::DIVISOR;

impl Trainer {
    pub fn new(
        ctx: &Context,
        spec: ModelSpec,
        data: &Dataset,
        batch_size: usize,
        opt: Optimizer,
        init: &[Vec<f32>],
    ) -> Result<Trainer> {
        if batch_size == 0 {
            return Err(Error::Train("batch size must be at least 1".into()));
        }
        check_input(&spec, data)?;
        let prep = Preparation { classes: data.class_names.clone(), ..Preparation::legacy(spec.input, spec.classes) };
        let transform = prep.transform();
        let params = Params::new(ctx, &spec)?;
        params.values.write(ctx, init)?;
        let optim = OptimizerState::new(ctx, opt, &params)?;
        let train = GpuDataset::upload(ctx, "train", data)?;
        let perm = Tensor::zeros(ctx, "train.permutation", &[data.len()], DType::U32)?;
        let metrics = Metrics::new(ctx, "train")?;
        let batch = batch_size.min(data.len());
        let (full, tail) = feeders(ctx, &spec, &params, &metrics, &train, &perm, &transform, batch, &[])?;
        let augment = Augment::default();
        Ok(Trainer {
            spec,
            params,
            optim,
            batch_size: batch,
            train,
            perm,
            full,
            tail,
            metrics,
            seed: 0,
            prep,
            augment,
            epoch: 1,
        })
    }

    /// Freeze the tensors of `layers` (fine-tuning): the optimizer leaves them exactly as they are,
    /// and a frozen batch-norm keeps its running statistics (it still normalises by the batch's, as
    /// in training, and its gradient flows to the layers before it). The backward pass computes no
    /// gradient for them, nor any backward for the part of the graph that only leads to frozen
    /// layers. A name that is no layer with tensors is an error naming it.
    pub fn freeze(&mut self, ctx: &Context, layers: &[String]) -> Result<()> {
        check_layers(&self.spec, layers, "--freeze")?;
        let frozen: Vec<bool> = self
            .params
            .specs
            .iter()
            .map(|p| layers.iter().any(|l| l == crate::checkpoint::layer_of(&p.name)))
            .collect();
        self.optim.freeze(ctx, &self.params, &frozen)?;
        // The training graphs again, with the frozen batch-norms' momentum 0: running statistics
        // updated by nothing (the model itself, saved with the checkpoint, keeps its momentum).
        let mut graph_spec = self.spec.clone();
        for l in &mut graph_spec.layers {
            if let (crate::model::LayerOp::BatchNorm2d(bn), true) = (&mut l.op, layers.contains(&l.name)) {
                bn.momentum = 0.0;
            }
        }
        let transform = self.transform();
        let (full, tail) = feeders(
            ctx,
            &graph_spec,
            &self.params,
            &self.metrics,
            &self.train,
            &self.perm,
            &transform,
            self.batch_size,
            &frozen,
        )?;
        (self.full, self.tail) = (full, tail);
        Ok(())
    }

    /// Prepare the training pictures as `prep` says (its normalisation) and augment them with
    /// `augment` from the next step on; checked against the model and the data.
    pub fn set_preparation(&mut self, ctx: &Context, prep: Preparation, augment: Augment) -> Result<()> {
        prep.check(self.spec.input, self.spec.classes).map_err(|e| Error::Train(format!("preparation: {e}")))?;
        augment.check(self.spec.input)?;
        (self.prep, self.augment) = (prep, augment);
        // The gathers again: a plain one is compiled without the augmentation's code.
        let t = self.transform();
        for f in std::iter::once(&mut self.full).chain(self.tail.as_mut()) {
            f.gather = self.train.gathers(ctx, "gather", &t, &self.perm, &f.graph.x, &f.graph.labels)?;
        }
        Ok(())
    }

    /// The epoch in progress (1-based): the augmentation draws differ from epoch to epoch.
    pub fn set_epoch(&mut self, epoch: usize) {
        self.epoch = epoch as u32;
    }

    /// The gather's transform for this epoch.
    fn transform(&self) -> Transform {
        let mut t = self.prep.transform();
        (t.pad, t.flip, t.seed, t.epoch) = (self.augment.crop, self.augment.flip, self.seed, self.epoch);
        t.warp = self.augment.warp();
        t
    }

    /// Seed the masks of the model's dropout layers (with the step count; see `shaders/dropout.wgsl`).
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = (seed ^ (seed >> 32)) as u32;
    }

    /// Steps in one epoch (the last one may be a partial batch).
    pub fn steps_per_epoch(&self) -> usize {
        self.train.len.div_ceil(self.batch_size)
    }

    /// Full-batch steps in one epoch (the partial last batch, if any, excluded).
    pub fn full_steps(&self) -> usize {
        self.train.len / self.batch_size
    }

    /// Upload the order of the next epoch: shuffled by `rng`, or file order.
    pub fn start_epoch(&self, ctx: &Context, rng: Option<&mut Rng>) -> Result<()> {
        let mut order: Vec<u32> = (0..self.train.len as u32).collect();
        if let Some(r) = rng {
            r.shuffle(&mut order);
        }
        self.perm.write_u32(ctx, &order)
    }

    /// Dispatches per full step (gather + forward + metrics + backward + optimizer) and submits (1).
    pub fn dispatches_per_step(&self) -> usize {
        self.full.gather.iter().map(Launch::dispatches).sum::<usize>()
            + self.full.graph.dispatches()
            + self.optim.launches.len()
    }

    /// The launches of a full step in recording order (gather, forward, metrics, backward, optimizer),
    /// e.g. to time each one.
    pub fn step_launches(&self) -> Vec<&Launch> {
        let mut v: Vec<&Launch> = self.full.gather.iter().collect();
        v.extend(self.full.graph.launches());
        v.extend(self.optim.launches.iter().map(|(l, _)| l));
        v
    }

    /// Run training step `i` of the epoch: one encoder, one submit, no readback.
    pub fn step(&mut self, ctx: &Context, i: usize) -> Result<usize> {
        let first = i * self.batch_size;
        if first >= self.train.len {
            return Err(Error::Train(format!("step {i} is past the end of the epoch")));
        }
        let f = if first + self.batch_size <= self.train.len {
            &self.full
        } else {
            self.tail.as_ref().expect("a partial last batch has its graph")
        };
        let g = &f.graph;
        self.train.point(ctx, &f.gather, &self.transform(), &self.perm, first, &g.x, &g.labels)?;
        self.optim.advance(ctx)?;
        if let Some(s) = &g.step {
            // Dropout's masks: a hash of this pair (the step count wraps past 2^32 steps).
            s.write_u32(ctx, &[self.seed, self.optim.step as u32])?;
        }
        for t in &mut self.params.tracked {
            t.1 += 1; // this step's forward updates every batch-norm's running statistics
        }
        let optimizer = &self.optim.launches;
        ctx.submit_pass("train.step", |pass| {
            f.gather.iter().for_each(|l| l.record(pass));
            g.record_forward(pass);
            g.record_backward(pass);
            optimizer.iter().for_each(|(l, _)| l.record(pass));
        })?;
        Ok(g.batch)
    }
}

/// The training graphs of a batch and of the epoch's partial last batch (if any), with their gathers.
#[allow(clippy::too_many_arguments)]
fn feeders(
    ctx: &Context,
    spec: &ModelSpec,
    params: &Params,
    metrics: &Metrics,
    train: &GpuDataset,
    perm: &Tensor,
    transform: &Transform,
    batch: usize,
    frozen: &[bool],
) -> Result<(Feeder, Option<Feeder>)> {
    let feeder = |b: usize| -> Result<Feeder> {
        let graph = Graph::build_frozen(ctx, spec, params, metrics, b, true, frozen)?;
        let gather = train.gathers(ctx, "gather", transform, perm, &graph.x, &graph.labels)?;
        Ok(Feeder { graph, gather })
    };
    let rest = train.len % batch;
    Ok((feeder(batch)?, if rest > 0 { Some(feeder(rest)?) } else { None }))
}

/// Check that each of `layers` is a layer of `spec` that has tensors (`flag` names the option).
pub fn check_layers(spec: &ModelSpec, layers: &[String], flag: &str) -> Result<()> {
    let params = spec.params();
    let owners: Vec<&str> = params.iter().map(|p| crate::checkpoint::layer_of(&p.name)).collect();
    let mut with: Vec<&str> = owners.clone();
    with.dedup();
    for l in layers {
        if !spec.layers.iter().any(|x| &x.name == l) {
            return Err(Error::Train(format!(
                "{flag} {l}: {} has no layer of that name (layers with weights: {})",
                spec.name,
                with.join(", ")
            )));
        }
        if !owners.contains(&l.as_str()) {
            return Err(Error::Train(format!(
                "{flag} {l}: that layer has no weights (layers with weights: {})",
                with.join(", ")
            )));
        }
    }
    Ok(())
}

/// Check a data set's images have the size a model reads, and its labels the model's classes.
pub(crate) fn check_input(spec: &ModelSpec, data: &Dataset) -> Result<()> {
    if data.shape() != spec.input {
        let [c, h, w] = spec.input;
        let [dc, dh, dw] = data.shape();
        return Err(crate::error::data_err(
            &data.source,
            format!("its images are {dc}x{dh}x{dw} (channels x height x width), model {} reads {c}x{h}x{w}", spec.name),
        ));
    }
    if data.class_names.len() != spec.classes {
        return Err(crate::error::data_err(
            &data.source,
            format!(
                "it has {} classes ({}), model {} has {} (its `classes`)",
                data.class_names.len(),
                abbreviate(&data.class_names),
                spec.name,
                spec.classes
            ),
        ));
    }
    Ok(())
}

/// Up to six names, then how many more.
fn abbreviate(names: &[String]) -> String {
    let mut s = names.iter().take(6).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 6 {
        s += &format!(", … {} more", names.len() - 6);
    }
    s
}
