// Batch normalisation over [n, c, hw] (PyTorch's BatchNorm2d). Every per-channel sum is a deterministic
// split reduction without atomics: batchnorm_partial sums a fixed run of `chunk` elements of one
// channel in order (thread k * c + ch writes partial[k, ch]); batchnorm_moments (the statistics, with
// the running update) and batchnorm_grad_sums (the parameter gradients) add the chunks' sums in order
// of k, as sum_chunks (reduce.wgsl) does. The statistics tensor holds raw sums, [Σ x, Σ (x − mean)²]
// per channel ([2, c]); consumers scale them by 1 / m (m = n · hw), as the CPU reference does.

struct BnParams {
    n: u32,
    c: u32,
    hw: u32,
    chunk: u32,      // elements of one channel per partial sum
    chunks: u32,     // partial sums per channel
    mode: u32,       // batchnorm_partial: 2 both Σ dy and Σ dy · x̂, 3 both Σ x and Σ (x − the
                     // chunk's mean)² (0 and 1: partial_walk's two halves of mode 3)
    eps: f32,
    momentum: f32,
    inv_m: f32,      // 1 / (n · hw)
    unbias: f32,     // m / (m − 1): the running variance is the unbiased one
    mean_scale: f32, // batchnorm_normalize: 1 / m for batch sums, 1 for running statistics
    offset: u32,     // batchnorm_normalize: where the variance starts in its source
}

// The channel count and plane size, set per pipeline (batchnorm_partial walks a channel element by
// element, the elementwise kernels find their run's channel: divisions by these become
// multiplications; a division by a value known only at run time is eight scalar divisions per SIMD
// step on a software adapter).
override C: u32 = 1u;
override HW: u32 = 1u;
// Elements per invocation of the elementwise kernels (a run inside one plane, so the channel's
// values load once per run).
const RUN: u32 = 4u;
// batchnorm_normalize: apply a ReLU to y (the fuse pass's bn_relu rule).
override RELU: bool = false;
// The backward kernels: dy is the gradient of a fused ReLU's output, masked here by that output
// (bp_y, bd_y) as the ReLU's backward would (the fuse pass's bn_relu_backward rule).
override MASK: bool = false;

@group(0) @binding(0) var<uniform> p: BnParams;

fn mean_of(s: f32) -> f32 { return s * p.inv_m; }

// Run t of the elementwise kernels: (channel, first element, end), or the channel C past the end.
fn run_of(t: u32) -> vec3<u32> {
    let runs = (HW + RUN - 1u) / RUN;
    if (t >= p.n * C * runs) { return vec3<u32>(C, 0u, 0u); }
    let plane = t / runs;
    let first = plane * HW + (t % runs) * RUN;
    return vec3<u32>(plane % C, first, min(first + RUN, (plane + 1u) * HW));
}
fn invstd_of(sq: f32) -> f32 { return 1.0 / sqrt(sq * p.inv_m + p.eps); }

// batchnorm_partial: a (x or dy), b (x for mode 2), stats -> partial [chunks, c]; y: the ReLU's output
// masking dy (with MASK; another operand, unread, without). Mode 2 reads dy once for both parameter
// gradients: partial [2, chunks, c], Σ dy in the first half and Σ dy · x̂ in the second, each added in
// the same order as a sum of its own.
@group(0) @binding(1) var<storage, read> bp_a: array<f32>;
@group(0) @binding(2) var<storage, read> bp_b: array<f32>;
@group(0) @binding(3) var<storage, read> bp_stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> bp_partial: array<f32>;
@group(0) @binding(5) var<storage, read> bp_y: array<f32>;

// Partial sum t's channel, its elements [first, last) of the channel's n · HW, and the channel's
// mean and inverse standard deviation where the mode needs them (mode 2; 0 and 1 otherwise); shared by the
// scalar and vec4 kernels.
struct Chunk {
    ch: u32,
    first: u32,
    last: u32,
    mean: f32,
    invstd: f32,
}

