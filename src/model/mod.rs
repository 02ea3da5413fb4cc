//! Models: layers with PyTorch's names and defaults, checked once when the model is made (names unique,
//! inputs earlier in the list, every shape inferred), so a [`ModelSpec`] is always buildable for any
//! batch size the adapter's limits allow. Two ways to make one, over the same checks: a model file
//! ([`file`], `models/*.toml`) and the Rust [`builder`]. Parameters are named and laid out as PyTorch's
//! `state_dict()` of the same module names them (`conv1.weight` `[out, in, kh, kw]`).

pub mod builder;
pub mod file;

use crate::error::{Error, Result};
use crate::kernels::activation::Activation;
use crate::kernels::loss::LossKind;
use crate::kernels::pool::PoolKind;
use crate::rng::Rng;

pub use builder::ModelBuilder;

/// `nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias)`; in_channels is inferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub out_channels: usize,
    pub kernel_size: usize,
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
}

impl Conv2d {
    /// PyTorch's defaults: stride 1, padding 0, with bias.
    pub fn new(out_channels: usize, kernel_size: usize) -> Conv2d {
        Conv2d { out_channels, kernel_size, stride: 1, padding: 0, bias: true }
    }
    pub fn stride(self, stride: usize) -> Conv2d {
        Conv2d { stride, ..self }
    }
    pub fn padding(self, padding: usize) -> Conv2d {
        Conv2d { padding, ..self }
    }
    pub fn bias(self, bias: bool) -> Conv2d {
        Conv2d { bias, ..self }
    }
}

/// `nn.Linear(in_features, out_features, bias)`; in_features is inferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    pub out_features: usize,
    pub bias: bool,
}

impl Linear {
    pub fn new(out_features: usize) -> Linear {
        Linear { out_features, bias: true }
    }
    pub fn bias(self, bias: bool) -> Linear {
        Linear { bias, ..self }
    }
}

/// `nn.MaxPool2d` / `nn.AvgPool2d(kernel_size, stride = kernel_size, padding = 0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub kind: PoolKind,
    pub kernel_size: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Pool2d {
    pub fn max(kernel_size: usize) -> Pool2d {
        Pool2d { kind: PoolKind::Max, kernel_size, stride: kernel_size, padding: 0 }
    }
    pub fn avg(kernel_size: usize) -> Pool2d {
        Pool2d { kind: PoolKind::Avg, kernel_size, stride: kernel_size, padding: 0 }
    }
    pub fn stride(self, stride: usize) -> Pool2d {
        Pool2d { stride, ..self }
    }
    /// Padding (at most half the window): padded cells never win a max and count as zeros in an
    /// average (PyTorch's `count_include_pad=True`).
    pub fn padding(self, padding: usize) -> Pool2d {
        Pool2d { padding, ..self }
    }
}

/// `nn.BatchNorm2d(num_features, eps = 1e-5, momentum = 0.1)` (affine, tracking running statistics);
/// num_features is inferred.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm2d {
    pub eps: f32,
    pub momentum: f32,
}

impl Default for BatchNorm2d {
    fn default() -> Self {
        BatchNorm2d { eps: 1e-5, momentum: 0.1 }
    }
}

/// What a layer computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerOp {
    Conv2d(Conv2d),
    Linear(Linear),
    Act(Activation),
    Pool(Pool2d),
    /// `[n, c, h, w]` → `[n, c·h·w]` (a view; no data moves).
    Flatten,
    /// Elementwise sum of two inputs of one shape (a residual connection).
    Add,
    /// Two or more `[n, c_i, h, w]` inputs joined along channels.
    Concat,
    /// `[n, c, h, w]` → `[n, c, 1, 1]`, the mean of each plane (`AdaptiveAvgPool2d(1)`).
    GlobalAvgPool,
    /// Batch normalisation: batch statistics in training (the running ones updated), the running
    /// statistics in evaluation.
    BatchNorm2d(BatchNorm2d),
    /// `nn.Dropout(p)`: in training, each element zeroed with probability `p` and the rest scaled by
    /// 1 / (1 − p); the identity in evaluation.
    Dropout(f32),
}

