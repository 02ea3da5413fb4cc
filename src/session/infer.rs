//! `wgcnn eval`, `predict` and `visualize`: a trained model (a checkpoint, which names its model) on
//! a test set, on pictures, or layer by layer.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::context::Context;
use crate::data::{self, Split};
use crate::error::Result;
use crate::graph::Params;
use crate::model::{ModelSpec, ModelState};
use crate::session::trained_model;
use crate::train::{Evaluator, DIVISOR};

/// What `wgcnn eval --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// The checkpoint's path.
    pub model: String,
    /// The model's name (from the checkpoint).
    pub name: String,
    pub data: String,
    pub count: usize,
    pub correct: u64,
    pub accuracy: f64,
    pub loss: f64,
}

/// A model's parameters uploaded to a new context.
fn upload(spec: &ModelSpec, state: &ModelState, ctx: &Context) -> Result<Params> {
    let mut params = Params::new(ctx, spec)?;
    params.write_state(ctx, state)?;
    Ok(params)
}

/// Accuracy and loss of the checkpoint `model` on the t10k-* files of `data`.
pub fn eval(model: &Path, data: &Path, batch_size: usize) -> Result<EvalReport> {
    let (spec, state) = trained_model(model)?;
    let test = data::load(data, Split::Test)?;
    let ctx = Context::new()?;
    let params = upload(&spec, &state, &ctx)?;
    let e = Evaluator::new(&ctx, &spec, &params, &test, batch_size)?.run(&ctx)?;
    Ok(EvalReport {
        model: model.display().to_string(),
        name: spec.name.clone(),
        data: data.display().to_string(),
        count: e.count,
        correct: e.correct,
        accuracy: e.accuracy,
        loss: e.loss,
    })
}

/// One classified picture.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub image: String,
    pub class: usize,
    pub probability: f32,
    pub probabilities: Vec<f32>,
}

/// Classify pictures of digits (prepared as MNIST was; see [`crate::digits::load_digit`]).
pub fn predict(model: &Path, images: &[PathBuf]) -> Result<Vec<Prediction>> {
    let (spec, state) = trained_model(model)?;
    let inputs = images.iter().map(|p| crate::digits::load_digit(p)).collect::<Result<Vec<_>>>()?;
    let ctx = Context::new()?;
    let params = upload(&spec, &state, &ctx)?;
    let probs = crate::train::predict(&ctx, &spec, &params, &inputs)?;
    Ok(images
        .iter()
        .zip(probs)
        .map(|(path, p)| {
            let (class, probability) =
                p.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
            Prediction { image: path.display().to_string(), class, probability, probabilities: p }
        })
        .collect())
}

/// Pictures of what the model sees for one input (a picture, or the first test image of `data`):
/// its conv filters, every layer's maps (each branch of a DAG), the vectors and the probabilities.
pub fn visualize(model: &Path, image: Option<&Path>, data: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let (spec, state) = trained_model(model)?;
    let input = match image {
        Some(p) => crate::digits::load_digit(p)?,
        None => {
            let test = data::load(data, Split::Test)?;
            let n = test.rows * test.cols;
            test.images[..n].iter().map(|&v| f32::from(v) / DIVISOR).collect()
        }
    };
    // Plain kernels: each conv's own output, before its ReLU.
    let mut ctx = Context::new()?;
    ctx.kernels = crate::KernelSet::Plain;
    let params = upload(&spec, &state, &ctx)?;
    let acts = crate::viz::run_layers(&ctx, &spec, &params, &input)?;
    let weights: Vec<(String, Vec<usize>, Vec<f32>)> =
        spec.params().iter().zip(state.params).map(|(p, v)| (p.name.clone(), p.shape.clone(), v)).collect();
    crate::viz::write_visualize(&weights, &acts, out)
}
