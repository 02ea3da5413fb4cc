// Max pooling specialised to one shape with non-overlapping windows (stride = window, the input an
// exact multiple of it, as in LeNet): every size is an `override` constant, so index arithmetic needs
// no run-time division, and the backward pass runs one invocation per window that writes the whole
// window (no gather over covering windows). The plain kernels of pool.wgsl are the references.

override H: u32 = 28u;
override W: u32 = 28u;
override KH: u32 = 2u;
override KW: u32 = 2u;
// maxpool2d_tiles_backward: the pooled input is a ReLU's output; pass the gradient only where the
// window's maximum is positive (the ReLU's backward folded in).
override RELU_MASK: bool = false;

override OH: u32 = H / KH;
override OW: u32 = W / KW;

struct TileParams {
    total: u32, // windows: n * c * OH * OW
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> q: TileParams;

// maxpool2d_tiles_forward: x -> y, argmax (as maxpool2d_forward: index inside the [H, W] plane, the
// first maximum wins)
@group(0) @binding(1) var<storage, read> tf_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> tf_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> tf_arg: array<u32>;

@compute @workgroup_size(WG)
fn maxpool2d_tiles_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let ox = i % OW;
    let oy = (i / OW) % OH;
    let plane = i / (OW * OH);
    let base = plane * H * W;
    var best_at = oy * KH * W + ox * KW;
    var best = tf_x[base + best_at];
    for (var ky = 0u; ky < KH; ky++) {
        for (var kx = 0u; kx < KW; kx++) {
            let at = (oy * KH + ky) * W + ox * KW + kx;
            let v = tf_x[base + at];
            if (v > best) {
                best = v;
                best_at = at;
            }
        }
    }
    tf_y[i] = best;
    tf_arg[i] = best_at;
}

// maxpool2d_tiles_backward: dy, argmax, y -> dx, one invocation per window writing all of it (y, the
// pooled output, is read only with RELU_MASK).
@group(0) @binding(1) var<storage, read> tb_dy: array<f32>;
@group(0) @binding(2) var<storage, read> tb_arg: array<u32>;
@group(0) @binding(3) var<storage, read> tb_y: array<f32>;
@group(0) @binding(4) var<storage, read_write> tb_dx: array<f32>;

@compute @workgroup_size(WG)
fn maxpool2d_tiles_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let ox = i % OW;
    let oy = (i / OW) % OH;
    let plane = i / (OW * OH);
    let base = plane * H * W;
    var d = tb_dy[i];
    if (RELU_MASK && !(tb_y[i] > 0.0)) { d = 0.0; }
    let arg = tb_arg[i];
    for (var ky = 0u; ky < KH; ky++) {
        for (var kx = 0u; kx < KW; kx++) {
            let at = (oy * KH + ky) * W + ox * KW + kx;
            tb_dx[base + at] = select(0.0, d, at == arg);
        }
    }
}
