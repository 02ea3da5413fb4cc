//! wgcnn in the browser: the library compiled to wasm, run by the browser's WebGPU (the same WGSL
//! kernels as natively), with the glue the page (`web/static/app.js`) calls. Built by `web/build.sh`;
//! natively this crate is empty.
//!
//! Nothing here blocks: every readback is awaited, so the page stays responsive while the GPU works.
//! One call at a time: a call made while another is pending is refused with "busy" (the page queues).
#![cfg(target_arch = "wasm32")]
// The engine's state sits in `RefCell`s whose borrows some calls hold across an await (a readback).
// That is sound here because `Busy` admits one call at a time: no other borrow can be taken while
// one is held (the only mutable borrows, taken while a graph is built, are never held across one).
#![allow(clippy::await_holding_refcell_ref)]

mod js;
mod train;

use std::cell::{Cell, RefCell};
use std::path::Path;

use wasm_bindgen::prelude::*;
use wgcnn::checkpoint;
use wgcnn::data::folder::decode_bytes;
use wgcnn::data::prep::grey_to_input;
use wgcnn::data::PictureMode;
use wgcnn::graph::{Graph, Metrics, Params};
use wgcnn::model::{file, LayerOp, ModelSpec, ModelState};
use wgcnn::{AdapterChoice, Context, KernelSet};

use js::{set, ToJs};

/// A library error as the JS `Error` the page shows.
fn js_err(e: wgcnn::Error) -> JsError {
    JsError::new(&e.to_string())
}

/// The model on display: its parameters on the GPU and a one-image forward graph whose every layer's
/// output is read back (built with the plain kernels, so a conv's own output is seen before its ReLU).
struct Shown {
    spec: ModelSpec,
    /// How its inputs are prepared: normalisation and class names (from the checkpoint).
    prep: wgcnn::data::Preparation,
    params: Params,
    graph: Graph,
    /// The graph's loss and accuracy sums (unused: there are no labels for a drawing).
    _metrics: Metrics,
}

/// The engine the page drives: one GPU context, the model on display, and a training run.
#[wasm_bindgen]
pub struct Engine {
    /// In a `RefCell` only so that graphs for display can be built with the plain kernels
    /// (`Context::kernels`) and training graphs with the fast ones; borrowed mutably only while a
    /// graph is built, never across an await.
    ctx: RefCell<Context>,
    /// The model on display.
    shown: RefCell<Option<Shown>>,
    /// The other model: the one trained in the page while the loaded one is on display, or the loaded
    /// one while the trained one is.
    other: RefCell<Option<Shown>>,
    /// Whether the model on display is the one trained in the page.
    trained_shown: Cell<bool>,
    training: RefCell<Option<train::Training>>,
    busy: Cell<bool>,
}

/// Marks the engine busy for the length of one call.
struct Busy<'a>(&'a Cell<bool>);

