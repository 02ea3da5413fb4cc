// Build a training batch on the GPU from a u8 dataset resident in GPU memory.
// images: bytes packed four to a u32 word, item_size bytes per item; labels: bytes, one per item;
// indices[first .. first + batch] (u32) -> x [batch, item_size] = byte / divisor, y [batch] (u32).
// An index >= num_items yields zeros and the label 0xffffffff (which the losses turn into NaN).

struct GatherParams {
    batch: u32,
    item_size: u32,
    num_items: u32,
    divisor: f32,
    first: u32, // position in `indices` of this batch's first index (one permutation per epoch)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: GatherParams;
@group(0) @binding(1) var<storage, read> images: array<u32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> indices: array<u32>;
@group(0) @binding(4) var<storage, read_write> out_x: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_y: array<u32>;

fn byte_at_images(at: u32) -> u32 {
    return (images[at / 4u] >> (8u * (at % 4u))) & 0xffu;
}

fn byte_at_labels(at: u32) -> u32 {
    return (labels[at / 4u] >> (8u * (at % 4u))) & 0xffu;
}

@compute @workgroup_size(WG)
fn gather_batch(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.batch * p.item_size) { return; }
    let b = i / p.item_size;
    let j = i % p.item_size;
    let item = indices[p.first + b];
    if (item >= p.num_items) {
        out_x[i] = 0.0;
        if (j == 0u) { out_y[b] = 0xffffffffu; }
        return;
    }
    out_x[i] = f32(byte_at_images(item * p.item_size + j)) / p.divisor;
    if (j == 0u) { out_y[b] = byte_at_labels(item); }
}
