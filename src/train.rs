//! Training and evaluation on the GPU: the dataset and a per-epoch permutation live on the device, and
//! a whole step (gather, forward, loss, metrics, backward, optimizer) is one encoder and one submit.

use crate::context::Context;
use crate::data::{Dataset, GpuDataset};
use crate::error::{Error, Result};
use crate::graph::{Arena, Graph, Metrics, Params};
use crate::kernels::gather::{gather_batch, gather_params};
use crate::kernels::optim::{adam_update, sgd_update, Adam, Sgd};
use crate::kernels::Launch;
use crate::model::ModelSpec;
use crate::rng::Rng;
use crate::tensor::{DType, Tensor};

/// Which optimizer, with `torch.optim` semantics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
}

impl Optimizer {
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd(_) => "sgd",
            Optimizer::Adam(_) => "adam",
        }
    }
    /// The learning rate the updates start from.
    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::Sgd(s) => s.lr,
            Optimizer::Adam(a) => a.lr,
        }
    }
    /// Check every setting in the precision the update kernel uses, before any GPU work.
    pub fn check(&self) -> Result<()> {
        match self {
            Optimizer::Sgd(s) => s.params(1, 1).map(|_| ()),
            Optimizer::Adam(a) => a.params(1, 1).map(|_| ()),
        }
    }
    /// Names of the state tensors per parameter, as PyTorch's optimizer `state` calls them.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Sgd(_) => &["momentum_buffer"],
            Optimizer::Adam(_) => &["exp_avg", "exp_avg_sq"],
        }
    }
}

/// The optimizer's state arena (one copy of the parameter layout per state tensor) and its one launch.
pub struct OptimizerState {
    pub opt: Optimizer,
    pub state: Arena,
    /// Updates applied so far (PyTorch's `step`).
    pub step: u64,
    launch: Launch,
}

impl OptimizerState {
    pub fn new(ctx: &Context, opt: Optimizer, params: &Params) -> Result<OptimizerState> {
        let copies = opt.state_names().len();
        let state = Arena::new(ctx, "optim", &params.specs, copies)?;
        let (p, g) = (&params.values.whole, &params.grads.whole);
        // Views of the state arena's halves, each the size of the parameter arena.
        let half = |i: usize| Tensor {
            offset: i as u64 * p.byte_len(),
            shape: p.shape.clone(),
            label: format!("optim.{}", opt.state_names()[i]),
            ..state.whole.clone()
        };
        let launch = match opt {
            Optimizer::Sgd(s) => sgd_update(ctx, "optim.sgd", &s, 1, g, p, &half(0))?,
            Optimizer::Adam(a) => adam_update(ctx, "optim.adam", &a, 1, g, p, &half(0), &half(1))?,
        };
        Ok(OptimizerState { opt, state, step: 0, launch })
    }

    /// Set the learning rate of the coming updates (a schedule, like `torch.optim.lr_scheduler`).
    pub fn set_lr(&mut self, lr: f64) {
        match &mut self.opt {
            Optimizer::Sgd(s) => s.lr = lr,
            Optimizer::Adam(a) => a.lr = lr,
        }
    }

    /// Prepare the params of the next update (step + 1) and count it.
    fn advance(&mut self, ctx: &Context, len: usize) -> Result<()> {
        self.step += 1;
        match self.opt {
            Optimizer::Sgd(s) => self.launch.set_params(ctx, &s.params(len, self.step)?),
            Optimizer::Adam(a) => self.launch.set_params(ctx, &a.params(len, self.step)?),
        }
        Ok(())
    }
}

/// A graph with the gather launch that feeds it.
struct Feeder {
    graph: Graph,
    gather: Launch,
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
}

/// Pixel scale: inputs are x / 255.
pub const DIVISOR: f32 = 255.0;

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
        if [1, data.rows, data.cols] != spec.input {
            return Err(Error::Train(format!(
                "the data's images are {}x{}, {} expects {:?}",
                data.rows, data.cols, spec.name, spec.input
            )));
        }
        let params = Params::new(ctx, &spec)?;
        params.values.write(ctx, init)?;
        let optim = OptimizerState::new(ctx, opt, &params)?;
        let train = GpuDataset::upload(ctx, "train", data)?;
        let perm = Tensor::zeros(ctx, "train.permutation", &[data.len()], DType::U32)?;
        let metrics = Metrics::new(ctx, "train")?;
        let batch = batch_size.min(data.len());
        let feeder = |b: usize| -> Result<Feeder> {
            let graph = Graph::build(ctx, &spec, &params, &metrics, b, true)?;
            let gather =
                gather_batch(ctx, "gather", DIVISOR, &train.images, &train.labels, &perm, 0, &graph.x, &graph.labels)?;
            Ok(Feeder { graph, gather })
        };
        let full = feeder(batch)?;
        let rest = data.len() % batch;
        let tail = if rest > 0 { Some(feeder(rest)?) } else { None };
        Ok(Trainer { spec, params, optim, batch_size: batch, train, perm, full, tail, metrics })
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
        self.full.gather.dispatches() + self.full.graph.dispatches() + 1
    }

    /// The launches of a full step in recording order (gather, forward, metrics, backward, optimizer),
    /// e.g. to time each one.
    pub fn step_launches(&self) -> Vec<&Launch> {
        let mut v = vec![&self.full.gather];
        v.extend(self.full.graph.launches());
        v.push(&self.optim.launch);
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
        f.gather.set_params(
            ctx,
            &gather_params(DIVISOR, &self.train.images, &self.train.labels, &self.perm, first, &g.x, &g.labels)?,
        );
        self.optim.advance(ctx, self.params.values.whole.len())?;
        let optimizer = &self.optim.launch;
        ctx.submit_pass("train.step", |pass| {
            f.gather.record(pass);
            g.record_forward(pass);
            g.record_backward(pass);
            optimizer.record(pass);
        })?;
        Ok(g.batch)
    }
}

