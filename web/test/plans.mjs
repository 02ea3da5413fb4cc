// Checks beyond one page's features: the plans a browser's GPU adapter gets (the tiled products and
// wider split reductions) through the browser's shader compiler, models of the zoo trained in the
// page under both plans, and a browser without WebGPU.
//
// The second page (?plans=gpu) trains from the same seed on the same data as the first (the
// adapter's plans: SwiftShader is a CPU adapter, so register-blocked kernels): the two runs differ
// only in their kernels, so their losses must agree to float rounding.
import fs from 'node:fs';
import path from 'node:path';
import { focus, loadModel } from './actions.mjs';
import { check, openPage, withTimeout } from './harness.mjs';

/**
 * Relative tolerance between the two plans' chunk losses. Each chunk loss is a mean over 10 steps of
 * 64 images; the plans sum products in different orders (f32 rounding, ~1e-7 relative per sum), and
 * 50 SGD steps with momentum carry those differences forward. 1e-3 is far above that and far below
 * what a wrong kernel gives (a wrong gradient changes the loss in the first digit within a few steps).
 */
export const PLANS_TOLERANCE = 1e-3;

/** Open the page with ?plans=gpu in a second tab; returns it once ready with the tiled kernels. */
export async function openGpuPage(t, timeout) {
  const page = await openPage(t.browser, t.log, 'gpu-page');
  await page.goto(`${t.url}?plans=gpu`, { waitUntil: 'load' });
  await page.waitForFunction(() => document.body.dataset.ready, { timeout, polling: 250 });
  const s = await page.evaluate(() => ({
    ready: document.body.dataset.ready,
    error: document.querySelector('#error').textContent.trim(),
    adapter: document.querySelector('#adapter').textContent.trim(),
  }));
  check(s.ready === '1', `start-up with ?plans=gpu failed: ${s.error}`);
  check(/tiled kernels/.test(s.adapter), `?plans=gpu did not select the tiled kernels: "${s.adapter}"`);
  return { page, note: `"${s.adapter}"` };
}

/**
 * Train on `page` (`steps` steps, options {batch, seed, evaluate}); returns {history, kernels}, the
 * losses checked finite.
 */
export async function trainOn(page, steps, options, timeout, what) {
  await focus(page);
  const r = await withTimeout(
    page.evaluate((n, o) => window.wgcnnPage.train(n, o), steps, options), timeout, `training ${what}`);
  const error = await page.$eval('#error', (e) => e.textContent.trim());
  check(!error, `${what}: #error: ${error}`);
  check(r.history.length > 0 && r.history.every((h) => Number.isFinite(h.loss)),
    `${what}: losses ${JSON.stringify(r.history.map((h) => h.loss))}`);
  return r;
}

/** Check that only the GPU's plans ran a tiled kernel; returns the tiled ones. */
export function checkTiled(adapterKernels, gpuKernels, what) {
  const tiled = (ks) => ks.filter((k) => k.includes('tiled'));
  check(tiled(adapterKernels).length === 0, `${what}: the adapter's plans ran ${tiled(adapterKernels)}`);
  check(tiled(gpuKernels).length > 0, `${what}: the GPU's plans ran no tiled kernel (${gpuKernels.join(', ')})`);
  return tiled(gpuKernels);
}

/**
 * Tolerance between the two plans' trained weights: per tensor, the largest difference over the
 * tensor's largest magnitude. After a few SGD steps the plans' rounding leaves differences near 1e-6
 * of that; a wrong kernel leaves a wrong gradient, whose update alone is ~1e-2 of it (lr 0.05).
 */
export const WEIGHTS_TOLERANCE = 1e-4;

/** The f32 tensors of the model on display on `page` (its checkpoint, parsed): name → Float32Array. */
export async function weightsOf(page) {
  const bytes = Buffer.from(await page.evaluate(() => window.wgcnnPage.modelBase64()), 'base64');
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const out = {};
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__' || e.dtype !== 'F32') continue;
    const [a, b] = e.data_offsets;
    const data = bytes.subarray(8 + n + a, 8 + n + b);
    out[name] = new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
  }
  return out;
}

