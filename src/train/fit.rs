//! A training run: epochs of steps, a learning-rate schedule, metrics read back every few steps, and
//! an evaluation after every epoch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

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
    /// Set (e.g. by a SIGINT handler) to stop after the current step; the run then ends with
    /// [`Summary::interrupted`] and its [`Position`], ready to be saved and resumed.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for TrainConfig {
    /// One shuffled epoch from seed 1, constant learning rate, metrics every 20 steps.
    fn default() -> Self {
        TrainConfig {
            epochs: 1,
            seed: 1,
            shuffle: true,
            max_steps: None,
            log_every: 20,
            schedule: Schedule::Constant,
            stop: None,
        }
    }
}

impl TrainConfig {
    /// Updates the whole run makes: `epochs` epochs of `steps_per_epoch`, or `max_steps` if fewer.
    pub fn total_steps(&self, steps_per_epoch: usize) -> usize {
        let all = self.epochs.saturating_mul(steps_per_epoch);
        self.max_steps.map_or(all, |m| m.min(all))
    }
}

/// Where a run is: enough to continue it bit-identically (with the same settings, data and the
/// checkpoint's weights and optimizer state).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// The epoch in progress or next (1-based).
    pub epoch: usize,
    /// Steps of that epoch already done.
    pub step_in_epoch: usize,
    /// Steps of the whole run done.
    pub steps: usize,
    /// Training images seen by the whole run.
    pub images: usize,
    /// The shuffling generator's state before this epoch's shuffle.
    pub rng: u64,
    /// The epoch's sums so far: loss, correct predictions, images (its report covers the whole epoch).
    pub loss_sum: f64,
    pub correct: u64,
    pub seen: usize,
}

impl Position {
    /// The start of a run with shuffling seed `seed`.
    pub fn start(seed: u64) -> Position {
        Position { epoch: 1, rng: seed ^ 0x005E_ED0F_E90C, ..Position::default() }
    }
}

/// Learning-rate schedule, as `torch.optim.lr_scheduler` would drive it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
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

/// A finished (or interrupted) run.
#[derive(Clone, Debug)]
pub struct Summary {
    pub epochs: Vec<EpochStats>,
    pub steps: usize,
    pub images: usize,
    pub train_seconds: f64,
    /// The last evaluation: after the last epoch run (also one cut short by `max_steps`), or after
    /// the run when no epoch ran. An interrupted run that evaluated nothing reports NaN and count 0.
    pub test: Evaluation,
    pub dispatches_per_step: usize,
    pub parameters: usize,
    /// The run stopped early because [`TrainConfig::stop`] was set.
    pub interrupted: bool,
    /// Where the run stopped.
    pub position: Position,
}

/// What a run calls besides its events: after every whole epoch, with the trainer and the position
/// after it (e.g. to save a checkpoint).
pub type EpochHook<'a> = &'a mut dyn FnMut(&Trainer, &Position) -> Result<()>;

fn stop_requested(cfg: &TrainConfig) -> bool {
    cfg.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
}

/// How an epoch's steps ended.
#[derive(PartialEq)]
enum EpochEnd {
    Done,
    MaxSteps,
    Interrupted,
}

