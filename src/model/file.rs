//! Model files: TOML with a `[model]` table and one `[[layer]]` table per layer, fields named and
//! defaulted as PyTorch's constructors (see `models/lenet5.toml` and docs/models.md). Every mistake is an
//! error naming the layer and the field. [`to_toml`] writes the canonical form that checkpoints carry.

use std::path::Path;

use toml::{Table, Value};

use crate::error::{io_err, Error, Result};
use crate::kernels::activation::Activation;
use crate::kernels::loss::LossKind;
use crate::model::{model_err, BatchNorm2d, Conv2d, Layer, LayerOp, Linear, ModelSpec, Pool2d, INPUT};

/// Model files larger than this are refused before parsing (a model file is a few KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Read and check a model file.
pub fn load(path: &Path) -> Result<ModelSpec> {
    let (file, len) = crate::fsio::open_regular(path)?;
    if len > MAX_FILE_BYTES {
        return Err(Error::Model {
            at: path.display().to_string(),
            detail: format!("{len} bytes, over the {MAX_FILE_BYTES}-byte cap for a model file"),
        });
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_FILE_BYTES + 1), &mut text)
        .map_err(|e| io_err(path, e))?;
    parse(&text).map_err(|e| match e {
        Error::Model { at, detail } if at.is_empty() => Error::Model { at: path.display().to_string(), detail },
        Error::Model { at, detail } => Error::Model { at: format!("{}: {at}", path.display()), detail },
        e => e,
    })
}

/// Parse and check a model description.
pub fn parse(text: &str) -> Result<ModelSpec> {
    let doc: Table = text.parse().map_err(|e: toml::de::Error| model_err("", format!("not valid TOML: {e}")))?;
    if let Some(k) = doc.keys().find(|k| !["model", "layer", "train"].contains(&k.as_str())) {
        return Err(model_err("", format!("unknown table {k:?} (a model file has [model], [[layer]] and [train])")));
    }
    train_table(&doc)?;
    let model = match doc.get("model") {
        Some(Value::Table(t)) => Fields::new("[model]", t, &["name", "input", "classes", "loss"])?,
        _ => return Err(model_err("", "no [model] table")),
    };
    let name = model.string("name")?;
    let input = model.input()?;
    let classes = model.positive("classes")?;
    let loss = match model.opt_string("loss")?.as_deref() {
        None | Some("cross_entropy") => LossKind::CrossEntropy,
        Some("mse") => LossKind::SquaredError,
        Some(other) => return Err(model.bad("loss", format!("{other:?} is not \"cross_entropy\" or \"mse\""))),
    };
    let tables = match doc.get("layer") {
        Some(Value::Array(a)) => a,
        _ => return Err(model_err("", "no [[layer]] tables")),
    };
    let mut layers: Vec<Layer> = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let t = t.as_table().ok_or_else(|| model_err("", format!("layer {i} is not a table")))?;
        let prev = layers.last().map_or(INPUT.to_string(), |l| l.name.clone());
        layers.push(layer(i, t, prev)?);
    }
    ModelSpec::new(&name, input, classes, loss, layers)
}

/// The training settings a model file may carry in its `[train]` table: what `wgcnn train` uses for
/// every setting its flags do not give. Unset fields keep the command's defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainSettings {
    /// `sgd` or `adam`.
    pub optimizer: Option<String>,
    pub lr: Option<f64>,
    pub momentum: Option<f64>,
    pub nesterov: Option<bool>,
    pub weight_decay: Option<f64>,
    pub batch_size: Option<usize>,
    pub epochs: Option<usize>,
    /// `cosine`, `step` or `constant`.
    pub schedule: Option<String>,
    /// With `schedule = "step"`: the factor per epoch.
    pub lr_decay: Option<f64>,
    /// As `--augment`: `none`, or `crop=N`, `flip`, `rotate=DEG`, `shear=DEG`, `scale=F`, `shift=PX`,
    /// `thick=PX`, comma-separated.
    pub augment: Option<String>,
}

