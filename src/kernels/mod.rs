//! GPU kernels: one Rust file and one `.wgsl` file per op family, forward and backward side by side.
//!
//! Every kernel has one name used everywhere: the WGSL entry point, the [`Kernel`] variant, the launcher
//! function, the CPU reference in [`crate::reference`] and the test row. Pipelines are built once per
//! [`Context`] and cached by [`Kernel`]; every dispatch grid comes from [`dispatch_grid`].

use crate::context::Context;
use crate::error::{Error, Result};

pub mod activation;
pub mod batchnorm;
pub mod concat;
pub mod conv;
pub mod conv_1x1;
pub mod conv_fast;
pub mod conv_plan;
pub mod conv_tiled;
pub mod dropout;
pub mod elementwise;
pub mod gather;
mod launch;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;

pub use launch::{Launch, Pipeline};

/// Threads per workgroup of every kernel by default; the default of `override WG` in
/// `shaders/common.wgsl` (see [`Kernel::fixed_workgroup`] and `Context::workgroup_for`).
pub const WORKGROUP_SIZE: u32 = 64;

/// Source shared by every shader file (index helper, workgroup size).
pub const COMMON_WGSL: &str = include_str!("../../shaders/common.wgsl");
/// The `override` sizes of the shape-specialised convolutions, prefixed to `conv_fast.wgsl` and
/// `conv_strided.wgsl`.
pub const CONV_SIZES_WGSL: &str = include_str!("../../shaders/conv_sizes.wgsl");
/// The builtins and lane shuffle of `conv2d_direct` and the 3x3 weight gradients: without subgroups
/// (`conv_fast.wgsl`'s module) and with them (the same file's [`ShaderFile::ConvFastSg`] module).
pub const CONV_LANES_WGSL: &str = include_str!("../../shaders/conv_lanes.wgsl");
pub const CONV_LANES_SG_WGSL: &str = include_str!("../../shaders/conv_lanes_sg.wgsl");

/// One `.wgsl` file of `shaders/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShaderFile {
    Conv,
    ConvFast,
    /// `conv_fast.wgsl` built with subgroup operations (`conv_lanes_sg.wgsl`): only on a device with
    /// wgpu's `SUBGROUP` feature.
    ConvFastSg,
    ConvStrided,
    Activation,
    BatchNorm,
    Elementwise,
    Concat,
    Dropout,
    Pool,
    PoolFast,
    Linear,
    Matmul,
    MatmulVec,
    Loss,
    Optim,
    Gather,
    Reduce,
}

impl ShaderFile {
    pub const ALL: [ShaderFile; 18] = [
        ShaderFile::Conv,
        ShaderFile::ConvFast,
        ShaderFile::ConvFastSg,
        ShaderFile::ConvStrided,
        ShaderFile::Activation,
        ShaderFile::BatchNorm,
        ShaderFile::Elementwise,
        ShaderFile::Concat,
        ShaderFile::Dropout,
        ShaderFile::Pool,
        ShaderFile::PoolFast,
        ShaderFile::Linear,
        ShaderFile::Matmul,
        ShaderFile::MatmulVec,
        ShaderFile::Loss,
        ShaderFile::Optim,
        ShaderFile::Gather,
        ShaderFile::Reduce,
    ];

