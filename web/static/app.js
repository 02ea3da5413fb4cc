// The wgcnn page: draw a digit, see every layer of the network, train it in the browser.
// Every engine call goes through one queue (the engine runs one call at a time).
// This module starts the engine and wires the page; draw.js holds the drawing canvas, render.js
// paints results, train.js runs training, ui.js has the elements, status and errors.
import init, { Engine } from './pkg/wgcnn_web.js';
import { clearCanvas, drawingPixels, setupDrawing, showInputOnCanvas } from './draw.js';
import { renderFilters, renderLayers, renderProbs } from './render.js';
import { fetchBytes, redrawCurve, setTraining, setupTraining, train, trainingHistory } from './train.js';
import { about, clearError, el, setStatus, showError } from './ui.js';

const MODEL_URL = 'model/lenet5.safetensors';
const NO_WEBGPU =
  'This browser has no usable WebGPU, which wgcnn needs. Use a current Chrome or Edge (Windows, macOS, ChromeOS, Android; ' +
  'on Linux you may need to enable chrome://flags/#enable-unsafe-webgpu), Safari 26 or later, or Firefox 141 or later ' +
  '(Windows; elsewhere Firefox Nightly). WebGPU also needs a secure page (https or localhost) and a GPU the browser does not block.';

let engine = null;
let lastPrediction = null;
let source = { kind: 'drawing' }; // what the shown prediction is of: the drawing or a picture {kind, bytes, name}
let modelSummary = '';

// ---------- the engine queue ----------

let queue = Promise.resolve();
/** Run `fn` (which makes one engine call) after every call queued before it; resolves with its result. */
function enqueue(fn) {
  const p = queue.then(fn);
  queue = p.catch(() => {});
  return p;
}

// ---------- drawing ----------

clearCanvas();
setupDrawing({
  onStart: () => { if (source.kind !== 'drawing') useDrawing(); },
  onChange: () => requestPredict(),
});

el.clear.addEventListener('click', () => {
  clearCanvas();
  useDrawing();
  requestPredict();
});

function useDrawing() {
  source = { kind: 'drawing' };
  el.sourceNote.textContent = 'Draw with the mouse, a pen or a finger; the network predicts as you draw.';
}

// ---------- prediction ----------

let predicting = false; // a prediction of the current source is queued or running
let dirty = false; // the source changed since that prediction started
let predictLoop = Promise.resolve(); // settles when no prediction is pending

/** Predict the current source now, or once more after the prediction in flight. */
function requestPredict() {
  if (!engine) return;
  if (predicting) { dirty = true; return; }
  predicting = true;
  predictLoop = (async () => {
    do {
      dirty = false;
      try {
        await predictSource();
      } catch {
        // shown in #error
      }
    } while (dirty);
    predicting = false;
  })();
}

/** One prediction of the current source (the pixels are read when the engine gets to it). */
async function predictSource() {
  const src = source;
  try {
    let pred;
    let blank = false; // an empty drawing: show the layers, but no predicted digit
    if (src.kind === 'picture') {
      const { bytes, name } = src;
      pred = await enqueue(() => engine.predictPicture(bytes, name));
    } else {
      pred = await enqueue(() => {
        const { px, width, height } = drawingPixels();
        blank = !px.some((v) => v > 0);
        return engine.predict(px, width, height);
      });
    }
    showPrediction(pred, blank);
    return pred;
  } catch (e) {
    showError(src.kind === 'picture' ? about('Could not classify', src.name, e) : 'Prediction failed', e);
    throw e;
  }
}

function showPrediction(pred, blank = false) {
  lastPrediction = pred;
  const probs = pred.probabilities;
  const best = pred.class;
  const name = pred.classes && pred.classes[best] !== undefined ? pred.classes[best] : String(best);
  el.prediction.querySelector('.digit').textContent = blank ? '–' : name;
  el.prediction.querySelector('.prob').textContent = blank ? 'draw a digit' : `${(100 * probs[best]).toFixed(1)} %`;
  renderProbs(probs, blank ? -1 : best, pred.classes);
  renderLayers(pred);
}

async function refreshFilters() {
  renderFilters(await enqueue(() => engine.filters()));
}

// ---------- model: load, picture, download ----------

async function loadModelBytes(bytes, name) {
  const summary = await enqueue(() => engine.loadModel(bytes, name));
  modelSummary = summary;
  el.modelName.textContent = summary;
  await refreshFilters();
  requestPredict();
  return summary;
}

