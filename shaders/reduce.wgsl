// Reductions for metrics, deterministic: each workgroup takes a fixed span of the elements (rows),
// each thread sums a fixed strided subset of it in order, then a fixed tree in workgroup memory. With
// one workgroup the result is ADDED to an accumulator, so loss and correct-count can be summed on the
// GPU over many steps and read back rarely; with several (`store` = 1) workgroup g STORES its sum at
// acc[g], and a second, one-workgroup pass (sum_accumulate, count_accumulate) adds those in order.

struct ReduceParams {
    n: u32,     // elements (sum_accumulate, count_accumulate, sum_chunks: per chunk) or rows
    cols: u32,  // row length (correct_accumulate, argmax_rows) or number of chunks (sum_chunks)
    span: u32,  // elements (rows) per workgroup of sum_accumulate and correct_accumulate
    store: u32, // 1: workgroup g stores its sum at acc[g]; 0: acc[0] += the sum
    offset: u32, // sum_chunks: where in `out` the sums go (out[offset + i])
    first: u32,  // sum_chunks: where in `partial` the chunks start
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: ReduceParams;

var<workgroup> partial_f: array<f32, WG_FIXED>;
var<workgroup> partial_u: array<u32, WG_FIXED>;

// sum_accumulate: x [n] -> acc[0] += Σ x
@group(0) @binding(1) var<storage, read> sum_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> sum_acc: array<f32>;

@compute @workgroup_size(WG_FIXED)
fn sum_accumulate(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let first = wg.x * p.span;
    let end = min(first + p.span, p.n);
    var s = 0.0;
    for (var i = first + t; i < end; i += WG_FIXED) { s += sum_x[i]; }
    partial_f[t] = s;
    workgroupBarrier();
    for (var half = WG_FIXED / 2u; half > 0u; half /= 2u) {
        if (t < half) { partial_f[t] += partial_f[t + half]; }
        workgroupBarrier();
    }
    if (t == 0u) {
        if (p.store == 1u) { sum_acc[wg.x] = partial_f[0]; } else { sum_acc[0] += partial_f[0]; }
    }
}

// count_accumulate: counts [n] -> acc[0] += Σ counts (the second pass of a split correct_accumulate)
@group(0) @binding(1) var<storage, read> cnt_x: array<u32>;
@group(0) @binding(2) var<storage, read_write> cnt_acc: array<u32>;

@compute @workgroup_size(WG_FIXED)
fn count_accumulate(@builtin(local_invocation_index) t: u32) {
    var c = 0u;
    for (var i = t; i < p.n; i += WG_FIXED) { c += cnt_x[i]; }
    partial_u[t] = c;
    workgroupBarrier();
    for (var half = WG_FIXED / 2u; half > 0u; half /= 2u) {
        if (t < half) { partial_u[t] += partial_u[t + half]; }
        workgroupBarrier();
    }
    if (t == 0u) { cnt_acc[0] += partial_u[0]; }
}

// Index of the first maximum of row n of a [rows, classes] array.
fn row_argmax_of(n: u32) -> u32 {
    let row = n * p.cols;
    var best = 0u;
    var best_v = rows_z[row];
    for (var k = 1u; k < p.cols; k++) {
        let v = rows_z[row + k];
        if (v > best_v) { best_v = v; best = k; }
    }
    return best;
}

// correct_accumulate: logits [n, classes], labels [n] -> acc[0] += #(argmax == label)
// argmax_rows:        logits [n, classes] -> out [n] (first maximum)
@group(0) @binding(1) var<storage, read> rows_z: array<f32>;
@group(0) @binding(2) var<storage, read> cc_label: array<u32>;
@group(0) @binding(3) var<storage, read_write> cc_acc: array<u32>;

@compute @workgroup_size(WG_FIXED)
fn correct_accumulate(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let first = wg.x * p.span;
    let end = min(first + p.span, p.n);
    var c = 0u;
    for (var n = first + t; n < end; n += WG_FIXED) {
        if (row_argmax_of(n) == cc_label[n]) { c += 1u; }
    }
    partial_u[t] = c;
    workgroupBarrier();
    for (var half = WG_FIXED / 2u; half > 0u; half /= 2u) {
        if (t < half) { partial_u[t] += partial_u[t + half]; }
        workgroupBarrier();
    }
    if (t == 0u) {
        if (p.store == 1u) { cc_acc[wg.x] = partial_u[0]; } else { cc_acc[0] += partial_u[0]; }
    }
}

@group(0) @binding(2) var<storage, read_write> am_out: array<u32>;

@compute @workgroup_size(WG)
fn argmax_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = flat_index(gid, nwg);
    if (n >= p.n) { return; }
    am_out[n] = row_argmax_of(n);
}

// sum_chunks: partial [cols, n] from element `first` -> out[offset + i] = Σ_c partial[c, i] in order of c,
// i < n. The second
// pass of every split reduction (conv2d/linear backward weight and bias, batch-norm's per-channel sums).
@group(0) @binding(1) var<storage, read> sc_partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> sc_out: array<f32>;

@compute @workgroup_size(WG)
fn sum_chunks(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) { return; }
    var acc = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        acc += sc_partial[p.first + c * p.n + i];
    }
    sc_out[p.offset + i] = acc;
}
