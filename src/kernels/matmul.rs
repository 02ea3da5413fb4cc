//! Register-blocked strided matrix product (`shaders/matmul.wgsl`): the fast path of the fully
//! connected layer's forward and both gradients. The plain kernels of [`crate::kernels::linear`] are
//! its test references and the fallback where it does not apply ([`linear_forward_fast`] and friends
//! return `None`).

use bytemuck::{Pod, Zeroable};

use crate::context::{Budget, Context};
use crate::error::{shape_err, to_u32, Result};
use crate::kernels::linear::{linear_backward_input, linear_backward_weight, linear_forward};
use crate::kernels::{fast_or, Kernel, Launch, WORKGROUP_SIZE};
use crate::shape::LinearGeom;
use crate::tensor::{DType, Tensor};

/// Mirrors `struct MatmulParams` in `shaders/matmul.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub total: u32,
    pub a_m: u32,
    pub a_k: u32,
    pub b_k: u32,
    pub b_j: u32,
    pub c_m: u32,
    pub c_j: u32,
    pub a_l: u32,
    pub b_l: u32,
    pub c_l: u32,
    /// `matmul_ub`: the products whose rows it folds into one axis (unread by the others).
    pub count: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// A matrix operand: a tensor and the strides of its two indices (`t[r, s] = t[r·rows + s·cols]`).
#[derive(Clone, Copy)]
pub struct Operand<'a> {
    pub t: &'a Tensor,
    pub rows: usize,
    pub cols: usize,
}

/// Loop iterations of one invocation of the product over `k`: `k` for the register-blocked kernel;
/// for the tiled one 24 per step of 16 (8 loads, 16 multiply-adds).
fn matmul_iters(k: usize, tiled: bool) -> usize {
    if tiled {
        k.div_ceil(16) * 24 + 1
    } else {
        k + 1
    }
}

/// Whether one dispatch of the product (register-blocked, or tiled where the budget says so) takes a
/// reduction over `k` for `count` products: each invocation's loops must be within the adapter's
/// loop budget, and the products are the grid's layers.
pub fn matmul_takes(k: usize, count: usize, budget: &Budget, limits: &wgpu::Limits) -> bool {
    matmul_iters(k, budget.tiled) <= budget.loop_iters && count <= limits.max_compute_workgroups_per_dimension as usize
}

/// What a product does to each result before storing it: the sum starts from `bias[j]` when there is
/// one, and `relu` stores max(c, 0) (a layer followed by ReLU in one pass, the same value the ReLU
/// kernels compute from the stored product).
#[derive(Clone, Copy)]
pub struct Epilogue<'a> {
    pub bias: Option<&'a Tensor>,
    pub relu: bool,
}

impl Epilogue<'_> {
    /// The plain product: no bias, no ReLU.
    pub const NONE: Epilogue<'static> = Epilogue { bias: None, relu: false };
}

/// `c[m, j] = Σ_k a[m, k]·b[k, j] (+ bias[j])` for an `m`×`n` result over `k`, through `out`. `None`
/// when `k` is past what one invocation may loop over (use a split reduction instead).
pub fn matmul(
    ctx: &Context,
    label: &str,
    dims: (usize, usize, usize),
    a: Operand,
    b: Operand,
    out: Epilogue,
    c: Operand,
) -> Result<Option<Launch>> {
    matmul_batched(ctx, label, dims, Batch { count: 1, a: 0, b: 0, c: 0 }, a, b, out, c)
}

/// How many products a batched [`matmul`] runs, and where operand `l` of each starts (`a[l, m, k] =
/// a[l·a + m·rows + k·cols]`; a stride of 0 shares the operand).
#[derive(Clone, Copy, Debug)]
pub struct Batch {
    pub count: usize,
    pub a: usize,
    pub b: usize,
    pub c: usize,
}

