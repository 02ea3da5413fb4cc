// Register-blocked matrix product with strided operands, the fast path of the fully connected layer
// and its gradients: c[m, j] = Σ_k a[m, k] · b[k, j] (+ bias[j]), every operand addressed through its
// own (row, column) strides so that one kernel serves x·Wᵀ, dy·W and dyᵀ·x without transposing.
// Invocation i owns rows [m0, m0 + MR) and the columns [j0, j0 + 4·NC) as NC vec4 per row: MR·NC named
// vec4 accumulators, no private arrays (lavapipe keeps loop-indexed private arrays in memory).
// The plain kernels of linear.wgsl are the references this is tested against.

// Rows per invocation: 4 or 8.
override MR: u32 = 8u;
// vec4 column groups per invocation: 1 or 2 (columns [j0, j0 + 4·NC)); matmul_ub also 4.
override NC: u32 = 1u;
// Add bias[j] (otherwise bias is not read).
override BIAS: bool = false;
// Store max(c, 0): a fully connected layer followed by ReLU in one pass (the fuse pass's
// `linear_relu`), the value relu_forward computes from the stored product.
override RELU: bool = false;

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    total: u32, // invocations: ceil(m / MR) * ceil(n / (4 * NC))
    a_m: u32,   // strides of a: a[m, k] = a[m * a_m + k * a_k]
    a_k: u32,
    b_k: u32,   // strides of b
    b_j: u32,
    c_m: u32,   // strides of c
    c_j: u32,
    a_l: u32,   // batched products: where operand l of each starts (layer l = workgroup_id.z)
    b_l: u32,
    c_l: u32,
    count: u32, // matmul_ub: the products (grid layers for the others)
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> mm_a: array<f32>;
@group(0) @binding(2) var<storage, read> mm_b: array<f32>;
@group(0) @binding(3) var<storage, read> mm_bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> mm_c: array<f32>;

// Row r of the block in product l, clamped to the last row (its result is not stored).
fn a_row(l: u32, m0: u32, r: u32) -> u32 {
    return l * p.a_l + min(m0 + r, p.m - 1u) * p.a_m;
}

fn store_row(l: u32, m: u32, j0: u32, v: vec4<f32>) {
    if (m >= p.m || j0 >= p.n) { return; }
    store_cols(l * p.c_l + m * p.c_m, j0, v);
}

// Columns [j0, j0 + 4) of the row of c at offset `row`, those that exist (j0 itself does).
fn store_cols(row: u32, j0: u32, c: vec4<f32>) {
    let v = select(c, max(c, vec4<f32>(0.0)), RELU);
    let at = row + j0 * p.c_j;
    mm_c[at] = v.x;
    if (j0 + 1u < p.n) { mm_c[at + p.c_j] = v.y; }
    if (j0 + 2u < p.n) { mm_c[at + 2u * p.c_j] = v.z; }
    if (j0 + 3u < p.n) { mm_c[at + 3u * p.c_j] = v.w; }
}

// Columns [j0, j0 + 4) of b at row offset bo (clamped to the last column) and of the bias.
fn b_cols(bo: u32, j0: u32) -> vec4<f32> {
    let last = p.n - 1u;
    return vec4<f32>(mm_b[bo + min(j0, last) * p.b_j], mm_b[bo + min(j0 + 1u, last) * p.b_j],
                     mm_b[bo + min(j0 + 2u, last) * p.b_j], mm_b[bo + min(j0 + 3u, last) * p.b_j]);
}

fn bias_cols(j0: u32) -> vec4<f32> {
    if (!BIAS) { return vec4<f32>(0.0); }
    let last = p.n - 1u;
    return vec4<f32>(mm_bias[min(j0, last)], mm_bias[min(j0 + 1u, last)], mm_bias[min(j0 + 2u, last)],
                     mm_bias[min(j0 + 3u, last)]);
}

