// What the browser test does on the page: draw digits with the mouse, read the prediction back,
// load model files through #model-file.
import { check } from './harness.mjs';

// Strokes in the 280x280 drawing canvas's coordinates: each stroke a polyline (mouse down at its
// first point, up at its last).
export const DIGITS = {
  1: [[[142, 45], [138, 235]]],
  0: [ellipse(140, 140, 62, 92, 64)],
  7: [[[72, 58], [206, 56], [168, 130], [138, 240]]],
};
function ellipse(cx, cy, rx, ry, n) {
  const pts = [];
  for (let i = 0; i <= n + 2; i++) { // a little overlap closes the loop
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
    pts.push([cx + rx * Math.cos(a), cy + ry * Math.sin(a)]);
  }
  return pts;
}

/** Points every `spacing` px along a polyline. */
function densify(points, spacing = 4) {
  const out = [points[0]];
  for (let i = 1; i < points.length; i++) {
    const [x0, y0] = points[i - 1];
    const [x1, y1] = points[i];
    const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) / spacing));
    for (let k = 1; k <= n; k++) out.push([x0 + ((x1 - x0) * k) / n, y0 + ((y1 - y0) * k) / n]);
  }
  return out;
}

/** Wait until the page has no engine call queued and no prediction pending. */
export const settle = (page) => page.evaluate(() => window.wgcnnPage.idle());

/** Make `page` the visible tab: a background tab's timers are throttled and its animation frames
 * stop, which would stall the page's prediction loop (the test drives two pages). */
export const focus = (page) => page.bringToFront();

/** The shown prediction: class, its probability and the #prediction text. */
const shown = (page) =>
  page.evaluate(() => {
    const p = window.wgcnnPage.lastPrediction;
    return p && {
      cls: p.class,
      prob: p.probabilities[p.class],
      probs: Array.from(p.probabilities),
      text: document.querySelector('#prediction').textContent.trim(),
    };
  });

export async function clearDrawing(page) {
  await page.click('#clear');
  await settle(page);
}

/** Draw the strokes with the mouse or, `by: 'touch'`, a finger (many small moves), then return the
 * settled prediction. */
export async function drawDigit(page, strokes, { by = 'mouse', spacing = 4 } = {}) {
  await focus(page);
  const canvas = await page.$('#draw');
  await canvas.scrollIntoView();
  const box = await canvas.boundingBox();
  const size = await page.$eval('#draw', (c) => [c.width, c.height]);
  const at = ([x, y]) => [box.x + (x * box.width) / size[0], box.y + (y * box.height) / size[1]];
  for (const stroke of strokes) {
    const pts = densify(stroke, spacing).map(at);
    if (by === 'touch') {
      await page.touchscreen.touchStart(...pts[0]);
      for (const p of pts.slice(1)) await page.touchscreen.touchMove(...p);
      await page.touchscreen.touchEnd();
      continue;
    }
    await page.mouse.move(...pts[0]);
    await page.mouse.down();
    for (const p of pts.slice(1)) await page.mouse.move(...p);
    await page.mouse.up();
  }
  await settle(page);
  return shown(page);
}

/** Clear, draw `digit` and check that the page predicts it; returns "d (p = …)". */
export async function expectDigit(page, digit) {
  await clearDrawing(page);
  const p = await drawDigit(page, DIGITS[digit]);
  check(p, 'no prediction after drawing');
  check(p.text.startsWith(String(p.cls)), `#prediction shows "${p.text}", but the last prediction is ${p.cls}`);
  const probs = p.probs.map((v, i) => `${i}:${v.toFixed(3)}`).join(' ');
  check(p.cls === digit, `drew a ${digit}, the page predicted ${p.cls} (${probs})`);
  return `${digit} (p = ${p.prob.toFixed(3)})`;
}

/**
 * The model on display as the page shows it: #model-name, #error (and whether it is visible) and a
 * hash of every #filters canvas's pixels (equal hashes: the same weights).
 */
export const modelState = (page) =>
  page.evaluate(() => {
    let h = 0x811c9dc5; // FNV-1a over the filter canvases' sizes and pixels
    const mix = (b) => { h = Math.imul(h ^ b, 0x01000193) >>> 0; };
    for (const c of document.querySelectorAll('#filters canvas')) {
      [c.width, c.height].forEach(mix);
      for (const b of c.getContext('2d').getImageData(0, 0, c.width, c.height).data) mix(b);
    }
    const error = document.querySelector('#error');
    return {
      name: document.querySelector('#model-name').textContent.trim(),
      error: error.textContent.trim(),
      errorVisible: !error.hidden,
      filters: document.querySelectorAll('#filters canvas').length,
      filterHash: h.toString(16).padStart(8, '0'),
    };
  });

/**
 * Load a model file that should load: #model-name is first set to a marker, then the file is
 * uploaded and the page waited for until it replaces the marker (or reports an error). Returns
 * modelState, checked to have no error and a new name.
 */
export async function loadModel(page, file) {
  await focus(page);
  const marker = '(test: loading)';
  await page.$eval('#model-name', (e, m) => { e.textContent = m; }, marker);
  await (await page.$('#model-file')).uploadFile(file);
  await page.waitForFunction(
    (m) => document.querySelector('#model-name').textContent !== m || document.querySelector('#error').textContent,
    { timeout: 60_000 }, marker);
  await settle(page);
  const s = await modelState(page);
  check(!s.error, `#error: ${s.error}`);
  check(s.name && s.name !== marker, '#model-name did not update');
  return s;
}

/** Load a model file that should be refused: waits for #error (cleared first); returns modelState. */
export async function loadBadModel(page, file) {
  await focus(page);
  await page.$eval('#error', (e) => { e.textContent = ''; e.hidden = true; });
  await (await page.$('#model-file')).uploadFile(file);
  await page.waitForFunction(() => document.querySelector('#error').textContent.trim(), { timeout: 60_000 });
  await settle(page);
  const s = await modelState(page);
  check(s.errorVisible, '#error has text but is hidden');
  return s;
}
