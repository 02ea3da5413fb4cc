//! `wgcnn train`: load the data and the model, train, save the model, draw the curves, report.

use std::cell::RefCell;
use std::path::PathBuf;

use serde::Serialize;

use crate::checkpoint;
use crate::context::Context;
use crate::data::{self, Augment, CifarLabels, LoadOptions, LoadProgress, Normalize, Preparation};
use crate::error::{Error, Result};
use crate::fsio::check_output;
use crate::model::{ModelSpec, ModelState};
use crate::session::resume::{self, RunData, RunRecord};
use crate::session::ModelSource;
use crate::train::{fit_from, Evaluator, Event, Optimizer, Position, Summary, TrainConfig, Trainer};
use crate::viz::StepPoint;

/// Everything a training run needs.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The data folder: IDX files, CIFAR binary files or folders of pictures (see [`crate::data`]).
    pub data: PathBuf,
    /// How inputs are normalised (with `init` and `Auto`: as the checkpoint's were).
    pub normalize: Normalize,
    /// How training pictures are augmented (on the GPU).
    pub augment: Augment,
    /// With one folder of class folders: the fraction of each class held out for validation.
    pub val_split: f64,
    /// CIFAR-100's fine or coarse labels.
    pub cifar_labels: CifarLabels,
    /// Use the decoded-picture cache.
    pub cache: bool,
    /// The model to train (ignored when `init` is given: the checkpoint says which model it is).
    pub model: ModelSpec,
    pub batch_size: usize,
    pub optimizer: Optimizer,
    pub config: TrainConfig,
    /// Seed of the initialisation (the shuffling's seed is in `config`).
    pub seed: u64,
    /// Start from this checkpoint (and its optimizer state, when saved beside it); with
    /// `model_given`, from its weights only, loaded into `model`.
    pub init: Option<PathBuf>,
    /// `model` was chosen (a model file): with `init`, the weights come from `init` and the
    /// architecture from `model`.
    pub model_given: bool,
    /// Layers `init`'s tensors are not taken for: they start from the seed's initialisation.
    pub reset: Vec<String>,
    /// Layers whose weights (and batch-norm statistics) training leaves as they start.
    pub freeze: Vec<String>,
    pub save: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    /// Continue the run recorded in `init` exactly: its settings, data order and position.
    pub resume: bool,
    /// With `resume`: `config.epochs` was given and replaces the recorded number.
    pub epochs_given: bool,
    /// Save the checkpoint pair to `save` after every epoch (the last good one survives a later crash).
    pub save_every_epoch: bool,
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
        /// The run's epochs, batch size and optimizer (a resumed run's come from its checkpoint).
        epochs: usize,
        batch: usize,
        optimizer: &'static str,
    },
    /// Optimizer state was restored from the `init` checkpoint at this step; with `--resume`, the run
    /// continues at this position.
    Resumed(u64, Option<&'a Position>),
    Event(&'a Event),
    /// Loading the data: decoding pictures, the cache, skipped files.
    Data(LoadProgress),
    /// The data and its preparation: the source, class names, normalisation, augmentation.
    Prepared {
        source: &'static str,
        prep: &'a Preparation,
        augment: Augment,
        load_seconds: f64,
    },
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
    /// The base learning rate and the batch size the run used.
    pub lr: f64,
    pub batch_size: usize,
    pub seed: u64,
    pub data: String,
    /// The kind of data source, its class names, and the normalisation the model was trained with.
    pub source: String,
    pub classes: Vec<String>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Seconds spent loading the data (decoding pictures, or reading the cache).
    pub load_seconds: f64,
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

/// The model and first weights: the `init` checkpoint's (its architecture and preparation win), or
/// `opts.model` initialised from the seed.
fn starting_point(opts: &TrainOptions) -> Result<(ModelSpec, ModelState, Option<Preparation>)> {
    match &opts.init {
        Some(p) if ModelSource::load(p).is_ok_and(|m| matches!(m, ModelSource::File(_))) => {
            Err(Error::Train(format!("--init {} is a model file, not a checkpoint", p.display())))
        }
        Some(p) if opts.model_given => {
            crate::train::check_layers(&opts.model, &opts.reset, "--reset")?;
            let (state, prep) = checkpoint::load_weights(p, &opts.model, &opts.reset, opts.seed)?;
            Ok((opts.model.clone(), state, prep))
        }
        Some(p) => {
            let (spec, values, prep) = checkpoint::load_prepared_except(p, &opts.reset, opts.seed)?;
            crate::train::check_layers(&spec, &opts.reset, "--reset")?;
            Ok((spec, values, Some(prep)))
        }
        None if !opts.reset.is_empty() => {
            Err(Error::Train("--reset needs --init (the weights the rest start from)".into()))
        }
        None => Ok((opts.model.clone(), ModelState::init(&opts.model, opts.seed), None)),
    }
}

/// Check every output before long work: a real test write of about the size each file will have.
fn check_outputs(opts: &TrainOptions, spec: &ModelSpec) -> Result<()> {
    if let Some(p) = &opts.save {
        let (model, optim) = resume::checkpoint_bytes(spec, &opts.optimizer);
        check_output(p, model)?;
        check_output(&checkpoint::optim_path(p), optim)?;
    }
    if let Some(p) = &opts.plot {
        check_output(p, 1 << 20)?;
    }
    if opts.save.is_some() && opts.save == opts.plot {
        return Err(Error::Train("--save and --plot name the same file".into()));
    }
    Ok(())
}

/// The message of a run that diverged: which checkpoint, if any, holds the last good weights.
fn diverged(what: &str, opts: &TrainOptions, saved_epoch: Option<usize>) -> Error {
    let kept = match (&opts.save, saved_epoch) {
        (Some(p), Some(n)) => format!("{} holds the last good checkpoint (end of epoch {n})", p.display()),
        (Some(p), None) => format!("nothing was saved: {} is as it was before the run", p.display()),
        (None, _) => "nothing was saved".into(),
    };
    Error::Train(format!("{what}; {kept}"))
}

/// Train as `opts` says, telling `progress` as it goes.
pub fn run(opts: &TrainOptions, progress: &mut dyn FnMut(Progress<'_>)) -> Result<TrainReport> {
    let t_start = std::time::Instant::now();
    let record = match (&opts.init, opts.resume) {
        (Some(p), true) => Some(resume::read_record(p)?),
        (None, true) => return Err(Error::Train("--resume needs --init CHECKPOINT".into())),
        _ => None,
    };
    let resumed;
    let opts = match &record {
        Some(r) => {
            resumed = resume::apply(opts, r)?;
            &resumed
        }
        None => opts,
    };
    opts.optimizer.check()?;
    let (spec, init, init_prep) = starting_point(opts)?;
    crate::train::check_layers(&spec, &opts.freeze, "--freeze")?;
    check_outputs(opts, &spec)?;
    // Before the data is loaded: an impossible crop is known from the model alone.
    opts.augment.check(spec.input)?;
    let load = LoadOptions {
        val_split: opts.val_split,
        seed: opts.config.seed,
        cifar_labels: opts.cifar_labels,
        cache: opts.cache,
        ..LoadOptions::new(spec.input)
    };
    let t_load = std::time::Instant::now();
    let splits = data::load_splits(&opts.data, &load, &mut |p| progress(Progress::Data(p)))?;
    let load_seconds = t_load.elapsed().as_secs_f64();
    let (train_set, test_set) = (splits.train, splits.test);
    // Before the statistics are computed: data of another number of classes is refused first.
    crate::train::check_input(&spec, &train_set)?;
    let prep = preparation(opts, &spec, &train_set, splits.kind, init_prep, record.is_some())?;
    let run_data = RunData::of(&train_set);
    if let Some(r) = &record {
        resume::check_data(r, &run_data, &opts.data)?;
    }
    let ctx = Context::new()?;
    let mut trainer = Trainer::new(&ctx, spec.clone(), &train_set, opts.batch_size, opts.optimizer, &init.params)?;
    trainer.params.write_buffers(&ctx, &init)?; // Trainer::new wrote the parameters
    trainer.set_preparation(&ctx, prep.clone(), opts.augment)?;
    progress(Progress::Prepared { source: splits.kind.name(), prep: &prep, augment: opts.augment, load_seconds });
    let position = match &record {
        Some(r) => r.position.clone(),
        None => Position::start(opts.config.seed),
    };
    if !opts.freeze.is_empty() {
        trainer.freeze(&ctx, &opts.freeze)?;
    }
    // The optimizer state beside a checkpoint continues its own run; weights taken into another
    // model file, or with fresh layers, start a new one.
    let init = opts.init.as_ref().filter(|_| !opts.model_given && opts.reset.is_empty());
    if let Some(p) = init {
        match checkpoint::load_optimizer(&ctx, p, &mut trainer)? {
            Some(r) => progress(Progress::Resumed(r.step, record.as_ref().map(|_| &position))),
            None if record.is_some() => {
                return Err(Error::Train(format!("--resume: no optimizer state beside {} to continue", p.display())))
            }
            None => {}
        }
    }
    let test = Evaluator::prepared(&ctx, &spec, &trainer.params, &test_set, 1000, &prep.transform())?;
    progress(Progress::Start {
        model: &spec,
        parameters: trainer.params.count(),
        train: train_set.len(),
        test: test_set.len(),
        steps_per_epoch: trainer.steps_per_epoch(),
        adapter: &ctx.info.name,
        epochs: opts.config.epochs,
        batch: trainer.batch_size,
        optimizer: opts.optimizer.name(),
    });
    // Both sets now live on the GPU; the host copies go (peak memory on full data sets).
    drop(train_set);
    drop(test_set);
    let summary = train_and_save(&ctx, &mut trainer, &test, opts, &run_data, position, progress)?;
    let mut r = report(&summary, &spec, opts, &ctx, t_start.elapsed().as_secs_f64());
    (r.load_seconds, r.source, r.classes) = (load_seconds, splits.kind.name().to_string(), prep.classes.clone());
    (r.mean, r.std) = (prep.mean.clone(), prep.std.clone());
    Ok(r)
}

/// The run's input preparation: the `init` checkpoint's normalisation when fine-tuning with
/// `--normalize auto` (or resuming), otherwise `opts.normalize` resolved on the training split.
fn preparation(
    opts: &TrainOptions,
    spec: &ModelSpec,
    train: &data::Dataset,
    kind: data::SourceKind,
    init: Option<Preparation>,
    resuming: bool,
) -> Result<Preparation> {
    let keep = resuming || opts.normalize == Normalize::Auto;
    match init {
        // The checkpoint's statistics: nothing to compute.
        Some(p) if keep && p.mean.len() == train.channels => {
            let plain = Preparation::of(spec.input, kind, train, &Normalize::None)?;
            Ok(Preparation { mean: p.mean, std: p.std, ..plain })
        }
        _ => Preparation::of(spec.input, kind, train, &opts.normalize),
    }
}

/// Fit from `position`, saving after every epoch when asked, and at the end (model first, then the
/// plot) or when interrupted.
fn train_and_save(
    ctx: &Context,
    trainer: &mut Trainer,
    test: &Evaluator,
    opts: &TrainOptions,
    data: &RunData,
    position: Position,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Summary> {
    let progress = RefCell::new(progress);
    let mut points = Vec::new();
    let mut saved_epoch = None;
    let fitted = fit_from(
        ctx,
        trainer,
        test,
        &opts.config,
        position,
        &mut |e| {
            if let Event::Step { epoch, step, steps_per_epoch, loss, accuracy, .. } = e {
                let at = (*epoch - 1) as f64 + *step as f64 / (*steps_per_epoch).max(1) as f64;
                points.push(StepPoint { at, loss: *loss, accuracy: *accuracy });
            }
            (progress.borrow_mut())(Progress::Event(e));
        },
        &mut |t, pos| {
            if let (Some(p), true) = (&opts.save, opts.save_every_epoch) {
                resume::save(ctx, p, t, &t.params.read_state(ctx)?, &RunRecord::new(opts, data, pos.clone()))?;
                saved_epoch = Some(pos.epoch - 1);
                (progress.borrow_mut())(Progress::Wrote(p));
            }
            Ok(())
        },
    );
    let summary = match fitted {
        Ok(s) => s,
        Err(Error::Train(what)) => return Err(diverged(&what, opts, saved_epoch)),
        Err(e) => return Err(e),
    };
    let record = RunRecord::new(opts, data, summary.position.clone());
    if summary.interrupted {
        let p = resume::interrupted_path(opts);
        let saved = trainer.params.read_state(ctx).and_then(|state| resume::save(ctx, &p, trainer, &state, &record));
        return Err(match saved {
            Ok(()) => Error::Interrupted(format!(
                "stopped after step {} (epoch {}); saved {} and its optimizer state: continue with \
                 `wgcnn train --init {} --resume`",
                summary.position.steps,
                summary.position.epoch,
                p.display(),
                p.display()
            )),
            Err(e) => {
                Error::Interrupted(format!("stopped after step {}, but saving failed: {e}", summary.position.steps))
            }
        });
    }
    // One readback serves the check and the save.
    let state = trainer.params.read_state(ctx)?;
    if let Some(at) = checkpoint::first_non_finite(&trainer.spec, &state) {
        let what = format!("the trained weights hold a non-finite value ({at}): training diverged");
        return Err(diverged(&what, opts, saved_epoch));
    }
    if let Some(p) = &opts.save {
        resume::save(ctx, p, trainer, &state, &record)?;
        (progress.borrow_mut())(Progress::Wrote(p));
        (progress.borrow_mut())(Progress::Wrote(&checkpoint::optim_path(p)));
    }
    if let Some(p) = &opts.plot {
        crate::viz::plot_training(p, &points, &summary.epochs)?;
        (progress.borrow_mut())(Progress::Wrote(p));
    }
    Ok(summary)
}

fn report(s: &Summary, spec: &ModelSpec, opts: &TrainOptions, ctx: &Context, total: f64) -> TrainReport {
    let test = &s.test;
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
        lr: opts.optimizer.lr(),
        batch_size: opts.batch_size,
        seed: opts.seed,
        data: opts.data.display().to_string(),
        source: String::new(),
        classes: Vec::new(),
        mean: Vec::new(),
        std: Vec::new(),
        load_seconds: 0.0,
        adapter: ctx.info.name.clone(),
        parameters: s.parameters,
        steps: s.steps,
        images: s.images,
        train_seconds: s.train_seconds,
        total_seconds: total,
        dispatches_per_step: s.dispatches_per_step,
        submits_per_step: 1,
        peak_rss_bytes: crate::bench::peak_rss_bytes(),
        test_loss: test.loss,
        test_accuracy: test.accuracy,
        test_correct: test.correct,
        test_count: test.count,
        epochs,
    }
}
