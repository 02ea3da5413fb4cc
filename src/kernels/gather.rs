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
}

/// x[b, j] = images[indices[b], j] / divisor; y[b] = labels[indices[b]].
pub fn gather_batch(
    ctx: &Context,
    label: &str,
    divisor: f32,
    images: &Tensor,
    labels: &Tensor,
    indices: &Tensor,
    x: &Tensor,
    y: &Tensor,
) -> Result<Launch> {
    let op = Kernel::GatherBatch.entry_point();
    let num_items = labels.len();
    let batch = indices.len();
    if num_items == 0 || batch == 0 || !images.len().is_multiple_of(num_items) {
        return Err(shape_err(
            op,
            format!("{} images bytes for {num_items} labels and a batch of {batch}", images.len()),
        ));
    }
    let item_size = images.len() / num_items;
    images.expect(op, "images", DType::U8, images.len())?;
    labels.expect(op, "labels", DType::U8, num_items)?;
    indices.expect(op, "indices", DType::U32, batch)?;
    x.expect(op, "x", DType::F32, batch * item_size)?;
    y.expect(op, "y", DType::U32, batch)?;
    to_u32(op, "images length", images.len())?;
    let p = GatherParams {
        batch: to_u32(op, "batch", batch)?,
        item_size: item_size as u32,
        num_items: num_items as u32,
        divisor,
    };
    to_u32(op, "batch elements", batch * item_size)?;
    ctx.launch(Kernel::GatherBatch, label, &p, &[images, labels, indices, x, y], (batch * item_size) as u64, 0)
}
