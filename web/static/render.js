// Drawing results into the page: probability bars, every layer's values, the filters, the training curve.
import { colorize } from './pkg/wgcnn_web.js';
import { el } from './ui.js';

// ---------- probabilities ----------

/** One row a class: its name (the checkpoint's class names, else the digit), bar, percent; `best` (or none when -1) is highlighted. */
export function renderProbs(probs, best, names) {
  if (el.probs.children.length !== probs.length) {
    el.probs.replaceChildren();
    for (let i = 0; i < probs.length; i++) {
      const row = document.createElement('div');
      row.className = 'prob-row';
      row.setAttribute('role', 'listitem');
      row.innerHTML = `<span class="label"></span><span class="bar"><span class="fill"></span></span><span class="pct"></span>`;
      el.probs.append(row);
    }
  }
  [...el.probs.children].forEach((row, i) => {
    const p = probs[i];
    row.classList.toggle('best', i === best);
    row.querySelector('.label').textContent = names && names[i] !== undefined ? names[i] : String(i);
    row.querySelector('.fill').style.width = `${(100 * p).toFixed(2)}%`;
    row.querySelector('.pct').textContent = `${(100 * p).toFixed(1)} %`;
  });
}

// ---------- layers and filters ----------

/** Paint values into a canvas as a grid of tiles (each tileH × tileW values, `scale` px per value, 1 px transparent gaps). */
export function paintTiles(canvas, values, count, tileH, tileW, cols, scale) {
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
  Object.assign(canvas.dataset, { tileH, tileW, cols, scale, count }); // for unitAt and markCells
}

/** How paintTiles laid a canvas out: `{tileH, tileW, cols, scale, count}` (all 0 when it did not). */
export const tiling = (canvas) =>
  Object.fromEntries(['tileH', 'tileW', 'cols', 'scale', 'count'].map((k) => [k, Number(canvas.dataset[k]) || 0]));

/** The flat index of the unit under canvas pixel (px, py) of a canvas painted by paintTiles, or -1. */
export function unitAt(canvas, px, py) {
  const { tileH, tileW, cols, scale, count } = tiling(canvas);
  if (!scale) return -1;
  const sx = tileW * scale + 1;
  const sy = tileH * scale + 1;
  const col = Math.floor(px / sx);
  const row = Math.floor(py / sy);
  const ix = Math.floor((px - col * sx) / scale);
  const iy = Math.floor((py - row * sy) / scale);
  const tile = row * cols + col;
  if (col < 0 || col >= cols || ix >= tileW || iy >= tileH || ix < 0 || iy < 0 || tile >= count) return -1;
  return (tile * tileH + iy) * tileW + ix;
}

/**
 * Outline cells of a painted canvas: `marks` are {tile, y0, y1, x0, x1} in the canvas's tiles (a
 * vector's cell i is tile i); `kind` is a class of the outline ('field', 'cell', 'winner').
 */
export function markCells(canvas, marks, kind) {
  const fig = canvas.closest('figure');
  const { tileH, tileW, cols, scale } = tiling(canvas);
  if (!fig || !scale) return;
  const k = canvas.clientWidth / canvas.width;
  for (const m of marks) {
    const left = (m.tile % cols) * (tileW * scale + 1) + m.x0 * scale;
    const top = Math.floor(m.tile / cols) * (tileH * scale + 1) + m.y0 * scale;
    const box = document.createElement('div');
    box.className = `mark ${kind}`;
    Object.assign(box.style, {
      left: `${canvas.offsetLeft + left * k - 1}px`,
      top: `${canvas.offsetTop + top * k - 1}px`,
      width: `${(m.x1 - m.x0 + 1) * scale * k}px`,
      height: `${(m.y1 - m.y0 + 1) * scale * k}px`,
    });
    fig.append(box);
  }
}

