#!/usr/bin/env node
// Headless-browser test of the wgcnn web page: serves the built page, drives it in Chromium with
// WebGPU on SwiftShader, and checks drawing, layers, parity with the native binary, model loading
// (checkpoints, a model file, a corrupt checkpoint, a model of the wrong input size), training and
// a screenshot. harness.mjs holds the server, browser and helpers; actions.mjs what is done on the page.
//
//   node web/test/browser.mjs [--dist target/web] [--wgcnn target/release/wgcnn]
//        [--screenshot docs/img/web.png] [--picture web/test/digit.png]
//
// Environment: CHROMIUM (default /usr/bin/chromium).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DIGITS, clearDrawing, drawDigit, expectDigit, focus, loadBadModel, loadModel, modelState, settle,
} from './actions.mjs';
import { check, launch, nativeLayers, nativePredict, openPage, secs, serve, step, stopServer, t0, withTimeout } from './harness.mjs';
import { checkNoWebGpu, checkZoo, comparePlans, openGpuPage } from './plans.mjs';
import { drawnDigits } from './strokes.mjs';

function parseArgs(argv) {
  const opts = {
    dist: 'target/web',
    wgcnn: 'target/release/wgcnn',
    screenshot: 'target/web-test.png',
    picture: 'web/test/digit.png',
  };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(dist|wgcnn|screenshot|picture)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new Error(`unknown argument ${argv[i]} (expected --dist, --wgcnn, --screenshot, --picture)`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new Error(`${argv[i - 1]} needs a value`);
    opts[m[1]] = value;
  }
  return opts;
}

const READY_TIMEOUT = 120_000;
const TRAIN_TIMEOUT = 600_000;
const TRAIN_STEPS = 50;
const TRAIN_SEED = 1;
// The run that is stopped: asked for this many steps, stopped after this many chunks of 10.
const STOP_ASKED = 5000;
const STOP_AFTER_CHUNKS = 3;
// The GPU's plans (tiled kernels) run about 9x slower than the adapter's on SwiftShader: both pages
// train LeNet-5 for 20 steps, and three zoo models that between them use every other op (dropout;
// batch-norm, concat, average pooling; add, global average pooling, stride 2, 1x1 convs) for 2.
const GPU_STEPS = 20;
const ZOO = ['alexnet-mini', 'densenet-mini', 'resnet-mini'];
const ZOO_STEPS = 2;
const PARITY_TOLERANCE = 1e-4;
// Drawn digits (strokes.mjs): this many of each class, half by mouse and half by touch, every
// variation 1.5 times scripts/drawn_digits.py's default ranges (rotations to ±22°, slants to ±0.5);
// the shipped model must read DRAWN_OVERALL of them right and DRAWN_PER_CLASS_MIN of every class.
const DRAWN_PER_CLASS = 10;
const DRAWN_SPREAD = 1.5;
const DRAWN_SEED = 23;
const DRAWN_OVERALL = 0.97;
const DRAWN_PER_CLASS_MIN = 0.9;
const MODELS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../models'); // the repo's model files

/**
 * A model file whose input the page cannot show (pictures are grey or colour: 1 or 3 channels): a
 * copy of models/lenet5.toml with the input changed to 2×28×28, written under `tmp`. Returns {file, dims}.
 */
function wrongInputModel(tmp) {
  const inputLine = /^(\s*input\s*=\s*)\[([^\]]*)\]/m;
  const text = fs.readFileSync(path.join(MODELS, 'lenet5.toml'), 'utf8');
  const changed = text.replace(inputLine, '$1[2, 28, 28]');
  check(changed !== text, `no input line in ${MODELS}/lenet5.toml`);
  const file = path.join(tmp, 'lenet5-2x28x28.toml');
  fs.writeFileSync(file, changed);
  return { file, dims: [2, 28, 28] };
}

/**
 * A colour model (models/resnet-cifar.toml, 3×32×32, fresh random weights) classifies a colour PNG the
 * page draws (red, green and blue shapes on black, 48×40: resized to 32×32) as the native binary does
 * with the page's downloaded checkpoint; the input shown is the colour picture. The shipped LeNet-5 is
 * loaded again afterwards.
 */
async function checkColourModel(t) {
  const toml = path.join(MODELS, 'resnet-cifar.toml');
  check(fs.existsSync(toml), `${toml} does not exist`);
  const s = await loadModel(t.page, toml);
  check(/resnet-cifar/.test(s.name), `#model-name "${s.name}" after loading resnet-cifar.toml`);
  const png = Buffer.from(await t.page.evaluate(() => {
    const c = document.createElement('canvas');
    c.width = 48;
    c.height = 40;
    const g = c.getContext('2d');
    g.fillStyle = '#000';
    g.fillRect(0, 0, 48, 40);
    g.fillStyle = '#e02010';
    g.fillRect(4, 6, 14, 12);
    g.fillStyle = '#10c030';
    g.beginPath();
    g.arc(32, 26, 9, 0, 2 * Math.PI);
    g.fill();
    g.fillStyle = '#2040f0';
    g.fillRect(30, 3, 14, 6);
    return c.toDataURL('image/png').split(',')[1];
  }), 'base64');
  const picture = path.join(t.tmp, 'colour.png');
  fs.writeFileSync(picture, png);
  const web = await t.page.evaluate((b, n) => window.wgcnnPage.predictPicture(b, n), [...png], 'colour.png');
  check(web.inputShape.join('x') === '3x32x32', `the prepared input is ${web.inputShape.join('x')}, not 3x32x32`);
  check(web.input.length === 3 * 32 * 32, `${web.input.length} input values, not ${3 * 32 * 32}`);
  const plane = 32 * 32;
  const red = web.input.slice(0, plane).reduce((a, v) => a + v, 0);
  const blue = web.input.slice(2 * plane).reduce((a, v) => a + v, 0);
  check(red > 0 && blue > 0 && red !== blue, `the input's red (${red}) and blue (${blue}) planes do not differ`);
  const ckpt = path.join(t.tmp, 'resnet-cifar-in-the-page.safetensors');
  fs.writeFileSync(ckpt, Buffer.from(await t.page.evaluate(() => window.wgcnnPage.modelBase64()), 'base64'));
  const native = await nativePredict(path.resolve(t.opts.wgcnn), ckpt, picture);
  const max = Math.max(...web.probabilities.map((p, i) => Math.abs(p - native.probabilities[i])));
  console.log(`# native ${JSON.stringify(native.probabilities.map((v) => +v.toFixed(6)))}`);
  console.log(`# page   ${JSON.stringify(web.probabilities.map((v) => +v.toFixed(6)))}`);
  check(max <= PARITY_TOLERANCE, `probabilities differ by up to ${max.toExponential(3)} (> ${PARITY_TOLERANCE})`);
  check(web.class === native.class, `class ${web.class} in the page, ${native.class} natively`);
  const back = await loadModel(t.page, t.model);
  check(back.name === t.shipped.name, `#model-name "${back.name}" after loading the checkpoint again`);
  return `"${s.name}": class ${web.class}, max |difference| ${max.toExponential(3)} from native; then "${back.name}" again`;
}

