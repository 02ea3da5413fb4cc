#!/usr/bin/env node
// Headless-browser test of the wgcnn web page: serves the built page, drives it in Chromium with
// WebGPU on SwiftShader, and checks drawing, layers, parity with the native binary, model loading,
// training and a screenshot.
//
//   node web/test/browser.mjs [--dist target/web] [--wgcnn target/release/wgcnn]
//        [--screenshot docs/img/web.png] [--picture web/test/digit.png]
//
// Environment: CHROMIUM (default /usr/bin/chromium).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

// ---------- options ----------

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

// Strokes in the 280x280 drawing canvas's coordinates: each stroke a polyline (mouse down at its
// first point, up at its last).
const DIGITS = {
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

const READY_TIMEOUT = 120_000;
const TRAIN_TIMEOUT = 600_000;
const TRAIN_STEPS = 50;
const PARITY_TOLERANCE = 1e-4;

// ---------- a tiny static server ----------

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.toml': 'text/plain; charset=utf-8',
  '.gz': 'application/gzip',
  '.safetensors': 'application/octet-stream',
};

function serve(root) {
  root = path.resolve(root);
  const server = http.createServer((req, res) => {
    let rel;
    try {
      rel = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    let file = path.join(root, rel);
    if (file !== root && !file.startsWith(root + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    if (rel.endsWith('/')) file = path.join(file, 'index.html');
    fs.stat(file, (err, st) => {
      if (err || !st.isFile()) {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`not found: ${rel}`);
        return;
      }
      res.writeHead(200, {
        'Content-Type': MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
        'Content-Length': st.size,
        'Cache-Control': 'no-store',
      });
      if (req.method === 'HEAD') res.end();
      else fs.createReadStream(file).pipe(res);
    });
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server)); // port 0: a free port
  });
}

// ---------- helpers ----------

const t0 = Date.now();
const secs = (t) => ((Date.now() - t) / 1000).toFixed(1);

async function step(name, fn) {
  const t = Date.now();
  try {
    const note = await fn();
    console.log(`ok - ${name}${note ? `: ${note}` : ''} (${secs(t)} s)`);
  } catch (e) {
    e.message = `${name}: ${e.message}`;
    throw e;
  }
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms); }),
  ]).finally(() => clearTimeout(timer));
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
const settle = (page) => page.evaluate(() => window.wgcnnPage.idle());

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

async function clearDrawing(page) {
  await page.click('#clear');
  await settle(page);
}

/** Draw the strokes with the mouse (many small moves), then return the settled prediction. */
async function drawDigit(page, strokes) {
  const canvas = await page.$('#draw');
  await canvas.scrollIntoView();
  const box = await canvas.boundingBox();
  const size = await page.$eval('#draw', (c) => [c.width, c.height]);
  const at = ([x, y]) => [box.x + (x * box.width) / size[0], box.y + (y * box.height) / size[1]];
  for (const stroke of strokes) {
    const pts = densify(stroke).map(at);
    await page.mouse.move(...pts[0]);
    await page.mouse.down();
    for (const p of pts.slice(1)) await page.mouse.move(...p);
    await page.mouse.up();
  }
  await settle(page);
  return shown(page);
}

async function expectDigit(page, digit) {
  await clearDrawing(page);
  const p = await drawDigit(page, DIGITS[digit]);
  check(p, 'no prediction after drawing');
  check(p.text.startsWith(String(p.cls)), `#prediction shows "${p.text}", but the last prediction is ${p.cls}`);
  const probs = p.probs.map((v, i) => `${i}:${v.toFixed(3)}`).join(' ');
  check(p.cls === digit, `drew a ${digit}, the page predicted ${p.cls} (${probs})`);
  return `${digit} (p = ${p.prob.toFixed(3)})`;
}

/** Run the native binary's predict --json and return the first result with a probabilities array. */
function nativePredict(bin, model, picture) {
  return new Promise((resolve, reject) => {
    execFile(bin, ['predict', '--json', '--model', model, picture], { timeout: 300_000, maxBuffer: 1 << 24 },
      (err, stdout, stderr) => {
        let json;
        try {
          json = JSON.parse(stdout);
        } catch {
          const why = err ? err.message : 'its output is not JSON';
          reject(new Error(`${bin} predict failed: ${why}\nstdout: ${stdout.slice(0, 2000)}\nstderr: ${stderr.slice(0, 2000)}`));
          return;
        }
        if (json && !Array.isArray(json) && json.error) {
          reject(new Error(`${bin} predict reported: ${json.error}`));
          return;
        }
        const found = [];
        (function walk(v) {
          if (Array.isArray(v)) v.forEach(walk);
          else if (v && typeof v === 'object') {
            if (Array.isArray(v.probabilities)) found.push(v);
            else Object.values(v).forEach(walk);
          }
        })(json);
        if (!found.length) reject(new Error(`no object with a "probabilities" array in ${bin}'s output: ${stdout.slice(0, 500)}`));
        else resolve(found[0]);
      });
  });
}