fn chunk_of(t: u32) -> Chunk {
    let ch = t % C;
    let first = (t / C) * p.chunk;
    var mean = 0.0;
    var invstd = 1.0;
    if (p.mode == 2u) {
        mean = mean_of(bp_stats[ch]);
        invstd = invstd_of(bp_stats[C + ch]);
    }
    return Chunk(ch, first, min(first + p.chunk, p.n * HW), mean, invstd);
}

// Chunk c's walk: (Σ a, Σ a · x̂) in `mode` 0 (the first alone), 1 (Σ (a − mean)², first alone) or 2
// (both; x̂ from b). Runs of 16 summed on their own, then added up: a rounding chain of ~16 +
// chunk/16 additions instead of chunk (3x closer to the exact sum on LeNet-sized channels).
// Element j of the channel is at base + off, base = (j / HW · C + ch) · HW and off = j % HW, both
// stepped along with j (a division per element costs more than the sum it feeds).
fn partial_walk(c: Chunk, mode: u32, mean: f32) -> vec2<f32> {
    var at = vec2<u32>(((c.first / HW) * C + c.ch) * HW, c.first % HW);
    var acc = 0.0;
    var acc_xhat = 0.0;
    for (var j0 = c.first; j0 < c.last; j0 += 16u) {
        var run = vec2(0.0);
        // A whole run of 16 has a constant trip count, so the compiler unrolls it (its loads need not
        // wait for one another); the chunk's last run may be shorter. The same additions either way.
        if (j0 + 16u <= c.last) {
            for (var u = 0u; u < 16u; u++) {
                run = walk_step(c, mode, mean, run, at);
                at = next_at(at);
            }
        } else {
            for (var j = j0; j < c.last; j++) {
                run = walk_step(c, mode, mean, run, at);
                at = next_at(at);
            }
        }
        acc += run.x;
        acc_xhat += run.y;
    }
    return vec2(acc, acc_xhat);
}

// The element after the one at (base, off) in a channel's walk: the next in its plane, or the first of
// the channel's plane in the next image.
fn next_at(at: vec2<u32>) -> vec2<u32> {
    if (at.y + 1u == HW) { return vec2(at.x + C * HW, 0u); }
    return vec2(at.x, at.y + 1u);
}

// The run's sums after the element at (base, off), in partial_walk's mode.
fn walk_step(c: Chunk, mode: u32, mean: f32, run: vec2<f32>, at: vec2<u32>) -> vec2<f32> {
    let i = at.x + at.y;
    var a = bp_a[i];
    if (MASK) { a = select(0.0, a, bp_y[i] > 0.0); }
    switch mode {
        case 0u: { return vec2(run.x + a, run.y); }
        case 1u: {
            let d = a - mean;
            return vec2(run.x + d * d, run.y);
        }
        default: { return vec2(run.x + a, run.y + a * ((bp_b[i] - mean) * c.invstd)); }
    }
}

// The sums of chunk t in p.mode: mode 3 walks the chunk for Σ x, then again, from cache by now, for
// Σ (x − the chunk's mean)² (one pass over x from memory for both statistics; batchnorm_moments
// merges the chunks).
fn store_partial(t: u32, first: vec2<f32>, centred: f32) {
    bp_partial[t] = first.x;
    if (p.mode == 2u) { bp_partial[p.chunks * C + t] = first.y; }
    if (p.mode == 3u) { bp_partial[p.chunks * C + t] = centred; }
}

// The walk's mode for p.mode: mode 3's first walk is mode 0's.
fn walk_mode() -> u32 {
    return select(p.mode, 0u, p.mode == 3u);
}

// Chunk c's own mean, from its Σ x.
fn chunk_mean(c: Chunk, sum: f32) -> f32 {
    return sum / f32(c.last - c.first);
}

@compute @workgroup_size(WG)
fn batchnorm_partial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(gid, nwg);
    if (t >= p.chunks * C) { return; }
    let c = chunk_of(t);
    let first = partial_walk(c, walk_mode(), c.mean);
    var centred = 0.0;
    if (p.mode == 3u) { centred = partial_walk(c, 1u, chunk_mean(c, first.x)).x; }
    store_partial(t, first, centred);
}