/// Forward-only evaluation over a whole dataset, sharing a trainer's (or a loaded model's) parameters.
pub struct Evaluator {
    /// Images per forward pass.
    pub batch: usize,
    data: GpuDataset,
    order: Tensor,
    feeders: Vec<(usize, Feeder)>,
    metrics: Metrics,
}

/// Loss and accuracy over a dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub correct: u64,
    pub count: usize,
}

impl Evaluator {
    pub fn new(ctx: &Context, spec: &ModelSpec, params: &Params, data: &Dataset, batch: usize) -> Result<Evaluator> {
        let gpu = GpuDataset::upload(ctx, "eval", data)?;
        let order: Vec<u32> = (0..data.len() as u32).collect();
        let order = Tensor::from_u32(ctx, "eval.order", &[data.len()], &order)?;
        let metrics = Metrics::new(ctx, "eval")?;
        let batch = batch.clamp(1, data.len().max(1));
        let mut feeders = Vec::new();
        for (first, b) in [(0, batch), (data.len() - data.len() % batch, data.len() % batch)] {
            if b == 0 {
                continue;
            }
            let graph = Graph::build(ctx, spec, params, &metrics, b, false)?;
            let gather = gather_batch(
                ctx,
                "eval.gather",
                DIVISOR,
                &gpu.images,
                &gpu.labels,
                &order,
                first,
                &graph.x,
                &graph.labels,
            )?;
            feeders.push((b, Feeder { graph, gather }));
        }
        Ok(Evaluator { batch, data: gpu, order, feeders, metrics })
    }

    /// Loss (mean over samples) and accuracy; one submit per batch, one readback at the end.
    pub fn run(&self, ctx: &Context) -> Result<Evaluation> {
        self.metrics.take(ctx)?;
        let n = self.data.len;
        let mut first = 0;
        while first < n {
            let (b, f) = self.feeders.iter().find(|(b, _)| first + b <= n).expect("a feeder fits the rest");
            f.gather.set_params(
                ctx,
                &gather_params(
                    DIVISOR,
                    &self.data.images,
                    &self.data.labels,
                    &self.order,
                    first,
                    &f.graph.x,
                    &f.graph.labels,
                )?,
            );
            ctx.submit_pass("eval", |pass| {
                f.gather.record(pass);
                f.graph.record_forward(pass);
            })?;
            first += b;
        }
        let (loss, correct) = self.metrics.take(ctx)?;
        Ok(Evaluation { loss: loss / n as f64, accuracy: correct as f64 / n as f64, correct, count: n })
    }
}

/// Settings of a training run.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Seed of the per-epoch shuffling.
    pub seed: u64,
    /// Shuffle the training set each epoch (seeded); otherwise file order.
    pub shuffle: bool,
    /// Stop after this many steps in total.
    pub max_steps: Option<usize>,
    /// Read loss and accuracy back every this many steps.
    pub log_every: usize,
    /// How the learning rate moves from the optimizer's over the run.
    pub schedule: Schedule,
}

/// Learning-rate schedule, as `torch.optim.lr_scheduler` would drive it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The optimizer's learning rate throughout.
    Constant,
    /// Multiply by `gamma` after every epoch (`StepLR(step_size=1, gamma)`).
    Step { gamma: f64 },
    /// Cosine from the base rate down to 0 over all the run's steps (`CosineAnnealingLR(T_max=steps,
    /// eta_min=0)` stepped after every batch).
    Cosine,
}