@compute @workgroup_size(WG)
fn matmul(
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
    let init = bias_cols(j0);
    var init1 = vec4<f32>(0.0);
    if (NC > 1u) { init1 = bias_cols(j1); }
    var c0 = init; var c1 = init; var c2 = init; var c3 = init;
    var c4 = init; var c5 = init; var c6 = init; var c7 = init;
    var d0 = init1; var d1 = init1; var d2 = init1; var d3 = init1;
    var d4 = init1; var d5 = init1; var d6 = init1; var d7 = init1;
    let r0 = a_row(l, m0, 0u);
    let r1 = a_row(l, m0, 1u);
    let r2 = a_row(l, m0, 2u);
    let r3 = a_row(l, m0, 3u);
    let r4 = a_row(l, m0, 4u);
    let r5 = a_row(l, m0, 5u);
    let r6 = a_row(l, m0, 6u);
    let r7 = a_row(l, m0, 7u);
    for (var k = 0u; k < p.k; k++) {
        let bo = l * p.b_l + k * p.b_k;
        let b0 = b_cols(bo, j0);
        let ak = k * p.a_k;
        let a0 = mm_a[r0 + ak];
        let a1 = mm_a[r1 + ak];
        let a2 = mm_a[r2 + ak];
        let a3 = mm_a[r3 + ak];
        c0 += a0 * b0;
        c1 += a1 * b0;
        c2 += a2 * b0;
        c3 += a3 * b0;
        var a4 = 0.0; var a5 = 0.0; var a6 = 0.0; var a7 = 0.0;
        if (MR > 4u) {
            a4 = mm_a[r4 + ak];
            a5 = mm_a[r5 + ak];
            a6 = mm_a[r6 + ak];
            a7 = mm_a[r7 + ak];
            c4 += a4 * b0;
            c5 += a5 * b0;
            c6 += a6 * b0;
            c7 += a7 * b0;
        }
        if (NC > 1u) {
            let b1 = b_cols(bo, j1);
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
    store_row(l, m0, j0, c0);
    store_row(l, m0 + 1u, j0, c1);
    store_row(l, m0 + 2u, j0, c2);
    store_row(l, m0 + 3u, j0, c3);
    if (MR > 4u) {
        store_row(l, m0 + 4u, j0, c4);
        store_row(l, m0 + 5u, j0, c5);
        store_row(l, m0 + 6u, j0, c6);
        store_row(l, m0 + 7u, j0, c7);
    }
    if (NC > 1u) {
        store_row(l, m0, j1, d0);
        store_row(l, m0 + 1u, j1, d1);
        store_row(l, m0 + 2u, j1, d2);
        store_row(l, m0 + 3u, j1, d3);
        if (MR > 4u) {
            store_row(l, m0 + 4u, j1, d4);
            store_row(l, m0 + 5u, j1, d5);
            store_row(l, m0 + 6u, j1, d6);
            store_row(l, m0 + 7u, j1, d7);
        }
    }
}

// matmul_tiled: the same product for hardware adapters, through workgroup memory. A workgroup of 64
// computes a 32×32 tile of c: per step it stages a 32×16 block of a and a 16×32 block of b in
// workgroup memory (each invocation loads 8 of each, zero past the edges), then invocation
// (tr, tc) = (t / 8, t % 8) accumulates rows 4·tr.. and columns 4·tc.. of the tile as four vec4.
// Every operand element is read from storage once per tile instead of once per output row/column.
// `p.total` is the number of tiles per product; the grid holds one workgroup per tile.
const TILE: u32 = 32u;
const TK: u32 = 16u;

var<workgroup> tile_a: array<vec4<f32>, 128>; // [k][row / 4]: tile_a[kk * 8 + r / 4][r % 4]
var<workgroup> tile_b: array<vec4<f32>, 128>; // [k][col / 4]

@compute @workgroup_size(WG_FIXED)
fn matmul_tiled(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= p.total) { return; }
    let l = wid.z;
    let tiles_n = (p.n + TILE - 1u) / TILE;
    let m0 = (tile / tiles_n) * TILE;
    let n0 = (tile % tiles_n) * TILE;
    let tr = t / 8u;
    let tc = t % 8u;
    var init = vec4<f32>(0.0);
    if (BIAS) {
        let last = p.n - 1u;
        let j = n0 + tc * 4u;
        init = vec4<f32>(mm_bias[min(j, last)], mm_bias[min(j + 1u, last)], mm_bias[min(j + 2u, last)],
                         mm_bias[min(j + 3u, last)]);
    }
    var c0 = init;
    var c1 = init;
    var c2 = init;
    var c3 = init;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        for (var e = 0u; e < 8u; e++) {
            let idx = t + e * WG_FIXED; // 0..511 over the 32×16 block
            let r = idx % TILE;
            let kk = idx / TILE;
            let m = m0 + r;
            let k = k0 + kk;
            var av = 0.0;
            if (m < p.m && k < p.k) { av = mm_a[l * p.a_l + m * p.a_m + k * p.a_k]; }
            tile_a[kk * 8u + r / 4u][r % 4u] = av;
            let j = n0 + r;
            var bv = 0.0;
            if (j < p.n && k < p.k) { bv = mm_b[l * p.b_l + k * p.b_k + j * p.b_j]; }
            tile_b[kk * 8u + r / 4u][r % 4u] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let a = tile_a[kk * 8u + tr];
            let b = tile_b[kk * 8u + tc];
            c0 += a.x * b;
            c1 += a.y * b;
            c2 += a.z * b;
            c3 += a.w * b;
        }
        workgroupBarrier();
    }
    let j0 = n0 + tc * 4u;
    let mr = m0 + tr * 4u;
    store_row(l, mr, j0, c0);
    store_row(l, mr + 1u, j0, c1);
    store_row(l, mr + 2u, j0, c2);
    store_row(l, mr + 3u, j0, c3);
}

