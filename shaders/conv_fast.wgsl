// Shape-specialised 2-D convolution, NCHW: every size is an `override` constant set when the pipeline
// is built (src/kernels/conv.rs), so loops have known trip counts and unroll, divisions by sizes become
// multiplications, and each invocation keeps a block of outputs in registers.
// The plain kernels of conv.wgsl are the references these are tested against.

// CIN, H, W, COUT, KH, KW, PH, PW, OH, OW: conv_sizes.wgsl (prefixed to this file). The strides:
override SH: u32 = 1u;
override SW: u32 = 1u;
// Output channels per invocation: at most 8 (conv2d_direct) or 4 (conv2d_weight_grad).
override COB: u32 = 6u;
// conv2d_direct: add the bias b (otherwise b is not read).
override BIAS: bool = true;
// conv2d_direct: 8 output columns per invocation (two vec4 per channel, COB <= 4) instead of 4.
override WIDE: bool = false;
// conv2d_direct: the output columns one invocation owns, at most 8 (WIDE) or 4: a row OW wide split
// into equal blocks (10 = 5 + 5, not 8 + 2). The lanes of the accumulators past COLS are neither
// computed (madd) nor stored, and the compiler drops the input loads only they would read.
override COLS: u32 = 4u;
// conv2d_direct: apply ReLU to the result (a conv followed by ReLU in one pass).
override RELU: bool = false;
// conv2d_direct: read w as the flipped, channel-swapped kernel of the layer, so that a stride-1
// convolution of dy with padding K-1-pad gives the layer's input gradient.
override FLIP: bool = false;
// conv2d_direct: read the weights through the uniform window d_wu (the same bytes as d_w) instead of
// storage: every weight index is uniform across the workgroup, and software adapters load a uniform
// buffer at such an index once for all lanes, a storage buffer lane by lane. Needs w within 64 KiB.
override UW: bool = false;
// conv2d_direct: read the weights from the uniform window in the packed layout conv2d_pack_weights
// writes (each kernel row padded to KP = 4 or 8 values, flipped there when FLIP): the component of a
// weight is then kx % 4, known once the kx loop is unrolled, instead of an index chosen at run time.
override PACKED: bool = false;
override KP: u32 = 8u;
// conv2d_direct: number the invocations batch-fastest ((oy, column block, n) instead of (n, oy,
// column block)). Neighbouring invocations then share their output row and columns, so where
// padding cuts a row's kernel rows short (ky_lo, ky_hi) the bounds agree across them, and an adapter
// that runs invocations in SIMD lanes (lavapipe) loops over the rows inside the input only, rather than
// over the union of its lanes' ranges. Each output adds the same products in the same order.
override NFAST: bool = false;
// conv2d_direct: the column blocks this dispatch computes. A convolution runs as up to three
// dispatches: 1 the first block alone and 2 the last alone, whose first column is then a constant,
// so every bounds test on the columns they read is decided when the pipeline is built; 3 the blocks
// between them, every column of which lies inside the row (the launcher checks), read with no test;
// 0 every block (one dispatch, the tests made at run time). Each output adds the same products in
// the same order whichever dispatch computes it.
override EDGE: u32 = 0u;
// conv2d_direct: read each input row's window (the columns a block's taps reach) as aligned vec4s of
// the flat input (d_x4, the same bytes as d_x) shifted into place, instead of one scalar per column.
// Software adapters load storage lane by lane, so fewer, wider loads pay: 12 columns per kernel row
// (8 outputs, 5 taps) in 5 vec4 loads instead of 12 scalars. Stride 1 and KW <= 9 (the window's
// 16 values cover 8 columns and their taps), an EDGE part of 1, 2 or 3, and an input whose length is a
// multiple of 4 (the launcher checks). The values, and so the products and the bits, are the same.
// conv2d_weight_grad_rows: read dy and the input rows as vec4s, 4 output columns at a time (below).
override VX: bool = false;
// conv2d_direct: the subgroup's lanes share the weights (SG, only in the module built with subgroups,
// conv_lanes_sg.wgsl): for each input channel and kernel row, lane l loads the block's weights
// l, l + SGS, ... (COB·KW of them, at most 8 per lane) and every lane takes each weight from the lane
// that loaded it (a shuffle with a constant lane). Every lane of a workgroup shares the channel block,
// so each weight is loaded once per subgroup rather than once per lane: software adapters load a
// uniform buffer at an index they cannot prove uniform lane by lane, and a shuffle with a constant
// lane is one vector permute there. SGS, the subgroup size, is the adapter's only one; the launcher
// sets SG only where every lane of a subgroup also shares the kernel rows it loops over (rows without
// padding, or batch-fastest invocations and a batch of whole subgroups), and every lane runs to the
// end: past the grid's end it computes the last invocation's outputs again and does not store them.
// The weights, and so the products and the bits, are the same.
// conv2d_weight_grad_k3 and _k3c2: the same for dy, where a subgroup's lanes share their chunk of
// rows (CIN, or the pairs of input channels, a multiple of SGS) and so every dy value: at each output
// column, lane l loads channels co0 + l, co0 + l + SGS, ... (at most 4 per lane), and each channel's
// value comes from the lane that loaded it.
override SG: bool = false;
override SGS: u32 = 8u;

struct FastConvParams {
    n: u32,
    total: u32,          // invocations of this dispatch
    rows_per_chunk: u32, // conv2d_weight_grad: (n, oy) rows one invocation sums
    rows: u32,           // conv2d_weight_grad: n * OH
}

@group(0) @binding(0) var<uniform> q: FastConvParams;

// conv2d_direct: x, w, b -> y. Invocation i of grid layer z owns output row (n, oy), columns
// [ox0, ox0 + 4) and channels [z·COB, z·COB + COB): the channel block comes from the workgroup id, so
// every weight load is uniform across the workgroup.
@group(0) @binding(1) var<storage, read> d_x: array<f32>;
@group(0) @binding(2) var<storage, read> d_w: array<f32>;
@group(0) @binding(3) var<storage, read> d_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_y: array<f32>;
@group(0) @binding(5) var<uniform> d_wu: array<vec4<f32>, 4096>;
@group(0) @binding(6) var<storage, read> d_x4: array<vec4<f32>>;

fn w_index(co: u32, ci: u32, ky: u32, kx: u32) -> u32 {
    if (FLIP) {
        return ((ci * COUT + co) * KH + (KH - 1u - ky)) * KW + (KW - 1u - kx);
    }
    return ((co * CIN + ci) * KH + ky) * KW + kx;
}

// Input value at row offset `row` (a row inside the image), column `ix` (may be padding: 0).
fn x_at(row: u32, ix: i32) -> f32 {
    if (EDGE == 3u) {
        return d_x[u32(i32(row) + ix)];
    }
    let v = d_x[row + u32(clamp(ix, 0, i32(W) - 1))];
    return select(0.0, v, ix >= 0 && ix < i32(W));
}

// a's components from the s-th on, then b's: four consecutive values of the pair (s < 4).
fn funnel(a: vec4<f32>, b: vec4<f32>, s: u32) -> vec4<f32> {
    let s1 = vec4<f32>(a.yzw, b.x);
    let s2 = vec4<f32>(a.zw, b.xy);
    let s3 = vec4<f32>(a.w, b.xyz);
    return select(select(select(a, s1, s == 1u), s2, s == 2u), s3, s == 3u);
}

