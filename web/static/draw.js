// The drawing canvas: pointer strokes in white on black, read back as one grey byte per pixel.
import { el } from './ui.js';

const canvas = el.draw;
const ctx = canvas.getContext('2d', { willReadFrequently: true });

export function clearCanvas() {
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function canvasPoint(e) {
  const r = canvas.getBoundingClientRect();
  return { x: (e.clientX - r.left) * (canvas.width / r.width), y: (e.clientY - r.top) * (canvas.height / r.height) };
}

function setPen() {
  ctx.strokeStyle = ctx.fillStyle = '#fff';
  ctx.lineWidth = 22;
  ctx.lineCap = ctx.lineJoin = 'round';
}

/**
 * Let the pointer draw. `onStart()` runs as a stroke begins (before any ink), `onChange()` after
 * every move and at the end of each stroke.
 */
export function setupDrawing({ onStart, onChange }) {
  let stroke = null; // last point of the stroke in progress
  canvas.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    canvas.setPointerCapture(e.pointerId);
    onStart();
    setPen();
    stroke = canvasPoint(e);
    ctx.beginPath();
    ctx.arc(stroke.x, stroke.y, ctx.lineWidth / 2, 0, 2 * Math.PI); // a tap makes a dot
    ctx.fill();
    e.preventDefault();
  });
  canvas.addEventListener('pointermove', (e) => {
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
    onChange();
  });
  const endStroke = () => {
    if (!stroke) return;
    stroke = null;
    onChange();
  };
  canvas.addEventListener('pointerup', endStroke);
  canvas.addEventListener('pointercancel', endStroke);
}

/** The drawing as one byte per pixel (the red channel: 255 = ink). */
export function drawingPixels() {
  const { width, height } = canvas;
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const px = new Uint8Array(width * height);
  for (let i = 0; i < px.length; i++) px[i] = rgba[4 * i];
  return { px, width, height };
}

/** Show a prepared input (values 0–1, [c, h, w]) on the drawing canvas, so the user can draw on it. */
export function showInputOnCanvas(input, shape = [1, 28, 28]) {
  // [c, h, w] values in [0, 1]: grey for one channel, colour (planes R, G, B) for three.
  const [c, h, w] = Array.from(shape);
  const plane = h * w;
  const small = new ImageData(w, h);
  const byte = (v) => Math.round(255 * Math.min(1, Math.max(0, v)));
  for (let i = 0; i < plane; i++) {
    const rgb = c === 3 ? [input[i], input[plane + i], input[2 * plane + i]] : [input[i], input[i], input[i]];
    small.data.set([...rgb.map(byte), 255], 4 * i);
  }
  const tmp = document.createElement('canvas');
  tmp.width = w;
  tmp.height = h;
  tmp.getContext('2d').putImageData(small, 0, 0);
  clearCanvas();
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}
