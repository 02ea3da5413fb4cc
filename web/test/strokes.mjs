// Digits drawn as people draw them, generated as pen strokes on the page's 280x280 canvas: the same
// templates and variations as scripts/drawn_digits.py (which measures them natively with
// `wgcnn predict`). Each sample gets its own rotation (±15°), slant (shear ±0.35), size (0.55–1.05),
// aspect (0.8–1.2), offset (±45 px across, ±40 down) and a 5 px tremor on every point, every range
// widened by `spread`; a digit that runs over an edge is moved back in, as people draw inside the box.
// The page's pen draws them (22 px, round), by mouse or by touch.

/** Points along an ellipse, angles in degrees clockwise from 12 o'clock. */
function arc(cx, cy, rx, ry, a0 = 0, a1 = 360, n = 36) {
  const pts = [];
  for (let i = 0; i <= n; i++) {
    const a = ((a0 + ((a1 - a0) * i) / n) * Math.PI) / 180;
    pts.push([cx + rx * Math.sin(a), cy - ry * Math.cos(a)]);
  }
  return pts;
}

/** Strokes of each digit on the 280x280 canvas, as people commonly write them. */
export const TEMPLATES = {
  0: [arc(140, 140, 55, 90)],
  1: [[[118, 78], [142, 45], [140, 235]]],
  2: [[...arc(140, 95, 48, 45, -70, 110, 12), [85, 235], [200, 235]]],
  3: [arc(138, 92, 45, 45, -60, 180, 12), arc(138, 185, 52, 50, 0, 230, 14)],
  4: [[[160, 45], [80, 165], [200, 165]], [[165, 100], [165, 235]]],
  5: [[[185, 50], [105, 50], [95, 130], ...arc(140, 175, 50, 55, -50, 220, 14).slice(1)]],
  6: [[[170, 50], [120, 95], [92, 160], ...arc(140, 185, 48, 48, -90, 270, 18)]],
  7: [[[72, 58], [206, 56], [168, 130], [138, 240]]],
  8: [arc(140, 90, 42, 42, 180, 540, 24), arc(140, 185, 50, 50, 0, 360, 24)],
  9: [arc(140, 95, 45, 45, 90, 450, 24), [[185, 95], [175, 235]]],
};

/** A small seeded generator (mulberry32): the same digits on every run. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, uniform: (lo, hi) => lo + (hi - lo) * next() };
}

/** The page's pen width in canvas pixels (web/static/draw.js). */
const PEN = 22;

/** One drawing of `digit`: its strokes (polylines in canvas pixels) and how it was varied. */
export function drawnDigit(digit, r, spread = 1) {
  const s = spread;
  const rot = (r.uniform(-15 * s, 15 * s) * Math.PI) / 180;
  const shear = r.uniform(-0.35 * s, 0.35 * s);
  const aspect = r.uniform(1 - 0.2 * s, 1 + 0.2 * s);
  const scale = Math.max(0.3, r.uniform(0.8 - 0.25 * s, 0.8 + 0.25 * s));
  const tx = r.uniform(-45 * s, 45 * s);
  const ty = r.uniform(-40 * s, 40 * s);
  const place = ([px, py]) => {
    let x = px - 140 + r.uniform(-5 * s, 5 * s);
    let y = py - 140 + r.uniform(-5 * s, 5 * s);
    x *= scale * aspect;
    y *= scale;
    x -= shear * y;
    [x, y] = [x * Math.cos(rot) - y * Math.sin(rot), x * Math.sin(rot) + y * Math.cos(rot)];
    return [140 + x + tx, 140 + y + ty];
  };
  let strokes = TEMPLATES[digit].map((st) => st.map(place));
  const xs = strokes.flat().map((p) => p[0]);
  const ys = strokes.flat().map((p) => p[1]);
  const m = PEN / 2 + 2;
  const dx = Math.max(0, m - Math.min(...xs)) - Math.max(0, Math.max(...xs) - (280 - m));
  const dy = Math.max(0, m - Math.min(...ys)) - Math.max(0, Math.max(...ys) - (280 - m));
  strokes = strokes.map((st) => st.map(([x, y]) => [x + dx, y + dy]));
  return { digit, strokes, rot, shear, scale, aspect, offset: [tx + dx, ty + dy] };
}

/** `perClass` drawings of every digit, classes interleaved, alternately by mouse and by touch. */
export function drawnDigits(seed, perClass, spread = 1) {
  const r = rng(seed);
  const out = [];
  for (let k = 0; k < perClass; k++) {
    for (let d = 0; d < 10; d++) out.push({ ...drawnDigit(d, r, spread), by: (k + d) % 2 ? 'touch' : 'mouse' });
  }
  return out;
}