// VX: columns [ix0, ix0 + 16) of the input row at offset `row`, from the five vec4s of the flat input
// that hold them. Columns outside the row read as 0: in an edge part (EDGE 1 or 2) ix0 is a constant
// of the pipeline, so these tests fold away; the middle part (EDGE 3) reads inside the row only.
// Loads before the buffer's start or past its end (clamped) feed only such columns, or columns past
// the window that no tap of a stored output reads.
fn x_window(row: u32, ix0: i32) -> array<f32, 16> {
    let f = i32(row) + ix0;
    // The window's offset in its first vec4: where rows start on the vec4 grid (W a multiple of 4)
    // it is ix0's, known when the pipeline is built for an edge block (and for the middle blocks
    // when COLS is a multiple of 4), so the shifts below fold away.
    var s = u32(f - (f & -4));
    if (W % 4u == 0u) { s = u32(ix0 & 3); }
    let q0 = (f - i32(s)) / 4;
    let last = i32(arrayLength(&d_x4)) - 1;
    let v0 = d_x4[u32(clamp(q0, 0, last))];
    let v1 = d_x4[u32(clamp(q0 + 1, 0, last))];
    let v2 = d_x4[u32(clamp(q0 + 2, 0, last))];
    let v3 = d_x4[u32(clamp(q0 + 3, 0, last))];
    let v4 = d_x4[u32(clamp(q0 + 4, 0, last))];
    let w0 = funnel(v0, v1, s);
    let w1 = funnel(v1, v2, s);
    let w2 = funnel(v2, v3, s);
    let w3 = funnel(v3, v4, s);
    var e = array<f32, 16>(w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w,
                           w2.x, w2.y, w2.z, w2.w, w3.x, w3.y, w3.z, w3.w);
    if (EDGE != 3u) {
        for (var j = 0; j < 16; j++) {
            let c = ix0 + j;
            e[j] = select(0.0, e[j], c >= 0 && c < i32(W));
        }
    }
    return e;
}

// Weight of channel-block member c (clamped to the last channel; its result is not stored).
fn w_at(co0: u32, c: u32, ci: u32, ky: u32, kx: u32) -> f32 {
    if (PACKED) {
        let p = ((min(co0 + c, COUT - 1u) * CIN + ci) * KH + ky) * KP + kx;
        return d_wu[p / 4u][kx % 4u];
    }
    let i = w_index(min(co0 + c, COUT - 1u), ci, ky, kx);
    if (UW) {
        return d_wu[i / 4u][i % 4u];
    }
    return d_w[i];
}

// Weight of channel-block member c for tap (ky, kx): SG, from the lane that loaded it into `wl`
// (constant lane and slot once the loops over c and kx unroll); otherwise w_at.
fn w_lane(wl: array<f32, 8>, co0: u32, c: u32, ci: u32, ky: u32, kx: u32) -> f32 {
    if (SG) {
        let t = c * KW + kx;
        return lane_shuffle(wl[t / SGS], t % SGS);
    }
    return w_at(co0, c, ci, ky, kx);
}

@compute @workgroup_size(WG)
fn conv2d_direct(ids: LaneIds) {
    let wid = ids.wid;
    let past = flat_index(ids.gid, ids.nwg) >= q.total;
    if (past && !SG) { return; }
    let i = min(flat_index(ids.gid, ids.nwg), q.total - 1u);
    // Eight named vec4 accumulators (no private array indexed by a loop counter, which a compiler that
    // does not unroll would keep in memory): one vec4 of 4 columns for each of up to 8 channels, or
    // (WIDE) two vec4 of 8 columns for each of up to 4 channels: a<2c> and a<2c+1>.
    let cols = COLS;
    let oxbs = (OW + cols - 1u) / cols;
    // The blocks of this dispatch (EDGE): all of them, one, or those between the first and last.
    var nb = oxbs;
    if (EDGE == 1u || EDGE == 2u) { nb = 1u; }
    if (EDGE == 3u) { nb = oxbs - 2u; }
    var oxb = i % nb;
    var oy = (i / nb) % OH;
    var n = i / (nb * OH);
    if (NFAST) {
        n = i % q.n;
        oxb = (i / q.n) % nb;
        oy = i / (q.n * nb);
    }
    if (EDGE == 1u) { oxb = 0u; }
    if (EDGE == 2u) { oxb = oxbs - 1u; }
    if (EDGE == 3u) { oxb += 1u; }
    let co0 = wid.z * COB;
    let ox0 = oxb * cols;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    if (BIAS && WIDE) {
        a0 = vec4<f32>(d_b[min(co0, COUT - 1u)]);
        a1 = a0;
        a2 = vec4<f32>(d_b[min(co0 + 1u, COUT - 1u)]);
        a3 = a2;
        a4 = vec4<f32>(d_b[min(co0 + 2u, COUT - 1u)]);
        a5 = a4;
        a6 = vec4<f32>(d_b[min(co0 + 3u, COUT - 1u)]);
        a7 = a6;
    } else if (BIAS) {
        a0 = vec4<f32>(d_b[min(co0, COUT - 1u)]);
        a1 = vec4<f32>(d_b[min(co0 + 1u, COUT - 1u)]);
        a2 = vec4<f32>(d_b[min(co0 + 2u, COUT - 1u)]);
        a3 = vec4<f32>(d_b[min(co0 + 3u, COUT - 1u)]);
        a4 = vec4<f32>(d_b[min(co0 + 4u, COUT - 1u)]);
        a5 = vec4<f32>(d_b[min(co0 + 5u, COUT - 1u)]);
        a6 = vec4<f32>(d_b[min(co0 + 6u, COUT - 1u)]);
        a7 = vec4<f32>(d_b[min(co0 + 7u, COUT - 1u)]);
    }
    // The lanes of the second vec4 of a WIDE block that hold columns.
    let hi = max(COLS, 4u) - 4u;
    let ix0 = i32(ox0 * SW) - i32(PW);
    // Only the kernel rows that land inside the input: [ky_lo, ky_hi).
    let top = i32(oy * SH) - i32(PH);
    // (Without row padding, and with every row's window inside the input, the bounds are the kernel's
    // own: constants, so the loop over rows has a known trip count.)
    let rows_inside = PH == 0u && (OH - 1u) * SH + KH <= H;
    let ky_lo = select(u32(max(0, -top)), 0u, rows_inside);
    let ky_hi = select(u32(clamp(i32(H) - top, 0, i32(KH))), KH, rows_inside);
    for (var ci = 0u; ci < CIN; ci++) {
        for (var ky = ky_lo; ky < ky_hi; ky++) {
            let iy = top + i32(ky);
            let row = ((n * CIN + ci) * H + u32(iy)) * W;
            let s = i32(SW);
            // VX: the row's window, from vec4 loads (otherwise not read).
            var e: array<f32, 16>;
            if (VX) { e = x_window(row, ix0); }
            // SG: this lane's share of the block's weights for (ci, ky).
            var wl = array<f32, 8>();
            if (SG) {
                for (var r = 0u; r < (COB * KW + SGS - 1u) / SGS; r++) {
                    let t = min(r * SGS + ids.lane, COB * KW - 1u);
                    wl[r] = w_at(co0, t / KW, ci, ky, t % KW);
                }
            }
            if (WIDE) {
                // Columns ix0 + j·SW + kx for j = 0..7 in xv (0..3) and xw (4..7).
                var xv = vec4<f32>(0.0);
                var xw = vec4<f32>(0.0);
                if (!VX) {
                    xv = vec4<f32>(x_at(row, ix0 - 1), x_at(row, ix0), x_at(row, ix0 + 1), x_at(row, ix0 + 2));
                    xw = vec4<f32>(x_at(row, ix0 + 3), x_at(row, ix0 + 4), x_at(row, ix0 + 5), x_at(row, ix0 + 6));
                }
                for (var kx = 0u; kx < KW; kx++) {
                    let c0 = ix0 + i32(kx);
                    if (VX) {
                        xv = vec4<f32>(e[kx], e[kx + 1u], e[kx + 2u], e[kx + 3u]);
                        xw = vec4<f32>(e[kx + 4u], e[kx + 5u], e[kx + 6u], e[kx + 7u]);
                    } else if (SW == 1u) {
                        xv = vec4<f32>(xv.yzw, xw.x);
                        xw = vec4<f32>(xw.yzw, x_at(row, c0 + 7));
                    } else {
                        xv = vec4<f32>(x_at(row, c0), x_at(row, c0 + s), x_at(row, c0 + 2 * s), x_at(row, c0 + 3 * s));
                        xw = vec4<f32>(x_at(row, c0 + 4 * s), x_at(row, c0 + 5 * s), x_at(row, c0 + 6 * s),
                                       x_at(row, c0 + 7 * s));
                    }
                    let w0 = w_lane(wl, co0, 0u, ci, ky, kx);
                    a0 += w0 * xv;
                    a1 = madd(a1, w0, xw, hi);
                    if (COB > 1u) {
                        let w1 = w_lane(wl, co0, 1u, ci, ky, kx);
                        a2 += w1 * xv;
                        a3 = madd(a3, w1, xw, hi);
                    }
                    if (COB > 2u) {
                        let w2 = w_lane(wl, co0, 2u, ci, ky, kx);
                        a4 += w2 * xv;
                        a5 = madd(a5, w2, xw, hi);
                    }
                    if (COB > 3u) {
                        let w3 = w_lane(wl, co0, 3u, ci, ky, kx);
                        a6 += w3 * xv;
                        a7 = madd(a7, w3, xw, hi);
                    }
                }
                continue;
            }
            // Columns ix0 + j·SW + kx for j = 0..3; with stride 1 the window slides by one per kx.
            var xv = vec4<f32>(0.0);
            if (!VX) { xv = vec4<f32>(x_at(row, ix0 - 1), x_at(row, ix0), x_at(row, ix0 + 1), x_at(row, ix0 + 2)); }
            for (var kx = 0u; kx < KW; kx++) {
                let c0 = ix0 + i32(kx);
                if (VX) {
                    xv = vec4<f32>(e[kx], e[kx + 1u], e[kx + 2u], e[kx + 3u]);
                } else if (SW == 1u) {
                    xv = vec4<f32>(xv.yzw, x_at(row, c0 + 3));
                } else {
                    xv = vec4<f32>(x_at(row, c0), x_at(row, c0 + s), x_at(row, c0 + 2 * s), x_at(row, c0 + 3 * s));
                }
                a0 = madd(a0, w_lane(wl, co0, 0u, ci, ky, kx), xv, COLS);
                if (COB > 1u) { a1 = madd(a1, w_lane(wl, co0, 1u, ci, ky, kx), xv, COLS); }
                if (COB > 2u) { a2 = madd(a2, w_lane(wl, co0, 2u, ci, ky, kx), xv, COLS); }
                if (COB > 3u) { a3 = madd(a3, w_lane(wl, co0, 3u, ci, ky, kx), xv, COLS); }
                if (COB > 4u) { a4 = madd(a4, w_lane(wl, co0, 4u, ci, ky, kx), xv, COLS); }
                if (COB > 5u) { a5 = madd(a5, w_lane(wl, co0, 5u, ci, ky, kx), xv, COLS); }
                if (COB > 6u) { a6 = madd(a6, w_lane(wl, co0, 6u, ci, ky, kx), xv, COLS); }
                if (COB > 7u) { a7 = madd(a7, w_lane(wl, co0, 7u, ci, ky, kx), xv, COLS); }
            }
        }
    }
    if (past) { return; }
    if (WIDE) {
        store4(n, co0, oy, ox0, a0, 4u);
        store4(n, co0, oy, ox0 + 4u, a1, hi);
        if (COB > 1u) { store4(n, co0 + 1u, oy, ox0, a2, 4u); store4(n, co0 + 1u, oy, ox0 + 4u, a3, hi); }
        if (COB > 2u) { store4(n, co0 + 2u, oy, ox0, a4, 4u); store4(n, co0 + 2u, oy, ox0 + 4u, a5, hi); }
        if (COB > 3u) { store4(n, co0 + 3u, oy, ox0, a6, 4u); store4(n, co0 + 3u, oy, ox0 + 4u, a7, hi); }
        return;
    }
    store4(n, co0, oy, ox0, a0, COLS);
    if (COB > 1u) { store4(n, co0 + 1u, oy, ox0, a1, COLS); }
    if (COB > 2u) { store4(n, co0 + 2u, oy, ox0, a2, COLS); }
    if (COB > 3u) { store4(n, co0 + 3u, oy, ox0, a3, COLS); }
    if (COB > 4u) { store4(n, co0 + 4u, oy, ox0, a4, COLS); }
    if (COB > 5u) { store4(n, co0 + 5u, oy, ox0, a5, COLS); }
    if (COB > 6u) { store4(n, co0 + 6u, oy, ox0, a6, COLS); }
    if (COB > 7u) { store4(n, co0 + 7u, oy, ox0, a7, COLS); }
}

