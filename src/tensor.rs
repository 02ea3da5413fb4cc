//! A GPU buffer (or a slice of one) with a shape, an element type and a label.
//!
//! Size rounding is done once, here: byte tensors are padded to whole 4-byte words (WGSL has no u8) and
//! no buffer is smaller than one word (zero-sized bindings are invalid).

use std::sync::Arc;

use crate::context::{Context, Guarded};
use crate::error::{shape_err, Error, Result};

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    U32,
    /// Bytes packed four to a `u32` word, little-endian (datasets).
    U8,
}

impl DType {
    /// Bytes needed for `len` elements before rounding.
    pub fn bytes(self, len: usize) -> u64 {
        let b = match self {
            DType::F32 | DType::U32 => 4,
            DType::U8 => 1,
        };
        len as u64 * b
    }
}

/// Round a byte count up to whole 4-byte words, at least one word.
pub fn padded_bytes(bytes: u64) -> u64 {
    bytes.div_ceil(4).max(1) * 4
}

/// A shaped view of a GPU storage buffer.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub buffer: Arc<Guarded<wgpu::Buffer>>,
    /// Byte offset of the view inside `buffer`.
    pub offset: u64,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub label: String,
}

impl Tensor {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the view covers (rounded to whole words).
    pub fn byte_len(&self) -> u64 {
        padded_bytes(self.dtype.bytes(self.len()))
    }

    /// The tensor's bytes as a range of its buffer, `(buffer, offset, size)`: what
    /// [`Context::read_ranges`] reads.
    pub fn range(&self) -> (&wgpu::Buffer, u64, u64) {
        (&self.buffer, self.offset, self.byte_len())
    }

    /// A zero-filled tensor.
    pub fn zeros(ctx: &Context, label: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::zeros_with_room(ctx, label, shape, dtype, 0)
    }

    /// A zero-filled tensor whose buffer has `room` more bytes after it (so that a uniform window
    /// bound at any of its views stays inside the buffer; see [`Context::uniform_window_fits`]).
    pub fn zeros_with_room(ctx: &Context, label: &str, shape: &[usize], dtype: DType, room: u64) -> Result<Tensor> {
        let len = checked_len(label, shape)?;
        let size = padded_bytes(dtype.bytes(len));
        let limit = ctx.limits.max_storage_buffer_binding_size.min(ctx.limits.max_buffer_size);
        if size > limit {
            return Err(Error::Limit {
                op: label.to_string(),
                what: format!("buffer size for shape {shape:?} in bytes"),
                value: size,
                limit,
            });
        }
        let _serial = ctx.serial();
        ctx.count_created(1);
        ctx.count_bytes(size + room);
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size + room,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::UNIFORM
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Tensor {
            buffer: Arc::new(Guarded::new(ctx, buffer)),
            offset: 0,
            shape: shape.to_vec(),
            dtype,
            label: label.into(),
        })
    }

    /// Upload `f32` data.
    pub fn from_f32(ctx: &Context, label: &str, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let t = Tensor::zeros(ctx, label, shape, DType::F32)?;
        t.write_f32(ctx, data)?;
        Ok(t)
    }

    /// Upload `u32` data.
    pub fn from_u32(ctx: &Context, label: &str, shape: &[usize], data: &[u32]) -> Result<Tensor> {
        let t = Tensor::zeros(ctx, label, shape, DType::U32)?;
        t.write_words(ctx, bytemuck::cast_slice(data), data.len())?;
        Ok(t)
    }

    /// Upload bytes (packed four to a word on the GPU).
    pub fn from_u8(ctx: &Context, label: &str, shape: &[usize], data: &[u8]) -> Result<Tensor> {
        let t = Tensor::zeros(ctx, label, shape, DType::U8)?;
        t.write_words(ctx, data, data.len())?;
        Ok(t)
    }

    /// Overwrite the tensor with `f32` data of the same length.
    pub fn write_f32(&self, ctx: &Context, data: &[f32]) -> Result<()> {
        self.expect_dtype("write_f32", DType::F32)?;
        self.write_words(ctx, bytemuck::cast_slice(data), data.len())
    }

    /// Overwrite the tensor with `u32` data of the same length.
    pub fn write_u32(&self, ctx: &Context, data: &[u32]) -> Result<()> {
        self.expect_dtype("write_u32", DType::U32)?;
        self.write_words(ctx, bytemuck::cast_slice(data), data.len())
    }

    fn write_words(&self, ctx: &Context, bytes: &[u8], len: usize) -> Result<()> {
        if len != self.len() {
            return Err(shape_err(
                &self.label,
                format!("upload of {len} elements into a tensor of shape {:?}", self.shape),
            ));
        }
        let _serial = ctx.serial();
        if bytes.len().is_multiple_of(4) {
            ctx.queue.write_buffer(&self.buffer, self.offset, bytes);
        } else {
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().next_multiple_of(4), 0);
            ctx.queue.write_buffer(&self.buffer, self.offset, &padded);
        }
        Ok(())
    }

    /// Download as `f32`.
    pub fn to_f32(&self, ctx: &Context) -> Result<Vec<f32>> {
        self.expect_dtype("to_f32", DType::F32)?;
        let bytes = self.read(ctx)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes[..self.len() * 4]))
    }

    /// Download as `u32`.
    pub fn to_u32(&self, ctx: &Context) -> Result<Vec<u32>> {
        self.expect_dtype("to_u32", DType::U32)?;
        let bytes = self.read(ctx)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes[..self.len() * 4]))
    }

    fn read(&self, ctx: &Context) -> Result<Vec<u8>> {
        let mut parts = crate::context::block_on(ctx.read_ranges(&[self.range()]))?;
        Ok(parts.pop().unwrap_or_default())
    }

    /// Download as `f32`, awaited (the form a browser needs; see [`Context::read_ranges`]).
    pub async fn to_f32_async(&self, ctx: &Context) -> Result<Vec<f32>> {
        Ok(ctx.read_f32s(&[self]).await?.pop().unwrap_or_default())
    }

    /// Check the element type, naming the op that needs it.
    pub fn expect_dtype(&self, op: &str, dtype: DType) -> Result<()> {
        if self.dtype == dtype {
            Ok(())
        } else {
            Err(shape_err(op, format!("{} is {:?}, expected {dtype:?}", self.label, self.dtype)))
        }
    }

    /// Check element type and element count, naming the op and the operand.
    pub fn expect(&self, op: &str, operand: &str, dtype: DType, len: usize) -> Result<()> {
        self.expect_dtype(op, dtype)?;
        if self.len() != len {
            return Err(shape_err(
                op,
                format!(
                    "{operand} ({}) has shape {:?} = {} elements, expected {len}",
                    self.label,
                    self.shape,
                    self.len()
                ),
            ));
        }
        Ok(())
    }

    /// The binding resource for this view.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.byte_len()),
        })
    }
}

/// Product of `shape`, or a limit error when it overflows.
fn checked_len(label: &str, shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| Error::Limit {
        op: label.to_string(),
        what: format!("element count of shape {shape:?}"),
        value: u64::MAX,
        limit: usize::MAX as u64,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_sizes_round_up_to_whole_words_and_never_zero() {
        assert_eq!(super::padded_bytes(0), 4);
        assert_eq!(super::padded_bytes(1), 4);
        assert_eq!(super::padded_bytes(4), 4);
        assert_eq!(super::padded_bytes(5), 8);
        assert_eq!(super::padded_bytes(784 * 3), 784 * 3);
    }
}
