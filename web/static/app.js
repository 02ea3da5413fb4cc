// The wgcnn page: draw a digit, see every layer of the network, train it in the browser.
// Every engine call goes through one queue (the engine runs one call at a time).
// This module starts the engine and wires the page; draw.js holds the drawing canvas, render.js
// paints results, train.js runs training, ui.js has the elements, status and errors.
import init, { Engine } from './pkg/wgcnn_web.js';
import { clearCanvas, drawingPixels, setupDrawing, showInputOnCanvas } from './draw.js';
import {
  clearMarks, markCells, paintTiles, renderFilters, renderLayers, renderProbs, tiling, unitAt,
} from './render.js';
import { describe, explainUnit } from './explain.js';
import {
  fetchBytes, panelState, redrawCurve, setTraining, setupTraining, showPanel, train, trainingHistory,
} from './train.js';
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
// The two models the page keeps: the loaded one (shipped, or a file) and the one trained here, each
// with its summary and its training panel (null: not trained in this page); `showing` is on display.
const models = { loaded: null, trained: null };
let showing = 'loaded';
let lastComparison = null; // the other model's reading of the current source, or null
let layerGraph = []; // the model on display's layers and what each reads (engine.layerGraph)
let modelTensors = []; // the model on display's weights and buffers (engine.tensors): its filters, its units' weights
let lastUnit = null; // the unit last explained: {layer, index}

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
    await compareSource(src, blank);
    return pred;
  } catch (e) {
    showError(src.kind === 'picture' ? about('Could not classify', src.name, e) : 'Prediction failed', e);
    throw e;
  }
}

