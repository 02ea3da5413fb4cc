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

// The in-plane index of padded cell (py, px), or 0xffffffff in the padding.
fn cell(py: u32, px: u32) -> u32 {
    if (py < p.pad_h || px < p.pad_w) { return 0xffffffffu; }
    let y = py - p.pad_h;
    let x = px - p.pad_w;
    if (y >= p.h || x >= p.w) { return 0xffffffffu; }
    return y * p.w + x;
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
    let ox = i % p.out_w;
    let oy = (i / p.out_w) % p.out_h;
    let plane = i / (p.out_w * p.out_h); // n * c + c
    let base = plane * p.h * p.w;
    var best = 0.0;
    var best_at = 0xffffffffu;
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let at = cell(oy * p.stride_h + ky, ox * p.stride_w + kx);
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
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    let at = iy * p.w + ix;
    let ry = windows_covering(iy + p.pad_h, p.kh, p.stride_h, p.out_h);
    let rx = windows_covering(ix + p.pad_w, p.kw, p.stride_w, p.out_w);
    var acc = 0.0;
    for (var oy = ry.x; oy <= ry.y; oy++) {
        for (var ox = rx.x; ox <= rx.y; ox++) {
            let o = (plane * p.out_h + oy) * p.out_w + ox;
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
    let ox = i % p.out_w;
    let oy = (i / p.out_w) % p.out_h;
    let plane = i / (p.out_w * p.out_h);
    let base = plane * p.h * p.w;
    var acc = 0.0;
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let at = cell(oy * p.stride_h + ky, ox * p.stride_w + kx);
            if (at != 0xffffffffu) { acc += af_x[base + at]; }
        }
    }
    af_y[i] = acc / f32(p.kh * p.kw);
}

// avgpool2d_backward: dy -> dx
@group(0) @binding(1) var<storage, read> ab_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> ab_dx: array<f32>;

@compute @workgroup_size(WG)
fn avgpool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    let ry = windows_covering(iy + p.pad_h, p.kh, p.stride_h, p.out_h);
    let rx = windows_covering(ix + p.pad_w, p.kw, p.stride_w, p.out_w);
    var acc = 0.0;
    for (var oy = ry.x; oy <= ry.y; oy++) {
        for (var ox = rx.x; ox <= rx.y; ox++) {
            acc += ab_dy[(plane * p.out_h + oy) * p.out_w + ox];
        }
    }
    ab_dx[i] = acc / f32(p.kh * p.kw);
}
