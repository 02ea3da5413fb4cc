//! Shape-specialised convolution kernels (`shaders/conv_fast.wgsl`): the sizes are WGSL `override`
//! constants, each invocation computes a register block of outputs. The plain kernels of
//! [`crate::kernels::conv`] are their test references and the fallback for shapes outside the
//! blocks' register budget ([`conv2d_forward_fast`] and friends return `None` there).

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{to_u32, Result};
use crate::kernels::conv::{check_geom, conv2d_backward_input, conv2d_backward_weight, conv2d_forward};
use crate::kernels::conv_1x1::{conv1x1_backward_input, conv1x1_backward_weight, conv1x1_forward, pointwise};
use crate::kernels::conv_plan::{channel_block, direct_iters, s2_iters};
pub use crate::kernels::conv_plan::{
    conv2d_backward_input_fast_takes, conv2d_forward_fast_takes, conv2d_weight_grad_split, conv2d_weight_grad_variants,
    GradRows, WeightGradSplit,
};
use crate::kernels::conv_tiled::{conv2d_backward_input_tiled, conv2d_backward_weight_tiled, conv2d_forward_tiled};
use crate::kernels::reduce::sum_chunks;
use crate::kernels::{fast_or, Kernel, Launch, UNIFORM_WINDOW};
use crate::shape::Conv2dGeom;
use crate::tensor::{DType, Tensor};

/// Mirrors `struct FastConvParams` in `shaders/conv_fast.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct FastConvParams {
    pub n: u32,
    pub total: u32,
    pub rows_per_chunk: u32,
    pub rows: u32,
}

/// The conv geometry as the shader's `override` constants (as seen by the kernel: for the input
/// gradient, dy is the input and dx the output).
#[allow(clippy::too_many_arguments)]
fn constants(
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    g: &Conv2dGeom,
    pad: (usize, usize),
    out: (usize, usize),
    cob: usize,
    (bias, flip, relu): (bool, bool, bool),
) -> Vec<(&'static str, u32)> {
    let u = |v: usize| v as u32; // callers checked every size fits in u32
    let mut consts = size_consts([c_in, h, w, c_out], (g.kh, g.kw), pad, out).to_vec();
    consts.extend([
        ("SH", u(g.stride_h)),
        ("SW", u(g.stride_w)),
        ("COB", u(cob)),
        ("BIAS", u32::from(bias)),
        ("FLIP", u32::from(flip)),
        ("RELU", u32::from(relu)),
    ]);
    consts
}

