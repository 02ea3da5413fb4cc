// Softmax fused with a loss, per sample, numerically stable (max subtracted before exp).
//   softmax_xent: loss[n] = logsumexp(z[n]) - z[n, label[n]]
//   softmax_mse:  loss[n] = 1/2 Σ_k (onehot(label[n])_k - softmax(z[n])_k)^2   (the article's squared error)
// Forward also writes the probabilities, which backward reads. Backward scales by `scale`
// (1/n for PyTorch's mean reduction). A label >= classes gives a NaN loss, never an out-of-bounds read:
// the quiet NaN 0x7fc00bad stored as a bit pattern, not computed (a runtime 0/0 is not a NaN under
// Metal's fast math), so the host can tell a bad label from an overflow in the per-sample losses.

struct LossParams {
    n: u32,
    classes: u32,
    scale: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: LossParams;

// *_forward: logits, labels -> loss [n], probs [n, classes]
@group(0) @binding(1) var<storage, read> fwd_z: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_label: array<u32>;
@group(0) @binding(3) var<storage, read_write> fwd_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> fwd_probs: array<f32>;

// *_backward: probs, labels -> dlogits [n, classes]
@group(0) @binding(1) var<storage, read> bwd_probs: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_label: array<u32>;
@group(0) @binding(3) var<storage, read_write> bwd_dz: array<f32>;

// Writes softmax(z[n]) into fwd_probs and returns log Σ exp(z - max) + max.
fn softmax_row(n: u32) -> f32 {
    let row = n * p.classes;
    var m = fwd_z[row];
    for (var k = 1u; k < p.classes; k++) { m = max(m, fwd_z[row + k]); }
    var s = 0.0;
    for (var k = 0u; k < p.classes; k++) { s += exp(fwd_z[row + k] - m); }
    for (var k = 0u; k < p.classes; k++) { fwd_probs[row + k] = exp(fwd_z[row + k] - m) / s; }
    return m + log(s);
}

const BAD_LABEL_BITS: u32 = 0x7fc00badu;

fn bad_label_loss() -> f32 {
    // `_pad0 & 0` keeps the bitcast a runtime value: WGSL rejects a NaN constant expression.
    return bitcast<f32>(BAD_LABEL_BITS | (p._pad0 & 0u));
}

@compute @workgroup_size(WG)
fn softmax_xent_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = flat_index(gid, nwg);
    if (n >= p.n) { return; }
    let lse = softmax_row(n);
    let label = fwd_label[n];
    if (label >= p.classes) { fwd_loss[n] = bad_label_loss(); return; }
    fwd_loss[n] = lse - fwd_z[n * p.classes + label];
}

@compute @workgroup_size(WG)
fn softmax_xent_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n * p.classes) { return; }
    let k = i % p.classes;
    let n = i / p.classes;
    let target_k = select(0.0, 1.0, bwd_label[n] == k);
    bwd_dz[i] = (bwd_probs[i] - target_k) * p.scale;
}

@compute @workgroup_size(WG)
fn softmax_mse_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = flat_index(gid, nwg);
    if (n >= p.n) { return; }
    _ = softmax_row(n);
    let label = fwd_label[n];
    if (label >= p.classes) { fwd_loss[n] = bad_label_loss(); return; }
    let row = n * p.classes;
    var acc = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        let d = select(0.0, 1.0, label == k) - fwd_probs[row + k];
        acc += d * d;
    }
    fwd_loss[n] = 0.5 * acc;
}

// d/dz_j of 1/2 Σ_k (p_k - t_k)^2 = p_j ((p_j - t_j) - Σ_k (p_k - t_k) p_k)
@compute @workgroup_size(WG)
fn softmax_mse_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n * p.classes) { return; }
    let j = i % p.classes;
    let n = i / p.classes;
    let row = n * p.classes;
    let label = bwd_label[n];
    var dot = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        let pk = bwd_probs[row + k];
        dot += (pk - select(0.0, 1.0, label == k)) * pk;
    }
    let pj = bwd_probs[i];
    bwd_dz[i] = pj * ((pj - select(0.0, 1.0, label == j)) - dot) * p.scale;
}
