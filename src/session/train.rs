//! `wgcnn train`: load the data and the model, train, save the model, draw the curves, report.

use std::path::PathBuf;

use serde::Serialize;

use crate::checkpoint;
use crate::context::Context;
use crate::data::{self, Split};
use crate::error::{Error, Result};
use crate::model::{ModelSpec, ModelState};
use crate::session::ModelSource;
use crate::train::{fit, Evaluator, Event, Optimizer, Summary, TrainConfig, Trainer};
use crate::viz::StepPoint;

/// Everything a training run needs.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Folder with train-* and t10k-* IDX files.
    pub data: PathBuf,
    /// The model to train (ignored when `init` is given: the checkpoint says which model it is).
    pub model: ModelSpec,
    pub batch_size: usize,
    pub optimizer: Optimizer,
    pub config: TrainConfig,
    /// Seed of the initialisation (the shuffling's seed is in `config`).
    pub seed: u64,
    /// Start from this checkpoint (and its optimizer state, when saved beside it).
    pub init: Option<PathBuf>,
    pub save: Option<PathBuf>,
    pub plot: Option<PathBuf>,
}

/// Messages of a run, in order.
#[derive(Clone, Debug)]
pub enum Progress<'a> {
    /// The run is set up: model, data, adapter, steps.
    Start {
        model: &'a ModelSpec,
        parameters: usize,
        train: usize,
        test: usize,
        steps_per_epoch: usize,
        adapter: &'a str,
    },
    /// Optimizer state was restored from the `init` checkpoint at this step.
    Resumed(u64),
    Event(&'a Event),
    /// A file was written.
    Wrote(&'a std::path::Path),
}

/// One epoch in the report.
#[derive(Clone, Debug, Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    pub seconds: f64,
    pub images_per_sec: f64,
}

/// What `wgcnn train --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    pub model: String,
    pub optimizer: &'static str,
    pub seed: u64,
    pub data: String,
    pub adapter: String,
    pub parameters: usize,
    pub steps: usize,
    pub images: usize,
    pub train_seconds: f64,
    pub total_seconds: f64,
    pub dispatches_per_step: usize,
    pub submits_per_step: usize,
    pub peak_rss_bytes: Option<u64>,
    pub test_loss: f64,
    pub test_accuracy: f64,
    pub test_correct: u64,
    pub test_count: usize,
    pub epochs: Vec<EpochReport>,
}

/// The model and first weights: the `init` checkpoint's (its architecture wins), or `opts.model`
/// initialised from the seed.
fn starting_point(opts: &TrainOptions) -> Result<(ModelSpec, ModelState)> {
    match &opts.init {
        Some(p) => match ModelSource::load(p)? {
            ModelSource::Checkpoint(spec, values) => Ok((spec, values)),
            ModelSource::File(_) => {
                Err(Error::Train(format!("--init {} is a model file, not a checkpoint", p.display())))
            }
        },
        None => Ok((opts.model.clone(), ModelState::init(&opts.model, opts.seed))),
    }
}

/// Train as `opts` says, telling `progress` as it goes.
pub fn run(opts: &TrainOptions, progress: &mut dyn FnMut(Progress<'_>)) -> Result<TrainReport> {
    let t_start = std::time::Instant::now();
    // Where results go must exist before the run, not only when it ends.
    for p in opts.save.iter().chain(&opts.plot) {
        checkpoint::output_dir(p)?;
    }
    opts.optimizer.check()?;
    let train_set = data::load(&opts.data, Split::Train)?;
    let test_set = data::load(&opts.data, Split::Test)?;
    let (spec, init) = starting_point(opts)?;
    let ctx = Context::new()?;
    let mut trainer = Trainer::new(&ctx, spec.clone(), &train_set, opts.batch_size, opts.optimizer, &init.params)?;
    trainer.params.write_buffers(&ctx, &init)?; // Trainer::new wrote the parameters
    if let Some(p) = &opts.init {
        if checkpoint::load_optimizer(&ctx, p, &mut trainer)? {
            progress(Progress::Resumed(trainer.optim.step));
        }
    }
    let test = Evaluator::new(&ctx, &spec, &trainer.params, &test_set, 1000)?;
    progress(Progress::Start {
        model: &spec,
        parameters: trainer.params.count(),
        train: train_set.len(),
        test: test_set.len(),
        steps_per_epoch: trainer.steps_per_epoch(),
        adapter: &ctx.info.name,
    });
    // Both sets now live on the GPU; the host copies go (peak memory on full data sets).
    drop(train_set);
    drop(test_set);
    let mut points = Vec::new();
    let summary = fit(&ctx, &mut trainer, &test, &opts.config, &mut |e| {
        if let Event::Step { epoch, step, steps_per_epoch, loss, accuracy, .. } = e {
            let at = (*epoch - 1) as f64 + *step as f64 / (*steps_per_epoch).max(1) as f64;
            points.push(StepPoint { at, loss: *loss, accuracy: *accuracy });
        }
        progress(Progress::Event(e));
    })?;
    if let Some(p) = &opts.save {
        checkpoint::save_trainer(&ctx, p, &trainer)?;
        progress(Progress::Wrote(p));
        progress(Progress::Wrote(&checkpoint::optim_path(p)));
    }
    if let Some(p) = &opts.plot {
        crate::viz::plot_training(p, &points, &summary.epochs)?;
        progress(Progress::Wrote(p));
    }
    Ok(report(&summary, &spec, opts, &ctx, t_start.elapsed().as_secs_f64()))
}

fn report(s: &Summary, spec: &ModelSpec, opts: &TrainOptions, ctx: &Context, total: f64) -> TrainReport {
    let epochs = s
        .epochs
        .iter()
        .map(|e| EpochReport {
            epoch: e.epoch,
            train_loss: e.train_loss,
            train_accuracy: e.train_accuracy,
            test_loss: e.test.loss,
            test_accuracy: e.test.accuracy,
            seconds: e.seconds,
            images_per_sec: e.images_per_sec,
        })
        .collect();
    TrainReport {
        model: spec.name.clone(),
        optimizer: opts.optimizer.name(),
        seed: opts.seed,
        data: opts.data.display().to_string(),
        adapter: ctx.info.name.clone(),
        parameters: s.parameters,
        steps: s.steps,
        images: s.images,
        train_seconds: s.train_seconds,
        total_seconds: total,
        dispatches_per_step: s.dispatches_per_step,
        submits_per_step: 1,
        peak_rss_bytes: crate::bench::peak_rss_bytes(),
        test_loss: s.test.loss,
        test_accuracy: s.test.accuracy,
        test_correct: s.test.correct,
        test_count: s.test.count,
        epochs,
    }
}