impl TrainSettings {
    /// The fields that are set, by name (for the run's report).
    pub fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut add = |set: bool, name| {
            if set {
                v.push(name)
            }
        };
        add(self.optimizer.is_some(), "optimizer");
        add(self.lr.is_some(), "lr");
        add(self.momentum.is_some(), "momentum");
        add(self.nesterov.is_some(), "nesterov");
        add(self.weight_decay.is_some(), "weight_decay");
        add(self.batch_size.is_some(), "batch_size");
        add(self.epochs.is_some(), "epochs");
        add(self.schedule.is_some(), "schedule");
        add(self.lr_decay.is_some(), "lr_decay");
        add(self.augment.is_some(), "augment");
        v
    }
}

const TRAIN_FIELDS: &[&str] = &[
    "optimizer",
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "batch_size",
    "epochs",
    "schedule",
    "lr_decay",
    "augment",
];

/// The `[train]` table of a model description (empty settings when it has none), checked.
pub fn train_settings(text: &str) -> Result<TrainSettings> {
    let doc: Table = text.parse().map_err(|e: toml::de::Error| model_err("", format!("not valid TOML: {e}")))?;
    train_table(&doc)
}

/// [`train_settings`] of a model file.
pub fn load_train_settings(path: &Path) -> Result<TrainSettings> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    train_settings(&text).map_err(|e| match e {
        Error::Model { at, detail } => Error::Model { at: format!("{}: {at}", path.display()), detail },
        e => e,
    })
}

fn train_table(doc: &Table) -> Result<TrainSettings> {
    let t = match doc.get("train") {
        None => return Ok(TrainSettings::default()),
        Some(Value::Table(t)) => t,
        Some(v) => return Err(model_err("[train]", format!("must be a table, got {}", v.type_str()))),
    };
    let f = Fields::new("[train]", t, TRAIN_FIELDS)?;
    let float = |k: &str, ok: fn(f64) -> bool, what: &str| -> Result<Option<f64>> {
        match t.get(k) {
            None => Ok(None),
            Some(Value::Float(v)) if ok(*v) => Ok(Some(*v)),
            Some(Value::Integer(i)) if ok(*i as f64) => Ok(Some(*i as f64)),
            Some(Value::Float(_) | Value::Integer(_)) => Err(f.bad(k, format!("must be {what}"))),
            Some(v) => Err(f.bad(k, format!("must be a number, got {}", v.type_str()))),
        }
    };
    let count = |k: &str| -> Result<Option<usize>> {
        if t.contains_key(k) {
            f.positive(k).map(Some)
        } else {
            Ok(None)
        }
    };
    let choice = |k: &str, allowed: &[&str]| -> Result<Option<String>> {
        match f.opt_string(k)? {
            Some(v) if !allowed.contains(&v.as_str()) => {
                Err(f.bad(k, format!("{v:?} is not one of {}", allowed.join(", "))))
            }
            v => Ok(v),
        }
    };
    let augment = f.opt_string("augment")?;
    if let Some(a) = &augment {
        a.parse::<crate::data::Augment>().map_err(|e| f.bad("augment", e))?;
    }
    Ok(TrainSettings {
        optimizer: choice("optimizer", &["sgd", "adam"])?,
        lr: float("lr", |v| v > 0.0 && v.is_finite(), "a positive number")?,
        momentum: float("momentum", |v| (0.0..1.0).contains(&v), "in [0, 1)")?,
        nesterov: if t.contains_key("nesterov") { Some(f.bool_or("nesterov", false)?) } else { None },
        weight_decay: float("weight_decay", |v| v >= 0.0 && v.is_finite(), "a number of at least 0")?,
        batch_size: count("batch_size")?,
        epochs: count("epochs")?,
        schedule: choice("schedule", &["cosine", "step", "constant"])?,
        lr_decay: float("lr_decay", |v| v > 0.0 && v.is_finite(), "a positive number")?,
        augment,
    })
}