// The `4` entry points: the same kernels over vec4s, for planes whose size HW is a multiple of 4 (so a
// vec4 never straddles two planes, and a software adapter, which loads a storage buffer lane by lane,
// moves 16 bytes per load instead of 4). Each value's arithmetic is the same, and batchnorm_partial4
// adds a vec4's four values one by one in the scalar kernel's order: the same bits. Their x, y and dy
// bindings are vec4 arrays; the per-channel operands stay scalar.
@group(0) @binding(1) var<storage, read> bp4_a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bp4_b: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> bp4_y: array<vec4<f32>>;

// partial_walk over vec4s, for p.chunk a multiple of 4: a vec4's four values added one by one.
fn partial_walk4(c: Chunk, mode: u32, mean: f32) -> vec2<f32> {
    let plane4 = HW / 4u;
    var base = ((c.first / HW) * C + c.ch) * plane4;
    var off = (c.first % HW) / 4u;
    var acc = 0.0;
    var acc_xhat = 0.0;
    for (var j0 = c.first; j0 < c.last; j0 += 16u) {
        var run = 0.0;
        var run_xhat = 0.0;
        for (var j = j0; j < min(j0 + 16u, c.last); j += 4u) {
            let i = base + off;
            off += 1u;
            if (off == plane4) {
                off = 0u;
                base += C * plane4;
            }
            var a = bp4_a[i];
            if (MASK) { a = select(vec4(0.0), a, bp4_y[i] > vec4(0.0)); }
            switch mode {
                case 0u: {
                    run += a.x;
                    run += a.y;
                    run += a.z;
                    run += a.w;
                }
                case 1u: {
                    let d = a - mean;
                    run += d.x * d.x;
                    run += d.y * d.y;
                    run += d.z * d.z;
                    run += d.w * d.w;
                }
                default: {
                    run += a.x;
                    run += a.y;
                    run += a.z;
                    run += a.w;
                    let q = a * ((bp4_b[i] - mean) * c.invstd);
                    run_xhat += q.x;
                    run_xhat += q.y;
                    run_xhat += q.z;
                    run_xhat += q.w;
                }
            }
        }
        acc += run;
        acc_xhat += run_xhat;
    }
    return vec2(acc, acc_xhat);
}

// batchnorm_partial4: batchnorm_partial with p.chunk a multiple of 4.
@compute @workgroup_size(WG)
fn batchnorm_partial4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(gid, nwg);
    if (t >= p.chunks * C) { return; }
    let c = chunk_of(t);
    let first = partial_walk4(c, walk_mode(), c.mean);
    var centred = 0.0;
    if (p.mode == 3u) { centred = partial_walk4(c, 1u, chunk_mean(c, first.x)).x; }
    store_partial(t, first, centred);
}

// batchnorm_moments: the chunks' [Σ x, Σ (x − the chunk's mean)²] (batchnorm_partial in mode 3,
// [2, chunks, C]) -> stats [Σ x, Σ (x − mean)²] per channel. Σ x adds the chunks in order, as
// sum_chunks does (the same bits); Σ (x − mean)² = Σ_k (M2_k + n_k · (mean_k − mean)²), in the same
// order (the pairwise update of Chan, Golub and LeVeque: no cancellation).
@group(0) @binding(1) var<storage, read> bm_partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> bm_stats: array<f32>;
// With RUNNING, the running statistics updated in place from the merged ones, as batchnorm_running
// does (the same arithmetic on the same values: one dispatch fewer per training batch-norm).
@group(0) @binding(3) var<storage, read_write> bm_rmean: array<f32>;
@group(0) @binding(4) var<storage, read_write> bm_rvar: array<f32>;
override RUNNING: bool = false;

// PyTorch's momentum rule: the running (mean, variance) `old` updated from a channel's batch sums
// (Σ x, Σ (x − mean)²), with the unbiased variance.
fn momentum_rule(sum: f32, m2: f32, old: vec2<f32>) -> vec2<f32> {
    let var_unbiased = m2 * p.inv_m * p.unbias;
    return vec2(p.momentum * mean_of(sum) + (1.0 - p.momentum) * old.x,
                p.momentum * var_unbiased + (1.0 - p.momentum) * old.y);
}