// ---------- the checks, each given t = {opts, url, page, model, tmp, shipped} ----------

async function checkReady(t) {
  await t.page.goto(t.url, { waitUntil: 'load' });
  await t.page.waitForFunction(() => document.body.dataset.ready, { timeout: READY_TIMEOUT, polling: 250 });
  const s = await t.page.evaluate(() => ({
    ready: document.body.dataset.ready,
    error: document.querySelector('#error').textContent.trim(),
    adapter: document.querySelector('#adapter').textContent.trim(),
    model: document.querySelector('#model-name').textContent.trim(),
    filters: document.querySelectorAll('#filters canvas').length,
  }));
  check(s.ready === '1', `start-up failed: ${s.error || '(no message in #error)'}`);
  check(s.error === '', `#error is not empty: ${s.error}`);
  check(s.adapter && !/^no (GPU|WebGPU) adapter/.test(s.adapter), `no adapter shown (#adapter: "${s.adapter}")`);
  check(s.filters > 0, 'no filter canvases in #filters');
  return `adapter "${s.adapter}", model "${s.model}", ${s.filters} filter canvases`;
}

async function checkLayerCanvases(t) {
  const r = await t.page.evaluate(() =>
    Array.from(document.querySelectorAll('canvas.fmap'), (c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const colours = new Set();
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] === 255) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      return { layer: c.dataset.layer, size: `${c.width}x${c.height}`, colours: colours.size };
    }));
  check(r.length >= 3, `only ${r.length} canvas.fmap elements`);
  const blank = r.filter((c) => c.colours < 2);
  check(!blank.length, `blank layer canvases: ${blank.map((c) => `${c.layer} (${c.size}, ${c.colours} colour)`).join(', ')}`);
  return `${r.length} canvases: ${r.map((c) => c.layer).join(' → ')}`;
}

/**
 * Digits drawn as people draw them — slanted, rotated, small and large, off-centre — as mouse and touch
 * strokes (strokes.mjs, seeded): the shipped model reads at least DRAWN_OVERALL of them right and
 * DRAWN_PER_CLASS_MIN of every class.
 */
async function checkDrawnDigits(t) {
  const set = drawnDigits(DRAWN_SEED, DRAWN_PER_CLASS, DRAWN_SPREAD);
  const per = Array.from({ length: 10 }, () => ({ right: 0, n: 0 }));
  const by = { mouse: { right: 0, n: 0 }, touch: { right: 0, n: 0 } };
  const confused = new Map();
  for (const d of set) {
    await clearDrawing(t.page);
    const p = await drawDigit(t.page, d.strokes, { by: d.by, spacing: 8 });
    check(p, `no prediction after drawing a ${d.digit} by ${d.by}`);
    const ok = p.cls === d.digit;
    per[d.digit].n++;
    by[d.by].n++;
    if (ok) {
      per[d.digit].right++;
      by[d.by].right++;
    } else {
      const key = `${d.digit} read as ${p.cls}`;
      confused.set(key, (confused.get(key) ?? 0) + 1);
    }
  }
  const pct = (a) => (100 * a.right) / a.n;
  const right = per.reduce((s, c) => s + c.right, 0);
  console.log(`# drawn digits: ${right}/${set.length} = ${((100 * right) / set.length).toFixed(1)} % ` +
    `(mouse ${pct(by.mouse).toFixed(1)} %, touch ${pct(by.touch).toFixed(1)} %)`);
  console.log(`# per class: ${per.map((c, d) => `${d}: ${pct(c).toFixed(0)} %`).join(', ')}`);
  if (confused.size) console.log(`# confusions: ${[...confused].map(([k, n]) => `${k} ×${n}`).join(', ')}`);
  check(by.touch.n > 0 && by.mouse.n > 0, 'the set has no touch or no mouse strokes');
  check(right >= DRAWN_OVERALL * set.length,
    `${right}/${set.length} drawn digits read right, below ${100 * DRAWN_OVERALL} %`);
  const weak = per.map((c, d) => [d, c]).filter(([, c]) => c.right < DRAWN_PER_CLASS_MIN * c.n);
  check(!weak.length, `classes below ${100 * DRAWN_PER_CLASS_MIN} %: ` +
    weak.map(([d, c]) => `${d} (${c.right}/${c.n})`).join(', '));
  return `${right}/${set.length} right (${((100 * right) / set.length).toFixed(1)} %), every class ≥ ` +
    `${Math.min(...per.map(pct)).toFixed(0)} %`;
}