/// One `[[layer]]` table (`index` counts from 0, for layers without a name).
fn layer(index: usize, t: &Table, prev: String) -> Result<Layer> {
    let name = match t.get("name") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            return Err(model_err(&format!("#{index}"), format!("field name must be a string, got {}", v.type_str())))
        }
        None => return Err(model_err(&format!("#{index}"), "missing field name")),
    };
    let op_name = match t.get("op") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(model_err(&name, format!("field op must be a string, got {}", v.type_str()))),
        None => return Err(model_err(&name, "missing field op")),
    };
    let known: &[&str] = match op_name.as_str() {
        "conv2d" => &["out_channels", "kernel_size", "stride", "padding", "bias"],
        "linear" => &["out_features", "bias"],
        "maxpool2d" | "avgpool2d" => &["kernel_size", "stride", "padding"],
        "relu" | "tanh" | "sigmoid" | "flatten" | "add" | "concat" | "global_avgpool" => &[],
        "dropout" => &["p"],
        "batchnorm2d" => &["eps", "momentum"],
        other => {
            return Err(model_err(
                &name,
                format!(
                    "unknown op {other:?} (known: conv2d, linear, relu, tanh, sigmoid, maxpool2d, avgpool2d, \
                     global_avgpool, flatten, add, concat, dropout, batchnorm2d)"
                ),
            ))
        }
    };
    let mut all = vec!["name", "op", "inputs"];
    all.extend_from_slice(known);
    let f = Fields::new(&format!("layer {name}"), t, &all)?;
    let op = match op_name.as_str() {
        "conv2d" => LayerOp::Conv2d(Conv2d {
            out_channels: f.positive("out_channels")?,
            kernel_size: f.positive("kernel_size")?,
            stride: f.positive_or("stride", 1)?,
            padding: f.count_or("padding", 0)?,
            bias: f.bool_or("bias", true)?,
        }),
        "linear" => {
            LayerOp::Linear(Linear { out_features: f.positive("out_features")?, bias: f.bool_or("bias", true)? })
        }
        "maxpool2d" | "avgpool2d" => {
            let k = f.positive("kernel_size")?;
            let p = if op_name == "maxpool2d" { Pool2d::max(k) } else { Pool2d::avg(k) };
            LayerOp::Pool(p.stride(f.positive_or("stride", k)?).padding(f.count_or("padding", 0)?))
        }
        "relu" => LayerOp::Act(Activation::Relu),
        "tanh" => LayerOp::Act(Activation::Tanh),
        "sigmoid" => LayerOp::Act(Activation::Sigmoid),
        "flatten" => LayerOp::Flatten,
        "concat" => LayerOp::Concat,
        "global_avgpool" => LayerOp::GlobalAvgPool,
        "dropout" => LayerOp::Dropout(f.probability("p", 0.5)?),
        "batchnorm2d" => LayerOp::BatchNorm2d(BatchNorm2d {
            eps: f.number("eps", 1e-5, |v| v > 0.0 && (v as f32).is_finite() && v as f32 > 0.0, "a positive number")?,
            momentum: f.number("momentum", 0.1, |v| (0.0..=1.0).contains(&v), "a momentum in [0, 1]")?,
        }),
        _ => LayerOp::Add,
    };
    let inputs = match t.get("inputs") {
        None => vec![prev],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| f.bad("inputs", format!("{} is not a string", v.type_str())))
            })
            .collect::<Result<_>>()?,
        Some(v) => return Err(f.bad("inputs", format!("must be an array of layer names, got {}", v.type_str()))),
    };
    Ok(Layer { name, op, inputs })
}

/// A table's fields, checked against the names its owner knows.
struct Fields<'a> {
    owner: String,
    t: &'a Table,
}

