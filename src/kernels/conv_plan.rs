//! What the register-blocked conv kernels (`shaders/conv_fast.wgsl`, `conv_strided.wgsl`) take under
//! an adapter's [`Budget`]: pure functions of the geometry, so the choices on hardware adapters are
//! tested with mocked budgets (`tests/budget.rs`).

use crate::context::Budget;
use crate::kernels::conv_tiled::{conv2d_backward_input_tiled_takes, conv2d_tiled_takes};
use crate::shape::Conv2dGeom;

/// Kernel columns `conv2d_weight_grad` keeps in registers (two vec4 per channel).
pub(crate) const MAX_KW_GRAD: usize = 8;

/// Channel block: `c` channels split into equal blocks of at most `max`.
pub(crate) fn channel_block(c: usize, max: usize) -> usize {
    let blocks = c.div_ceil(max.max(1));
    c.div_ceil(blocks.max(1))
}

/// Loop iterations of one `conv2d_direct` invocation over `c_in` input channels.
pub(crate) fn direct_iters(c_in: usize, g: &Conv2dGeom) -> usize {
    c_in * g.kh * (g.kw + 1) + 1
}

/// Whether the register-blocked forward kernel takes `g` under `budget` (and so can apply a ReLU in
/// the same pass): what the graph's conv+ReLU fusion rule asks before it rewrites.
pub fn conv2d_forward_fast_takes(g: &Conv2dGeom, budget: &Budget) -> bool {
    conv2d_tiled_takes(g, budget) || direct_iters(g.c_in, g) <= budget.loop_iters
}

/// Loop iterations of one stride-2 input-gradient invocation.
pub(crate) fn s2_iters(g: &Conv2dGeom) -> usize {
    g.c_out * g.kh * (g.kw + 1)
}

/// Whether the register-blocked input gradient takes `g` under `budget` (stride 1 with padding below
/// the kernel, or stride 2).
pub fn conv2d_backward_input_fast_takes(g: &Conv2dGeom, budget: &Budget) -> bool {
    if g.stride_h == 2 && g.stride_w == 2 {
        s2_iters(g) <= budget.loop_iters
    } else if conv2d_backward_input_tiled_takes(g, budget) {
        true
    } else {
        g.stride_h == 1
            && g.stride_w == 1
            && g.pad_h < g.kh
            && g.pad_w < g.kw
            && direct_iters(g.c_out, g) <= budget.loop_iters
    }
}

/// How the register-blocked weight gradient splits its sum over the batch's output rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightGradSplit {
    /// Output channels per invocation, and the grid layers of such blocks.
    pub cob: usize,
    pub layers: usize,
    /// Output rows (over batch × height) each invocation sums, and the chunks of them.
    pub rows_per_chunk: usize,
    pub chunks: usize,
    /// Loop iterations of one invocation.
    pub iters: usize,
    /// How an invocation covers the kernel's rows.
    pub rows: GradRows,
}

/// Which kernel rows one weight-gradient invocation sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradRows {
    /// One row (`conv2d_weight_grad`).
    One,
    /// All three rows of a 3 x 3 kernel, in named registers (`conv2d_weight_grad_k3`).
    Three,
    /// All three rows of a 3 x 3 kernel for two input channels, at most 8 output channels
    /// (`conv2d_weight_grad_k3c2`).
    ThreeTwo,
    /// Every row of a kernel of at most 5 x 5, in private arrays (`conv2d_weight_grad_rows`).
    All,
    /// As `All`, reading dy and the input rows as vec4s, 4 output columns at a time (`VX`): stride 1,
    /// input and output rows on the vec4 grid (widths multiples of 4), at most 6 channels.
    AllVec4,
}

