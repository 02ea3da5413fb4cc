// Register-blocked matrix product with strided operands, the fast path of the fully connected layer
// and its gradients: c[m, j] = Σ_k a[m, k] · b[k, j] (+ bias[j]), every operand addressed through its
// own (row, column) strides so that one kernel serves x·Wᵀ, dy·W and dyᵀ·x without transposing.
// Invocation i owns rows [m0, m0 + MR) and the columns [j0, j0 + 4·NC) as NC vec4 per row: MR·NC named
// vec4 accumulators, no private arrays (lavapipe keeps loop-indexed private arrays in memory).
// The plain kernels of linear.wgsl are the references this is tested against.

// Rows per invocation: 4 or 8.
override MR: u32 = 8u;
// vec4 column groups per invocation: 1 or 2 (columns [j0, j0 + 4·NC)).
override NC: u32 = 1u;
// Add bias[j] (otherwise bias is not read).
override BIAS: bool = false;

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
    _pad0: u32,
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
    let base = l * p.c_l + m * p.c_m + j0 * p.c_j;
    mm_c[base] = v.x;
    if (j0 + 1u < p.n) { mm_c[base + p.c_j] = v.y; }
    if (j0 + 2u < p.n) { mm_c[base + 2u * p.c_j] = v.z; }
    if (j0 + 3u < p.n) { mm_c[base + 3u * p.c_j] = v.w; }
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

fn store_tile_row(l: u32, m: u32, j0: u32, v: vec4<f32>) {
    if (m >= p.m || j0 >= p.n) { return; }
    store_row(l, m, j0, v);
}

@compute @workgroup_size(WG)
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
            let idx = t + e * WG; // 0..511 over the 32×16 block
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
    store_tile_row(l, mr, j0, c0);
    store_tile_row(l, mr + 1u, j0, c1);
    store_tile_row(l, mr + 2u, j0, c2);
    store_tile_row(l, mr + 3u, j0, c3);
}