/** Parity with the native binary on the same picture and checkpoint (default: the shipped one). */
async function checkParity(t, model = t.model) {
  const { opts } = t;
  check(fs.existsSync(opts.picture), `${opts.picture} does not exist (a 28x28 MNIST digit PNG is needed for this check)`);
  check(fs.existsSync(opts.wgcnn), `${opts.wgcnn} does not exist (build it: cargo build --release)`);
  const native = await nativePredict(path.resolve(opts.wgcnn), model, path.resolve(opts.picture));
  const bytes = [...fs.readFileSync(opts.picture)];
  const web = await t.page.evaluate((b, n) => window.wgcnnPage.predictPicture(b, n), bytes, path.basename(opts.picture));
  check(web.probabilities.length === native.probabilities.length,
    `${web.probabilities.length} probabilities in the page, ${native.probabilities.length} natively`);
  const diffs = web.probabilities.map((p, i) => Math.abs(p - native.probabilities[i]));
  const max = Math.max(...diffs);
  console.log(`# native ${JSON.stringify(native.probabilities.map((v) => +v.toFixed(6)))}`);
  console.log(`# page   ${JSON.stringify(web.probabilities.map((v) => +v.toFixed(6)))}`);
  check(max <= PARITY_TOLERANCE, `probabilities differ by up to ${max.toExponential(3)} (> ${PARITY_TOLERANCE})`);
  check(web.class === native.class, `class ${web.class} in the page, ${native.class} natively`);
  check(web.input.length === 784, `the prepared input has ${web.input.length} values, not 784`);
  return `class ${web.class}, max |difference| ${max.toExponential(3)}`;
}

// Units explained (LeNet-5's geometry, from models/lenet5.toml): [layer, channel, row, column] and the
// windows behind them. The sums and values must equal the native engine's to UNIT_TOLERANCE (relative to
// max(1, |value|)): the page's and visualize's forward passes run the same plain kernels.
const UNITS = [
  ['conv1', 2, 5, 7], ['conv1', 0, 0, 0], ['relu1', 4, 13, 20], ['pool1', 3, 6, 6], ['conv2', 5, 4, 3],
  ['conv2', 15, 9, 9], ['pool2', 10, 2, 2], ['fc1', 17, 0, 0], ['fc2', 40, 0, 0], ['fc3', 4, 0, 0],
];
const WINDOWS = { conv1: { k: 5, s: 1, p: 2 }, pool1: { k: 2, s: 2, p: 0 }, conv2: { k: 5, s: 1, p: 0 }, pool2: { k: 2, s: 2, p: 0 } };
const READS = { conv1: 'input', relu1: 'conv1', pool1: 'relu1', conv2: 'pool1', relu2: 'conv2', pool2: 'relu2', fc1: 'pool2', fc2: 'relu3', fc3: 'relu4' };
const UNIT_TOLERANCE = 1e-5;

/**
 * Point at a unit, see why: with a drawn 7 on display (the shipped model), units of conv, ReLU,
 * pool and linear layers are explained (the page's hook, as pointing does) and checked against the
 * native engine's values for the same drawing (its PNG through `wgcnn visualize`: layers.json): the unit's value and
 * the explanation's sum (Σ w·x + b, the max, the ReLU), every value of the conv's patch, the max pool's
 * winner, the linear unit's strongest inputs, and the receptive field in the layer read and in the input
 * against LeNet-5's geometry. Then a real mouse hover over a conv2 cell shows the same in #unit.
 */
