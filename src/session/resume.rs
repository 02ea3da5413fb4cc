//! What `wgcnn train` records to continue a run exactly (`--resume`), and its saves: at the end, after
//! every epoch (`--save-every-epoch`) and when interrupted.
//!
//! The record goes into the optimizer file's metadata ([`checkpoint::training::RUN_KEY`]): the
//! settings that shape the run's arithmetic (optimizer and base learning rate, batch size, epochs,
//! step limit, seed, shuffling, schedule), the training data's size and digest, and the
//! [`Position`]. `train --init X --resume` takes all of them from X, so the continued run performs the
//! same updates, in the same order, on the same batches as one that was never stopped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, format::Reader, training::RUN_KEY};
use crate::context::Context;
use crate::data::{Augment, Dataset};
use crate::error::{Error, Result};
use crate::model::ModelState;
use crate::session::train::TrainOptions;
use crate::train::{Optimizer, Position, Schedule, Trainer};

/// Where an interrupted run is saved when `--save` was not given.
pub const INTERRUPTED_PATH: &str = "wgcnn-interrupted.safetensors";

/// A run's settings, data and position, as recorded in a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The optimizer with its base learning rate (before any schedule).
    pub optimizer: Optimizer,
    pub batch_size: usize,
    pub epochs: usize,
    pub max_steps: Option<usize>,
    pub seed: u64,
    pub shuffle: bool,
    pub schedule: Schedule,
    /// The augmentation of the training pictures (none in records of older runs).
    #[serde(default)]
    pub augment: Augment,
    /// Training images and their digest: a resumed run must see the same data.
    pub train_images: usize,
    pub data_digest: String,
    pub position: Position,
}

impl RunRecord {
    pub fn new(opts: &TrainOptions, data: &RunData, position: Position) -> RunRecord {
        RunRecord {
            optimizer: opts.optimizer,
            batch_size: opts.batch_size,
            epochs: opts.config.epochs,
            max_steps: opts.config.max_steps,
            seed: opts.config.seed,
            shuffle: opts.config.shuffle,
            schedule: opts.config.schedule,
            augment: opts.augment,
            train_images: data.images,
            data_digest: data.digest.clone(),
            position,
        }
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The training data's identity.
#[derive(Clone, Debug)]
pub struct RunData {
    pub images: usize,
    pub digest: String,
}

impl RunData {
    pub fn of(d: &Dataset) -> RunData {
        RunData { images: d.len(), digest: checkpoint::digest(&[&d.labels, &d.images]) }
    }
}

/// The run record saved beside checkpoint `init`, read from its optimizer file's header (the pair is
/// checked when the optimizer state is loaded).
pub fn read_record(init: &Path) -> Result<RunRecord> {
    let opath = checkpoint::optim_path(init);
    let err = |d: String| Error::Checkpoint { path: opath.display().to_string(), detail: d };
    if !opath.exists() {
        return Err(err(format!(
            "--resume needs the training state saved beside {} and there is none: without --resume, \
             --init starts a new run from its weights",
            init.display()
        )));
    }
    let r = Reader::open(&opath)?;
    let text = r.metadata.get(RUN_KEY).ok_or_else(|| {
        err("records no run to resume (saved by an older wgcnn or through the library): use --init without --resume".into())
    })?;
    serde_json::from_str(text).map_err(|e| err(format!("its run record is unreadable: {e}")))
}

/// `opts` with the recorded run's settings (`--epochs`, when given, extends or shortens the run).
pub fn apply(opts: &TrainOptions, r: &RunRecord) -> Result<TrainOptions> {
    let mut o = opts.clone();
    o.optimizer = r.optimizer;
    o.batch_size = r.batch_size;
    o.seed = r.seed;
    o.config.seed = r.seed;
    o.config.shuffle = r.shuffle;
    o.config.schedule = r.schedule;
    o.config.max_steps = r.max_steps;
    o.augment = r.augment;
    if !opts.epochs_given {
        o.config.epochs = r.epochs;
    }
    let p = &r.position;
    if p.epoch > o.config.epochs || r.max_steps.is_some_and(|m| p.steps >= m) {
        return Err(Error::Train(format!(
            "the run is complete ({} steps, {} of {} epochs): pass --epochs N with a larger N to continue it",
            p.steps,
            p.epoch - 1,
            o.config.epochs
        )));
    }
    Ok(o)
}

/// Check that a resumed run sees the data it was trained on.
pub fn check_data(r: &RunRecord, data: &RunData, dir: &Path) -> Result<()> {
    if r.train_images != data.images || r.data_digest != data.digest {
        return Err(Error::Train(format!(
            "--resume: the training data in {} ({} images, digest {}) is not the run's ({} images, digest {}): \
             pass the same --data",
            dir.display(),
            data.images,
            data.digest,
            r.train_images,
            r.data_digest
        )));
    }
    Ok(())
}

/// Save the trainer (whose model state is `state`) with its run record to `path` (and the optimizer
/// file beside it).
pub fn save(ctx: &Context, path: &Path, trainer: &Trainer, state: &ModelState, record: &RunRecord) -> Result<()> {
    checkpoint::save_pair(ctx, path, trainer, state, Some(&record.to_json()))
}

/// Bytes a checkpoint pair of `trainer`'s model takes, about (for the test write before training).
pub fn checkpoint_bytes(spec: &crate::model::ModelSpec, opt: &Optimizer) -> (u64, u64) {
    let values = |ps: Vec<crate::model::ParamSpec>| ps.iter().map(|p| p.len() as u64).sum::<u64>();
    let (params, buffers) = (values(spec.params()), values(spec.buffers()));
    let header = 64 << 10;
    (4 * (params + buffers) + header, 4 * params * opt.state_names().len() as u64 + header)
}

/// Where an interrupted run goes: `--save`, or [`INTERRUPTED_PATH`].
pub fn interrupted_path(opts: &TrainOptions) -> PathBuf {
    opts.save.clone().unwrap_or_else(|| PathBuf::from(INTERRUPTED_PATH))
}
