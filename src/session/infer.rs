//! `wgcnn eval`, `predict` and `visualize`: a trained model (a checkpoint, which names its model and
//! records how its inputs are prepared) on a test set, on pictures, or layer by layer.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::context::Context;
use crate::data::{self, CifarLabels, Dataset, LoadOptions, LoadProgress, PictureMode, Preparation};
use crate::error::{Error, Result};
use crate::graph::Params;
use crate::model::{ModelSpec, ModelState};
use crate::session::{trained_model, trained_model_with, Weights};
use crate::train::{argmax, Evaluator};

/// What `wgcnn eval --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// The checkpoint's path.
    pub model: String,
    /// The model's name (from the checkpoint).
    pub name: String,
    pub data: String,
    /// The kind of data source (IDX files, CIFAR binary, image folders).
    pub source: String,
    pub count: usize,
    pub correct: u64,
    pub accuracy: f64,
    pub loss: f64,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Per class: test images, correct predictions, accuracy (NaN → null where a class has none).
    pub per_class: Vec<ClassReport>,
    /// `confusion[true][predicted]`: test images of class `true` predicted as `predicted`.
    pub confusion: Vec<Vec<u64>>,
}

/// One class's figures.
#[derive(Clone, Debug, Serialize)]
pub struct ClassReport {
    pub class: String,
    pub count: u64,
    pub correct: u64,
    pub accuracy: f64,
}

/// Where `eval` finds its test images.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub data: PathBuf,
    pub batch_size: usize,
    /// With one folder of class folders: the validation fraction and seed the model was trained with.
    pub val_split: f64,
    pub seed: u64,
    pub cifar_labels: CifarLabels,
    pub cache: bool,
    /// Weights from another file than `model` (then `model` may be a model file).
    pub weights: Weights,
}

/// A model's parameters uploaded to a new context.
fn upload(spec: &ModelSpec, state: &ModelState, ctx: &Context) -> Result<Params> {
    let mut params = Params::new(ctx, spec)?;
    params.write_state(ctx, state)?;
    Ok(params)
}

