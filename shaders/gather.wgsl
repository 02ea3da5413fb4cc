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
//
// Warping (training only, when `warp` or `thick` is not zero), for pictures of strokes such as drawn
// digits: each item is rotated by an angle in [-warp.x, warp.x] radians, slanted by a shear factor in
// [-warp.y, warp.y] (x += k y), scaled by a factor in [1 - warp.z, 1 + warp.z] and moved by up to warp.w
// pixels on each axis, about the picture's centre, with bilinear sampling (zero outside); then its
// strokes are thickened (a maximum over 8 points on a circle of radius t around the sample) or thinned
// (a minimum) for a radius t in [-thick, thick] pixels. Flip and crop apply first, as without warping.
// The sums differ from the CPU reference's only by the rounding of sin and cos; bilinear sampling is
// continuous, so the values differ by as little.

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
    thick: f32, // largest stroke radius change in pixels (0: none)
    _pad1: u32,
    mean: vec4<f32>,
    stdev: vec4<f32>,
    warp: vec4<f32>, // rotation (radians), shear factor, scale change, shift (pixels): the largest of each
}

// p.item_size, p.height · p.width and p.width as constants set per pipeline, so the divisions by them
// are multiplications (a division by a value known only at run time is eight scalar divisions per
// SIMD step on a software adapter).
override ITEM: u32 = 1u;
override PLANE: u32 = 1u;
override WIDTH: u32 = 1u;
// Whether the launch may crop, flip or warp (set per pipeline: a plain gather compiles without the
// augmentation's code, which a software adapter otherwise pays for on every element).
override AUGMENT: bool = true;

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

// A draw in [-1, 1) from a hash (24 bits, so the CPU reference gets the same float).
fn signed_unit(h: u32) -> f32 {
    return f32(h >> 8u) * (2.0 / 16777216.0) - 1.0;
}

// The picture's value at (sx, sy) (pixel centres at integer + 0.5), bilinear, zero outside.
fn bilinear(base: u32, sx: f32, sy: f32) -> f32 {
    let fx = sx - 0.5;
    let fy = sy - 0.5;
    let x0 = floor(fx);
    let y0 = floor(fy);
    let wx = fx - x0;
    let wy = fy - y0;
    let ix = i32(x0);
    let iy = i32(y0);
    let w = i32(p.width);
    let h = i32(p.height);
    var v = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    for (var k = 0; k < 4; k++) {
        let x = ix + (k & 1);
        let y = iy + (k >> 1);
        if (x >= 0 && x < w && y >= 0 && y < h) {
            v[k] = f32(byte_at_images(base + u32(y * w + x)));
        }
    }
    let top = v[0] + (v[1] - v[0]) * wx;
    let bottom = v[2] + (v[3] - v[2]) * wx;
    return top + (bottom - top) * wy;
}