// ---------- the test ----------

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
  const pageErrors = [];
  let consoleErrors = 0;
  try {
    server = await serve(dist);
    const url = `http://127.0.0.1:${server.address().port}/`;
    console.log(`# serving ${dist} at ${url}`);

    browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true, // puppeteer-core 24: the new headless mode
      protocolTimeout: TRAIN_TIMEOUT + 120_000,
      args: [
        '--no-sandbox',
        '--enable-unsafe-webgpu',
        '--use-webgpu-adapter=swiftshader',
        '--enable-unsafe-swiftshader',
        '--disable-dev-shm-usage',
      ],
    });
    console.log(`# ${await browser.version()} (${chromium})`);
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors++;
      console.log(`[page ${m.type()}] ${m.text()}`);
    });
    page.on('pageerror', (e) => {
      pageErrors.push(e.message);
      console.log(`[page uncaught] ${e.message}`);
    });
    page.on('requestfailed', (r) => console.log(`[page request failed] ${r.url()} ${r.failure()?.errorText ?? ''}`));
    page.on('response', (r) => { if (r.status() >= 400) console.log(`[page http ${r.status()}] ${r.url()}`); });

    // 1. Start-up.
    await step('the page becomes ready', async () => {
      await page.goto(url, { waitUntil: 'load' });
      await page.waitForFunction(() => document.body.dataset.ready, { timeout: READY_TIMEOUT, polling: 250 });
      const s = await page.evaluate(() => ({
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
    });

    // 2. Drawing: predictions and every layer's canvas.
    for (const digit of [1, 0, 7]) await step(`drawing a ${digit}`, () => expectDigit(page, digit));
    await step('every layer canvas shows a picture', async () => {
      const r = await page.evaluate(() =>
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
    });

    // 3. Parity with the native binary on the same picture and checkpoint.
    await step('parity with native wgcnn predict', async () => {
      check(fs.existsSync(opts.picture), `${opts.picture} does not exist (a 28x28 MNIST digit PNG is needed for this check)`);
      check(fs.existsSync(opts.wgcnn), `${opts.wgcnn} does not exist (build it: cargo build --release)`);
      const native = await nativePredict(path.resolve(opts.wgcnn), model, path.resolve(opts.picture));
      const bytes = [...fs.readFileSync(opts.picture)];
      const web = await page.evaluate((b, n) => window.wgcnnPage.predictPicture(b, n), bytes, path.basename(opts.picture));
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
    });

    // 4. Loading a checkpoint, then a corrupt one.
    const modelInput = await page.$('#model-file');
    let summary;
    await step('loading a checkpoint through #model-file', async () => {
      const marker = '(test: loading)';
      await page.$eval('#model-name', (e, m) => { e.textContent = m; }, marker);
      await modelInput.uploadFile(model);
      await page.waitForFunction(
        (m) => document.querySelector('#model-name').textContent !== m || document.querySelector('#error').textContent,
        { timeout: 60_000 }, marker);
      await settle(page);
      const s = await page.evaluate(() => ({
        name: document.querySelector('#model-name').textContent.trim(),
        error: document.querySelector('#error').textContent.trim(),
      }));
      check(!s.error, `#error: ${s.error}`);
      check(s.name && s.name !== marker, '#model-name did not update');
      summary = s.name;
      return `#model-name "${summary}"`;
    });
    await step('a corrupt checkpoint is reported and the previous model kept', async () => {
      const bad = path.join(tmp, 'bad.safetensors');
      fs.writeFileSync(bad, Buffer.concat([Buffer.from('this is not a safetensors checkpoint\n'), Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 37) & 255))]));
      await modelInput.uploadFile(bad);
      await page.waitForFunction(() => document.querySelector('#error').textContent.trim(), { timeout: 60_000 });
      await settle(page);
      const s = await page.evaluate(() => ({
        error: document.querySelector('#error').textContent.trim(),
        visible: !document.querySelector('#error').hidden,
        name: document.querySelector('#model-name').textContent.trim(),
      }));
      check(s.visible, '#error has text but is hidden');
      check(s.name === summary, `#model-name changed to "${s.name}"`);
      console.log(`# #error: ${s.error}`);
      const again = await expectDigit(page, 1);
      return `error shown; then predicted ${again}`;
    });

    // 5. Training in the page.
    await step(`training ${TRAIN_STEPS} steps in the page`, async () => {
      const r = await withTimeout(page.evaluate((n) => window.wgcnnPage.train(n), TRAIN_STEPS), TRAIN_TIMEOUT, 'training');
      const h = r.history;
      console.log(`# history ${h.map((p) => `${p.step}:${p.loss.toFixed(3)}/${(100 * p.accuracy).toFixed(0)}%`).join(' ')}`);
      check(h.length >= 5, `only ${h.length} points in the history`);
      const mean = (a) => a.reduce((s, p) => s + p.loss, 0) / a.length;
      const first = mean(h.slice(0, 2));
      const last = mean(h.slice(-2));
      check(last < first, `the loss did not fall: first two chunks ${first.toFixed(4)}, last two ${last.toFixed(4)}`);
      const error = await page.$eval('#error', (e) => e.textContent.trim());
      check(!error, `#error: ${error}`);
      const ips = h.reduce((s, p) => s + p.imagesPerSecond, 0) / h.length;
      return `loss ${first.toFixed(3)} → ${last.toFixed(3)}, ${ips.toFixed(0)} images/s, ` +
        `test accuracy ${(100 * r.test.testAccuracy).toFixed(2)} % (loss ${r.test.testLoss.toFixed(4)})`;
    });

    // 6. A screenshot with a digit drawn and the training curve shown.
    await step(`screenshot ${opts.screenshot}`, async () => {
      await clearDrawing(page);
      await drawDigit(page, DIGITS[7]);
      fs.mkdirSync(path.dirname(path.resolve(opts.screenshot)), { recursive: true });
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: opts.screenshot, fullPage: true });
      return `${fs.statSync(opts.screenshot).size} bytes`;
    });

    check(!pageErrors.length, `uncaught errors in the page: ${pageErrors.join(' | ')}`);
    console.log(`# console errors from the page: ${consoleErrors} (one is expected, from the corrupt checkpoint)`);
  } finally {
    await browser?.close().catch(() => {});
    server?.closeAllConnections();
    await new Promise((r) => (server ? server.close(r) : r()));
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
