// The browser test's machinery: a static server, the headless Chromium, step/check helpers and
// the native `wgcnn predict` runner.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

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

/** Answer one request with the file under `root` it names (index.html for a folder). */
function sendFile(root, req, res) {
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
}

/** Serve the files under `root` on a free local port; resolves with the listening server. */
export function serve(root) {
  root = path.resolve(root);
  const server = http.createServer((req, res) => sendFile(root, req, res));
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server)); // port 0: a free port
  });
}

export async function stopServer(server) {
  if (!server) return;
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
}

// ---------- the browser ----------

/**
 * Start headless Chromium with WebGPU on SwiftShader and open one 1280×900 page whose console,
 * uncaught errors and failed requests are echoed. Returns {browser, page, log}, where log counts
 * the page's console errors and collects its uncaught errors.
 */
export async function launch(chromium, protocolTimeout) {
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true, // puppeteer-core 24: the new headless mode
    protocolTimeout,
    args: [
      '--no-sandbox',
      '--enable-unsafe-webgpu',
      '--use-webgpu-adapter=swiftshader',
      '--enable-unsafe-swiftshader',
      '--disable-dev-shm-usage',
    ],
  });
  console.log(`# ${await browser.version()} (${chromium})`);
  const log = { consoleErrors: 0, pageErrors: [] };
  const page = await openPage(browser, log, 'page');
  return { browser, page, log };
}

/** A new 1280×900 page of `browser` whose console, uncaught errors and failed requests are echoed
 * (prefixed with `tag`) and counted in `log`. */
export async function openPage(browser, log, tag) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on('console', (m) => {
    if (m.type() === 'error') log.consoleErrors++;
    console.log(`[${tag} ${m.type()}] ${m.text()}`);
  });
  page.on('pageerror', (e) => {
    log.pageErrors.push(e.message);
    console.log(`[${tag} uncaught] ${e.message}`);
  });
  page.on('requestfailed', (r) => console.log(`[${tag} request failed] ${r.url()} ${r.failure()?.errorText ?? ''}`));
  page.on('response', (r) => { if (r.status() >= 400) console.log(`[${tag} http ${r.status()}] ${r.url()}`); });
  return page;
}

// ---------- steps and checks ----------

export const t0 = Date.now();
export const secs = (t) => ((Date.now() - t) / 1000).toFixed(1);

/** Run one named check: prints "ok - name: note (time)", or prefixes its error with the name. */
export async function step(name, fn) {
  const t = Date.now();
  try {
    const note = await fn();
    console.log(`ok - ${name}${note ? `: ${note}` : ''} (${secs(t)} s)`);
  } catch (e) {
    e.message = `${name}: ${e.message}`;
    throw e;
  }
}

export function check(cond, message) {
  if (!cond) throw new Error(message);
}

export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

// ---------- the native binary ----------

/** The first object in `json` (depth first) that has a `probabilities` array. */
function findPrediction(json) {
  const found = [];
  (function walk(v) {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      if (Array.isArray(v.probabilities)) found.push(v);
      else Object.values(v).forEach(walk);
    }
  })(json);
  return found[0];
}

/** Run the native binary's predict --json and return the first result with a probabilities array. */
export function nativePredict(bin, model, picture) {
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
        const found = findPrediction(json);
        if (!found) reject(new Error(`no object with a "probabilities" array in ${bin}'s output: ${stdout.slice(0, 500)}`));
        else resolve(found);
      });
  });
}

/** `wgcnn visualize` of `picture` with `model` into `out`: resolves with its layers.json. */
export function nativeLayers(bin, model, picture, out) {
  return new Promise((resolve, reject) => {
    execFile(bin, ['visualize', '--model', model, '--out', out, picture], { timeout: 300_000, maxBuffer: 1 << 24 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`${bin} visualize failed: ${err.message}\nstderr: ${stderr.slice(0, 2000)}`));
          return;
        }
        try {
          resolve(JSON.parse(fs.readFileSync(path.join(out, 'layers.json'), 'utf8')));
        } catch (e) {
          reject(new Error(`${out}/layers.json: ${e.message}`));
        }
      });
  });
}
