//! Batch normalisation (`shaders/batchnorm.wgsl`), PyTorch's `BatchNorm2d`: batch statistics as
//! deterministic split reductions (a fixed run of elements per partial sum, the partial sums added in
//! order; no atomics), normalisation, the running-statistics update, and the backward (the parameter
//! gradients are the same split reductions of `dy` and `dy · x̂`).

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{shape_err, to_u32, Result};
use crate::kernels::{vec4_fits, Kernel, Launch};
use crate::tensor::{DType, Tensor};

/// Values per invocation of the elementwise kernels (`RUN` in `shaders/batchnorm.wgsl`).
pub const RUN: usize = 4;
/// vec4s per invocation of the vec4 elementwise kernels (`RUN4` in `shaders/batchnorm.wgsl`).
pub const RUN4: usize = 4;

/// `[n, c, hw]`: batch, channels, pixels per plane. Statistics are per channel over `m = n · hw` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BnGeom {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
}

impl BnGeom {
    /// From a `[n, c, h, w]` (or `[n, c]`) shape.
    pub fn of(shape: &[usize]) -> BnGeom {
        BnGeom { n: shape[0], c: shape.get(1).copied().unwrap_or(1), hw: shape.iter().skip(2).product() }
    }
    pub fn len(&self) -> usize {
        self.n * self.c * self.hw
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Invocations of the elementwise kernels: runs of [`RUN`] values inside each plane.
    pub fn runs(&self) -> usize {
        self.n * self.c * self.hw.div_ceil(RUN)
    }
    /// Values per channel.
    pub fn m(&self) -> usize {
        self.n * self.hw
    }
    /// (elements per partial sum, partial sums per channel): runs of at least 512 and at most 4,096
    /// partial sums, so both loops stay bounded.
    pub fn chunks(&self) -> (usize, usize) {
        let chunk = self.m().div_ceil(4096).max(512);
        (chunk, self.m().div_ceil(chunk).max(1))
    }
}

/// What `batchnorm_partial` sums (its `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BnSum {
    /// Σ dy (the bias gradient) and Σ dy · x̂ (the weight gradient), in one pass over dy and x.
    Grads = 2,
    /// Σ x and Σ (x − the chunk's mean)² per chunk, for `batchnorm_moments` to merge: the
    /// statistics in one pass over x from memory.
    Moments = 3,
}

/// Mirrors `struct BnParams` in `shaders/batchnorm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BnParams {
    pub n: u32,
    pub c: u32,
    pub hw: u32,
    pub chunk: u32,
    pub chunks: u32,
    pub mode: u32,
    pub eps: f32,
    pub momentum: f32,
    pub inv_m: f32,
    pub unbias: f32,
    pub mean_scale: f32,
    pub offset: u32,
}

impl BnParams {
    /// Checked parameters for `g` (every count fits in u32, nothing empty, eps positive).
    pub fn new(op: &str, g: &BnGeom, eps: f32) -> Result<BnParams> {
        if g.is_empty() {
            return Err(shape_err(op, format!("empty input {g:?}")));
        }
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(shape_err(op, format!("eps {eps} must be a positive number")));
        }
        to_u32(op, "input length", g.len())?;
        let (chunk, chunks) = g.chunks();
        let m = g.m() as f64;
        Ok(BnParams {
            n: g.n as u32,
            c: g.c as u32,
            hw: g.hw as u32,
            chunk: chunk as u32,
            chunks: chunks as u32,
            mode: 0,
            eps,
            momentum: 0.0,
            inv_m: (1.0 / m) as f32,
            unbias: if g.m() > 1 { (m / (m - 1.0)) as f32 } else { f32::INFINITY },
            mean_scale: 1.0,
            offset: 0,
        })
    }

    /// The pipeline constants of `shaders/batchnorm.wgsl`'s reductions and running update (the
    /// elementwise kernels set them too).
    fn consts(&self) -> [(&'static str, u32); 2] {
        [("C", self.c), ("HW", self.hw)]
    }
}

/// Training needs more than one value per channel (PyTorch refuses it too: the variance is undefined).
pub fn check_training(op: &str, g: &BnGeom) -> Result<()> {
    if g.m() < 2 {
        return Err(shape_err(
            op,
            format!("batch statistics need more than one value per channel in training, got {g:?}"),
        ));
    }
    Ok(())
}