async function checkUnits(t) {
  const { page } = t;
  // A drawn 7, saved as the canvas's PNG, so the page and the native binary prepare the same bytes.
  await clearDrawing(page);
  await drawDigit(page, DIGITS[7]);
  const png = Buffer.from(await page.$eval('#draw', (c) => c.toDataURL('image/png').split(',')[1]), 'base64');
  const drawing = path.join(t.tmp, 'drawn-7.png');
  fs.writeFileSync(drawing, png);
  t.drawing = drawing; // for checkEveryOp
  const shownPred = await page.evaluate((b) => window.wgcnnPage.predictPicture(b, 'drawn-7.png'), [...png]);
  check(shownPred.class === 7, `the drawn 7, as a picture, reads as ${shownPred.class}`);
  const native = await nativeLayers(path.resolve(t.opts.wgcnn), t.model, drawing, path.join(t.tmp, 'vis'));
  const layer = (n) => {
    if (n === 'input') return { shape: native.input_shape, values: native.input };
    const l = native.layers.find((x) => x.name === n);
    check(l, `no ${n} in layers.json`);
    return l;
  };
  const chw = (shape) => (shape.length === 3 ? shape : [shape[0], 1, 1]);
  const valueAt = (l, c, y, x) => { const [, h, w] = chw(l.shape); return l.values[(c * h + y) * w + x]; };
  const near = (a, b) => Math.abs(a - b) / Math.max(1, Math.abs(b));
  let worst = 0;
  const seen = [];
  for (const [name, c, y, x] of UNITS) {
    const own = layer(name);
    const [, h, w] = chw(own.shape);
    const index = (c * h + y) * w + x;
    const e = await page.evaluate((n, i) => window.wgcnnPage.explainUnit(n, i), name, index);
    const what = `${name}[${c}, ${y}, ${x}]`;
    check(e, `${what}: no explanation`);
    const want = own.values[index];
    const d = Math.max(near(e.value, want), near(e.sum, want));
    worst = Math.max(worst, d);
    check(d <= UNIT_TOLERANCE, `${what}: the page shows ${e.value} (sum ${e.sum}), natively ${want}`);
    const read = layer(READS[name]);
    check(e.reads[0].layer === READS[name], `${what} reads ${e.reads[0].layer}, not ${READS[name]}`);
    const win = WINDOWS[name];
    if (win) {
      const [, rh, rw] = chw(read.shape);
      const span = (v, size) => [Math.max(0, v * win.s - win.p), Math.min(size - 1, v * win.s - win.p + win.k - 1)];
      const [y0, y1] = span(y, rh);
      const [x0, x1] = span(x, rw);
      const b = e.reads[0].box;
      check(b.y0 === y0 && b.y1 === y1 && b.x0 === x0 && b.x1 === x1,
        `${what}: the field in ${READS[name]} is ${JSON.stringify(b)}, LeNet-5's geometry gives rows ${y0}–${y1}, columns ${x0}–${x1}`);
    }
    if (e.patch) { // every value the filter multiplies is the native value at its place
      const [cin, k] = e.patch.shape;
      for (let ci = 0; ci < cin; ci++) {
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) {
            const yy = y * win.s - win.p + ky;
            const xx = x * win.s - win.p + kx;
            const [, rh, rw] = chw(read.shape);
            const nv = yy >= 0 && yy < rh && xx >= 0 && xx < rw ? valueAt(read, ci, yy, xx) : 0;
            const pv = e.patch.values[(ci * k + ky) * k + kx];
            worst = Math.max(worst, near(pv, nv));
            check(near(pv, nv) <= UNIT_TOLERANCE, `${what}: patch value ${pv} at (${ci}, ${yy}, ${xx}), natively ${nv}`);
          }
        }
      }
    }
    if (e.winner) {
      let best = -Infinity;
      for (let yy = y * 2; yy < y * 2 + 2; yy++) for (let xx = x * 2; xx < x * 2 + 2; xx++) best = Math.max(best, valueAt(read, c, yy, xx));
      check(near(e.winner.value, best) <= UNIT_TOLERANCE && near(valueAt(read, c, e.winner.y, e.winner.x), best) <= UNIT_TOLERANCE,
        `${what}: the winner ${JSON.stringify(e.winner)}, natively the window's max is ${best}`);
    }
    if (e.strongest) {
      for (const p of e.strongest) {
        worst = Math.max(worst, near(p.input, read.values[p.i]));
        check(near(p.input, read.values[p.i]) <= UNIT_TOLERANCE, `${what}: strongest input #${p.i} is ${p.input}, natively ${read.values[p.i]}`);
      }
      const mags = e.strongest.map((p) => Math.abs(p.product));
      check(mags.every((m, i) => !i || m <= mags[i - 1]), `${what}: the strongest inputs are not in order`);
    }
    seen.push(e);
  }
  // The class probability and an input cell explain themselves too.
  const soft = await page.evaluate(() => window.wgcnnPage.explainUnit('softmax', 7));
  const ds = Math.max(Math.abs(soft.value - native.probabilities[7]), Math.abs(soft.sum - native.probabilities[7]));
  check(ds <= UNIT_TOLERANCE && soft.reads[0].layer === 'fc3', `softmax[7]: ${JSON.stringify(soft)}, natively ${native.probabilities[7]}`);
  const pixel = (14 * 28) + 14;
  const inp = await page.evaluate((i) => window.wgcnnPage.explainUnit('input', i), pixel);
  check(Math.abs(inp.sum - native.input[pixel]) <= UNIT_TOLERANCE, `input[14, 14]: the page feeds ${inp.sum}, natively ${native.input[pixel]}`);
  worst = Math.max(worst, ds);
  // The field in the input picture of conv2[5, 4, 3]: pool1 rows 4–8 ← conv1 rows 8–17 ← input rows 6–19
  // (columns: 3–7 ← 6–15 ← 4–17).
  const c2 = seen.find((e) => e.layer === 'conv2');
  check(JSON.stringify(c2.inputBox) === JSON.stringify({ y0: 6, y1: 19, x0: 4, x1: 17 }),
    `conv2[5, 4, 3]'s field in the input is ${JSON.stringify(c2.inputBox)}, not rows 6–19, columns 4–17`);
  // A real hover over that cell: the panel and the outlines.
  const target = await page.evaluate(() => {
    const cv = document.querySelector('canvas.fmap[data-layer="conv2"]');
    cv.scrollIntoView({ block: 'center' });
    const r = cv.getBoundingClientRect();
    const { tileH, tileW, cols, scale } = Object.fromEntries(['tileH', 'tileW', 'cols', 'scale'].map((k) => [k, Number(cv.dataset[k])]));
    const [c, y, x] = [5, 4, 3];
    const px = (c % cols) * (tileW * scale + 1) + (x + 0.5) * scale;
    const py = Math.floor(c / cols) * (tileH * scale + 1) + (y + 0.5) * scale;
    return { x: r.left + (px * r.width) / cv.width, y: r.top + (py * r.height) / cv.height };
  });
  await page.mouse.move(target.x - 30, target.y - 30);
  await page.mouse.move(target.x, target.y);
  await page.waitForFunction(() => !document.querySelector('#unit').hidden &&
    /conv2 \(conv2d\) channel 5, row 4, column 3/.test(document.querySelector('#unit').textContent), { timeout: 30_000 });
  const shown = await page.evaluate(() => ({
    text: document.querySelector('#unit').textContent,
    marks: Object.fromEntries(['cell', 'field'].map((k) => [k, document.querySelectorAll(`#layers .mark.${k}`).length])),
    canvases: document.querySelectorAll('#unit canvas').length,
  }));
  check(/conv2 \(conv2d\) channel 5, row 4, column 3/.test(shown.text), `#unit after hovering: "${shown.text.slice(0, 200)}"`);
  check(shown.marks.cell === 1 && shown.marks.field === 6 + 1, `outlines: ${JSON.stringify(shown.marks)} (want the cell, 6 pool1 tiles and the input)`);
  check(shown.canvases === 2, `${shown.canvases} canvases in #unit (want the filter and the patch)`);
  return `${UNITS.length} units of conv, ReLU, pool and linear layers, a class probability and an input cell: values and sums within ${worst.toExponential(2)} ` +
    `of the native engine's; fields as LeNet-5's geometry; hovering conv2[5, 4, 3] shows "${shown.text.slice(0, 60)}…"`;
}

/** The shipped checkpoint through #model-file; its state is kept as t.shipped for the later checks. */
async function checkCheckpoint(t) {
  t.shipped = await loadModel(t.page, t.model);
  return `#model-name "${t.shipped.name}"`;
}

