//! Checkpoints in safetensors, named and laid out as PyTorch's `state_dict()` (`conv1.weight` as
//! `[out, in, kh, kw]`, `fc1.weight` as `[out, in]`), so `safetensors.torch.load_file` feeds
//! `load_state_dict` directly. Optimizer state goes to a second file beside it
//! (`NAME.optim.safetensors`) so the model file holds exactly the module's parameters.
//! Files are written atomically: a temporary file in the same folder, then a rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Error, Result};
use crate::model::ParamSpec;

fn ckpt_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.display().to_string(), detail: detail.into() }
}

/// The optimizer-state file that goes with model file `path`.
pub fn optim_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{stem}.optim.safetensors"))
}

/// The folder `path` would be written into, or an error naming it when it does not exist (checked
/// before long work, so that a run does not fail only when it saves).
pub fn output_dir(path: &Path) -> Result<&Path> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(io_err(dir, std::io::Error::new(std::io::ErrorKind::NotFound, "folder does not exist")));
    }
    Ok(dir)
}

/// Write `bytes` to `path` atomically (temp file + fsync + rename): a crash leaves the old file whole.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = output_dir(path)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

/// A tensor's values: f32 (parameters, buffers, optimizer state) or int64 (`num_batches_tracked`).
#[derive(Clone, Copy, Debug)]
pub enum Data<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
}

/// Serialize named tensors with string metadata.
pub fn to_bytes(tensors: &[(String, Vec<usize>, Data<'_>)], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let bytes: Vec<(safetensors::Dtype, Vec<u8>)> = tensors
        .iter()
        .map(|(_, _, v)| match v {
            Data::F32(v) => (safetensors::Dtype::F32, bytemuck::cast_slice(v).to_vec()),
            Data::I64(v) => (safetensors::Dtype::I64, bytemuck::cast_slice(v).to_vec()),
        })
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), (dtype, b))| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), b).map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Checkpoint { path: String::new(), detail: e.to_string() })?;
    let meta = Some(metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    safetensors::serialize(views, meta).map_err(|e| Error::Checkpoint { path: String::new(), detail: e.to_string() })
}

/// A checkpoint read back: f32 tensors, int64 tensors and metadata.
pub struct Loaded {
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub ints: BTreeMap<String, (Vec<usize>, Vec<i64>)>,
    pub metadata: BTreeMap<String, String>,
}

/// Read a safetensors file of f32 (and int64) tensors.
pub fn read(path: &Path) -> Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| ckpt_err(path, format!("not a valid safetensors file: {e}")))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| ckpt_err(path, e.to_string()))?;
    let metadata =
        meta.metadata().as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    let (mut tensors, mut ints) = (BTreeMap::new(), BTreeMap::new());
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        match view.dtype() {
            safetensors::Dtype::F32 => {
                tensors.insert(name, (shape, bytemuck::pod_collect_to_vec(view.data())));
            }
            safetensors::Dtype::I64 => {
                ints.insert(name, (shape, bytemuck::pod_collect_to_vec(view.data())));
            }
            other => return Err(ckpt_err(path, format!("{name} is {other:?}, wgcnn reads F32 (and I64 counters)"))),
        }
    }
    Ok(Loaded { tensors, ints, metadata })
}

/// Check that a loaded checkpoint holds exactly the f32 tensors `floats` and the int64 ones `ints`.
fn same_names(path: &Path, loaded: &Loaded, floats: &[String], ints: &[String]) -> Result<()> {
    let mut missing: Vec<&String> = floats.iter().filter(|n| !loaded.tensors.contains_key(*n)).collect();
    missing.extend(ints.iter().filter(|n| !loaded.ints.contains_key(*n)));
    let mut unexpected: Vec<&String> = loaded.tensors.keys().filter(|n| !floats.contains(n)).collect();
    unexpected.extend(loaded.ints.keys().filter(|n| !ints.contains(n)));
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(ckpt_err(
            path,
            format!(
                "does not fit this model: missing {missing:?}, unexpected {unexpected:?} (is it from another model?)"
            ),
        ));
    }
    Ok(())
}

/// Check a loaded checkpoint against `specs` (same names, shapes) and return the values in spec order.
pub fn match_params(path: &Path, loaded: &Loaded, specs: &[ParamSpec], prefix: &str) -> Result<Vec<Vec<f32>>> {
    let want: Vec<String> = specs.iter().map(|p| format!("{prefix}{}", p.name)).collect();
    same_names(path, loaded, &want, &[])?;
    values_of(path, loaded, specs, &want)
}