/// The first pass of a split reduction per channel: `batchnorm_partial` in `mode` into a scratch
/// buffer (the caller merges the chunks). With `mask` (a ReLU's output), `a` (dy) is masked by it.
#[allow(clippy::too_many_arguments)]
fn reduce(
    ctx: &Context,
    label: &str,
    p: BnParams,
    mode: BnSum,
    a: &Tensor,
    b: &Tensor,
    stats: &Tensor,
    mask: Option<&Tensor>,
    scratch: &Tensor,
) -> Result<Launch> {
    let p = BnParams { mode: mode as u32, ..p };
    let (chunk, chunks) = (p.chunk as u64, p.chunks as u64);
    let (c, len) = (p.c as u64, a.len() as u64);
    let [cc, hw] = p.consts();
    let consts = [cc, hw, ("MASK", u32::from(mask.is_some()))];
    let ts = [a, b, stats, scratch, mask.unwrap_or(a)];
    // The vec4 kernel when every chunk starts on a plane's vec4 (chunk and plane multiples of 4).
    let vec4 = vec4_fits(ctx, p.hw as usize) && p.chunk.is_multiple_of(4);
    let kernel = if vec4 { Kernel::BatchnormPartial4 } else { Kernel::BatchnormPartial };
    // Moments walks each chunk twice (the second time from cache).
    let iters = if mode == BnSum::Moments { 2 * chunk } else { chunk };
    let l = ctx.launch_with(kernel, &consts, label, &p, &ts, chunks * c, iters)?;
    let (flops, reads) = match mode {
        BnSum::Grads => (4 * len, 2),
        // Σ x (1 per value) and Σ (x − mean)² (3 per value); one read from memory.
        BnSum::Moments => (4 * len, 1),
    };
    Ok(l.with_work(flops, 4 * len * (reads + u64::from(mask.is_some()))))
}

/// The elementwise kernel for `g`, its invocations and its `STRADDLE` constant: the vec4 one (runs of
/// [`RUN4`] vec4s) when a plane's size is a multiple of 4 (runs inside one plane), or when it is not
/// but is at least `4 · RUN4` and the tensor's length is a multiple of 4 (runs of the whole tensor,
/// crossing at most one plane boundary: 7×7 maps); else the scalar one (a run of [`RUN`] values per
/// invocation). `ctx` must run the fast kernels for either vec4 form.
fn elementwise(ctx: &Context, g: &BnGeom, scalar: Kernel, vec4: Kernel) -> (Kernel, u64, u32) {
    if vec4_fits(ctx, g.hw) {
        (vec4, (g.n * g.c * (g.hw / 4).div_ceil(RUN4)) as u64, 0)
    } else if g.hw >= 4 * RUN4 && vec4_fits(ctx, g.len()) {
        (vec4, (g.len() / 4).div_ceil(RUN4) as u64, 1)
    } else {
        (scalar, g.runs() as u64, 0)
    }
}

/// Scratch for `sums` split reductions per channel (`[sums, chunks, c]`).
fn scratch(ctx: &Context, label: &str, g: &BnGeom, sums: usize) -> Result<Tensor> {
    Tensor::zeros(ctx, &format!("{label}.partial"), &[sums, g.chunks().1, g.c], DType::F32)
}

/// Batch statistics of `x`: `stats = [Σ x, Σ (x − mean)²]` per channel (`[2, c]`). Each chunk of a
/// channel sums its values, then its squares about its own mean (a second walk over the chunk, from
/// cache); `batchnorm_moments` adds the chunks' sums in order (the bits `sum_chunks` gives) and
/// merges their squares about the channel's mean, so the variance does not cancel. One pass over
/// `x` from memory and two dispatches, where a sum then a centred sum took two passes and four
/// dispatches (densenet-mini's statistics at batch 64: 7.0-7.3 -> 5.1 ms per step; inception-mini's
/// 7.0-8.3 -> 5.7-6.5; profiles in turns on lavapipe).
pub fn batchnorm_stats(ctx: &Context, label: &str, g: &BnGeom, x: &Tensor, stats: &Tensor) -> Result<Launch> {
    stats_launch(ctx, label, g, x, stats, None)
}

/// [`batchnorm_stats`] that also updates the running statistics in place, as [`batchnorm_running`]
/// does (the same values), in the same dispatch that merges the chunks: a training batch-norm's
/// forward in one dispatch fewer.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_stats_running(
    ctx: &Context,
    label: &str,
    g: &BnGeom,
    x: &Tensor,
    stats: &Tensor,
    momentum: f32,
    running_mean: &Tensor,
    running_var: &Tensor,
) -> Result<Launch> {
    stats_launch(ctx, label, g, x, stats, Some((momentum, running_mean, running_var)))
}

