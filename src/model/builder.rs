//! Models in Rust: the same layers, names and checks as a model file.
//!
//! ```no_run
//! use wgcnn::model::{Conv2d, LayerOp, Linear, ModelBuilder, Pool2d};
//! use wgcnn::kernels::activation::Activation::Relu;
//! # fn main() -> wgcnn::Result<()> {
//! let spec = ModelBuilder::new("tiny", [1, 28, 28], 10)
//!     .layer("conv1", Conv2d::new(8, 3).padding(1)) // reads the input
//!     .layer("relu1", Relu)
//!     .layer("conv2", Conv2d::new(8, 3).padding(1))
//!     .layer_from("skip", LayerOp::Add, &["relu1", "conv2"]) // a residual connection
//!     .layer("pool", Pool2d::max(2))
//!     .layer("flatten", LayerOp::Flatten)
//!     .layer("fc", Linear::new(10))
//!     .build()?;
//! # Ok(()) }
//! ```

use crate::error::Result;
use crate::kernels::activation::Activation;
use crate::kernels::loss::LossKind;
use crate::model::{BatchNorm2d, Conv2d, Layer, LayerOp, Linear, ModelSpec, Pool2d, INPUT};

/// Collects layers; [`ModelBuilder::build`] checks them all (see [`ModelSpec::new`]).
#[derive(Clone, Debug)]
pub struct ModelBuilder {
    name: String,
    input: [usize; 3],
    classes: usize,
    loss: LossKind,
    layers: Vec<Layer>,
}

impl ModelBuilder {
    /// A model of `input` `[channels, height, width]` images and `classes` outputs, cross-entropy loss.
    pub fn new(name: &str, input: [usize; 3], classes: usize) -> ModelBuilder {
        ModelBuilder { name: name.to_string(), input, classes, loss: LossKind::CrossEntropy, layers: Vec::new() }
    }

    pub fn loss(mut self, loss: LossKind) -> ModelBuilder {
        self.loss = loss;
        self
    }

    /// Append a layer reading the layer before it (the input, for the first).
    pub fn layer(self, name: &str, op: impl Into<LayerOp>) -> ModelBuilder {
        let prev = self.layers.last().map_or(INPUT.to_string(), |l| l.name.clone());
        self.push(name, op.into(), vec![prev])
    }

    /// Append a layer reading the named earlier layers (or `"input"`).
    pub fn layer_from(self, name: &str, op: impl Into<LayerOp>, inputs: &[&str]) -> ModelBuilder {
        self.push(name, op.into(), inputs.iter().map(|s| s.to_string()).collect())
    }

    fn push(mut self, name: &str, op: LayerOp, inputs: Vec<String>) -> ModelBuilder {
        self.layers.push(Layer { name: name.to_string(), op, inputs });
        self
    }

    /// Check every layer and infer every shape.
    pub fn build(self) -> Result<ModelSpec> {
        ModelSpec::new(&self.name, self.input, self.classes, self.loss, self.layers)
    }
}

impl From<BatchNorm2d> for LayerOp {
    fn from(b: BatchNorm2d) -> LayerOp {
        LayerOp::BatchNorm2d(b)
    }
}

impl From<Conv2d> for LayerOp {
    fn from(c: Conv2d) -> LayerOp {
        LayerOp::Conv2d(c)
    }
}

impl From<Linear> for LayerOp {
    fn from(l: Linear) -> LayerOp {
        LayerOp::Linear(l)
    }
}

impl From<Pool2d> for LayerOp {
    fn from(p: Pool2d) -> LayerOp {
        LayerOp::Pool(p)
    }
}

impl From<Activation> for LayerOp {
    fn from(a: Activation) -> LayerOp {
        LayerOp::Act(a)
    }
}