/// [`matmul`] for `batch.count` products in one dispatch (the product index is the grid's layer).
/// `None` also when the count is past the grid's layer limit.
#[allow(clippy::too_many_arguments)]
pub fn matmul_batched(
    ctx: &Context,
    label: &str,
    (m, n, k): (usize, usize, usize),
    batch: Batch,
    a: Operand,
    b: Operand,
    out: Epilogue,
    c: Operand,
) -> Result<Option<Launch>> {
    let op = Kernel::Matmul.entry_point();
    let bias = out.bias;
    if m == 0 || n == 0 || k == 0 || batch.count == 0 {
        return Err(shape_err(op, format!("zero-sized product {m}x{n} over {k}, {} of them", batch.count)));
    }
    // The largest element each operand is read or written at must lie inside it.
    let reach = |o: &Operand, r: usize, s: usize, l: usize| (r - 1) * o.rows + (s - 1) * o.cols + (batch.count - 1) * l;
    for (what, o, r, s, l) in [("a", &a, m, k, batch.a), ("b", &b, k, n, batch.b), ("c", &c, m, n, batch.c)] {
        o.t.expect(op, what, DType::F32, o.t.len())?;
        if reach(o, r, s, l) >= o.t.len() {
            return Err(shape_err(
                op,
                format!("{what} has {} elements, the product reaches {}", o.t.len(), reach(o, r, s, l)),
            ));
        }
        to_u32(op, what, o.t.len())?;
    }
    if let Some(bias) = bias {
        bias.expect(op, "bias", DType::F32, n)?;
    }
    if !matmul_takes(k, batch.count, &ctx.budget(), &ctx.limits) {
        return Ok(None);
    }
    let u = |v: usize| v as u32; // each is below an operand length, checked above
    let p = MatmulParams {
        m: u(m),
        n: u(n),
        k: u(k),
        total: 0,
        a_m: u(a.rows),
        a_k: u(a.cols),
        b_k: u(b.rows),
        b_j: u(b.cols),
        c_m: u(c.rows),
        c_j: u(c.cols),
        a_l: u(batch.a),
        b_l: u(batch.b),
        c_l: u(batch.c),
        count: batch.count as u32, // checked against the grid's layer limit above
        _pad1: 0,
        _pad2: 0,
    };
    let tensors = [a.t, b.t, bias.unwrap_or(a.t), c.t];
    let layers = batch.count as u32; // checked against the grid's limit above
    let tiled = ctx.budget().tiled;
    let variants = matmul_variants((m, n, k), &batch, &a, &b, tiled, matmul_ub_takes(ctx, m, &batch, &b, tiled));
    let names: Vec<String> = variants.iter().map(MatmulVariant::name).collect();
    let shape = format!(
        "{m}x{n}x{k} l{} a{},{},{} b{},{},{} c{},{},{}{}{}",
        batch.count,
        a.rows,
        a.cols,
        batch.a,
        b.rows,
        b.cols,
        batch.b,
        c.rows,
        c.cols,
        batch.c,
        if bias.is_some() { " bias" } else { "" },
        if out.relu { " relu" } else { "" }
    );
    let bias_c = u32::from(bias.is_some());
    let relu_c = u32::from(out.relu);
    let l = ctx.tuned("matmul", shape, &names, |i| {
        let v = variants[i];
        if v.tiled {
            // One workgroup per 32×32 tile (the `total` field counts tiles), 16 values of k per step.
            let tiles = m.div_ceil(32) * n.div_ceil(32);
            let p = MatmulParams { total: to_u32(op, "tiles", tiles)?, ..p };
            let consts = [("BIAS", bias_c), ("RELU", relu_c)];
            let threads = tiles as u64 * u64::from(WORKGROUP_SIZE);
            let iters = matmul_iters(k, true) as u64;
            return ctx.launch_layered(Kernel::MatmulTiled, &consts, label, &p, &tensors, threads, layers, iters);
        }
        let iters = matmul_iters(k, false) as u64;
        if v.ub {
            // Blocks of MR rows of the products' folded rows; grid layer z: the block of columns.
            let total = (batch.count * m).div_ceil(v.mr as usize);
            let p = MatmulParams { total: to_u32(op, "invocations", total)?, ..p };
            let col_blocks = to_u32(op, "column blocks", n.div_ceil(4 * v.nc as usize))?;
            let consts = [("MR", v.mr), ("NC", v.nc), ("BIAS", bias_c), ("RELU", relu_c)];
            let tensors = [a.t, b.t, bias.unwrap_or(a.t), c.t];
            return ctx.launch_layered(Kernel::MatmulUb, &consts, label, &p, &tensors, total as u64, col_blocks, iters);
        }
        let total = m.div_ceil(v.mr as usize) * n.div_ceil(4 * v.nc as usize);
        let p = MatmulParams { total: to_u32(op, "invocations", total)?, ..p };
        match v.vec {
            Some((a_k, b_k)) => {
                let consts = [
                    ("MR", v.mr),
                    ("NC", v.nc),
                    ("A_K", u32::from(a_k)),
                    ("B_K", u32::from(b_k)),
                    ("BIAS", bias_c),
                    ("RELU", relu_c),
                ];
                ctx.launch_layered(Kernel::MatmulVec4, &consts, label, &p, &tensors, total as u64, layers, iters)
            }
            None => match v.vec_b {
                Some(b_k) => {
                    let consts =
                        [("MR", v.mr), ("NC", v.nc), ("B_K", u32::from(b_k)), ("BIAS", bias_c), ("RELU", relu_c)];
                    ctx.launch_layered(Kernel::MatmulVec4b, &consts, label, &p, &tensors, total as u64, layers, iters)
                }
                None => {
                    let consts = [("MR", v.mr), ("NC", v.nc), ("BIAS", bias_c), ("RELU", relu_c)];
                    ctx.launch_layered(Kernel::Matmul, &consts, label, &p, &tensors, total as u64, layers, iters)
                }
            },
        }
    })?;
    Ok(Some(l.with_work(2 * (batch.count * m * n * k) as u64, 0)))
}