fn stats_launch(
    ctx: &Context,
    label: &str,
    g: &BnGeom,
    x: &Tensor,
    stats: &Tensor,
    running: Option<(f32, &Tensor, &Tensor)>,
) -> Result<Launch> {
    let op = "batchnorm_stats";
    let mut p = BnParams::new(op, g, 1.0)?;
    check_training(op, g)?;
    x.expect(op, "x", DType::F32, g.len())?;
    stats.expect(op, "stats", DType::F32, 2 * g.c)?;
    if let Some((momentum, m, v)) = running {
        if !(0.0..=1.0).contains(&momentum) {
            return Err(shape_err(op, format!("momentum {momentum} is not in [0, 1]")));
        }
        m.expect(op, "running_mean", DType::F32, g.c)?;
        v.expect(op, "running_var", DType::F32, g.c)?;
        p.momentum = momentum;
    }
    let s = scratch(ctx, label, g, 2)?;
    let partial = reduce(ctx, label, p, BnSum::Moments, x, x, stats, None, &s)?;
    let [cc, hw] = p.consts();
    let consts = [cc, hw, ("RUNNING", u32::from(running.is_some()))];
    // Without the running statistics their bindings hold stats again (not read or written).
    let (m, v) = running.map_or((stats, stats), |(_, m, v)| (m, v));
    let merge = ctx.launch_with(
        Kernel::BatchnormMoments,
        &consts,
        &format!("{label}.moments"),
        &p,
        &[&s, stats, m, v],
        g.c as u64,
        p.chunks as u64,
    )?;
    Ok(partial.then(merge))
}

/// Where `batchnorm_normalize` takes the mean and variance from.
pub enum BnStats<'a> {
    /// The batch sums of [`batchnorm_stats`] (training).
    Batch(&'a Tensor),
    /// `running_mean`, `running_var` (evaluation).
    Running(&'a Tensor, &'a Tensor),
}

/// y = (x − mean) / √(var + eps) · weight + bias, per channel; with `relu`, max(y, 0) (the fuse
/// pass's `bn_relu`).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_normalize(
    ctx: &Context,
    label: &str,
    g: &BnGeom,
    eps: f32,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stats: BnStats<'_>,
    y: &Tensor,
    relu: bool,
) -> Result<Launch> {
    let op = Kernel::BatchnormNormalize.entry_point();
    let p = BnParams::new(op, g, eps)?;
    x.expect(op, "x", DType::F32, g.len())?;
    y.expect(op, "y", DType::F32, g.len())?;
    weight.expect(op, "weight", DType::F32, g.c)?;
    bias.expect(op, "bias", DType::F32, g.c)?;
    let (mean, var, p) = match stats {
        BnStats::Batch(s) => {
            s.expect(op, "stats", DType::F32, 2 * g.c)?;
            (s, s, BnParams { mean_scale: p.inv_m, offset: p.c, ..p })
        }
        BnStats::Running(m, v) => {
            m.expect(op, "running_mean", DType::F32, g.c)?;
            v.expect(op, "running_var", DType::F32, g.c)?;
            (m, v, p)
        }
    };
    let len = g.len() as u64;
    let (kernel, threads, straddle) = elementwise(ctx, g, Kernel::BatchnormNormalize, Kernel::BatchnormNormalize4);
    Ok(ctx
        .launch_with(
            kernel,
            &[("C", p.c), ("HW", p.hw), ("RELU", u32::from(relu)), ("STRADDLE", straddle)],
            label,
            &p,
            &[x, weight, bias, mean, var, y],
            threads,
            RUN as u64,
        )?
        .with_work(4 * len, 8 * len))
}

/// running_mean ← momentum · mean + (1 − momentum) · running_mean, and the same for running_var with
/// the unbiased batch variance, in place.
pub fn batchnorm_running(
    ctx: &Context,
    label: &str,
    g: &BnGeom,
    momentum: f32,
    stats: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
) -> Result<Launch> {
    let op = Kernel::BatchnormRunning.entry_point();
    if !(0.0..=1.0).contains(&momentum) {
        return Err(shape_err(op, format!("momentum {momentum} is not in [0, 1]")));
    }
    check_training(op, g)?;
    let p = BnParams { momentum, ..BnParams::new(op, g, 1.0)? };
    stats.expect(op, "stats", DType::F32, 2 * g.c)?;
    running_mean.expect(op, "running_mean", DType::F32, g.c)?;
    running_var.expect(op, "running_var", DType::F32, g.c)?;
    let label = format!("{label}.running");
    let ts = [stats, running_mean, running_var];
    ctx.launch_with(Kernel::BatchnormRunning, &p.consts(), &label, &p, &ts, g.c as u64, 0)
}