/// A whole model's state from a loaded checkpoint: parameters, buffers and counters, every name and
/// shape checked (as PyTorch's `load_state_dict(strict=True)`).
pub fn match_state(path: &Path, loaded: &Loaded, spec: &ModelSpec) -> Result<ModelState> {
    let (params, buffers, tracked) = (spec.params(), spec.buffers(), spec.tracked());
    let floats: Vec<String> = params.iter().chain(&buffers).map(|p| p.name.clone()).collect();
    same_names(path, loaded, &floats, &tracked)?;
    let counters = tracked
        .iter()
        .map(|n| match &loaded.ints[n] {
            (s, v) if v.len() == 1 && s.len() <= 1 && v[0] >= 0 => Ok(v[0]),
            (s, v) => Err(ckpt_err(path, format!("{n} must be one count >= 0, got shape {s:?} values {v:?}"))),
        })
        .collect::<Result<_>>()?;
    Ok(ModelState {
        params: values_of(path, loaded, &params, &floats[..params.len()])?,
        buffers: values_of(path, loaded, &buffers, &floats[params.len()..])?,
        tracked: counters,
    })
}

/// The values of `specs`, stored under `names`, with their shapes checked and every value finite.
fn values_of(path: &Path, loaded: &Loaded, specs: &[ParamSpec], names: &[String]) -> Result<Vec<Vec<f32>>> {
    specs
        .iter()
        .zip(names)
        .map(|(p, name)| {
            let (shape, values) = &loaded.tensors[name];
            if *shape != p.shape {
                return Err(ckpt_err(path, format!("{name} has shape {shape:?}, this model needs {:?}", p.shape)));
            }
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(ckpt_err(path, format!("{name} holds a non-finite value at element {i}")));
            }
            Ok(values.clone())
        })
        .collect()
}

