//! Batch gather (`shaders/gather.wgsl`): a normalised (and, in training, augmented) f32 batch and its
//! labels, built on the GPU from a u8 dataset resident in GPU memory and a list of item indices.

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{shape_err, to_u32, Result};
use crate::kernels::{Kernel, Launch};
use crate::tensor::{DType, Tensor};

/// The most channels a gather normalises one by one (pictures are grey or RGB).
pub const MAX_CHANNELS: usize = 4;

/// What the gather does to each item's bytes: `x = (byte / divisor − mean[c]) / std[c]` for an item
/// laid out as `[channels, height, width]`, after a random crop (`pad`), horizontal flip (`flip`) and
/// warp (`warp`) drawn from `(seed, epoch, item)`. [`Transform::plain`] is `x = byte / divisor`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transform {
    pub divisor: f32,
    /// `[channels, height, width]` of one item (`channels` ≤ [`MAX_CHANNELS`]).
    pub chw: [usize; 3],
    pub mean: [f32; MAX_CHANNELS],
    pub std: [f32; MAX_CHANNELS],
    /// Random-crop padding in pixels (0: none).
    pub pad: u32,
    pub flip: bool,
    /// Random rotation, slant, scale, shift and stroke thickness (all zero: none).
    pub warp: Warp,
    pub seed: u32,
    pub epoch: u32,
}

/// The largest random warp of an item (`shaders/gather.wgsl`): each item draws its own rotation, shear
/// factor, scale, shift and stroke radius change uniformly in `[-max, max]` (the scale in
/// `[1 − scale, 1 + scale]`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Warp {
    /// Radians.
    pub rotate: f32,
    /// `x += k·y` for `k` up to this.
    pub shear: f32,
    /// Relative size change.
    pub scale: f32,
    /// Pixels on each axis.
    pub shift: f32,
    /// Stroke radius change in pixels: a maximum (thicker) or minimum (thinner) over a circle of this radius.
    pub thick: f32,
}

impl Warp {
    pub fn is_none(&self) -> bool {
        *self == Warp::default()
    }
}

impl Transform {
    /// `x = byte / divisor` for items of `item_size` bytes (one channel, one row): no normalisation, no
    /// augmentation.
    pub fn plain(divisor: f32, item_size: usize) -> Transform {
        Transform {
            divisor,
            chw: [1, 1, item_size],
            mean: [0.0; MAX_CHANNELS],
            std: [1.0; MAX_CHANNELS],
            pad: 0,
            flip: false,
            warp: Warp::default(),
            seed: 0,
            epoch: 0,
        }
    }

    /// Whether items are cropped, flipped or warped.
    pub fn augments(&self) -> bool {
        self.pad > 0 || self.flip || !self.warp.is_none()
    }
}

/// Mirrors `struct GatherParams` in `shaders/gather.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct GatherParams {
    pub batch: u32,
    pub item_size: u32,
    pub num_items: u32,
    pub divisor: f32,
    /// Position in the index list of this batch's first index.
    pub first: u32,
    /// The data set's item number of this shard's first item (0 when the set is one shard).
    pub shard_first: u32,
    /// Items in the whole data set (all shards).
    pub total_items: u32,
    pub channels: u32,
    pub height: u32,
    pub width: u32,
    /// Random-crop padding (0: no crop).
    pub pad: u32,
    /// 1: random horizontal flips.
    pub flip: u32,
    pub seed: u32,
    pub epoch: u32,
    /// The largest stroke radius change (0: none).
    pub thick: f32,
    pub _pad1: u32,
    pub mean: [f32; 4],
    pub std: [f32; 4],
    /// The largest rotation (radians), shear factor, scale change and shift (pixels).
    pub warp: [f32; 4],
}

/// Check the operands of a plain gather (`x = byte / divisor`) and build its params for the batch
/// starting at `indices[first]`.
pub fn gather_params(
    divisor: f32,
    images: &Tensor,
    labels: &Tensor,
    indices: &Tensor,
    first: usize,
    x: &Tensor,
    y: &Tensor,
) -> Result<GatherParams> {
    let t = Transform::plain(divisor, images.len() / labels.len().max(1));
    gather_shard_params(&t, (images, labels, 0, labels.len()), indices, first, x, y)
}

/// One shard of a data set split over several buffers: its images, its labels, the item number of its
/// first item, and the items of the whole set.
pub type Shard<'a> = (&'a Tensor, &'a Tensor, usize, usize);

