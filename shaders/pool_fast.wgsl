// Max pooling specialised to one shape: every size is an `override` constant, so index arithmetic
// needs no run-time division and the window loops unroll. With non-overlapping windows (stride =
// window, the input an exact multiple of it, as in LeNet) the backward pass runs one invocation per
// window that writes the whole window (the tiles kernels); any other window, stride and padding (an
// inception branch's 3x3 stride 1, a ResNet stem's 3x3 stride 2) runs the window kernels, which compute
// what maxpool2d_forward / maxpool2d_backward of pool.wgsl do in the same order (same bits). Those
// plain kernels are the references.

override H: u32 = 28u;
override W: u32 = 28u;
override KH: u32 = 2u;
override KW: u32 = 2u;
// maxpool2d_tiles_backward: the pooled input is a ReLU's output; pass the gradient only where the
// window's maximum is positive (the ReLU's backward folded in).
override RELU_MASK: bool = false;

override OH: u32 = H / KH;
override OW: u32 = W / KW;
// The window kernels: strides and padding (the tiles kernels take stride = window, no padding).
override SH: u32 = KH;
override SW: u32 = KW;
override PH: u32 = 0u;
override PW: u32 = 0u;

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

// Window i: the start of its plane (x) and, inside the plane, the index of its top-left input (y);
// its row ky starts W · ky further on.
fn tile_one(i: u32) -> vec2<u32> {
    let ox = i % OW;
    let oy = (i / OW) % OH;
    let plane = i / (OW * OH);
    return vec2<u32>(plane * H * W, oy * KH * W + ox * KW);
}

@compute @workgroup_size(WG)
fn maxpool2d_tiles_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let tile = tile_one(i);
    let base = tile.x;
    var best_at = tile.y;
    var best = tf_x[base + best_at];
    for (var ky = 0u; ky < KH; ky++) {
        for (var kx = 0u; kx < KW; kx++) {
            let at = tile.y + ky * W + kx;
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

// Window i's incoming gradient, 0 where RELU_MASK and the pooled output is not positive.
fn tile_dy(i: u32) -> f32 {
    return select(0.0, tb_dy[i], !RELU_MASK || tb_y[i] > 0.0);
}

@compute @workgroup_size(WG)
fn maxpool2d_tiles_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let tile = tile_one(i);
    let d = tile_dy(i);
    let arg = tb_arg[i];
    for (var ky = 0u; ky < KH; ky++) {
        for (var kx = 0u; kx < KW; kx++) {
            let at = tile.y + ky * W + kx;
            tb_dx[tile.x + at] = select(0.0, d, at == arg);
        }
    }
}

// The tiles kernels two windows at a time (KW = 2, W a multiple of 4): invocation i owns windows 2i
// and 2i + 1 of a row, whose columns are one vec4 of each of their KH input rows. Each window
// compares (forward) and writes (backward) as the one-window kernels do: the same bits. y, argmax
// and dy are read and written as vec2s (OW = W / 2 is even, so a pair never spans two rows).
// Pair i of windows: the start of its plane (x) and, inside the plane, the index of its first window's
// top-left input (y); its row ky starts W · ky further on.
fn tile_pair(i: u32) -> vec2<u32> {
    let pairs = OW / 2u;
    let ox = (i % pairs) * 2u;
    let oy = (i / pairs) % OH;
    let plane = i / (pairs * OH);
    return vec2<u32>(plane * H * W, oy * KH * W + ox * KW);
}

@group(0) @binding(1) var<storage, read> tf4_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> tf2_y: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> tf2_arg: array<vec2<u32>>;

@compute @workgroup_size(WG)
fn maxpool2d_tiles_forward4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let pair = tile_pair(i);
    let first = pair.y;
    let v0 = tf4_x[(pair.x + first) / 4u];
    var best = vec2<f32>(v0.x, v0.z);
    var best_at = vec2<u32>(first, first + 2u);
    for (var ky = 0u; ky < KH; ky++) {
        let at = first + ky * W;
        let v = tf4_x[(pair.x + at) / 4u];
        if (v.x > best.x) { best.x = v.x; best_at.x = at; }
        if (v.y > best.x) { best.x = v.y; best_at.x = at + 1u; }
        if (v.z > best.y) { best.y = v.z; best_at.y = at + 2u; }
        if (v.w > best.y) { best.y = v.w; best_at.y = at + 3u; }
    }
    tf2_y[i] = best;
    tf2_arg[i] = best_at;
}

