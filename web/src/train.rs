//! Training in the page: the model on display's architecture, from a fresh initialisation, on IDX
//! files the page fetched (the bundled MNIST sample), with the trainer and evaluator `wgcnn train`
//! uses. The page asks for a few steps at a time and draws the curve between them.

use std::path::Path;

use wasm_bindgen::prelude::*;
use wgcnn::data::{read_idx_bytes, Dataset};
use wgcnn::kernels::optim::Sgd;
use wgcnn::model::ModelState;
use wgcnn::rng::Rng;
use wgcnn::train::{Evaluator, Optimizer, Trainer};

use crate::js::{set, ToJs};
use crate::{js_err, no_model, Busy, Engine};

/// `wgcnn train`'s defaults for SGD (learning rate, momentum, weight decay), at a constant rate: the
/// page does not know in advance how long the user will train.
const SGD: Sgd = Sgd { lr: 0.05, momentum: 0.9, dampening: 0.0, weight_decay: 1e-3, nesterov: false };

/// A training run in progress.
pub(crate) struct Training {
    trainer: Trainer,
    test: Evaluator,
    /// Shuffles each epoch's order.
    rng: Rng,
    /// Steps taken in this epoch, and in all.
    in_epoch: usize,
    steps: usize,
}

/// A split from its two IDX files' bytes (raw or gzip).
fn split(images: Vec<u8>, labels: Vec<u8>, name: &str) -> wgcnn::Result<Dataset> {
    let (ip, lp) = (format!("{name}-images"), format!("{name}-labels"));
    let (ip, lp) = (Path::new(&ip), Path::new(&lp));
    Dataset::from_idx(ip, read_idx_bytes(ip, images, 3)?, lp, read_idx_bytes(lp, labels, 1)?)
}

#[wasm_bindgen]
impl Engine {
    /// Start training a fresh copy (initialised from `seed`) of the model on display on these IDX
    /// files, `batch` images per step; any unfinished run is dropped. Returns
    /// `{kernels, trainCount, testCount, stepsPerEpoch}`, `kernels` naming the WGSL entry points of a
    /// step's launches.
    #[wasm_bindgen(js_name = startTraining)]
    pub async fn start_training(
        &self,
        train_images: Vec<u8>,
        train_labels: Vec<u8>,
        test_images: Vec<u8>,
        test_labels: Vec<u8>,
        batch: usize,
        seed: u32,
    ) -> Result<JsValue, JsError> {
        let _busy = Busy::take(&self.busy)?;
        self.training.borrow_mut().take();
        let spec = self.shown.borrow().as_ref().ok_or_else(no_model)?.spec.clone();
        // Models of other inputs (colour, other sizes) read the digits converted and resized to theirs.
        let conform = |d: Dataset| wgcnn::data::prep::conform(d, spec.input).map_err(js_err);
        let train = conform(split(train_images, train_labels, "train").map_err(js_err)?)?;
        let test = conform(split(test_images, test_labels, "t10k").map_err(js_err)?)?;
        let ctx = self.ctx.borrow();
        let init = ModelState::init(&spec, u64::from(seed));
        let mut trainer =
            Trainer::new(&ctx, spec.clone(), &train, batch, Optimizer::Sgd(SGD), &init.params).map_err(js_err)?;
        trainer.params.write_buffers(&ctx, &init).map_err(js_err)?;
        trainer.set_seed(u64::from(seed));
        let evaluator = Evaluator::new(&ctx, &spec, &trainer.params, &test, 500).map_err(js_err)?;
        let mut rng = Rng::new(u64::from(seed));
        trainer.start_epoch(&ctx, Some(&mut rng)).map_err(js_err)?;
        // The kernels one step launches (each launch's own; a split reduction's summing pass aside):
        // which the adapter's plans chose.
        let kernels: std::collections::BTreeSet<&str> =
            trainer.step_launches().iter().map(|l| l.kernel.entry_point()).collect();
        let out = js_sys::Object::new();
        set(&out, "kernels", kernels.iter().map(|k| JsValue::from_str(k)).collect::<js_sys::Array>().into());
        set(&out, "trainCount", train.len().to_js());
        set(&out, "testCount", test.len().to_js());
        set(&out, "stepsPerEpoch", trainer.steps_per_epoch().to_js());
        *self.training.borrow_mut() = Some(Training { trainer, test: evaluator, rng, in_epoch: 0, steps: 0 });
        Ok(out.into())
    }