async function checkCorrupt(t) {
  const bad = path.join(t.tmp, 'bad.safetensors');
  const noise = Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 37) & 255));
  fs.writeFileSync(bad, Buffer.concat([Buffer.from('this is not a safetensors checkpoint\n'), noise]));
  const s = await loadBadModel(t.page, bad);
  console.log(`# #error: ${s.error}`);
  // In words first, the engine's message (a header length, a byte cap) behind the Details toggle.
  const shown = await t.page.evaluate(() => ({
    summary: document.querySelector('#error .summary')?.textContent ?? '',
    details: document.querySelector('#error details pre')?.textContent ?? '',
    open: document.querySelector('#error details')?.open ?? null,
  }));
  check(/not a model checkpoint/.test(shown.summary), `#error's summary does not say what is wrong: "${shown.summary}"`);
  check(!/\d{6,}/.test(shown.summary), `#error's summary quotes raw figures: "${shown.summary}"`);
  check(/header length/.test(shown.details) && shown.open === false,
    `the engine's message is not behind a closed Details toggle: "${shown.details}" (open: ${shown.open})`);
  check(s.name === t.shipped.name, `#model-name changed to "${s.name}"`);
  check(s.filterHash === t.shipped.filterHash, 'the filters changed');
  const again = await expectDigit(t.page, 1);
  return `error shown; then predicted ${again}`;
}

/** models/lenet5.toml: the model with fresh random weights; then the shipped checkpoint again. */
async function checkModelFile(t) {
  const toml = path.join(MODELS, 'lenet5.toml');
  check(fs.existsSync(toml), `${toml} does not exist`);
  const s = await loadModel(t.page, toml);
  check(s.name.startsWith('lenet5'), `#model-name "${s.name}" does not start with "lenet5"`);
  check(s.filters === t.shipped.filters, `${s.filters} filter canvases, the checkpoint had ${t.shipped.filters}`);
  check(s.filterHash !== t.shipped.filterHash, "the filters are the shipped checkpoint's, not fresh random weights");
  const back = await loadModel(t.page, t.model);
  check(back.name === t.shipped.name, `#model-name "${back.name}" after loading the checkpoint again, not "${t.shipped.name}"`);
  check(back.filterHash === t.shipped.filterHash, 'the filters differ from the checkpoint\'s after loading it again');
  return `"${s.name}" with fresh random weights; then "${back.name}" again`;
}

/** A model of an input the page cannot show (2 channels) is refused, naming the size, and the previous model stays. */
async function checkWrongInput(t) {
  const { file, dims } = wrongInputModel(t.tmp);
  const before = await modelState(t.page);
  const s = await loadBadModel(t.page, file);
  console.log(`# #error: ${s.error}`);
  check(new RegExp(dims.join('\\s*[x×]\\s*')).test(s.error), `#error does not name the input size ${dims.join('×')}`);
  check(s.name === before.name, `#model-name changed from "${before.name}" to "${s.name}"`);
  check(s.filterHash === before.filterHash, 'the filters changed');
  const again = await expectDigit(t.page, 7);
  return `${path.basename(file)} (${dims.join('×')}) refused, "${s.name}" kept; then predicted ${again}`;
}

async function checkTraining(t) {
  await loadModel(t.page, t.model); // the zoo's last model is on display: train LeNet-5 again
  const r = await withTimeout(
    t.page.evaluate((n, seed) => window.wgcnnPage.train(n, { seed }), TRAIN_STEPS, TRAIN_SEED), TRAIN_TIMEOUT, 'training');
  const h = r.history;
  console.log(`# history ${h.map((p) => `${p.step}:${p.loss.toFixed(3)}/${(100 * p.accuracy).toFixed(0)}%`).join(' ')}`);
  check(h.length >= 5, `only ${h.length} points in the history`);
  const mean = (a) => a.reduce((s, p) => s + p.loss, 0) / a.length;
  const first = mean(h.slice(0, 2));
  const last = mean(h.slice(-2));
  check(last < first, `the loss did not fall: first two chunks ${first.toFixed(4)}, last two ${last.toFixed(4)}`);
  const error = await t.page.$eval('#error', (e) => e.textContent.trim());
  check(!error, `#error: ${error}`);
  const ips = h.reduce((s, p) => s + p.imagesPerSecond, 0) / h.length;
  const m = await t.page.evaluate(() => window.wgcnnPage.models);
  check(m.showing === 'trained', `after training, the page shows the ${m.showing} model`);
  check(m.loaded === t.shipped.name, `the loaded model is "${m.loaded}", not the shipped "${t.shipped.name}"`);
  const axis = await t.page.$eval('#curve', (c) => Number(c.dataset.steps));
  check(axis === TRAIN_STEPS, `the curve's axis ends at ${axis}, not at the ${TRAIN_STEPS} steps done`);
  return `loss ${first.toFixed(3)} → ${last.toFixed(3)}, ${ips.toFixed(0)} images/s, ` +
    `test accuracy ${(100 * r.test.testAccuracy).toFixed(2)} % (loss ${r.test.testLoss.toFixed(4)})`;
}

/** LeNet-5 from the shipped checkpoint's model, GPU_STEPS steps on both pages (see comparePlans). */
const checkGpuTraining = (t) =>
  comparePlans(t, t.model, GPU_STEPS, { seed: TRAIN_SEED }, TRAIN_TIMEOUT, 'lenet5');

/** The model trained in the page, downloaded (engine.saveModel), read by the native binary: its
 * predictions equal the page's. */
async function checkDownload(t) {
  const bytes = Buffer.from(await t.page.evaluate(() => window.wgcnnPage.modelBase64()), 'base64');
  const file = path.join(t.tmp, 'trained-in-the-page.safetensors');
  fs.writeFileSync(file, bytes);
  return `${bytes.length} bytes; ${await checkParity(t, file)}`;
}

/**
 * The zoo in the page: inception-mini picked from #zoo loads with fresh weights; its maps show every
 * layer of every branch (each named in the model file), where each branch starts (← pool1) and where the
 * four join (← the four branches); it trains here and its maps still show every branch.
 */
