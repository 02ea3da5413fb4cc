//! What the command line runs, as library calls: each takes plain options, does the whole job (load
//! data and model, build, run, save) and returns a report that serialises to JSON with serde (valid
//! JSON always: non-finite numbers become `null`). `src/main.rs` only parses arguments and prints.

pub mod bench;
pub mod infer;
pub mod resume;
pub mod train;

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::model::{file, ModelSpec, ModelState};

/// A model named on the command line: a model file (`.toml`: the architecture) or a checkpoint
/// (`.safetensors`: the architecture from its metadata, and the weights).
pub enum ModelSource {
    File(ModelSpec),
    Checkpoint(ModelSpec, ModelState),
}

impl ModelSource {
    /// Read `path` by its extension: `.toml` is a model file, anything else a checkpoint.
    pub fn load(path: &Path) -> Result<ModelSource> {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
            Ok(ModelSource::File(file::load(path)?))
        } else {
            let (spec, values) = checkpoint::load_model(path)?;
            Ok(ModelSource::Checkpoint(spec, values))
        }
    }

    pub fn spec(&self) -> &ModelSpec {
        match self {
            ModelSource::File(s) | ModelSource::Checkpoint(s, _) => s,
        }
    }
}

/// A trained model for `eval`, `predict` and `visualize`, with how its inputs are prepared: a
/// checkpoint; a model file is refused with what to do instead.
pub fn trained_model(path: &Path) -> Result<(ModelSpec, ModelState, crate::data::Preparation)> {
    if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
        return checkpoint::load_prepared(path);
    }
    // A model file that does not parse says so first.
    ModelSource::load(path)?;
    Err(Error::Model {
        at: path.display().to_string(),
        detail: format!(
            "a model file has no weights: train it first (wgcnn train --model {0} --save model.safetensors) \
             and pass the checkpoint",
            path.display()
        ),
    })
}

/// Weights from a file other than the model's own checkpoint (`--weights`, `--init` with `--model`):
/// any safetensors file of the model's tensors under their PyTorch names, e.g. a `state_dict` saved
/// with `safetensors.torch.save_file`.
#[derive(Clone, Debug, Default)]
pub struct Weights {
    pub file: Option<std::path::PathBuf>,
    /// The input preparation to record for them (`None`: the file's, else `x / 255`).
    pub normalize: Option<crate::data::Normalize>,
}

/// [`trained_model`], or with `weights.file`: the architecture of `model` (a model file, or a
/// checkpoint's) and the weights of that file, loaded strictly (a missing `num_batches_tracked` is
/// 0); the preparation is `weights.normalize`, else the weights file's, else `x / 255`.
pub fn trained_model_with(
    model: &Path,
    weights: &Weights,
) -> Result<(ModelSpec, ModelState, crate::data::Preparation)> {
    let Some(w) = &weights.file else {
        if weights.normalize.is_some() {
            return Err(Error::Train("--normalize goes with --weights (a checkpoint records its own)".into()));
        }
        return trained_model(model);
    };
    let spec = ModelSource::load(model)?.spec().clone();
    let (state, prep) = checkpoint::load_weights(w, &spec, &[], 0)?;
    let mut prep = prep.unwrap_or_else(|| crate::data::Preparation::legacy(spec.input, spec.classes));
    if let Some(n) = &weights.normalize {
        if let Some((mean, std)) = n.without_data(spec.input[0]).map_err(Error::Train)? {
            if std.iter().any(|&s| !(s > 0.0 && s.is_finite())) {
                return Err(Error::Train(format!("--normalize: every std must be above 0, got {std:?}")));
            }
            (prep.mean, prep.std) = (mean, std);
        }
    }
    Ok((spec, state, prep))
}

/// The data folder: the one given, or the bundled MNIST sample.
pub fn data_dir(d: Option<&Path>) -> PathBuf {
    d.map(Path::to_path_buf).unwrap_or_else(crate::data::bundled_dir)
}