// conv2d_pack_weights: the weights conv2d_direct reads, [COUT, CIN, KH, KW] as it indexes them (the
// layer's kernel flipped and channel-swapped when FLIP) -> packed [COUT, CIN, KH, KP], each row
// padded with zeros to KP values (KP = 4 or 8, a multiple of a vec4). Run before each conv that reads
// them PACKED (the weights change every step).
@group(0) @binding(1) var<storage, read> pk_w: array<f32>;
@group(0) @binding(2) var<storage, read_write> pk_out: array<f32>;

@compute @workgroup_size(WG)
fn conv2d_pack_weights(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; } // COUT * CIN * KH * KP
    let kx = i % KP;
    let t = i / KP;
    let ky = t % KH;
    let ci = (t / KH) % CIN;
    let co = t / (KH * CIN);
    var v = 0.0;
    if (kx < KW) { v = pk_w[w_index(co, ci, ky, kx)]; }
    pk_out[i] = v;
}

// acc + w·x in the first `live` lanes (a constant once inlined): the lanes past it are not computed.
fn madd(acc: vec4<f32>, w: f32, x: vec4<f32>, live: u32) -> vec4<f32> {
    if (live >= 4u) { return acc + w * x; }
    var r = acc;
    if (live > 0u) { r.x = acc.x + w * x.x; }
    if (live > 1u) { r.y = acc.y + w * x.y; }
    if (live > 2u) { r.z = acc.z + w * x.z; }
    return r;
}

// Write the first `live` columns of `v` (a constant once inlined) that exist, for channel co when it
// exists.
fn store4(n: u32, co: u32, oy: u32, ox0: u32, acc: vec4<f32>, live: u32) {
    if (co >= COUT || ox0 >= OW || live == 0u) { return; }
    var v = acc;
    if (RELU) { v = max(v, vec4<f32>(0.0)); }
    let base = ((n * COUT + co) * OH + oy) * OW + ox0;
    d_y[base] = v.x;
    if (live > 1u && ox0 + 1u < OW) { d_y[base + 1u] = v.y; }
    if (live > 2u && ox0 + 2u < OW) { d_y[base + 2u] = v.z; }
    if (live > 3u && ox0 + 3u < OW) { d_y[base + 3u] = v.w; }
}

// conv2d_weight_grad: dy, x -> partial [chunks, COUT * CIN * KH * KW]. Invocation i of grid layer z
// owns (chunk, ci, ky) for channels [z·COB, z·COB + COB) and every kx: two vec4 per channel (COB <= 4,
// KW <= 8), or one vec4 and a scalar (COB <= 8, KW <= 5); it sums its chunk of (n, oy) rows, sliding a window of 8 input columns along the row.
// sum_chunks adds the chunks in order.
@group(0) @binding(1) var<storage, read> g_dy: array<f32>;
@group(0) @binding(2) var<storage, read> g_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> g_dw: array<f32>;

fn gx_at(row: u32, ix: i32) -> f32 {
    let v = g_x[row + u32(clamp(ix, 0, i32(W) - 1))];
    return select(0.0, v, ix >= 0 && ix < i32(W));
}

fn dy_at(n: u32, co: u32, oy: u32, ox: u32) -> f32 {
    return g_dy[((n * COUT + min(co, COUT - 1u)) * OH + oy) * OW + ox];
}