    /// File name under `shaders/`.
    pub fn file_name(self) -> &'static str {
        match self {
            ShaderFile::Conv => "conv.wgsl",
            ShaderFile::ConvFast | ShaderFile::ConvFastSg => "conv_fast.wgsl",
            ShaderFile::ConvStrided => "conv_strided.wgsl",
            ShaderFile::Activation => "activation.wgsl",
            ShaderFile::BatchNorm => "batchnorm.wgsl",
            ShaderFile::Elementwise => "elementwise.wgsl",
            ShaderFile::Concat => "concat.wgsl",
            ShaderFile::Dropout => "dropout.wgsl",
            ShaderFile::Pool => "pool.wgsl",
            ShaderFile::PoolFast => "pool_fast.wgsl",
            ShaderFile::Linear => "linear.wgsl",
            ShaderFile::Matmul => "matmul.wgsl",
            ShaderFile::MatmulVec => "matmul_vec.wgsl",
            ShaderFile::Loss => "loss.wgsl",
            ShaderFile::Optim => "optim.wgsl",
            ShaderFile::Gather => "gather.wgsl",
            ShaderFile::Reduce => "reduce.wgsl",
        }
    }

    fn body(self) -> &'static str {
        match self {
            ShaderFile::Conv => include_str!("../../shaders/conv.wgsl"),
            ShaderFile::ConvFast | ShaderFile::ConvFastSg => include_str!("../../shaders/conv_fast.wgsl"),
            ShaderFile::ConvStrided => include_str!("../../shaders/conv_strided.wgsl"),
            ShaderFile::Activation => include_str!("../../shaders/activation.wgsl"),
            ShaderFile::BatchNorm => include_str!("../../shaders/batchnorm.wgsl"),
            ShaderFile::Elementwise => include_str!("../../shaders/elementwise.wgsl"),
            ShaderFile::Concat => include_str!("../../shaders/concat.wgsl"),
            ShaderFile::Dropout => include_str!("../../shaders/dropout.wgsl"),
            ShaderFile::Pool => include_str!("../../shaders/pool.wgsl"),
            ShaderFile::PoolFast => include_str!("../../shaders/pool_fast.wgsl"),
            ShaderFile::Linear => include_str!("../../shaders/linear.wgsl"),
            ShaderFile::Matmul => include_str!("../../shaders/matmul.wgsl"),
            ShaderFile::MatmulVec => include_str!("../../shaders/matmul_vec.wgsl"),
            ShaderFile::Loss => include_str!("../../shaders/loss.wgsl"),
            ShaderFile::Optim => include_str!("../../shaders/optim.wgsl"),
            ShaderFile::Gather => include_str!("../../shaders/gather.wgsl"),
            ShaderFile::Reduce => include_str!("../../shaders/reduce.wgsl"),
        }
    }

    /// The complete module source: `common.wgsl`, the convolution sizes (`conv_sizes.wgsl`) for the
    /// shape-specialised conv files and `conv2d_direct`'s lanes (`conv_lanes.wgsl` or, with subgroups,
    /// `conv_lanes_sg.wgsl`) for `conv_fast.wgsl`, then the file.
    pub fn source(self) -> String {
        match self {
            ShaderFile::ConvFast => format!("{COMMON_WGSL}\n{CONV_SIZES_WGSL}\n{CONV_LANES_WGSL}\n{}", self.body()),
            ShaderFile::ConvFastSg => {
                format!("{COMMON_WGSL}\n{CONV_SIZES_WGSL}\n{CONV_LANES_SG_WGSL}\n{}", self.body())
            }
            ShaderFile::ConvStrided => format!("{COMMON_WGSL}\n{CONV_SIZES_WGSL}\n{}", self.body()),
            _ => format!("{COMMON_WGSL}\n{}", self.body()),
        }
    }

    /// Whether the module uses subgroup operations (naga's `SUBGROUP` capabilities, wgpu's
    /// `SUBGROUP` feature).
    pub fn uses_subgroups(self) -> bool {
        self == ShaderFile::ConvFastSg
    }
}

/// How a kernel uses a binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read-only storage.
    Read,
    /// Read-write storage.
    ReadWrite,
    /// A read-only uniform window of [`UNIFORM_WINDOW`] bytes from the tensor's start: software
    /// adapters load a uniform buffer at an index every invocation shares once for all of them, where
    /// a storage load is made lane by lane (see `conv2d_direct`'s weights).
    Uniform,
}

/// Bytes a [`Access::Uniform`] binding covers (WGSL declares the array at this size): the WebGPU
/// default for `max_uniform_buffer_binding_size`.
pub const UNIFORM_WINDOW: u64 = 64 << 10;

use Access::{Read as R, ReadWrite as W, Uniform as U};

