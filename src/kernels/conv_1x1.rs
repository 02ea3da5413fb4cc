//! A 1×1 convolution (stride 1, no padding) is a matrix product per image: `y_n = W · x_n` over the
//! channels, each image's `[c, h·w]` plane block an operand. These run it as one batched
//! [`matmul_batched`] dispatch (the image index is the grid's layer); the weight gradient sums the
//! per-image products `dy_n · x_nᵀ` with `sum_chunks`, in image order (deterministic, no atomics).
//! The plain conv kernels are the references; callers check [`pointwise`] first.

use crate::context::Context;
use crate::error::Result;
use crate::kernels::matmul::{matmul_batched, Batch, Epilogue, Operand};
use crate::kernels::reduce::sum_chunks;
use crate::kernels::Launch;
use crate::shape::Conv2dGeom;
use crate::tensor::{DType, Tensor};

/// Whether `g` is a 1×1 convolution with stride 1 and no padding.
pub fn pointwise(g: &Conv2dGeom) -> bool {
    (g.kh, g.kw, g.stride_h, g.stride_w, g.pad_h, g.pad_w) == (1, 1, 1, 1, 0, 0)
}

/// y[n, co, s] = Σ_ci w[co, ci] · x[n, ci, s] + b[co], as yᵀ_n = xᵀ_n · wᵀ + b (shapes checked by the
/// caller).
pub fn conv1x1_forward(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    y: &Tensor,
) -> Result<Option<Launch>> {
    let hw = g.h * g.w;
    let a = Operand { t: x, rows: 1, cols: hw }; // xᵀ_n [s, ci]
    let wt = Operand { t: w, rows: 1, cols: g.c_in }; // wᵀ [ci, co]
    let c = Operand { t: y, rows: 1, cols: hw }; // yᵀ_n [s, co]
    let batch = Batch { count: g.n, a: g.c_in * hw, b: 0, c: g.c_out * hw };
    matmul_batched(ctx, label, (hw, g.c_out, g.c_in), batch, a, wt, Epilogue { bias: Some(b), relu: false }, c)
}

/// dx[n, ci, s] = Σ_co dy[n, co, s] · w[co, ci], as dxᵀ_n = dyᵀ_n · w.
pub fn conv1x1_backward_input(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Option<Launch>> {
    let hw = g.h * g.w;
    let a = Operand { t: dy, rows: 1, cols: hw }; // dyᵀ_n [s, co]
    let wm = Operand { t: w, rows: g.c_in, cols: 1 }; // w [co, ci]
    let c = Operand { t: dx, rows: 1, cols: hw }; // dxᵀ_n [s, ci]
    let batch = Batch { count: g.n, a: g.c_out * hw, b: 0, c: g.c_in * hw };
    matmul_batched(ctx, label, (hw, g.c_in, g.c_out), batch, a, wm, Epilogue::NONE, c)
}

/// dw[co, ci] = Σ_n Σ_s dy[n, co, s] · x[n, ci, s]: the per-image products dy_n · x_nᵀ into a
/// `[n, co, ci]` scratch buffer (made now, at build time), then `sum_chunks` over the images in order.
pub fn conv1x1_backward_weight(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    dy: &Tensor,
    x: &Tensor,
    dw: &Tensor,
) -> Result<Option<Launch>> {
    let hw = g.h * g.w;
    let w_len = g.c_out * g.c_in;
    let partial =
        if g.n == 1 { dw.clone() } else { Tensor::zeros(ctx, &format!("{label}.partial"), &[g.n, w_len], DType::F32)? };
    let a = Operand { t: dy, rows: hw, cols: 1 }; // dy_n [co, s]
    let xt = Operand { t: x, rows: 1, cols: hw }; // xᵀ_n [s, ci]
    let c = Operand { t: &partial, rows: g.c_in, cols: 1 }; // [co, ci] of image n
    let batch = Batch { count: g.n, a: g.c_out * hw, b: g.c_in * hw, c: w_len };
    let Some(products) = matmul_batched(ctx, label, (g.c_out, g.c_in, hw), batch, a, xt, Epilogue::NONE, c)? else {
        return Ok(None);
    };
    if g.n == 1 {
        return Ok(Some(products));
    }
    Ok(Some(products.then(sum_chunks(ctx, label, &partial, g.n, dw)?)))
}
