// The strided matrix product of matmul.wgsl with vec4 loads: c[m, j] = Σ_k a[m, k] · b[k, j]
// (+ bias[j]). Each operand is read four floats at a time along the axis where it is contiguous:
// a along k (A_K: a[m, k..k+4]) or along m (a[m..m+4, k]), b along k (B_K: b[k..k+4, j]) or along j
// (b[k, j..j+4]). Software adapters run an invocation per SIMD lane and load each lane's value
// separately, so a vec4 load costs one load where four scalars cost four. Every output still adds its
// products in k order from the bias (or 0), one at a time, exactly as `matmul` does: any variant of
// either kernel gives the same bits.
// Requires (checked by the launcher): the vector axis has stride 1, the other strides and the
// product offsets are multiples of 4, k is a multiple of 4, and m (a along m) or n (b along j) too.
// Invocation i owns rows [m0, m0 + MR) and columns [j0, j0 + 4·NC): MR·NC named vec4 accumulators.

override MR: u32 = 8u;     // rows per invocation: 4 or 8
override NC: u32 = 2u;     // vec4 column groups per invocation: 1 or 2
override A_K: bool = true; // a is read along k (else along m)
override B_K: bool = true; // b is read along k (else along j)
override BIAS: bool = false;
override RELU: bool = false; // store max(c, 0) (as matmul.wgsl)

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    total: u32, // invocations: ceil(m / MR) * ceil(n / (4 * NC))
    a_m: u32,
    a_k: u32,
    b_k: u32,
    b_j: u32,
    c_m: u32,
    c_j: u32,
    a_l: u32,
    b_l: u32,
    c_l: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> va: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> vb: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> mm_bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> mm_c: array<f32>;

// Rows [m0, m0 + 4) of a over k-chunk q (k = 4q..4q+3), each as a vec4 over k. Rows past m repeat the
// last row (their results are not stored). The four loads, along k or along m, are the same count.
struct Rows4 {
    r0: vec4<f32>,
    r1: vec4<f32>,
    r2: vec4<f32>,
    r3: vec4<f32>,
}

fn a_rows(l: u32, m0: u32, q: u32) -> Rows4 {
    let base = l * p.a_l / 4u;
    if (A_K) {
        let s = p.a_m / 4u;
        let last = p.m - 1u;
        return Rows4(va[base + min(m0, last) * s + q], va[base + min(m0 + 1u, last) * s + q],
                     va[base + min(m0 + 2u, last) * s + q], va[base + min(m0 + 3u, last) * s + q]);
    }
    // a along m: one vec4 of the four rows at each k, transposed.
    let s = p.a_k / 4u;
    let k0 = base + 4u * q * s + min(m0 / 4u, p.m / 4u - 1u);
    let t = mat4x4<f32>(va[k0], va[k0 + s], va[k0 + 2u * s], va[k0 + 3u * s]);
    let u = transpose(t);
    return Rows4(u[0], u[1], u[2], u[3]);
}

// Columns [j, j + 4) of b over k-chunk q: element kk is the vec4 of the four columns at k = 4q + kk.
// Columns past n repeat the last.
fn b_cols(l: u32, j: u32, q: u32) -> mat4x4<f32> {
    let base = l * p.b_l / 4u;
    if (B_K) {
        // b along k: one vec4 over k per column, transposed.
        let last = p.n - 1u;
        let s = p.b_j / 4u;
        let t = mat4x4<f32>(vb[base + min(j, last) * s + q], vb[base + min(j + 1u, last) * s + q],
                            vb[base + min(j + 2u, last) * s + q], vb[base + min(j + 3u, last) * s + q]);
        return transpose(t);
    }
    let s = p.b_k / 4u;
    let c = base + 4u * q * s + min(j / 4u, p.n / 4u - 1u);
    return mat4x4<f32>(vb[c], vb[c + s], vb[c + 2u * s], vb[c + 3u * s]);
}

fn store4(l: u32, m: u32, j0: u32, c: vec4<f32>) {
    if (m >= p.m || j0 >= p.n) { return; }
    let v = select(c, max(c, vec4<f32>(0.0)), RELU);
    let base = l * p.c_l + m * p.c_m + j0 * p.c_j;
    mm_c[base] = v.x;
    if (j0 + 1u < p.n) { mm_c[base + p.c_j] = v.y; }
    if (j0 + 2u < p.n) { mm_c[base + 2u * p.c_j] = v.z; }
    if (j0 + 3u < p.n) { mm_c[base + 3u * p.c_j] = v.w; }
}

// Rows [m0, m0 + MR) of one column group of an invocation's block (both kernels' epilogue).
fn store_block(l: u32, m0: u32, j0: u32, rows: array<vec4<f32>, 8>) {
    for (var r = 0u; r < MR; r++) { store4(l, m0 + r, j0, rows[r]); }
}

fn bias4(j: u32) -> vec4<f32> {
    if (!BIAS) { return vec4<f32>(0.0); }
    let last = p.n - 1u;
    return vec4<f32>(mm_bias[min(j, last)], mm_bias[min(j + 1u, last)], mm_bias[min(j + 2u, last)],
                     mm_bias[min(j + 3u, last)]);
}