// matmul_ub: the product for products that share b (p.b_l = 0), with b read through the uniform window
// mm_bu (the same bytes as b): the invocations of a workgroup share their columns, so every b index
// is uniform across it, and a software adapter loads it once for all lanes where a storage load is
// made lane by lane. The rows of all p.count products form one axis (row r: product r / m, its row
// r % m), split into blocks of MR rows over the invocations; grid layer z is the block of 4·NC
// columns. Only a is gathered per lane: MR loads per step of k for 4·MR·NC multiply-adds. Each output
// adds its products in k order from the bias, as matmul does: the same bits.
@group(0) @binding(2) var<uniform> mm_bu: array<vec4<f32>, 4096>;

fn bu_at(idx: u32) -> f32 {
    return mm_bu[idx / 4u][idx % 4u];
}

// Columns [j0, j0 + 4) of b at row offset bo, clamped to the last column.
fn bu_cols(bo: u32, j0: u32) -> vec4<f32> {
    let last = p.n - 1u;
    return vec4<f32>(bu_at(bo + min(j0, last) * p.b_j), bu_at(bo + min(j0 + 1u, last) * p.b_j),
                     bu_at(bo + min(j0 + 2u, last) * p.b_j), bu_at(bo + min(j0 + 3u, last) * p.b_j));
}

// Where row r of the folded axis (clamped to the last) starts in a (x) and in c (y).
fn ub_row(r: u32) -> vec2<u32> {
    let rr = min(r, p.count * p.m - 1u);
    let l = rr / p.m;
    let i = rr % p.m;
    return vec2<u32>(l * p.a_l + i * p.a_m, l * p.c_l + i * p.c_m);
}

// Columns [j0, j0 + 4) of row r of the folded axis (its start in c: base), those that exist.
fn ub_store(r: u32, base: u32, j0: u32, v: vec4<f32>) {
    if (r >= p.count * p.m || j0 >= p.n) { return; }
    store_cols(base, j0, v);
}

