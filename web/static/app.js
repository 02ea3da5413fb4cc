// The wgcnn page: draw a digit, see every layer of the network, train it in the browser.
// Every engine call goes through one queue (the engine runs one call at a time).
import init, { Engine, colorize } from './pkg/wgcnn_web.js';

const MODEL_URL = 'model/lenet5.safetensors';
const DATA_URLS = [
  'data/train-images-idx3-ubyte.gz',
  'data/train-labels-idx1-ubyte.gz',
  'data/t10k-images-idx3-ubyte.gz',
  'data/t10k-labels-idx1-ubyte.gz',
];
const BATCH = 64;
const CHUNK = 10; // training steps per engine call (the curve updates after each)
const NO_WEBGPU =
  'This browser has no usable WebGPU, which wgcnn needs. Use a current Chrome or Edge (Windows, macOS, ChromeOS, Android; ' +
  'on Linux you may need to enable chrome://flags/#enable-unsafe-webgpu), Safari 26 or later, or Firefox 141 or later ' +
  '(Windows; elsewhere Firefox Nightly). WebGPU also needs a secure page (https or localhost) and a GPU the browser does not block.';

const $ = (id) => document.getElementById(id);
const el = {
  adapter: $('adapter'), status: $('status'), error: $('error'),
  draw: $('draw'), clear: $('clear'), picture: $('picture-file'), sourceNote: $('source-note'),
  prediction: $('prediction'), probs: $('probs'), layers: $('layers'), filters: $('filters'),
  modelFile: $('model-file'), modelName: $('model-name'), download: $('download'),
  steps: $('train-steps'), train: $('train'), stop: $('train-stop'), curve: $('curve'), stats: $('train-stats'),
};

let engine = null;
let lastPrediction = null;
let history = []; // [{step, loss, accuracy, imagesPerSecond}] of the current/last training run
let trainPlan = 0; // steps asked for in the current run (the curve's x range)
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

// ---------- status and errors ----------

function setStatus(text) { el.status.textContent = text; }

function showError(context, err) {
  const msg = err instanceof Error ? err.message : String(err);
  el.error.textContent = context ? `${context}: ${msg}` : msg;
  el.error.hidden = false;
  console.error(context || 'error', err);
}
/** "Could not load x.png", or without the name when the engine's message already says it. */
function about(what, name, err) {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.includes(name) ? what : `${what} ${name}`;
}

function clearError() { el.error.textContent = ''; el.error.hidden = true; }
el.error.addEventListener('click', clearError);

// ---------- drawing ----------

const ctx = el.draw.getContext('2d', { willReadFrequently: true });
function clearCanvas() {
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, el.draw.width, el.draw.height);
}
clearCanvas();

let stroke = null; // last point of the stroke in progress
function canvasPoint(e) {
  const r = el.draw.getBoundingClientRect();
  return { x: (e.clientX - r.left) * (el.draw.width / r.width), y: (e.clientY - r.top) * (el.draw.height / r.height) };
}
function setPen() {
  ctx.strokeStyle = ctx.fillStyle = '#fff';
  ctx.lineWidth = 22;
  ctx.lineCap = ctx.lineJoin = 'round';
}

el.draw.addEventListener('pointerdown', (e) => {
  if (e.button !== 0) return;
  el.draw.setPointerCapture(e.pointerId);
  if (source.kind !== 'drawing') useDrawing();
  setPen();
  stroke = canvasPoint(e);
  ctx.beginPath();
  ctx.arc(stroke.x, stroke.y, ctx.lineWidth / 2, 0, 2 * Math.PI); // a tap makes a dot
  ctx.fill();
  e.preventDefault();
});
el.draw.addEventListener('pointermove', (e) => {
  if (!stroke) return;
  setPen();
  ctx.beginPath();
  ctx.moveTo(stroke.x, stroke.y);
  for (const c of e.getCoalescedEvents ? e.getCoalescedEvents() : [e]) {
    stroke = canvasPoint(c);
    ctx.lineTo(stroke.x, stroke.y);
  }
  if (!e.getCoalescedEvents) stroke = canvasPoint(e);
  ctx.stroke();
  requestPredict();
});
function endStroke() {
  if (!stroke) return;
  stroke = null;
  requestPredict();
}
el.draw.addEventListener('pointerup', endStroke);
el.draw.addEventListener('pointercancel', endStroke);

el.clear.addEventListener('click', () => {
  clearCanvas();
  useDrawing();
  requestPredict();
});

function useDrawing() {
  source = { kind: 'drawing' };
  el.sourceNote.textContent = 'Draw with the mouse, a pen or a finger; the network predicts as you draw.';
}