@compute @workgroup_size(WG)
fn conv2d_weight_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let ky = i % KH;
    let t = i / KH;
    let ci = t % CIN;
    let chunk = t / CIN;
    let co0 = wid.z * COB;
    let r0 = chunk * q.rows_per_chunk;
    let r1 = min(r0 + q.rows_per_chunk, q.rows);
    // a<c><h>: channel co0 + c, kernel columns 4h .. 4h + 3.
    var a00 = vec4<f32>(0.0);
    var a01 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0);
    var a11 = vec4<f32>(0.0);
    var a20 = vec4<f32>(0.0);
    var a21 = vec4<f32>(0.0);
    var a30 = vec4<f32>(0.0);
    var a31 = vec4<f32>(0.0);
    // KW = 5 (LeNet): tap 4 in a scalar per channel instead of a vec4 with three unused lanes.
    var e0 = 0.0;
    var e1 = 0.0;
    var e2 = 0.0;
    var e3 = 0.0;
    // Channels 4..7 (only when KW <= 5): taps 0..3 and tap 4.
    var a40 = vec4<f32>(0.0);
    var a50 = vec4<f32>(0.0);
    var a60 = vec4<f32>(0.0);
    var a70 = vec4<f32>(0.0);
    var e4 = 0.0;
    var e5 = 0.0;
    var e6 = 0.0;
    var e7 = 0.0;
    let five = KW == 5u;
    let wide = KW > 5u;
    for (var r = r0; r < r1; r++) {
        let n = r / OH;
        let oy = r % OH;
        let iy = i32(oy * SH + ky) - i32(PH);
        if (iy < 0 || iy >= i32(H)) { continue; }
        let row = ((n * CIN + ci) * H + u32(iy)) * W;
        let b = -i32(PW);
        // Input columns ox·SW - PW + kx for kx = 0..7; with stride 1 the window slides by one per ox.
        var x0 = vec4<f32>(gx_at(row, b - 1), gx_at(row, b), gx_at(row, b + 1), gx_at(row, b + 2));
        var x1 = vec4<f32>(gx_at(row, b + 3), gx_at(row, b + 4), gx_at(row, b + 5), gx_at(row, b + 6));
        for (var ox = 0u; ox < OW; ox++) {
            let c = i32(ox * SW) - i32(PW);
            if (SW == 1u && KW > 4u) {
                x0 = vec4<f32>(x0.yzw, x1.x);
                x1 = vec4<f32>(x1.yzw, gx_at(row, c + 7));
            } else if (SW == 1u) {
                x0 = vec4<f32>(x0.yzw, gx_at(row, c + 3));
            } else {
                x0 = vec4<f32>(gx_at(row, c), gx_at(row, c + 1), gx_at(row, c + 2), gx_at(row, c + 3));
                if (KW > 4u) {
                    x1 = vec4<f32>(gx_at(row, c + 4), gx_at(row, c + 5), gx_at(row, c + 6), gx_at(row, c + 7));
                }
            }
            let d0 = dy_at(n, co0, oy, ox);
            a00 = madd(a00, d0, x0, KW);
            if (five) { e0 += d0 * x1.x; }
            if (wide) { a01 += d0 * x1; }
            if (COB > 1u) {
                let d1 = dy_at(n, co0 + 1u, oy, ox);
                a10 = madd(a10, d1, x0, KW);
                if (five) { e1 += d1 * x1.x; }
                if (wide) { a11 += d1 * x1; }
            }
            if (COB > 2u) {
                let d2 = dy_at(n, co0 + 2u, oy, ox);
                a20 = madd(a20, d2, x0, KW);
                if (five) { e2 += d2 * x1.x; }
                if (wide) { a21 += d2 * x1; }
            }
            if (COB > 3u) {
                let d3 = dy_at(n, co0 + 3u, oy, ox);
                a30 = madd(a30, d3, x0, KW);
                if (five) { e3 += d3 * x1.x; }
                if (wide) { a31 += d3 * x1; }
            }
            if (COB > 4u) {
                let d4 = dy_at(n, co0 + 4u, oy, ox);
                a40 = madd(a40, d4, x0, KW);
                if (five) { e4 += d4 * x1.x; }
            }
            if (COB > 5u) {
                let d5 = dy_at(n, co0 + 5u, oy, ox);
                a50 = madd(a50, d5, x0, KW);
                if (five) { e5 += d5 * x1.x; }
            }
            if (COB > 6u) {
                let d6 = dy_at(n, co0 + 6u, oy, ox);
                a60 = madd(a60, d6, x0, KW);
                if (five) { e6 += d6 * x1.x; }
            }
            if (COB > 7u) {
                let d7 = dy_at(n, co0 + 7u, oy, ox);
                a70 = madd(a70, d7, x0, KW);
                if (five) { e7 += d7 * x1.x; }
            }
        }
    }
    if (five) {
        a01.x = e0;
        a11.x = e1;
        a21.x = e2;
        a31.x = e3;
    }
    let out = chunk * COUT * CIN * KH * KW;
    store_dw(out, co0, ci, ky, a00, a01);
    if (COB > 1u) { store_dw(out, co0 + 1u, ci, ky, a10, a11); }
    if (COB > 2u) { store_dw(out, co0 + 2u, ci, ky, a20, a21); }
    if (COB > 3u) { store_dw(out, co0 + 3u, ci, ky, a30, a31); }
    if (COB > 4u) { store_dw(out, co0 + 4u, ci, ky, a40, vec4<f32>(e4, 0.0, 0.0, 0.0)); }
    if (COB > 5u) { store_dw(out, co0 + 5u, ci, ky, a50, vec4<f32>(e5, 0.0, 0.0, 0.0)); }
    if (COB > 6u) { store_dw(out, co0 + 6u, ci, ky, a60, vec4<f32>(e6, 0.0, 0.0, 0.0)); }
    if (COB > 7u) { store_dw(out, co0 + 7u, ci, ky, a70, vec4<f32>(e7, 0.0, 0.0, 0.0)); }
}

// conv2d_weight_grad_k3: conv2d_weight_grad for 3 x 3 kernels, with the three kernel rows in one
// invocation: invocation i of grid layer z owns (chunk, ci) for channels [z·COB, z·COB + COB), COB <= 16,
// one vec3 per (channel, kernel row). Each dy value it loads serves three kernel rows instead of one,
// and each input window COB channels: with 16, 19 loads feed 144 multiply-adds (7 feed 36 with 4).
// lavapipe loads lane by lane, and that pays for the accumulators it spills: 8 and 16 channels ran
// 1.2-1.4x as fast as 4 on resnet-mini's 3x3 weight gradients.
// (A vec4 with an unused lane cost a third more time on lavapipe, which keeps each component of a
// vector in SIMD registers of its own: a quarter more multiply-adds and registers, and spills.)
// Every output adds the same products in the same order as in conv2d_weight_grad (a row outside the
// image adds nothing, a padding column adds d · 0), so the bits are the same.
// SG: this lane's share of the block's dy values at (n, oy, ox): channels co0 + lane + r·SGS.
fn dy_lanes(n: u32, co0: u32, oy: u32, ox: u32, lane: u32) -> array<f32, 4> {
    var dl = array<f32, 4>();
    if (SG) {
        for (var r = 0u; r < (COB + SGS - 1u) / SGS; r++) {
            dl[r] = dy_at(n, co0 + r * SGS + lane, oy, ox);
        }
    }
    return dl;
}

// dy of channel co0 + c at (n, oy, ox): SG, from the lane that loaded it (constant lane and slot for
// a constant c); otherwise loaded.
fn dy_pick(dl: array<f32, 4>, n: u32, co0: u32, oy: u32, ox: u32, c: u32) -> f32 {
    if (SG) {
        return lane_shuffle(dl[c / SGS], c % SGS);
    }
    return dy_at(n, co0 + c, oy, ox);
}

fn k3_row(plane: u32, iy: i32) -> u32 {
    return (plane + u32(clamp(iy, 0, i32(H) - 1))) * W;
}

fn k3_window(row: u32, c: i32) -> vec3<f32> {
    return vec3<f32>(gx_at(row, c), gx_at(row, c + 1), gx_at(row, c + 2));
}

