// Build a training batch on the GPU from a u8 dataset resident in GPU memory.
// images: bytes packed four to a u32 word, item_size bytes per item; labels: bytes, one per item;
// indices[first .. first + batch] (u32) -> x [batch, item_size] = byte / divisor, y [batch] (u32).
// An index >= total_items yields zeros and the label 0xffffffff (which the losses turn into NaN).
// A data set over the storage-binding limit is split into shards, one launch each: a launch fills only
// the rows whose item lies in its shard [shard_first, shard_first + num_items); the last shard also
// fills the rows of items past the end.

struct GatherParams {
    batch: u32,
    item_size: u32,
    num_items: u32,
    divisor: f32,
    first: u32, // position in `indices` of this batch's first index (one permutation per epoch)
    shard_first: u32,
    total_items: u32,
    _pad0: u32,
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
    let shard_end = p.shard_first + p.num_items;
    if (item >= p.total_items) {
        if (shard_end == p.total_items) {
            out_x[i] = 0.0;
            if (j == 0u) { out_y[b] = 0xffffffffu; }
        }
        return;
    }
    if (item < p.shard_first || item >= shard_end) { return; }
    let local = item - p.shard_first;
    out_x[i] = f32(byte_at_images(local * p.item_size + j)) / p.divisor;
    if (j == 0u) { out_y[b] = byte_at_labels(local); }
}
