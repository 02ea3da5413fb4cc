//! Shape arithmetic, in one place. Every tensor is row-major; images are NCHW.
//!
//! The kernels, the CPU reference and the graph executor all take these structs, so an output size is
//! computed by exactly one function.

use crate::error::{shape_err, Result};

/// Positions of a window of `k` sliding with `stride` over `size`: (size − k) / stride + 1, or 0
/// when the window does not fit or the stride is 0 (never a panic).
fn out_size(size: usize, k: usize, stride: usize) -> usize {
    size.checked_sub(k).and_then(|v| v.checked_div(stride)).map_or(0, |v| v + 1)
}

/// A 2-D convolution: x `[n, c_in, h, w]` * w `[c_out, c_in, kh, kw]` + b `[c_out]` → y `[n, c_out, out_h, out_w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeom {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
}

impl Conv2dGeom {
    /// Square kernel, equal stride and padding on both axes.
    pub fn square(
        n: usize,
        c_in: usize,
        h: usize,
        w: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        Conv2dGeom { n, c_in, h, w, c_out, kh: k, kw: k, stride_h: stride, stride_w: stride, pad_h: pad, pad_w: pad }
    }

    /// Reject zero sizes, zero strides and kernels larger than the padded input.
    pub fn validate(&self, op: &str) -> Result<()> {
        let dims = [self.n, self.c_in, self.h, self.w, self.c_out, self.kh, self.kw, self.stride_h, self.stride_w];
        if dims.contains(&0) {
            return Err(shape_err(op, format!("zero-sized dimension, stride or kernel in {self:?}")));
        }
        if self.kh > self.h + 2 * self.pad_h || self.kw > self.w + 2 * self.pad_w {
            return Err(shape_err(
                op,
                format!(
                    "kernel {}x{} is larger than the padded input {}x{}",
                    self.kh,
                    self.kw,
                    self.h + 2 * self.pad_h,
                    self.w + 2 * self.pad_w
                ),
            ));
        }
        Ok(())
    }

    /// Output height; 0 for an invalid geometry (see [`Conv2dGeom::validate`]).
    pub fn out_h(&self) -> usize {
        out_size(self.h + 2 * self.pad_h, self.kh, self.stride_h)
    }
    /// Output width; 0 for an invalid geometry.
    pub fn out_w(&self) -> usize {
        out_size(self.w + 2 * self.pad_w, self.kw, self.stride_w)
    }
    pub fn x_len(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }
    pub fn w_len(&self) -> usize {
        self.c_out * self.c_in * self.kh * self.kw
    }
    pub fn y_len(&self) -> usize {
        self.n * self.c_out * self.out_h() * self.out_w()
    }
    /// Multiply-adds of one forward pass.
    pub fn macs(&self) -> usize {
        self.y_len() * self.c_in * self.kh * self.kw
    }
}

/// A 2-D pooling window: x `[n, c, h, w]` → y `[n, c, out_h, out_w]`. Padding (at most half the
/// window, as PyTorch requires) adds cells that never win a max and count as zeros in an average
/// (PyTorch's `count_include_pad=True`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
}

impl Pool2dGeom {
    /// Square window `k` with stride `stride`, no padding.
    pub fn square(n: usize, c: usize, h: usize, w: usize, k: usize, stride: usize) -> Self {
        Pool2dGeom { n, c, h, w, kh: k, kw: k, stride_h: stride, stride_w: stride, pad_h: 0, pad_w: 0 }
    }

    /// The same window with `pad` cells of padding on every side.
    pub fn padded(self, pad: usize) -> Self {
        Pool2dGeom { pad_h: pad, pad_w: pad, ..self }
    }