macro_rules! kernels {
    ($($variant:ident => $entry:literal, $file:ident, [$($acc:ident),*];)*) => {
        /// Every GPU kernel. Binding 0 is always the kernel's uniform params struct; the storage
        /// bindings follow in the order listed by [`Kernel::bindings`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel { $($variant,)* }

        impl Kernel {
            pub const ALL: &'static [Kernel] = &[$(Kernel::$variant,)*];

            /// The WGSL entry point (also the reference function's name).
            pub fn entry_point(self) -> &'static str {
                match self { $(Kernel::$variant => $entry,)* }
            }

            /// The shader file holding the entry point.
            pub fn file(self) -> ShaderFile {
                match self { $(Kernel::$variant => ShaderFile::$file,)* }
            }

            /// Whether the kernel must run with [`WORKGROUP_SIZE`] threads per workgroup (its entry
            /// point declares `WG_FIXED`): it shares workgroup memory among them, or numbers its work
            /// by workgroup rather than by flat invocation index. Every other kernel declares the
            /// `WG` override and computes each invocation's outputs from its flat index alone (and a
            /// layer's channel block from `workgroup_id.z`), so any workgroup size gives the same
            /// bits.
            pub fn fixed_workgroup(self) -> bool {
                matches!(
                    self,
                    Kernel::Conv2dTiled
                        | Kernel::Conv2dTiledWeightGrad
                        | Kernel::MatmulTiled
                        | Kernel::SumAccumulate
                        | Kernel::CorrectAccumulate
                        | Kernel::CountAccumulate
                )
            }

            /// Storage bindings 1.. in order.
            pub fn bindings(self) -> &'static [Access] {
                match self { $(Kernel::$variant => &[$($acc),*],)* }
            }
        }
    };
}