// One channel's three kernel rows: a_k += d · x_k where row k lies inside the image (v[k]).
fn k3_add(a0: ptr<function, vec3<f32>>, a1: ptr<function, vec3<f32>>, a2: ptr<function, vec3<f32>>,
          d: f32, x0: vec3<f32>, x1: vec3<f32>, x2: vec3<f32>, v: vec3<bool>) {
    if (v.x) { *a0 += d * x0; }
    if (v.y) { *a1 += d * x1; }
    if (v.z) { *a2 += d * x2; }
}

fn k3_store(out: u32, co: u32, ci: u32, a0: vec3<f32>, a1: vec3<f32>, a2: vec3<f32>) {
    let z = vec4<f32>(0.0);
    store_dw(out, co, ci, 0u, vec4<f32>(a0, 0.0), z);
    store_dw(out, co, ci, 1u, vec4<f32>(a1, 0.0), z);
    store_dw(out, co, ci, 2u, vec4<f32>(a2, 0.0), z);
}

@compute @workgroup_size(WG)
fn conv2d_weight_grad_k3(ids: LaneIds) {
    let wid = ids.wid;
    let i = flat_index(ids.gid, ids.nwg);
    if (i >= q.total) { return; }
    let ci = i % CIN;
    let chunk = i / CIN;
    let co0 = wid.z * COB;
    let r0 = chunk * q.rows_per_chunk;
    let r1 = min(r0 + q.rows_per_chunk, q.rows);
    // a<c>_<k>: channel co0 + c, kernel row k, kernel columns 0..2.
    var a0_0 = vec3<f32>(0.0); var a0_1 = vec3<f32>(0.0); var a0_2 = vec3<f32>(0.0);
    var a1_0 = vec3<f32>(0.0); var a1_1 = vec3<f32>(0.0); var a1_2 = vec3<f32>(0.0);
    var a2_0 = vec3<f32>(0.0); var a2_1 = vec3<f32>(0.0); var a2_2 = vec3<f32>(0.0);
    var a3_0 = vec3<f32>(0.0); var a3_1 = vec3<f32>(0.0); var a3_2 = vec3<f32>(0.0);
    var a4_0 = vec3<f32>(0.0); var a4_1 = vec3<f32>(0.0); var a4_2 = vec3<f32>(0.0);
    var a5_0 = vec3<f32>(0.0); var a5_1 = vec3<f32>(0.0); var a5_2 = vec3<f32>(0.0);
    var a6_0 = vec3<f32>(0.0); var a6_1 = vec3<f32>(0.0); var a6_2 = vec3<f32>(0.0);
    var a7_0 = vec3<f32>(0.0); var a7_1 = vec3<f32>(0.0); var a7_2 = vec3<f32>(0.0);
    var a8_0 = vec3<f32>(0.0); var a8_1 = vec3<f32>(0.0); var a8_2 = vec3<f32>(0.0);
    var a9_0 = vec3<f32>(0.0); var a9_1 = vec3<f32>(0.0); var a9_2 = vec3<f32>(0.0);
    var a10_0 = vec3<f32>(0.0); var a10_1 = vec3<f32>(0.0); var a10_2 = vec3<f32>(0.0);
    var a11_0 = vec3<f32>(0.0); var a11_1 = vec3<f32>(0.0); var a11_2 = vec3<f32>(0.0);
    var a12_0 = vec3<f32>(0.0); var a12_1 = vec3<f32>(0.0); var a12_2 = vec3<f32>(0.0);
    var a13_0 = vec3<f32>(0.0); var a13_1 = vec3<f32>(0.0); var a13_2 = vec3<f32>(0.0);
    var a14_0 = vec3<f32>(0.0); var a14_1 = vec3<f32>(0.0); var a14_2 = vec3<f32>(0.0);
    var a15_0 = vec3<f32>(0.0); var a15_1 = vec3<f32>(0.0); var a15_2 = vec3<f32>(0.0);
    for (var r = r0; r < r1; r++) {
        let n = r / OH;
        let oy = r % OH;
        let iy = i32(oy * SH) - i32(PH);
        // Which kernel rows lie inside the image.
        let kr = vec3<i32>(iy, iy + 1, iy + 2);
        let v = (kr >= vec3<i32>(0)) & (kr < vec3<i32>(i32(H)));
        let plane = (n * CIN + ci) * H;
        let row0 = k3_row(plane, iy);
        let row1 = k3_row(plane, iy + 1);
        let row2 = k3_row(plane, iy + 2);
        // Input columns ox·SW - PW + kx for kx = 0..2; with stride 1 the windows slide by one per ox.
        let b = -i32(PW) - 1;
        var x0 = k3_window(row0, b);
        var x1 = k3_window(row1, b);
        var x2 = k3_window(row2, b);
        for (var ox = 0u; ox < OW; ox++) {
            let c = i32(ox * SW) - i32(PW);
            let dl = dy_lanes(n, co0, oy, ox, ids.lane);
            if (SW == 1u) {
                x0 = vec3<f32>(x0.yz, gx_at(row0, c + 2));
                x1 = vec3<f32>(x1.yz, gx_at(row1, c + 2));
                x2 = vec3<f32>(x2.yz, gx_at(row2, c + 2));
            } else {
                x0 = k3_window(row0, c);
                x1 = k3_window(row1, c);
                x2 = k3_window(row2, c);
            }
            { k3_add(&a0_0, &a0_1, &a0_2, dy_pick(dl, n, co0, oy, ox, 0u), x0, x1, x2, v); }
            if (COB > 1u) { k3_add(&a1_0, &a1_1, &a1_2, dy_pick(dl, n, co0, oy, ox, 1u), x0, x1, x2, v); }
            if (COB > 2u) { k3_add(&a2_0, &a2_1, &a2_2, dy_pick(dl, n, co0, oy, ox, 2u), x0, x1, x2, v); }
            if (COB > 3u) { k3_add(&a3_0, &a3_1, &a3_2, dy_pick(dl, n, co0, oy, ox, 3u), x0, x1, x2, v); }
            if (COB > 4u) { k3_add(&a4_0, &a4_1, &a4_2, dy_pick(dl, n, co0, oy, ox, 4u), x0, x1, x2, v); }
            if (COB > 5u) { k3_add(&a5_0, &a5_1, &a5_2, dy_pick(dl, n, co0, oy, ox, 5u), x0, x1, x2, v); }
            if (COB > 6u) { k3_add(&a6_0, &a6_1, &a6_2, dy_pick(dl, n, co0, oy, ox, 6u), x0, x1, x2, v); }
            if (COB > 7u) { k3_add(&a7_0, &a7_1, &a7_2, dy_pick(dl, n, co0, oy, ox, 7u), x0, x1, x2, v); }
            if (COB > 8u) { k3_add(&a8_0, &a8_1, &a8_2, dy_pick(dl, n, co0, oy, ox, 8u), x0, x1, x2, v); }
            if (COB > 9u) { k3_add(&a9_0, &a9_1, &a9_2, dy_pick(dl, n, co0, oy, ox, 9u), x0, x1, x2, v); }
            if (COB > 10u) { k3_add(&a10_0, &a10_1, &a10_2, dy_pick(dl, n, co0, oy, ox, 10u), x0, x1, x2, v); }
            if (COB > 11u) { k3_add(&a11_0, &a11_1, &a11_2, dy_pick(dl, n, co0, oy, ox, 11u), x0, x1, x2, v); }
            if (COB > 12u) { k3_add(&a12_0, &a12_1, &a12_2, dy_pick(dl, n, co0, oy, ox, 12u), x0, x1, x2, v); }
            if (COB > 13u) { k3_add(&a13_0, &a13_1, &a13_2, dy_pick(dl, n, co0, oy, ox, 13u), x0, x1, x2, v); }
            if (COB > 14u) { k3_add(&a14_0, &a14_1, &a14_2, dy_pick(dl, n, co0, oy, ox, 14u), x0, x1, x2, v); }
            if (COB > 15u) { k3_add(&a15_0, &a15_1, &a15_2, dy_pick(dl, n, co0, oy, ox, 15u), x0, x1, x2, v); }
        }
    }
    let out = chunk * COUT * CIN * KH * KW;
    { k3_store(out, co0 + 0u, ci, a0_0, a0_1, a0_2); }
    if (COB > 1u) { k3_store(out, co0 + 1u, ci, a1_0, a1_1, a1_2); }
    if (COB > 2u) { k3_store(out, co0 + 2u, ci, a2_0, a2_1, a2_2); }
    if (COB > 3u) { k3_store(out, co0 + 3u, ci, a3_0, a3_1, a3_2); }
    if (COB > 4u) { k3_store(out, co0 + 4u, ci, a4_0, a4_1, a4_2); }
    if (COB > 5u) { k3_store(out, co0 + 5u, ci, a5_0, a5_1, a5_2); }
    if (COB > 6u) { k3_store(out, co0 + 6u, ci, a6_0, a6_1, a6_2); }
    if (COB > 7u) { k3_store(out, co0 + 7u, ci, a7_0, a7_1, a7_2); }
    if (COB > 8u) { k3_store(out, co0 + 8u, ci, a8_0, a8_1, a8_2); }
    if (COB > 9u) { k3_store(out, co0 + 9u, ci, a9_0, a9_1, a9_2); }
    if (COB > 10u) { k3_store(out, co0 + 10u, ci, a10_0, a10_1, a10_2); }
    if (COB > 11u) { k3_store(out, co0 + 11u, ci, a11_0, a11_1, a11_2); }
    if (COB > 12u) { k3_store(out, co0 + 12u, ci, a12_0, a12_1, a12_2); }
    if (COB > 13u) { k3_store(out, co0 + 13u, ci, a13_0, a13_1, a13_2); }
    if (COB > 14u) { k3_store(out, co0 + 14u, ci, a14_0, a14_1, a14_2); }
    if (COB > 15u) { k3_store(out, co0 + 15u, ci, a15_0, a15_1, a15_2); }
}