/// The weight gradient's split under `budget`: enough chunks for `budget.threads` invocations, each
/// within `budget.loop_iters`. `None` when even one row is over the budget or the kernel is wider than
/// its registers.
pub fn conv2d_weight_grad_split(g: &Conv2dGeom, budget: &Budget) -> Option<WeightGradSplit> {
    if g.kw > MAX_KW_GRAD {
        return None;
    }
    let cob = channel_block(g.c_out, if g.kw <= 5 { 8 } else { 4 });
    let layers = g.c_out.div_ceil(cob);
    let items = layers * g.c_in * g.kh;
    let rows = g.n * g.out_h();
    let per_row = 1 + g.out_w();
    let fixed = cob * (g.kw + 1) + 1;
    if per_row + fixed > budget.loop_iters {
        return None;
    }
    // The layouts that take every kernel row in one invocation ([`conv2d_weight_grad_variants`]) load
    // each row of a chunk up to `1 + rows · inputs` times as often, and every layout shares the
    // chunks (they fix the order of the sums): where one row of them fits, the chunks are sized so
    // that they fit too. vgg-cifar's 3x3 weight gradients at batch 256 were left with one row per
    // invocation otherwise, at 4.7-5.0 GFLOP/s against 11 for 3 rows (lavapipe).
    let one_row_max = (budget.loop_iters - fixed) / per_row;
    let all_rows_loads = if g.kh == 3 && g.kw == 3 && g.c_in > 1 {
        1 + 2 * g.kh
    } else if g.kh > 1 && g.kh <= 5 && g.kw <= 5 {
        1 + g.kh
    } else {
        1
    };
    let all_rows_fixed = 2 * g.kh * 16 + 1;
    let all_rows_max = budget.loop_iters.saturating_sub(all_rows_fixed) / (per_row * all_rows_loads);
    let max_rows = if all_rows_max >= 1 { one_row_max.min(all_rows_max) } else { one_row_max };
    let wanted_chunks = budget.threads.div_ceil(items).clamp(1, rows.max(1));
    let rows_per_chunk = rows.div_ceil(wanted_chunks).clamp(1, max_rows.max(1));
    let chunks = rows.div_ceil(rows_per_chunk);
    Some(WeightGradSplit {
        cob,
        layers,
        rows_per_chunk,
        chunks,
        iters: rows_per_chunk * per_row + fixed,
        rows: GradRows::One,
    })
}