@compute @workgroup_size(WG)
fn matmul_ub(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    let r0 = i * MR;
    let j0 = wid.z * 4u * NC;
    let init0 = bias_cols(j0);
    var init1 = vec4<f32>(0.0);
    if (NC > 1u) { init1 = bias_cols(j0 + 4u); }
    var init2 = vec4<f32>(0.0);
    if (NC > 2u) { init2 = bias_cols(j0 + 8u); }
    var init3 = vec4<f32>(0.0);
    if (NC > 3u) { init3 = bias_cols(j0 + 12u); }
    var u00 = init0; var u01 = init1; var u02 = init2; var u03 = init3;
    var u10 = init0; var u11 = init1; var u12 = init2; var u13 = init3;
    var u20 = init0; var u21 = init1; var u22 = init2; var u23 = init3;
    var u30 = init0; var u31 = init1; var u32 = init2; var u33 = init3;
    var u40 = init0; var u41 = init1; var u42 = init2; var u43 = init3;
    var u50 = init0; var u51 = init1; var u52 = init2; var u53 = init3;
    var u60 = init0; var u61 = init1; var u62 = init2; var u63 = init3;
    var u70 = init0; var u71 = init1; var u72 = init2; var u73 = init3;
    let o0 = ub_row(r0 + 0u);
    let o1 = ub_row(r0 + 1u);
    let o2 = ub_row(r0 + 2u);
    let o3 = ub_row(r0 + 3u);
    let o4 = ub_row(r0 + 4u);
    let o5 = ub_row(r0 + 5u);
    let o6 = ub_row(r0 + 6u);
    let o7 = ub_row(r0 + 7u);
    for (var k = 0u; k < p.k; k++) {
        let bo = k * p.b_k;
        let b0 = bu_cols(bo, j0);
        var b1 = vec4<f32>(0.0);
        var b2 = vec4<f32>(0.0);
        var b3 = vec4<f32>(0.0);
        if (NC > 1u) { b1 = bu_cols(bo, j0 + 4u); }
        if (NC > 2u) {
            b2 = bu_cols(bo, j0 + 8u);
            b3 = bu_cols(bo, j0 + 12u);
        }
        let ak = k * p.a_k;
        let a0 = mm_a[o0.x + ak];
        u00 += a0 * b0;
        if (NC > 1u) { u01 += a0 * b1; }
        if (NC > 2u) {
            u02 += a0 * b2;
            u03 += a0 * b3;
        }
        let a1 = mm_a[o1.x + ak];
        u10 += a1 * b0;
        if (NC > 1u) { u11 += a1 * b1; }
        if (NC > 2u) {
            u12 += a1 * b2;
            u13 += a1 * b3;
        }
        let a2 = mm_a[o2.x + ak];
        u20 += a2 * b0;
        if (NC > 1u) { u21 += a2 * b1; }
        if (NC > 2u) {
            u22 += a2 * b2;
            u23 += a2 * b3;
        }
        let a3 = mm_a[o3.x + ak];
        u30 += a3 * b0;
        if (NC > 1u) { u31 += a3 * b1; }
        if (NC > 2u) {
            u32 += a3 * b2;
            u33 += a3 * b3;
        }
        if (MR > 4u) {
            let a4 = mm_a[o4.x + ak];
            u40 += a4 * b0;
            if (NC > 1u) { u41 += a4 * b1; }
            if (NC > 2u) {
                u42 += a4 * b2;
                u43 += a4 * b3;
            }
            let a5 = mm_a[o5.x + ak];
            u50 += a5 * b0;
            if (NC > 1u) { u51 += a5 * b1; }
            if (NC > 2u) {
                u52 += a5 * b2;
                u53 += a5 * b3;
            }
            let a6 = mm_a[o6.x + ak];
            u60 += a6 * b0;
            if (NC > 1u) { u61 += a6 * b1; }
            if (NC > 2u) {
                u62 += a6 * b2;
                u63 += a6 * b3;
            }
            let a7 = mm_a[o7.x + ak];
            u70 += a7 * b0;
            if (NC > 1u) { u71 += a7 * b1; }
            if (NC > 2u) {
                u72 += a7 * b2;
                u73 += a7 * b3;
            }
        }
    }
    ub_store(r0 + 0u, o0.y, j0, u00);
    if (NC > 1u) { ub_store(r0 + 0u, o0.y, j0 + 4u, u01); }
    if (NC > 2u) {
        ub_store(r0 + 0u, o0.y, j0 + 8u, u02);
        ub_store(r0 + 0u, o0.y, j0 + 12u, u03);
    }
    ub_store(r0 + 1u, o1.y, j0, u10);
    if (NC > 1u) { ub_store(r0 + 1u, o1.y, j0 + 4u, u11); }
    if (NC > 2u) {
        ub_store(r0 + 1u, o1.y, j0 + 8u, u12);
        ub_store(r0 + 1u, o1.y, j0 + 12u, u13);
    }
    ub_store(r0 + 2u, o2.y, j0, u20);
    if (NC > 1u) { ub_store(r0 + 2u, o2.y, j0 + 4u, u21); }
    if (NC > 2u) {
        ub_store(r0 + 2u, o2.y, j0 + 8u, u22);
        ub_store(r0 + 2u, o2.y, j0 + 12u, u23);
    }
    ub_store(r0 + 3u, o3.y, j0, u30);
    if (NC > 1u) { ub_store(r0 + 3u, o3.y, j0 + 4u, u31); }
    if (NC > 2u) {
        ub_store(r0 + 3u, o3.y, j0 + 8u, u32);
        ub_store(r0 + 3u, o3.y, j0 + 12u, u33);
    }
    if (MR > 4u) {
        ub_store(r0 + 4u, o4.y, j0, u40);
        if (NC > 1u) { ub_store(r0 + 4u, o4.y, j0 + 4u, u41); }
        if (NC > 2u) {
            ub_store(r0 + 4u, o4.y, j0 + 8u, u42);
            ub_store(r0 + 4u, o4.y, j0 + 12u, u43);
        }
        ub_store(r0 + 5u, o5.y, j0, u50);
        if (NC > 1u) { ub_store(r0 + 5u, o5.y, j0 + 4u, u51); }
        if (NC > 2u) {
            ub_store(r0 + 5u, o5.y, j0 + 8u, u52);
            ub_store(r0 + 5u, o5.y, j0 + 12u, u53);
        }
        ub_store(r0 + 6u, o6.y, j0, u60);
        if (NC > 1u) { ub_store(r0 + 6u, o6.y, j0 + 4u, u61); }
        if (NC > 2u) {
            ub_store(r0 + 6u, o6.y, j0 + 8u, u62);
            ub_store(r0 + 6u, o6.y, j0 + 12u, u63);
        }
        ub_store(r0 + 7u, o7.y, j0, u70);
        if (NC > 1u) { ub_store(r0 + 7u, o7.y, j0 + 4u, u71); }
        if (NC > 2u) {
            ub_store(r0 + 7u, o7.y, j0 + 8u, u72);
            ub_store(r0 + 7u, o7.y, j0 + 12u, u73);
        }
    }
}