impl<'a> Busy<'a> {
    fn take(flag: &'a Cell<bool>) -> Result<Busy<'a>, JsError> {
        if flag.replace(true) {
            return Err(JsError::new("busy: another engine call is still running (make one call at a time)"));
        }
        Ok(Busy(flag))
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

#[wasm_bindgen]
impl Engine {
    /// The browser's WebGPU adapter and a device on it; fails with a message when the browser has no
    /// WebGPU. `plans`: `"adapter"` (the default: the kernel plans for this adapter, see
    /// `wgcnn::context::Budget`) or `"gpu"` (those a browser's GPU adapter gets, whatever the adapter:
    /// wgpu reports every adapter a browser does not mark as a fallback as `DeviceType::Other`, whose
    /// plans take the tiled kernels; the browser test runs them through the browser's shader compiler
    /// on a software adapter this way).
    pub async fn create(plans: Option<String>) -> Result<Engine, JsError> {
        std::panic::set_hook(Box::new(|info| web_sys::console::error_1(&format!("wgcnn: {info}").into())));
        let ctx = Context::create(&AdapterChoice::Auto)
            .await
            .map_err(|e| JsError::new(&format!("the browser offers no WebGPU adapter: {e}")))?;
        let ctx = match plans.as_deref().unwrap_or("adapter") {
            "adapter" => ctx,
            "gpu" => {
                let gpu = wgcnn::wgpu::AdapterInfo { device_type: wgcnn::wgpu::DeviceType::Other, ..ctx.info.clone() };
                let budget = wgcnn::context::Budget::for_adapter(&gpu);
                ctx.with_budget(budget)
            }
            other => return Err(JsError::new(&format!("plans {other:?}: expected \"adapter\" or \"gpu\""))),
        };
        Ok(Engine {
            ctx: RefCell::new(ctx),
            shown: RefCell::new(None),
            other: RefCell::new(None),
            trained_shown: Cell::new(false),
            training: RefCell::new(None),
            busy: Cell::new(false),
        })
    }

    /// The adapter as far as the browser names it (many leave the name empty) and the kernels its
    /// plans take, e.g. "WebGPU: an unnamed adapter (Cpu; register-blocked kernels)".
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        let ctx = self.ctx.borrow();
        let i = &ctx.info;
        let name = [&i.name, &i.driver, &i.driver_info].into_iter().find(|s| !s.trim().is_empty());
        let name = name.map_or("an unnamed adapter", |s| s.as_str());
        let plans = if ctx.budget().tiled { "tiled kernels" } else { "register-blocked kernels" };
        format!("WebGPU: {name} ({:?}; {plans})", i.device_type)
    }

    /// Load a model: a wgcnn checkpoint (`.safetensors`: the model and its weights) or a model file
    /// (`.toml`: the architecture, with fresh random weights). Returns a summary; on an error the
    /// model on display is kept.
    #[wasm_bindgen(js_name = loadModel)]
    pub async fn load_model(&self, bytes: Vec<u8>, name: String) -> Result<String, JsError> {
        let _busy = Busy::take(&self.busy)?;
        let path = Path::new(&name);
        let model_file = name.to_ascii_lowercase().ends_with(".toml");
        let (spec, state, prep) = if model_file {
            let text = String::from_utf8(bytes).map_err(|_| JsError::new(&format!("{name}: not UTF-8 text")))?;
            let spec = file::parse(&text).map_err(|e| JsError::new(&format!("{name}: {e}")))?;
            let state = ModelState::init(&spec, 1);
            let prep = wgcnn::data::Preparation::legacy(spec.input, spec.classes);
            (spec, state, prep)
        } else {
            checkpoint::load_prepared_bytes(path, bytes).map_err(js_err)?
        };
        let (shown, summary) = self.build(spec, state, prep)?;
        // The loaded model replaces the loaded one before it; a model trained in the page stays beside it.
        if self.trained_shown.replace(false) {
            *self.other.borrow_mut() = self.shown.borrow_mut().take();
        }
        *self.shown.borrow_mut() = Some(shown);
        Ok(if model_file { format!("{summary}, fresh random weights") } else { summary })
    }

    /// Put the model trained in the page (`trained`) or the loaded one on display; an error when there
    /// is none of that kind.
    #[wasm_bindgen(js_name = selectModel)]
    pub fn select_model(&self, trained: bool) -> Result<(), JsError> {
        let _busy = Busy::take(&self.busy)?;
        if trained == self.trained_shown.get() {
            return Ok(());
        }
        if self.other.borrow().is_none() {
            return Err(JsError::new(if trained {
                "no model has been trained in this page yet"
            } else {
                "no model is loaded"
            }));
        }
        std::mem::swap(&mut *self.shown.borrow_mut(), &mut *self.other.borrow_mut());
        self.trained_shown.set(trained);
        Ok(())
    }

    /// The layers of the model on display in order: `[{name, op, inputs}]`, `inputs` naming the layers
    /// each one reads (`input`: the picture), so the page can show where a branch starts and joins.
    #[wasm_bindgen(js_name = layerGraph)]
    pub fn layer_graph(&self) -> Result<JsValue, JsError> {
        let shown = self.shown.borrow();
        let s = shown.as_ref().ok_or_else(no_model)?;
        let out = js_sys::Array::new();
        let mut previous = wgcnn::model::INPUT.to_string();
        for l in &s.spec.layers {
            let o = js_sys::Object::new();
            set(&o, "name", JsValue::from_str(&l.name));
            set(&o, "op", JsValue::from_str(l.op.name()));
            let inputs = if l.inputs.is_empty() { std::slice::from_ref(&previous) } else { l.inputs.as_slice() };
            set(&o, "inputs", inputs.iter().map(|n| JsValue::from_str(n)).collect::<js_sys::Array>().into());
            // What a unit's explanation needs: the window of convs and pools, the tensors' names.
            let window = |o: &js_sys::Object, k: usize, stride: usize, padding: usize| {
                set(o, "kernel", k.to_js());
                set(o, "stride", stride.to_js());
                set(o, "padding", padding.to_js());
            };
            let tensor = |o: &js_sys::Object, key: &str, suffix: &str| {
                set(o, key, JsValue::from_str(&format!("{}.{suffix}", l.name)));
            };
            match l.op {
                LayerOp::Conv2d(c) => {
                    window(&o, c.kernel_size, c.stride, c.padding);
                    tensor(&o, "weight", "weight");
                    if c.bias {
                        tensor(&o, "bias", "bias");
                    }
                }
                LayerOp::Linear(f) => {
                    tensor(&o, "weight", "weight");
                    if f.bias {
                        tensor(&o, "bias", "bias");
                    }
                }
                LayerOp::Pool(p) => window(&o, p.kernel_size, p.stride, p.padding),
                LayerOp::BatchNorm2d(b) => {
                    set(&o, "eps", f64::from(b.eps).to_js());
                    tensor(&o, "weight", "weight");
                    tensor(&o, "bias", "bias");
                    tensor(&o, "mean", "running_mean");
                    tensor(&o, "var", "running_var");
                }
                _ => {}
            }
            out.push(&o);
            previous.clone_from(&l.name);
        }
        Ok(out.into())
    }

    /// The other model's reading of a drawing (`{class, probabilities, classes}`, no layers), or `null`
    /// when there is no other model.
    pub async fn compare(&self, pixels: Vec<u8>, width: usize, height: usize) -> Result<JsValue, JsError> {
        let _busy = Busy::take(&self.busy)?;
        let other = self.other.borrow();
        let Some(s) = other.as_ref() else { return Ok(JsValue::NULL) };
        let input = drawing_input(&s.prep, &pixels, width, height)?;
        self.run_on(s, input, false).await
    }

    /// [`Engine::compare`] for a picture file.
    #[wasm_bindgen(js_name = comparePicture)]
    pub async fn compare_picture(&self, bytes: Vec<u8>, name: String) -> Result<JsValue, JsError> {
        let _busy = Busy::take(&self.busy)?;
        let other = self.other.borrow();
        let Some(s) = other.as_ref() else { return Ok(JsValue::NULL) };
        let input = picture_input(&s.prep, &bytes, &name)?;
        self.run_on(s, input, false).await
    }

    /// Classify a drawing: `width × height` grey bytes, 255 = ink. A digit model gets it prepared as
    /// MNIST was (the ink's box scaled into 20×20 and centred in 28×28); a model trained on pictures gets
    /// it as a picture, converted and resized to its input. Returns the prediction with every layer's
    /// output.
    pub async fn predict(&self, pixels: Vec<u8>, width: usize, height: usize) -> Result<JsValue, JsError> {
        let _busy = Busy::take(&self.busy)?;
        let prep = self.shown.borrow().as_ref().ok_or_else(no_model)?.prep.clone();
        let input = drawing_input(&prep, &pixels, width, height)?;
        self.run(input).await
    }

    /// Classify a PNG or JPEG picture, prepared exactly as `wgcnn predict` prepares one for the model on
    /// display (the checkpoint's preparation).
    #[wasm_bindgen(js_name = predictPicture)]
    pub async fn predict_picture(&self, bytes: Vec<u8>, name: String) -> Result<JsValue, JsError> {
        let _busy = Busy::take(&self.busy)?;
        let prep = self.shown.borrow().as_ref().ok_or_else(no_model)?.prep.clone();
        let input = picture_input(&prep, &bytes, &name)?;
        self.run(input).await
    }

    /// The model on display as a wgcnn checkpoint (the bytes `wgcnn train --save` writes).
    /// Every parameter and buffer of the model on display, as the GPU holds them:
    /// `[{name, shape, values}]` (a unit's explanation reads its weights from these).
    pub async fn tensors(&self) -> Result<JsValue, JsError> {
        let _busy = Busy::take(&self.busy)?;
        let shown = self.shown.borrow();
        let s = shown.as_ref().ok_or_else(no_model)?;
        let state = s.params.read_state_async(&self.ctx.borrow()).await.map_err(js_err)?;
        let out = js_sys::Array::new();
        let specs =
            s.spec.params().into_iter().zip(&state.params).chain(s.spec.buffers().into_iter().zip(&state.buffers));
        for (p, v) in specs {
            out.push(&js::layer(&p.name, &p.shape, v));
        }
        Ok(out.into())
    }

    #[wasm_bindgen(js_name = saveModel)]
    pub async fn save_model(&self) -> Result<Vec<u8>, JsError> {
        let _busy = Busy::take(&self.busy)?;
        let shown = self.shown.borrow();
        let s = shown.as_ref().ok_or_else(no_model)?;
        let state = s.params.read_state_async(&self.ctx.borrow()).await.map_err(js_err)?;
        checkpoint::model_bytes_prepared(Path::new("wgcnn-model.safetensors"), &s.spec, &state, Some(&s.prep))
            .map_err(js_err)
    }
}

/// Bytes as the values x / 255 (before the model's normalisation).
/// A drawing (one grey byte per pixel, 255 = ink) prepared for a model as `prep` says.
fn drawing_input(
    prep: &wgcnn::data::Preparation,
    pixels: &[u8],
    width: usize,
    height: usize,
) -> Result<Vec<f32>, JsError> {
    if width == 0 || height == 0 || width.checked_mul(height) != Some(pixels.len()) {
        return Err(JsError::new(&format!("{} pixels for a {width}x{height} picture", pixels.len())));
    }
    Ok(match prep.pictures {
        PictureMode::Digits => wgcnn::digits::to_mnist(pixels, width, height),
        PictureMode::Resize => scaled(grey_to_input(pixels, width, height, prep.input).map_err(js_err)?),
    })
}

/// A picture file's bytes prepared for a model as `prep` says.
fn picture_input(prep: &wgcnn::data::Preparation, bytes: &[u8], name: &str) -> Result<Vec<f32>, JsError> {
    let path = Path::new(name);
    Ok(match prep.pictures {
        PictureMode::Digits => wgcnn::digits::load_digit_bytes(path, bytes).map_err(js_err)?,
        PictureMode::Resize => scaled(decode_bytes(path, bytes, prep.input).map_err(js_err)?),
    })
}

fn scaled(bytes: Vec<u8>) -> Vec<f32> {
    bytes.iter().map(|&b| f32::from(b) / wgcnn::data::DIVISOR).collect()
}

fn no_model() -> JsError {
    JsError::new("no model is loaded")
}

impl Engine {
    /// Put a model on display: upload its state and build its one-image graph (plain kernels).
    /// A model ready to be shown (its display graph built) and its summary; an error for an input the
    /// page cannot show.
    fn build(
        &self,
        spec: ModelSpec,
        state: ModelState,
        prep: wgcnn::data::Preparation,
    ) -> Result<(Shown, String), JsError> {
        if ![1, 3].contains(&spec.input[0]) || prep.check(spec.input, spec.classes).is_err() {
            let [c, h, w] = spec.input;
            return Err(JsError::new(&format!(
                "model {} reads {c}x{h}x{w} inputs; this page shows grey (1 channel) and colour (3 channel) pictures",
                spec.name
            )));
        }
        let shown = {
            let mut ctx = self.ctx.borrow_mut();
            let fast = ctx.kernels;
            ctx.kernels = KernelSet::Plain;
            let built = (|| -> wgcnn::Result<Shown> {
                let mut params = Params::new(&ctx, &spec)?;
                params.write_state(&ctx, &state)?;
                let metrics = Metrics::new(&ctx, "page")?;
                let graph = Graph::build(&ctx, &spec, &params, &metrics, 1, false)?;
                Ok(Shown { spec, prep, params, graph, _metrics: metrics })
            })();
            ctx.kernels = fast;
            built.map_err(js_err)?
        };
        let summary = format!("{} ({} parameters)", shown.spec.name, js::thousands(shown.params.count()));
        Ok((shown, summary))
    }

    /// Put a model trained in the page on display, beside the loaded one (which it does not replace);
    /// a model trained before it is dropped.
    pub(crate) fn show_trained(&self, shown: Shown) {
        if !self.trained_shown.replace(true) {
            *self.other.borrow_mut() = self.shown.borrow_mut().take();
        }
        *self.shown.borrow_mut() = Some(shown);
    }

    /// Run the model on display on one prepared input and read every layer back (one readback).
    async fn run(&self, input: Vec<f32>) -> Result<JsValue, JsError> {
        let shown = self.shown.borrow();
        let s = shown.as_ref().ok_or_else(no_model)?;
        self.run_on(s, input, true).await
    }

    /// The forward pass of `s` on a prepared input: `{class, probabilities, input, inputShape,
    /// classes, layers}`, `layers` empty unless `with_layers`.
    async fn run_on(&self, s: &Shown, input: Vec<f32>, with_layers: bool) -> Result<JsValue, JsError> {
        let ctx = self.ctx.borrow();
        let g = &s.graph;
        // Normalised as the model's training inputs were (x / 255 unless the checkpoint says otherwise).
        let plane = input.len() / s.prep.mean.len().max(1);
        let x: Vec<f32> =
            input.iter().enumerate().map(|(i, v)| (v - s.prep.mean[i / plane]) / s.prep.std[i / plane]).collect();
        g.x.write_f32(&ctx, &x).map_err(js_err)?;
        ctx.submit_pass("page.predict", |pass| g.record_forward(pass)).map_err(js_err)?;
        let mut tensors: Vec<&wgcnn::Tensor> =
            if with_layers { g.outputs.iter().map(|(_, t)| t).collect() } else { Vec::new() };
        tensors.push(&g.probs);
        let mut values = ctx.read_f32s(&tensors).await.map_err(js_err)?;
        let probs = values.pop().unwrap_or_default();
        let class = probs.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0;
        let layers = js_sys::Array::new();
        for ((name, t), v) in g.outputs.iter().zip(&values) {
            layers.push(&js::layer(name, &t.shape[1..], v));
        }
        let out = js_sys::Object::new();
        set(&out, "class", class.to_js());
        set(&out, "probabilities", probs.as_slice().to_js());
        set(&out, "input", input.as_slice().to_js());
        set(&out, "inputShape", s.spec.input.map(|v| v as f32).as_slice().to_js());
        // `input` before normalisation; the network reads (input − mean[c]) / std[c].
        set(&out, "mean", s.prep.mean.as_slice().to_js());
        set(&out, "std", s.prep.std.as_slice().to_js());
        let names = js_sys::Array::new();
        s.prep.classes.iter().for_each(|n| {
            names.push(&JsValue::from_str(n));
        });
        set(&out, "classes", names.into());
        set(&out, "layers", layers.into());
        Ok(out.into())
    }
}

/// RGBA bytes (4 per value) of `values` in `wgcnn visualize`'s diverging colours: blue below 0, white
/// at 0, red above, one scale for all of them (saturating at the 99.5th percentile of |value|).
#[wasm_bindgen]
pub fn colorize(values: Vec<f32>) -> Vec<u8> {
    let scale = wgcnn::viz::Scale::diverging(&values);
    values
        .iter()
        .flat_map(|&v| {
            let [r, g, b] = scale.color(v);
            [r, g, b, 255]
        })
        .collect()
}
