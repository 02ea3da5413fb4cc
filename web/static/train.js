// Training in the page: fetch the MNIST sample once, train a fresh model in chunks of engine calls,
// draw the curve and stats as it goes, then test it and hand the new model to the page, which shows it
// beside the loaded one. The panel (curve and stats) describes one model: panelState/showPanel let the
// page keep each model's and show the one on display.
import { drawCurve } from './render.js';
import { clearError, el, setStatus, showError } from './ui.js';

const DATA_URLS = [
  'data/train-images-idx3-ubyte.gz',
  'data/train-labels-idx1-ubyte.gz',
  'data/t10k-images-idx3-ubyte.gz',
  'data/t10k-labels-idx1-ubyte.gz',
];
const BATCH = 64;
const CHUNK = 10; // training steps per engine call (the curve updates after each)

export async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status} ${r.statusText}`);
  return new Uint8Array(await r.arrayBuffer());
}

const thousands = (n) => Math.round(n).toLocaleString('en');

let deps = null; // {engine, enqueue, onTrained}, from setupTraining
let history = []; // [{step, loss, accuracy, imagesPerSecond}] of the current/last training run
let plan = 0; // steps asked for in the current run (the curve's x range)
let trainData = null; // the four IDX files, fetched once
let training = false;
let stopRequested = false;
let seed = 1;

const engine = () => deps.engine();
const enqueue = (fn) => deps.enqueue(fn);

/** The points of the current/last training run. */
export const trainingHistory = () => history;

/** Draw the training curve of the current/last run. */
export const redrawCurve = () => drawCurve(history, plan);

/** What the panel shows for a model that was not trained in this page. */
export const NOT_TRAINED = 'not trained in this page: Train makes a new model beside this one';

/** The panel as it is now (the run's curve and stats), to show again with showPanel. */
export const panelState = () => ({ history: history.map((h) => ({ ...h })), plan, stats: el.stats.textContent });

/** Show a model's panel (from panelState), or NOT_TRAINED's empty one for `null`. */
export function showPanel(state) {
  history = state ? state.history.map((h) => ({ ...h })) : [];
  plan = state ? state.plan : 0;
  el.stats.textContent = state ? state.stats : NOT_TRAINED;
  redrawCurve();
}

/** Enable and disable the controls for training (`on`) and for whether the engine is ready. */
export function setTraining(on) {
  training = on;
  el.train.disabled = on || !engine();
  el.stop.disabled = !on;
  el.modelFile.disabled = el.zoo.disabled = on || !engine();
  el.steps.disabled = on;
  el.showLoaded.disabled = el.showTrained.disabled = on || !engine();
  el.picture.disabled = el.download.disabled = !engine();
}

/** Run `steps` training steps in chunks (or until stopped), updating the curve and stats after each. */
async function trainChunks(steps, perEpoch) {
  let done = 0;
  while (done < steps && !stopRequested) {
    const n = Math.min(CHUNK, steps - done);
    const r = await enqueue(() => engine().trainSteps(n));
    done += n;
    history.push({ step: r.step, loss: r.loss, accuracy: r.accuracy, imagesPerSecond: r.imagesPerSecond });
    setStatus(`Training: step ${r.step} of ${steps}`);
    el.stats.textContent =
      `step ${r.step} · epoch ${r.epoch.toFixed(2)} of ${(steps / perEpoch).toFixed(2)} · loss ${r.loss.toFixed(4)} · ` +
      `accuracy ${(100 * r.accuracy).toFixed(1)} % · ${thousands(r.imagesPerSecond)} images/s`;
    redrawCurve();
  }
}

/** After training: test (when `evaluate`), show the results and put the new model on display. */
async function finishRun(info, batch, evaluate) {
  setStatus(evaluate ? 'Testing on the 2,000 held-out digits…' : 'Finishing…');
  const test = await enqueue(() => engine().finishTraining(evaluate));
  const last = history[history.length - 1];
  const stepsDone = last ? last.step : 0;
  const accuracy = test.testAccuracy === null ? 'not tested' : `${(100 * test.testAccuracy).toFixed(2)} %`;
  const tested = test.testLoss === null ? 'not tested on the held-out digits'
    : `test accuracy ${accuracy}, test loss ${test.testLoss.toFixed(4)} on ${thousands(info.testCount)} digits`;
  el.stats.textContent = `${stepsDone} steps (${thousands(info.trainCount)} training digits, batch ${batch}): ` +
    tested + (last ? ` · ${thousands(last.imagesPerSecond)} images/s` : '');
  plan = Math.max(stepsDone, 1); // the axis fits the steps done (fewer than asked after Stop)
  redrawCurve();
  setStatus(stopRequested ? 'Training stopped; showing the new model beside the other'
    : 'Trained; showing the new model beside the other');
  await deps.onTrained(stepsDone, accuracy);
  return test;
}

/**
 * Train a fresh model for `steps` steps (or until stopped), `batch` images per step, initialised and
 * shuffled from `seed` (a new one per run unless given), then tested on the held-out digits unless
 * `evaluate` is false; returns {history, test, kernels} (kernels: the WGSL entry points a step runs).
 */
export async function train(steps, { batch = BATCH, seed: runSeed = seed++, evaluate = true } = {}) {
  if (training) throw new Error('Training is already running');
  if (!engine()) throw new Error('The engine is not ready');
  steps = Math.max(1, Math.floor(steps));
  setTraining(true);
  clearError(); // a new action: older errors are no longer current
  stopRequested = false;
  history = [];
  plan = steps;
  redrawCurve();
  try {
    if (!trainData) {
      setStatus('Fetching the MNIST sample…');
      trainData = await Promise.all(DATA_URLS.map(fetchBytes));
    }
    setStatus('Preparing training…');
    const [ti, tl, vi, vl] = trainData;
    const info = await enqueue(() => engine().startTraining(ti, tl, vi, vl, batch, runSeed));
    await trainChunks(steps, info.stepsPerEpoch);
    const test = await finishRun(info, batch, evaluate);
    return {
      history: history.map((h) => ({ ...h })),
      test: { testLoss: test.testLoss, testAccuracy: test.testAccuracy },
      kernels: Array.from(info.kernels),
    };
  } catch (e) {
    showError('Training failed', e);
    setStatus('Training failed');
    throw e;
  } finally {
    setTraining(false);
  }
}

/**
 * Wire the training controls. `engine()` is the engine (null until it is ready), `enqueue` the
 * page's engine queue, and `onTrained(steps, accuracyText)` puts the trained weights on display.
 */
export function setupTraining(pageHooks) {
  deps = pageHooks;
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
  window.addEventListener('resize', redrawCurve);
}
