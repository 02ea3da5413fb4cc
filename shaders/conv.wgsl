// 2-D convolution, NCHW, zero padding, any stride: forward and the three backward gathers.
// x [n, c_in, h, w], w [c_out, c_in, kh, kw], b [c_out], y [n, c_out, out_h, out_w].
// Every backward is a gather: one thread owns one output element and loops over its contributors.

struct ConvParams {
    n: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    out_h: u32,
    out_w: u32,
    total: u32,          // elements this dispatch writes
    rows_per_chunk: u32, // split reductions: (n, oy) rows one invocation sums
    chunks: u32,         // split reductions: number of partial results per element
}

@group(0) @binding(0) var<uniform> p: ConvParams;

// conv2d_forward: x, w, b -> y
@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_w: array<f32>;
@group(0) @binding(3) var<storage, read> fwd_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(WG)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let ox = i % p.out_w;
    let oy = (i / p.out_w) % p.out_h;
    let co = (i / (p.out_w * p.out_h)) % p.c_out;
    let n = i / (p.out_w * p.out_h * p.c_out);
    var acc = fwd_b[co];
    for (var ci = 0u; ci < p.c_in; ci++) {
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = i32(oy * p.stride_h + ky) - i32(p.pad_h);
            if (iy < 0 || iy >= i32(p.h)) { continue; }
            let x_row = ((n * p.c_in + ci) * p.h + u32(iy)) * p.w;
            let w_row = ((co * p.c_in + ci) * p.kh + ky) * p.kw;
            for (var kx = 0u; kx < p.kw; kx++) {
                let ix = i32(ox * p.stride_w + kx) - i32(p.pad_w);
                if (ix < 0 || ix >= i32(p.w)) { continue; }
                acc += fwd_x[x_row + u32(ix)] * fwd_w[w_row + kx];
            }
        }
    }
    fwd_y[i] = acc;
}

// conv2d_backward_input: dy, w -> dx (one thread per input element)
@group(0) @binding(1) var<storage, read> bi_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bi_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> bi_dx: array<f32>;

// The kernel taps k in [0, size) that map input coordinate `i` (padded: t = i + pad) to an output
// coordinate o = (t - k) / stride in [0, out): k ≡ t (mod stride). Returns (first k, last k + 1); the
// caller steps by stride. Empty when first >= end.
fn taps_reaching(t: u32, k: u32, stride: u32, out: u32) -> vec2<u32> {
    var lo = 0u;
    let reach = (out - 1u) * stride;
    if (t > reach) { lo = t - reach; }
    lo += (t - min(lo, t)) % stride; // round up to the residue of t; when lo > t the range is empty
    let end = min(k, t + 1u);
    return vec2<u32>(lo, end);
}

@compute @workgroup_size(WG)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let ci = (i / (p.w * p.h)) % p.c_in;
    let n = i / (p.w * p.h * p.c_in);
    // Only the taps that reach an output: no per-tap stride or bounds test.
    let ty = iy + p.pad_h;
    let tx = ix + p.pad_w;
    let ry = taps_reaching(ty, p.kh, p.stride_h, p.out_h);
    let rx = taps_reaching(tx, p.kw, p.stride_w, p.out_w);
    var acc = 0.0;
    for (var co = 0u; co < p.c_out; co++) {
        let dy_plane = (n * p.c_out + co) * p.out_h;
        let w_plane = (co * p.c_in + ci) * p.kh;
        for (var ky = ry.x; ky < ry.y; ky += p.stride_h) {
            let dy_row = (dy_plane + (ty - ky) / p.stride_h) * p.out_w;
            let w_row = (w_plane + ky) * p.kw;
            for (var kx = rx.x; kx < rx.y; kx += p.stride_w) {
                acc += bi_dy[dy_row + (tx - kx) / p.stride_w] * bi_w[w_row + kx];
            }
        }
    }
    bi_dx[i] = acc;
}

// conv2d_backward_weight: dy, x -> dw, as a split reduction over the (n, oy) rows: invocation i sums
// chunk i / w_len of the rows for weight i % w_len and writes partial [chunk, w_len]; with one chunk
// that is dw itself, otherwise sum_chunks adds the chunks in order.
@group(0) @binding(1) var<storage, read> bw_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bw_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> bw_dw: array<f32>;

