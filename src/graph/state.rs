//! A model's state on the GPU, shared by the graphs built for it: its parameters and their
//! gradients, its buffers (batch-norm statistics), each in one arena, and the metric sums.

use std::sync::Arc;

use crate::context::Context;
use crate::error::{shape_err, Error, Result};
use crate::model::{ModelSpec, ModelState, ParamSpec};
use crate::tensor::{DType, Tensor};

/// Many tensors in one buffer, each view starting on the device's storage-offset alignment, so a whole
/// arena is one binding (one optimizer dispatch) and each view is a binding of its own. Padding
/// between views is zero and stays zero under every update.
pub struct Arena {
    pub whole: Tensor,
    pub views: Vec<Tensor>,
}

impl Arena {
    /// An arena holding `copies` consecutive copies of the layout of `specs` (Adam keeps two moments).
    pub fn new(ctx: &Context, label: &str, specs: &[ParamSpec], copies: usize) -> Result<Arena> {
        Arena::with_room(ctx, label, specs, copies, 0)
    }

    /// [`Arena::new`] whose buffer has `room` bytes after the last view (the parameters' arena has a
    /// uniform window's: any weight can be bound as one, see `conv2d_direct`).
    pub fn with_room(ctx: &Context, label: &str, specs: &[ParamSpec], copies: usize, room: u64) -> Result<Arena> {
        let align = (ctx.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
        let mut offsets = Vec::new();
        let mut at = 0usize;
        for _ in 0..copies {
            for p in specs {
                offsets.push(at);
                at = (at + p.len()).next_multiple_of(align);
            }
        }
        let whole = Tensor::zeros_with_room(ctx, label, &[at], DType::F32, room)?;
        let views = offsets
            .iter()
            .zip(specs.iter().cycle())
            .enumerate()
            .map(|(i, (&off, p))| {
                let copy = i / specs.len().max(1);
                let name = if copies > 1 { format!("{label}{copy}.{}", p.name) } else { format!("{label}.{}", p.name) };
                Tensor {
                    buffer: Arc::clone(&whole.buffer),
                    offset: (off * 4) as u64,
                    shape: p.shape.clone(),
                    dtype: DType::F32,
                    label: name,
                }
            })
            .collect();
        Ok(Arena { whole, views })
    }

    /// Upload one vector per view.
    pub fn write(&self, ctx: &Context, values: &[Vec<f32>]) -> Result<()> {
        if values.len() != self.views.len() {
            return Err(shape_err(
                &self.whole.label,
                format!("{} tensors for {} views", values.len(), self.views.len()),
            ));
        }
        for (v, t) in values.iter().zip(&self.views) {
            t.write_f32(ctx, v)?;
        }
        Ok(())
    }

    /// Download every view (one readback of the whole buffer).
    pub fn read(&self, ctx: &Context) -> Result<Vec<Vec<f32>>> {
        crate::context::block_on(self.read_async(ctx))
    }

    /// [`Arena::read`], awaited.
    pub async fn read_async(&self, ctx: &Context) -> Result<Vec<Vec<f32>>> {
        let all = self.whole.to_f32_async(ctx).await?;
        Ok(self
            .views
            .iter()
            .map(|t| {
                let at = (t.offset / 4) as usize;
                all[at..at + t.len()].to_vec()
            })
            .collect())
    }
}

/// The parameters of a model and their gradients, each in one arena, and the model's buffers (batch-norm
/// running statistics, at their defaults until written) in a third that the optimizer does not touch.
pub struct Params {
    pub specs: Vec<ParamSpec>,
    pub values: Arena,
    pub grads: Arena,
    pub buffer_specs: Vec<ParamSpec>,
    pub buffers: Arena,
    /// Each batch-norm layer's `num_batches_tracked` (name, count): training steps that updated its
    /// running statistics, kept on the host (int64 in checkpoints, as PyTorch writes it).
    pub tracked: Vec<(String, i64)>,
}

impl Params {
    pub fn new(ctx: &Context, spec: &ModelSpec) -> Result<Params> {
        let specs = spec.params();
        let buffer_specs = spec.buffers();
        let limit = ctx.limits.max_storage_buffer_binding_size;
        if let Some(p) = specs.iter().chain(&buffer_specs).find(|p| DType::F32.bytes(p.len()) > limit) {
            return Err(Error::Limit {
                op: p.name.clone(),
                what: format!("its size in bytes ({:?} f32)", p.shape),
                value: DType::F32.bytes(p.len()),
                limit,
            });
        }
        let buffers = Arena::new(ctx, "buffer", &buffer_specs, 1)?;
        buffers.write(ctx, &crate::model::init_params(&buffer_specs, 0))?;
        Ok(Params {
            values: Arena::with_room(ctx, "param", &specs, 1, crate::kernels::UNIFORM_WINDOW)?,
            grads: Arena::new(ctx, "grad", &specs, 1)?,
            specs,
            buffer_specs,
            buffers,
            tracked: spec.tracked().into_iter().map(|n| (n, 0)).collect(),
        })
    }

