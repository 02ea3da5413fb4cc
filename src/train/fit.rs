//! A training run: epochs of steps, a learning-rate schedule, metrics read back every few steps, and
//! an evaluation after every epoch.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::train::{Evaluation, Evaluator, Trainer};

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

/// Counters over a whole run.
struct RunState {
    steps: usize,
    images: usize,
    base_lr: f64,
    total_steps: usize,
}

/// Sums over an epoch's logged windows: loss, correct count, images.
#[derive(Default)]
struct EpochSums {
    loss: f64,
    correct: u64,
    seen: usize,
}

/// The steps of epoch `epoch`; returns its sums and whether `max_steps` was reached.
fn epoch_steps(
    ctx: &Context,
    trainer: &mut Trainer,
    cfg: &TrainConfig,
    epoch: usize,
    run: &mut RunState,
    on_event: &mut dyn FnMut(&Event),
) -> Result<(EpochSums, bool)> {
    let steps_per_epoch = trainer.steps_per_epoch();
    let log_every = cfg.log_every.max(1);
    let mut window = (std::time::Instant::now(), 0usize);
    let mut sums = EpochSums::default();
    for i in 0..steps_per_epoch {
        trainer.optim.set_lr(cfg.schedule.lr(run.base_lr, epoch, run.steps, run.total_steps));
        let b = trainer.step(ctx, i)?;
        run.steps += 1;
        run.images += b;
        window.1 += b;
        let stop = cfg.max_steps.is_some_and(|m| run.steps >= m);
        if (i + 1) % log_every == 0 || i + 1 == steps_per_epoch || stop {
            let (loss_sum, correct) = trainer.metrics.take(ctx)?; // waits for the GPU
            if !loss_sum.is_finite() {
                return Err(Error::Train(format!(
                    "the loss became {loss_sum} in epoch {epoch} by step {}; try a smaller --lr",
                    i + 1
                )));
            }
            sums.loss += loss_sum;
            sums.correct += correct;
            sums.seen += window.1;
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
            return Ok((sums, true));
        }
    }
    Ok((sums, false))
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
    trainer.set_seed(cfg.seed);
    let all = cfg.epochs * trainer.steps_per_epoch();
    let mut run = RunState {
        steps: 0,
        images: 0,
        base_lr: trainer.optim.opt.lr(),
        total_steps: cfg.max_steps.map_or(all, |m| m.min(all)),
    };
    let (mut epochs, mut train_seconds, mut last) = (Vec::new(), 0.0f64, None);
    for epoch in 1..=cfg.epochs {
        trainer.start_epoch(ctx, if cfg.shuffle { Some(&mut rng) } else { None })?;
        trainer.metrics.take(ctx)?;
        let t0 = std::time::Instant::now();
        let (sums, stop) = epoch_steps(ctx, trainer, cfg, epoch, &mut run, on_event)?;
        let seconds = t0.elapsed().as_secs_f64();
        train_seconds += seconds;
        let eval = test.run(ctx)?;
        let stats = EpochStats {
            epoch,
            train_loss: sums.loss / sums.seen.max(1) as f64,
            train_accuracy: sums.correct as f64 / sums.seen.max(1) as f64,
            test: eval,
            seconds,
            images_per_sec: sums.seen as f64 / seconds.max(1e-9),
        };
        on_event(&Event::Epoch(stats.clone()));
        epochs.push(stats);
        last = Some(eval);
        if stop {
            break;
        }
    }
    let test = match last {
        Some(e) => e,
        None => test.run(ctx)?,
    };
    Ok(Summary {
        epochs,
        steps: run.steps,
        images: run.images,
        train_seconds,
        test,
        dispatches_per_step: trainer.dispatches_per_step(),
        parameters: trainer.params.count(),
    })
}