/** The drawing as one byte per pixel (the red channel: 255 = ink). */
function drawingPixels() {
  const { width, height } = el.draw;
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const px = new Uint8Array(width * height);
  for (let i = 0; i < px.length; i++) px[i] = rgba[4 * i];
  return { px, width, height };
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
  el.prediction.querySelector('.digit').textContent = blank ? '–' : String(best);
  el.prediction.querySelector('.prob').textContent = blank ? 'draw a digit' : `${(100 * probs[best]).toFixed(1)} %`;
  renderProbs(probs, blank ? -1 : best);
  renderLayers(pred);
}

// Ten rows: digit, bar, percent.
function renderProbs(probs, best) {
  if (el.probs.children.length !== probs.length) {
    el.probs.replaceChildren();
    for (let i = 0; i < probs.length; i++) {
      const row = document.createElement('div');
      row.className = 'prob-row';
      row.setAttribute('role', 'listitem');
      row.innerHTML = `<span class="label">${i}</span><span class="bar"><span class="fill"></span></span><span class="pct"></span>`;
      el.probs.append(row);
    }
  }
  [...el.probs.children].forEach((row, i) => {
    const p = probs[i];
    row.classList.toggle('best', i === best);
    row.querySelector('.fill').style.width = `${(100 * p).toFixed(2)}%`;
    row.querySelector('.pct').textContent = `${(100 * p).toFixed(1)} %`;
  });
}

// ---------- layers and filters ----------

/** Paint values into a canvas as a grid of tiles (each tileH × tileW values, `scale` px per value, 1 px transparent gaps). */
function paintTiles(canvas, values, count, tileH, tileW, cols, scale) {
  const rows = Math.ceil(count / cols);
  const W = cols * (tileW * scale + 1) - 1;
  const H = rows * (tileH * scale + 1) - 1;
  canvas.width = W;
  canvas.height = H;
  const rgba = colorize(values instanceof Float32Array ? values : Float32Array.from(values));
  const img = new ImageData(W, H); // transparent: the gaps show the canvas background
  const d = img.data;
  const n = tileH * tileW;
  for (let t = 0; t < count; t++) {
    const x0 = (t % cols) * (tileW * scale + 1);
    const y0 = Math.floor(t / cols) * (tileH * scale + 1);
    for (let i = 0; i < n; i++) {
      const s = 4 * (t * n + i);
      const xs = x0 + (i % tileW) * scale;
      const ys = y0 + Math.floor(i / tileW) * scale;
      for (let dy = 0; dy < scale; dy++) {
        let o = 4 * ((ys + dy) * W + xs);
        for (let dx = 0; dx < scale; dx++, o += 4) {
          d[o] = rgba[s]; d[o + 1] = rgba[s + 1]; d[o + 2] = rgba[s + 2]; d[o + 3] = 255;
        }
      }
    }
  }
  canvas.getContext('2d').putImageData(img, 0, 0);
}

/** Draw one layer's values: [c,h,w] as c tiles, anything else as a strip of cells. */
function paintLayer(canvas, shape, values) {
  if (shape.length === 3 && shape[1] * shape[2] > 1) {
    const [c, h, w] = shape;
    const scale = Math.max(1, Math.min(12, Math.round(44 / Math.max(h, w))));
    const cols = c <= 3 ? c : Math.ceil(Math.sqrt(c));
    paintTiles(canvas, values, c, h, w, cols, scale);
  } else {
    const n = values.length;
    const rows = Math.ceil(n / 42);
    const cols = Math.ceil(n / rows);
    const cell = n <= 16 ? 18 : n <= 42 ? 10 : 7;
    paintTiles(canvas, values, n, 1, 1, cols, cell);
  }
}

const shapeText = (shape) => shape.join('×');

/** One figure: name, shape, canvas. */
function figure(name, shape, kind) {
  const fig = document.createElement('figure');
  fig.className = `layer ${kind}`;
  const cap = document.createElement('figcaption');
  cap.innerHTML = '<b></b> <span class="shape"></span>';
  cap.querySelector('b').textContent = name;
  cap.querySelector('.shape').textContent = shapeText(shape);
  const canvas = document.createElement('canvas');
  canvas.className = 'fmap';
  canvas.dataset.layer = name;
  fig.append(cap, canvas);
  return fig;
}