async function checkZooInPage(t) {
  const { page } = t;
  const file = 'inception-mini.toml';
  const text = fs.readFileSync(path.join(MODELS, file), 'utf8');
  const layers = [...text.split('[[layer]]').slice(1)].map((b) => ({
    name: /^\s*name\s*=\s*"([^"]+)"/m.exec(b)[1],
    op: /^\s*op\s*=\s*"([^"]+)"/m.exec(b)[1],
    inputs: (/^\s*inputs\s*=\s*\[([^\]]*)\]/m.exec(b)?.[1] ?? '').match(/"[^"]+"/g)?.map((q) => q.slice(1, -1)) ?? [],
  }));
  await focus(page); // the GPU page was in front: a background tab runs no animation frames
  const marker = '(test: loading the zoo)';
  await page.$eval('#model-name', (e, m) => { e.textContent = m; }, marker);
  await page.select('#zoo', file);
  await page.waitForFunction((m) => document.querySelector('#model-name').textContent !== m,
    { timeout: 60_000, polling: 100 }, marker);
  await settle(page);
  const maps = async () => page.evaluate(() => Array.from(document.querySelectorAll('#layers figure'), (f) => ({
    layer: f.querySelector('canvas').dataset.layer,
    reads: f.querySelector('.reads')?.textContent.replace(/^\s*←\s*/, '') ?? '',
  })));
  const name = await page.$eval('#model-name', (e) => e.textContent.trim());
  check(/^inception-mini/.test(name), `#model-name "${name}" after picking ${file}`);
  const check_maps = (shown, when) => {
    const names = new Set(shown.map((m) => m.layer));
    const missing = layers.filter((l) => l.op !== 'flatten' && !names.has(l.name)).map((l) => l.name);
    check(!missing.length, `${when}: layers without a map: ${missing.join(', ')}`);
    const cat = layers.find((l) => l.op === 'concat');
    const joined = shown.find((m) => m.layer === cat.name);
    check(joined && joined.reads === cat.inputs.join(' + '),
      `${when}: ${cat.name} should read ← ${cat.inputs.join(' + ')}, shows "${joined && joined.reads}"`);
    const starts = layers.filter((l) => l.inputs.length === 1 && l.inputs[0] === 'pool1').map((l) => l.name);
    const marked = shown.filter((m) => starts.includes(m.layer) && m.reads === 'pool1').length;
    check(starts.length === 4 && marked >= 3, `${when}: ${marked} of the ${starts.length} branch starts marked ← pool1`);
    return shown.length;
  };
  const n = check_maps(await maps(), 'fresh');
  const r = await withTimeout(page.evaluate(() => window.wgcnnPage.train(2, { seed: 1, evaluate: false })),
    TRAIN_TIMEOUT, 'training inception-mini');
  check(r.history.length && Number.isFinite(r.history[0].loss), `no loss from training inception-mini: ${JSON.stringify(r.history)}`);
  await settle(page);
  const m = await page.evaluate(() => window.wgcnnPage.models);
  check(m.showing === 'trained' && /^inception-mini/.test(m.trained), `after training: ${JSON.stringify(m)}`);
  check_maps(await maps(), 'trained');
  const explained = await checkEveryOp(t, 'inception-mini');
  // resnet-mini (fresh): stride-2 and 1x1 convs, add, global average pooling.
  const resnet = await loadModel(page, path.join(MODELS, 'resnet-mini.toml'));
  const explainedRes = await checkEveryOp(t, 'resnet-mini');
  // densenet-mini (fresh): average pooling, concat of a dense block.
  const densenet = await loadModel(page, path.join(MODELS, 'densenet-mini.toml'));
  const explainedDense = await checkEveryOp(t, 'densenet-mini');
  return `"${name}": ${n} maps, the four branches from pool1 joined at inc1.cat; trained 2 steps here ` +
    `(loss ${r.history[0].loss.toFixed(3)}); one unit of every layer explained as natively: ${explained}; ` +
    `"${resnet.name}": ${explainedRes}; "${densenet.name}": ${explainedDense}`;
}

/**
 * Every op of the model on display explained as the native engine computes it: the model downloaded,
 * the drawn 7 (checkUnits) classified in the page and by `wgcnn visualize` with that checkpoint, then
 * one unit of every shown layer (its largest) explained; its value and the explanation's sum
 * (conv, batch norm with its running statistics, ReLU, pools, add, concat, global average pool,
 * linear) must equal the native value to UNIT_TOLERANCE. Returns "ops: worst difference".
 */
async function checkEveryOp(t, label) {
  const { page } = t;
  const ckpt = path.join(t.tmp, `${label}.safetensors`);
  fs.writeFileSync(ckpt, Buffer.from(await page.evaluate(() => window.wgcnnPage.modelBase64()), 'base64'));
  const png = [...fs.readFileSync(t.drawing)];
  await page.evaluate((b) => window.wgcnnPage.predictPicture(b, 'drawn-7.png'), png);
  await settle(page);
  const native = await nativeLayers(path.resolve(t.opts.wgcnn), ckpt, t.drawing, path.join(t.tmp, `vis-${label}`));
  const graph = await page.evaluate(() => window.wgcnnPage.layerGraph);
  const ops = new Set();
  let worst = 0;
  for (const l of graph) {
    const nl = native.layers.find((x) => x.name === l.name);
    if (!nl) continue; // a view (flatten), not shown
    // The unit of largest |value|: never one a ReLU clamped to 0, where a wrong sum could hide.
    const index = nl.values.reduce((best, v, i, a) => (Math.abs(v) > Math.abs(a[best]) ? i : best), 0);
    const e = await page.evaluate((n, i) => window.wgcnnPage.explainUnit(n, i), l.name, index);
    check(e && typeof e.sum === 'number', `${label} ${l.name} (${l.op}): no sum in the explanation`);
    const want = nl.values[index];
    const d = Math.max(Math.abs(e.value - want), Math.abs(e.sum - want)) / Math.max(1, Math.abs(want));
    check(d <= UNIT_TOLERANCE, `${label} ${l.name} (${l.op}) unit ${index}: the page shows ${e.value}, its explanation sums to ${e.sum}, natively ${want}`);
    worst = Math.max(worst, d);
    ops.add(l.op);
  }
  return `${[...ops].sort().join(', ')}: within ${worst.toExponential(2)}`;
}