/** Remove every outline markCells drew. */
export function clearMarks() {
  for (const m of document.querySelectorAll('#layers .mark')) m.remove();
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

/** One figure: name, shape, canvas; `reads` (optional) names the layers it reads when they are not the
 * figure before it (a branch starting, or branches joining). */
function figure(name, shape, kind, reads = '') {
  const fig = document.createElement('figure');
  fig.className = `layer ${kind}${reads ? ' branch' : ''}`;
  const cap = document.createElement('figcaption');
  cap.innerHTML = '<b></b> <span class="shape"></span>';
  cap.querySelector('b').textContent = name;
  cap.querySelector('.shape').textContent = shapeText(shape);
  if (reads) {
    const r = document.createElement('span');
    r.className = 'reads';
    r.textContent = ` ← ${reads}`;
    cap.append(r);
  }
  const canvas = document.createElement('canvas');
  canvas.className = 'fmap';
  canvas.dataset.layer = name;
  fig.append(cap, canvas);
  return fig;
}

let layersKey = ''; // the names and shapes on display: the figures are rebuilt only when they change

/**
 * What each shown layer reads, when that is not the layer shown before it: the start of a branch or
 * the join of several (`graph`: the engine's layerGraph). Layers not shown (views such as flatten) pass
 * their input through.
 */
function branchInputs(entries, graph) {
  const reads = new Map(graph.map((l) => [l.name, Array.from(l.inputs)]));
  const shown = new Set(entries.map((e) => e.name));
  const source = (name) => { // a hidden layer stands for what it reads
    let n = name;
    while (!shown.has(n) && reads.has(n) && reads.get(n).length === 1) n = reads.get(n)[0];
    return n;
  };
  return entries.map((e, i) => {
    const ins = (reads.get(e.name) || []).map(source);
    const before = i > 0 ? entries[i - 1].name : null;
    return ins.length && !(ins.length === 1 && ins[0] === before) ? ins.join(' + ') : '';
  });
}

/** The input, every layer in model order, then the class probabilities; `graph` (optional): the
 * engine's layerGraph, to mark where branches start and join. */
export function renderLayers(pred, graph = []) {
  clearMarks(); // the values changed: the outlines described the last ones
  const entries = [
    { name: 'input', shape: pred.inputShape ? Array.from(pred.inputShape) : [1, 28, 28], values: pred.input, kind: 'input' },
    ...Array.from(pred.layers, (l) => ({ name: l.name, shape: Array.from(l.shape), values: l.values, kind: 'hidden' })),
    { name: 'softmax', shape: [pred.probabilities.length], values: pred.probabilities, kind: 'output' },
  ];
  const reads = branchInputs(entries, graph);
  const key = entries.map((e, i) => `${e.name}:${shapeText(e.shape)}:${reads[i]}`).join('|');
  if (key !== layersKey) {
    el.layers.replaceChildren(...entries.map((e, i) => figure(e.name, e.shape, e.kind, reads[i])));
    layersKey = key;
  }
  const canvases = el.layers.querySelectorAll('canvas.fmap');
  entries.forEach((e, i) => paintLayer(canvases[i], e.shape, e.values));
}

/** The conv weights `[{name, shape: [c_out, c_in, kh, kw], values}]`: one row per output channel. */
export function renderFilters(weights) {
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

// ---------- the training curve ----------

const LOSS_COLOUR = '#c62828';
const ACCURACY_COLOUR = '#1f5fbf';

/** Size the curve canvas for the device pixels; returns its 2D context (in CSS px) and CSS size. */
function curveContext(c) {
  const dpr = window.devicePixelRatio || 1;
  const cssW = c.clientWidth || 400, cssH = c.clientHeight || 196;
  if (c.width !== Math.round(cssW * dpr) || c.height !== Math.round(cssH * dpr)) {
    c.width = Math.round(cssW * dpr);
    c.height = Math.round(cssH * dpr);
  }
  const g = c.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, cssW, cssH);
  g.font = '11px system-ui, sans-serif';
  return { g, cssW, cssH };
}

/** Grid lines, the loss axis (left), the accuracy axis (right, 0–100 %) and the step axis. */
function drawAxes(g, m, w, h, maxLoss, maxStep, cssH) {
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
}

/** The legend, in a band above the plot area (so it never covers a line). */
function drawLegend(g, left, top) {
  g.textAlign = 'left';
  let x = left;
  for (const [colour, label] of [[LOSS_COLOUR, 'train loss'], [ACCURACY_COLOUR, 'train accuracy']]) {
    g.fillStyle = colour;
    g.fillRect(x, top - 4, 12, 3);
    g.fillText(label, x + 16, top);
    x += 16 + g.measureText(label).width + 18;
  }
}

/** The curve: train loss (left axis) and train accuracy (right axis) of `history` against the step, 0 to `plan`. */
export function drawCurve(history, plan) {
  const { g, cssW, cssH } = curveContext(el.curve);
  const m = { l: 40, r: 40, t: 30, b: 24 }; // the top margin holds the legend
  const w = cssW - m.l - m.r, h = cssH - m.t - m.b;
  const maxStep = Math.max(plan, ...history.map((p) => p.step), 1);
  el.curve.dataset.steps = String(maxStep); // the x axis's end, and the points drawn (read by the test)
  el.curve.dataset.points = String(history.length);
  const maxLoss = Math.max(0.5, ...history.map((p) => p.loss)) * 1.05;
  const x = (s) => m.l + (s / maxStep) * w;
  const yl = (v) => m.t + h - (v / maxLoss) * h;
  const ya = (v) => m.t + h - v * h;
  drawAxes(g, m, w, h, maxLoss, maxStep, cssH);

  const line = (colour, y, key) => {
    if (!history.length) return;
    g.strokeStyle = colour; g.fillStyle = colour; g.lineWidth = 2;
    g.beginPath();
    history.forEach((p, i) => (i ? g.lineTo(x(p.step), y(p[key])) : g.moveTo(x(p.step), y(p[key]))));
    g.stroke();
    if (history.length === 1) { g.beginPath(); g.arc(x(history[0].step), y(history[0][key]), 3, 0, 7); g.fill(); }
  };
  line(LOSS_COLOUR, yl, 'loss');
  line(ACCURACY_COLOUR, ya, 'accuracy');
  drawLegend(g, m.l, 13);
}
