// Elementwise activations. Backward kernels take the forward OUTPUT y (not x), so the forward input
// need not be kept: relu' = [y > 0], tanh' = 1 - y^2, sigmoid' = y (1 - y).

struct ElementwiseParams {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: ElementwiseParams;

// *_forward: x -> y
@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;

// *_backward: y, dy -> dx
@group(0) @binding(1) var<storage, read> bwd_y: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> bwd_dx: array<f32>;

@compute @workgroup_size(WG)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) { return; }
    fwd_y[i] = max(fwd_x[i], 0.0);
}

@compute @workgroup_size(WG)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) { return; }
    bwd_dx[i] = select(0.0, bwd_dy[i], bwd_y[i] > 0.0);
}

// relu_forward4 / relu_backward4: the ReLU over vec4s, for lengths that are a multiple of 4 (p.len
// counts vec4s); the same values, component by component.
@group(0) @binding(1) var<storage, read> fwd4_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> fwd4_y: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> bwd4_y: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bwd4_dy: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> bwd4_dx: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn relu_forward4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) { return; }
    fwd4_y[i] = max(fwd4_x[i], vec4(0.0));
}

@compute @workgroup_size(WG)
fn relu_backward4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) { return; }
    bwd4_dx[i] = select(vec4(0.0), bwd4_dy[i], bwd4_y[i] > vec4(0.0));
}

@compute @workgroup_size(WG)
fn tanh_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) { return; }
    // WGSL tanh may lose accuracy (or give NaN) for large |x| on some drivers; tanh saturates to ±1
    // in f32 beyond |x| = 9.01, so clamp first.
    fwd_y[i] = tanh(clamp(fwd_x[i], -10.0, 10.0));
}

@compute @workgroup_size(WG)
fn tanh_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) { return; }
    let y = bwd_y[i];
    bwd_dx[i] = bwd_dy[i] * (1.0 - y * y);
}

@compute @workgroup_size(WG)
fn sigmoid_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) { return; }
    fwd_y[i] = 1.0 / (1.0 + exp(-fwd_x[i]));
}

@compute @workgroup_size(WG)
fn sigmoid_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) { return; }
    let y = bwd_y[i];
    bwd_dx[i] = bwd_dy[i] * y * (1.0 - y);
}
