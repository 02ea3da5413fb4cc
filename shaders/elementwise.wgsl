// Elementwise ops on tensors of one shape. add_forward is the residual add of a model and the node
// autodiff emits where a value's gradients from several consumers are summed (in a fixed order): up
// to four terms in one pass, ((a + b) + c) + d, the sums a chain of two-term adds would make.

struct AddParams {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: AddParams;
@group(0) @binding(1) var<storage, read> add_a: array<f32>;
@group(0) @binding(2) var<storage, read> add_b: array<f32>;
@group(0) @binding(3) var<storage, read> add_c: array<f32>;
@group(0) @binding(4) var<storage, read> add_d: array<f32>;
@group(0) @binding(5) var<storage, read_write> add_y: array<f32>;

// Apply a ReLU to the sum (the fuse pass's add_relu rule: the end of a residual block).
override RELU: bool = false;
// The terms: 2, 3 or 4 (c and d are read only when there are that many; otherwise bound to a).
override TERMS: u32 = 2u;

// add_forward: a, b -> y = a + b (or max(a + b, 0))
@compute @workgroup_size(WG)
fn add_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) { return; }
    var v = add_a[i] + add_b[i];
    if (TERMS > 2u) { v += add_c[i]; }
    if (TERMS > 3u) { v += add_d[i]; }
    if (RELU) {
        add_y[i] = max(v, 0.0);
    } else {
        add_y[i] = v;
    }
}

// add_forward4: add_forward over vec4s, for lengths that are a multiple of 4 (p.len counts vec4s); the
// same sums.
@group(0) @binding(1) var<storage, read> add4_a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> add4_b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> add4_c: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> add4_d: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> add4_y: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn add_forward4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) { return; }
    var v = add4_a[i] + add4_b[i];
    if (TERMS > 2u) { v += add4_c[i]; }
    if (TERMS > 3u) { v += add4_d[i]; }
    if (RELU) {
        add4_y[i] = max(v, vec4(0.0));
    } else {
        add4_y[i] = v;
    }
}