@compute @workgroup_size(WG)
fn matmul_vec4(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let i = flat_index(gid, nwg);
    let l = wid.z;
    if (i >= p.total) { return; }
    let nw = 4u * NC;
    let jb = (p.n + nw - 1u) / nw;
    let j0 = (i % jb) * nw;
    let j1 = j0 + 4u;
    let m0 = (i / jb) * MR;
    let i0 = bias4(j0);
    var i1 = vec4<f32>(0.0);
    if (NC > 1u) { i1 = bias4(j1); }
    var c0 = i0; var c1 = i0; var c2 = i0; var c3 = i0; var c4 = i0; var c5 = i0; var c6 = i0; var c7 = i0;
    var d0 = i1; var d1 = i1; var d2 = i1; var d3 = i1; var d4 = i1; var d5 = i1; var d6 = i1; var d7 = i1;
    for (var q = 0u; q < p.k / 4u; q++) {
        let lo = a_rows(l, m0, q);
        var hi = lo;
        if (MR > 4u) { hi = a_rows(l, m0 + 4u, q); }
        let bl = b_cols(l, j0, q);
        var bh = bl;
        if (NC > 1u) { bh = b_cols(l, j1, q); }
        for (var kk = 0u; kk < 4u; kk++) {
            let b0 = bl[kk];
            c0 += lo.r0[kk] * b0;
            c1 += lo.r1[kk] * b0;
            c2 += lo.r2[kk] * b0;
            c3 += lo.r3[kk] * b0;
            if (MR > 4u) {
                c4 += hi.r0[kk] * b0;
                c5 += hi.r1[kk] * b0;
                c6 += hi.r2[kk] * b0;
                c7 += hi.r3[kk] * b0;
            }
            if (NC > 1u) {
                let b1 = bh[kk];
                d0 += lo.r0[kk] * b1;
                d1 += lo.r1[kk] * b1;
                d2 += lo.r2[kk] * b1;
                d3 += lo.r3[kk] * b1;
                if (MR > 4u) {
                    d4 += hi.r0[kk] * b1;
                    d5 += hi.r1[kk] * b1;
                    d6 += hi.r2[kk] * b1;
                    d7 += hi.r3[kk] * b1;
                }
            }
        }
    }
    store_block(l, m0, j0, array<vec4<f32>, 8>(c0, c1, c2, c3, c4, c5, c6, c7));
    if (NC > 1u) { store_block(l, m0, j0 + 4u, array<vec4<f32>, 8>(d0, d1, d2, d3, d4, d5, d6, d7)); }
}

// matmul_vec4b: the same product with only b read as vec4 (along k with B_K, else along j), a read one
// float at a time through its strides: for products whose a has no vec4 axis, e.g. a 1×1 convolution
// on 7×7 planes (49-float rows) whose weights still load four at a time. Every output adds its
// products in k order from the bias, as `matmul` does: the same bits.
@group(0) @binding(1) var<storage, read> sa: array<f32>;

@compute @workgroup_size(WG)
fn matmul_vec4b(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let i = flat_index(gid, nwg);
    let l = wid.z;
    if (i >= p.total) { return; }
    let nw = 4u * NC;
    let jb = (p.n + nw - 1u) / nw;
    let j0 = (i % jb) * nw;
    let j1 = j0 + 4u;
    let m0 = (i / jb) * MR;
    let i0 = bias4(j0);
    var i1 = vec4<f32>(0.0);
    if (NC > 1u) { i1 = bias4(j1); }
    var c0 = i0; var c1 = i0; var c2 = i0; var c3 = i0; var c4 = i0; var c5 = i0; var c6 = i0; var c7 = i0;
    var d0 = i1; var d1 = i1; var d2 = i1; var d3 = i1; var d4 = i1; var d5 = i1; var d6 = i1; var d7 = i1;
    // Rows past m repeat the last (their results are not stored).
    let last = p.m - 1u;
    let base = l * p.a_l;
    let r0 = base + min(m0, last) * p.a_m;
    let r1 = base + min(m0 + 1u, last) * p.a_m;
    let r2 = base + min(m0 + 2u, last) * p.a_m;
    let r3 = base + min(m0 + 3u, last) * p.a_m;
    let r4 = base + min(m0 + 4u, last) * p.a_m;
    let r5 = base + min(m0 + 5u, last) * p.a_m;
    let r6 = base + min(m0 + 6u, last) * p.a_m;
    let r7 = base + min(m0 + 7u, last) * p.a_m;
    for (var q = 0u; q < p.k / 4u; q++) {
        let bl = b_cols(l, j0, q);
        var bh = bl;
        if (NC > 1u) { bh = b_cols(l, j1, q); }
        for (var kk = 0u; kk < 4u; kk++) {
            let ak = (4u * q + kk) * p.a_k;
            let b0 = bl[kk];
            let a0 = sa[r0 + ak];
            let a1 = sa[r1 + ak];
            let a2 = sa[r2 + ak];
            let a3 = sa[r3 + ak];
            c0 += a0 * b0;
            c1 += a1 * b0;
            c2 += a2 * b0;
            c3 += a3 * b0;
            var a4 = 0.0; var a5 = 0.0; var a6 = 0.0; var a7 = 0.0;
            if (MR > 4u) {
                a4 = sa[r4 + ak];
                a5 = sa[r5 + ak];
                a6 = sa[r6 + ak];
                a7 = sa[r7 + ak];
                c4 += a4 * b0;
                c5 += a5 * b0;
                c6 += a6 * b0;
                c7 += a7 * b0;
            }
            if (NC > 1u) {
                let b1 = bh[kk];
                d0 += a0 * b1;
                d1 += a1 * b1;
                d2 += a2 * b1;
                d3 += a3 * b1;
                if (MR > 4u) {
                    d4 += a4 * b1;
                    d5 += a5 * b1;
                    d6 += a6 * b1;
                    d7 += a7 * b1;
                }
            }
        }
    }
    store_block(l, m0, j0, array<vec4<f32>, 8>(c0, c1, c2, c3, c4, c5, c6, c7));
    if (NC > 1u) { store_block(l, m0, j0 + 4u, array<vec4<f32>, 8>(d0, d1, d2, d3, d4, d5, d6, d7)); }
}
