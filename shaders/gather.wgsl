// Build a training batch on the GPU from a u8 dataset resident in GPU memory.
// images: bytes packed four to a u32 word, item_size = channels x height x width bytes per item
// (planar: channel by channel, rows top to bottom); labels: bytes, one per item;
// indices[first .. first + batch] (u32) -> x [batch, item_size], y [batch] (u32), where
//   x = (byte / divisor - mean[c]) / std[c]     (c: the element's channel; mean 0, std 1 = plain x / 255)
// An index >= total_items yields zeros and the label 0xffffffff (which the losses turn into NaN).
// A data set over the storage-binding limit is split into shards, one launch each: a launch fills only
// the rows whose item lies in its shard [shard_first, shard_first + num_items); the last shard also
// fills the rows of items past the end.
//
// Augmentation (training only): each item is shifted by (dx, dy) in [-pad, pad] (a random crop of the
// picture padded with `pad` zero bytes on every side, as torchvision's RandomCrop(padding=pad)) and
// mirrored left-right when `flip` is set and a coin says so. The draws are a counter-based hash of
// (seed, epoch, item): every element of an item agrees on them, reruns and resumed runs are
// bit-identical, and the CPU reference (src/reference/gather.rs) recomputes the same ones.

struct GatherParams {
    batch: u32,
    item_size: u32,
    num_items: u32,
    divisor: f32,
    first: u32, // position in `indices` of this batch's first index (one permutation per epoch)
    shard_first: u32,
    total_items: u32,
    channels: u32,
    height: u32,
    width: u32,
    pad: u32,  // random-crop padding (0: no crop)
    flip: u32, // 1: random horizontal flips
    seed: u32,
    epoch: u32,
    _pad0: u32,
    _pad1: u32,
    mean: vec4<f32>,
    stdev: vec4<f32>,
}

// p.item_size, p.height · p.width and p.width as constants set per pipeline, so the divisions by them
// are multiplications (a division by a value known only at run time is eight scalar divisions per
// SIMD step on a software adapter).
override ITEM: u32 = 1u;
override PLANE: u32 = 1u;
override WIDTH: u32 = 1u;

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
    let b = i / ITEM;
    let j = i % ITEM;
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
    let plane = PLANE;
    let c = j / plane;
    var at = j;
    var inside = true;
    if (p.pad > 0u || p.flip != 0u) {
        let h1 = mix32(item ^ mix32(p.epoch ^ mix32(p.seed)));
        let h2 = mix32(h1);
        let r = j % plane;
        var x = r % WIDTH;
        let y = r / WIDTH;
        if (p.flip != 0u && (h1 & 1u) == 1u) {
            x = p.width - 1u - x;
        }
        // The source pixel (x + dx - pad, y + dy - pad) with dx, dy in [0, 2 pad]; outside is padding.
        let span = 2u * p.pad + 1u;
        let sx = x + (h1 >> 1u) % span;
        let sy = y + h2 % span;
        inside = sx >= p.pad && sx < p.width + p.pad && sy >= p.pad && sy < p.height + p.pad;
        at = c * plane + (sy - p.pad) * p.width + (sx - p.pad);
    }
    var byte = 0u;
    if (inside) {
        byte = byte_at_images(local * p.item_size + at);
    }
    out_x[i] = (f32(byte) / p.divisor - p.mean[c]) / p.stdev[c];
    if (j == 0u) { out_y[b] = byte_at_labels(local); }
}
