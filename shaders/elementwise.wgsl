// Elementwise ops on two tensors of one shape. add_forward is the residual add of a model and the
// node autodiff emits where a value's gradients from several consumers are summed (in a fixed order).

struct AddParams {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: AddParams;
@group(0) @binding(1) var<storage, read> add_a: array<f32>;
@group(0) @binding(2) var<storage, read> add_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> add_y: array<f32>;

// Apply a ReLU to the sum (the fuse pass's add_relu rule: the end of a residual block).
override RELU: bool = false;

// add_forward: a, b -> y = a + b (or max(a + b, 0))
@compute @workgroup_size(WG)
fn add_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) { return; }
    let v = add_a[i] + add_b[i];
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
@group(0) @binding(3) var<storage, read_write> add4_y: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn add_forward4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) { return; }
    let v = add4_a[i] + add4_b[i];
    if (RELU) {
        add4_y[i] = max(v, vec4(0.0));
    } else {
        add4_y[i] = v;
    }
}
