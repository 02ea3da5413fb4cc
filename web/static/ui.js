// The page's elements, the status line and the error banner.

const $ = (id) => document.getElementById(id);

export const el = {
  adapter: $('adapter'), status: $('status'), error: $('error'),
  draw: $('draw'), clear: $('clear'), picture: $('picture-file'), sourceNote: $('source-note'),
  prediction: $('prediction'), probs: $('probs'), layers: $('layers'), filters: $('filters'),
  modelFile: $('model-file'), modelName: $('model-name'), download: $('download'),
  steps: $('train-steps'), train: $('train'), stop: $('train-stop'), curve: $('curve'), stats: $('train-stats'),
};

export function setStatus(text) { el.status.textContent = text; }

export function showError(context, err) {
  const msg = err instanceof Error ? err.message : String(err);
  el.error.textContent = context ? `${context}: ${msg}` : msg;
  el.error.hidden = false;
  console.error(context || 'error', err);
}

/** "Could not load x.png", or without the name when the engine's message already says it. */
export function about(what, name, err) {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.includes(name) ? what : `${what} ${name}`;
}

export function clearError() { el.error.textContent = ''; el.error.hidden = true; }
el.error.addEventListener('click', clearError);