/** With two models, the other one's reading of the same source, in #compare. */
async function compareSource(src, blank) {
  const other = showing === 'loaded' ? models.trained : models.loaded;
  if (!other || blank) {
    lastComparison = null;
    el.compare.hidden = true;
    return;
  }
  let c;
  try {
    c = src.kind === 'picture'
      ? await enqueue(() => engine.comparePicture(src.bytes, src.name))
      : await enqueue(() => {
        const { px, width, height } = drawingPixels();
        return engine.compare(px, width, height);
      });
  } catch (e) {
    c = null; // a picture the other model cannot read (another input): no comparison
  }
  lastComparison = c && { class: c.class, probabilities: Array.from(c.probabilities) };
  el.compare.hidden = !c;
  if (c) {
    const name = c.classes && c.classes[c.class] !== undefined ? c.classes[c.class] : String(c.class);
    const which = showing === 'loaded' ? 'the model trained here' : 'the loaded model';
    el.compare.textContent = `The other model, ${which}, reads ${name} (${(100 * c.probabilities[c.class]).toFixed(1)} %).`;
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
  renderLayers(pred, layerGraph);
  if (lastUnit) { // the values changed: explain the same unit again with them
    const { layer, index } = lastUnit;
    lastUnit = null;
    showUnit(layer, index).catch(() => hideUnit());
  }
}

/** Read the model on display's tensors once (one readback) and draw its conv filters (the 4-D ones). */
async function refreshTensors() {
  modelTensors = Array.from(await enqueue(() => engine.tensors()));
  renderFilters(modelTensors.filter((t) => t.shape.length === 4));
}

// ---------- a unit's explanation ----------

function hideUnit() {
  lastUnit = null;
  el.unit.hidden = true;
  el.unit.replaceChildren();
  clearMarks();
}

/**
 * Explain unit `index` of layer `name` of the prediction on display: the text in #unit, the unit
 * outlined, the cells it reads outlined in the layers below it and its field in the input. Returns the
 * explanation (explain.js), or null for a layer with nothing to explain (the input, the softmax).
 */
async function showUnit(name, index) {
  const pred = lastPrediction;
  const known = name === 'input' || name === 'softmax' || layerGraph.some((l) => l.name === name);
  if (!pred || !layerGraph.length || !known) { hideUnit(); return null; }
  const e = explainUnit(pred, layerGraph, modelTensors, name, index);
  if (!e) { hideUnit(); return null; }
  lastUnit = { layer: name, index };
  clearMarks();
  const canvasOf = (layer) => el.layers.querySelector(`canvas.fmap[data-layer="${CSS.escape(layer)}"]`);
  const single = (at) => ({ tile: at.c, y0: at.y, y1: at.y, x0: at.x, x1: at.x });
  const everyTile = (c) => [...Array(tiling(c).count).keys()];
  const own = canvasOf(name);
  if (own) markCells(own, [single(e.at)], 'cell');
  for (const r of e.reads) {
    const c = canvasOf(r.layer);
    if (!c) continue;
    if (r.cells) markCells(c, r.cells.map(single), 'field');
    if (r.box) {
      const tiles = r.channels === 'all' ? everyTile(c) : r.channels;
      markCells(c, tiles.map((t) => ({ tile: t, ...r.box })), 'field');
    }
  }
  if (e.winner) { const c = canvasOf(e.reads[0].layer); if (c) markCells(c, [single(e.winner)], 'winner'); }
  const input = canvasOf('input');
  if (e.inputBox && input && name !== 'input' && !e.reads.some((r) => r.layer === 'input')) {
    markCells(input, everyTile(input).map((t) => ({ tile: t, ...e.inputBox })), 'field');
  }
  const lines = describe(e).map((t) => { const p = document.createElement('p'); p.textContent = t; return p; });
  const parts = [...lines];
  if (e.weights) { // the filter and the patch it multiplies, one tile per input channel
    const row = document.createElement('div');
    row.className = 'row';
    for (const [label, v] of [['filter', e.weights], [`${e.reads[0].layer} patch`, e.patch]]) {
      const fig = document.createElement('figure');
      const cap = document.createElement('figcaption');
      cap.textContent = label;
      const cv = document.createElement('canvas');
      cv.className = 'filter';
      const [cin, k] = v.shape;
      paintTiles(cv, v.values, cin, k, k, Math.min(cin, 8), Math.max(3, Math.round(24 / k)));
      fig.append(cap, cv);
      row.append(fig);
    }
    parts.push(row);
  }
  el.unit.replaceChildren(...parts);
  el.unit.hidden = false;
  return e;
}

/** Pointing at (or tapping) a cell of a layer's canvas explains it. */
function onLayerPointer(ev) {
  const c = ev.target;
  if (!(c instanceof HTMLCanvasElement) || !c.classList.contains('fmap')) return;
  const px = (ev.offsetX * c.width) / c.clientWidth;
  const py = (ev.offsetY * c.height) / c.clientHeight;
  const index = unitAt(c, px, py);
  if (index < 0 || (lastUnit && lastUnit.layer === c.dataset.layer && lastUnit.index === index)) return;
  showUnit(c.dataset.layer, index).catch((e) => showError('Could not explain the unit', e));
}
el.layers.addEventListener('pointermove', onLayerPointer);
el.layers.addEventListener('pointerdown', onLayerPointer);
el.unit.title = 'Click (or press Escape) to close';
el.unit.addEventListener('click', hideUnit);
document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') hideUnit(); });

// ---------- model: load, picture, download ----------

async function loadModelBytes(bytes, name) {
  const summary = await enqueue(() => engine.loadModel(bytes, name));
  // The loaded model replaces the loaded one before it; a model trained here stays beside it.
  if (showing === 'trained' && models.trained) models.trained.panel = panelState();
  models.loaded = { summary, panel: null };
  await display('loaded');
  return summary;
}

/** Show model `which` ('loaded' or 'trained'): its name, panel, filters and predictions. */
async function display(which) {
  const m = models[which];
  if (!m) throw new Error(which === 'trained' ? 'no model has been trained in this page yet' : 'no model is loaded');
  layerGraph = []; // nothing is explained until the new model's layers and tensors are read
  hideUnit();
  await enqueue(() => engine.selectModel(which === 'trained'));
  showing = which;
  modelSummary = m.summary;
  el.modelName.textContent = m.summary;
  showPanel(m.panel);
  el.modelSwitch.hidden = !models.trained;
  el.showLoaded.textContent = `Loaded: ${models.loaded ? models.loaded.summary.split(' (')[0] : '—'}`;
  el.showTrained.textContent = models.trained ? `Trained here (${models.trained.steps} steps)` : 'Trained here';
  el.showLoaded.setAttribute('aria-pressed', String(which === 'loaded'));
  el.showTrained.setAttribute('aria-pressed', String(which === 'trained'));
  await refreshTensors();
  layerGraph = Array.from(await enqueue(() => engine.layerGraph()));
  requestPredict();
}

/** Switch the display to the other model (the buttons of #model-switch). */
async function switchTo(which) {
  if (which === showing) return;
  try {
    if (showing === 'trained' && models.trained) models.trained.panel = panelState();
    await display(which);
    clearError();
    setStatus(which === 'trained' ? 'Showing the model trained here' : 'Showing the loaded model');
  } catch (e) {
    showError('Could not switch models', e);
  }
}
el.showLoaded.addEventListener('click', () => switchTo('loaded'));
el.showTrained.addEventListener('click', () => switchTo('trained'));

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

// The zoo: models/index.json (written by web/build.sh) lists the model files; picking one loads it
// with fresh random weights, to train here.
async function setupZoo() {
  let zoo = [];
  try {
    zoo = JSON.parse(new TextDecoder().decode(await fetchBytes('models/index.json')));
  } catch (e) {
    el.zoo.disabled = true;
    el.zoo.title = `The zoo is not available: ${e instanceof Error ? e.message : e}`;
    return;
  }
  for (const m of zoo) {
    const o = document.createElement('option');
    o.value = m.file;
    o.textContent = m.name;
    o.title = m.about;
    el.zoo.append(o);
  }
}

el.zoo.addEventListener('change', async () => {
  const file = el.zoo.value;
  if (!file) return;
  setStatus(`Loading ${file}…`);
  try {
    const summary = await loadModelBytes(await fetchBytes(`models/${file}`), file);
    clearError();
    setStatus(`Loaded ${file}: train it here`);
    return summary;
  } catch (e) {
    showError(about('Could not load', file, e), e);
    setStatus('Kept the previous model');
  } finally {
    el.zoo.value = '';
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
  // The engine has put the new model on display beside the loaded one (a model trained before it is
  // replaced): it gets the run's panel.
  onTrained: async (steps, accuracy) => {
    const base = modelSummary.split(' — ')[0] || 'model';
    const tested = accuracy === 'not tested' ? '' : `, test accuracy ${accuracy}`;
    models.trained = { summary: `${base} — trained here, ${steps} steps${tested}`, panel: panelState(), steps };
    showing = 'trained';
    await display('trained');
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
  await setupZoo();
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
  get lastComparison() { return lastComparison; },
  get history() { return trainingHistory(); },
  /** Which model is on display and the two models' summaries (null: none of that kind). */
  get models() {
    return { showing, loaded: models.loaded && models.loaded.summary, trained: models.trained && models.trained.summary };
  },
  /** The model on display's layers (engine.layerGraph). */
  get layerGraph() { return JSON.parse(JSON.stringify(layerGraph)); },
  /** Explain unit `index` of layer `name` as pointing at it does; returns the explanation. */
  explainUnit: async (name, index) => JSON.parse(JSON.stringify(await showUnit(name, index))),
  /** Put 'loaded' or 'trained' on display, as #model-switch's buttons do. */
  show: (which) => switchTo(which),
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