/// The constants of `shaders/conv_sizes.wgsl`: input `[c_in, h, w]`, `c_out` channels, the kernel,
/// padding and output size (callers checked every size fits in u32).
fn size_consts(
    [c_in, h, w, c_out]: [usize; 4],
    (kh, kw): (usize, usize),
    pad: (usize, usize),
    out: (usize, usize),
) -> [(&'static str, u32); 10] {
    let u = |v: usize| v as u32;
    [
        ("CIN", u(c_in)),
        ("H", u(h)),
        ("W", u(w)),
        ("COUT", u(c_out)),
        ("KH", u(kh)),
        ("KW", u(kw)),
        ("PH", u(pad.0)),
        ("PW", u(pad.1)),
        ("OH", u(out.0)),
        ("OW", u(out.1)),
    ]
}

/// One `conv2d_direct` dispatch: a stride-`sw` convolution of `x` [n, c_in, h, w] into `y`.
#[allow(clippy::too_many_arguments)]
fn direct(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    io: (usize, usize, usize, usize, usize, usize),
    pad: (usize, usize),
    (flip, relu): (bool, bool),
    tensors: [&Tensor; 4],
) -> Result<Option<Launch>> {
    let op = Kernel::Conv2dDirect.entry_point();
    let (c_in, h, w, c_out, oh, ow) = io;
    let iters = direct_iters(c_in, g);
    if iters > ctx.budget().loop_iters {
        return Ok(None);
    }
    // The weights through the uniform window, as a packed copy or where they fit in it, or from
    // storage (each layout every way that applies); the window binding of a storage variant gets
    // the context's dummy, which is not read.
    let weights = tensors[1];
    let window = ctx.uniform_window_fits(weights);
    let dummy = ctx.uniform_dummy()?;
    // The packed layout (rows padded to a vec4 or two, made by conv2d_pack_weights each run) where
    // it fits in the window; its tensor is made by the variant (at build time).
    let kp = if g.kw <= 4 { 4 } else { 8 };
    let packed_len = c_out * c_in * g.kh * kp;
    let packable = g.kw <= 8 && 4 * packed_len as u64 <= UNIFORM_WINDOW && ctx.uniform_window_fits(&dummy);
    let layouts = direct_variants(c_out, ow);
    // The window first (the default keeps one dispatch per conv); the packed copy costs a second
    // dispatch and timed 3-25 % faster than the plain window on each of five LeNet-5 and resnet-mini
    // shapes on lavapipe (its component index is known at compile time), so tuning takes it there.
    // Storage only where the weights themselves fit no window: it timed 1.3-2x slower than either
    // window on every LeNet-5 shape on lavapipe, and building it would only spend the tuning budget.
    let sources = [(WeightSource::Window, window), (WeightSource::Packed, packable), (WeightSource::Storage, !window)];
    // Invocations batch-fastest (`NFAST`) on software adapters, whose SIMD lanes then share one
    // output row and its kernel-row bounds: 0-8 % faster on every LeNet-5 and 3×3 zoo shape timed on
    // lavapipe (BENCHMARKS.md); the other order on GPUs, where neighbouring invocations reading
    // neighbouring addresses matters more. Either way the first variant is also offered in the other
    // order, so tuning can choose it and the tests reach both.
    let nfast = ctx.is_software();
    // On software adapters, the row's first and last column blocks in dispatches of their own and the
    // blocks between them in a third, read with no bounds tests (`edge_parts`): LeNet-5's input
    // gradient of conv2 took a third less time (two profiles in turns on lavapipe, Intel Xeon). GPUs
    // keep one dispatch, whose invocations run side by side rather than in three passes.
    let split = ctx.is_software();
    // Where the row is split, each input row's window read as vec4s shifted into place (`VX`): stride 1,
    // taps the 16-value window covers, and an input of whole vec4s. On lavapipe (Intel Xeon, profiles
    // in turns, tuning off) vgg-cifar's convs took 18-20 % less time, LeNet-5's conv2 8 % (rows of 14,
    // not on the vec4 grid: the shift is chosen at run time) and its input gradient 2 % more; the
    // first layout is also offered with scalar loads, so tuning can choose either.
    let vx = split && g.stride_w == 1 && g.kw <= 9 && tensors[0].len().is_multiple_of(4);
    let mut variants: Vec<DirectVariant> = sources
        .into_iter()
        .filter(|&(_, usable)| usable)
        .flat_map(|(src, _)| {
            layouts.iter().map(move |&(cols, cob)| DirectVariant { cols, cob, src, nfast, vx, sg: None })
        })
        .collect();
    variants.push(DirectVariant { nfast: !nfast, ..variants[0] });
    if vx {
        variants.push(DirectVariant { vx: false, ..variants[0] });
    }
    // With subgroups of one size (`SG`), each layout of the first weight source also with the weights
    // loaded once per subgroup and shuffled to its lanes, first: LeNet-5's conv2 forward took 2.17 ms
    // against 2.69, its input gradient 2.66 against 3.59 and conv1 1.40 against 1.57 (a profile in
    // turns, lavapipe, Intel Xeon). Where every lane of a subgroup shares its kernel rows: rows without
    // padding, or the batch-fastest order with a batch of whole subgroups (which also keeps a subgroup
    // on one output row and column block); at most 8 weights per lane.
    if let Some(sgs) = ctx.subgroup_size().map(|s| s as usize) {
        let rows_fixed = pad.0 == 0 && (oh - 1) * g.stride_h + g.kh <= h;
        let mut sg: Vec<DirectVariant> = variants
            .iter()
            .filter(|v| v.src == variants[0].src && v.vx == variants[0].vx)
            .filter(|v| v.cob * g.kw <= 8 * sgs && (rows_fixed || (v.nfast && g.n.is_multiple_of(sgs))))
            .map(|v| DirectVariant { sg: Some(sgs as u32), ..*v })
            .collect();
        sg.dedup_by_key(|v| v.name());
        sg.append(&mut variants);
        variants = sg;
    }
    let names: Vec<String> = variants.iter().map(DirectVariant::name).collect();
    let shape = format!(
        "n{} {c_in}x{h}x{w} -> {c_out}x{oh}x{ow} k{}x{} s{}x{} p{}x{}{}{}",
        g.n,
        g.kh,
        g.kw,
        g.stride_h,
        g.stride_w,
        pad.0,
        pad.1,
        if flip { " flip" } else { "" },
        if relu { " relu" } else { "" }
    );
    let l = ctx.tuned("conv2d_direct", shape, &names, |i| {
        let DirectVariant { cols, cob, src, nfast, vx, sg } = variants[i];
        let layers = c_out.div_ceil(cob);
        // Each dispatch (and the pack) sets its own invocation count.
        let p = FastConvParams { n: to_u32(op, "batch", g.n)?, total: 0, rows_per_chunk: 0, rows: 0 };
        let mut consts = constants(c_in, h, w, c_out, g, pad, (oh, ow), cob, (!flip, flip, relu));
        consts.extend([
            ("WIDE", u32::from(cols > 4)),
            ("COLS", cols as u32),
            ("UW", u32::from(src == WeightSource::Window)),
            ("PACKED", u32::from(src == WeightSource::Packed)),
            ("KP", kp as u32),
            ("NFAST", u32::from(nfast)),
        ]);
        if let Some(sgs) = sg {
            consts.extend([("SG", 1), ("SGS", sgs)]);
        }
        let kernel = if sg.is_some() { Kernel::Conv2dDirectSg } else { Kernel::Conv2dDirect };
        let [x, wt, b, y] = tensors;
        let packed = match src {
            WeightSource::Packed => Some(Tensor::zeros_with_room(
                ctx,
                &format!("{label}.packed_w"),
                &[packed_len],
                DType::F32,
                UNIFORM_WINDOW,
            )?),
            _ => None,
        };
        let window = match src {
            WeightSource::Window => wt,
            _ => packed.as_ref().unwrap_or(&dummy),
        };
        // One dispatch per part of the row (EDGE), in order; the blocks of each part are independent.
        let mut conv: Option<Launch> = None;
        let parts =
            if split { edge_parts(ow, cols, (w, g.stride_w, pad.1, g.kw)) } else { vec![(0, ow.div_ceil(cols))] };
        for (edge, blocks) in parts {
            let total = g.n * oh * blocks;
            let mut consts = consts.clone();
            consts.push(("EDGE", edge));
            // The input's rows as vec4 windows where the part's columns are known (an edge block) or
            // all inside the row (the middle blocks); a row in one part tests its columns at run time.
            let vx = vx && edge != 0;
            consts.push(("VX", u32::from(vx)));
            let x4 = if vx { x } else { &dummy };
            let p = FastConvParams { total: to_u32(op, "invocations", total)?, ..p };
            let part = ctx.launch_layered(
                kernel,
                &consts,
                label,
                &p,
                &[x, wt, b, y, window, x4],
                total as u64,
                to_u32(op, "channel blocks", layers)?,
                iters as u64,
            )?;
            conv = Some(match conv {
                Some(l) => l.then(part),
                None => part,
            });
        }
        let conv = conv.expect("a row has at least one block");
        let Some(pk) = &packed else { return Ok(conv) };
        let pack_params = FastConvParams { total: packed_len as u32, ..p };
        let pack = ctx.launch_with(
            Kernel::Conv2dPackWeights,
            &consts,
            &format!("{label}.pack"),
            &pack_params,
            &[wt, pk],
            packed_len as u64,
            0,
        )?;
        Ok(conv.after(pack))
    })?;
    Ok(Some(l.with_work(2 * g.macs() as u64, 0)))
}

/// The dispatches `conv2d_direct` runs a row `ow` outputs wide in as blocks of `cols` columns:
/// `(EDGE, blocks)`. The first and last blocks alone (their columns constants, so the shader decides
/// every padding test when it is built), and the blocks between them in one dispatch where every
/// column they read lies inside the input row (`w` wide; stride, padding and kernel width
/// `(sw, pw, kw)`), read with no test. Where the middle blocks would read padding: one dispatch of
/// every block, tested at run time.
pub fn edge_parts(ow: usize, cols: usize, (w, sw, pw, kw): (usize, usize, usize, usize)) -> Vec<(u32, usize)> {
    let blocks = ow.div_ceil(cols);
    match blocks {
        0 | 1 => vec![(1, 1)],
        2 => vec![(1, 1), (2, 1)],
        _ => {
            // The middle blocks' first column read is that of block 1; their last, that of block
            // blocks - 2 (its last output column's last tap). The first is at least 1: the shader's
            // sliding window also loads the column before it.
            let first = (cols * sw) as i64 - pw as i64;
            let last = (((blocks - 2) * cols + cols - 1) * sw + kw - 1) as i64 - pw as i64;
            if first >= 1 && last < w as i64 {
                vec![(1, 1), (3, blocks - 2), (2, 1)]
            } else {
                vec![(0, blocks)]
            }
        }
    }
}

/// The `(columns, channel block)` layouts `conv2d_direct` may run a layer of `c_out` channels and rows
/// `ow` wide as, the default first. Where rows are at least 7 wide: up to 8 columns × up to 4
/// channels per invocation (fewer weight loads per multiply-add: measured 10-25 % faster on LeNet's
/// layers on one Xeon), the row split into equal blocks so that none is mostly past its end (10 = 5 +
/// 5: 8 + 2 did 16 columns' work for 10; a 7-wide row is one block of 7, where 4 + 3 columns × 8
/// channels took 1.5x as long on resnet-mini's 64-channel 7×7 convs, the tuner's timings on lavapipe);
/// narrower rows: up to 4 columns × up to 8 channels. Then the others. Each output adds its
/// products in the same order in all of them.
pub fn direct_variants(c_out: usize, ow: usize) -> Vec<(usize, usize)> {
    let even = |max: usize| ow.div_ceil(ow.div_ceil(max));
    let (wide, narrow) = ((even(8), channel_block(c_out, 4)), (even(4), channel_block(c_out, 8)));
    let mut v = vec![if ow >= 7 { wide } else { narrow }];
    for cand in
        [wide, narrow, (8, channel_block(c_out, 4)), (4, channel_block(c_out, 8)), (even(4), channel_block(c_out, 4))]
    {
        if cand.0 >= 1 && !v.contains(&cand) {
            v.push(cand);
        }
    }
    v
}

/// Where `conv2d_direct` reads its weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WeightSource {
    /// The uniform window over the weights themselves (`UW`).
    Window,
    /// The uniform window over a packed copy made by `conv2d_pack_weights` (`PACKED`).
    Packed,
    /// Storage.
    Storage,
}

