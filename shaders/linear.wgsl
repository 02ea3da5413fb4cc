// Fully connected layer y = x · Wᵀ + b and its gradients (three matmuls and a column sum).
// x [n, in_f], w [out_f, in_f] (PyTorch's layout), b [out_f], y [n, out_f].

struct LinearParams {
    n: u32,
    in_f: u32,
    out_f: u32,
    total: u32,          // elements this dispatch writes
    rows_per_chunk: u32, // split reductions: batch rows one invocation sums
    chunks: u32,         // split reductions: number of partial results per element
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: LinearParams;

// linear_forward: store max(y, 0) (a layer followed by ReLU in one pass, the fuse pass's
// `linear_relu`).
override RELU: bool = false;

// linear_forward: x, w, b -> y
@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_w: array<f32>;
@group(0) @binding(3) var<storage, read> fwd_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(WG)
fn linear_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let o = i % p.out_f;
    let n = i / p.out_f;
    let xr = n * p.in_f;
    let wr = o * p.in_f;
    var acc = 0.0;
    for (var k = 0u; k < p.in_f; k++) {
        acc += fwd_x[xr + k] * fwd_w[wr + k];
    }
    let y = acc + fwd_b[o];
    fwd_y[i] = select(y, max(y, 0.0), RELU);
}

// linear_backward_input: dy, w -> dx = dy · W
@group(0) @binding(1) var<storage, read> bi_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bi_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> bi_dx: array<f32>;

@compute @workgroup_size(WG)
fn linear_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let k = i % p.in_f;
    let n = i / p.in_f;
    var acc = 0.0;
    for (var o = 0u; o < p.out_f; o++) {
        acc += bi_dy[n * p.out_f + o] * bi_w[o * p.in_f + k];
    }
    bi_dx[i] = acc;
}

// linear_backward_weight: dy, x -> dw = dyᵀ · x, as a split reduction over the batch: invocation i
// sums chunk i / w_len of the rows for weight i % w_len into partial [chunk, w_len] (dw itself when
// there is one chunk; otherwise sum_chunks adds the chunks in order).
@group(0) @binding(1) var<storage, read> bw_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bw_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> bw_dw: array<f32>;

@compute @workgroup_size(WG)
fn linear_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let w_len = p.out_f * p.in_f;
    let e = i % w_len;
    let chunk = i / w_len;
    let k = e % p.in_f;
    let o = e / p.in_f;
    let r0 = chunk * p.rows_per_chunk;
    let r1 = min(r0 + p.rows_per_chunk, p.n);
    var acc = 0.0;
    for (var n = r0; n < r1; n++) {
        acc += bw_dy[n * p.out_f + o] * bw_x[n * p.in_f + k];
    }
    bw_dw[i] = acc;
}

// linear_backward_bias: dy -> db = column sums of dy, split over the batch like the weight.
@group(0) @binding(1) var<storage, read> bb_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> bb_db: array<f32>;

@compute @workgroup_size(WG)
fn linear_backward_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let o = i % p.out_f;
    let chunk = i / p.out_f;
    let r0 = chunk * p.rows_per_chunk;
    let r1 = min(r0 + p.rows_per_chunk, p.n);
    var acc = 0.0;
    for (var n = r0; n < r1; n++) {
        acc += bb_dy[n * p.out_f + o];
    }
    bb_db[i] = acc;
}