el.modelFile.addEventListener('change', async () => {
  const file = el.modelFile.files[0];
  el.modelFile.value = ''; // the same file can be chosen again
  if (!file) return;
  setStatus(`Loading ${file.name}…`);
  try {
    await loadModelBytes(new Uint8Array(await file.arrayBuffer()), file.name);
    clearError();
    setStatus(`Loaded ${file.name}`);
  } catch (e) {
    showError(about('Could not load', file.name, e), e);
    setStatus('Kept the previous model');
  }
});

/** Classify a picture file's bytes; its prepared input is shown on the drawing canvas too. */
async function classifyPicture(bytes, name) {
  source = { kind: 'picture', bytes, name };
  const pred = await predictSource();
  const shape = pred.inputShape ? Array.from(pred.inputShape) : [1, 28, 28];
  showInputOnCanvas(pred.input, shape);
  el.sourceNote.textContent = `Showing ${name} as the network sees it (${shape[1]}×${shape[2]}${shape[0] === 3 ? ', colour' : ''}). Draw on it to go on by hand.`;
  return pred;
}

el.picture.addEventListener('change', async () => {
  const file = el.picture.files[0];
  el.picture.value = '';
  if (!file || !engine) return;
  try {
    await classifyPicture(new Uint8Array(await file.arrayBuffer()), file.name);
    clearError();
  } catch {
    useDrawing(); // the error is shown; go back to the drawing
    requestPredict();
  }
});

el.download.addEventListener('click', async () => {
  try {
    const bytes = await enqueue(() => engine.saveModel());
    const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = 'wgcnn-model.safetensors';
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (e) {
    showError('Could not save the model', e);
  }
});

// ---------- training ----------

setupTraining({
  engine: () => engine,
  enqueue,
  onTrained: async (steps, accuracy) => {
    const base = modelSummary.split(' — ')[0] || 'model';
    const tested = accuracy === 'not tested' ? '' : `, test accuracy ${accuracy}`;
    modelSummary = `${base} — trained here, ${steps} steps${tested}`;
    el.modelName.textContent = modelSummary;
    await refreshFilters();
    requestPredict();
  },
});

// ---------- start-up ----------

async function start() {
  setTraining(false); // disables what needs the engine
  redrawCurve();
  if (!navigator.gpu) throw new Error(NO_WEBGPU);
  setStatus('Loading the engine…');
  await init();
  // ?plans=gpu runs the kernel plans of a browser's GPU adapter (the tiled kernels) whatever the
  // adapter: the browser test runs them through the browser's shader compiler on a software one.
  const plans = new URLSearchParams(location.search).get('plans') || undefined;
  try {
    engine = await Engine.create(plans);
  } catch (e) {
    throw new Error(`${NO_WEBGPU} (${e instanceof Error ? e.message : e})`);
  }
  el.adapter.textContent = engine.adapter;
  setStatus('Loading the trained LeNet-5…');
  await loadModelBytes(await fetchBytes(MODEL_URL), 'lenet5.safetensors');
  await queue; // the first prediction (of the blank canvas)
  setTraining(false);
  setStatus('Ready: draw a digit');
}

const ready = start().then(
  () => { document.body.dataset.ready = '1'; return true; },
  (e) => {
    showError('Could not start', e);
    setStatus('Not available');
    if (!engine) el.adapter.textContent = 'no WebGPU adapter';
    document.body.dataset.ready = 'error';
    throw e;
  },
);
ready.catch(() => {}); // reported in #error

// ---------- hooks for the browser test ----------

/** A prediction as plain JSON (arrays instead of typed arrays). */
function plain(pred) {
  return {
    class: pred.class,
    probabilities: Array.from(pred.probabilities),
    input: Array.from(pred.input),
    inputShape: pred.inputShape ? Array.from(pred.inputShape) : [1, 28, 28],
    classes: pred.classes ? Array.from(pred.classes) : [],
    layers: Array.from(pred.layers, (l) => ({ name: l.name, shape: Array.from(l.shape), values: Array.from(l.values) })),
  };
}

/** Resolves once no engine call is queued and no prediction is pending. */
async function idle() {
  for (;;) {
    const q = queue;
    await q;
    await predictLoop;
    await new Promise((r) => setTimeout(r, 0));
    if (q === queue && !predicting) return;
  }
}

window.wgcnnPage = {
  ready,
  idle,
  get lastPrediction() { return lastPrediction; },
  get history() { return trainingHistory(); },
  predictPicture: async (bytes, name) => plain(await classifyPicture(Uint8Array.from(bytes), name)),
  /** The model on display as a checkpoint (engine.saveModel), base64. */
  modelBase64: async () => {
    const bytes = await enqueue(() => engine.saveModel());
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
  },
  // `options`: {batch, seed, evaluate} (default: 64, a new seed per run, tested).
  train: async (steps, options) => {
    el.steps.value = String(steps);
    return train(steps, options);
  },
};