/// The parameter gradients in one pass over `dy` and `x`: `dweight = Σ dy · x̂` and `dbias = Σ dy` per
/// channel, each added in the same fixed order as a reduction of its own. With `mask` (the output y of a
/// ReLU fused after the batch-norm), `dy` is the gradient of y and is first masked where y ≤ 0, as the
/// ReLU's backward would.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_param_grads(
    ctx: &Context,
    label: &str,
    g: &BnGeom,
    eps: f32,
    dy: &Tensor,
    x: &Tensor,
    stats: &Tensor,
    mask: Option<&Tensor>,
    dweight: &Tensor,
    dbias: &Tensor,
) -> Result<Launch> {
    let op = "batchnorm_param_grads";
    let p = BnParams::new(op, g, eps)?;
    dy.expect(op, "dy", DType::F32, g.len())?;
    x.expect(op, "x", DType::F32, g.len())?;
    stats.expect(op, "stats", DType::F32, 2 * g.c)?;
    dweight.expect(op, "dweight", DType::F32, g.c)?;
    dbias.expect(op, "dbias", DType::F32, g.c)?;
    if let Some(y) = mask {
        y.expect(op, "mask", DType::F32, g.len())?;
    }
    to_u32(op, "scratch length", 2 * g.chunks().1 * g.c)?;
    let s = scratch(ctx, label, g, 2)?;
    let partial = reduce(ctx, label, p, BnSum::Grads, dy, x, stats, mask, &s)?;
    // Both sums' chunks added in order (sum_chunks' bits), Σ dy into dbias and Σ dy · x̂ into dweight,
    // in one dispatch.
    let sums = ctx.launch_with(
        Kernel::BatchnormGradSums,
        &p.consts(),
        &format!("{label}.sums"),
        &p,
        &[&s, dbias, dweight],
        2 * g.c as u64,
        p.chunks as u64,
    )?;
    Ok(partial.then(sums))
}

/// dx = weight · invstd · (dy − Σdy / m − x̂ · Σ(dy · x̂) / m), from the parameter gradients. With
/// `mask`, dy is masked first as in [`batchnorm_param_grads`].
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward_input(
    ctx: &Context,
    label: &str,
    g: &BnGeom,
    eps: f32,
    dy: &Tensor,
    x: &Tensor,
    stats: &Tensor,
    weight: &Tensor,
    dweight: &Tensor,
    dbias: &Tensor,
    mask: Option<&Tensor>,
    dx: &Tensor,
) -> Result<Launch> {
    let op = Kernel::BatchnormBackwardInput.entry_point();
    let p = BnParams::new(op, g, eps)?;
    for (t, name) in [(dy, "dy"), (x, "x"), (dx, "dx")] {
        t.expect(op, name, DType::F32, g.len())?;
    }
    for (t, name) in [(weight, "weight"), (dweight, "dweight"), (dbias, "dbias")] {
        t.expect(op, name, DType::F32, g.c)?;
    }
    stats.expect(op, "stats", DType::F32, 2 * g.c)?;
    if let Some(y) = mask {
        y.expect(op, "mask", DType::F32, g.len())?;
    }
    let len = g.len() as u64;
    let ts = [dy, x, stats, weight, dweight, dbias, dx, mask.unwrap_or(dy)];
    let (kernel, threads, straddle) =
        elementwise(ctx, g, Kernel::BatchnormBackwardInput, Kernel::BatchnormBackwardInput4);
    let consts = [("C", p.c), ("HW", p.hw), ("MASK", u32::from(mask.is_some())), ("STRADDLE", straddle)];
    let l = ctx.launch_with(kernel, &consts, label, &p, &ts, threads, RUN as u64)?;
    Ok(l.with_work(8 * len, if mask.is_some() { 16 } else { 12 } * len))
}

/// A conv followed by an evaluation-form batch-norm, folded: `w' = w · s`, `b' = (b − running_mean) · s +
/// bias` per output channel, `s = weight / √(running_var + eps)`. `conv_w` is `[c_out, …]`; every other
/// operand is `[c_out]`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_fold(
    ctx: &Context,
    label: &str,
    eps: f32,
    conv_w: &Tensor,
    conv_b: &Tensor,
    bn: [&Tensor; 4],
    folded_w: &Tensor,
    folded_b: &Tensor,
) -> Result<Launch> {
    let op = Kernel::BatchnormFold.entry_point();
    let c_out = conv_w.shape.first().copied().unwrap_or(0);
    let per = conv_w.len() / c_out.max(1);
    let p = BnParams::new(op, &BnGeom { n: 1, c: c_out, hw: per }, eps)?;
    conv_w.expect(op, "conv weight", DType::F32, c_out * per)?;
    folded_w.expect(op, "folded weight", DType::F32, c_out * per)?;
    for (t, name) in [(conv_b, "conv bias"), (folded_b, "folded bias")]
        .into_iter()
        .chain(bn.iter().map(|t| (*t, "batch-norm operand")))
    {
        t.expect(op, name, DType::F32, c_out)?;
    }
    let [gamma, beta, mean, var] = bn;
    let ts = [conv_w, conv_b, gamma, beta, mean, var, folded_w, folded_b];
    let len = conv_w.len() as u64;
    Ok(ctx.launch(Kernel::BatchnormFold, &format!("{label}.fold"), &p, &ts, len, 0)?.with_work(len, 8 * len))
}