@compute @workgroup_size(WG)
fn batchnorm_moments(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let ch = flat_index(gid, nwg);
    if (ch >= C) { return; }
    var sum = 0.0;
    for (var k = 0u; k < p.chunks; k++) {
        sum += bm_partial[k * C + ch];
    }
    let mean = mean_of(sum);
    let m = p.n * HW;
    var m2 = 0.0;
    for (var k = 0u; k < p.chunks; k++) {
        let first = k * p.chunk;
        let count = f32(min(first + p.chunk, m) - first);
        let d = bm_partial[k * C + ch] / count - mean;
        m2 += bm_partial[(p.chunks + k) * C + ch] + count * d * d;
    }
    bm_stats[ch] = sum;
    bm_stats[C + ch] = m2;
    if (RUNNING) {
        let r = momentum_rule(sum, m2, vec2(bm_rmean[ch], bm_rvar[ch]));
        bm_rmean[ch] = r.x;
        bm_rvar[ch] = r.y;
    }
}

// batchnorm_grad_sums: mode 2's chunks ([2, chunks, C]: Σ dy, then Σ dy · x̂) -> dbias and dweight,
// each channel's chunks added in order from 0, as sum_chunks adds them (the same bits), both sums in
// one dispatch: invocation t < C sums Σ dy of channel t, t ≥ C Σ dy · x̂ of channel t − C.
@group(0) @binding(1) var<storage, read> bg_partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> bg_dbias: array<f32>;
@group(0) @binding(3) var<storage, read_write> bg_dweight: array<f32>;

@compute @workgroup_size(WG)
fn batchnorm_grad_sums(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(gid, nwg);
    if (t >= 2u * C) { return; }
    let ch = t % C;
    let first = (t / C) * p.chunks * C;
    var acc = 0.0;
    for (var k = 0u; k < p.chunks; k++) {
        acc += bg_partial[first + k * C + ch];
    }
    if (t < C) {
        bg_dbias[ch] = acc;
    } else {
        bg_dweight[ch] = acc;
    }
}

// batchnorm_normalize: x, weight, bias, mean source, variance source -> y
//   y = (x − mean) / sqrt(var + eps) · weight + bias, mean = mean_src[ch] · mean_scale and
//   var = var_src[offset + ch] · mean_scale (batch sums in training, running statistics in evaluation)
@group(0) @binding(1) var<storage, read> bn_x: array<f32>;
@group(0) @binding(2) var<storage, read> bn_w: array<f32>;
@group(0) @binding(3) var<storage, read> bn_b: array<f32>;
@group(0) @binding(4) var<storage, read> bn_mean: array<f32>;
@group(0) @binding(5) var<storage, read> bn_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> bn_y: array<f32>;

// Channel ch's normalisation, shared by the scalar and vec4 kernels: y = (x − mean) · scale + shift.
struct BnAffine {
    mean: f32,
    scale: f32,
    shift: f32,
}

fn affine_of(ch: u32) -> BnAffine {
    let invstd = 1.0 / sqrt(bn_var[p.offset + ch] * p.mean_scale + p.eps);
    return BnAffine(bn_mean[ch] * p.mean_scale, invstd * bn_w[ch], bn_b[ch]);
}

@compute @workgroup_size(WG)
fn batchnorm_normalize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = run_of(flat_index(gid, nwg));
    if (r.x >= C) { return; }
    let a = affine_of(r.x);
    // A constant trip count (the run's end checked inside), so the loop unrolls.
    for (var k = 0u; k < RUN; k++) {
        let i = r.y + k;
        if (i >= r.z) { break; }
        let v = (bn_x[i] - a.mean) * a.scale + a.shift;
        if (RELU) {
            bn_y[i] = max(v, 0.0);
        } else {
            bn_y[i] = v;
        }
    }
}

@group(0) @binding(1) var<storage, read> bn4_x: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> bn4_y: array<vec4<f32>>;