/** The panel as shown: #train-stats, the curve's axis end and points, #model-name, which model. */
const panel = (page) =>
  page.evaluate(() => {
    const c = document.querySelector('#curve');
    return {
      stats: document.querySelector('#train-stats').textContent.trim(),
      axis: Number(c.dataset.steps),
      points: Number(c.dataset.points),
      name: document.querySelector('#model-name').textContent.trim(),
      showing: window.wgcnnPage.models.showing,
      compare: document.querySelector('#compare').hidden ? '' : document.querySelector('#compare').textContent.trim(),
    };
  });

/** Click a button and wait for the page to settle. */
async function click(page, selector) {
  await page.click(selector);
  await settle(page);
}

/**
 * Training beside the shipped model: a run stopped early keeps both models; the trained one is shown
 * with its own panel (the axis fits the steps done) and reads the drawing beside the shipped one, whose
 * reading is unchanged to the bit; switching shows each model with its own name, filters and panel.
 */
async function checkStopAndSwitch(t) {
  const { page } = t;
  await loadModel(page, t.model);
  await clearDrawing(page);
  const before = await drawDigit(page, DIGITS[7]);
  check(before.cls === 7, `the shipped model reads the 7 as ${before.cls}`);
  await page.evaluate((n, seed) => { window.__stopRun = window.wgcnnPage.train(n, { seed }); }, STOP_ASKED, TRAIN_SEED + 1);
  await page.waitForFunction((k) => window.wgcnnPage.history.length >= k, { timeout: TRAIN_TIMEOUT, polling: 100 }, STOP_AFTER_CHUNKS);
  await page.click('#train-stop');
  const r = await withTimeout(page.evaluate(() => window.__stopRun), TRAIN_TIMEOUT, 'the stopped run');
  await settle(page);
  const done = r.history[r.history.length - 1].step;
  check(done < STOP_ASKED, `Stop did not stop the run: ${done} of ${STOP_ASKED} steps`);
  const trained = await panel(page);
  check(trained.showing === 'trained', `after Stop the page shows the ${trained.showing} model`);
  check(trained.axis === done, `the curve's axis ends at ${trained.axis}, not at the ${done} steps done`);
  check(trained.points === r.history.length, `${trained.points} points drawn for ${r.history.length} chunks`);
  check(trained.stats.startsWith(`${done} steps`), `#train-stats does not describe the run: "${trained.stats}"`);
  check(trained.name.includes(`trained here, ${done} steps`), `#model-name "${trained.name}"`);
  const cmp = await page.evaluate(() => window.wgcnnPage.lastComparison);
  check(cmp, `no comparison shown beside the trained model (#compare: "${trained.compare}")`);
  check(cmp.probabilities.every((p, i) => p === before.probs[i]),
    "the shipped model's reading beside the trained one differs from its reading before training");
  // The shipped model again: the same reading to the bit, its own name, filters and (empty) panel.
  await click(page, '#show-loaded');
  const shipped = await panel(page);
  const again = await page.evaluate(() => Array.from(window.wgcnnPage.lastPrediction.probabilities));
  const state = await modelState(page);
  check(shipped.showing === 'loaded' && shipped.name === t.shipped.name, `showing "${shipped.name}" (${shipped.showing})`);
  check(state.filterHash === t.shipped.filterHash, "the filters are not the shipped model's");
  check(again.every((p, i) => p === before.probs[i]), `the shipped model's probabilities changed: ${again} vs ${before.probs}`);
  check(shipped.points === 0 && /not trained in this page/.test(shipped.stats),
    `the shipped model's panel shows the run: "${shipped.stats}", ${shipped.points} points`);
  check(shipped.compare.includes('trained here'), `#compare: "${shipped.compare}"`);
  // And back: the trained model's panel returns with it.
  await click(page, '#show-trained');
  const back = await panel(page);
  check(back.showing === 'trained' && back.stats === trained.stats && back.axis === done && back.points === trained.points,
    `the trained model's panel did not come back: ${JSON.stringify(back)}`);
  return `stopped at ${done} of ${STOP_ASKED} steps; both kept; the shipped model's 10 probabilities unchanged ` +
    `(to the bit) after switching; panels: "${shipped.stats.slice(0, 40)}…" / "${back.stats.slice(0, 40)}…"`;
}

/** The shipped checkpoint loaded again after training: it replaces the loaded model, the trained one stays. */
async function checkReloadAfterTraining(t) {
  const s = await loadModel(t.page, t.model);
  check(s.name === t.shipped.name, `#model-name "${s.name}", not "${t.shipped.name}"`);
  check(s.filterHash === t.shipped.filterHash, "the filters are not the shipped checkpoint's");
  const digit = await expectDigit(t.page, 7);
  const p = await panel(t.page);
  const m = await t.page.evaluate(() => window.wgcnnPage.models);
  check(m.showing === 'loaded' && m.trained, `after loading: showing ${m.showing}, trained model ${m.trained}`);
  check(/not trained in this page/.test(p.stats), `#train-stats describes another model: "${p.stats}"`);
  return `"${s.name}", predicted ${digit}; the trained model kept beside it ("${m.trained}")`;
}

/**
 * A phone: a new page at 390×844 CSS pixels (touch, a mobile viewport) starts, fits the screen's width
 * without sideways scrolling, keeps its drawing canvas and buttons on screen and large enough to use,
 * and reads a 7 drawn by a finger.
 */
