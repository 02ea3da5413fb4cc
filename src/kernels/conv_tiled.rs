//! The conv forward of hardware adapters (`conv2d_tiled` in `shaders/conv.wgsl`): an implicit matrix
//! product of the weights with the im2col view of the input, staged through workgroup memory in
//! tiles of 16 output channels × 64 output pixels. Chosen where [`crate::context::Budget::tiled`]
//! says so (GPUs); tested on lavapipe against the same reference as every conv kernel.

use crate::context::{Budget, Context};
use crate::error::{to_u32, Result};
use crate::kernels::conv::{check_geom, ConvParams};
use crate::kernels::{Kernel, Launch, WORKGROUP_SIZE};
use crate::shape::Conv2dGeom;
use crate::tensor::{DType, Tensor};

/// Loop iterations of one invocation: per step of 16 taps, 4 weight loads, 16 gathers, 16 multiply-adds.
fn iters(g: &Conv2dGeom) -> usize {
    (g.c_in * g.kh * g.kw).div_ceil(16) * 36 + 1
}

/// Whether the tiled forward takes `g` under `budget`.
pub fn conv2d_tiled_takes(g: &Conv2dGeom, budget: &Budget) -> bool {
    budget.tiled && iters(g) <= budget.loop_iters
}

/// y = conv(x, w) + b (then ReLU when `relu`) with the tiled kernel; `None` where the budget does not
/// choose it.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_tiled(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    y: &Tensor,
    relu: bool,
) -> Result<Option<Launch>> {
    let op = Kernel::Conv2dTiled.entry_point();
    check_geom(op, g)?;
    x.expect(op, "x", DType::F32, g.x_len())?;
    w.expect(op, "w", DType::F32, g.w_len())?;
    b.expect(op, "b", DType::F32, g.c_out)?;
    y.expect(op, "y", DType::F32, g.y_len())?;
    if !conv2d_tiled_takes(g, &ctx.budget()) {
        return Ok(None);
    }
    let tiles = g.c_out.div_ceil(16) * (g.n * g.out_h() * g.out_w()).div_ceil(64);
    let p = ConvParams { total: to_u32(op, "tiles", tiles)?, ..ConvParams::new(op, g, 0)? };
    let threads = tiles as u64 * u64::from(WORKGROUP_SIZE);
    let consts = [("RELU", u32::from(relu))];
    let l = ctx.launch_with(Kernel::Conv2dTiled, &consts, label, &p, &[x, w, b, y], threads, iters(g) as u64)?;
    Ok(Some(l.with_work(2 * g.macs() as u64, 0)))
}