/// Save f32 tensors (in spec order) with `metadata` to `path`, atomically.
pub fn save_params(
    path: &Path,
    specs: &[ParamSpec],
    values: &[Vec<f32>],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let tensors: Vec<(String, Vec<usize>, Data<'_>)> =
        specs.iter().zip(values).map(|(p, v)| (p.name.clone(), p.shape.clone(), Data::F32(v))).collect();
    let bytes = to_bytes(&tensors, metadata).map_err(|e| relabel(path, e))?;
    write_atomic(path, &bytes)
}

/// Save a model's state (parameters, buffers, counters; spec order) to `path` with the model's
/// description in the metadata, atomically.
pub fn save_model(path: &Path, spec: &ModelSpec, state: &ModelState) -> Result<()> {
    let (params, buffers, tracked) = (spec.params(), spec.buffers(), spec.tracked());
    if state.params.len() != params.len()
        || state.buffers.len() != buffers.len()
        || state.tracked.len() != tracked.len()
    {
        return Err(ckpt_err(path, format!("the state does not fit model {:?}", spec.name)));
    }
    let mut tensors: Vec<(String, Vec<usize>, Data<'_>)> = params
        .iter()
        .zip(&state.params)
        .chain(buffers.iter().zip(&state.buffers))
        .map(|(p, v)| (p.name.clone(), p.shape.clone(), Data::F32(v)))
        .collect();
    for (name, v) in tracked.iter().zip(&state.tracked) {
        tensors.push((name.clone(), Vec::new(), Data::I64(std::slice::from_ref(v))));
    }
    let bytes = to_bytes(&tensors, &model_metadata(spec)).map_err(|e| relabel(path, e))?;
    write_atomic(path, &bytes)
}

fn relabel(path: &Path, e: Error) -> Error {
    match e {
        Error::Checkpoint { detail, .. } => ckpt_err(path, detail),
        e => e,
    }
}

use crate::context::Context;
use crate::kernels::activation::Activation;
use crate::kernels::loss::LossKind;
use crate::kernels::pool::PoolKind;
use crate::model::{file, lenet5, LeNetConfig, ModelSpec, ModelState};
use crate::train::Trainer;

/// Metadata key holding the model description (the canonical model file, see [`file::to_toml`]).
pub const MODEL_KEY: &str = "wgcnn.model_toml";

/// Metadata describing the architecture, so `eval`, `predict`, `visualize` and `--init` rebuild the
/// same model from the checkpoint alone.
pub fn model_metadata(spec: &ModelSpec) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("format".into(), "pt".into());
    m.insert("wgcnn.model".into(), spec.name.clone());
    m.insert(MODEL_KEY.into(), file::to_toml(spec));
    m
}

/// The LeNet configuration recorded by checkpoints of releases before model files (defaults for keys
/// it lacks, e.g. a file written by PyTorch).
fn legacy_lenet(path: &Path, meta: &BTreeMap<String, String>) -> Result<LeNetConfig> {
    if let Some(m) = meta.get("wgcnn.model") {
        if m != "lenet5" {
            return Err(ckpt_err(path, format!("holds a {m:?} model without its description ({MODEL_KEY})")));
        }
    }
    let mut cfg = LeNetConfig::default();
    if let Some(a) = meta.get("wgcnn.activation") {
        cfg.activation = match a.as_str() {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            other => return Err(ckpt_err(path, format!("unknown activation {other:?}"))),
        };
    }
    if let Some(p) = meta.get("wgcnn.pool") {
        cfg.pool = match p.as_str() {
            "max" => PoolKind::Max,
            "avg" => PoolKind::Avg,
            other => return Err(ckpt_err(path, format!("unknown pooling {other:?}"))),
        };
    }
    if let Some(l) = meta.get("wgcnn.loss") {
        cfg.loss = match l.as_str() {
            "xent" => LossKind::CrossEntropy,
            "mse" => LossKind::SquaredError,
            other => return Err(ckpt_err(path, format!("unknown loss {other:?}"))),
        };
    }
    Ok(cfg)
}

/// The model a checkpoint's metadata describes: its model file, or (older checkpoints, or files
/// written by PyTorch without metadata) LeNet-5 with the recorded activation, pooling and loss.
pub fn spec_from_metadata(path: &Path, meta: &BTreeMap<String, String>) -> Result<ModelSpec> {
    match meta.get(MODEL_KEY) {
        Some(text) => file::parse(text).map_err(|e| ckpt_err(path, format!("its model description is wrong: {e}"))),
        None => Ok(lenet5(legacy_lenet(path, meta)?)),
    }
}

/// Load a model checkpoint: the model it describes and its state (checked).
pub fn load_model(path: &Path) -> Result<(ModelSpec, ModelState)> {
    let loaded = read(path)?;
    let spec = spec_from_metadata(path, &loaded.metadata)?;
    let state = match_state(path, &loaded, &spec)?;
    Ok((spec, state))
}

/// Save a trainer's parameters to `path` and its optimizer state (with the step count) beside it.
pub fn save_trainer(ctx: &Context, path: &Path, trainer: &Trainer) -> Result<()> {
    let specs = &trainer.params.specs;
    save_model(path, &trainer.spec, &trainer.params.read_state(ctx)?)?;
    let state = trainer.optim.state.read(ctx)?;
    let mut meta = model_metadata(&trainer.spec);
    meta.insert("wgcnn.optimizer".into(), trainer.optim.opt.name().into());
    meta.insert("wgcnn.step".into(), trainer.optim.step.to_string());
    let names = trainer.optim.opt.state_names();
    let tensors: Vec<(String, Vec<usize>, Data<'_>)> = state
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let p = &specs[i % specs.len()];
            (format!("{}.{}", names[i / specs.len()], p.name), p.shape.clone(), Data::F32(v))
        })
        .collect();
    let opath = optim_path(path);
    let bytes = to_bytes(&tensors, &meta).map_err(|e| relabel(&opath, e))?;
    write_atomic(&opath, &bytes)
}

/// Restore optimizer state saved beside model file `path`, when there is one for the same optimizer.
/// Returns whether state was restored.
pub fn load_optimizer(ctx: &Context, path: &Path, trainer: &mut Trainer) -> Result<bool> {
    let opath = optim_path(path);
    if !opath.is_file() {
        return Ok(false);
    }
    let loaded = read(&opath)?;
    let kind = loaded.metadata.get("wgcnn.optimizer").map(String::as_str).unwrap_or("");
    if kind != trainer.optim.opt.name() {
        log::warn!(
            "{}: optimizer state is for {kind:?}, training uses {}: starting it fresh",
            opath.display(),
            trainer.optim.opt.name()
        );
        return Ok(false);
    }
    let step: u64 = loaded
        .metadata
        .get("wgcnn.step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ckpt_err(&opath, "no wgcnn.step in the metadata"))?;
    let mut values = Vec::new();
    for name in trainer.optim.opt.state_names() {
        values.extend(match_params_subset(&opath, &loaded, &trainer.params.specs, &format!("{name}."))?);
    }
    trainer.optim.state.write(ctx, &values)?;
    trainer.optim.step = step;
    Ok(true)
}

/// Like [`match_params`] for one prefix of a file holding several.
fn match_params_subset(path: &Path, loaded: &Loaded, specs: &[ParamSpec], prefix: &str) -> Result<Vec<Vec<f32>>> {
    let subset = Loaded {
        tensors: loaded
            .tensors
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ints: BTreeMap::new(),
        metadata: BTreeMap::new(),
    };
    match_params(path, &subset, specs, prefix)
}
