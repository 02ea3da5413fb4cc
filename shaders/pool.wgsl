// 2-D pooling, NCHW: max (forward records the argmax its backward gathers by) and average (divisor
// kh*kw). x [n, c, h, w] -> y [n, c, out_h, out_w]. Window coordinates are in the padded input: padding
// cells never win a max and count as zeros in an average (PyTorch's count_include_pad=True).

struct PoolParams {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    out_h: u32,
    out_w: u32,
    total: u32, // elements this dispatch writes
    pad_h: u32,
    pad_w: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// The geometry as constants set per pipeline (the struct's copies are for reading the params): the
// divisions and remainders by them become multiplications, and the window loops unroll (a division by
// a value known only at run time is eight scalar divisions per SIMD step on a software adapter).
override H: u32 = 1u;
override W: u32 = 1u;
override KH: u32 = 1u;
override KW: u32 = 1u;
override SH: u32 = 1u;
override SW: u32 = 1u;
override OH: u32 = 1u;
override OW: u32 = 1u;
override PH: u32 = 0u;
override PW: u32 = 0u;

// The in-plane index of padded cell (py, px), or 0xffffffff in the padding.
fn cell(py: u32, px: u32) -> u32 {
    if (py < PH || px < PW) { return 0xffffffffu; }
    let y = py - PH;
    let x = px - PW;
    if (y >= H || x >= W) { return 0xffffffffu; }
    return y * W + x;
}

@group(0) @binding(0) var<uniform> p: PoolParams;

// maxpool2d_forward: x -> y, argmax (index of the max inside its [h, w] plane; the first maximum wins)
@group(0) @binding(1) var<storage, read> mf_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> mf_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> mf_arg: array<u32>;

@compute @workgroup_size(WG)
fn maxpool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let ox = i % OW;
    let oy = (i / OW) % OH;
    let plane = i / (OW * OH); // n * c + c
    let base = plane * H * W;
    var best = 0.0;
    var best_at = 0xffffffffu;
    for (var ky = 0u; ky < KH; ky++) {
        for (var kx = 0u; kx < KW; kx++) {
            let at = cell(oy * SH + ky, ox * SW + kx);
            if (at == 0xffffffffu) { continue; }
            let v = mf_x[base + at];
            if (best_at == 0xffffffffu || v > best) {
                best = v;
                best_at = at;
            }
        }
    }
    mf_y[i] = best;
    mf_arg[i] = best_at;
}

// maxpool2d_backward: dy, argmax -> dx (one thread per input element; sums the windows whose argmax it is)
@group(0) @binding(1) var<storage, read> mb_dy: array<f32>;
@group(0) @binding(2) var<storage, read> mb_arg: array<u32>;
@group(0) @binding(3) var<storage, read_write> mb_dx: array<f32>;

// Range of output rows (or columns) whose window covers input row `i`: [lo, hi], empty when lo > hi.
fn windows_covering(i: u32, k: u32, stride: u32, out: u32) -> vec2<u32> {
    var lo = 0u;
    if (i >= k) { lo = (i - k) / stride + 1u; }
    let hi = min(i / stride, out - 1u);
    return vec2<u32>(lo, hi);
}

@compute @workgroup_size(WG)
fn maxpool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let ix = i % W;
    let iy = (i / W) % H;
    let plane = i / (W * H);
    let at = iy * W + ix;
    let ry = windows_covering(iy + PH, KH, SH, OH);
    let rx = windows_covering(ix + PW, KW, SW, OW);
    var acc = 0.0;
    for (var oy = ry.x; oy <= ry.y; oy++) {
        for (var ox = rx.x; ox <= rx.y; ox++) {
            let o = (plane * OH + oy) * OW + ox;
            if (mb_arg[o] == at) { acc += mb_dy[o]; }
        }
    }
    mb_dx[i] = acc;
}

// avgpool2d_forward: x -> y
@group(0) @binding(1) var<storage, read> af_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> af_y: array<f32>;

@compute @workgroup_size(WG)
fn avgpool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let ox = i % OW;
    let oy = (i / OW) % OH;
    let plane = i / (OW * OH);
    let base = plane * H * W;
    var acc = 0.0;
    for (var ky = 0u; ky < KH; ky++) {
        for (var kx = 0u; kx < KW; kx++) {
            let at = cell(oy * SH + ky, ox * SW + kx);
            if (at != 0xffffffffu) { acc += af_x[base + at]; }
        }
    }
    af_y[i] = acc / f32(KH * KW);
}

// avgpool2d_backward: dy -> dx
@group(0) @binding(1) var<storage, read> ab_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> ab_dx: array<f32>;

@compute @workgroup_size(WG)
fn avgpool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let ix = i % W;
    let iy = (i / W) % H;
    let plane = i / (W * H);
    var acc = 0.0;
    if (KH == SH && KW == SW && PH == 0u && PW == 0u) {
        // Windows that tile the input (a 2x2 stride-2 pool, a global one): the one window covering
        // the element, or none past the last whole window; the loop below would add the same term.
        let oy = iy / KH;
        let ox = ix / KW;
        if (oy < OH && ox < OW) { acc += ab_dy[(plane * OH + oy) * OW + ox]; }
    } else {
        let ry = windows_covering(iy + PH, KH, SH, OH);
        let rx = windows_covering(ix + PW, KW, SW, OW);
        for (var oy = ry.x; oy <= ry.y; oy++) {
            for (var ox = rx.x; ox <= rx.y; ox++) {
                acc += ab_dy[(plane * OH + oy) * OW + ox];
            }
        }
    }
    ab_dx[i] = acc / f32(KH * KW);
}