impl LayerOp {
    /// The op's name in model files.
    pub fn name(&self) -> &'static str {
        match self {
            LayerOp::Conv2d(_) => "conv2d",
            LayerOp::Linear(_) => "linear",
            LayerOp::Act(Activation::Relu) => "relu",
            LayerOp::Act(Activation::Tanh) => "tanh",
            LayerOp::Act(Activation::Sigmoid) => "sigmoid",
            LayerOp::Pool(p) if p.kind == PoolKind::Max => "maxpool2d",
            LayerOp::Pool(_) => "avgpool2d",
            LayerOp::Flatten => "flatten",
            LayerOp::Add => "add",
            LayerOp::Concat => "concat",
            LayerOp::GlobalAvgPool => "global_avgpool",
            LayerOp::Dropout(_) => "dropout",
            LayerOp::BatchNorm2d(_) => "batchnorm2d",
        }
    }

    /// Whether the op takes `n` inputs.
    pub fn takes(&self, n: usize) -> bool {
        match self {
            LayerOp::Add => n == 2,
            LayerOp::Concat => n >= 2,
            _ => n == 1,
        }
    }

    /// How many inputs the op takes, in words.
    fn arity(&self) -> &'static str {
        match self {
            LayerOp::Add => "2 inputs",
            LayerOp::Concat => "2 or more inputs",
            _ => "1 input",
        }
    }
}

/// One named layer and the layers (or `"input"`) it reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Unique; the PyTorch prefix of its tensors (`conv1` → `conv1.weight`). May contain dots.
    pub name: String,
    pub op: LayerOp,
    pub inputs: Vec<String>,
}

/// The name a layer uses for the model's input.
pub const INPUT: &str = "input";

/// How a tensor starts (PyTorch's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// U(−1/√fan_in, 1/√fan_in): conv and linear weights and biases.
    Uniform,
    /// Zeros: batch-norm's bias and running mean.
    Zeros,
    /// Ones: batch-norm's weight and running variance.
    Ones,
}

/// A learnable tensor (or a buffer: see [`ModelSpec::buffers`]): its PyTorch name, shape, fan-in and
/// default initialisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub fan_in: usize,
    pub init: Init,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A checked model: input `[c, h, w]`, layers (a DAG in topological order) whose last output is the
/// `[n, classes]` logits, and the loss. Made only by [`ModelSpec::new`], so it is always consistent.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    pub input: [usize; 3],
    pub classes: usize,
    pub loss: LossKind,
    pub layers: Vec<Layer>,
    params: Vec<ParamSpec>,
    buffers: Vec<ParamSpec>,
}

/// An [`Error::Model`] about layer `layer`.
pub(crate) fn model_err(layer: &str, detail: impl Into<String>) -> Error {
    Error::Model { at: if layer.is_empty() { String::new() } else { format!("layer {layer}") }, detail: detail.into() }
}

impl ModelSpec {
    /// Check the layers (names unique and non-empty, inputs that exist and come earlier, arity) and infer
    /// every shape (batch 1); the first error names the layer.
    pub fn new(name: &str, input: [usize; 3], classes: usize, loss: LossKind, layers: Vec<Layer>) -> Result<ModelSpec> {
        if input.contains(&0) || classes == 0 {
            return Err(model_err("", format!("input {input:?} and classes {classes} must be non-zero")));
        }
        if layers.is_empty() {
            return Err(model_err("", "a model needs at least one layer"));
        }
        let mut seen: Vec<&str> = Vec::new();
        for l in &layers {
            if l.name.is_empty() || l.name == INPUT {
                return Err(model_err(&l.name, format!("a layer cannot be named {:?}", l.name)));
            }
            if seen.contains(&l.name.as_str()) {
                return Err(model_err(&l.name, "duplicate name"));
            }
            if !l.op.takes(l.inputs.len()) {
                return Err(model_err(&l.name, format!("{} takes {}, got {:?}", l.op.name(), l.op.arity(), l.inputs)));
            }
            for i in &l.inputs {
                if i != INPUT && !seen.contains(&i.as_str()) {
                    let why = if layers.iter().any(|o| &o.name == i) { "comes later" } else { "does not exist" };
                    return Err(model_err(&l.name, format!("input {i:?} {why}")));
                }
            }
            seen.push(&l.name);
        }
        let mut spec =
            ModelSpec { name: name.to_string(), input, classes, loss, layers, params: Vec::new(), buffers: Vec::new() };
        let f = crate::ir::build::forward(&spec, 1, true).map_err(|e| match e {
            Error::Shape { op, detail } => Error::Model { at: format!("layer {op}"), detail },
            e => e,
        })?;
        (spec.params, spec.buffers) = (f.params, f.buffers);
        Ok(spec)
    }