/// [`gather_params`] for one shard with transform `t`: the launch fills only the batch rows whose item
/// lies in the shard (the last shard also the rows of items past the set's end).
pub fn gather_shard_params(
    t: &Transform,
    (images, labels, shard_first, total_items): Shard<'_>,
    indices: &Tensor,
    first: usize,
    x: &Tensor,
    y: &Tensor,
) -> Result<GatherParams> {
    let op = Kernel::GatherBatch.entry_point();
    let num_items = labels.len();
    let batch = y.len();
    if num_items == 0 || batch == 0 || !images.len().is_multiple_of(num_items) {
        return Err(shape_err(
            op,
            format!("{} image bytes for {num_items} labels and a batch of {batch}", images.len()),
        ));
    }
    if first.checked_add(batch).is_none_or(|end| end > indices.len()) {
        return Err(shape_err(
            op,
            format!("batch of {batch} from index {first} runs past the {} indices", indices.len()),
        ));
    }
    let item_size = images.len() / num_items;
    let [c, h, w] = t.chw;
    if c == 0 || c > MAX_CHANNELS || c * h * w != item_size {
        return Err(shape_err(
            op,
            format!("items of {item_size} bytes are not [{c}, {h}, {w}] (1 to {MAX_CHANNELS} channels)"),
        ));
    }
    if !(t.divisor.is_finite() && t.divisor > 0.0)
        || t.mean[..c].iter().any(|m| !m.is_finite())
        || t.std[..c].iter().any(|s| !(s.is_finite() && *s > 0.0))
    {
        return Err(shape_err(
            op,
            format!(
                "normalisation divisor {} mean {:?} std {:?}: needs finite values, positive std",
                t.divisor, t.mean, t.std
            ),
        ));
    }
    if t.pad as usize >= h.min(w) && t.pad > 0 {
        return Err(shape_err(op, format!("crop padding {} must be smaller than the {h}x{w} picture", t.pad)));
    }
    let wp = t.warp;
    if [wp.rotate, wp.shear, wp.scale, wp.shift, wp.thick].iter().any(|v| !(v.is_finite() && *v >= 0.0))
        || wp.scale >= 1.0
    {
        return Err(shape_err(op, format!("warp {wp:?}: needs finite values ≥ 0 and a scale change below 1")));
    }
    images.expect(op, "images", DType::U8, images.len())?;
    labels.expect(op, "labels", DType::U8, num_items)?;
    indices.expect(op, "indices", DType::U32, indices.len())?;
    x.expect(op, "x", DType::F32, batch * item_size)?;
    y.expect(op, "y", DType::U32, batch)?;
    to_u32(op, "images length", images.len())?;
    to_u32(op, "batch elements", batch * item_size)?;
    let (mut mean, mut std) = ([0.0f32; 4], [1.0f32; 4]);
    mean[..c].copy_from_slice(&t.mean[..c]);
    std[..c].copy_from_slice(&t.std[..c]);
    Ok(GatherParams {
        batch: batch as u32,
        item_size: item_size as u32,
        num_items: num_items as u32,
        divisor: t.divisor,
        first: to_u32(op, "first", first)?,
        shard_first: to_u32(op, "shard's first item", shard_first)?,
        total_items: to_u32(op, "items", total_items.max(shard_first + num_items))?,
        channels: c as u32,
        height: h as u32,
        width: w as u32,
        pad: t.pad,
        flip: u32::from(t.flip),
        seed: t.seed,
        epoch: t.epoch,
        thick: wp.thick,
        _pad1: 0,
        mean,
        std,
        warp: [wp.rotate, wp.shear, wp.scale, wp.shift],
    })
}

/// `x[b, j] = images[indices[first + b], j] / divisor; y[b] = labels[indices[first + b]]` for `b < y.len()`.
/// Move to another batch of the same index list with `Launch::set_params(gather_params(.., first, ..))`.
pub fn gather_batch(
    ctx: &Context,
    label: &str,
    divisor: f32,
    images: &Tensor,
    labels: &Tensor,
    indices: &Tensor,
    first: usize,
    x: &Tensor,
    y: &Tensor,
) -> Result<Launch> {
    let t = Transform::plain(divisor, images.len() / labels.len().max(1));
    gather_shard(ctx, label, &t, (images, labels, 0, labels.len()), indices, first, x, y)
}

/// Whether a gather with params `p` crops, flips or warps (else the plain pipeline, compiled without
/// that code, does it).
pub fn augments(p: &GatherParams) -> bool {
    p.pad > 0 || p.flip != 0 || p.thick != 0.0 || p.warp != [0.0; 4]
}

/// [`gather_batch`] with transform `t` for one shard of a data set (see [`gather_shard_params`]).
pub fn gather_shard(
    ctx: &Context,
    label: &str,
    t: &Transform,
    shard: Shard<'_>,
    indices: &Tensor,
    first: usize,
    x: &Tensor,
    y: &Tensor,
) -> Result<Launch> {
    let p = gather_shard_params(t, shard, indices, first, x, y)?;
    let (images, labels) = (shard.0, shard.1);
    // Four values per invocation where the gather is plain and items and planes are whole words.
    let four = !augments(&p)
        && p.item_size.is_multiple_of(4)
        && (p.height * p.width).is_multiple_of(4)
        && super::vec4_fits(ctx, x.len());
    let (kernel, threads) = if four { (Kernel::GatherBatch4, x.len() / 4) } else { (Kernel::GatherBatch, x.len()) };
    Ok(ctx
        .launch_with(
            kernel,
            &[
                ("ITEM", p.item_size),
                ("PLANE", p.height * p.width),
                ("WIDTH", p.width),
                ("AUGMENT", u32::from(augments(&p))),
            ],
            label,
            &p,
            &[images, labels, indices, x, y],
            threads as u64,
            0,
        )?
        .with_work(0, 5 * x.len() as u64 + 9 * y.len() as u64))
}