let layersKey = '';
function renderLayers(pred) {
  // The input, every layer in model order, then the class probabilities.
  const entries = [
    { name: 'input', shape: [1, 28, 28], values: pred.input, kind: 'input' },
    ...Array.from(pred.layers, (l) => ({ name: l.name, shape: Array.from(l.shape), values: l.values, kind: 'hidden' })),
    { name: 'softmax', shape: [pred.probabilities.length], values: pred.probabilities, kind: 'output' },
  ];
  const key = entries.map((e) => `${e.name}:${shapeText(e.shape)}`).join('|');
  if (key !== layersKey) {
    el.layers.replaceChildren(...entries.map((e) => figure(e.name, e.shape, e.kind)));
    layersKey = key;
  }
  const canvases = el.layers.querySelectorAll('canvas.fmap');
  entries.forEach((e, i) => paintLayer(canvases[i], e.shape, e.values));
}

async function refreshFilters() {
  const weights = await enqueue(() => engine.filters());
  el.filters.replaceChildren();
  for (const f of weights) {
    const shape = Array.from(f.shape);
    const [cout, cin, kh, kw] = shape;
    const fig = figure(f.name, shape, 'filter');
    const canvas = fig.querySelector('canvas');
    canvas.className = 'filter';
    const scale = Math.max(2, Math.min(10, Math.round(30 / Math.max(kh, kw)), Math.floor(400 / (cout * kh))));
    paintTiles(canvas, f.values, cout * cin, kh, kw, cin, scale);
    el.filters.append(fig);
  }
  if (!weights.length) el.filters.textContent = 'This model has no convolution layers.';
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
  showInputOnCanvas(pred.input);
  el.sourceNote.textContent = `Showing ${name} as the network sees it (28×28). Draw on it to go on by hand.`;
  return pred;
}

function showInputOnCanvas(input) {
  const small = new ImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const g = Math.round(255 * Math.min(1, Math.max(0, input[i])));
    small.data.set([g, g, g, 255], 4 * i);
  }
  const tmp = document.createElement('canvas');
  tmp.width = tmp.height = 28;
  tmp.getContext('2d').putImageData(small, 0, 0);
  clearCanvas();
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, el.draw.width, el.draw.height);
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

