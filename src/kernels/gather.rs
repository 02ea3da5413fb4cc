//! Batch gather (`shaders/gather.wgsl`): a normalised f32 batch and its labels, built on the GPU from a
//! u8 dataset resident in GPU memory and a list of item indices.

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{shape_err, to_u32, Result};
use crate::kernels::{Kernel, Launch};
use crate::tensor::{DType, Tensor};

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
    pub _pad0: u32,
}

/// Check the operands of a gather and build its params for the batch starting at `indices[first]`.
pub fn gather_params(
    divisor: f32,
    images: &Tensor,
    labels: &Tensor,
    indices: &Tensor,
    first: usize,
    x: &Tensor,
    y: &Tensor,
) -> Result<GatherParams> {
    gather_shard_params(divisor, (images, labels, 0, labels.len()), indices, first, x, y)
}

/// One shard of a data set split over several buffers: its images, its labels, the item number of its
/// first item, and the items of the whole set.
pub type Shard<'a> = (&'a Tensor, &'a Tensor, usize, usize);

/// [`gather_params`] for one shard: the launch fills only the batch rows whose item lies in the shard
/// (the last shard also the rows of items past the set's end).
pub fn gather_shard_params(
    divisor: f32,
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
    images.expect(op, "images", DType::U8, images.len())?;
    labels.expect(op, "labels", DType::U8, num_items)?;
    indices.expect(op, "indices", DType::U32, indices.len())?;
    x.expect(op, "x", DType::F32, batch * item_size)?;
    y.expect(op, "y", DType::U32, batch)?;
    to_u32(op, "images length", images.len())?;
    to_u32(op, "batch elements", batch * item_size)?;
    Ok(GatherParams {
        batch: batch as u32,
        item_size: item_size as u32,
        num_items: num_items as u32,
        divisor,
        first: to_u32(op, "first", first)?,
        shard_first: to_u32(op, "shard's first item", shard_first)?,
        total_items: to_u32(op, "items", total_items.max(shard_first + num_items))?,
        _pad0: 0,
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
    gather_shard(ctx, label, divisor, (images, labels, 0, labels.len()), indices, first, x, y)
}

/// [`gather_batch`] for one shard of a data set (see [`gather_shard_params`]).
pub fn gather_shard(
    ctx: &Context,
    label: &str,
    divisor: f32,
    shard: Shard<'_>,
    indices: &Tensor,
    first: usize,
    x: &Tensor,
    y: &Tensor,
) -> Result<Launch> {
    let p = gather_shard_params(divisor, shard, indices, first, x, y)?;
    let (images, labels) = (shard.0, shard.1);
    Ok(ctx
        .launch(Kernel::GatherBatch, label, &p, &[images, labels, indices, x, y], x.len() as u64, 0)?
        .with_work(0, 5 * x.len() as u64 + 9 * y.len() as u64))
}
