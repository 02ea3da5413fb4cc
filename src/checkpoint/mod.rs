//! Checkpoints in safetensors, named and laid out as PyTorch's `state_dict()` (`conv1.weight` as
//! `[out, in, kh, kw]`, `fc1.weight` as `[out, in]`), so `safetensors.torch.load_file` feeds
//! `load_state_dict` directly. The training state (optimizer state, the run's position) goes to a
//! second file beside it (`NAME.optim.safetensors`, see [`training`]) so the model file holds exactly
//! the module's state. Files are written atomically ([`crate::fsio`]) and byte-identically for
//! identical runs ([`format`]); reading checks the header before any data.

pub mod format;
pub mod training;

use std::collections::BTreeMap;
use std::path::Path;

pub use crate::fsio::{output_dir, write_atomic};
pub use format::{digest, to_bytes, Data, Reader};
pub use training::{load_optimizer, optim_path, save_pair, save_trainer, save_training, Restored};

use crate::data::prep::PREPARATION_KEY;
use crate::data::Preparation;
use crate::error::{Error, Result};
use crate::kernels::activation::Activation;
use crate::kernels::loss::LossKind;
use crate::kernels::pool::PoolKind;
use crate::model::{file, lenet5, LeNetConfig, ModelSpec, ModelState, ParamSpec};
use format::ckpt_err;

/// A checkpoint read back whole: f32 tensors, int64 tensors and metadata.
pub struct Loaded {
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub ints: BTreeMap<String, (Vec<usize>, Vec<i64>)>,
    pub metadata: BTreeMap<String, String>,
}

/// Read every tensor of a safetensors file of f32 (and int64) tensors.
pub fn read(path: &Path) -> Result<Loaded> {
    let mut r = Reader::open(path)?;
    let (mut tensors, mut ints) = (BTreeMap::new(), BTreeMap::new());
    let entries: Vec<(String, format::Entry)> = r.tensors.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (name, e) in entries {
        if e.dtype == "I64" {
            ints.insert(name.clone(), (e.shape, r.i64(&name)?));
        } else {
            tensors.insert(name.clone(), (e.shape, r.f32(&name)?));
        }
    }
    Ok(Loaded { tensors, ints, metadata: r.metadata })
}

/// Check that a checkpoint's header holds exactly the f32 tensors `floats` and the int64 ones `ints`.
pub(crate) fn same_names(r: &Reader, floats: &[String], ints: &[String]) -> Result<()> {
    same_names_but(r, floats, ints, &|_| false)
}

/// [`same_names`], except that the file's tensors for which `ignored` holds are neither required
/// nor unexpected.
fn same_names_but(r: &Reader, floats: &[String], ints: &[String], ignored: &dyn Fn(&str) -> bool) -> Result<()> {
    let is = |n: &String, dtype: &str| r.tensors.get(n).is_some_and(|e| e.dtype == dtype);
    let mut missing: Vec<&String> = floats.iter().filter(|n| !is(n, "F32")).collect();
    missing.extend(ints.iter().filter(|n| !is(n, "I64")));
    let unexpected: Vec<&String> =
        r.tensors.keys().filter(|n| !floats.contains(n) && !ints.contains(n) && !ignored(n)).collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(ckpt_err(
            &r.path,
            format!(
                "does not fit this model: missing {missing:?}, unexpected {unexpected:?} (is it from another model?)"
            ),
        ));
    }
    Ok(())
}

/// Check a checkpoint against `specs` (same names with `prefix`, shapes) and return the values in spec
/// order. Names and shapes are checked from the header before any data is read.
pub fn match_params(r: &mut Reader, specs: &[ParamSpec], prefix: &str) -> Result<Vec<Vec<f32>>> {
    let want: Vec<String> = specs.iter().map(|p| format!("{prefix}{}", p.name)).collect();
    same_names(r, &want, &[])?;
    values_of(r, specs, &want)
}

/// A whole model's state from a checkpoint: parameters, buffers and counters, every name and shape
/// checked (as PyTorch's `load_state_dict(strict=True)`) before any data is read. A missing
/// `num_batches_tracked` counter is taken as 0, as PyTorch accepts it.
pub fn match_state(r: &mut Reader, spec: &ModelSpec) -> Result<ModelState> {
    match_state_except(r, spec, &[], 0)
}

/// The layer a tensor of the state belongs to (`layer1.0.conv1.weight` → `layer1.0.conv1`).
pub fn layer_of(tensor: &str) -> &str {
    tensor.rsplit_once('.').map_or(tensor, |(l, _)| l)
}