kernels! {
    Conv2dForward => "conv2d_forward", Conv, [R, R, R, W];
    Conv2dTiled => "conv2d_tiled", Conv, [R, R, R, W];
    Conv2dTiledWeightGrad => "conv2d_tiled_weight_grad", Conv, [R, R, W];
    Conv2dBackwardInput => "conv2d_backward_input", Conv, [R, R, W];
    Conv2dBackwardWeight => "conv2d_backward_weight", Conv, [R, R, W];
    Conv2dBackwardBias => "conv2d_backward_bias", Conv, [R, W];
    Conv2dBackwardBias4 => "conv2d_backward_bias4", Conv, [R, W];
    Conv2dDirect => "conv2d_direct", ConvFast, [R, R, R, W, U, R];
    Conv2dDirectSg => "conv2d_direct", ConvFastSg, [R, R, R, W, U, R];
    Conv2dPackWeights => "conv2d_pack_weights", ConvFast, [R, W];
    Conv2dWeightGrad => "conv2d_weight_grad", ConvFast, [R, R, W];
    Conv2dWeightGradK3 => "conv2d_weight_grad_k3", ConvFast, [R, R, W];
    Conv2dWeightGradK3c2 => "conv2d_weight_grad_k3c2", ConvFast, [R, R, W];
    Conv2dWeightGradK3Sg => "conv2d_weight_grad_k3", ConvFastSg, [R, R, W];
    Conv2dWeightGradK3c2Sg => "conv2d_weight_grad_k3c2", ConvFastSg, [R, R, W];
    Conv2dWeightGradLanes => "conv2d_weight_grad_lanes", ConvFastSg, [R, R, W];
    Conv2dWeightGradRows => "conv2d_weight_grad_rows", ConvFast, [R, R, W, R, R];
    Conv2dBackwardInputS2 => "conv2d_backward_input_s2", ConvStrided, [R, R, W, U];
    ReluForward => "relu_forward", Activation, [R, W];
    ReluBackward => "relu_backward", Activation, [R, R, W];
    ReluForward4 => "relu_forward4", Activation, [R, W];
    ReluBackward4 => "relu_backward4", Activation, [R, R, W];
    TanhForward => "tanh_forward", Activation, [R, W];
    TanhBackward => "tanh_backward", Activation, [R, R, W];
    SigmoidForward => "sigmoid_forward", Activation, [R, W];
    SigmoidBackward => "sigmoid_backward", Activation, [R, R, W];
    BatchnormPartial => "batchnorm_partial", BatchNorm, [R, R, R, W, R];
    BatchnormNormalize => "batchnorm_normalize", BatchNorm, [R, R, R, R, R, W];
    BatchnormRunning => "batchnorm_running", BatchNorm, [R, W, W];
    BatchnormBackwardInput => "batchnorm_backward_input", BatchNorm, [R, R, R, R, R, R, W, R];
    BatchnormFold => "batchnorm_fold", BatchNorm, [R, R, R, R, R, R, W, W];
    BatchnormPartial4 => "batchnorm_partial4", BatchNorm, [R, R, R, W, R];
    BatchnormMoments => "batchnorm_moments", BatchNorm, [R, W, W, W];
    BatchnormGradSums => "batchnorm_grad_sums", BatchNorm, [R, W, W];
    BatchnormNormalize4 => "batchnorm_normalize4", BatchNorm, [R, R, R, R, R, W];
    BatchnormBackwardInput4 => "batchnorm_backward_input4", BatchNorm, [R, R, R, R, R, R, W, R];
    AddForward => "add_forward", Elementwise, [R, R, R, R, W];
    AddForward4 => "add_forward4", Elementwise, [R, R, R, R, W];
    ConcatForward => "concat_forward", Concat, [R, W];
    ConcatBackward => "concat_backward", Concat, [R, W];
    ConcatForward4 => "concat_forward4", Concat, [R, W];
    ConcatBackward4 => "concat_backward4", Concat, [R, W];
    ConcatBackwardAdd => "concat_backward_add", Concat, [R, R, W];
    ConcatBackwardAdd4 => "concat_backward_add4", Concat, [R, R, W];
    DropoutForward => "dropout_forward", Dropout, [R, R, W];
    DropoutBackward => "dropout_backward", Dropout, [R, R, W];
    MaxPool2dForward => "maxpool2d_forward", Pool, [R, W, W];
    MaxPool2dBackward => "maxpool2d_backward", Pool, [R, R, W];
    AvgPool2dForward => "avgpool2d_forward", Pool, [R, W];
    AvgPool2dBackward => "avgpool2d_backward", Pool, [R, W];
    MaxPool2dTilesForward => "maxpool2d_tiles_forward", PoolFast, [R, W, W];
    MaxPool2dTilesBackward => "maxpool2d_tiles_backward", PoolFast, [R, R, R, W];
    MaxPool2dTilesForward4 => "maxpool2d_tiles_forward4", PoolFast, [R, W, W];
    MaxPool2dTilesBackward4 => "maxpool2d_tiles_backward4", PoolFast, [R, R, R, W];
    MaxPool2dTilesForward2 => "maxpool2d_tiles_forward2", PoolFast, [R, W, W];
    MaxPool2dTilesBackward2 => "maxpool2d_tiles_backward2", PoolFast, [R, R, R, W];
    MaxPool2dWindowForward => "maxpool2d_window_forward", PoolFast, [R, W, W];
    MaxPool2dWindowBackward => "maxpool2d_window_backward", PoolFast, [R, R, W];
    LinearForward => "linear_forward", Linear, [R, R, R, W];
    LinearBackwardInput => "linear_backward_input", Linear, [R, R, W];
    LinearBackwardWeight => "linear_backward_weight", Linear, [R, R, W];
    LinearBackwardBias => "linear_backward_bias", Linear, [R, W];
    Matmul => "matmul", Matmul, [R, R, R, W];
    MatmulTiled => "matmul_tiled", Matmul, [R, R, R, W];
    MatmulVec4 => "matmul_vec4", MatmulVec, [R, R, R, W];
    MatmulVec4b => "matmul_vec4b", MatmulVec, [R, R, R, W];
    MatmulUb => "matmul_ub", Matmul, [R, U, R, W];
    SoftmaxXentForward => "softmax_xent_forward", Loss, [R, R, W, W];
    SoftmaxXentBackward => "softmax_xent_backward", Loss, [R, R, W];
    SoftmaxMseForward => "softmax_mse_forward", Loss, [R, R, W, W];
    SoftmaxMseBackward => "softmax_mse_backward", Loss, [R, R, W];
    SgdUpdate => "sgd_update", Optim, [R, W, W];
    AdamUpdate => "adam_update", Optim, [R, W, W, W];
    SgdUpdate4 => "sgd_update4", Optim, [R, W, W];
    AdamUpdate4 => "adam_update4", Optim, [R, W, W, W];
    GatherBatch => "gather_batch", Gather, [R, R, R, W, W];
    GatherBatch4 => "gather_batch4", Gather, [R, R, R, W, W];
    SumAccumulate => "sum_accumulate", Reduce, [R, W];
    CorrectAccumulate => "correct_accumulate", Reduce, [R, R, W];
    CountAccumulate => "count_accumulate", Reduce, [R, W];
    ArgmaxRows => "argmax_rows", Reduce, [R, W];
    SumChunks => "sum_chunks", Reduce, [R, W];
}