    /// Run `n` training steps, then read the loss and accuracy they summed. Returns
    /// `{step, epoch, loss, accuracy, imagesPerSecond}` (loss and accuracy over these steps' images).
    #[wasm_bindgen(js_name = trainSteps)]
    pub async fn train_steps(&self, n: usize) -> Result<JsValue, JsError> {
        let _busy = Busy::take(&self.busy)?;
        let mut slot = self.training.borrow_mut();
        let t = slot.as_mut().ok_or_else(|| JsError::new("no training run: call startTraining first"))?;
        let ctx = self.ctx.borrow();
        let started = js_sys::Date::now();
        let mut images = 0usize;
        for _ in 0..n {
            if t.in_epoch == t.trainer.steps_per_epoch() {
                t.trainer.start_epoch(&ctx, Some(&mut t.rng)).map_err(js_err)?;
                t.in_epoch = 0;
            }
            images += t.trainer.step(&ctx, t.in_epoch).map_err(js_err)?;
            t.in_epoch += 1;
            t.steps += 1;
        }
        // The readback waits for the steps: the time is the GPU's, not only the submits'.
        let (loss, correct) = t.trainer.metrics.take_async(&ctx).await.map_err(js_err)?;
        let seconds = (js_sys::Date::now() - started) / 1000.0;
        if !loss.is_finite() {
            return Err(JsError::new(&format!(
                "the training loss became {loss} at step {}: training diverged",
                t.steps
            )));
        }
        let per_epoch = t.trainer.steps_per_epoch().max(1);
        let out = js_sys::Object::new();
        set(&out, "step", t.steps.to_js());
        let epoch = ((t.steps - 1) / per_epoch) as f64 + t.in_epoch as f64 / per_epoch as f64;
        set(&out, "epoch", epoch.to_js());
        set(&out, "loss", (loss / images.max(1) as f64).to_js());
        set(&out, "accuracy", (correct as f64 / images.max(1) as f64).to_js());
        set(&out, "imagesPerSecond", (images as f64 / seconds.max(1e-3)).to_js());
        Ok(out.into())
    }

    /// End the run: evaluate on the test split (unless `evaluate` is false), then put the trained
    /// model on display beside the loaded one, which stays (`selectModel` switches between them). Returns `{testLoss, testAccuracy}` (both `null` when not evaluated).
    #[wasm_bindgen(js_name = finishTraining)]
    pub async fn finish_training(&self, evaluate: Option<bool>) -> Result<JsValue, JsError> {
        let _busy = Busy::take(&self.busy)?;
        let t = self.training.borrow_mut().take().ok_or_else(|| JsError::new("no training run to finish"))?;
        let (eval, state) = {
            let ctx = self.ctx.borrow();
            let eval = match evaluate.unwrap_or(true) {
                true => Some(t.test.run_async(&ctx).await.map_err(js_err)?),
                false => None,
            };
            (eval, t.trainer.params.read_state_async(&ctx).await.map_err(js_err)?)
        };
        if let Some(name) = wgcnn::checkpoint::first_non_finite(&t.trainer.spec, &state) {
            return Err(JsError::new(&format!(
                "the trained weights are not finite ({name}); the model on display is kept"
            )));
        }
        let (spec, prep) = (t.trainer.spec.clone(), t.trainer.prep.clone());
        drop(t);
        let (shown, _) = self.build(spec, state, prep)?;
        self.show_trained(shown);
        let out = js_sys::Object::new();
        set(&out, "testLoss", eval.map_or(JsValue::NULL, |e| e.loss.to_js()));
        set(&out, "testAccuracy", eval.map_or(JsValue::NULL, |e| e.accuracy.to_js()));
        Ok(out.into())
    }
}
