// The input gradient of a stride-2 convolution, shape-specialised (sizes are `override` constants).
// An output x[iy] of the layer receives kernel tap ky only when iy + PH - ky is even, so the 2x2 block
// of input positions (2a + py, 2b + px) splits the taps by parity: tap (ky, kx) feeds exactly the
// phase py = (ky + PH) % 2, px = (kx + PW) % 2, from dy at (a + (py + PH - ky) / 2, b + ...). One
// invocation owns one 2x2 block for CB = 4 or 8 input channels (the channel block from the workgroup
// id, so weight loads are uniform) and visits every tap once: no wasted multiply-adds, no divisions.
// Every output adds its products in the order (co, ky, kx) whatever CB and UW are (same bits).
// The plain conv2d_backward_input of conv.wgsl is its test reference.

// The sizes CIN, H, W, COUT, KH, KW, PH, PW, OH, OW: conv_sizes.wgsl (prefixed to this file).

// Input channels per invocation: 4 or 8; up to 16 for 3x3 kernels with padding 1 (their path keeps
// four blocks of accumulators, the general loop two).
override CB: u32 = 4u;
// Read the weights through the uniform window s_wu (the same bytes as s_w) instead of storage: each
// weight index is uniform across the workgroup, and software adapters load a uniform buffer at such
// an index once for all lanes, a storage buffer lane by lane (see conv_fast.wgsl's UW).
override UW: bool = false;