// The vec4 elementwise kernels take a run of RUN4 vec4s of one plane per invocation, so that the
// channel's values (four or five lane-by-lane loads and a square root on a software adapter) are
// found once per run instead of once per vec4.
const RUN4: u32 = 4u;
// The vec4 elementwise kernels on planes whose size HW is not a multiple of 4 but at least 4 · RUN4
// (7×7 maps), with n · C · HW a multiple of 4: run t is vec4s [t · RUN4, t · RUN4 + RUN4) of the whole
// tensor, which may cross one plane boundary (never two), so it takes the values of two channels and
// picks each value's by its index. Every value's arithmetic is the scalar kernel's: the same bits.
override STRADDLE: bool = false;

// A run of the vec4 elementwise kernels: the channel of its first value (C past the end), of its last
// (the same unless STRADDLE crosses a boundary), its vec4s [first, end), and the index of the first
// value of the last value's plane (STRADDLE: values before it are the first channel's).
struct Run4 {
    ch: u32,
    ch_last: u32,
    first: u32,
    end: u32,
    boundary: u32,
}

fn run4_of(t: u32) -> Run4 {
    if (STRADDLE) {
        let total = (p.n * C * HW) / 4u;
        let first = t * RUN4;
        if (first >= total) { return Run4(C, C, 0u, 0u, 0u); }
        let end = min(first + RUN4, total);
        let plane = (4u * first) / HW;
        let plane_last = (4u * end - 1u) / HW;
        return Run4(plane % C, plane_last % C, first, end, plane_last * HW);
    }
    let plane4 = max(HW / 4u, 1u); // (1 only for the constants' defaults, which no launch uses)
    let runs = (plane4 + RUN4 - 1u) / RUN4;
    if (t >= p.n * C * runs) { return Run4(C, C, 0u, 0u, 0u); }
    let plane = t / runs;
    let first = plane * plane4 + (t % runs) * RUN4;
    return Run4(plane % C, plane % C, first, min(first + RUN4, (plane + 1u) * plane4), 0u);
}

// Which values of vec4 v belong to the run's last channel (none unless STRADDLE).
fn past_boundary(r: Run4, v: u32) -> vec4<bool> {
    if (!STRADDLE) { return vec4(false); }
    return vec4(4u * v) + vec4(0u, 1u, 2u, 3u) >= vec4(r.boundary);
}

// batchnorm_normalize4: batchnorm_normalize over a run of vec4s per invocation.
@compute @workgroup_size(WG)
fn batchnorm_normalize4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = run4_of(flat_index(gid, nwg));
    if (r.ch >= C) { return; }
    let a = affine_of(r.ch);
    var b = a;
    if (STRADDLE) { b = affine_of(r.ch_last); }
    for (var t = r.first; t < r.end; t++) {
        let hi = past_boundary(r, t);
        let mean = select(vec4(a.mean), vec4(b.mean), hi);
        let scale = select(vec4(a.scale), vec4(b.scale), hi);
        let shift = select(vec4(a.shift), vec4(b.shift), hi);
        let v = (bn4_x[t] - mean) * scale + shift;
        if (RELU) {
            bn4_y[t] = max(v, vec4(0.0));
        } else {
            bn4_y[t] = v;
        }
    }
}

// batchnorm_running: stats -> running_mean, running_var updated in place (PyTorch's momentum rule)
@group(0) @binding(1) var<storage, read> br_stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> br_mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> br_var: array<f32>;

@compute @workgroup_size(WG)
fn batchnorm_running(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let ch = flat_index(gid, nwg);
    if (ch >= C) { return; }
    let r = momentum_rule(br_stats[ch], br_stats[C + ch], vec2(br_mean[ch], br_var[ch]));
    br_mean[ch] = r.x;
    br_var[ch] = r.y;
}

// batchnorm_backward_input: dy, x, stats, weight, dweight (Σ dy · x̂), dbias (Σ dy) -> dx; y as in
// batchnorm_partial
//   dx = weight · invstd · (dy − dbias / m − x̂ · dweight / m)
@group(0) @binding(1) var<storage, read> bd_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bd_x: array<f32>;
@group(0) @binding(3) var<storage, read> bd_stats: array<f32>;
@group(0) @binding(4) var<storage, read> bd_w: array<f32>;
@group(0) @binding(5) var<storage, read> bd_dw: array<f32>;
@group(0) @binding(6) var<storage, read> bd_db: array<f32>;
@group(0) @binding(7) var<storage, read_write> bd_dx: array<f32>;
@group(0) @binding(8) var<storage, read> bd_y: array<f32>;