@compute @workgroup_size(WG)
fn conv2d_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let w_len = p.c_out * p.c_in * p.kh * p.kw;
    let e = i % w_len;
    let chunk = i / w_len;
    let kx = e % p.kw;
    let ky = (e / p.kw) % p.kh;
    let ci = (e / (p.kw * p.kh)) % p.c_in;
    let co = e / (p.kw * p.kh * p.c_in);
    let r0 = chunk * p.rows_per_chunk;
    let r1 = min(r0 + p.rows_per_chunk, p.n * p.out_h);
    var acc = 0.0;
    for (var r = r0; r < r1; r++) {
        let n = r / p.out_h;
        let oy = r % p.out_h;
        let iy = i32(oy * p.stride_h + ky) - i32(p.pad_h);
        if (iy < 0 || iy >= i32(p.h)) { continue; }
        let dy_row = ((n * p.c_out + co) * p.out_h + oy) * p.out_w;
        let x_row = ((n * p.c_in + ci) * p.h + u32(iy)) * p.w;
        for (var ox = 0u; ox < p.out_w; ox++) {
            let ix = i32(ox * p.stride_w + kx) - i32(p.pad_w);
            if (ix < 0 || ix >= i32(p.w)) { continue; }
            acc += bw_dy[dy_row + ox] * bw_x[x_row + u32(ix)];
        }
    }
    bw_dw[i] = acc;
}

// conv2d_backward_bias: dy -> db, split over the (n, oy) rows like conv2d_backward_weight.
@group(0) @binding(1) var<storage, read> bb_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> bb_db: array<f32>;

// The (n, oy) rows [x, y) that invocation i of the bias gradients sums (its chunk; both kernels).
fn bias_rows(i: u32) -> vec2<u32> {
    let r0 = (i / p.c_out) * p.rows_per_chunk;
    return vec2<u32>(r0, min(r0 + p.rows_per_chunk, p.n * p.out_h));
}

@compute @workgroup_size(WG)
fn conv2d_backward_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let co = i % p.c_out;
    let bounds = bias_rows(i);
    var acc = 0.0;
    for (var r = bounds.x; r < bounds.y; r++) {
        let n = r / p.out_h;
        let oy = r % p.out_h;
        let row = ((n * p.c_out + co) * p.out_h + oy) * p.out_w;
        for (var ox = 0u; ox < p.out_w; ox++) {
            acc += bb_dy[row + ox];
        }
    }
    bb_db[i] = acc;
}

// conv2d_backward_bias4: conv2d_backward_bias with dy read four floats at a time (dy's length a
// multiple of 4). An invocation's rows of one image are one contiguous run of its plane; the run is
// summed in the same order, element by element, as the scalar kernel: its first elements up to a
// multiple of 4 one at a time, then whole vec4s (their components in order), then the rest.
@group(0) @binding(1) var<storage, read> bb4_dy: array<vec4<f32>>;

fn bb4_at(j: u32) -> f32 {
    return bb4_dy[j >> 2u][j & 3u];
}

@compute @workgroup_size(WG)
fn conv2d_backward_bias4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let co = i % p.c_out;
    let bounds = bias_rows(i);
    let r1 = bounds.y;
    var acc = 0.0;
    var r = bounds.x;
    while (r < r1) {
        let n = r / p.out_h;
        let oy = r % p.out_h;
        let rows = min(r1 - r, p.out_h - oy); // this image's rows in the chunk: one run of its plane
        var j = ((n * p.c_out + co) * p.out_h + oy) * p.out_w;
        let end = j + rows * p.out_w;
        for (; j < end && (j & 3u) != 0u; j++) {
            acc += bb4_at(j);
        }
        for (; j + 4u <= end; j += 4u) {
            let v = bb4_dy[j >> 2u];
            acc += v.x;
            acc += v.y;
            acc += v.z;
            acc += v.w;
        }
        for (; j < end; j++) {
            acc += bb4_at(j);
        }
        r += rows;
    }
    bb_db[i] = acc;
}

// conv2d_tiled: the forward as an implicit matrix product through workgroup memory, for hardware
// adapters: y[co, q] = b[co] + Σ_kk w[co, kk] · x̂[kk, q] over kk = (ci, ky, kx) and the output
// pixels q = (image, oy, ox); x̂ (im2col) is gathered from x while a tile is staged, never stored.
// A workgroup of 64 computes 16 output channels × 64 pixels: per step it stages w[16, 16] and
// x̂[16, 64] in workgroup memory, then invocation (tr, tc) = (t / 16, t % 16) accumulates channels
// 4·tr.. and pixels 4·tc.. as four vec4. `p.total` is the number of tiles; one workgroup per tile.
// With FLIP it is the stride-1 input gradient: the geometry seen by the kernel is the transposed one
// (dy is its input, dx its output, padding k - 1 - pad) and tap (co, ky, kx) of input channel ci
// reads the forward weight w[co, ci, kh-1-ky, kw-1-kx]; BIAS off (b is not read).
override RELU: bool = false;
override FLIP: bool = false;
override BIAS: bool = true;