// conv2d_weight_grad_k3c2: conv2d_weight_grad_k3 over two input channels per invocation, COB <= 8:
// invocation i of grid layer z owns (chunk, input channels 2j and 2j + 1) for output channels
// [z·COB, z·COB + COB). Each dy value loaded serves both channels' three kernel rows, so with 8
// channels 14 loads feed 144 multiply-adds (11 feed 72 in conv2d_weight_grad_k3): the layout for layers
// with few output channels (a dense block's growth of 8). An odd last channel is computed on a copy of
// the one before and not stored. Every output adds the same products in the same order (same bits).
@compute @workgroup_size(WG)
fn conv2d_weight_grad_k3c2(ids: LaneIds) {
    let wid = ids.wid;
    let i = flat_index(ids.gid, ids.nwg);
    if (i >= q.total) { return; }
    let pairs = (CIN + 1u) / 2u;
    let ci = 2u * (i % pairs);
    let cj = min(ci + 1u, CIN - 1u);
    let chunk = i / pairs;
    let co0 = wid.z * COB;
    let r0 = chunk * q.rows_per_chunk;
    let r1 = min(r0 + q.rows_per_chunk, q.rows);
    // a<c>_<k> (channel ci) and b<c>_<k> (channel cj): output channel co0 + c, kernel row k.
    var a0_0 = vec3<f32>(0.0); var a0_1 = vec3<f32>(0.0); var a0_2 = vec3<f32>(0.0);
    var b0_0 = vec3<f32>(0.0); var b0_1 = vec3<f32>(0.0); var b0_2 = vec3<f32>(0.0);
    var a1_0 = vec3<f32>(0.0); var a1_1 = vec3<f32>(0.0); var a1_2 = vec3<f32>(0.0);
    var b1_0 = vec3<f32>(0.0); var b1_1 = vec3<f32>(0.0); var b1_2 = vec3<f32>(0.0);
    var a2_0 = vec3<f32>(0.0); var a2_1 = vec3<f32>(0.0); var a2_2 = vec3<f32>(0.0);
    var b2_0 = vec3<f32>(0.0); var b2_1 = vec3<f32>(0.0); var b2_2 = vec3<f32>(0.0);
    var a3_0 = vec3<f32>(0.0); var a3_1 = vec3<f32>(0.0); var a3_2 = vec3<f32>(0.0);
    var b3_0 = vec3<f32>(0.0); var b3_1 = vec3<f32>(0.0); var b3_2 = vec3<f32>(0.0);
    var a4_0 = vec3<f32>(0.0); var a4_1 = vec3<f32>(0.0); var a4_2 = vec3<f32>(0.0);
    var b4_0 = vec3<f32>(0.0); var b4_1 = vec3<f32>(0.0); var b4_2 = vec3<f32>(0.0);
    var a5_0 = vec3<f32>(0.0); var a5_1 = vec3<f32>(0.0); var a5_2 = vec3<f32>(0.0);
    var b5_0 = vec3<f32>(0.0); var b5_1 = vec3<f32>(0.0); var b5_2 = vec3<f32>(0.0);
    var a6_0 = vec3<f32>(0.0); var a6_1 = vec3<f32>(0.0); var a6_2 = vec3<f32>(0.0);
    var b6_0 = vec3<f32>(0.0); var b6_1 = vec3<f32>(0.0); var b6_2 = vec3<f32>(0.0);
    var a7_0 = vec3<f32>(0.0); var a7_1 = vec3<f32>(0.0); var a7_2 = vec3<f32>(0.0);
    var b7_0 = vec3<f32>(0.0); var b7_1 = vec3<f32>(0.0); var b7_2 = vec3<f32>(0.0);
    for (var r = r0; r < r1; r++) {
        let n = r / OH;
        let oy = r % OH;
        let iy = i32(oy * SH) - i32(PH);
        let kr = vec3<i32>(iy, iy + 1, iy + 2);
        let v = (kr >= vec3<i32>(0)) & (kr < vec3<i32>(i32(H)));
        let plane = (n * CIN + ci) * H;
        let plane_j = (n * CIN + cj) * H;
        let row0 = k3_row(plane, iy);
        let row1 = k3_row(plane, iy + 1);
        let row2 = k3_row(plane, iy + 2);
        let rowj0 = k3_row(plane_j, iy);
        let rowj1 = k3_row(plane_j, iy + 1);
        let rowj2 = k3_row(plane_j, iy + 2);
        let b = -i32(PW) - 1;
        var x0 = k3_window(row0, b);
        var x1 = k3_window(row1, b);
        var x2 = k3_window(row2, b);
        var y0 = k3_window(rowj0, b);
        var y1 = k3_window(rowj1, b);
        var y2 = k3_window(rowj2, b);
        for (var ox = 0u; ox < OW; ox++) {
            let c = i32(ox * SW) - i32(PW);
            let dl = dy_lanes(n, co0, oy, ox, ids.lane);
            if (SW == 1u) {
                x0 = vec3<f32>(x0.yz, gx_at(row0, c + 2));
                x1 = vec3<f32>(x1.yz, gx_at(row1, c + 2));
                x2 = vec3<f32>(x2.yz, gx_at(row2, c + 2));
                y0 = vec3<f32>(y0.yz, gx_at(rowj0, c + 2));
                y1 = vec3<f32>(y1.yz, gx_at(rowj1, c + 2));
                y2 = vec3<f32>(y2.yz, gx_at(rowj2, c + 2));
            } else {
                x0 = k3_window(row0, c);
                x1 = k3_window(row1, c);
                x2 = k3_window(row2, c);
                y0 = k3_window(rowj0, c);
                y1 = k3_window(rowj1, c);
                y2 = k3_window(rowj2, c);
            }
            {
                let d = dy_pick(dl, n, co0, oy, ox, 0u);
                k3_add(&a0_0, &a0_1, &a0_2, d, x0, x1, x2, v);
                k3_add(&b0_0, &b0_1, &b0_2, d, y0, y1, y2, v);
            }
            if (COB > 1u) {
                let d = dy_pick(dl, n, co0, oy, ox, 1u);
                k3_add(&a1_0, &a1_1, &a1_2, d, x0, x1, x2, v);
                k3_add(&b1_0, &b1_1, &b1_2, d, y0, y1, y2, v);
            }
            if (COB > 2u) {
                let d = dy_pick(dl, n, co0, oy, ox, 2u);
                k3_add(&a2_0, &a2_1, &a2_2, d, x0, x1, x2, v);
                k3_add(&b2_0, &b2_1, &b2_2, d, y0, y1, y2, v);
            }
            if (COB > 3u) {
                let d = dy_pick(dl, n, co0, oy, ox, 3u);
                k3_add(&a3_0, &a3_1, &a3_2, d, x0, x1, x2, v);
                k3_add(&b3_0, &b3_1, &b3_2, d, y0, y1, y2, v);
            }
            if (COB > 4u) {
                let d = dy_pick(dl, n, co0, oy, ox, 4u);
                k3_add(&a4_0, &a4_1, &a4_2, d, x0, x1, x2, v);
                k3_add(&b4_0, &b4_1, &b4_2, d, y0, y1, y2, v);
            }
            if (COB > 5u) {
                let d = dy_pick(dl, n, co0, oy, ox, 5u);
                k3_add(&a5_0, &a5_1, &a5_2, d, x0, x1, x2, v);
                k3_add(&b5_0, &b5_1, &b5_2, d, y0, y1, y2, v);
            }
            if (COB > 6u) {
                let d = dy_pick(dl, n, co0, oy, ox, 6u);
                k3_add(&a6_0, &a6_1, &a6_2, d, x0, x1, x2, v);
                k3_add(&b6_0, &b6_1, &b6_2, d, y0, y1, y2, v);
            }
            if (COB > 7u) {
                let d = dy_pick(dl, n, co0, oy, ox, 7u);
                k3_add(&a7_0, &a7_1, &a7_2, d, x0, x1, x2, v);
                k3_add(&b7_0, &b7_1, &b7_2, d, y0, y1, y2, v);
            }
        }
    }
    let out = chunk * COUT * CIN * KH * KW;
    let second = ci + 1u < CIN;
    {
        k3_store(out, co0 + 0u, ci, a0_0, a0_1, a0_2);
        if (second) { k3_store(out, co0 + 0u, cj, b0_0, b0_1, b0_2); }
    }
    if (COB > 1u) {
        k3_store(out, co0 + 1u, ci, a1_0, a1_1, a1_2);
        if (second) { k3_store(out, co0 + 1u, cj, b1_0, b1_1, b1_2); }
    }
    if (COB > 2u) {
        k3_store(out, co0 + 2u, ci, a2_0, a2_1, a2_2);
        if (second) { k3_store(out, co0 + 2u, cj, b2_0, b2_1, b2_2); }
    }
    if (COB > 3u) {
        k3_store(out, co0 + 3u, ci, a3_0, a3_1, a3_2);
        if (second) { k3_store(out, co0 + 3u, cj, b3_0, b3_1, b3_2); }
    }
    if (COB > 4u) {
        k3_store(out, co0 + 4u, ci, a4_0, a4_1, a4_2);
        if (second) { k3_store(out, co0 + 4u, cj, b4_0, b4_1, b4_2); }
    }
    if (COB > 5u) {
        k3_store(out, co0 + 5u, ci, a5_0, a5_1, a5_2);
        if (second) { k3_store(out, co0 + 5u, cj, b5_0, b5_1, b5_2); }
    }
    if (COB > 6u) {
        k3_store(out, co0 + 6u, ci, a6_0, a6_1, a6_2);
        if (second) { k3_store(out, co0 + 6u, cj, b6_0, b6_1, b6_2); }
    }
    if (COB > 7u) {
        k3_store(out, co0 + 7u, ci, a7_0, a7_1, a7_2);
        if (second) { k3_store(out, co0 + 7u, cj, b7_0, b7_1, b7_2); }
    }
}