/// One way of laying out a product: every one adds each output's products in `k` order from the bias,
/// so all give the same bits (see `context/tune.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulVariant {
    /// `matmul_tiled` (32×32 tiles through workgroup memory).
    pub tiled: bool,
    /// `matmul_vec4`, with `a` read along k (else m) and `b` along k (else j); `None`: `matmul` or
    /// `matmul_vec4b`.
    pub vec: Option<(bool, bool)>,
    /// `matmul_vec4b` (only `b` as vec4, along k or else j) where `vec` is `None`.
    pub vec_b: Option<bool>,
    /// Rows per invocation (4 or 8).
    pub mr: u32,
    /// vec4 column groups per invocation (1 or 2; 4 for `ub`).
    pub nc: u32,
    /// `matmul_ub` (b through the uniform window, the products' rows folded into one axis).
    pub ub: bool,
}

impl MatmulVariant {
    /// The name the tuning cache and reports use, e.g. `vec4 8x8 a:k b:j`, `vec4b 8x8 b:k`,
    /// `scalar 8x4`, `tiled`.
    pub fn name(&self) -> String {
        if self.tiled {
            return "tiled 32x32".into();
        }
        let block = format!("{}x{}", self.mr, 4 * self.nc);
        if self.ub {
            return format!("uniform-b {block}");
        }
        match self.vec {
            Some((a_k, b_k)) => {
                format!("vec4 {block} a:{} b:{}", if a_k { "k" } else { "m" }, if b_k { "k" } else { "j" })
            }
            None => match self.vec_b {
                Some(b_k) => format!("vec4b {block} b:{}", if b_k { "k" } else { "j" }),
                None => format!("scalar {block}"),
            },
        }
    }
}

/// The vec4 reading of each operand the product allows: `a` along k or m, `b` along k or j (the
/// axis of stride 1 whose extent is a multiple of 4, the other stride and the product offset multiples
/// of 4, and `k` a multiple of 4). `None` when either operand has none.
pub fn matmul_vec_axes(
    (m, n, k): (usize, usize, usize),
    batch: &Batch,
    a: &Operand,
    b: &Operand,
) -> Option<(bool, bool)> {
    let four = |v: usize| v.is_multiple_of(4);
    if !four(batch.a) {
        return None;
    }
    let a_k = if a.cols == 1 && four(a.rows) {
        true
    } else if a.rows == 1 && four(a.cols) && four(m) {
        false
    } else {
        return None;
    };
    Some((a_k, matmul_vec_b_axis((m, n, k), batch, b)?))
}