// The warped value of output pixel (x, y) (already flipped) of the plane at `base`, crop offset
// (ox, oy) in pixels; h the item's hash.
fn warped(base: u32, x: u32, y: u32, ox: f32, oy: f32, h: u32) -> f32 {
    let h3 = mix32(h);
    let h4 = mix32(h3);
    let h5 = mix32(h4);
    let h6 = mix32(h5);
    let h7 = mix32(h6);
    let h8 = mix32(h7);
    let angle = signed_unit(h3) * p.warp.x;
    let k = signed_unit(h4) * p.warp.y;
    let s = 1.0 + signed_unit(h5) * p.warp.z;
    let cx = f32(p.width) * 0.5;
    let cy = f32(p.height) * 0.5;
    // Undo the move, the rotation, the shear and the scale, in that order.
    let u = f32(x) + 0.5 - cx - signed_unit(h6) * p.warp.w;
    let v = f32(y) + 0.5 - cy - signed_unit(h7) * p.warp.w;
    let c = cos(angle);
    let sn = sin(angle);
    let ry = c * v - sn * u;
    let rx = c * u + sn * v;
    let sx = (rx - k * ry) / s + cx + ox;
    let sy = ry / s + cy + oy;
    var value = bilinear(base, sx, sy);
    let t = signed_unit(h8) * p.thick;
    if (t != 0.0) {
        let r = abs(t);
        let d = r * 0.70710677;
        var around = array<vec2<f32>, 8>(
            vec2(r, 0.0), vec2(-r, 0.0), vec2(0.0, r), vec2(0.0, -r),
            vec2(d, d), vec2(-d, d), vec2(d, -d), vec2(-d, -d),
        );
        for (var i = 0; i < 8; i++) {
            let o = bilinear(base, sx + around[i].x, sy + around[i].y);
            if (t > 0.0) { value = max(value, o); } else { value = min(value, o); }
        }
    }
    return value;
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
    let base = local * p.item_size;
    var value = 0.0;
    let warping = any(p.warp != vec4(0.0)) || p.thick != 0.0;
    if (AUGMENT && (warping || p.pad > 0u || p.flip != 0u)) {
        // The item's flip and crop offset (dx, dy) in [0, 2 pad], shared by the crop and the warp.
        let h1 = mix32(item ^ mix32(p.epoch ^ mix32(p.seed)));
        let h2 = mix32(h1);
        let r = j % plane;
        var x = r % WIDTH;
        let y = r / WIDTH;
        if (p.flip != 0u && (h1 & 1u) == 1u) {
            x = p.width - 1u - x;
        }
        let span = 2u * p.pad + 1u;
        let dx = (h1 >> 1u) % span;
        let dy = h2 % span;
        if (warping) {
            value = warped(base + c * plane, x, y, f32(dx) - f32(p.pad), f32(dy) - f32(p.pad), h2);
        } else {
            // The source pixel (x + dx - pad, y + dy - pad); outside is padding.
            let sx = x + dx;
            let sy = y + dy;
            if (sx >= p.pad && sx < p.width + p.pad && sy >= p.pad && sy < p.height + p.pad) {
                value = f32(byte_at_images(base + c * plane + (sy - p.pad) * p.width + (sx - p.pad)));
            }
        }
    } else {
        value = f32(byte_at_images(base + j));
    }
    out_x[i] = (value / p.divisor - p.mean[c]) / p.stdev[c];
    if (j == 0u) { out_y[b] = byte_at_labels(local); }
}

// gather_batch4: the plain gather (no crop, flip or warp) four elements per invocation, where items and
// channel planes are a multiple of 4 bytes: one word of the images gives four values, written as one
// vec4, each computed as gather_batch computes it (the same bits).
@group(0) @binding(4) var<storage, read_write> out_x4: array<vec4<f32>>;
// Words per item (ITEM is a multiple of 4 here: the launcher checks; at least 1 for the defaults).
override WORDS: u32 = max(ITEM / 4u, 1u);

@compute @workgroup_size(WG)
fn gather_batch4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.batch * WORDS) { return; }
    let b = i / WORDS;
    let j = (i % WORDS) * 4u;
    let item = indices[p.first + b];
    let shard_end = p.shard_first + p.num_items;
    if (item >= p.total_items) {
        if (shard_end == p.total_items) {
            out_x4[i] = vec4<f32>(0.0);
            if (j == 0u) { out_y[b] = 0xffffffffu; }
        }
        return;
    }
    if (item < p.shard_first || item >= shard_end) { return; }
    let local = item - p.shard_first;
    let c = j / PLANE;
    let word = images[(local * ITEM + j) / 4u];
    let value = vec4<f32>(
        f32(word & 0xffu),
        f32((word >> 8u) & 0xffu),
        f32((word >> 16u) & 0xffu),
        f32(word >> 24u),
    );
    out_x4[i] = (value / p.divisor - p.mean[c]) / p.stdev[c];
    if (j == 0u) { out_y[b] = byte_at_labels(local); }
}
