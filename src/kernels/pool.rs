//! 2-D pooling (`shaders/pool.wgsl`): max (forward writes argmax, backward gathers by it) and average.

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{to_u32, Result};
use crate::kernels::{fast_or, Kernel, Launch};
use crate::shape::Pool2dGeom;
use crate::tensor::{DType, Tensor};

/// Mirrors `struct PoolParams` in `shaders/pool.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct PoolParams {
    pub n: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub total: u32,
    pub pad_h: u32,
    pub pad_w: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

impl PoolParams {
    pub fn new(op: &str, g: &Pool2dGeom, total: usize) -> Result<Self> {
        g.validate(op)?;
        to_u32(op, "input length", g.x_len())?;
        let u = |v: usize| v as u32; // each is <= x_len, checked above
        Ok(PoolParams {
            n: u(g.n),
            c: u(g.c),
            h: u(g.h),
            w: u(g.w),
            kh: u(g.kh),
            kw: u(g.kw),
            stride_h: to_u32(op, "stride_h", g.stride_h)?,
            stride_w: to_u32(op, "stride_w", g.stride_w)?,
            out_h: u(g.out_h()),
            out_w: u(g.out_w()),
            total: u(total),
            pad_h: u(g.pad_h),
            pad_w: u(g.pad_w),
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        })
    }
}

/// The pooling kinds wgcnn offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    Max,
    Avg,
}

/// y = max over each window; argmax = position of the max inside its `[h, w]` plane.
pub fn maxpool2d_forward(
    ctx: &Context,
    label: &str,
    g: &Pool2dGeom,
    x: &Tensor,
    y: &Tensor,
    argmax: &Tensor,
) -> Result<Launch> {
    let op = Kernel::MaxPool2dForward.entry_point();
    let p = PoolParams::new(op, g, g.y_len())?;
    x.expect(op, "x", DType::F32, g.x_len())?;
    y.expect(op, "y", DType::F32, g.y_len())?;
    argmax.expect(op, "argmax", DType::U32, g.y_len())?;
    Ok(ctx
        .launch_with(Kernel::MaxPool2dForward, &geometry(&p), label, &p, &[x, y, argmax], g.y_len() as u64, window(g))?
        .with_work(0, 4 * (g.x_len() + 2 * g.y_len()) as u64))
}

/// `dx[i] = Σ dy` over the windows whose argmax is `i`.
pub fn maxpool2d_backward(
    ctx: &Context,
    label: &str,
    g: &Pool2dGeom,
    dy: &Tensor,
    argmax: &Tensor,
    dx: &Tensor,
) -> Result<Launch> {
    let op = Kernel::MaxPool2dBackward.entry_point();
    let p = PoolParams::new(op, g, g.x_len())?;
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    argmax.expect(op, "argmax", DType::U32, g.y_len())?;
    dx.expect(op, "dx", DType::F32, g.x_len())?;
    Ok(ctx
        .launch_with(
            Kernel::MaxPool2dBackward,
            &geometry(&p),
            label,
            &p,
            &[dy, argmax, dx],
            g.x_len() as u64,
            covering(g),
        )?
        .with_work(0, 4 * (g.x_len() + 2 * g.y_len()) as u64))
}

/// y = mean over each window.
pub fn avgpool2d_forward(ctx: &Context, label: &str, g: &Pool2dGeom, x: &Tensor, y: &Tensor) -> Result<Launch> {
    let op = Kernel::AvgPool2dForward.entry_point();
    let p = PoolParams::new(op, g, g.y_len())?;
    x.expect(op, "x", DType::F32, g.x_len())?;
    y.expect(op, "y", DType::F32, g.y_len())?;
    Ok(ctx
        .launch_with(Kernel::AvgPool2dForward, &geometry(&p), label, &p, &[x, y], g.y_len() as u64, window(g))?
        .with_work(0, 4 * (g.x_len() + g.y_len()) as u64))
}