    pub fn validate(&self, op: &str) -> Result<()> {
        let dims = [self.n, self.c, self.h, self.w, self.kh, self.kw, self.stride_h, self.stride_w];
        if dims.contains(&0) {
            return Err(shape_err(op, format!("zero-sized dimension, stride or window in {self:?}")));
        }
        if 2 * self.pad_h > self.kh || 2 * self.pad_w > self.kw {
            return Err(shape_err(
                op,
                format!("padding {}x{} is more than half the window {}x{}", self.pad_h, self.pad_w, self.kh, self.kw),
            ));
        }
        let (ph, pw) = (self.h + 2 * self.pad_h, self.w + 2 * self.pad_w);
        if self.kh > ph || self.kw > pw {
            return Err(shape_err(op, format!("window {}x{} is larger than the input {ph}x{pw}", self.kh, self.kw)));
        }
        Ok(())
    }

    /// Output height; 0 for an invalid geometry (see [`Pool2dGeom::validate`]).
    pub fn out_h(&self) -> usize {
        out_size(self.h + 2 * self.pad_h, self.kh, self.stride_h)
    }
    /// Output width; 0 for an invalid geometry.
    pub fn out_w(&self) -> usize {
        out_size(self.w + 2 * self.pad_w, self.kw, self.stride_w)
    }

    /// The input cell under window element (ky, kx) of output (oy, ox), or None in the padding.
    pub fn cell(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let (py, px) = (oy * self.stride_h + ky, ox * self.stride_w + kx);
        let (y, x) = (py.checked_sub(self.pad_h)?, px.checked_sub(self.pad_w)?);
        (y < self.h && x < self.w).then_some((y, x))
    }
    pub fn x_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    pub fn y_len(&self) -> usize {
        self.n * self.c * self.out_h() * self.out_w()
    }
}

/// A fully connected layer: x `[n, in_f]` · Wᵀ (W `[out_f, in_f]`) + b `[out_f]` → y `[n, out_f]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearGeom {
    pub n: usize,
    pub in_f: usize,
    pub out_f: usize,
}

impl LinearGeom {
    pub fn validate(&self, op: &str) -> Result<()> {
        if self.n == 0 || self.in_f == 0 || self.out_f == 0 {
            return Err(shape_err(op, format!("zero-sized dimension in {self:?}")));
        }
        Ok(())
    }
    pub fn x_len(&self) -> usize {
        self.n * self.in_f
    }
    pub fn w_len(&self) -> usize {
        self.out_f * self.in_f
    }
    pub fn y_len(&self) -> usize {
        self.n * self.out_f
    }
}

/// Rows of class scores: logits `[n, classes]`, labels `[n]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossGeom {
    pub n: usize,
    pub classes: usize,
}

impl LossGeom {
    pub fn validate(&self, op: &str) -> Result<()> {
        if self.n == 0 || self.classes == 0 {
            return Err(shape_err(op, format!("zero-sized dimension in {self:?}")));
        }
        Ok(())
    }
    pub fn len(&self) -> usize {
        self.n * self.classes
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One input of a concatenation along channels: part `[n, c_part, h, w]` is the channel slice
/// `[offset, offset + c_part)` of whole `[n, c_whole, h, w]` (`hw` = h·w).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcatGeom {
    pub n: usize,
    pub c_part: usize,
    pub c_whole: usize,
    pub offset: usize,
    pub hw: usize,
}

impl ConcatGeom {
    pub fn validate(&self, op: &str) -> Result<()> {
        if self.n == 0 || self.c_part == 0 || self.hw == 0 || self.offset + self.c_part > self.c_whole {
            return Err(shape_err(
                op,
                format!("channels {}..{} of {} in {self:?}", self.offset, self.offset + self.c_part, self.c_whole),
            ));
        }
        Ok(())
    }
    pub fn part_len(&self) -> usize {
        self.n * self.c_part * self.hw
    }
    pub fn whole_len(&self) -> usize {
        self.n * self.c_whole * self.hw
    }
    /// The index in whole of element `i` of part.
    pub fn whole_index(&self, i: usize) -> usize {
        let (s, ch, b) = (i % self.hw, (i / self.hw) % self.c_part, i / (self.hw * self.c_part));
        (b * self.c_whole + self.offset + ch) * self.hw + s
    }
}
