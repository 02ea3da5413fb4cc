// Why a unit has its value: for any cell of any layer's output, the cells of the layers it reads (its
// receptive field there and in the input picture), and the sum, maximum or formula that made it — from
// the values of the forward pass on display (the GPU's) and the model's weights as the GPU holds them.
// Nothing here runs the network again: each explanation combines numbers the engine already read back.

/** A shown layer's values: `{shape, values}` ([c, h, w] or [n]); 'input' is the input as the network
 * reads it (normalised). Null for a layer that is not shown (a view such as flatten). */
export function valuesOf(pred, name) {
  if (name === 'input') {
    const shape = pred.inputShape ? Array.from(pred.inputShape) : [1, 28, 28];
    const plane = shape[1] * shape[2];
    const mean = pred.mean ? Array.from(pred.mean) : [0];
    const std = pred.std ? Array.from(pred.std) : [1];
    const values = Float64Array.from(pred.input, (v, i) => {
      const c = Math.floor(i / plane);
      return (v - (mean[c] ?? 0)) / (std[c] ?? 1);
    });
    return { shape, values };
  }
  const l = Array.from(pred.layers).find((x) => x.name === name);
  return l ? { shape: Array.from(l.shape), values: l.values } : null;
}

/** A layer's (c, h, w): [n] vectors as n×1×1. */
const chw = (shape) => (shape.length === 3 ? shape : [shape.reduce((a, b) => a * b, 1), 1, 1]);

/** The shown layer a name stands for: a view (flatten, or dropout when not shown) passes its input on. */
function resolve(pred, byName, name) {
  let n = name;
  while (n !== 'input' && !valuesOf(pred, n) && byName.get(n)?.inputs.length === 1) n = byName.get(n).inputs[0];
  return n;
}

/** The window [first, last] of input rows (or columns) read by output rows y0..y1, clipped to the map. */
function windowBack(y0, y1, { kernel, stride, padding }, size) {
  return [Math.max(0, y0 * stride - padding), Math.min(size - 1, y1 * stride - padding + kernel - 1)];
}

/**
 * The receptive field of cell (y, x) of layer `name` in every layer it depends on, back to the input:
 * a Map from layer name to {y0, y1, x0, x1} (a union of boxes where branches meet).
 */
export function receptiveField(pred, graph, name, y, x) {
  const byName = new Map(graph.map((l) => [l.name, l]));
  const boxes = new Map([[name, { y0: y, y1: y, x0: x, x1: x }]]);
  const merge = (n, b) => {
    const o = boxes.get(n);
    boxes.set(n, o ? { y0: Math.min(o.y0, b.y0), y1: Math.max(o.y1, b.y1), x0: Math.min(o.x0, b.x0), x1: Math.max(o.x1, b.x1) } : b);
  };
  const shapeOf = (n) => {
    const v = valuesOf(pred, resolve(pred, byName, n));
    return v ? chw(v.shape) : null;
  };
  for (let i = graph.length - 1; i >= 0; i--) {
    const l = graph[i];
    const box = boxes.get(l.name);
    if (!box) continue;
    for (const input of l.inputs) {
      const s = shapeOf(input);
      if (!s) continue;
      const [, h, w] = s;
      if (l.kernel) {
        const [y0, y1] = windowBack(box.y0, box.y1, l, h);
        const [x0, x1] = windowBack(box.x0, box.x1, l, w);
        merge(input, { y0, y1, x0, x1 });
      } else if (l.op === 'linear' || l.op === 'global_avgpool' || l.op === 'flatten') {
        merge(input, { y0: 0, y1: h - 1, x0: 0, x1: w - 1 });
      } else {
        merge(input, box);
      }
    }
  }
  return boxes;
}

const tensorOf = (tensors, name) => name && tensors.find((t) => t.name === name);

/**
 * Whether layer `name`'s map already holds its ReLU's output: the engine runs batch norm + ReLU (and
 * add + ReLU) as one kernel, so the map shown for the batch norm (or add) equals the ReLU's after it.
 */
function fusedWithRelu(pred, graph, name, own) {
  return graph.some((g) => {
    if (g.op !== 'relu' || g.inputs.length !== 1 || g.inputs[0] !== name) return false;
    const r = valuesOf(pred, g.name);
    if (!r || r.values.length !== own.values.length) return false;
    for (let i = 0; i < r.values.length; i++) if (r.values[i] !== own.values[i]) return false;
    return true;
  });
}