impl Schedule {
    /// Learning rate of update `step` (0-based) of `total`, in epoch `epoch` (1-based).
    pub fn lr(&self, base: f64, epoch: usize, step: usize, total: usize) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { gamma } => base * gamma.powi(epoch as i32 - 1),
            Schedule::Cosine => {
                let t = step.min(total) as f64 / total.max(1) as f64;
                base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// What a run reports as it goes.
#[derive(Clone, Debug)]
pub enum Event {
    /// Mean training loss and accuracy over the steps since the last report.
    Step {
        epoch: usize,
        step: usize,
        steps_per_epoch: usize,
        loss: f64,
        accuracy: f64,
        images_per_sec: f64,
    },
    Epoch(EpochStats),
}

/// One epoch's figures.
#[derive(Clone, Debug)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test: Evaluation,
    pub seconds: f64,
    pub images_per_sec: f64,
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct Summary {
    pub epochs: Vec<EpochStats>,
    pub steps: usize,
    pub images: usize,
    pub train_seconds: f64,
    pub test: Evaluation,
    pub dispatches_per_step: usize,
    pub parameters: usize,
}

/// Train `trainer` for the configured epochs (or steps), evaluating on `test` after each epoch.
pub fn fit(
    ctx: &Context,
    trainer: &mut Trainer,
    test: &Evaluator,
    cfg: &TrainConfig,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Summary> {
    let mut rng = Rng::new(cfg.seed ^ 0x005E_ED0F_E90C);
    let steps_per_epoch = trainer.steps_per_epoch();
    let log_every = cfg.log_every.max(1);
    let (mut steps, mut images, mut train_seconds) = (0usize, 0usize, 0.0f64);
    let mut epochs = Vec::new();
    let mut last = None;
    let base_lr = trainer.optim.opt.lr();
    let total_steps = cfg.max_steps.map_or(cfg.epochs * steps_per_epoch, |m| m.min(cfg.epochs * steps_per_epoch));
    'epochs: for epoch in 1..=cfg.epochs {
        trainer.start_epoch(ctx, if cfg.shuffle { Some(&mut rng) } else { None })?;
        trainer.metrics.take(ctx)?;
        let t0 = std::time::Instant::now();
        let mut window = (std::time::Instant::now(), 0usize);
        let (mut epoch_loss, mut epoch_correct, mut epoch_seen) = (0.0, 0u64, 0usize);
        let mut stop = false;
        for i in 0..steps_per_epoch {
            trainer.optim.set_lr(cfg.schedule.lr(base_lr, epoch, steps, total_steps));
            let b = trainer.step(ctx, i)?;
            steps += 1;
            images += b;
            window.1 += b;
            stop = cfg.max_steps.is_some_and(|m| steps >= m);
            if (i + 1) % log_every == 0 || i + 1 == steps_per_epoch || stop {
                let (loss_sum, correct) = trainer.metrics.take(ctx)?; // waits for the GPU
                if !loss_sum.is_finite() {
                    return Err(Error::Train(format!(
                        "the loss became {loss_sum} in epoch {epoch} by step {}; try a smaller --lr",
                        i + 1
                    )));
                }
                epoch_loss += loss_sum;
                epoch_correct += correct;
                epoch_seen += window.1;
                let secs = window.0.elapsed().as_secs_f64();
                on_event(&Event::Step {
                    epoch,
                    step: i + 1,
                    steps_per_epoch,
                    loss: loss_sum / window.1 as f64,
                    accuracy: correct as f64 / window.1 as f64,
                    images_per_sec: window.1 as f64 / secs.max(1e-9),
                });
                window = (std::time::Instant::now(), 0);
            }
            if stop {
                break;
            }
        }
        let seconds = t0.elapsed().as_secs_f64();
        train_seconds += seconds;
        let eval = test.run(ctx)?;
        let stats = EpochStats {
            epoch,
            train_loss: epoch_loss / epoch_seen.max(1) as f64,
            train_accuracy: epoch_correct as f64 / epoch_seen.max(1) as f64,
            test: eval,
            seconds,
            images_per_sec: epoch_seen as f64 / seconds.max(1e-9),
        };
        on_event(&Event::Epoch(stats.clone()));
        epochs.push(stats);
        last = Some(eval);
        if stop {
            break 'epochs;
        }
    }
    let test = match last {
        Some(e) => e,
        None => test.run(ctx)?,
    };
    Ok(Summary {
        epochs,
        steps,
        images,
        train_seconds,
        test,
        dispatches_per_step: trainer.dispatches_per_step(),
        parameters: trainer.params.count(),
    })
}

/// Class probabilities of prepared inputs (each `c·h·w` values in [0, 1]), forward only.
pub fn predict(ctx: &Context, spec: &ModelSpec, params: &Params, inputs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
    let [c, h, w] = spec.input;
    if let Some((i, x)) = inputs.iter().enumerate().find(|(_, x)| x.len() != c * h * w) {
        return Err(Error::Train(format!("input {i} has {} values, {} expects {c}x{h}x{w}", x.len(), spec.name)));
    }
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    let metrics = Metrics::new(ctx, "predict")?;
    let graph = Graph::build(ctx, spec, params, &metrics, inputs.len(), false)?;
    graph.x.write_f32(ctx, &inputs.concat())?;
    ctx.submit_pass("predict", |pass| {
        graph.record_forward(pass);
    })?;
    let probs = graph.probs.to_f32(ctx)?;
    Ok(probs.chunks(spec.classes).map(<[f32]>::to_vec).collect())
}