/** The largest per-tensor relative difference of two weight sets (same names and sizes expected). */
export function compareWeights(a, b, what) {
  const names = Object.keys(a).sort();
  check(names.join() === Object.keys(b).sort().join(), `${what}: different tensors`);
  let worst = 0;
  let where = '';
  for (const name of names) {
    const [x, y] = [a[name], b[name]];
    check(x.length === y.length, `${what}: ${name} has ${x.length} and ${y.length} values`);
    let scale = 1e-6;
    let diff = 0;
    for (let i = 0; i < x.length; i++) {
      scale = Math.max(scale, Math.abs(x[i]));
      diff = Math.max(diff, Math.abs(x[i] - y[i]));
    }
    if (diff / scale > worst) [worst, where] = [diff / scale, name];
  }
  check(worst <= WEIGHTS_TOLERANCE,
    `${what}: the plans' weights differ by ${worst.toExponential(2)} of ${where}'s scale > ${WEIGHTS_TOLERANCE}`);
  return `weights Δ ${worst.toExponential(1)}`;
}

/** Train the model file (or checkpoint) `file` on both pages from the same seed, then compare the
 * kernels they ran, their losses and their weights. Returns a note. */
export async function comparePlans(t, file, steps, options, timeout, what) {
  const runs = [];
  for (const page of [t.page, t.gpuPage]) {
    await loadModel(page, file);
    const r = await trainOn(page, steps, { ...options, evaluate: false }, timeout, what);
    runs.push({ ...r, weights: await weightsOf(page) });
  }
  const tiled = checkTiled(runs[0].kernels, runs[1].kernels, what);
  const losses = compareRuns(runs[0].history, runs[1].history, what);
  const weights = compareWeights(runs[0].weights, runs[1].weights, what);
  const ips = (r) => (r.history.reduce((s, p) => s + p.imagesPerSecond, 0) / r.history.length).toFixed(0);
  return `${what}: ${tiled.join('+')}; loss Δ ${losses.toExponential(1)}, ${weights}; ` +
    `${ips(runs[0])} vs ${ips(runs[1])} images/s`;
}

/** The largest relative difference between two runs' chunk losses (same chunks expected). */
export function compareRuns(a, b, what) {
  check(a.length === b.length, `${what}: ${a.length} chunks against ${b.length}`);
  let worst = 0;
  a.forEach((p, i) => {
    check(p.step === b[i].step, `${what}: chunk ${i} ends at step ${p.step} against ${b[i].step}`);
    worst = Math.max(worst, Math.abs(p.loss - b[i].loss) / Math.max(Math.abs(p.loss), 1e-6));
  });
  const losses = (h) => h.map((p) => p.loss.toFixed(5)).join(' ');
  console.log(`# ${what}: adapter's plans ${losses(a)}\n# ${what}: a GPU's plans  ${losses(b)}`);
  check(worst <= PLANS_TOLERANCE, `${what}: the plans' losses differ by ${worst.toExponential(2)} (relative) > ${PLANS_TOLERANCE}`);
  return worst;
}

/**
 * The model files `names` (in `models`) trained `steps` steps (batch 8, seed 3) on both pages: see
 * comparePlans. Returns a note per model.
 */
export async function checkZoo(t, models, names, steps, timeout) {
  const notes = [];
  for (const name of names) {
    const file = path.join(models, `${name}.toml`);
    check(fs.existsSync(file), `${file} does not exist`);
    notes.push(await comparePlans(t, file, steps, { batch: 8, seed: 3 }, timeout, name));
  }
  return notes.join(' | ');
}

/** A page whose browser has no WebGPU: start-up fails with the explanation shown in #error. */
export async function checkNoWebGpu(t, timeout) {
  const page = await openPage(t.browser, t.log, 'no-webgpu page');
  await page.evaluateOnNewDocument(() => {
    Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
  });
  await page.goto(t.url, { waitUntil: 'load' });
  await page.waitForFunction(() => document.body.dataset.ready, { timeout, polling: 250 });
  const s = await page.evaluate(() => ({
    ready: document.body.dataset.ready,
    error: document.querySelector('#error').textContent.trim(),
    visible: !document.querySelector('#error').hidden,
  }));
  await page.close();
  check(s.ready === 'error', `the page without WebGPU reports ready = "${s.ready}"`);
  check(s.visible && /WebGPU/.test(s.error), `#error does not explain the missing WebGPU: "${s.error}"`);
  return `"${s.error.slice(0, 70)}…"`;
}