/// The remaining steps of epoch `pos.epoch`, from `pos.step_in_epoch`, updating `pos` as they go.
fn epoch_steps(
    ctx: &Context,
    trainer: &mut Trainer,
    cfg: &TrainConfig,
    pos: &mut Position,
    (base_lr, total_steps): (f64, usize),
    on_event: &mut dyn FnMut(&Event),
) -> Result<EpochEnd> {
    let (steps_per_epoch, epoch) = (trainer.steps_per_epoch(), pos.epoch);
    let log_every = cfg.log_every.max(1);
    let mut window = (std::time::Instant::now(), 0usize);
    for i in pos.step_in_epoch..steps_per_epoch {
        trainer.optim.set_lr(cfg.schedule.lr(base_lr, epoch, pos.steps, total_steps));
        let b = trainer.step(ctx, i)?;
        (pos.steps, pos.images, pos.step_in_epoch) = (pos.steps + 1, pos.images + b, i + 1);
        window.1 += b;
        crate::fault::after_step(pos.steps);
        let max = cfg.max_steps.is_some_and(|m| pos.steps >= m);
        let interrupted = stop_requested(cfg);
        if (i + 1) % log_every == 0 || i + 1 == steps_per_epoch || max || interrupted {
            let (loss_sum, correct) = trainer.metrics.take(ctx)?; // waits for the GPU
            if !loss_sum.is_finite() {
                return Err(Error::Train(format!(
                    "the loss became {loss_sum} in epoch {epoch} by step {}: training diverged; try a smaller --lr",
                    i + 1
                )));
            }
            (pos.loss_sum, pos.correct, pos.seen) =
                (pos.loss_sum + loss_sum, pos.correct + correct, pos.seen + window.1);
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
        if interrupted {
            return Ok(EpochEnd::Interrupted);
        }
        if max && i + 1 < steps_per_epoch {
            return Ok(EpochEnd::MaxSteps);
        }
    }
    Ok(EpochEnd::Done)
}

/// Train `trainer` for the configured epochs (or steps), evaluating on `test` after each epoch.
pub fn fit(
    ctx: &Context,
    trainer: &mut Trainer,
    test: &Evaluator,
    cfg: &TrainConfig,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Summary> {
    fit_from(ctx, trainer, test, cfg, Position::start(cfg.seed), on_event, &mut |_, _| Ok(()))
}

/// [`fit`] from position `start` (a run resumed from a checkpoint, or [`Position::start`]), calling
/// `on_epoch` after every whole epoch.
pub fn fit_from(
    ctx: &Context,
    trainer: &mut Trainer,
    test: &Evaluator,
    cfg: &TrainConfig,
    start: Position,
    on_event: &mut dyn FnMut(&Event),
    on_epoch: EpochHook<'_>,
) -> Result<Summary> {
    trainer.set_seed(cfg.seed);
    let total_steps = cfg.total_steps(trainer.steps_per_epoch());
    // The schedule's base: the optimizer's rate as the run starts (the schedule then overwrites it).
    let base_lr = trainer.optim.opt.lr();
    let mut pos = start;
    let (mut epochs, mut train_seconds, mut last, mut end) = (Vec::new(), 0.0f64, None, EpochEnd::Done);
    while pos.epoch <= cfg.epochs && pos.steps < total_steps {
        let mut rng = Rng::new(pos.rng);
        trainer.set_epoch(pos.epoch);
        trainer.start_epoch(ctx, if cfg.shuffle { Some(&mut rng) } else { None })?;
        trainer.metrics.take(ctx)?;
        let t0 = std::time::Instant::now();
        end = epoch_steps(ctx, trainer, cfg, &mut pos, (base_lr, total_steps), on_event)?;
        let seconds = t0.elapsed().as_secs_f64();
        train_seconds += seconds;
        if end == EpochEnd::Interrupted {
            break;
        }
        let eval = test.run(ctx)?;
        let stats = EpochStats {
            epoch: pos.epoch,
            train_loss: pos.loss_sum / pos.seen.max(1) as f64,
            train_accuracy: pos.correct as f64 / pos.seen.max(1) as f64,
            test: eval,
            seconds,
            images_per_sec: pos.seen as f64 / seconds.max(1e-9),
        };
        on_event(&Event::Epoch(stats.clone()));
        epochs.push(stats);
        last = Some(eval);
        if end == EpochEnd::Done {
            pos = Position { epoch: pos.epoch + 1, rng: rng.state(), ..pos };
            (pos.step_in_epoch, pos.loss_sum, pos.correct, pos.seen) = (0, 0.0, 0, 0);
            on_epoch(trainer, &pos)?;
        }
        if end == EpochEnd::MaxSteps || stop_requested(cfg) {
            end = if stop_requested(cfg) { EpochEnd::Interrupted } else { end };
            break;
        }
    }
    let interrupted = end == EpochEnd::Interrupted;
    let test = match last {
        Some(e) => e,
        None if interrupted => Evaluation { loss: f64::NAN, accuracy: f64::NAN, correct: 0, count: 0 },
        None => test.run(ctx)?,
    };
    Ok(Summary {
        epochs,
        steps: pos.steps,
        images: pos.images,
        train_seconds,
        test,
        dispatches_per_step: trainer.dispatches_per_step(),
        parameters: trainer.params.count(),
        interrupted,
        position: pos,
    })
}