/**
 * Explain unit `index` (flat, in the layer's [c, h, w] order) of layer `name` of prediction `pred`:
 * `graph` is the engine's layerGraph, `tensors` its tensors(). Returns
 * `{layer, op, at: {c, y, x}, value, reads: [{layer, box, channels}], inputBox, ...}` with, by op:
 * conv `{sum, bias, terms, weights: {shape, values}}` (Σ w·x + b over the window and every input
 * channel), linear `{sum, bias, terms, strongest}` (the five largest |w·x|), max pool `{winner}`,
 * average pool `{sum, count}`, batch norm, activations, add and concat `{formula, sum}`.
 */
export function explainUnit(pred, graph, tensors, name, index) {
  if (name === 'softmax') return explainSoftmax(pred, graph, index);
  if (name === 'input') return explainInput(pred, index);
  const byName = new Map(graph.map((l) => [l.name, l]));
  const l = byName.get(name);
  const own = valuesOf(pred, name);
  if (!l || !own) return null;
  const [C, H, W] = chw(own.shape);
  const c = Math.floor(index / (H * W));
  const y = Math.floor((index % (H * W)) / W);
  const x = index % W;
  const out = { layer: name, op: l.op, shape: own.shape, index, at: { c, y, x }, value: own.values[index], reads: [] };
  const inputs = l.inputs.map((n) => resolve(pred, byName, n));
  const ins = inputs.map((n) => ({ name: n, ...valuesOf(pred, n) }));
  const field = receptiveField(pred, graph, name, y, x);
  out.inputBox = field.get('input') ?? null;
  const at = (v, ch, yy, xx) => {
    const [, h, w] = chw(v.shape);
    return v.values[(ch * h + yy) * w + xx];
  };
  const first = ins[0];
  if (l.op === 'conv2d') {
    const wt = tensorOf(tensors, l.weight);
    const [, cin, k] = Array.from(wt.shape);
    const [, h, w] = chw(first.shape);
    let sum = 0;
    let terms = 0;
    const patch = [];
    for (let ci = 0; ci < cin; ci++) {
      for (let ky = 0; ky < k; ky++) {
        for (let kx = 0; kx < k; kx++) {
          const yy = y * l.stride - l.padding + ky;
          const xx = x * l.stride - l.padding + kx;
          const inside = yy >= 0 && yy < h && xx >= 0 && xx < w;
          const xv = inside ? at(first, ci, yy, xx) : 0;
          patch.push(xv);
          if (inside) {
            sum += wt.values[((c * cin + ci) * k + ky) * k + kx] * xv;
            terms++;
          }
        }
      }
    }
    const bias = l.bias ? tensorOf(tensors, l.bias).values[c] : 0;
    out.bias = bias;
    out.sum = sum + bias;
    out.terms = terms;
    out.weights = { shape: [cin, k, k], values: Array.from(wt.values.slice(c * cin * k * k, (c + 1) * cin * k * k)) };
    out.patch = { shape: [cin, k, k], values: patch };
    out.reads.push({ layer: first.name, box: field.get(first.name), channels: 'all' });
  } else if (l.op === 'linear') {
    const wt = tensorOf(tensors, l.weight);
    const n = first.values.length;
    const row = c * n;
    let sum = 0;
    const products = [];
    for (let i = 0; i < n; i++) {
      const p = wt.values[row + i] * first.values[i];
      sum += p;
      products.push({ i, weight: wt.values[row + i], input: first.values[i], product: p });
    }
    const bias = l.bias ? tensorOf(tensors, l.bias).values[c] : 0;
    out.bias = bias;
    out.sum = sum + bias;
    out.terms = n;
    const [, h, w] = chw(first.shape);
    out.strongest = products.sort((a, b) => Math.abs(b.product) - Math.abs(a.product)).slice(0, 5)
      .map((p) => ({ ...p, at: { c: Math.floor(p.i / (h * w)), y: Math.floor((p.i % (h * w)) / w), x: p.i % w } }));
    out.readShape = Array.from(first.shape);
    out.reads.push({ layer: first.name, box: null, channels: 'all', cells: out.strongest.map((p) => p.at) });
  } else if (l.op === 'maxpool2d' || l.op === 'avgpool2d') {
    const [, h, w] = chw(first.shape);
    let best = null;
    let sum = 0;
    for (let ky = 0; ky < l.kernel; ky++) {
      for (let kx = 0; kx < l.kernel; kx++) {
        const yy = y * l.stride - l.padding + ky;
        const xx = x * l.stride - l.padding + kx;
        if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue; // padding: never wins, adds 0
        const v = at(first, c, yy, xx);
        sum += v;
        if (!best || v > best.value) best = { c, y: yy, x: xx, value: v };
      }
    }
    if (l.op === 'maxpool2d') {
      out.winner = best;
      out.sum = best.value;
    } else {
      out.count = l.kernel * l.kernel; // PyTorch's count_include_pad
      out.sum = sum / out.count;
    }
    out.reads.push({ layer: first.name, box: field.get(first.name), channels: [c] });
  } else if (l.op === 'batchnorm2d') {
    const g = (key) => tensorOf(tensors, l[key]).values[c];
    const v = at(first, c, y, x);
    const bn = ((v - g('mean')) / Math.sqrt(g('var') + l.eps)) * g('weight') + g('bias');
    const relu = fusedWithRelu(pred, graph, name, own);
    out.sum = relu ? Math.max(0, bn) : bn;
    out.formula = { input: v, mean: g('mean'), var: g('var'), eps: l.eps, gamma: g('weight'), beta: g('bias'), normalised: bn, relu };
    out.reads.push({ layer: first.name, box: field.get(first.name), channels: [c] });
  } else if (l.op === 'relu' || l.op === 'tanh' || l.op === 'sigmoid' || l.op === 'dropout') {
    const v = at(first, c, y, x);
    out.sum = l.op === 'relu' ? Math.max(0, v) : l.op === 'tanh' ? Math.tanh(v) : l.op === 'sigmoid' ? 1 / (1 + Math.exp(-v)) : v;
    out.formula = { input: v };
    out.reads.push({ layer: first.name, box: field.get(first.name), channels: [c] });
  } else if (l.op === 'add') {
    const parts = ins.map((v) => at(v, c, y, x));
    const total = parts.reduce((a, b) => a + b, 0);
    const relu = fusedWithRelu(pred, graph, name, own);
    out.sum = relu ? Math.max(0, total) : total;
    out.formula = { parts, total, relu };
    for (const v of ins) out.reads.push({ layer: v.name, box: field.get(v.name), channels: [c] });
  } else if (l.op === 'concat') {
    let offset = 0;
    for (const v of ins) {
      const [cv] = chw(v.shape);
      if (c < offset + cv) {
        out.sum = at(v, c - offset, y, x);
        out.formula = { from: v.name, channel: c - offset };
        out.reads.push({ layer: v.name, box: field.get(v.name), channels: [c - offset] });
        break;
      }
      offset += cv;
    }
  } else if (l.op === 'global_avgpool') {
    const [, h, w] = chw(first.shape);
    let sum = 0;
    for (let yy = 0; yy < h; yy++) for (let xx = 0; xx < w; xx++) sum += at(first, c, yy, xx);
    out.sum = sum / (h * w);
    out.count = h * w;
    out.reads.push({ layer: first.name, box: field.get(first.name), channels: [c] });
  }
  out.channels = C;
  return out;
}

