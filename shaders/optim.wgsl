// Optimizer updates with torch.optim semantics, one thread per parameter element, over whole arenas.

// Scalars arrive as PyTorch computes them: f64 expressions on the host (1 - dampening, 1 - beta,
// lr / bias_correction1) rounded once to f32, then applied in the order of PyTorch's CPU kernels.

// SGD (torch.optim.SGD): g += wd·w; buf = first ? g : μ·buf + (1 - dampening)·g;
// g = nesterov ? g + μ·buf : buf; w -= lr·g. With momentum 0 the buffer is untouched.
struct SgdParams {
    len: u32,
    lr: f32,
    momentum: f32,
    one_minus_dampening: f32,
    weight_decay: f32,
    nesterov: u32,
    first_step: u32,
    _pad0: u32,
}

// Adam (torch.optim.Adam, no amsgrad): g += wd·w; m = m + (1 - β1)·(g - m) (torch's lerp);
// v = β2·v + (1 - β2)·g·g; w -= step_size · m / (sqrt(v) / bias_correction2_sqrt + eps), with
// step_size = lr / (1 - β1^t) and bias_correction2_sqrt = sqrt(1 - β2^t).
struct AdamParams {
    len: u32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    weight_decay: f32,
    step_size: f32,
    bias_correction2_sqrt: f32,
}

@group(0) @binding(0) var<uniform> sgd: SgdParams;
@group(0) @binding(1) var<storage, read> sgd_grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> sgd_param: array<f32>;
@group(0) @binding(3) var<storage, read_write> sgd_buf: array<f32>;

@compute @workgroup_size(WG)
fn sgd_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= sgd.len) { return; }
    let w = sgd_param[i];
    var g = sgd_grad[i];
    if (sgd.weight_decay != 0.0) { g = g + sgd.weight_decay * w; }
    if (sgd.momentum != 0.0) {
        var b = g;
        if (sgd.first_step == 0u) { b = sgd.momentum * sgd_buf[i] + sgd.one_minus_dampening * g; }
        sgd_buf[i] = b;
        if (sgd.nesterov != 0u) { g = g + sgd.momentum * b; } else { g = b; }
    }
    sgd_param[i] = w - sgd.lr * g;
}

@group(0) @binding(0) var<uniform> adam: AdamParams;
@group(0) @binding(1) var<storage, read> adam_grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> adam_param: array<f32>;
@group(0) @binding(3) var<storage, read_write> adam_m: array<f32>;
@group(0) @binding(4) var<storage, read_write> adam_v: array<f32>;

@compute @workgroup_size(WG)
fn adam_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= adam.len) { return; }
    let w = adam_param[i];
    var g = adam_grad[i];
    if (adam.weight_decay != 0.0) { g = g + adam.weight_decay * w; }
    let m0 = adam_m[i];
    let m = m0 + adam.one_minus_beta1 * (g - m0);
    let v = adam.beta2 * adam_v[i] + adam.one_minus_beta2 * g * g;
    adam_m[i] = m;
    adam_v[i] = v;
    let denom = sqrt(v) / adam.bias_correction2_sqrt + adam.eps;
    adam_param[i] = w - adam.step_size * (m / denom);
}

// sgd_update4 / adam_update4: the same updates four elements per invocation (the arena's length a
// multiple of 4), component by component in the scalar kernels' order: the same bits.
@group(0) @binding(1) var<storage, read> sgd4_grad: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> sgd4_param: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> sgd4_buf: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn sgd_update4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= sgd.len / 4u) { return; }
    let w = sgd4_param[i];
    var g = sgd4_grad[i];
    if (sgd.weight_decay != 0.0) { g = g + sgd.weight_decay * w; }
    if (sgd.momentum != 0.0) {
        var b = g;
        if (sgd.first_step == 0u) { b = sgd.momentum * sgd4_buf[i] + sgd.one_minus_dampening * g; }
        sgd4_buf[i] = b;
        if (sgd.nesterov != 0u) { g = g + sgd.momentum * b; } else { g = b; }
    }
    sgd4_param[i] = w - sgd.lr * g;
}

@group(0) @binding(1) var<storage, read> adam4_grad: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> adam4_param: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> adam4_m: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> adam4_v: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn adam_update4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= adam.len / 4u) { return; }
    let w = adam4_param[i];
    var g = adam4_grad[i];
    if (adam.weight_decay != 0.0) { g = g + adam.weight_decay * w; }
    let m0 = adam4_m[i];
    let m = m0 + adam.one_minus_beta1 * (g - m0);
    let v = adam.beta2 * adam4_v[i] + adam.one_minus_beta2 * g * g;
    adam4_m[i] = m;
    adam4_v[i] = v;
    let denom = sqrt(v) / adam.bias_correction2_sqrt + adam.eps;
    adam4_param[i] = w - adam.step_size * (m / denom);
}