/// [`match_state`], except that the tensors of the `reset` layers are neither required nor read
/// (whatever shape the file has for them): they start from PyTorch's initialisation with `seed`, as
/// a new layer would (e.g. a head for another number of classes).
pub fn match_state_except(r: &mut Reader, spec: &ModelSpec, reset: &[String], seed: u64) -> Result<ModelState> {
    let (params, buffers, tracked) = (spec.params(), spec.buffers(), spec.tracked());
    let is_reset = |name: &str| reset.iter().any(|l| l == layer_of(name));
    let all: Vec<ParamSpec> = params.iter().chain(&buffers).cloned().collect();
    let wanted: Vec<ParamSpec> = all.iter().filter(|p| !is_reset(&p.name)).cloned().collect();
    let floats: Vec<String> = wanted.iter().map(|p| p.name.clone()).collect();
    let counters_in: Vec<String> = tracked.iter().filter(|n| r.tensors.contains_key(*n)).cloned().collect();
    // Strict about everything else: the file's tensors of reset layers are left out of the check.
    let of_reset = |n: &str| is_reset(n) && (all.iter().any(|p| p.name == n) || tracked.iter().any(|t| t == n));
    same_names_but(r, &floats, &counters_in, &of_reset)?;
    check_shapes(r, &wanted, &floats)?;
    let mut counters = Vec::with_capacity(tracked.len());
    for n in &tracked {
        if !counters_in.contains(n) || is_reset(n) {
            counters.push(0);
            continue;
        }
        let shape = r.tensors[n].shape.clone();
        match r.i64(n)?.as_slice() {
            [v] if shape.len() <= 1 && *v >= 0 => counters.push(*v),
            v => {
                return Err(ckpt_err(&r.path, format!("{n} must be one count >= 0, got shape {shape:?} values {v:?}")))
            }
        }
    }
    let mut values = values_of(r, &wanted, &floats)?;
    if !reset.is_empty() {
        // Only then a fresh initialisation, whose draws are the seed's whole stream.
        let fresh = ModelState::init(spec, seed);
        let mut fresh = fresh.params.into_iter().chain(fresh.buffers);
        let mut read = values.into_iter();
        values = all
            .iter()
            .map(|p| {
                let f = fresh.next().unwrap_or_default();
                if is_reset(&p.name) {
                    f
                } else {
                    read.next().unwrap_or_default()
                }
            })
            .collect();
    }
    let buffers = values.split_off(params.len());
    Ok(ModelState { params: values, buffers, tracked: counters })
}

fn check_shapes(r: &Reader, specs: &[ParamSpec], names: &[String]) -> Result<()> {
    for (p, name) in specs.iter().zip(names) {
        let shape = &r.tensors[name].shape;
        if *shape != p.shape {
            return Err(ckpt_err(&r.path, format!("{name} has shape {shape:?}, this model needs {:?}", p.shape)));
        }
    }
    Ok(())
}

/// The values of `specs`, stored under `names`, with their shapes checked and every value finite.
pub(crate) fn values_of(r: &mut Reader, specs: &[ParamSpec], names: &[String]) -> Result<Vec<Vec<f32>>> {
    check_shapes(r, specs, names)?;
    names
        .iter()
        .map(|name| {
            let values = r.f32(name)?;
            match values.iter().position(|v| !v.is_finite()) {
                Some(i) => Err(ckpt_err(&r.path, format!("{name} holds a non-finite value at element {i}"))),
                None => Ok(values),
            }
        })
        .collect()
}