/** A class probability: exp(z_k − max z) / Σ_j exp(z_j − max z) over the last layer's outputs (the logits). */
function explainSoftmax(pred, graph, k) {
  const last = graph[graph.length - 1];
  const logits = valuesOf(pred, last.name);
  if (!logits) return null;
  const z = Array.from(logits.values);
  const m = Math.max(...z);
  const total = z.reduce((a, v) => a + Math.exp(v - m), 0);
  const n = z.length;
  return {
    layer: 'softmax', op: 'softmax', shape: [n], index: k, at: { c: k, y: 0, x: 0 }, value: pred.probabilities[k],
    sum: Math.exp(z[k] - m) / total, formula: { logit: z[k], max: m, total },
    reads: [{ layer: last.name, box: { y0: 0, y1: 0, x0: 0, x1: 0 }, channels: [...Array(n).keys()] }], inputBox: null, channels: n,
  };
}

/** A cell of the input: the picture's value there and what the network reads, (v − mean) / std. */
function explainInput(pred, index) {
  const v = valuesOf(pred, 'input');
  const [C, H, W] = v.shape;
  const c = Math.floor(index / (H * W));
  const y = Math.floor((index % (H * W)) / W);
  const x = index % W;
  return {
    layer: 'input', op: 'input', shape: v.shape, index, at: { c, y, x }, value: pred.input[index], sum: v.values[index],
    formula: { picture: pred.input[index], fed: v.values[index] }, reads: [], inputBox: { y0: y, y1: y, x0: x, x1: x }, channels: C,
  };
}