@group(0) @binding(1) var<storage, read> tb2_dy: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> tb2_arg: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> tb2_y: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> tb4_dx: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn maxpool2d_tiles_backward4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let pair = tile_pair(i);
    var d = tb2_dy[i];
    if (RELU_MASK) {
        let y = tb2_y[i];
        if (!(y.x > 0.0)) { d.x = 0.0; }
        if (!(y.y > 0.0)) { d.y = 0.0; }
    }
    let arg = tb2_arg[i];
    for (var ky = 0u; ky < KH; ky++) {
        let at = pair.y + ky * W;
        tb4_dx[(pair.x + at) / 4u] = vec4<f32>(
            select(0.0, d.x, at == arg.x),
            select(0.0, d.x, at + 1u == arg.x),
            select(0.0, d.y, at + 2u == arg.y),
            select(0.0, d.y, at + 3u == arg.y),
        );
    }
}

// The tiles kernels a window at a time with each input row one vec2 (KW = 2, W even but not a
// multiple of 4: inception-mini's 14-wide and LeNet's 10-wide second pools; the window's first column
// and every row start are even, so a row of the window never straddles a vec2). Each window compares
// and writes as maxpool2d_tiles_forward / _backward: the same bits.
@group(0) @binding(1) var<storage, read> tf2_x: array<vec2<f32>>;

@compute @workgroup_size(WG)
fn maxpool2d_tiles_forward2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let tile = tile_one(i);
    let base = tile.x;
    let first = tile.y;
    var best = tf2_x[(base + first) / 2u].x;
    var best_at = first;
    for (var ky = 0u; ky < KH; ky++) {
        let at = first + ky * W;
        let v = tf2_x[(base + at) / 2u];
        if (v.x > best) { best = v.x; best_at = at; }
        if (v.y > best) { best = v.y; best_at = at + 1u; }
    }
    tf_y[i] = best;
    tf_arg[i] = best_at;
}

@group(0) @binding(4) var<storage, read_write> tb2_dx: array<vec2<f32>>;

@compute @workgroup_size(WG)
fn maxpool2d_tiles_backward2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let tile = tile_one(i);
    let d = tile_dy(i);
    let arg = tb_arg[i];
    for (var ky = 0u; ky < KH; ky++) {
        let at = tile.y + ky * W;
        tb2_dx[(tile.x + at) / 2u] = vec2<f32>(select(0.0, d, at == arg), select(0.0, d, at + 1u == arg));
    }
}

// The window kernels' run: RX outputs (forward) or input elements (backward) next to each other in
// one row per invocation, so the run's input (forward) or argmax and gradient (backward) values load
// once for every window that shares them, into private arrays the unrolled loops index with
// constants. Each output or input element still compares or adds in the order the one-per-invocation
// kernel does (RX = 1): any run gives the same bits. The backward runs need SW = 1 (the launcher
// checks), so that element r of a run sees the loaded columns r..r + KW − 1.
override RX: u32 = 1u;
const MAX_RX: u32 = 8u;
const MAX_SEG: u32 = 32u; // (RX − 1) · SW + KW (forward), RX + KW − 1 (backward): checked by the launcher
const NONE: u32 = 0xffffffffu;