/// The test split of `opts.data` in the model's layout, checked against its class names.
fn test_split(
    opts: &EvalOptions,
    prep: &Preparation,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<(Dataset, &'static str)> {
    let load = LoadOptions {
        val_split: opts.val_split,
        seed: opts.seed,
        cifar_labels: opts.cifar_labels,
        cache: opts.cache,
        test_only: true,
        ..LoadOptions::new(prep.input)
    };
    let splits = data::load_splits(&opts.data, &load, progress)?;
    let test = splits.test;
    let numbered = |names: &[String]| names.iter().enumerate().all(|(i, n)| *n == i.to_string());
    // Numbered classes (IDX files, CIFAR without names) match any names of the same count.
    if test.class_names != prep.classes && !numbered(&test.class_names) && !numbered(&prep.classes) {
        return Err(crate::error::data_err(
            &test.source,
            format!(
                "its classes ({}) are not the model's ({}): evaluate on the data it was trained for",
                test.class_names.join(", "),
                prep.classes.join(", ")
            ),
        ));
    }
    if test.class_names != prep.classes {
        log::warn!(
            "the data's classes are numbered and the model's are named ({}, …): assuming the same order",
            prep.classes.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok((test, splits.kind.name()))
}

/// Accuracy, loss, per-class accuracy and the confusion matrix of checkpoint `model` on the test
/// split of `opts.data`, its pictures prepared as the checkpoint records.
pub fn eval(model: &Path, opts: &EvalOptions, progress: &mut dyn FnMut(LoadProgress)) -> Result<EvalReport> {
    let (spec, state, prep) = trained_model_with(model, &opts.weights)?;
    let (mut test, source) = test_split(opts, &prep, progress)?;
    test.class_names = prep.classes.clone();
    let ctx = Context::new()?;
    let params = upload(&spec, &state, &ctx)?;
    let ev = Evaluator::prepared(&ctx, &spec, &params, &test, opts.batch_size, &prep.transform())?;
    let (e, probs) = ev.run_with_probabilities(&ctx)?;
    let predicted: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    let k = spec.classes;
    let mut confusion = vec![vec![0u64; k]; k];
    for (&t, &p) in test.labels.iter().zip(&predicted) {
        confusion[t as usize][p] += 1;
    }
    let per_class = (0..k)
        .map(|c| {
            let count: u64 = confusion[c].iter().sum();
            let correct = confusion[c][c];
            ClassReport { class: prep.classes[c].clone(), count, correct, accuracy: correct as f64 / count as f64 }
        })
        .collect();
    Ok(EvalReport {
        model: model.display().to_string(),
        name: spec.name.clone(),
        data: opts.data.display().to_string(),
        source: source.to_string(),
        count: e.count,
        correct: e.correct,
        accuracy: e.accuracy,
        loss: e.loss,
        classes: prep.classes.clone(),
        per_class,
        confusion,
    })
}

/// One classified picture.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub image: String,
    /// The predicted class's number and name.
    pub class: usize,
    pub name: String,
    pub probability: f32,
    pub probabilities: Vec<f32>,
    /// The model's outputs before the softmax.
    pub logits: Vec<f32>,
}

/// The model inputs of pictures under `prep` as f32 values (normalised on the CPU): MNIST's digit
/// preparation or the conversion and resize of [`crate::data::prep`].
pub fn picture_inputs(prep: &Preparation, images: &[PathBuf]) -> Result<Vec<Vec<f32>>> {
    let [c, h, w] = prep.input;
    let plane = h * w;
    images
        .iter()
        .map(|p| {
            let raw: Vec<f32> = match prep.pictures {
                PictureMode::Digits => crate::digits::load_digit(p)?,
                PictureMode::Resize => {
                    data::folder::decode_file(p, prep.input)?.iter().map(|&b| f32::from(b) / data::DIVISOR).collect()
                }
            };
            if raw.len() != c * plane {
                return Err(Error::Train(format!(
                    "{}: {} values for a {c}x{h}x{w} input (digit preparation needs a 1x28x28 model)",
                    p.display(),
                    raw.len()
                )));
            }
            Ok(raw.iter().enumerate().map(|(i, v)| (v - prep.mean[i / plane]) / prep.std[i / plane]).collect())
        })
        .collect()
}

/// Classify pictures with a trained model, prepared as the checkpoint records: MNIST's digit
/// preparation for digit models (see [`crate::digits::load_digit`]), otherwise converted and resized
/// to the model's input and normalised by the same GPU gather as training and `eval`.
/// Returns the class names and one prediction per picture.
pub fn predict(model: &Path, images: &[PathBuf]) -> Result<(Vec<String>, Vec<Prediction>)> {
    predict_with(model, &Weights::default(), images)
}

/// [`predict`] with weights from another file (see [`trained_model_with`]).
pub fn predict_with(model: &Path, weights: &Weights, images: &[PathBuf]) -> Result<(Vec<String>, Vec<Prediction>)> {
    let (spec, state, prep) = trained_model_with(model, weights)?;
    let ctx = Context::new()?;
    let params = upload(&spec, &state, &ctx)?;
    let (logits, probs) = match prep.pictures {
        PictureMode::Digits => {
            let inputs = picture_inputs(&prep, images)?;
            (
                crate::train::logits(&ctx, &spec, &params, &inputs)?,
                crate::train::predict(&ctx, &spec, &params, &inputs)?,
            )
        }
        PictureMode::Resize => {
            let mut set = Dataset {
                images: Vec::new(),
                labels: vec![0; images.len()],
                channels: prep.input[0],
                rows: prep.input[1],
                cols: prep.input[2],
                class_names: prep.classes.clone(),
                source: model.to_path_buf(),
            };
            for p in images {
                set.images.extend(data::folder::decode_file(p, prep.input)?);
            }
            Evaluator::prepared(&ctx, &spec, &params, &set, 1000, &prep.transform())?.logits_and_probabilities(&ctx)?
        }
    };
    let rows = images
        .iter()
        .zip(probs)
        .zip(logits)
        .map(|((path, p), logits)| {
            let class = argmax(&p);
            Prediction {
                image: path.display().to_string(),
                class,
                name: prep.classes.get(class).cloned().unwrap_or_default(),
                probability: p[class],
                probabilities: p,
                logits,
            }
        })
        .collect();
    Ok((prep.classes, rows))
}

/// Pictures of what the model sees for one input (a picture, or the first test image of `data`):
/// its conv filters, every layer's maps (each branch of a DAG), the vectors and the probabilities.
pub fn visualize(model: &Path, image: Option<&Path>, data: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let (spec, state, prep) = trained_model(model)?;
    let input = match image {
        Some(p) => picture_inputs(&prep, &[p.to_path_buf()])?.remove(0),
        None => {
            let opts = EvalOptions {
                data: data.to_path_buf(),
                batch_size: 1,
                val_split: 0.1,
                seed: 1,
                cifar_labels: CifarLabels::Fine,
                weights: Weights::default(),
                cache: true,
            };
            let (test, _) = test_split(&opts, &prep, &mut |_| {})?;
            let plane = test.rows * test.cols;
            test.image(0)
                .iter()
                .enumerate()
                .map(|(i, &v)| (f32::from(v) / data::DIVISOR - prep.mean[i / plane]) / prep.std[i / plane])
                .collect()
        }
    };
    // Plain kernels: each conv's own output, before its ReLU.
    let mut ctx = Context::new()?;
    ctx.kernels = crate::KernelSet::Plain;
    let params = upload(&spec, &state, &ctx)?;
    let acts = crate::viz::run_layers(&ctx, &spec, &params, &input)?;
    let weights: Vec<(String, Vec<usize>, Vec<f32>)> =
        spec.params().iter().zip(state.params).map(|(p, v)| (p.name.clone(), p.shape.clone(), v)).collect();
    let mut files = crate::viz::write_visualize_prepared(&weights, &acts, out, &prep.mean, &prep.std)?;
    files.push(write_layers_json(&acts, out)?);
    Ok(files)
}

/// The numbers behind `visualize`'s pictures, as `OUT/layers.json`: the model, the input as fed
/// (prepared and normalised, `[c, h, w]`), every layer's output in model order (`name`, `shape`
/// without the batch, `values` flat in NCHW order) and the class probabilities.
fn write_layers_json(acts: &crate::viz::Activations, out: &Path) -> Result<PathBuf> {
    let layers: Vec<serde_json::Value> = acts
        .layers
        .iter()
        .map(|(name, shape, values)| serde_json::json!({ "name": name, "shape": shape, "values": values }))
        .collect();
    let doc = serde_json::json!({
        "model": acts.model,
        "input_shape": acts.input_shape,
        "input": acts.input,
        "layers": layers,
        "probabilities": acts.probs,
    });
    let path = out.join("layers.json");
    let text = serde_json::to_string(&doc)
        .map_err(|e| Error::Io { path: path.display().to_string(), source: std::io::Error::other(e) })?;
    crate::fsio::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}