const f4 = (v) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : v.toFixed(4));

/** The explanation as lines of text for the page's #unit panel. */
export function describe(e) {
  const where = e.shape.length === 3 && e.shape[1] * e.shape[2] > 1
    ? `channel ${e.at.c}, row ${e.at.y}, column ${e.at.x}` : `unit ${e.index}`;
  const lines = [`${e.layer} (${e.op}) ${where} = ${f4(e.value)} ${e.op === 'input' ? 'in the prepared picture' : 'on the GPU'}`];
  const box = (b) => (b ? `rows ${b.y0}–${b.y1}, columns ${b.x0}–${b.x1}` : '');
  const read = e.reads[0];
  if (e.op === 'conv2d') {
    lines.push(`reads ${read.layer} ${box(read.box)}, all ${e.weights.shape[0]} channels, through its ` +
      `${e.weights.shape[0]}×${e.weights.shape[1]}×${e.weights.shape[2]} filter: ` +
      `Σ w·x over ${e.terms} inputs + bias ${f4(e.bias)} = ${f4(e.sum)}`);
  } else if (e.op === 'linear') {
    lines.push(`reads all ${e.terms} values of ${read.layer}: Σ w·x + bias ${f4(e.bias)} = ${f4(e.sum)}; strongest:`);
    const map = e.readShape.length === 3 && e.readShape[1] * e.readShape[2] > 1;
    for (const p of e.strongest) {
      const cell = map ? `#${p.i} (channel ${p.at.c}, row ${p.at.y}, column ${p.at.x})` : `#${p.i}`;
      lines.push(`  ${cell}: w ${f4(p.weight)} × x ${f4(p.input)} = ${f4(p.product)}`);
    }
  } else if (e.op === 'maxpool2d') {
    lines.push(`the largest of ${read.layer} channel ${e.at.c}, ${box(read.box)}: ` +
      `row ${e.winner.y}, column ${e.winner.x} won with ${f4(e.winner.value)}`);
  } else if (e.op === 'avgpool2d' || e.op === 'global_avgpool') {
    lines.push(`the mean of ${read.layer} channel ${e.at.c}, ${box(read.box)} (${e.count} cells) = ${f4(e.sum)}`);
  } else if (e.op === 'batchnorm2d') {
    const f = e.formula;
    lines.push(`(${f4(f.input)} − ${f4(f.mean)}) / √(${f4(f.var)} + ${f.eps}) × ${f4(f.gamma)} + ${f4(f.beta)} = ${f4(f.normalised)}` +
      (f.relu ? `; with its ReLU (one kernel, so this map shows both): ${f4(e.sum)}` : ''));
  } else if (e.formula && 'input' in e.formula) {
    lines.push(`${e.op}(${f4(e.formula.input)}) = ${f4(e.sum)}, from ${read.layer} at the same place`);
  } else if (e.op === 'add') {
    lines.push(`${e.reads.map((r) => r.layer).join(' + ')}: ${e.formula.parts.map(f4).join(' + ')} = ${f4(e.formula.total)}` +
      (e.formula.relu ? `; with its ReLU (one kernel, so this map shows both): ${f4(e.sum)}` : ''));
  } else if (e.op === 'concat') {
    lines.push(`channel ${e.formula.channel} of ${e.formula.from}`);
  } else if (e.op === 'softmax') {
    const f = e.formula;
    lines.push(`exp(${f4(f.logit)} − ${f4(f.max)}) / Σ exp(z − ${f4(f.max)}) over the ${e.channels} outputs of ` +
      `${read.layer} (Σ = ${f4(f.total)}) = ${f4(e.sum)}`);
  } else if (e.op === 'input') {
    lines.push(`the prepared picture's value ${f4(e.formula.picture)}; the network reads ${f4(e.formula.fed)} (after its normalisation)`);
    return lines;
  }
  if (e.inputBox) lines.push(`In the input picture it sees ${box(e.inputBox)}.`);
  return lines;
}