    /// Parameters in `state_dict()` order.
    pub fn params(&self) -> Vec<ParamSpec> {
        self.params.clone()
    }

    /// The f32 buffers of the model's `state_dict()` (each batch-norm's `running_mean` and
    /// `running_var`), in order: state the optimizer does not touch.
    pub fn buffers(&self) -> Vec<ParamSpec> {
        self.buffers.clone()
    }

    /// The names of the int64 `num_batches_tracked` counters, one per batch-norm layer.
    pub fn tracked(&self) -> Vec<String> {
        let bn = self.layers.iter().filter(|l| matches!(l.op, LayerOp::BatchNorm2d(_)));
        bn.map(|l| format!("{}.num_batches_tracked", l.name)).collect()
    }
}

/// Everything a model's `state_dict()` holds, in spec order: parameters, f32 buffers (running
/// statistics) and the int64 `num_batches_tracked` counters.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelState {
    pub params: Vec<Vec<f32>>,
    pub buffers: Vec<Vec<f32>>,
    pub tracked: Vec<i64>,
}

impl ModelState {
    /// PyTorch's default initialisation of `spec` from `seed` (see [`init_params`]), buffers at their
    /// defaults, counters at 0.
    pub fn init(spec: &ModelSpec, seed: u64) -> ModelState {
        ModelState {
            params: init_params(&spec.params(), seed),
            buffers: init_params(&spec.buffers(), 0),
            tracked: vec![0; spec.tracked().len()],
        }
    }
}

/// The choices `wgcnn train` exposes for the built-in LeNet-5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeNetConfig {
    pub activation: Activation,
    pub pool: PoolKind,
    pub loss: LossKind,
}

impl Default for LeNetConfig {
    fn default() -> Self {
        LeNetConfig { activation: Activation::Relu, pool: PoolKind::Max, loss: LossKind::CrossEntropy }
    }
}

/// LeNet-5 on 28×28 grey images, as `models/lenet5.toml` (with the default config): conv 6@5×5 pad 2
/// → act → pool 2 → conv 16@5×5 → act → pool 2 → FC 120 → act → FC 84 → act → FC 10.
pub fn lenet5(cfg: LeNetConfig) -> ModelSpec {
    let pool = Pool2d { kind: cfg.pool, ..Pool2d::max(2) };
    ModelBuilder::new("lenet5", [1, 28, 28], 10)
        .loss(cfg.loss)
        .layer("conv1", Conv2d::new(6, 5).padding(2)) // [n, 6, 28, 28]
        .layer("relu1", cfg.activation)
        .layer("pool1", pool) // [n, 6, 14, 14]
        .layer("conv2", Conv2d::new(16, 5)) // [n, 16, 10, 10]
        .layer("relu2", cfg.activation)
        .layer("pool2", pool) // [n, 16, 5, 5]
        .layer("flatten", LayerOp::Flatten) // [n, 400]
        .layer("fc1", Linear::new(120))
        .layer("relu3", cfg.activation)
        .layer("fc2", Linear::new(84))
        .layer("relu4", cfg.activation)
        .layer("fc3", Linear::new(10)) // [n, 10] logits
        .build()
        .expect("LeNet-5's shapes chain")
}

/// PyTorch's default initialisation, from `seed`: `nn.Conv2d` / `nn.Linear` weights Kaiming-uniform
/// with a = √5, i.e. U(−1/√fan_in, 1/√fan_in), and biases U(−1/√fan_in, 1/√fan_in); batch-norm's
/// weight 1 and bias 0 (which draw nothing from the stream). Also gives buffers their defaults.
/// (The distribution is PyTorch's; the random stream is wgcnn's own.)
pub fn init_params(params: &[ParamSpec], seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    params
        .iter()
        .map(|p| match p.init {
            Init::Uniform => {
                let bound = 1.0 / (p.fan_in as f64).sqrt();
                rng.vec_f32(p.len(), -bound, bound)
            }
            Init::Zeros => vec![0.0; p.len()],
            Init::Ones => vec![1.0; p.len()],
        })
        .collect()
}