/// One way to run `conv2d_direct`: `cols` output columns × `cob` channels per invocation, the
/// weights from `src`, invocations numbered batch-fastest when `nfast`.
#[derive(Clone, Copy, Debug)]
struct DirectVariant {
    cols: usize,
    cob: usize,
    src: WeightSource,
    nfast: bool,
    /// The input rows' windows as vec4 loads (`VX`) in the parts of a row that take them.
    vx: bool,
    /// The weights loaded once per subgroup of this size and shuffled to its lanes (`SG`).
    sg: Option<u32>,
}

impl DirectVariant {
    fn name(&self) -> String {
        let src = match self.src {
            WeightSource::Window => " uniform-w",
            WeightSource::Packed => " packed-w",
            WeightSource::Storage => "",
        };
        let order = if self.nfast { " batch-fastest" } else { "" };
        let x = if self.vx { " vec4-x" } else { "" };
        let sg = if self.sg.is_some() { " subgroup-w" } else { "" };
        format!("{}ch x {}col{src}{order}{x}{sg}", self.cob, self.cols)
    }
}

/// y = conv(x, w) + b with the register-blocked kernel; `None` when the shape does not fit it.
pub fn conv2d_forward_fast(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    y: &Tensor,
) -> Result<Option<Launch>> {
    conv2d_forward_fused(ctx, label, g, x, w, b, y, false)
}