/// `dx[i] = Σ dy / (kh·kw)` over the windows covering `i`.
pub fn avgpool2d_backward(ctx: &Context, label: &str, g: &Pool2dGeom, dy: &Tensor, dx: &Tensor) -> Result<Launch> {
    let op = Kernel::AvgPool2dBackward.entry_point();
    let p = PoolParams::new(op, g, g.x_len())?;
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    dx.expect(op, "dx", DType::F32, g.x_len())?;
    Ok(ctx
        .launch_with(Kernel::AvgPool2dBackward, &geometry(&p), label, &p, &[dy, dx], g.x_len() as u64, covering(g))?
        .with_work(0, 4 * (g.x_len() + g.y_len()) as u64))
}

/// `shaders/pool.wgsl`'s geometry constants, from the checked params.
fn geometry(p: &PoolParams) -> [(&'static str, u32); 10] {
    [
        ("H", p.h),
        ("W", p.w),
        ("KH", p.kh),
        ("KW", p.kw),
        ("SH", p.stride_h),
        ("SW", p.stride_w),
        ("OH", p.out_h),
        ("OW", p.out_w),
        ("PH", p.pad_h),
        ("PW", p.pad_w),
    ]
}

/// Loop iterations of one forward invocation: the window.
fn window(g: &Pool2dGeom) -> u64 {
    (g.kh * (g.kw + 1)) as u64
}

/// Loop iterations of one backward invocation: the windows covering one input element.
fn covering(g: &Pool2dGeom) -> u64 {
    let per_axis = |k: usize, s: usize| k.div_ceil(s) + 1;
    (per_axis(g.kh, g.stride_h) * (per_axis(g.kw, g.stride_w) + 1)) as u64
}

/// Mirrors `struct TileParams` in `shaders/pool_fast.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct TileParams {
    pub total: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// Whether the tiles kernels apply (windows that tile the input exactly; the window kernels take the
/// rest).
pub fn tiles(g: &Pool2dGeom) -> bool {
    g.stride_h == g.kh
        && g.stride_w == g.kw
        && g.h.is_multiple_of(g.kh)
        && g.w.is_multiple_of(g.kw)
        && g.pad_h == 0
        && g.pad_w == 0
}

/// Whether the tiles kernels run two windows per invocation (`maxpool2d_tiles_forward4` and
/// `_backward4`: each input row of the pair one vec4): windows 2 wide on rows of a multiple of 4
/// (LeNet's first pool), with the fast kernels. The pair's windows compare and write as the
/// one-window kernels do (the same bits); the input's loads and the gradient's stores are a quarter
/// as many.
pub fn tiles_in_pairs(ctx: &Context, g: &Pool2dGeom) -> bool {
    tiles(g) && g.kw == 2 && g.w.is_multiple_of(4) && super::vec4_fits(ctx, g.x_len())
}

/// Whether the tiles kernels read each input row of a window as one vec2 (`maxpool2d_tiles_forward2`
/// and `_backward2`): windows 2 wide on even rows that do not take pairs (a multiple of 2, not 4:
/// inception-mini's 14-wide and LeNet-5's 10-wide second pools), with the fast kernels. Half the
/// input's loads and the gradient's stores; the same bits.
pub fn tiles_in_vec2(ctx: &Context, g: &Pool2dGeom) -> bool {
    tiles(g)
        && g.kw == 2
        && g.w.is_multiple_of(2)
        && !tiles_in_pairs(ctx, g)
        && ctx.kernels == crate::context::KernelSet::Fast
}

/// The runs a window kernel may take per invocation (`RX`: outputs of a row forward, input elements of
/// a row backward), the default first: the largest divisor of the row from 5 to 7 (7 for
/// inception-mini's 7- and 14-wide rows), then 8, 4, 2 and 1, where the run fits the row (up to its
/// next power of two) and the shader's arrays (`MAX_SEG`). The longest run timed fastest on each of
/// inception-mini's four window launches on lavapipe (3x3 stride 1: 1.9-2.3x run 1's speed), so it
/// leads where tuning is off or its budget is spent. The backward runs need stride 1 across (element
/// r of a run then reads the loaded columns r..r + KW); other strides take run 1 alone.
pub fn window_runs(g: &Pool2dGeom, backward: bool) -> Vec<u32> {
    let row = if backward { g.w } else { g.out_w() };
    if backward && g.stride_w != 1 {
        return vec![1];
    }
    let divisor = (5..8).rev().find(|d| row.is_multiple_of(*d));
    let mut runs: Vec<u32> = Vec::new();
    for r in divisor.into_iter().chain([8, 4, 2]) {
        let seg = if backward { r + g.kw - 1 } else { (r - 1) * g.stride_w + g.kw };
        if r <= row.next_power_of_two() && seg <= MAX_SEG && !runs.contains(&(r as u32)) {
            runs.push(r as u32);
        }
    }
    runs.push(1);
    runs
}

/// `MAX_SEG` of `pool_fast.wgsl`: the longest row segment a window kernel's run loads.
const MAX_SEG: usize = 32;

/// One launch of a `pool_fast.wgsl` kernel (tiles or window) with `g`'s sizes as pipeline constants;
/// the window kernels are tuned over their runs ([`window_runs`]).
fn specialised_launch(
    ctx: &Context,
    kernel: Kernel,
    label: &str,
    g: &Pool2dGeom,
    tensors: &[&Tensor],
    relu_mask: bool,
) -> Result<Launch> {
    let op = kernel.entry_point();
    g.validate(op)?;
    to_u32(op, "input length", g.x_len())?;
    let u = |v: usize| v as u32; // each is <= x_len, checked above
    let mut consts = vec![("H", u(g.h)), ("W", u(g.w)), ("KH", u(g.kh)), ("KW", u(g.kw))];
    let window_kernel = matches!(kernel, Kernel::MaxPool2dWindowForward | Kernel::MaxPool2dWindowBackward);
    if !window_kernel {
        let backward = matches!(kernel, Kernel::MaxPool2dTilesBackward | Kernel::MaxPool2dTilesBackward4);
        if backward {
            consts.push(("RELU_MASK", u32::from(relu_mask)));
        }
        // The two-window kernels where they apply: one invocation per pair of windows; else the
        // vec2-row kernels where they apply.
        let (kernel, windows) = if tiles_in_pairs(ctx, g) {
            (if backward { Kernel::MaxPool2dTilesBackward4 } else { Kernel::MaxPool2dTilesForward4 }, 2)
        } else if tiles_in_vec2(ctx, g) {
            (if backward { Kernel::MaxPool2dTilesBackward2 } else { Kernel::MaxPool2dTilesForward2 }, 1)
        } else {
            (kernel, 1)
        };
        let total = g.y_len() / windows;
        let p = TileParams { total: u(total), _pad0: 0, _pad1: 0, _pad2: 0 };
        return Ok(ctx
            .launch_with(kernel, &consts, label, &p, tensors, total as u64, window(g))?
            .with_work(0, 4 * (g.x_len() + 2 * g.y_len()) as u64));
    }
    consts.extend([
        ("SH", u(g.stride_h)),
        ("SW", u(g.stride_w)),
        ("PH", u(g.pad_h)),
        ("PW", u(g.pad_w)),
        ("OH", u(g.out_h())),
        ("OW", u(g.out_w())),
    ]);
    // One invocation per run of outputs (forward) or input elements (backward) along a row.
    let backward = kernel == Kernel::MaxPool2dWindowBackward;
    let (rows, row, iters) =
        if backward { (g.n * g.c * g.h, g.w, covering(g)) } else { (g.n * g.c * g.out_h(), g.out_w(), window(g)) };
    let runs = window_runs(g, backward);
    let names: Vec<String> = runs.iter().map(|r| format!("run {r}")).collect();
    let shape = format!(
        "n{} c{} {}x{} k{}x{} s{}x{} p{}x{}{}",
        g.n,
        g.c,
        g.h,
        g.w,
        g.kh,
        g.kw,
        g.stride_h,
        g.stride_w,
        g.pad_h,
        g.pad_w,
        if backward { " backward" } else { "" }
    );
    let family = if backward { "maxpool2d_window_backward" } else { "maxpool2d_window_forward" };
    let l = ctx.tuned(family, shape, &names, |i| {
        let rx = runs[i];
        let total = rows * row.div_ceil(rx as usize);
        let p = TileParams { total: to_u32(op, "invocations", total)?, _pad0: 0, _pad1: 0, _pad2: 0 };
        let mut consts = consts.clone();
        consts.push(("RX", rx));
        ctx.launch_with(kernel, &consts, label, &p, tensors, total as u64, iters * u64::from(rx))
    })?;
    Ok(l.with_work(0, 4 * (g.x_len() + 2 * g.y_len()) as u64))
}

/// [`maxpool2d_forward`] specialised to the shape: the tiles kernel where the windows tile the input
/// exactly, else the window kernel (any window, stride and padding; the same bits as the plain one).
pub fn maxpool2d_forward_fast(
    ctx: &Context,
    label: &str,
    g: &Pool2dGeom,
    x: &Tensor,
    y: &Tensor,
    argmax: &Tensor,
) -> Result<Option<Launch>> {
    let kernel = if tiles(g) { Kernel::MaxPool2dTilesForward } else { Kernel::MaxPool2dWindowForward };
    let op = kernel.entry_point();
    x.expect(op, "x", DType::F32, g.x_len())?;
    y.expect(op, "y", DType::F32, g.y_len())?;
    argmax.expect(op, "argmax", DType::U32, g.y_len())?;
    specialised_launch(ctx, kernel, label, g, &[x, y, argmax], false).map(Some)
}

/// [`maxpool2d_backward`] specialised to the shape: one invocation per window where the windows tile
/// the input, else one per input element (the window kernel; the same bits as the plain one).
pub fn maxpool2d_backward_fast(
    ctx: &Context,
    label: &str,
    g: &Pool2dGeom,
    dy: &Tensor,
    argmax: &Tensor,
    dx: &Tensor,
) -> Result<Option<Launch>> {
    if !tiles(g) {
        let op = Kernel::MaxPool2dWindowBackward.entry_point();
        dy.expect(op, "dy", DType::F32, g.y_len())?;
        argmax.expect(op, "argmax", DType::U32, g.y_len())?;
        dx.expect(op, "dx", DType::F32, g.x_len())?;
        return specialised_launch(ctx, Kernel::MaxPool2dWindowBackward, label, g, &[dy, argmax, dx], false).map(Some);
    }
    // y is bound but not read without the mask; dy has its shape.
    maxpool2d_backward_fused(ctx, label, g, dy, argmax, dy, dx, false)
}

/// [`maxpool2d_backward_fast`], and with `relu_mask` also the backward of a ReLU before the pool:
/// the gradient passes only where the window's maximum `y` (the pool's output) is positive.
#[allow(clippy::too_many_arguments)]
pub fn maxpool2d_backward_fused(
    ctx: &Context,
    label: &str,
    g: &Pool2dGeom,
    dy: &Tensor,
    argmax: &Tensor,
    y: &Tensor,
    dx: &Tensor,
    relu_mask: bool,
) -> Result<Option<Launch>> {
    let op = Kernel::MaxPool2dTilesBackward.entry_point();
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    argmax.expect(op, "argmax", DType::U32, g.y_len())?;
    y.expect(op, "y", DType::F32, g.y_len())?;
    dx.expect(op, "dx", DType::F32, g.x_len())?;
    if !tiles(g) {
        return Ok(None);
    }
    specialised_launch(ctx, Kernel::MaxPool2dTilesBackward, label, g, &[dy, argmax, y, dx], relu_mask).map(Some)
}

/// Max-pool forward, specialised where possible unless `ctx.kernels` is [`crate::KernelSet::Plain`].
pub fn maxpool2d_forward_auto(
    ctx: &Context,
    label: &str,
    g: &Pool2dGeom,
    x: &Tensor,
    y: &Tensor,
    argmax: &Tensor,
) -> Result<Launch> {
    fast_or(
        ctx,
        || maxpool2d_forward_fast(ctx, label, g, x, y, argmax),
        || maxpool2d_forward(ctx, label, g, x, y, argmax),
    )
}

/// Max-pool backward, specialised where possible (see [`maxpool2d_forward_auto`]).
pub fn maxpool2d_backward_auto(
    ctx: &Context,
    label: &str,
    g: &Pool2dGeom,
    dy: &Tensor,
    argmax: &Tensor,
    dx: &Tensor,
) -> Result<Launch> {
    fast_or(
        ctx,
        || maxpool2d_backward_fast(ctx, label, g, dy, argmax, dx),
        || maxpool2d_backward(ctx, label, g, dy, argmax, dx),
    )
}
