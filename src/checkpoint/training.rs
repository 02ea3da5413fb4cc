//! The training state beside a model checkpoint: `NAME.optim.safetensors` holds the optimizer's state
//! tensors (named as PyTorch's optimizer `state`), the update count, and (for `--resume`) the run's
//! settings and position. Its metadata records the digest of the model state it belongs to, so a model
//! file and an optimizer file from different saves are never mixed.
//!
//! A save writes the pair in three steps, so that a crash (kill -9, power loss) at any moment leaves a
//! consistent pair on disk:
//!
//! 1. the optimizer file is written to a hidden pending name (`.NAME.optim.safetensors.pending`);
//! 2. the model file is replaced atomically: this rename is the commit;
//! 3. the pending file is renamed over the optimizer file.
//!
//! A crash before step 2 leaves the old pair (and a pending file the next save replaces); a crash
//! between 2 and 3 leaves the new model, whose digest the pending file carries: loading finishes the
//! save by renaming it (roll forward).

use std::path::{Path, PathBuf};

use super::format::{ckpt_err, Data, Reader};
use super::{model_bytes_prepared, model_metadata, relabel, same_names, state_digest, to_bytes, values_of};
use crate::context::Context;
use crate::error::{io_err, Result};
use crate::fsio::{sync_dir, write_atomic_then};
use crate::model::{ModelState, ParamSpec};
use crate::train::Trainer;

/// Metadata key of the model state's digest in the optimizer file.
pub const DIGEST_KEY: &str = "wgcnn.model_digest";
/// Metadata key of the run's settings and position (JSON), for `--resume`.
pub const RUN_KEY: &str = "wgcnn.run";

/// The optimizer-state file that goes with model file `path`.
pub fn optim_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{stem}.optim.safetensors"))
}

/// Where a save puts the optimizer file before the model file commits it.
fn pending_path(optim: &Path) -> PathBuf {
    let name = optim.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    optim.with_file_name(format!(".{name}.pending"))
}

/// Save a trainer's model to `path` and its optimizer state (with the update count) beside it.
pub fn save_trainer(ctx: &Context, path: &Path, trainer: &Trainer) -> Result<()> {
    save_training(ctx, path, trainer, None)
}

/// Save a trainer's model and optimizer state as a consistent pair (see the module docs), with `run`
/// (the run's settings and position, JSON) in the optimizer file's metadata when given. Non-finite
/// weights or optimizer state are refused before anything is written.
pub fn save_training(ctx: &Context, path: &Path, trainer: &Trainer, run: Option<&str>) -> Result<()> {
    save_pair(ctx, path, trainer, &trainer.params.read_state(ctx)?, run)
}

/// [`save_training`] with the model state already read back from the trainer (`state`).
pub fn save_pair(ctx: &Context, path: &Path, trainer: &Trainer, state: &ModelState, run: Option<&str>) -> Result<()> {
    let model = model_bytes_prepared(path, &trainer.spec, state, Some(&trainer.prep))?;
    // The file the optimizer state replaces (a link's target); a device file or folder is refused.
    let opath = crate::fsio::output_target(&optim_path(path))?;
    let values = trainer.optim.state.read(ctx)?;
    if let Some((i, _)) = values.iter().enumerate().find(|(_, v)| v.iter().any(|x| !x.is_finite())) {
        return Err(ckpt_err(&opath, format!("not written: optimizer state tensor {i} holds a non-finite value")));
    }
    let mut meta = model_metadata(&trainer.spec);
    meta.insert("wgcnn.optimizer".into(), trainer.optim.opt.name().into());
    meta.insert("wgcnn.step".into(), trainer.optim.step.to_string());
    meta.insert(DIGEST_KEY.into(), state_digest(&trainer.spec, state));
    if let Some(r) = run {
        meta.insert(RUN_KEY.into(), r.to_string());
    }
    let specs = &trainer.params.specs;
    let names = trainer.optim.opt.state_names();
    let tensors: Vec<(String, Vec<usize>, Data<'_>)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let p = &specs[i % specs.len()];
            (format!("{}.{}", names[i / specs.len()], p.name), p.shape.clone(), Data::F32(v))
        })
        .collect();
    let optim = to_bytes(&tensors, &meta).map_err(|e| relabel(&opath, e))?;
    let pending = pending_path(&opath);
    write_atomic_then(&pending, &optim, "optim-pending")?;
    crate::fault::point("before-model");
    write_atomic_then(path, &model, "model-tmp")?;
    crate::fault::point("model-committed");
    std::fs::rename(&pending, &opath).map_err(|e| io_err(&opath, e))?;
    sync_dir(crate::fsio::output_dir(&opath)?);
    Ok(())
}