/// The vec4 reading of `b` alone (`matmul_vec4b`): along k (`true`) or j, as [`matmul_vec_axes`]
/// asks of it. `None` where it has none.
pub fn matmul_vec_b_axis((_, n, k): (usize, usize, usize), batch: &Batch, b: &Operand) -> Option<bool> {
    let four = |v: usize| v.is_multiple_of(4);
    if !four(k) || !four(batch.b) {
        return None;
    }
    if b.rows == 1 && four(b.cols) {
        Some(true)
    } else if b.cols == 1 && four(b.rows) && four(n) {
        Some(false)
    } else {
        None
    }
}

/// Whether a product may run as `matmul_ub`: on an adapter without tiled products (a software one),
/// `b` shared by every product (`batch.b == 0`) and bindable as a uniform window, and the products'
/// rows, folded, countable in 32 bits.
pub fn matmul_ub_takes(ctx: &Context, m: usize, batch: &Batch, b: &Operand, tiled: bool) -> bool {
    !tiled && batch.b == 0 && ctx.uniform_window_fits(b.t) && u32::try_from(batch.count * m).is_ok()
}

/// The variants a product may run as, the default first: the tiled kernel on hardware adapters
/// (`Budget::tiled`); elsewhere the vec4 kernel with 8×8 blocks where the operands allow vec4 loads,
/// else `matmul_vec4b` where `b` alone does, else the scalar one (8 or 4 rows, as many as `m` fills,
/// by 8 columns). Where `uniform_b` ([`matmul_ub_takes`]), `matmul_ub` in blocks of 4 or 8 rows by 8
/// or 16 columns: first (the default) for batched products, last (for tuning) for single ones.
pub fn matmul_variants(
    dims: (usize, usize, usize),
    batch: &Batch,
    a: &Operand,
    b: &Operand,
    tiled: bool,
    uniform_b: bool,
) -> Vec<MatmulVariant> {
    let mut v = Vec::new();
    if tiled {
        v.push(MatmulVariant { tiled: true, vec: None, vec_b: None, mr: 0, nc: 0, ub: false });
    }
    // matmul_ub in blocks of 8 rows × 16 columns first, then 4 × 16, 8 × 8, 4 × 8.
    let ub = [(8, 4), (4, 4), (8, 2), (4, 2)].map(|(mr, nc)| MatmulVariant {
        tiled: false,
        vec: None,
        vec_b: None,
        mr,
        nc,
        ub: true,
    });
    // The default for batched products (1×1 convs): timed 1.2-2.4x faster than every other layout on
    // each of inception-mini's 1×1 forwards and input gradients on lavapipe, 7×7 planes most.
    let ub_first = uniform_b && batch.count > 1;
    if ub_first {
        v.extend(ub);
    }
    let blocks = if dims.0 >= 32 { [(8, 2), (8, 1), (4, 2), (4, 1)] } else { [(4, 2), (4, 1), (8, 2), (8, 1)] };
    if let Some(axes) = matmul_vec_axes(dims, batch, a, b) {
        v.extend(blocks.iter().map(|&(mr, nc)| MatmulVariant {
            tiled: false,
            vec: Some(axes),
            vec_b: None,
            mr,
            nc,
            ub: false,
        }));
    } else if let Some(b_k) = matmul_vec_b_axis(dims, batch, b) {
        v.extend(blocks.iter().map(|&(mr, nc)| MatmulVariant {
            tiled: false,
            vec: None,
            vec_b: Some(b_k),
            mr,
            nc,
            ub: false,
        }));
    }
    v.extend(blocks.iter().map(|&(mr, nc)| MatmulVariant { tiled: false, vec: None, vec_b: None, mr, nc, ub: false }));
    if uniform_b && !ub_first {
        v.extend(ub);
    }
    v
}

