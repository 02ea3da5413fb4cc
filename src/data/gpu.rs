//! The data set resident on the GPU as bytes, and the gather launches that build each batch from it.

use super::Dataset;
use crate::context::Context;
use crate::error::{data_err, Error, Result};
use crate::kernels::gather::{augments, gather_shard, gather_shard_params, Transform};
use crate::kernels::Launch;
use crate::tensor::Tensor;

/// A dataset resident on the GPU as bytes, ready for `gather_batch`: one shard, or several when it is
/// larger than one storage binding may be (a data set of any size that fits in memory trains).
pub struct GpuDataset {
    /// (images, labels, first item) of each shard, in item order.
    pub shards: Vec<(Tensor, Tensor, usize)>,
    pub len: usize,
    /// `[channels, rows, cols]` of one item.
    pub shape: [usize; 3],
}

/// Bytes in MiB or GiB, for messages.
fn size_text(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

/// The error of a set too large for the device: its size and what the device has (`room`).
fn too_large(d: &Dataset, name: &str, room: &str) -> Error {
    let [c, h, w] = d.shape();
    let bytes = (d.images.len() + d.labels.len()) as u64;
    data_err(
        &d.source,
        format!(
            "the {name} set is {} on the GPU ({} pictures of {c}x{h}x{w} bytes), more than {room}: use fewer \
             pictures or a smaller model input",
            size_text(bytes),
            d.len()
        ),
    )
}

/// Check that set `d` fits in `available` bytes of device memory (`None`: unknown), naming the sizes
/// when it does not.
pub fn check_fits(d: &Dataset, name: &str, available: Option<u64>, adapter: &str) -> Result<()> {
    match available {
        Some(free) if (d.images.len() + d.labels.len()) as u64 > free => {
            Err(too_large(d, name, &format!("the {} {adapter} has free", size_text(free))))
        }
        _ => Ok(()),
    }
}

/// The memory a software adapter (whose GPU memory is the host's) may still use: the host's available
/// memory; `None` for hardware adapters, whose free memory wgpu does not report.
fn device_memory_available(ctx: &Context) -> Option<u64> {
    if !ctx.is_software() {
        return None;
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl GpuDataset {
    /// Upload `d`, split into shards of at most one storage binding each. A set larger than the device
    /// can hold is an error naming the sizes: checked before the upload against the host's available
    /// memory on software adapters, and by the device's out-of-memory report elsewhere (natively).
    pub fn upload(ctx: &Context, name: &str, d: &Dataset) -> Result<GpuDataset> {
        check_fits(d, name, device_memory_available(ctx), &ctx.info.name)?;
        let limit = ctx.limits.max_storage_buffer_binding_size.min(ctx.limits.max_buffer_size);
        let per_shard = (limit / d.item_size().max(1) as u64).max(1) as usize;
        #[cfg(not(target_arch = "wasm32"))]
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let uploaded = GpuDataset::upload_sharded(ctx, name, d, per_shard);
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(too_large(d, name, &format!("{} could allocate ({e})", ctx.info.name)));
        }
        uploaded
    }

    /// Upload `d` in shards of at most `items_per_shard` items.
    pub fn upload_sharded(ctx: &Context, name: &str, d: &Dataset, items_per_shard: usize) -> Result<GpuDataset> {
        let (n, size) = (d.len(), d.item_size());
        let mut shards = Vec::new();
        for first in (0..n).step_by(items_per_shard.max(1)) {
            let end = (first + items_per_shard).min(n);
            let label = |what: &str| {
                if first == 0 && end == n {
                    format!("{name}.{what}")
                } else {
                    format!("{name}.{what}@{first}")
                }
            };
            shards.push((
                Tensor::from_u8(ctx, &label("images"), &[end - first, size], &d.images[first * size..end * size])?,
                Tensor::from_u8(ctx, &label("labels"), &[end - first], &d.labels[first..end])?,
                first,
            ));
        }
        Ok(GpuDataset { shards, len: n, shape: d.shape() })
    }

    /// The gather launches (one per shard) that fill `x`, `y` from `indices[first..]` with transform `t`.
    pub fn gathers(
        &self,
        ctx: &Context,
        label: &str,
        t: &Transform,
        indices: &Tensor,
        x: &Tensor,
        y: &Tensor,
    ) -> Result<Vec<Launch>> {
        self.shards
            .iter()
            .map(|(im, lb, f)| gather_shard(ctx, label, t, (im, lb, *f, self.len), indices, 0, x, y))
            .collect()
    }

    /// Point `launches` (from [`GpuDataset::gathers`]) at the batch starting at `indices[first]`, with
    /// transform `t` (e.g. the next epoch's augmentation).
    #[allow(clippy::too_many_arguments)]
    pub fn point(
        &self,
        ctx: &Context,
        launches: &[Launch],
        t: &Transform,
        indices: &Tensor,
        first: usize,
        x: &Tensor,
        y: &Tensor,
    ) -> Result<()> {
        for (l, (im, lb, f)) in launches.iter().zip(&self.shards) {
            let p = gather_shard_params(t, (im, lb, *f, self.len), indices, first, x, y)?;
            // A gather built for plain batches is compiled without the augmentation's code.
            if augments(&p) && l.constant("AUGMENT") == Some(0) {
                return Err(crate::error::shape_err(
                    &l.label,
                    "the gather was built for plain batches; build it with the augmenting transform",
                ));
            }
            l.set_params(ctx, &p);
        }
        Ok(())
    }
}