const CT_ROWS: u32 = 16u;
const CT_COLS: u32 = 64u;
const CT_K: u32 = 16u;

var<workgroup> ct_w: array<vec4<f32>, 64>;  // [kk][co / 4]
var<workgroup> ct_x: array<vec4<f32>, 256>; // [kk][q / 4]

// One staged step of both tiled kernels: acc[r] += ct_w[kk][4·tr + r] · ct_x[kk][4·tc..] over the 16
// values of kk, in order.
fn ct_accumulate(acc: mat4x4<f32>, tr: u32, tc: u32) -> mat4x4<f32> {
    var s = acc;
    for (var kk = 0u; kk < CT_K; kk++) {
        let a = ct_w[kk * 4u + tr];
        let b = ct_x[kk * 16u + tc];
        s += mat4x4<f32>(a.x * b, a.y * b, a.z * b, a.w * b);
    }
    return s;
}

// Where x̂[kk, q] (the input value under tap kk of output pixel q) lies in x, or -1 where it is zero:
// in the padding, past the edges, or past the taps or pixels. Shared by the forward's gather
// (`im2col`, reading fwd_x) and the weight gradient's (`im2col_wg`, reading bw_x).
fn im2col_at(kk: u32, q: u32, taps: u32, pixels: u32) -> i32 {
    if (kk >= p.c_in * taps || q >= p.n * pixels) { return -1; }
    let ci = kk / taps;
    let ky = (kk % taps) / p.kw;
    let kx = kk % p.kw;
    let img = q / pixels;
    let oy = (q % pixels) / p.out_w;
    let ox = q % p.out_w;
    let iy = i32(oy * p.stride_h + ky) - i32(p.pad_h);
    let ix = i32(ox * p.stride_w + kx) - i32(p.pad_w);
    if (iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) { return -1; }
    return i32(((img * p.c_in + ci) * p.h + u32(iy)) * p.w + u32(ix));
}

// x̂[kk, q] of the forward's input, zero in the padding or past the edges.
fn im2col(kk: u32, q: u32, taps: u32, pixels: u32) -> f32 {
    let at = im2col_at(kk, q, taps, pixels);
    if (at < 0) { return 0.0; }
    return fwd_x[u32(at)];
}

fn store_pixel(co: u32, q: u32, pixels: u32, v: f32) {
    if (co >= p.c_out || q >= p.n * pixels) { return; }
    var out = v;
    if (RELU) { out = max(out, 0.0); }
    fwd_y[((q / pixels) * p.c_out + co) * pixels + q % pixels] = out;
}

fn store_channel(co: u32, q0: u32, pixels: u32, v: vec4<f32>) {
    store_pixel(co, q0, pixels, v.x);
    store_pixel(co, q0 + 1u, pixels, v.y);
    store_pixel(co, q0 + 2u, pixels, v.z);
    store_pixel(co, q0 + 3u, pixels, v.w);
}

@compute @workgroup_size(WG_FIXED)
fn conv2d_tiled(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= p.total) { return; }
    let taps = p.kh * p.kw;
    let depth = p.c_in * taps;
    let pixels = p.out_h * p.out_w;
    let tiles_q = (p.n * pixels + CT_COLS - 1u) / CT_COLS;
    let co0 = (tile / tiles_q) * CT_ROWS;
    let q0 = (tile % tiles_q) * CT_COLS;
    let tr = t / 16u;
    let tc = t % 16u;
    let last = p.c_out - 1u;
    var acc = mat4x4<f32>(); // column r: output channel co0 + 4·tr + r at 4 pixels
    if (BIAS) {
        for (var r = 0u; r < 4u; r++) { acc[r] = vec4<f32>(fwd_b[min(co0 + tr * 4u + r, last)]); }
    }
    for (var k0 = 0u; k0 < depth; k0 += CT_K) {
        // w: 256 values, 4 per invocation; consecutive invocations read consecutive taps of a channel.
        for (var e = 0u; e < 4u; e++) {
            let idx = t + e * WG_FIXED;
            let kk = idx % CT_K;
            let r = idx / CT_K;
            var v = 0.0;
            if (co0 + r < p.c_out && k0 + kk < depth) {
                if (FLIP) {
                    let tap = (k0 + kk) % taps;
                    v = fwd_w[((k0 + kk) / taps * p.c_out + co0 + r) * taps + taps - 1u - tap];
                } else {
                    v = fwd_w[(co0 + r) * depth + k0 + kk];
                }
            }
            ct_w[kk * 4u + r / 4u][r % 4u] = v;
        }
        // x̂: 1,024 values, 16 per invocation; consecutive invocations gather consecutive pixels.
        for (var e = 0u; e < 16u; e++) {
            let idx = t + e * WG_FIXED;
            let col = idx % CT_COLS;
            let kk = idx / CT_COLS;
            ct_x[kk * 16u + col / 4u][col % 4u] = im2col(k0 + kk, q0 + col, taps, pixels);
        }
        workgroupBarrier();
        acc = ct_accumulate(acc, tr, tc);
        workgroupBarrier();
    }
    let co = co0 + tr * 4u;
    let q = q0 + tc * 4u;
    store_channel(co, q, pixels, acc[0]);
    store_channel(co + 1u, q, pixels, acc[1]);
    store_channel(co + 2u, q, pixels, acc[2]);
    store_channel(co + 3u, q, pixels, acc[3]);
}