struct StridedParams {
    n: u32,
    total: u32, // invocations per channel block: n · ceil(H / 2) · ceil(W / 2)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> q: StridedParams;
@group(0) @binding(1) var<storage, read> s_dy: array<f32>;
@group(0) @binding(2) var<storage, read> s_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> s_dx: array<f32>;
@group(0) @binding(4) var<uniform> s_wu: array<vec4<f32>, 4096>;

fn w_at(i: u32) -> f32 {
    if (UW) {
        return s_wu[i / 4u][i % 4u];
    }
    return s_w[i];
}

// w[co, ci0 + 0..4, ky, kx] (channels past CIN clamped; their results are not stored).
fn w4(co: u32, ci0: u32, ky: u32, kx: u32) -> vec4<f32> {
    let at = (ky * KW + kx);
    let base = co * CIN;
    return vec4<f32>(
        w_at((base + min(ci0, CIN - 1u)) * KH * KW + at),
        w_at((base + min(ci0 + 1u, CIN - 1u)) * KH * KW + at),
        w_at((base + min(ci0 + 2u, CIN - 1u)) * KH * KW + at),
        w_at((base + min(ci0 + 3u, CIN - 1u)) * KH * KW + at),
    );
}

fn store(n: u32, ci0: u32, iy: u32, ix: u32, v: vec4<f32>) {
    if (iy >= H || ix >= W) { return; }
    for (var c = 0u; c < 4u; c++) {
        if (ci0 + c < CIN) { s_dx[((n * CIN + ci0 + c) * H + iy) * W + ix] = v[c]; }
    }
}

// The nine taps of a 3x3 kernel (padding 1) for input channels c .. c + 3, in (ky, kx) order, each to
// its phase: ky = 0 reads dy row a + 1 into phase row 1, ky = 1 row a into phase row 0, ky = 2 row a
// into phase row 1; kx likewise for columns. d holds dy at (a, b), (a, b + 1), (a + 1, b), (a + 1, b + 1).
fn taps_3x3(p00: ptr<function, vec4<f32>>, p01: ptr<function, vec4<f32>>, p10: ptr<function, vec4<f32>>,
            p11: ptr<function, vec4<f32>>, co: u32, c: u32, d: vec4<f32>) {
    *p11 += d.w * w4(co, c, 0u, 0u);
    *p10 += d.z * w4(co, c, 0u, 1u);
    *p11 += d.z * w4(co, c, 0u, 2u);
    *p01 += d.y * w4(co, c, 1u, 0u);
    *p00 += d.x * w4(co, c, 1u, 1u);
    *p01 += d.x * w4(co, c, 1u, 2u);
    *p11 += d.y * w4(co, c, 2u, 0u);
    *p10 += d.x * w4(co, c, 2u, 1u);
    *p11 += d.x * w4(co, c, 2u, 2u);
}

// The 2x2 block (a, b) of channels c0 .. c0 + 3, one vec4 per phase.
fn store4(n: u32, c0: u32, a: u32, b: u32, v00: vec4<f32>, v01: vec4<f32>, v10: vec4<f32>, v11: vec4<f32>) {
    store(n, c0, 2u * a, 2u * b, v00);
    store(n, c0, 2u * a, 2u * b + 1u, v01);
    store(n, c0, 2u * a + 1u, 2u * b, v10);
    store(n, c0, 2u * a + 1u, 2u * b + 1u, v11);
}

@compute @workgroup_size(WG)
fn conv2d_backward_input_s2(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let i = flat_index(gid, nwg);
    if (i >= q.total) { return; }
    let bw = (W + 1u) / 2u;
    let bh = (H + 1u) / 2u;
    let b = i % bw;
    let a = (i / bw) % bh;
    let n = i / (bw * bh);
    let ci0 = wid.z * CB;
    // One accumulator per phase (py, px): a00, a01, a10, a11 hold channels ci0 .. ci0 + 3, b.. (CB > 4)
    // channels ci0 + 4 .. ci0 + 7, c.. (CB > 8) ci0 + 8 .. ci0 + 11 and e.. (CB > 12) ci0 + 12 .. ci0 + 15.
    var a00 = vec4<f32>(0.0); var a01 = vec4<f32>(0.0); var a10 = vec4<f32>(0.0); var a11 = vec4<f32>(0.0);
    var b00 = vec4<f32>(0.0); var b01 = vec4<f32>(0.0); var b10 = vec4<f32>(0.0); var b11 = vec4<f32>(0.0);
    var c00 = vec4<f32>(0.0); var c01 = vec4<f32>(0.0); var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0);
    var e00 = vec4<f32>(0.0); var e01 = vec4<f32>(0.0); var e10 = vec4<f32>(0.0); var e11 = vec4<f32>(0.0);
    // 3x3, padding 1 (the zoo's downsampling convs): the taps of a 2x2 block read only the four dy
    // values (a, b), (a, b + 1), (a + 1, b), (a + 1, b + 1), so each is loaded once per co, not once per
    // tap (4 loads instead of 9). Those past dy's edge are 0 and add 0 · w where the general loop skips
    // the tap: a sum that starts at +0 is unchanged by adding ±0 (same bits).
    if (KH == 3u && KW == 3u && PH == 1u && PW == 1u) {
        let in_a1 = a + 1u < OH;
        let in_b1 = b + 1u < OW;
        let b1 = min(b + 1u, OW - 1u);
        for (var co = 0u; co < COUT; co++) {
            let row0 = ((n * COUT + co) * OH + a) * OW;
            let row1 = row0 + select(0u, OW, in_a1);
            let d = vec4<f32>(
                s_dy[row0 + b],
                select(0.0, s_dy[row0 + b1], in_b1),
                select(0.0, s_dy[row1 + b], in_a1),
                select(0.0, s_dy[row1 + b1], in_a1 && in_b1),
            );
            taps_3x3(&a00, &a01, &a10, &a11, co, ci0, d);
            if (CB > 4u) { taps_3x3(&b00, &b01, &b10, &b11, co, ci0 + 4u, d); }
            if (CB > 8u) { taps_3x3(&c00, &c01, &c10, &c11, co, ci0 + 8u, d); }
            if (CB > 12u) { taps_3x3(&e00, &e01, &e10, &e11, co, ci0 + 12u, d); }
        }
    } else {
        for (var co = 0u; co < COUT; co++) {
            let plane = (n * COUT + co) * OH;
            for (var ky = 0u; ky < KH; ky++) {
                let py = (ky + PH) & 1u;
                let oy = i32(a) + ((i32(py + PH) - i32(ky)) >> 1u);
                if (oy < 0 || oy >= i32(OH)) { continue; }
                let row = (plane + u32(oy)) * OW;
                for (var kx = 0u; kx < KW; kx++) {
                    let px = (kx + PW) & 1u;
                    let ox = i32(b) + ((i32(px + PW) - i32(kx)) >> 1u);
                    if (ox < 0 || ox >= i32(OW)) { continue; }
                    let d = s_dy[row + u32(ox)];
                    let t = d * w4(co, ci0, ky, kx);
                    var u = vec4<f32>(0.0);
                    if (CB > 4u) { u = d * w4(co, ci0 + 4u, ky, kx); }
                    if (py == 0u) {
                        if (px == 0u) { a00 += t; b00 += u; } else { a01 += t; b01 += u; }
                    } else {
                        if (px == 0u) { a10 += t; b10 += u; } else { a11 += t; b11 += u; }
                    }
                }
            }
        }
    }
    store4(n, ci0, a, b, a00, a01, a10, a11);
    if (CB > 4u) { store4(n, ci0 + 4u, a, b, b00, b01, b10, b11); }
    if (CB > 8u) { store4(n, ci0 + 8u, a, b, c00, c01, c10, c11); }
    if (CB > 12u) { store4(n, ci0 + 12u, a, b, e00, e01, e10, e11); }
}