impl<'a> Fields<'a> {
    fn new(owner: &str, t: &'a Table, known: &[&str]) -> Result<Fields<'a>> {
        if let Some(k) = t.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Error::Model {
                at: owner.to_string(),
                detail: format!("unknown field {k:?} (known: {})", known.join(", ")),
            });
        }
        Ok(Fields { owner: owner.to_string(), t })
    }

    fn bad(&self, field: &str, detail: impl std::fmt::Display) -> Error {
        Error::Model { at: self.owner.clone(), detail: format!("field {field}: {detail}") }
    }

    fn string(&self, k: &str) -> Result<String> {
        self.opt_string(k)?.ok_or_else(|| self.bad(k, "missing"))
    }

    fn opt_string(&self, k: &str) -> Result<Option<String>> {
        match self.t.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.bad(k, format!("must be a string, got {}", v.type_str()))),
        }
    }

    fn count_or(&self, k: &str, default: usize) -> Result<usize> {
        match self.t.get(k) {
            None => Ok(default),
            Some(Value::Integer(i)) => usize::try_from(*i).map_err(|_| self.bad(k, format!("{i} is negative"))),
            Some(Value::Array(_)) => Err(self.bad(k, "square kernels, strides and padding only: give one integer")),
            Some(v) => Err(self.bad(k, format!("must be an integer, got {}", v.type_str()))),
        }
    }

    fn positive_or(&self, k: &str, default: usize) -> Result<usize> {
        match self.count_or(k, default)? {
            0 => Err(self.bad(k, "must be at least 1")),
            v => Ok(v),
        }
    }

    fn positive(&self, k: &str) -> Result<usize> {
        if !self.t.contains_key(k) {
            return Err(self.bad(k, "missing"));
        }
        self.positive_or(k, 0)
    }

    /// A number (an integer is accepted too) for which `ok` holds (`what` says which numbers do).
    fn number(&self, k: &str, default: f32, ok: impl Fn(f64) -> bool, what: &str) -> Result<f32> {
        let v = match self.t.get(k) {
            None => return Ok(default),
            Some(Value::Float(f)) => *f,
            Some(Value::Integer(i)) => *i as f64,
            Some(v) => return Err(self.bad(k, format!("must be a number, got {}", v.type_str()))),
        };
        if !ok(v) {
            return Err(self.bad(k, format!("{v} is not {what}")));
        }
        Ok(v as f32)
    }

    /// A probability in [0, 1).
    fn probability(&self, k: &str, default: f32) -> Result<f32> {
        self.number(k, default, |v| (0.0..1.0).contains(&v), "a probability in [0, 1)")
    }

    fn bool_or(&self, k: &str, default: bool) -> Result<bool> {
        match self.t.get(k) {
            None => Ok(default),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(v) => Err(self.bad(k, format!("must be true or false, got {}", v.type_str()))),
        }
    }

    fn input(&self) -> Result<[usize; 3]> {
        let bad = || self.bad("input", "must be [channels, height, width], three positive integers");
        let a = match self.t.get("input") {
            Some(Value::Array(a)) if a.len() == 3 => a,
            Some(_) => return Err(bad()),
            None => return Err(self.bad("input", "missing")),
        };
        let mut out = [0usize; 3];
        for (o, v) in out.iter_mut().zip(a) {
            *o = v.as_integer().and_then(|i| usize::try_from(i).ok()).filter(|&i| i > 0).ok_or_else(bad)?;
        }
        Ok(out)
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The canonical model file of `spec` (every field written; `inputs` only where not the layer before).
pub fn to_toml(spec: &ModelSpec) -> String {
    let loss = match spec.loss {
        LossKind::CrossEntropy => "cross_entropy",
        LossKind::SquaredError => "mse",
    };
    let [c, h, w] = spec.input;
    let mut s = format!(
        "[model]\nname = {}\ninput = [{c}, {h}, {w}]\nclasses = {}\nloss = \"{loss}\"\n",
        quote(&spec.name),
        spec.classes
    );
    for (i, l) in spec.layers.iter().enumerate() {
        s += &format!("\n[[layer]]\nname = {}\nop = \"{}\"\n", quote(&l.name), l.op.name());
        let prev = if i == 0 { INPUT } else { spec.layers[i - 1].name.as_str() };
        if l.inputs != [prev] {
            let names: Vec<String> = l.inputs.iter().map(|n| quote(n)).collect();
            s += &format!("inputs = [{}]\n", names.join(", "));
        }
        s += &match l.op {
            LayerOp::Conv2d(c) => format!(
                "out_channels = {}\nkernel_size = {}\nstride = {}\npadding = {}\nbias = {}\n",
                c.out_channels, c.kernel_size, c.stride, c.padding, c.bias
            ),
            LayerOp::Linear(f) => format!("out_features = {}\nbias = {}\n", f.out_features, f.bias),
            LayerOp::Pool(p) => {
                format!("kernel_size = {}\nstride = {}\npadding = {}\n", p.kernel_size, p.stride, p.padding)
            }
            LayerOp::Dropout(p) => format!("p = {p}\n"),
            LayerOp::BatchNorm2d(b) => format!("eps = {:?}\nmomentum = {:?}\n", b.eps, b.momentum),
            LayerOp::Act(_) | LayerOp::Flatten | LayerOp::Add | LayerOp::Concat | LayerOp::GlobalAvgPool => {
                String::new()
            }
        };
    }
    s
}
