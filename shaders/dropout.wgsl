// Inverted dropout: y = x * keep / (1 - p), where keep comes from a counter-based hash of (seed, step,
// layer salt, element): nothing is uploaded per step but the [seed, step] pair the trainer writes with
// its other per-step scalars, reruns are bit-identical, and the backward recomputes the same mask.

struct DropoutParams {
    len: u32,
    threshold: u32, // an element is kept when its hash >= threshold = p * 2^32
    scale: f32,     // 1 / (1 - p)
    salt: u32,      // the layer's index: layers draw different masks
}

@group(0) @binding(0) var<uniform> p: DropoutParams;

// dropout_forward: x, step -> y
@group(0) @binding(1) var<storage, read> df_x: array<f32>;
@group(0) @binding(2) var<storage, read> df_step: array<u32>; // [seed, step]
@group(0) @binding(3) var<storage, read_write> df_y: array<f32>;

// dropout_backward: dy, step -> dx
@group(0) @binding(1) var<storage, read> db_dy: array<f32>;
@group(0) @binding(2) var<storage, read> db_step: array<u32>;
@group(0) @binding(3) var<storage, read_write> db_dx: array<f32>;

// The scale element i is multiplied by: 0 (dropped) or 1 / (1 - p).
fn factor(seed: u32, step: u32, i: u32) -> f32 {
    let h = mix32(i ^ mix32(step ^ mix32(seed ^ mix32(p.salt))));
    return select(0.0, p.scale, h >= p.threshold);
}

@compute @workgroup_size(WG)
fn dropout_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) { return; }
    df_y[i] = df_x[i] * factor(df_step[0], df_step[1], i);
}

@compute @workgroup_size(WG)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) { return; }
    db_dx[i] = db_dy[i] * factor(db_step[0], db_step[1], i);
}