let trainData = null; // the four IDX files, fetched once
let training = false;
let stopRequested = false;
let seed = 1;

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status} ${r.statusText}`);
  return new Uint8Array(await r.arrayBuffer());
}

function setTraining(on) {
  training = on;
  el.train.disabled = on || !engine;
  el.stop.disabled = !on;
  el.modelFile.disabled = on || !engine;
  el.steps.disabled = on;
  el.picture.disabled = el.download.disabled = !engine;
}

/** Train a fresh model for `steps` steps (or until stopped); returns {history, test}. */
async function train(steps) {
  if (training) throw new Error('Training is already running');
  if (!engine) throw new Error('The engine is not ready');
  steps = Math.max(1, Math.floor(steps));
  setTraining(true);
  clearError(); // a new action: older errors are no longer current
  stopRequested = false;
  history = [];
  trainPlan = steps;
  drawCurve();
  try {
    if (!trainData) {
      setStatus('Fetching the MNIST sample…');
      trainData = await Promise.all(DATA_URLS.map(fetchBytes));
    }
    setStatus('Preparing training…');
    const [ti, tl, vi, vl] = trainData;
    const info = await enqueue(() => engine.startTraining(ti, tl, vi, vl, BATCH, seed++));
    const perEpoch = info.stepsPerEpoch;
    let done = 0;
    while (done < steps && !stopRequested) {
      const n = Math.min(CHUNK, steps - done);
      const r = await enqueue(() => engine.trainSteps(n));
      done += n;
      history.push({ step: r.step, loss: r.loss, accuracy: r.accuracy, imagesPerSecond: r.imagesPerSecond });
      setStatus(`Training: step ${r.step} of ${steps}`);
      el.stats.textContent =
        `step ${r.step} · epoch ${r.epoch.toFixed(2)} of ${(steps / perEpoch).toFixed(2)} · loss ${r.loss.toFixed(4)} · ` +
        `accuracy ${(100 * r.accuracy).toFixed(1)} % · ${Math.round(r.imagesPerSecond).toLocaleString('en')} images/s`;
      drawCurve();
    }
    setStatus('Testing on the 2,000 held-out digits…');
    const test = await enqueue(() => engine.finishTraining());
    const last = history[history.length - 1];
    el.stats.textContent =
      `${last ? last.step : 0} steps (${info.trainCount.toLocaleString('en')} training digits, batch ${BATCH}): ` +
      `test accuracy ${(100 * test.testAccuracy).toFixed(2)} %, test loss ${test.testLoss.toFixed(4)} ` +
      `on ${info.testCount.toLocaleString('en')} digits` + (last ? ` · ${Math.round(last.imagesPerSecond).toLocaleString('en')} images/s` : '');
    const base = modelSummary.split(' — ')[0] || 'model';
    modelSummary = `${base} — trained here, ${last ? last.step : 0} steps, test accuracy ${(100 * test.testAccuracy).toFixed(2)} %`;
    el.modelName.textContent = modelSummary;
    setStatus(stopRequested ? 'Training stopped; using the new weights' : 'Trained; using the new weights');
    await refreshFilters();
    requestPredict();
    return { history: history.map((h) => ({ ...h })), test: { testLoss: test.testLoss, testAccuracy: test.testAccuracy } };
  } catch (e) {
    showError('Training failed', e);
    setStatus('Training failed');
    throw e;
  } finally {
    setTraining(false);
  }
}

el.train.addEventListener('click', () => {
  const steps = Number(el.steps.value);
  if (!(steps >= 1)) { showError('Training', 'the number of steps must be at least 1'); return; }
  train(steps).catch(() => {}); // shown in #error already
});
el.stop.addEventListener('click', () => {
  stopRequested = true;
  el.stop.disabled = true;
  setStatus('Stopping after this chunk…');
});

// The curve: train loss (left axis) and train accuracy (right axis, 0–100 %) against the step.
function drawCurve() {
  const c = el.curve;
  const dpr = window.devicePixelRatio || 1;
  const cssW = c.clientWidth || 400, cssH = c.clientHeight || 180;
  if (c.width !== Math.round(cssW * dpr) || c.height !== Math.round(cssH * dpr)) {
    c.width = Math.round(cssW * dpr);
    c.height = Math.round(cssH * dpr);
  }
  const g = c.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, cssW, cssH);
  const m = { l: 40, r: 40, t: 12, b: 24 };
  const w = cssW - m.l - m.r, h = cssH - m.t - m.b;
  const maxStep = Math.max(trainPlan, ...history.map((p) => p.step), 1);
  const maxLoss = Math.max(0.5, ...history.map((p) => p.loss)) * 1.05;
  const x = (s) => m.l + (s / maxStep) * w;
  const yl = (v) => m.t + h - (v / maxLoss) * h;
  const ya = (v) => m.t + h - v * h;

  g.font = '11px system-ui, sans-serif';
  g.lineWidth = 1;
  g.strokeStyle = '#e3e6eb';
  g.fillStyle = '#6b7280';
  for (let i = 0; i <= 4; i++) {
    const yy = m.t + (h * i) / 4;
    g.beginPath(); g.moveTo(m.l, yy); g.lineTo(m.l + w, yy); g.stroke();
    g.textAlign = 'right'; g.fillText((maxLoss * (1 - i / 4)).toFixed(2), m.l - 4, yy + 4);
    g.textAlign = 'left'; g.fillText(`${100 - 25 * i}%`, m.l + w + 4, yy + 4);
  }
  g.textAlign = 'center';
  g.fillText('step', m.l + w / 2, cssH - 6);
  g.textAlign = 'left'; g.fillText('0', m.l, cssH - 6);
  g.textAlign = 'right'; g.fillText(String(maxStep), m.l + w, cssH - 6);

  const line = (color, y, key) => {
    if (!history.length) return;
    g.strokeStyle = color; g.fillStyle = color; g.lineWidth = 2;
    g.beginPath();
    history.forEach((p, i) => (i ? g.lineTo(x(p.step), y(p[key])) : g.moveTo(x(p.step), y(p[key]))));
    g.stroke();
    if (history.length === 1) { g.beginPath(); g.arc(x(history[0].step), y(history[0][key]), 3, 0, 7); g.fill(); }
  };
  line('#c62828', yl, 'loss');
  line('#1f5fbf', ya, 'accuracy');

  // Legend.
  g.textAlign = 'left';
  g.fillStyle = '#c62828'; g.fillRect(m.l + 8, m.t + 6, 12, 3); g.fillText('train loss', m.l + 24, m.t + 11);
  g.fillStyle = '#1f5fbf'; g.fillRect(m.l + 96, m.t + 6, 12, 3); g.fillText('train accuracy', m.l + 112, m.t + 11);
}
window.addEventListener('resize', () => drawCurve());

// ---------- start-up ----------

async function start() {
  setTraining(false); // disables what needs the engine
  drawCurve();
  if (!navigator.gpu) throw new Error(NO_WEBGPU);
  setStatus('Loading the engine…');
  await init();
  try {
    engine = await Engine.create();
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
  get history() { return history; },
  predictPicture: async (bytes, name) => plain(await classifyPicture(Uint8Array.from(bytes), name)),
  train: async (steps) => {
    el.steps.value = String(steps);
    return train(steps);
  },
};