// conv2d_weight_grad_rows with VX: the same bytes as g_x and g_dy, read as vec4s. Stride 1, KW <= 5,
// and rows on the vec4 grid: W and OW multiples of 4 (the launcher checks), so every vec4 of dy a block
// reads is aligned and the input's shift is a constant.
@group(0) @binding(4) var<storage, read> g_x4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> g_dy4: array<vec4<f32>>;

// Columns [c, c + 4) of the input row at offset `row`, as gx_at reads them (padding columns 0), from
// the two vec4s of the flat input that hold them: c = o0 - PW + 4 with o0 a multiple of 4 starts at
// the constant offset (-PW) mod 4 in the first. Loads before the buffer's start or past its end
// (clamped) feed only padding columns.
fn gx_vec4(row: u32, c: i32) -> vec4<f32> {
    let s = u32((-i32(PW)) & 3);
    let q0 = (i32(row) + c - i32(s)) / 4;
    let last = i32(arrayLength(&g_x4)) - 1;
    let v = funnel(g_x4[u32(clamp(q0, 0, last))], g_x4[u32(clamp(q0 + 1, 0, last))], s);
    let cs = vec4<i32>(c) + vec4<i32>(0, 1, 2, 3);
    return select(vec4<f32>(0.0), v, (cs >= vec4<i32>(0)) & (cs < vec4<i32>(i32(W))));
}

// VX: output column j of a block of conv2d_weight_grad_rows (j a constant once inlined): each kernel
// row's window slides by one, taking its next column from xn, and the column adds its products as
// conv2d_weight_grad_rows' scalar loop does.
fn rows_column(acc: ptr<function, array<vec4<f32>, 40>>, tail: ptr<function, array<f32, 40>>,
               xv: ptr<function, array<vec4<f32>, 5>>, xe: ptr<function, array<f32, 5>>,
               valid: array<bool, 5>, xn: array<vec4<f32>, 5>, dn: array<vec4<f32>, 8>, j: u32) {
    for (var k = 0u; k < KH; k++) {
        (*xv)[k] = vec4<f32>((*xv)[k].yzw, (*xe)[k]);
        (*xe)[k] = xn[k][j];
    }
    for (var cc = 0u; cc < COB; cc++) {
        let d = dn[cc][j];
        for (var k = 0u; k < KH; k++) {
            if (valid[k]) {
                (*acc)[cc * 5u + k] += d * (*xv)[k];
                if (KW == 5u) { (*tail)[cc * 5u + k] += d * (*xe)[k]; }
            }
        }
    }
}