/// Whether a launch on `ctx` may use a kernel's vec4 entry point for runs of `n` values: `n` a
/// multiple of 4 (so no vec4 straddles two runs, and every binding is a whole number of vec4s) and the
/// fast kernel set (a `KernelSet::Plain` context keeps the scalar kernels, against which the vec4 ones
/// are tested for equal bits).
pub(crate) fn vec4_fits(ctx: &crate::context::Context, n: usize) -> bool {
    n.is_multiple_of(4) && ctx.kernels == crate::context::KernelSet::Fast
}

/// The workgroup grid for `threads` invocations of `wg` threads each: 1-D while it fits in
/// `max_per_dim` workgroups, folded into a second dimension beyond (shaders recover the flat index with
/// `flat_index` in `common.wgsl` and bounds-check it).
pub fn dispatch_grid(op: &str, threads: u64, wg: u32, max_per_dim: u32) -> Result<[u32; 3]> {
    let limit =
        |what: &str, value: u64, limit: u64| Error::Limit { op: op.to_string(), what: what.to_string(), value, limit };
    if threads > u64::from(u32::MAX) {
        return Err(limit("invocation count", threads, u64::from(u32::MAX)));
    }
    let groups = threads.div_ceil(u64::from(wg)).max(1);
    let max = u64::from(max_per_dim);
    if groups <= max {
        return Ok([groups as u32, 1, 1]);
    }
    let y = groups.div_ceil(max);
    if y > max {
        return Err(limit("workgroup count", groups, max * max));
    }
    Ok([max_per_dim, y as u32, 1])
}

/// The fast launch when `ctx` uses the fast kernel set and `fast` takes the shape (returns `Some`),
/// otherwise the plain one: how every `*_auto` launcher chooses.
pub fn fast_or(
    ctx: &Context,
    fast: impl FnOnce() -> Result<Option<Launch>>,
    plain: impl FnOnce() -> Result<Launch>,
) -> Result<Launch> {
    if ctx.kernels == crate::context::KernelSet::Fast {
        if let Some(l) = fast()? {
            return Ok(l);
        }
    }
    plain()
}

/// Loop iterations one invocation of a split reduction runs per chunk (see [`split_rows`]).
pub const CHUNK_ITERS: usize = 4096;

/// How a reduction over `rows` rows, each costing `cost_per_row` loop iterations, is split into
/// chunks: each invocation sums `rows_per_chunk` rows, and a second pass (`sum_chunks`) adds the
/// `chunks` partial results in a fixed order. Deterministic, and it keeps every invocation's loop
/// count bounded (llvmpipe stops loops after 65,535 iterations per invocation).
pub fn split_rows(rows: usize, cost_per_row: usize) -> (usize, usize) {
    let rows_per_chunk = (CHUNK_ITERS / cost_per_row.max(1)).clamp(1, rows.max(1));
    (rows_per_chunk, rows.div_ceil(rows_per_chunk).max(1))
}