/// What [`load_optimizer`] restored.
#[derive(Clone, Debug)]
pub struct Restored {
    /// Updates applied before the save (PyTorch's `step`).
    pub step: u64,
    /// The run's settings and position (JSON), when the save recorded them.
    pub run: Option<String>,
    /// The save had been interrupted after its model file; loading completed it.
    pub completed_save: bool,
}

fn digest_of(path: &Path) -> Result<Option<String>> {
    if !path.exists() {
        return Ok(None);
    }
    Ok(Reader::open(path)?.metadata.get(DIGEST_KEY).cloned())
}

/// Restore the optimizer state saved beside model file `path` (whose state `trainer` now holds), when
/// there is one for the same optimizer. An optimizer file that belongs to another model state is an
/// error naming both files; one left pending by an interrupted save is completed first.
pub fn load_optimizer(ctx: &Context, path: &Path, trainer: &mut Trainer) -> Result<Option<Restored>> {
    let opath = optim_path(path);
    let pending = pending_path(&opath);
    let want = state_digest(&trainer.spec, &trainer.params.read_state(ctx)?);
    let mut completed_save = false;
    if digest_of(&pending).ok().flatten().as_deref() == Some(want.as_str()) {
        std::fs::rename(&pending, &opath).map_err(|e| io_err(&opath, e))?;
        log::warn!("{}: completed a save that was interrupted after the model file was written", opath.display());
        completed_save = true;
    }
    if !opath.exists() {
        return Ok(None);
    }
    let mut r = Reader::open(&opath)?;
    match r.metadata.get(DIGEST_KEY) {
        Some(d) if *d == want => {}
        found => {
            return Err(ckpt_err(
                &opath,
                format!(
                    "does not belong to {} ({}): it is from another save, an interrupted one or an older wgcnn. \
                     Delete it to start the optimizer afresh from these weights",
                    path.display(),
                    match found {
                        Some(d) => format!("it records model state {d}, the model file is {want}"),
                        None => "it records no model digest".into(),
                    }
                ),
            ))
        }
    }
    let kind = r.metadata.get("wgcnn.optimizer").cloned().unwrap_or_default();
    if kind != trainer.optim.opt.name() {
        log::warn!(
            "{}: optimizer state is for {kind:?}, training uses {}: starting it fresh",
            opath.display(),
            trainer.optim.opt.name()
        );
        return Ok(None);
    }
    let step: u64 = r
        .metadata
        .get("wgcnn.step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ckpt_err(&opath, "no wgcnn.step in the metadata"))?;
    let run = r.metadata.get(RUN_KEY).cloned();
    // Every state tensor of every parameter, in the arena's order (state name, then parameter).
    let specs = &trainer.params.specs;
    let names = trainer.optim.opt.state_names();
    let want: Vec<String> = names.iter().flat_map(|n| specs.iter().map(move |p| format!("{n}.{}", p.name))).collect();
    let all_specs: Vec<ParamSpec> = names.iter().flat_map(|_| specs.iter().cloned()).collect();
    same_names(&r, &want, &[])?;
    let values = values_of(&mut r, &all_specs, &want)?;
    trainer.optim.state.write(ctx, &values)?;
    trainer.optim.step = step;
    Ok(Some(Restored { step, run, completed_save }))
}