/// The weight gradient's layouts under `budget`, all over the rows per chunk of
/// [`conv2d_weight_grad_split`]: first every row in one invocation (named registers for 3 x 3 kernels,
/// 16, 8, 4 or 2 channels; else private arrays for kernels up to 5 x 5, 4 channels or fewer first, then up
/// to 8); then one row per
/// invocation with the split's channel block, other blocks (at most 4 channels, or 8 when the kernel
/// is at most 5 wide), and the array layout where a 3-row one came first. The first is the default.
/// Each output adds the same products in the same order in every one, so the bits do not depend on
/// the choice (autotuning).
pub fn conv2d_weight_grad_variants(g: &Conv2dGeom, budget: &Budget) -> Vec<WeightGradSplit> {
    let Some(first) = conv2d_weight_grad_split(g, budget) else {
        return Vec::new();
    };
    let mut v = vec![first];
    let per_row = 1 + g.out_w();
    let mut blocks = vec![channel_block(g.c_out, 4), channel_block(g.c_out, 2)];
    if g.kw <= 5 {
        blocks.insert(0, channel_block(g.c_out, 8));
    }
    for cob in blocks {
        let iters = first.rows_per_chunk * per_row + cob * (g.kw + 1) + 1;
        if iters <= budget.loop_iters && !v.iter().any(|s| s.cob == cob) {
            v.push(WeightGradSplit { cob, layers: g.c_out.div_ceil(cob), iters, ..first });
        }
    }
    // 3x3 kernels: every row in one invocation, so each dy value loaded serves three rows. These
    // come first (the default without tuning): on lavapipe they ran 1.3-1.7x faster than one row per
    // invocation on six of resnet-mini's seven 3x3 weight gradients, and with 16 channels per
    // invocation 1.2-1.4x faster again than with 4 (16 first, then 8, 4, 2; the array layout at most 4).
    let mut first_rows = Vec::new();
    let mut all_rows = Vec::new();
    // Rows on the vec4 grid for `GradRows::AllVec4` (and so x and dy of whole vec4s).
    let vec4 = g.stride_w == 1 && g.w.is_multiple_of(4) && g.out_w().is_multiple_of(4);
    for cob in [16, 8, 4, 2].map(|max| channel_block(g.c_out, max)) {
        let layers = g.c_out.div_ceil(cob);
        let iters = first.rows_per_chunk * per_row * (1 + g.kh) + g.kh * cob + 1;
        if iters > budget.loop_iters {
            continue;
        }
        if g.kh == 3 && g.kw == 3 && !first_rows.iter().any(|s: &WeightGradSplit| s.cob == cob) {
            first_rows.push(WeightGradSplit { cob, layers, iters, rows: GradRows::Three, ..first });
            // Two input channels per invocation, where the output channels are at most 8 per block.
            if cob <= 8 && g.c_in > 1 {
                let iters = first.rows_per_chunk * per_row * (1 + 2 * g.kh) + 2 * g.kh * cob + 1;
                if iters <= budget.loop_iters {
                    first_rows.push(WeightGradSplit { cob, layers, iters, rows: GradRows::ThreeTwo, ..first });
                }
            }
        }
        if g.kh > 1 && g.kh <= 5 && g.kw <= 5 && cob <= 8 && !all_rows.iter().any(|s: &WeightGradSplit| s.cob == cob) {
            // Each with vec4 loads first where rows are on the vec4 grid: LeNet-5's conv1 took
            // 2.00-2.28 ms with 3 channels against 2.73-3.16 with scalar loads, and 1.44-2.09 with 6
            // against 2.17-2.70 (the tuner's timings in two runs, lavapipe, Intel Xeon). Not with 8
            // channels: an 8-channel block took 84 s on LeNet-5's conv2 in one tuning run (its
            // accumulators spill); nor on rows off the grid, where conv2 (14 wide) took 1.5x as long
            // as with scalar loads, the shift chosen at run time.
            if vec4 && cob <= 6 {
                all_rows.push(WeightGradSplit { cob, layers, iters, rows: GradRows::AllVec4, ..first });
            }
            all_rows.push(WeightGradSplit { cob, layers, iters, rows: GradRows::All, ..first });
        }
    }
    // In arrays, up to 4 channels lead (the default); 5 to 8 are offered to tuning: LeNet-5's conv1
    // (6 channels, one input channel) took 1.37-1.41 ms with 6 against 1.68-1.73 with 3, and its conv2
    // (16 channels) 8.8-8.9 ms with 8 against 3.0 with 4 (the tuner's timings in two runs, lavapipe,
    // Intel Xeon).
    // With vec4 loads, the widest block leads (at most 6 channels, above: 1.1-1.4x as fast as 3 on
    // LeNet-5's conv1).
    let lead = all_rows.iter().position(|s| s.rows == GradRows::AllVec4);
    if let Some(i) = lead.or_else(|| all_rows.iter().position(|s| s.cob <= 4)) {
        let lead = all_rows.remove(i);
        all_rows.insert(0, lead);
    }
    // Without a 3-row layout, every row in arrays comes first: LeNet-5's two 5x5 weight gradients ran
    // 2.2-2.9x faster so on lavapipe.
    if first_rows.is_empty() {
        std::mem::swap(&mut first_rows, &mut all_rows);
    }
    // At stride 1, two input channels per invocation (the widest such block) lead: full tuning on
    // lavapipe chose it for 24 of the 30 stride-1 3x3 zoo shapes with more than one input channel
    // (inception-mini's 16 -> 24 at 14x14: 10.1 ms against 13.2 for 12 channels x 3 rows in one
    // tuning run, within 2 % of each other in a later profile); the widest single-channel block stays
    // first at stride 2, where it was chosen for all 6 shapes.
    if g.stride_h == 1 && g.stride_w == 1 {
        if let Some(i) = first_rows.iter().position(|s| s.rows == GradRows::ThreeTwo) {
            let two = first_rows.remove(i);
            first_rows.insert(0, two);
        }
    }
    first_rows.extend(v);
    first_rows.extend(all_rows);
    v = first_rows;
    v
}