// conv2d_weight_grad_rows: conv2d_weight_grad with every kernel row in one invocation, for kernels of
// at most 5 x 5: invocation i of grid layer z owns (chunk, ci) for channels [z·COB, z·COB + COB),
// COB <= 8, and keeps kernel columns 0..3 of each (channel, row) in a vec4 and column 4 in a scalar.
// Each dy value loaded serves KH rows. The accumulators are private arrays indexed by unrolled loops;
// each output adds the same products in the same order as in conv2d_weight_grad (same bits). With VX
// (rows on the vec4 grid, at most 6 channels), dy and the input come as vec4s, 4 columns at a time.
@compute @workgroup_size(WG)
fn conv2d_weight_grad_rows(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let ci = i % CIN;
    let chunk = i / CIN;
    let co0 = wid.z * COB;
    let r0 = chunk * q.rows_per_chunk;
    let r1 = min(r0 + q.rows_per_chunk, q.rows);
    // acc[c * 5 + k]: channel co0 + c, kernel row k, columns 0..3; tail: column 4.
    var acc: array<vec4<f32>, 40>;
    var tail: array<f32, 40>;
    var valid: array<bool, 5>;
    var rows: array<u32, 5>;
    var xv: array<vec4<f32>, 5>;
    var xe: array<f32, 5>;
    // VX: the next input columns of each kernel row, the next dy values of each channel.
    var xn: array<vec4<f32>, 5>;
    var dn: array<vec4<f32>, 8>;
    for (var r = r0; r < r1; r++) {
        let n = r / OH;
        let oy = r % OH;
        let top = i32(oy * SH) - i32(PH);
        let plane = (n * CIN + ci) * H;
        let b = -i32(PW) - 1;
        for (var k = 0u; k < KH; k++) {
            let iy = top + i32(k);
            valid[k] = iy >= 0 && iy < i32(H);
            rows[k] = (plane + u32(clamp(iy, 0, i32(H) - 1))) * W;
            // Input columns ox·SW - PW + kx for kx = 0..4; with stride 1 the window slides by one per ox.
            xv[k] = vec4<f32>(gx_at(rows[k], b), gx_at(rows[k], b + 1), gx_at(rows[k], b + 2), gx_at(rows[k], b + 3));
            xe[k] = gx_at(rows[k], b + 4);
        }
        if (VX) {
            // Blocks of 4 output columns: each kernel row's next 4 input columns and each channel's 4
            // dy values in one vec4, which the columns then take one by one (rows_column, unrolled).
            for (var o0 = 0u; o0 < OW; o0 += 4u) {
                for (var k = 0u; k < KH; k++) {
                    xn[k] = gx_vec4(rows[k], i32(o0) - i32(PW) + 4);
                }
                for (var cc = 0u; cc < COB; cc++) {
                    dn[cc] = g_dy4[(((n * COUT + min(co0 + cc, COUT - 1u)) * OH + oy) * OW + o0) / 4u];
                }
                rows_column(&acc, &tail, &xv, &xe, valid, xn, dn, 0u);
                rows_column(&acc, &tail, &xv, &xe, valid, xn, dn, 1u);
                rows_column(&acc, &tail, &xv, &xe, valid, xn, dn, 2u);
                rows_column(&acc, &tail, &xv, &xe, valid, xn, dn, 3u);
            }
            continue;
        }
        for (var ox = 0u; ox < OW; ox++) {
            let c = i32(ox * SW) - i32(PW);
            for (var k = 0u; k < KH; k++) {
                if (SW == 1u) {
                    xv[k] = vec4<f32>(xv[k].yzw, xe[k]);
                    xe[k] = gx_at(rows[k], c + 4);
                } else {
                    xv[k] = vec4<f32>(gx_at(rows[k], c), gx_at(rows[k], c + 1), gx_at(rows[k], c + 2), gx_at(rows[k], c + 3));
                    xe[k] = gx_at(rows[k], c + 4);
                }
            }
            for (var cc = 0u; cc < COB; cc++) {
                let d = dy_at(n, co0 + cc, oy, ox);
                for (var k = 0u; k < KH; k++) {
                    if (valid[k]) {
                        acc[cc * 5u + k] += d * xv[k];
                        if (KW == 5u) { tail[cc * 5u + k] += d * xe[k]; }
                    }
                }
            }
        }
    }
    let out = chunk * COUT * CIN * KH * KW;
    for (var cc = 0u; cc < COB; cc++) {
        for (var k = 0u; k < KH; k++) {
            store_dw(out, co0 + cc, ci, k, acc[cc * 5u + k], vec4<f32>(tail[cc * 5u + k], 0.0, 0.0, 0.0));
        }
    }
}

// Write kernel columns 0..KW-1 of one (co, ci, ky) row from two vec4s, when the channel exists.
// conv2d_weight_grad_lanes (subgroup module only): conv2d_weight_grad_rows' sums, with a subgroup's
// lanes sharing their loads. A subgroup owns one chunk of rows and CG = SGS / LB input channels; lane
// l takes channel l / LB of them and block l % LB of COB output channels (grid layer z: blocks
// z·LB + l % LB). At each output column, the next input column of each kernel row of a channel is
// loaded by one of the LB lanes that share the channel, and each dy value by one of the CG lanes that
// share the block; every lane takes them from the lanes that loaded them (shuffles). Stride 1,
// kernels up to 5 x 5. Every output adds the same products in the same order as in
// conv2d_weight_grad_rows, so the bits are the same. A channel past CIN (the last subgroup's, where
// CG does not divide CIN) loads and shuffles like the others and stores nothing.
override LB: u32 = 4u;

@compute @workgroup_size(WG)
fn conv2d_weight_grad_lanes(ids: LaneIds) {
    let i = flat_index(ids.gid, ids.nwg);
    if (i >= q.total) { return; }
    let cg = SGS / LB;
    let groups = (CIN + cg - 1u) / cg;
    let sub = i / SGS;
    let chunk = sub / groups;
    let cs = ids.lane / LB;
    let cb = ids.lane % LB;
    let ci_lane = (sub % groups) * cg + cs;
    let ci = min(ci_lane, CIN - 1u);
    let co0 = (ids.wid.z * LB + cb) * COB;
    let r0 = chunk * q.rows_per_chunk;
    let r1 = min(r0 + q.rows_per_chunk, q.rows);
    // As conv2d_weight_grad_rows: acc[c * 5 + k] columns 0..3 of channel co0 + c, kernel row k;
    // tail: column 4.
    var acc: array<vec4<f32>, 40>;
    var tail: array<f32, 40>;
    var valid: array<bool, 5>;
    var xv: array<vec4<f32>, 5>;
    var xe: array<f32, 5>;
    for (var r = r0; r < r1; r++) {
        let n = r / OH;
        let oy = r % OH;
        let top = i32(oy) - i32(PH);
        let plane = (n * CIN + ci) * H;
        let b = -i32(PW) - 1;
        for (var k = 0u; k < KH; k++) {
            let iy = top + i32(k);
            valid[k] = iy >= 0 && iy < i32(H);
            let row = (plane + u32(clamp(iy, 0, i32(H) - 1))) * W;
            xv[k] = vec4<f32>(gx_at(row, b), gx_at(row, b + 1), gx_at(row, b + 2), gx_at(row, b + 3));
            xe[k] = gx_at(row, b + 4);
        }
        for (var ox = 0u; ox < OW; ox++) {
            let c = i32(ox) - i32(PW);
            // This lane's loads: the next column of kernel rows cb, cb + LB, ... of its channel, and
            // dy of channels co0 + cs, co0 + cs + CG, ... of its block.
            var xl = array<f32, 5>();
            for (var j = 0u; j < (KH + LB - 1u) / LB; j++) {
                let iy = top + i32(min(cb + j * LB, KH - 1u));
                xl[j] = gx_at((plane + u32(clamp(iy, 0, i32(H) - 1))) * W, c + 4);
            }
            var dl = array<f32, 8>();
            for (var j = 0u; j < (COB + cg - 1u) / cg; j++) {
                dl[j] = dy_at(n, co0 + min(cs + j * cg, COB - 1u), oy, ox);
            }
            for (var k = 0u; k < KH; k++) {
                xv[k] = vec4<f32>(xv[k].yzw, xe[k]);
                xe[k] = lane_shuffle(xl[k / LB], cs * LB + k % LB);
            }
            for (var cc = 0u; cc < COB; cc++) {
                let d = lane_shuffle(dl[cc / cg], (cc % cg) * LB + cb);
                for (var k = 0u; k < KH; k++) {
                    if (valid[k]) {
                        acc[cc * 5u + k] += d * xv[k];
                        if (KW == 5u) { tail[cc * 5u + k] += d * xe[k]; }
                    }
                }
            }
        }
    }
    if (ci_lane >= CIN) { return; }
    let out = chunk * COUT * CIN * KH * KW;
    for (var cc = 0u; cc < COB; cc++) {
        for (var k = 0u; k < KH; k++) {
            store_dw(out, co0 + cc, ci, k, acc[cc * 5u + k], vec4<f32>(tail[cc * 5u + k], 0.0, 0.0, 0.0));
        }
    }
}

fn store_dw(out: u32, co: u32, ci: u32, ky: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (co >= COUT) { return; }
    let base = out + ((co * CIN + ci) * KH + ky) * KW;
    for (var kx = 0u; kx < KW; kx++) {
        var v = 0.0;
        switch (kx) {
            case 0u: { v = lo.x; }
            case 1u: { v = lo.y; }
            case 2u: { v = lo.z; }
            case 3u: { v = lo.w; }
            case 4u: { v = hi.x; }
            case 5u: { v = hi.y; }
            case 6u: { v = hi.z; }
            default: { v = hi.w; }
        }
        g_dw[base + kx] = v;
    }
}