/// y = x·Wᵀ + b through [`matmul`]; with `relu`, max(that, 0) (the layer and its ReLU in one pass).
#[allow(clippy::too_many_arguments)]
pub fn linear_forward_fast(
    ctx: &Context,
    label: &str,
    g: &LinearGeom,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    y: &Tensor,
    relu: bool,
) -> Result<Option<Launch>> {
    let op = Kernel::Matmul.entry_point();
    g.validate(op)?;
    x.expect(op, "x", DType::F32, g.x_len())?;
    w.expect(op, "w", DType::F32, g.w_len())?;
    y.expect(op, "y", DType::F32, g.y_len())?;
    let a = Operand { t: x, rows: g.in_f, cols: 1 };
    let bm = Operand { t: w, rows: 1, cols: g.in_f };
    let c = Operand { t: y, rows: g.out_f, cols: 1 };
    matmul(ctx, label, (g.n, g.out_f, g.in_f), a, bm, Epilogue { bias: Some(b), relu }, c)
}

/// dx = dy·W through [`matmul`].
pub fn linear_backward_input_fast(
    ctx: &Context,
    label: &str,
    g: &LinearGeom,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Option<Launch>> {
    let op = Kernel::Matmul.entry_point();
    g.validate(op)?;
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    w.expect(op, "w", DType::F32, g.w_len())?;
    dx.expect(op, "dx", DType::F32, g.x_len())?;
    let a = Operand { t: dy, rows: g.out_f, cols: 1 };
    let bm = Operand { t: w, rows: g.in_f, cols: 1 };
    let c = Operand { t: dx, rows: g.in_f, cols: 1 };
    matmul(ctx, label, (g.n, g.in_f, g.out_f), a, bm, Epilogue::NONE, c)
}

/// dW = dyᵀ·x through [`matmul`] (one reduction over the batch per output; `None` past 60,000 rows).
pub fn linear_backward_weight_fast(
    ctx: &Context,
    label: &str,
    g: &LinearGeom,
    dy: &Tensor,
    x: &Tensor,
    dw: &Tensor,
) -> Result<Option<Launch>> {
    let op = Kernel::Matmul.entry_point();
    g.validate(op)?;
    dy.expect(op, "dy", DType::F32, g.y_len())?;
    x.expect(op, "x", DType::F32, g.x_len())?;
    dw.expect(op, "dw", DType::F32, g.w_len())?;
    let a = Operand { t: dy, rows: 1, cols: g.out_f };
    let bm = Operand { t: x, rows: g.in_f, cols: 1 };
    let c = Operand { t: dw, rows: g.in_f, cols: 1 };
    matmul(ctx, label, (g.out_f, g.in_f, g.n), a, bm, Epilogue::NONE, c)
}

/// Forward launch (with `relu`, max(y, 0) stored): [`matmul`] unless `ctx.kernels` is
/// [`crate::KernelSet::Plain`] or it does not apply.
#[allow(clippy::too_many_arguments)]
pub fn linear_forward_auto(
    ctx: &Context,
    label: &str,
    g: &LinearGeom,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    y: &Tensor,
    relu: bool,
) -> Result<Launch> {
    fast_or(
        ctx,
        || linear_forward_fast(ctx, label, g, x, w, b, y, relu),
        || linear_forward(ctx, label, g, x, w, b, y, relu),
    )
}

/// Input-gradient launch, fast where possible (see [`linear_forward_auto`]).
pub fn linear_backward_input_auto(
    ctx: &Context,
    label: &str,
    g: &LinearGeom,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Launch> {
    fast_or(
        ctx,
        || linear_backward_input_fast(ctx, label, g, dy, w, dx),
        || linear_backward_input(ctx, label, g, dy, w, dx),
    )
}

/// Weight-gradient launch, fast where possible (see [`linear_forward_auto`]).
pub fn linear_backward_weight_auto(
    ctx: &Context,
    label: &str,
    g: &LinearGeom,
    dy: &Tensor,
    x: &Tensor,
    dw: &Tensor,
) -> Result<Launch> {
    fast_or(
        ctx,
        || linear_backward_weight_fast(ctx, label, g, dy, x, dw),
        || linear_backward_weight(ctx, label, g, dy, x, dw),
    )
}