/// The first non-finite value of a model state, as "NAME element I", if any.
pub fn first_non_finite(spec: &ModelSpec, state: &ModelState) -> Option<String> {
    let specs = spec.params().into_iter().chain(spec.buffers());
    specs
        .zip(state.params.iter().chain(&state.buffers))
        .find_map(|(p, v)| v.iter().position(|x| !x.is_finite()).map(|i| format!("{} element {i}", p.name)))
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

/// A model state as named tensors in spec order (parameters, buffers, counters), checked against the
/// model and for non-finite values.
fn state_tensors<'a>(
    path: &Path,
    spec: &ModelSpec,
    state: &'a ModelState,
) -> Result<Vec<(String, Vec<usize>, Data<'a>)>> {
    let (params, buffers, tracked) = (spec.params(), spec.buffers(), spec.tracked());
    if state.params.len() != params.len()
        || state.buffers.len() != buffers.len()
        || state.tracked.len() != tracked.len()
    {
        return Err(ckpt_err(path, format!("the state does not fit model {:?}", spec.name)));
    }
    if let Some(at) = first_non_finite(spec, state) {
        return Err(ckpt_err(path, format!("not written: the weights hold a non-finite value ({at})")));
    }
    let mut tensors: Vec<(String, Vec<usize>, Data<'a>)> = params
        .iter()
        .zip(&state.params)
        .chain(buffers.iter().zip(&state.buffers))
        .map(|(p, v)| (p.name.clone(), p.shape.clone(), Data::F32(v)))
        .collect();
    for (name, v) in tracked.iter().zip(&state.tracked) {
        tensors.push((name.clone(), Vec::new(), Data::I64(std::slice::from_ref(v))));
    }
    Ok(tensors)
}

/// The digest of a model state (its tensors' bytes in spec order), recorded in the optimizer file to
/// tie the pair together.
pub fn state_digest(spec: &ModelSpec, state: &ModelState) -> String {
    let names = spec.params().into_iter().chain(spec.buffers()).map(|p| p.name);
    let mut parts: Vec<&[u8]> = Vec::new();
    let owned: Vec<String> = names.collect();
    for (n, v) in owned.iter().zip(state.params.iter().chain(&state.buffers)) {
        parts.push(n.as_bytes());
        parts.push(bytemuck::cast_slice(v));
    }
    parts.push(bytemuck::cast_slice(&state.tracked));
    digest(&parts)
}

/// The bytes of a model checkpoint: its state with the model's description in the metadata.
pub fn model_bytes(path: &Path, spec: &ModelSpec, state: &ModelState) -> Result<Vec<u8>> {
    model_bytes_prepared(path, spec, state, None)
}

/// [`model_bytes`] with the input preparation (normalisation, class names) in the metadata too.
pub fn model_bytes_prepared(
    path: &Path,
    spec: &ModelSpec,
    state: &ModelState,
    prep: Option<&Preparation>,
) -> Result<Vec<u8>> {
    let tensors = state_tensors(path, spec, state)?;
    let mut meta = model_metadata(spec);
    if let Some(p) = prep {
        p.check(spec.input, spec.classes).map_err(|e| ckpt_err(path, format!("not written: preparation: {e}")))?;
        meta.insert(PREPARATION_KEY.into(), p.to_json());
    }
    to_bytes(&tensors, &meta).map_err(|e| relabel(path, e))
}

/// [`save_model`] with the input preparation.
pub fn save_model_prepared(path: &Path, spec: &ModelSpec, state: &ModelState, prep: &Preparation) -> Result<()> {
    write_atomic(path, &model_bytes_prepared(path, spec, state, Some(prep))?)
}

/// The input preparation a checkpoint records (checked against its model), or, for checkpoints
/// without one, [`Preparation::legacy`].
pub fn preparation_from_metadata(
    path: &Path,
    meta: &BTreeMap<String, String>,
    spec: &ModelSpec,
) -> Result<Preparation> {
    let Some(text) = meta.get(PREPARATION_KEY) else {
        return Ok(Preparation::legacy(spec.input, spec.classes));
    };
    let p: Preparation = serde_json::from_str(text)
        .map_err(|e| ckpt_err(path, format!("its input preparation ({PREPARATION_KEY}) is unreadable: {e}")))?;
    p.check(spec.input, spec.classes)
        .map_err(|e| ckpt_err(path, format!("its input preparation does not fit its model: {e}")))?;
    Ok(p)
}

/// [`load_model`] with the input preparation the checkpoint records.
pub fn load_prepared(path: &Path) -> Result<(ModelSpec, ModelState, Preparation)> {
    load_prepared_except(path, &[], 0)
}

/// [`load_prepared`] with the `reset` layers started afresh (see [`match_state_except`]).
pub fn load_prepared_except(path: &Path, reset: &[String], seed: u64) -> Result<(ModelSpec, ModelState, Preparation)> {
    let mut r = Reader::open(path)?;
    let spec = spec_of(&r)?;
    let prep = preparation_from_metadata(&r.path.clone(), &r.metadata, &spec)?;
    let state = match_state_except(&mut r, &spec, reset, seed)?;
    Ok((spec, state, prep))
}

/// [`load_prepared`] on a checkpoint's bytes (`name` names it in errors).
pub fn load_prepared_bytes(name: &Path, bytes: Vec<u8>) -> Result<(ModelSpec, ModelState, Preparation)> {
    let mut r = Reader::from_bytes(name, bytes)?;
    let spec = spec_of(&r)?;
    let prep = preparation_from_metadata(&r.path.clone(), &r.metadata, &spec)?;
    let state = match_state(&mut r, &spec)?;
    Ok((spec, state, prep))
}

/// Save a model's state (parameters, buffers, counters) to `path` with the model's description in the
/// metadata, atomically. Non-finite weights are refused: nothing is written.
pub fn save_model(path: &Path, spec: &ModelSpec, state: &ModelState) -> Result<()> {
    write_atomic(path, &model_bytes(path, spec, state)?)
}

pub(crate) fn relabel(path: &Path, e: Error) -> Error {
    match e {
        Error::Checkpoint { detail, .. } => ckpt_err(path, detail),
        e => e,
    }
}

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
    let pick = |key: &str, what: &str, options: &[&str]| -> Result<Option<usize>> {
        match meta.get(key) {
            None => Ok(None),
            Some(v) => options
                .iter()
                .position(|o| o == v)
                .map(Some)
                .ok_or_else(|| ckpt_err(path, format!("unknown {what} {v:?}"))),
        }
    };
    if let Some(i) = pick("wgcnn.activation", "activation", &["relu", "tanh", "sigmoid"])? {
        cfg.activation = [Activation::Relu, Activation::Tanh, Activation::Sigmoid][i];
    }
    if let Some(i) = pick("wgcnn.pool", "pooling", &["max", "avg"])? {
        cfg.pool = [PoolKind::Max, PoolKind::Avg][i];
    }
    if let Some(i) = pick("wgcnn.loss", "loss", &["xent", "mse"])? {
        cfg.loss = [LossKind::CrossEntropy, LossKind::SquaredError][i];
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

/// The model a checkpoint describes ([`spec_from_metadata`]); a file with no wgcnn metadata at all
/// whose tensors are not LeNet-5's (a PyTorch `state_dict` saved as it comes) is an error saying to
/// give its model file.
fn spec_of(r: &Reader) -> Result<ModelSpec> {
    let spec = spec_from_metadata(&r.path, &r.metadata)?;
    if r.metadata.keys().any(|k| k.starts_with("wgcnn.")) {
        return Ok(spec);
    }
    let tracked = spec.tracked();
    let names: Vec<String> = spec.params().iter().chain(&spec.buffers()).map(|p| p.name.clone()).collect();
    let fits = names.iter().all(|n| r.tensors.contains_key(n))
        && r.tensors.keys().all(|k| names.contains(k) || tracked.contains(k));
    if fits {
        return Ok(spec);
    }
    Err(ckpt_err(
        &r.path,
        format!(
            "holds no wgcnn model description, and its {} tensors ({}{}) are not LeNet-5's (a PyTorch state_dict?): \
             give its model file too: wgcnn eval --model FILE.toml --weights {p}, or wgcnn train --model FILE.toml \
             --init {p}",
            r.tensors.len(),
            r.tensors.keys().take(3).cloned().collect::<Vec<_>>().join(", "),
            if r.tensors.len() > 3 { ", ..." } else { "" },
            p = r.path.display()
        ),
    ))
}

/// The weights of `spec` from any safetensors file of its tensors under their PyTorch names (a wgcnn
/// checkpoint, or a `state_dict` saved with `safetensors.torch.save_file`): strict as
/// [`match_state`] except for the `reset` layers, which start from PyTorch's initialisation with
/// `seed`. Also the input preparation the file records, where it records one that fits `spec`.
pub fn load_weights(
    path: &Path,
    spec: &ModelSpec,
    reset: &[String],
    seed: u64,
) -> Result<(ModelState, Option<Preparation>)> {
    let mut r = Reader::open(path)?;
    let prep = match r.metadata.contains_key(PREPARATION_KEY) {
        true => preparation_from_metadata(&r.path.clone(), &r.metadata, spec).ok(),
        false => None,
    };
    let state = match_state_except(&mut r, spec, reset, seed)?;
    Ok((state, prep))
}

/// Load a model checkpoint: the model it describes and its state (checked; names and shapes before
/// any tensor data is read).
pub fn load_model(path: &Path) -> Result<(ModelSpec, ModelState)> {
    model_from(Reader::open(path)?)
}

/// [`load_model`] on a checkpoint's bytes (`name` names it in errors).
pub fn load_model_bytes(name: &Path, bytes: Vec<u8>) -> Result<(ModelSpec, ModelState)> {
    model_from(Reader::from_bytes(name, bytes)?)
}

fn model_from(mut r: Reader) -> Result<(ModelSpec, ModelState)> {
    let spec = spec_of(&r)?;
    let state = match_state(&mut r, &spec)?;
    Ok((spec, state))
}