async function checkPhone(t) {
  const page = await openPage(t.browser, t.log, 'phone');
  try {
    await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    await page.goto(t.url, { waitUntil: 'load' });
    await page.waitForFunction(() => document.body.dataset.ready, { timeout: READY_TIMEOUT, polling: 250 });
    const m = await page.evaluate(() => {
      const box = (sel) => {
        const r = document.querySelector(sel).getBoundingClientRect();
        return { left: r.left, right: r.right, width: r.width, height: r.height };
      };
      return {
        ready: document.body.dataset.ready,
        inner: window.innerWidth,
        scroll: document.documentElement.scrollWidth,
        draw: box('#draw'),
        controls: ['#clear', '#train', '#download', 'label.button'].map((sel) => ({ sel, ...box(sel) })),
      };
    });
    check(m.ready === '1', 'the page did not start on a phone-sized viewport');
    check(m.scroll <= m.inner + 1, `the page is ${m.scroll} px wide on a ${m.inner} px screen: it scrolls sideways`);
    check(m.draw.left >= 0 && m.draw.right <= m.inner + 1 && m.draw.width >= 0.75 * m.inner,
      `the drawing canvas spans ${m.draw.left.toFixed(0)}–${m.draw.right.toFixed(0)} px of ${m.inner}`);
    const bad = m.controls.filter((c) => c.right > m.inner + 1 || c.height < 30);
    check(!bad.length, `controls off screen or too small to tap: ${bad.map((c) => `${c.sel} ${c.height.toFixed(0)} px high, ` +
      `right edge ${c.right.toFixed(0)}`).join('; ')}`);
    await clearDrawing(page);
    const p = await drawDigit(page, DIGITS[7], { by: 'touch' });
    check(p && p.cls === 7, `a 7 drawn by a finger on the phone reads as ${p && p.cls}`);
    return `${m.inner} px wide, no sideways scroll; canvas ${m.draw.width.toFixed(0)} px; a 7 by touch read as 7 (p = ${p.prob.toFixed(3)})`;
  } finally {
    await page.close();
    await focus(t.page);
  }
}

async function takeScreenshot(t) {
  const file = t.opts.screenshot;
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  await t.page.evaluate(() => window.scrollTo(0, 0));
  // A unit explained, as pointing at it shows: conv2, channel 5, row 4, column 3.
  await t.page.evaluate(() => window.wgcnnPage.explainUnit('conv2', (5 * 10 + 4) * 10 + 3));
  await t.page.screenshot({ path: file, fullPage: true });
  return `${fs.statSync(file).size} bytes`;
}

// ---------- the test ----------

async function runChecks(t) {
  await step('the page becomes ready', () => checkReady(t));
  for (const digit of [1, 0, 7]) await step(`drawing a ${digit}`, () => expectDigit(t.page, digit));
  await step(`${10 * DRAWN_PER_CLASS} digits drawn by mouse and touch, slanted and off-centre, read right`,
    () => checkDrawnDigits(t));
  await step('every layer canvas shows a picture', () => checkLayerCanvases(t));
  await step('parity with native wgcnn predict', () => checkParity(t));
  await step('pointing at units of conv, pool and linear layers explains them as the native engine computes', () => checkUnits(t));
  await step('loading a checkpoint through #model-file', () => checkCheckpoint(t));
  await step('a corrupt checkpoint is reported and the previous model kept', () => checkCorrupt(t));
  await step('a model file (models/lenet5.toml) loads', () => checkModelFile(t));
  await step('a model of an input the page cannot show is refused and the previous model kept', () => checkWrongInput(t));
  await step('a colour model classifies a colour picture as natively', () => checkColourModel(t));
  await step('a page without WebGPU explains it', () => checkNoWebGpu(t, READY_TIMEOUT));
  await step('a second page with a GPU\'s plans (?plans=gpu)', async () => {
    const { page, note } = await openGpuPage(t, READY_TIMEOUT);
    t.gpuPage = page;
    return note;
  });
  await step(`${ZOO.join(', ')} train ${ZOO_STEPS} steps with the same losses and weights under both plans`,
    () => checkZoo(t, MODELS, ZOO, ZOO_STEPS, TRAIN_TIMEOUT));
  await step(`LeNet-5 trains ${GPU_STEPS} steps with the same losses and weights under both plans`,
    () => checkGpuTraining(t));
  await step('inception-mini from the zoo shows every branch and trains in the page; every op explained as natively',
    () => checkZooInPage(t));
  await step(`training ${TRAIN_STEPS} steps in the page`, () => checkTraining(t));
  await step('the trained model, downloaded, predicts natively as in the page', () => checkDownload(t));
  await step('a run stopped early keeps both models; switching shows each with its own panel',
    () => checkStopAndSwitch(t));
  await step('the shipped checkpoint loaded again after training', () => checkReloadAfterTraining(t));
  await step(`screenshot ${t.opts.screenshot}`, () => takeScreenshot(t));
  await step('the page on a phone-sized viewport', () => checkPhone(t));
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const dist = path.resolve(opts.dist);
  check(fs.existsSync(path.join(dist, 'index.html')), `${dist}/index.html does not exist: build the page first`);
  const model = path.join(dist, 'model/lenet5.safetensors'); // the checkpoint the page loads at start
  check(fs.existsSync(model), `${model} does not exist`);
  const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
  check(fs.existsSync(chromium), `${chromium} does not exist (install chromium or set CHROMIUM to a Chrome/Chromium binary)`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wgcnn-web-test-'));
  let server, browser;
  try {
    server = await serve(dist);
    const url = `http://127.0.0.1:${server.address().port}/`;
    console.log(`# serving ${dist} at ${url}`);
    const launched = await launch(chromium, TRAIN_TIMEOUT + 120_000);
    browser = launched.browser;
    await runChecks({ opts, url, browser, log: launched.log, page: launched.page, model, tmp, shipped: null });
    const { log } = launched;
    check(!log.pageErrors.length, `uncaught errors in the page: ${log.pageErrors.join(' | ')}`);
    console.log(`# console errors from the page: ${log.consoleErrors} ` +
      '(three are expected: the corrupt checkpoint, the model of an input the page cannot show, the page without WebGPU)');
  } finally {
    await browser?.close().catch(() => {});
    await stopServer(server);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => {
    console.log(`all passed in ${secs(t0)} s`);
    process.exit(0);
  },
  (e) => {
    console.log(`not ok - ${e.message}`);
    console.log(`failed after ${secs(t0)} s`);
    process.exit(1);
  },
);
