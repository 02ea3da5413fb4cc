// Shape-specialised 2-D convolution, NCHW: every size is an `override` constant set when the pipeline
// is built (src/kernels/conv.rs), so loops have known trip counts and unroll, divisions by sizes become
// multiplications, and each invocation keeps a block of outputs in registers.
// The plain kernels of conv.wgsl are the references these are tested against.

override CIN: u32 = 1u;
override H: u32 = 28u;
override W: u32 = 28u;
override COUT: u32 = 6u;
override KH: u32 = 5u;
override KW: u32 = 5u;
override SH: u32 = 1u;
override SW: u32 = 1u;
override PH: u32 = 2u;
override PW: u32 = 2u;
override OH: u32 = 28u;
override OW: u32 = 28u;
// Output channels per invocation.
override COB: u32 = 6u;
// conv2d_direct: output columns per invocation.
override OXB: u32 = 4u;
// conv2d_direct: add the bias b (otherwise b is not read).
override BIAS: bool = true;
// conv2d_direct: read w as the flipped, channel-swapped kernel of the layer, so that a stride-1
// convolution of dy with padding K-1-pad gives the layer's input gradient.
override FLIP: bool = false;

// Registers per invocation: COB * OXB (direct) or COB * KW (weight grad) accumulators, and one input
// row segment of (OXB - 1) * SW + KW values; the launcher keeps the blocks within these.
const MAX_ACC: u32 = 32u;
const MAX_ROW: u32 = 32u;

struct FastConvParams {
    n: u32,
    total: u32,          // invocations of this dispatch
    rows_per_chunk: u32, // conv2d_weight_grad: (n, oy) rows one invocation sums
    rows: u32,           // conv2d_weight_grad: n * OH
}

@group(0) @binding(0) var<uniform> q: FastConvParams;

// conv2d_direct: x, w, b -> y. Invocation i owns output row (n, oy), columns [ox0, ox0 + OXB) and
// channels [co0, co0 + COB), channel block slowest so that neighbours share weights.
@group(0) @binding(1) var<storage, read> d_x: array<f32>;
@group(0) @binding(2) var<storage, read> d_w: array<f32>;
@group(0) @binding(3) var<storage, read> d_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_y: array<f32>;

fn w_index(co: u32, ci: u32, ky: u32, kx: u32) -> u32 {
    if (FLIP) {
        return ((ci * COUT + co) * KH + (KH - 1u - ky)) * KW + (KW - 1u - kx);
    }
    return ((co * CIN + ci) * KH + ky) * KW + kx;
}

@compute @workgroup_size(WG)
fn conv2d_direct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let oxbs = (OW + OXB - 1u) / OXB;
    let oxb = i % oxbs;
    let t = i / oxbs;
    let oy = t % OH;
    let t2 = t / OH;
    let n = t2 % q.n;
    let co0 = (t2 / q.n) * COB;
    let ox0 = oxb * OXB;
    var acc: array<f32, MAX_ACC>;
    for (var c = 0u; c < COB; c++) {
        var bv = 0.0;
        if (BIAS) { bv = d_b[min(co0 + c, COUT - 1u)]; }
        for (var j = 0u; j < OXB; j++) { acc[c * OXB + j] = bv; }
    }
    let span = (OXB - 1u) * SW + KW;
    for (var ci = 0u; ci < CIN; ci++) {
        for (var ky = 0u; ky < KH; ky++) {
            let iy = i32(oy * SH + ky) - i32(PH);
            if (iy < 0 || iy >= i32(H)) { continue; }
            let row = ((n * CIN + ci) * H + u32(iy)) * W;
            var xr: array<f32, MAX_ROW>;
            for (var u = 0u; u < span; u++) {
                let ix = i32(ox0 * SW + u) - i32(PW);
                let v = d_x[row + u32(clamp(ix, 0, i32(W) - 1))];
                xr[u] = select(0.0, v, ix >= 0 && ix < i32(W));
            }
            for (var c = 0u; c < COB; c++) {
                let co = min(co0 + c, COUT - 1u);
                for (var kx = 0u; kx < KW; kx++) {
                    let wv = d_w[w_index(co, ci, ky, kx)];
                    for (var j = 0u; j < OXB; j++) {
                        acc[c * OXB + j] += wv * xr[j * SW + kx];
                    }
                }
            }
        }
    }
    for (var c = 0u; c < COB; c++) {
        let co = co0 + c;
        for (var j = 0u; j < OXB; j++) {
            let ox = ox0 + j;
            if (co < COUT && ox < OW) {
                d_y[((n * COUT + co) * OH + oy) * OW + ox] = acc[c * OXB + j];
            }
        }
    }
}

// conv2d_weight_grad: dy, x -> partial [chunks, COUT * CIN * KH * KW]. Invocation i owns (chunk,
// channel block, ci, ky) and sums its chunk of (n, oy) rows for COB output channels and every kx;
// sum_chunks adds the chunks in order.
@group(0) @binding(1) var<storage, read> g_dy: array<f32>;
@group(0) @binding(2) var<storage, read> g_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> g_dw: array<f32>;

@compute @workgroup_size(WG)
fn conv2d_weight_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let ky = i % KH;
    let t = i / KH;
    let ci = t % CIN;
    let t2 = t / CIN;
    let cobs = (COUT + COB - 1u) / COB;
    let co0 = (t2 % cobs) * COB;
    let chunk = t2 / cobs;
    let r0 = chunk * q.rows_per_chunk;
    let r1 = min(r0 + q.rows_per_chunk, q.rows);
    var acc: array<f32, MAX_ACC>;
    for (var e = 0u; e < COB * KW; e++) { acc[e] = 0.0; }
    for (var r = r0; r < r1; r++) {
        let n = r / OH;
        let oy = r % OH;
        let iy = i32(oy * SH + ky) - i32(PH);
        if (iy < 0 || iy >= i32(H)) { continue; }
        let xrow = ((n * CIN + ci) * H + u32(iy)) * W;
        for (var ox = 0u; ox < OW; ox++) {
            var xv: array<f32, MAX_ROW>;
            for (var kx = 0u; kx < KW; kx++) {
                let ix = i32(ox * SW + kx) - i32(PW);
                let v = g_x[xrow + u32(clamp(ix, 0, i32(W) - 1))];
                xv[kx] = select(0.0, v, ix >= 0 && ix < i32(W));
            }
            for (var c = 0u; c < COB; c++) {
                let co = min(co0 + c, COUT - 1u);
                let d = g_dy[((n * COUT + co) * OH + oy) * OW + ox];
                for (var kx = 0u; kx < KW; kx++) {
                    acc[c * KW + kx] += d * xv[kx];
                }
            }
        }
    }
    let w_len = COUT * CIN * KH * KW;
    for (var c = 0u; c < COB; c++) {
        let co = co0 + c;
        if (co < COUT) {
            for (var kx = 0u; kx < KW; kx++) {
                g_dw[chunk * w_len + ((co * CIN + ci) * KH + ky) * KW + kx] = acc[c * KW + kx];
            }
        }
    }
}
