// Concatenation along channels, NCHW: each input ("part", [n, c_part, h, w]) is one dispatch that copies
// it into its channel slice [offset, offset + c_part) of the output ("whole", [n, c_whole, h, w]); the
// backward copies the slice of the output's gradient back out. Slices are disjoint: no races.
// When every run of the copy starts at a multiple of 4 in both tensors (c_part · h · w, offset · h · w
// and c_whole · h · w multiples of 4), the `4` entry points copy four values per invocation as one vec4 (a software adapter loads a storage
// buffer lane by lane, so a 16-byte load per lane moves 2-3x the bytes per step). A copy is exact either
// way.

struct ConcatParams {
    n: u32,
    c_part: u32,
    c_whole: u32,
    offset: u32,
    start: u32, // offset * h * w: where the slice starts in image 0 of whole, in the kernel's units
    total: u32, // n * c_part * h * w, in the kernel's units
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ConcatParams;

// concat_forward: part -> its slice of whole
@group(0) @binding(1) var<storage, read> cf_part: array<f32>;
@group(0) @binding(2) var<storage, read_write> cf_whole: array<f32>;

// concat_backward: dwhole -> dpart (the slice)
@group(0) @binding(1) var<storage, read> cb_whole: array<f32>;
@group(0) @binding(2) var<storage, read_write> cb_part: array<f32>;

// concat_forward4 / concat_backward4: the same in vec4s (p.total counts vec4s)
@group(0) @binding(1) var<storage, read> cf4_part: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> cf4_whole: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> cb4_whole: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> cb4_part: array<vec4<f32>>;

// One image's part, c_part · hw values, and its gap in whole, (c_whole − c_part) · hw, both in the
// kernel's units (values, or vec4s for the `4` entry points): constants set per pipeline, so the one
// division below is a multiplication (a division by a value known only at run
// time is eight scalar divisions per SIMD step on a software adapter).
override PART: u32 = 1u;
override GAP: u32 = 0u;

// The index in whole of element i of part: image b's part is one contiguous run in whole.
fn whole_index(i: u32) -> u32 {
    return i + (i / PART) * GAP + p.start;
}

@compute @workgroup_size(WG)
fn concat_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    cf_whole[whole_index(i)] = cf_part[i];
}

@compute @workgroup_size(WG)
fn concat_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    cb_part[i] = cb_whole[whole_index(i)];
}

@compute @workgroup_size(WG)
fn concat_forward4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    cf4_whole[whole_index(i)] = cf4_part[i];
}

@compute @workgroup_size(WG)
fn concat_backward4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    cb4_part[i] = cb4_whole[whole_index(i)];
}

// concat_backward_add / concat_backward_add4: dwhole, other -> dpart = the slice + other, the gradient
// sum of a part that another node also reads (a dense block's input) in one pass: the slice is never
// stored on its own. A sum of two values is the same whichever comes first: the bits of the copy then
// the add.
@group(0) @binding(1) var<storage, read> cba_whole: array<f32>;
@group(0) @binding(2) var<storage, read> cba_other: array<f32>;
@group(0) @binding(3) var<storage, read_write> cba_part: array<f32>;
@group(0) @binding(1) var<storage, read> cba4_whole: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> cba4_other: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> cba4_part: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn concat_backward_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    cba_part[i] = cba_whole[whole_index(i)] + cba_other[i];
}

@compute @workgroup_size(WG)
fn concat_backward_add4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.total) { return; }
    cba4_part[i] = cba4_whole[whole_index(i)] + cba4_other[i];
}