// maxpool2d_window_forward: x -> y, argmax, as maxpool2d_forward (padding never wins; the first
// maximum in row-major window order wins). Invocation i owns outputs ox0..ox0 + RX of row oy.
@compute @workgroup_size(WG)
fn maxpool2d_window_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let runs = (OW + RX - 1u) / RX;
    let ox0 = (i % runs) * RX;
    let oy = (i / runs) % OH;
    let plane = i / (runs * OH);
    let base = plane * H * W;
    var best: array<f32, MAX_RX>;
    var best_at: array<u32, MAX_RX>;
    for (var r = 0u; r < RX; r++) { best_at[r] = NONE; }
    for (var ky = 0u; ky < KH; ky++) {
        let py = oy * SH + ky;
        if (py < PH || py - PH >= H) { continue; }
        let row = base + (py - PH) * W;
        // The run's input columns px = ox0 · SW + c, c < (RX − 1) · SW + KW, loaded once.
        var v: array<f32, MAX_SEG>;
        for (var c = 0u; c < (RX - 1u) * SW + KW; c++) {
            let px = ox0 * SW + c;
            if (px >= PW && px - PW < W) { v[c] = tf_x[row + px - PW]; }
        }
        for (var r = 0u; r < RX; r++) {
            for (var kx = 0u; kx < KW; kx++) {
                let px = (ox0 + r) * SW + kx;
                if (px < PW || px - PW >= W) { continue; }
                let c = r * SW + kx;
                if (best_at[r] == NONE || v[c] > best[r]) {
                    best[r] = v[c];
                    best_at[r] = (py - PH) * W + (px - PW);
                }
            }
        }
    }
    for (var r = 0u; r < RX; r++) {
        if (ox0 + r < OW) {
            let o = (plane * OH + oy) * OW + ox0 + r;
            tf_y[o] = best[r];
            tf_arg[o] = best_at[r];
        }
    }
}

// maxpool2d_window_backward: dy, argmax -> dx, as maxpool2d_backward: one invocation per input
// element sums, in order of (oy, ox), the gradients of the windows whose argmax it is. A window
// covers at most ceil(K / S) rows (columns) of outputs per input row (column): constant trip counts.
@group(0) @binding(1) var<storage, read> wb_dy: array<f32>;
@group(0) @binding(2) var<storage, read> wb_arg: array<u32>;
@group(0) @binding(3) var<storage, read_write> wb_dx: array<f32>;

// The first output row (column) whose window covers padded input row (column) `i`.
fn first_covering(i: u32, k: u32, stride: u32) -> u32 {
    if (i < k) { return 0u; }
    return (i - k) / stride + 1u;
}

@compute @workgroup_size(WG)
fn maxpool2d_window_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let runs = (W + RX - 1u) / RX;
    let ix0 = (i % runs) * RX;
    let iy = (i / runs) % H;
    let plane = i / (runs * H);
    let oy0 = first_covering(iy + PH, KH, SH);
    let oy1 = min((iy + PH) / SH, OH - 1u);
    if (RX == 1u) {
        let at = iy * W + ix0;
        let ox0 = first_covering(ix0 + PW, KW, SW);
        let ox1 = min((ix0 + PW) / SW, OW - 1u);
        var acc = 0.0;
        for (var ty = 0u; ty < (KH + SH - 1u) / SH; ty++) {
            let oy = oy0 + ty;
            if (oy > oy1) { continue; }
            for (var tx = 0u; tx < (KW + SW - 1u) / SW; tx++) {
                let ox = ox0 + tx;
                if (ox > ox1) { continue; }
                let o = (plane * OH + oy) * OW + ox;
                if (wb_arg[o] == at) { acc += wb_dy[o]; }
            }
        }
        wb_dx[plane * H * W + at] = acc;
        return;
    }
    // SW = 1: element ix0 + r is covered by the windows ox = ix0 + r + PW − (KW − 1) + tx, tx < KW,
    // those inside [0, OW) (the same ones, in the same order, as above): loaded column c = r + tx.
    var acc: array<f32, MAX_RX>;
    for (var ty = 0u; ty < (KH + SH - 1u) / SH; ty++) {
        let oy = oy0 + ty;
        if (oy > oy1) { continue; }
        let row = (plane * OH + oy) * OW;
        var a: array<u32, MAX_SEG>;
        var d: array<f32, MAX_SEG>;
        for (var c = 0u; c < RX + KW - 1u; c++) {
            a[c] = NONE;
            let ox = ix0 + PW + c; // + (KW − 1) past the window's first column
            if (ox >= KW - 1u && ox - (KW - 1u) < OW) {
                a[c] = wb_arg[row + ox - (KW - 1u)];
                d[c] = wb_dy[row + ox - (KW - 1u)];
            }
        }
        for (var r = 0u; r < RX; r++) {
            let at = iy * W + ix0 + r;
            for (var tx = 0u; tx < KW; tx++) {
                if (a[r + tx] == at) { acc[r] += d[r + tx]; }
            }
        }
    }
    for (var r = 0u; r < RX; r++) {
        if (ix0 + r < W) { wb_dx[plane * H * W + iy * W + ix0 + r] = acc[r]; }
    }
}