/// y = relu(conv(x, w) + b) in one pass when `relu` (else as [`conv2d_forward_fast`]).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_fused(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    y: &Tensor,
    relu: bool,
) -> Result<Option<Launch>> {
    let op = Kernel::Conv2dDirect.entry_point();
    check_geom(op, g)?;
    x.expect(op, "x", DType::F32, g.x_len())?;
    w.expect(op, "w", DType::F32, g.w_len())?;
    b.expect(op, "b", DType::F32, g.c_out)?;
    y.expect(op, "y", DType::F32, g.y_len())?;
    if pointwise(g) && !relu {
        if let Some(l) = conv1x1_forward(ctx, label, g, x, w, b, y)? {
            return Ok(Some(l));
        }
    }
    if let Some(l) = conv2d_forward_tiled(ctx, label, g, x, w, b, y, relu)? {
        return Ok(Some(l));
    }
    let io = (g.c_in, g.h, g.w, g.c_out, g.out_h(), g.out_w());
    direct(ctx, label, g, io, (g.pad_h, g.pad_w), (false, relu), [x, w, b, y])
}

/// dx = conv_transpose(dy, w): for stride 1 a convolution of dy, padded by k - 1 - pad, with the
/// flipped kernel; for stride 2 the phase-split kernel of `shaders/conv_strided.wgsl`; `None` for other
/// strides, stride-1 padding of k or more, or shapes that do not fit.
pub fn conv2d_backward_input_fast(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Option<Launch>> {
    let op = Kernel::Conv2dDirect.entry_point();
    check_geom(op, g)?;
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    w.expect(op, "w", DType::F32, g.w_len())?;
    dx.expect(op, "dx", DType::F32, g.x_len())?;
    if g.stride_h == 2 && g.stride_w == 2 {
        return backward_input_s2(ctx, label, g, dy, w, dx);
    }
    if pointwise(g) {
        if let Some(l) = conv1x1_backward_input(ctx, label, g, dy, w, dx)? {
            return Ok(Some(l));
        }
    }
    if let Some(l) = conv2d_backward_input_tiled(ctx, label, g, dy, w, dx)? {
        return Ok(Some(l));
    }
    if g.stride_h != 1 || g.stride_w != 1 || g.pad_h >= g.kh || g.pad_w >= g.kw {
        return Ok(None);
    }
    let io = (g.c_out, g.out_h(), g.out_w(), g.c_in, g.h, g.w);
    let pad = (g.kh - 1 - g.pad_h, g.kw - 1 - g.pad_w);
    // b is not read (BIAS is off); w is bound in its place.
    direct(ctx, label, g, io, pad, (true, false), [dy, w, w, dx])
}

/// A layer's geometry as the tuning cache keys it: `n64 16x14x14 -> 32x7x7 k3x3 s2x2 p1x1`.
fn tune_key(g: &Conv2dGeom) -> String {
    format!(
        "n{} {}x{}x{} -> {}x{}x{} k{}x{} s{}x{} p{}x{}",
        g.n,
        g.c_in,
        g.h,
        g.w,
        g.c_out,
        g.out_h(),
        g.out_w(),
        g.kh,
        g.kw,
        g.stride_h,
        g.stride_w,
        g.pad_h,
        g.pad_w
    )
}

/// The stride-2 input gradient (`conv2d_backward_input_s2`): one invocation per 2x2 block of dx and
/// block of 8, 16 (3x3 kernels with padding 1) or 4 input channels, the weights through the uniform
/// window or storage (tuned; the window with 8 channels first where the weights fit in it and there
/// are more than 4: 1.3-1.7x faster than 4 on resnet-mini's stride-2 layers); `None` when the loop is
/// over budget.
fn backward_input_s2(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Option<Launch>> {
    let op = Kernel::Conv2dBackwardInputS2.entry_point();
    let iters = s2_iters(g);
    if iters > ctx.budget().loop_iters {
        return Ok(None);
    }
    let blocks = g.n * g.h.div_ceil(2) * g.w.div_ceil(2);
    let p = FastConvParams {
        n: to_u32(op, "batch", g.n)?,
        total: to_u32(op, "invocations", blocks)?,
        rows_per_chunk: 0,
        rows: 0,
    };
    let window = ctx.uniform_window_fits(w);
    let dummy = ctx.uniform_dummy()?;
    // 16 channels only where the 3x3 padding-1 path reads each dy value once for all its taps.
    let k3p1 = (g.kh, g.kw, g.pad_h, g.pad_w) == (3, 3, 1, 1);
    let variants: Vec<(usize, bool)> = [true, false]
        .into_iter()
        .filter(|&uw| window || !uw)
        .flat_map(|uw| [(8, uw), (16, uw), (4, uw)])
        .filter(|&(cb, _)| cb == 4 || (cb == 8 && g.c_in > 4) || (cb == 16 && k3p1 && g.c_in > 8))
        .collect();
    let names: Vec<String> =
        variants.iter().map(|&(cb, uw)| format!("{cb}ch{}", if uw { " uniform-w" } else { "" })).collect();
    let l = ctx.tuned("conv2d_backward_input_s2", tune_key(g), &names, |i| {
        let (cb, uw) = variants[i];
        // check_geom: every size fits in u32.
        let mut consts =
            size_consts([g.c_in, g.h, g.w, g.c_out], (g.kh, g.kw), (g.pad_h, g.pad_w), (g.out_h(), g.out_w())).to_vec();
        consts.extend([("CB", cb as u32), ("UW", u32::from(uw))]);
        let layers = to_u32(op, "channel blocks", g.c_in.div_ceil(cb))?;
        ctx.launch_layered(
            Kernel::Conv2dBackwardInputS2,
            &consts,
            label,
            &p,
            &[dy, w, dx, if uw { w } else { &dummy }],
            blocks as u64,
            layers,
            iters as u64,
        )
    })?;
    Ok(Some(l.with_work(2 * g.macs() as u64, 0)))
}

/// dw = correlation of x with dy summed over the batch, as a split reduction whose invocations
/// each own a block of output channels and a whole kernel row; `None` when the shape does not fit.
pub fn conv2d_backward_weight_fast(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    dy: &Tensor,
    x: &Tensor,
    dw: &Tensor,
) -> Result<Option<Launch>> {
    let op = Kernel::Conv2dWeightGrad.entry_point();
    check_geom(op, g)?;
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    x.expect(op, "x", DType::F32, g.x_len())?;
    dw.expect(op, "dw", DType::F32, g.w_len())?;
    if pointwise(g) {
        if let Some(l) = conv1x1_backward_weight(ctx, label, g, dy, x, dw)? {
            return Ok(Some(l));
        }
    }
    if let Some(l) = conv2d_backward_weight_tiled(ctx, label, g, dy, x, dw)? {
        return Ok(Some(l));
    }
    let variants = conv2d_weight_grad_variants(g, &ctx.budget());
    let Some(&WeightGradSplit { rows_per_chunk, chunks, .. }) = variants.first() else {
        return Ok(None);
    };
    // With subgroups of one size, the 3-row layouts also with dy loaded once per subgroup and shuffled
    // to its lanes (`SG`), each before its plain twin: where a subgroup's lanes share their chunk (the
    // input channels, or their pairs, a multiple of the subgroup size) and at most 4 loads per lane.
    // The widest one-channel block with them leads: on lavapipe (Intel Xeon, the tuner's timings in one
    // run) inception-mini's 32 -> 48 at 7x7 took 6.4 ms with 16 channels against 8.6 for 8 x 2 inputs
    // with shuffles and 12.9 without, its 16 -> 24 at 14x14 7.7 (12 channels) against 8.1 and 16.2.
    let sgs = ctx.subgroup_size().map(|s| s as usize);
    let mut variants: Vec<(WeightGradSplit, Share)> = variants
        .iter()
        .flat_map(|v| {
            let lanes = match v.rows {
                GradRows::Three => Some(g.c_in),
                GradRows::ThreeTwo => Some(g.c_in.div_ceil(2)),
                _ => None,
            };
            let sg = sgs.filter(|&s| lanes.is_some_and(|l| l.is_multiple_of(s)) && v.cob <= 4 * s);
            sg.map(|s| (*v, Share::Dy(s as u32))).into_iter().chain([(*v, Share::None)])
        })
        .collect();
    if let Some(i) = variants.iter().position(|(v, sg)| v.rows == GradRows::Three && *sg != Share::None) {
        let lead = variants.remove(i);
        variants.insert(0, lead);
    }
    // Kernels up to 5x5 at stride 1 with subgroups: conv2d_weight_grad_lanes, a subgroup's lanes as
    // SGS / LB input channels x LB blocks of output channels sharing their input and dy loads, with
    // LB = 4 or 8 blocks of at most 6 channels (more spill: see the vec4 rows above). LB = 4 leads
    // on unpadded kernels wider than 3 with two input channels or more: LeNet-5's conv2 took 2.2 ms
    // against 3.0 for the best other layout (the tuner's timings in two runs, lavapipe, Intel Xeon);
    // on inception-mini's padded 5x5 ones (7 and 14 wide) it was not among the best five.
    if let (Some(s), Some(all)) = (sgs, variants.iter().find(|(v, _)| v.rows == GradRows::All).map(|(v, _)| *v)) {
        if g.stride_h == 1 && g.stride_w == 1 && g.kh <= 5 && g.kw <= 5 {
            for lb in [4, 8].into_iter().filter(|lb| s.is_multiple_of(*lb)) {
                let cob = g.c_out.div_ceil(lb);
                if cob > 6 {
                    continue;
                }
                let iters = all.rows_per_chunk * (1 + g.out_w()) * (1 + g.kh) + g.kh * cob + 1;
                if iters <= ctx.budget().loop_iters {
                    let split = WeightGradSplit { cob, layers: 1, iters, ..all };
                    let lanes = (split, Share::Lanes(s as u32, lb as u32));
                    if lb == 4 && g.pad_h == 0 && g.pad_w == 0 && g.kw > 3 && g.c_in >= 2 {
                        variants.insert(0, lanes);
                    } else {
                        variants.push(lanes);
                    }
                }
            }
        }
    }
    let rows = g.n * g.out_h();
    let out = if chunks == 1 {
        dw.clone()
    } else {
        Tensor::zeros(ctx, &format!("{label}.partial"), &[chunks, g.w_len()], DType::F32)?
    };
    let names: Vec<String> = variants
        .iter()
        .map(|(v, share)| {
            let name = match v.rows {
                GradRows::One => format!("{}ch", v.cob),
                GradRows::Three => format!("{}ch x 3 rows", v.cob),
                GradRows::ThreeTwo => format!("{}ch x 3 rows x 2 inputs", v.cob),
                GradRows::All => format!("{}ch x {} rows arrays", v.cob, g.kh),
                GradRows::AllVec4 => format!("{}ch x {} rows arrays vec4", v.cob, g.kh),
            };
            match share {
                Share::None => name,
                Share::Dy(_) => name + " subgroup-dy",
                Share::Lanes(s, lb) => format!("{name} subgroup {}ci x {lb}co", s / lb),
            }
        })
        .collect();
    let shape = format!("{} chunks {chunks}", tune_key(g));
    let dummy = ctx.uniform_dummy()?;
    let first = ctx.tuned("conv2d_weight_grad", shape, &names, |i| {
        let (WeightGradSplit { cob, layers, iters, rows: layout, .. }, share) = variants[i];
        let total = chunks
            * match (layout, share) {
                (_, Share::Lanes(s, lb)) => g.c_in.div_ceil((s / lb) as usize) * s as usize,
                (GradRows::One, _) => g.c_in * g.kh,
                (GradRows::ThreeTwo, _) => g.c_in.div_ceil(2),
                _ => g.c_in,
            }; // per grid layer
        let p = FastConvParams {
            n: to_u32(op, "batch", g.n)?,
            total: to_u32(op, "invocations", total)?,
            rows_per_chunk: rows_per_chunk as u32,
            rows: to_u32(op, "rows", rows)?,
        };
        let mut consts = constants(
            g.c_in,
            g.h,
            g.w,
            g.c_out,
            g,
            (g.pad_h, g.pad_w),
            (g.out_h(), g.out_w()),
            cob,
            (false, false, false),
        );
        // The array layout also binds x and dy as vec4s (VX), or the dummy, which it does not read.
        let vx = layout == GradRows::AllVec4;
        consts.push(("VX", u32::from(vx)));
        match share {
            Share::None => {}
            Share::Dy(sgs) => consts.extend([("SG", 1), ("SGS", sgs)]),
            Share::Lanes(sgs, lb) => consts.extend([("SG", 1), ("SGS", sgs), ("LB", lb)]),
        }
        let (x4, dy4) = if vx { (x, dy) } else { (&dummy, &dummy) };
        let (kernel, tensors): (_, &[&Tensor]) = match (layout, share) {
            (_, Share::Lanes(..)) => (Kernel::Conv2dWeightGradLanes, &[dy, x, &out]),
            (GradRows::One, _) => (Kernel::Conv2dWeightGrad, &[dy, x, &out]),
            (GradRows::Three, Share::None) => (Kernel::Conv2dWeightGradK3, &[dy, x, &out]),
            (GradRows::Three, _) => (Kernel::Conv2dWeightGradK3Sg, &[dy, x, &out]),
            (GradRows::ThreeTwo, Share::None) => (Kernel::Conv2dWeightGradK3c2, &[dy, x, &out]),
            (GradRows::ThreeTwo, _) => (Kernel::Conv2dWeightGradK3c2Sg, &[dy, x, &out]),
            (GradRows::All | GradRows::AllVec4, _) => (Kernel::Conv2dWeightGradRows, &[dy, x, &out, x4, dy4]),
        };
        ctx.launch_layered(
            kernel,
            &consts,
            label,
            &p,
            tensors,
            total as u64,
            to_u32(op, "channel blocks", layers)?,
            iters as u64,
        )
    })?;
    if chunks == 1 {
        return Ok(Some(first.with_work(2 * g.macs() as u64, 0)));
    }
    Ok(Some(first.then(sum_chunks(ctx, label, &out, chunks, dw)?).with_work(2 * g.macs() as u64, 0)))
}

/// How a weight-gradient variant's lanes share their loads through subgroup shuffles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Share {
    /// Each lane loads what it reads.
    None,
    /// dy loaded once per subgroup of this size (`SG`, the 3-row kernels).
    Dy(u32),
    /// `conv2d_weight_grad_lanes`: subgroups of this size, as input channels x `LB` output-channel blocks.
    Lanes(u32, u32),
}

/// Forward conv launch: the fast kernel unless `ctx.kernels` is [`crate::KernelSet::Plain`] or the shape does
/// not fit it.
pub fn conv2d_forward_auto(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    y: &Tensor,
) -> Result<Launch> {
    fast_or(ctx, || conv2d_forward_fast(ctx, label, g, x, w, b, y), || conv2d_forward(ctx, label, g, x, w, b, y))
}

/// Input-gradient launch, fast where possible (see [`conv2d_forward_auto`]).
pub fn conv2d_backward_input_auto(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Launch> {
    fast_or(
        ctx,
        || conv2d_backward_input_fast(ctx, label, g, dy, w, dx),
        || conv2d_backward_input(ctx, label, g, dy, w, dx),
    )
}

/// Weight-gradient launch, fast where possible (see [`conv2d_forward_auto`]).
pub fn conv2d_backward_weight_auto(
    ctx: &Context,
    label: &str,
    g: &Conv2dGeom,
    dy: &Tensor,
    x: &Tensor,
    dw: &Tensor,
) -> Result<Launch> {
    fast_or(
        ctx,
        || conv2d_backward_weight_fast(ctx, label, g, dy, x, dw),
        || conv2d_backward_weight(ctx, label, g, dy, x, dw),
    )
}
