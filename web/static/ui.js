// The page's elements, the status line and the error banner.

const $ = (id) => document.getElementById(id);

export const el = {
  adapter: $('adapter'), status: $('status'), error: $('error'),
  draw: $('draw'), clear: $('clear'), picture: $('picture-file'), sourceNote: $('source-note'),
  prediction: $('prediction'), probs: $('probs'), layers: $('layers'), filters: $('filters'), unit: $('unit'),
  modelFile: $('model-file'), modelName: $('model-name'), download: $('download'),
  zoo: $('zoo'), modelSwitch: $('model-switch'), showLoaded: $('show-loaded'), showTrained: $('show-trained'), compare: $('compare'),
  steps: $('train-steps'), train: $('train'), stop: $('train-stop'), curve: $('curve'), stats: $('train-stats'),
};

export function setStatus(text) { el.status.textContent = text; }

/**
 * What an engine message means, in words a reader understands; null when the message says it plainly
 * enough itself. The message itself stays behind the banner's Details toggle.
 */
const PLAIN = [
  [/not a valid safetensors file|safetensors header|header length/i, () =>
    'This file is not a model checkpoint that wgcnn can read: it does not begin as a .safetensors file does ' +
    '(it may be another kind of file, or cut short). Choose a .safetensors file saved by wgcnn — `wgcnn train --save` ' +
    'or Download on this page — or a .toml model file.'],
  [/reads (\d+)x(\d+)x(\d+) inputs/, (m) =>
    `This model reads pictures of ${m[1]}×${m[2]}×${m[3]} values (${m[1]} channels). The page draws grey pictures ` +
    '(1 channel) and colour ones (3 channels), so it cannot show this model. The model on display stays.'],
  [/does not fit this model|has shape .*this model needs|values for shape/, () =>
    "This checkpoint's weights do not fit its model (a tensor is missing or has another shape): the file is " +
    'damaged, or was written for another model.'],
  [/its model description is wrong|not valid TOML|layer \S+: |unknown (table|field|op)|no \[model\] table|no \[\[layer\]\] tables/, () =>
    'The model description has a mistake; the details say which layer and which setting.'],
  [/not UTF-8/, () => 'This .toml file is not text: a model file is a text file.'],
  [/not a readable PNG or JPEG|decode|unsupported image/i, () =>
    'This picture could not be read: the page reads PNG and JPEG files.'],
  [/diverged/, () =>
    'Training went wrong: the loss stopped being a number (the run diverged). The model on display is kept; ' +
    'a new run starts from other random weights.'],
  [/^busy:/, () => 'The page is still busy with the last request; try again in a moment.'],
];

/** The plain explanation of `msg`, or null. */
export function explain(msg) {
  for (const [re, say] of PLAIN) {
    const m = re.exec(msg);
    if (m) return say(m);
  }
  return null;
}

/**
 * Show an error: `context` ("Could not load x.toml") and the plain explanation of `err`, with the
 * engine's own message behind a Details toggle; a message with no explanation is shown as it is.
 */
export function showError(context, err) {
  const msg = err instanceof Error ? err.message : String(err);
  const plain = explain(msg);
  const summary = document.createElement('p');
  summary.className = 'summary';
  summary.textContent = `${context ? `${context}: ` : ''}${plain ?? msg}`;
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'dismiss';
  close.title = 'Dismiss';
  close.setAttribute('aria-label', 'Dismiss this message');
  close.addEventListener('click', clearError);
  const parts = [close, summary];
  if (plain) {
    const details = document.createElement('details');
    const label = document.createElement('summary');
    label.textContent = 'Details';
    const raw = document.createElement('pre');
    raw.textContent = msg;
    details.append(label, raw);
    parts.push(details);
  }
  el.error.replaceChildren(...parts);
  el.error.hidden = false;
  console.error(context || 'error', err);
}

/** "Could not load x.png", or without the name when the engine's message already says it. */
export function about(what, name, err) {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.includes(name) ? what : `${what} ${name}`;
}

export function clearError() { el.error.replaceChildren(); el.error.hidden = true; }