    /// Upload a model's state: parameters, buffers and counters (as [`crate::checkpoint::load_model`]
    /// returns them).
    pub fn write_state(&mut self, ctx: &Context, state: &ModelState) -> Result<()> {
        self.values.write(ctx, &state.params)?;
        self.write_buffers(ctx, state)
    }

    /// Upload a model state's buffers and counters only (the parameters are already written).
    pub fn write_buffers(&mut self, ctx: &Context, state: &ModelState) -> Result<()> {
        self.buffers.write(ctx, &state.buffers)?;
        if state.tracked.len() != self.tracked.len() {
            return Err(shape_err(
                "num_batches_tracked",
                format!("{} counters for {}", state.tracked.len(), self.tracked.len()),
            ));
        }
        for (t, &v) in self.tracked.iter_mut().zip(&state.tracked) {
            t.1 = v;
        }
        Ok(())
    }

    /// Read the whole state back.
    pub fn read_state(&self, ctx: &Context) -> Result<ModelState> {
        crate::context::block_on(self.read_state_async(ctx))
    }

    /// [`Params::read_state`], awaited.
    pub async fn read_state_async(&self, ctx: &Context) -> Result<ModelState> {
        Ok(ModelState {
            params: self.values.read_async(ctx).await?,
            buffers: self.buffers.read_async(ctx).await?,
            tracked: self.tracked.iter().map(|t| t.1).collect(),
        })
    }

    /// Total learnable values.
    pub fn count(&self) -> usize {
        self.specs.iter().map(ParamSpec::len).sum()
    }
}

/// Loss sum and correct count, accumulated on the GPU and read back rarely.
pub struct Metrics {
    pub loss_sum: Tensor,
    pub correct: Tensor,
}

impl Metrics {
    pub fn new(ctx: &Context, label: &str) -> Result<Metrics> {
        Ok(Metrics {
            loss_sum: Tensor::zeros(ctx, &format!("{label}.loss_sum"), &[1], DType::F32)?,
            correct: Tensor::zeros(ctx, &format!("{label}.correct"), &[1], DType::U32)?,
        })
    }

    /// Read (loss sum, correct count) and reset both to zero.
    pub fn take(&self, ctx: &Context) -> Result<(f64, u64)> {
        crate::context::block_on(self.take_async(ctx))
    }

    /// [`Metrics::take`], awaited (one readback of both).
    pub async fn take_async(&self, ctx: &Context) -> Result<(f64, u64)> {
        let parts = [self.loss_sum.range(), self.correct.range()];
        let got = ctx.read_ranges(&parts).await?;
        let word = |b: &[u8]| {
            <[u8; 4]>::try_from(b).map_err(|_| crate::error::Error::Readback("a metric was not 4 bytes".into()))
        };
        let (loss, correct) = (f32::from_le_bytes(word(&got[0])?), u32::from_le_bytes(word(&got[1])?));
        self.reset(ctx)?;
        Ok((f64::from(loss), u64::from(correct)))
    }

    /// Set both to zero (the next steps' sums start afresh).
    pub fn reset(&self, ctx: &Context) -> Result<()> {
        self.loss_sum.write_f32(ctx, &[0.0])?;
        self.correct.write_u32(ctx, &[0])
    }
}