// Channel ch's terms of the input gradient, shared by the scalar and vec4 kernels:
// dx = scale · (dy − db_m − (x − mean) · invstd · dw_m).
struct BdTerms {
    mean: f32,
    invstd: f32,
    scale: f32,
    db_m: f32,
    dw_m: f32,
}

fn terms_of(ch: u32) -> BdTerms {
    let invstd = invstd_of(bd_stats[C + ch]);
    return BdTerms(mean_of(bd_stats[ch]), invstd, bd_w[ch] * invstd, bd_db[ch] * p.inv_m, bd_dw[ch] * p.inv_m);
}

@compute @workgroup_size(WG)
fn batchnorm_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = run_of(flat_index(gid, nwg));
    if (r.x >= C) { return; }
    let t = terms_of(r.x);
    for (var k = 0u; k < RUN; k++) {
        let i = r.y + k;
        if (i >= r.z) { break; }
        let xhat = (bd_x[i] - t.mean) * t.invstd;
        var dy = bd_dy[i];
        if (MASK) { dy = select(0.0, dy, bd_y[i] > 0.0); }
        bd_dx[i] = t.scale * (dy - t.db_m - xhat * t.dw_m);
    }
}

@group(0) @binding(1) var<storage, read> bd4_dy: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bd4_x: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> bd4_dx: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> bd4_y: array<vec4<f32>>;

// batchnorm_backward_input4: batchnorm_backward_input over a run of vec4s per invocation.
@compute @workgroup_size(WG)
fn batchnorm_backward_input4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = run4_of(flat_index(gid, nwg));
    if (r.ch >= C) { return; }
    let c = terms_of(r.ch);
    var d = c;
    if (STRADDLE) { d = terms_of(r.ch_last); }
    for (var t = r.first; t < r.end; t++) {
        let hi = past_boundary(r, t);
        let mean = select(vec4(c.mean), vec4(d.mean), hi);
        let invstd = select(vec4(c.invstd), vec4(d.invstd), hi);
        let scale = select(vec4(c.scale), vec4(d.scale), hi);
        let db_m = select(vec4(c.db_m), vec4(d.db_m), hi);
        let dw_m = select(vec4(c.dw_m), vec4(d.dw_m), hi);
        let xhat = (bd4_x[t] - mean) * invstd;
        var dy = bd4_dy[t];
        if (MASK) { dy = select(vec4(0.0), dy, bd4_y[t] > vec4(0.0)); }
        bd4_dx[t] = scale * (dy - db_m - xhat * dw_m);
    }
}

// batchnorm_fold: conv weight, conv bias, weight, bias, running_mean, running_var -> w', b' (a conv
// followed by an evaluation-form batch-norm becomes one conv): with s = weight / sqrt(var + eps),
// w'[co, ..] = w[co, ..] · s[co] and b'[co] = (b[co] − mean[co]) · s[co] + bias[co]. Here C counts the
// conv's output channels (p.c) and p.hw the weights of one output channel.
@group(0) @binding(1) var<storage, read> bf_w: array<f32>;
@group(0) @binding(2) var<storage, read> bf_b: array<f32>;
@group(0) @binding(3) var<storage, read> bf_gamma: array<f32>;
@group(0) @binding(4) var<storage, read> bf_beta: array<f32>;
@group(0) @binding(5) var<storage, read> bf_mean: array<f32>;
@group(0) @binding(6) var<storage, read> bf_var: array<f32>;
@group(0) @binding(7) var<storage, read_write> bf_w2: array<f32>;
@group(0) @binding(8) var<storage, read_write> bf_b2: array<f32>;

@compute @workgroup_size(WG)
fn batchnorm_fold(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.c * p.hw) { return; }
    let co = i / p.hw;
    let s = bf_gamma[co] / sqrt(bf_var[co] + p.eps);
    bf_w2[i] = bf_w[i] * s;
    if (i % p.hw == 0u) {
        bf_b2[co] = (bf_b[co] - bf_mean[co]) * s + bf_beta[co];
    }
}