// conv2d_tiled_weight_grad: dw for hardware adapters, the same tiling over the transposed product
// dw[co, kk] = Σ_q dy[co, q] · x̂[kk, q]: a workgroup owns 16 output channels × 64 taps and one chunk
// of `p.rows_per_chunk` output pixels (grid layer = chunk); per step it stages dy[16, 16 pixels] and
// x̂[16 pixels, 64 taps] in workgroup memory. With one chunk it writes dw; with several it writes
// partial[chunk, co, kk], which sum_chunks adds in chunk order. `p.total` is the tiles per chunk.
fn im2col_wg(kk: u32, q: u32, taps: u32, pixels: u32) -> f32 {
    let at = im2col_at(kk, q, taps, pixels);
    if (at < 0) { return 0.0; }
    return bw_x[u32(at)];
}

fn store_grad(chunk: u32, co: u32, kk0: u32, depth: u32, v: vec4<f32>) {
    if (co >= p.c_out) { return; }
    let base = (chunk * p.c_out + co) * depth + kk0;
    if (kk0 < depth) { bw_dw[base] = v.x; }
    if (kk0 + 1u < depth) { bw_dw[base + 1u] = v.y; }
    if (kk0 + 2u < depth) { bw_dw[base + 2u] = v.z; }
    if (kk0 + 3u < depth) { bw_dw[base + 3u] = v.w; }
}

@compute @workgroup_size(WG_FIXED)
fn conv2d_tiled_weight_grad(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= p.total) { return; }
    let chunk = wid.z;
    let taps = p.kh * p.kw;
    let depth = p.c_in * taps;
    let pixels = p.out_h * p.out_w;
    let tiles_k = (depth + CT_COLS - 1u) / CT_COLS;
    let co0 = (tile / tiles_k) * CT_ROWS;
    let kk0 = (tile % tiles_k) * CT_COLS;
    let q_first = chunk * p.rows_per_chunk;
    let q_end = min(q_first + p.rows_per_chunk, p.n * pixels);
    let tr = t / 16u;
    let tc = t % 16u;
    var acc = mat4x4<f32>(); // column r: output channel co0 + 4·tr + r at 4 taps
    for (var q0 = q_first; q0 < q_end; q0 += CT_K) {
        // dy: 16 channels × 16 pixels, 4 per invocation; consecutive invocations read consecutive pixels.
        for (var e = 0u; e < 4u; e++) {
            let idx = t + e * WG_FIXED;
            let qq = idx % CT_K;
            let r = idx / CT_K;
            let q = q0 + qq;
            var v = 0.0;
            if (co0 + r < p.c_out && q < q_end) {
                v = bw_dy[((q / pixels) * p.c_out + co0 + r) * pixels + q % pixels];
            }
            ct_w[qq * 4u + r / 4u][r % 4u] = v;
        }
        // x̂: 16 pixels × 64 taps, 16 per invocation.
        for (var e = 0u; e < 16u; e++) {
            let idx = t + e * WG_FIXED;
            let col = idx % CT_COLS;
            let qq = idx / CT_COLS;
            var v = 0.0;
            if (q0 + qq < q_end) { v = im2col_wg(kk0 + col, q0 + qq, taps, pixels); }
            ct_x[qq * 16u + col / 4u][col % 4u] = v;
        }
        workgroupBarrier();
        acc = ct_accumulate(acc, tr, tc);
        workgroupBarrier();
    }
    let co = co0 + tr * 4u;
    let kk = kk0 + tc * 4u;
    store_grad(chunk, co, kk, depth, acc[0]);
    store_grad(chunk, co + 1u, kk, depth, acc[1]);
    store_grad(chunk, co + 2u, kk, depth, acc[2]);
    store_grad(chunk, co + 3u, kk, depth, acc[3]);
}
