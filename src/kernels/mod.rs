//! GPU kernels: one Rust file and one `.wgsl` file per op family, forward and backward side by side.
//!
//! Every kernel has one name used everywhere: the WGSL entry point, the [`Kernel`] variant, the launcher
//! function, the CPU reference in [`crate::reference`] and the test row. Pipelines are built once per
//! [`Context`] and cached by [`Kernel`]; every dispatch grid comes from [`dispatch_grid`].

use std::sync::Arc;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub mod activation;
pub mod conv;
pub mod conv_fast;
pub mod elementwise;
pub mod gather;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;

/// Threads per workgroup of every 1-D kernel; mirrors `const WG` in `shaders/common.wgsl`.
pub const WORKGROUP_SIZE: u32 = 64;

/// Source shared by every shader file (index helper, workgroup size).
pub const COMMON_WGSL: &str = include_str!("../../shaders/common.wgsl");

/// One `.wgsl` file of `shaders/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShaderFile {
    Conv,
    ConvFast,
    Activation,
    Elementwise,
    Pool,
    PoolFast,
    Linear,
    Matmul,
    Loss,
    Optim,
    Gather,
    Reduce,
}

impl ShaderFile {
    pub const ALL: [ShaderFile; 12] = [
        ShaderFile::Conv,
        ShaderFile::ConvFast,
        ShaderFile::Activation,
        ShaderFile::Elementwise,
        ShaderFile::Pool,
        ShaderFile::PoolFast,
        ShaderFile::Linear,
        ShaderFile::Matmul,
        ShaderFile::Loss,
        ShaderFile::Optim,
        ShaderFile::Gather,
        ShaderFile::Reduce,
    ];

    /// File name under `shaders/`.
    pub fn file_name(self) -> &'static str {
        match self {
            ShaderFile::Conv => "conv.wgsl",
            ShaderFile::ConvFast => "conv_fast.wgsl",
            ShaderFile::Activation => "activation.wgsl",
            ShaderFile::Elementwise => "elementwise.wgsl",
            ShaderFile::Pool => "pool.wgsl",
            ShaderFile::PoolFast => "pool_fast.wgsl",
            ShaderFile::Linear => "linear.wgsl",
            ShaderFile::Matmul => "matmul.wgsl",
            ShaderFile::Loss => "loss.wgsl",
            ShaderFile::Optim => "optim.wgsl",
            ShaderFile::Gather => "gather.wgsl",
            ShaderFile::Reduce => "reduce.wgsl",
        }
    }

    fn body(self) -> &'static str {
        match self {
            ShaderFile::Conv => include_str!("../../shaders/conv.wgsl"),
            ShaderFile::ConvFast => include_str!("../../shaders/conv_fast.wgsl"),
            ShaderFile::Activation => include_str!("../../shaders/activation.wgsl"),
            ShaderFile::Elementwise => include_str!("../../shaders/elementwise.wgsl"),
            ShaderFile::Pool => include_str!("../../shaders/pool.wgsl"),
            ShaderFile::PoolFast => include_str!("../../shaders/pool_fast.wgsl"),
            ShaderFile::Linear => include_str!("../../shaders/linear.wgsl"),
            ShaderFile::Matmul => include_str!("../../shaders/matmul.wgsl"),
            ShaderFile::Loss => include_str!("../../shaders/loss.wgsl"),
            ShaderFile::Optim => include_str!("../../shaders/optim.wgsl"),
            ShaderFile::Gather => include_str!("../../shaders/gather.wgsl"),
            ShaderFile::Reduce => include_str!("../../shaders/reduce.wgsl"),
        }
    }

    /// The complete module source: `common.wgsl` followed by the file.
    pub fn source(self) -> String {
        format!("{COMMON_WGSL}\n{}", self.body())
    }
}

/// How a kernel uses a storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

use Access::{Read as R, ReadWrite as W};

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

            /// Storage bindings 1.. in order.
            pub fn bindings(self) -> &'static [Access] {
                match self { $(Kernel::$variant => &[$($acc),*],)* }
            }
        }
    };
}

kernels! {
    Conv2dForward => "conv2d_forward", Conv, [R, R, R, W];
    Conv2dBackwardInput => "conv2d_backward_input", Conv, [R, R, W];
    Conv2dBackwardWeight => "conv2d_backward_weight", Conv, [R, R, W];
    Conv2dBackwardBias => "conv2d_backward_bias", Conv, [R, W];
    Conv2dDirect => "conv2d_direct", ConvFast, [R, R, R, W];
    Conv2dWeightGrad => "conv2d_weight_grad", ConvFast, [R, R, W];
    ReluForward => "relu_forward", Activation, [R, W];
    ReluBackward => "relu_backward", Activation, [R, R, W];
    TanhForward => "tanh_forward", Activation, [R, W];
    TanhBackward => "tanh_backward", Activation, [R, R, W];
    SigmoidForward => "sigmoid_forward", Activation, [R, W];
    SigmoidBackward => "sigmoid_backward", Activation, [R, R, W];
    AddForward => "add_forward", Elementwise, [R, R, W];
    MaxPool2dForward => "maxpool2d_forward", Pool, [R, W, W];
    MaxPool2dBackward => "maxpool2d_backward", Pool, [R, R, W];
    AvgPool2dForward => "avgpool2d_forward", Pool, [R, W];
    AvgPool2dBackward => "avgpool2d_backward", Pool, [R, W];
    MaxPool2dTilesForward => "maxpool2d_tiles_forward", PoolFast, [R, W, W];
    MaxPool2dTilesBackward => "maxpool2d_tiles_backward", PoolFast, [R, R, R, W];
    LinearForward => "linear_forward", Linear, [R, R, R, W];
    LinearBackwardInput => "linear_backward_input", Linear, [R, R, W];
    LinearBackwardWeight => "linear_backward_weight", Linear, [R, R, W];
    LinearBackwardBias => "linear_backward_bias", Linear, [R, W];
    Matmul => "matmul", Matmul, [R, R, R, W];
    SoftmaxXentForward => "softmax_xent_forward", Loss, [R, R, W, W];
    SoftmaxXentBackward => "softmax_xent_backward", Loss, [R, R, W];
    SoftmaxMseForward => "softmax_mse_forward", Loss, [R, R, W, W];
    SoftmaxMseBackward => "softmax_mse_backward", Loss, [R, R, W];
    SgdUpdate => "sgd_update", Optim, [R, W, W];
    AdamUpdate => "adam_update", Optim, [R, W, W, W];
    GatherBatch => "gather_batch", Gather, [R, R, R, W, W];
    SumAccumulate => "sum_accumulate", Reduce, [R, W];
    CorrectAccumulate => "correct_accumulate", Reduce, [R, R, W];
    ArgmaxRows => "argmax_rows", Reduce, [R, W];
    SumChunks => "sum_chunks", Reduce, [R, W];
}

/// A compute pipeline with its explicit bind-group layout.
pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
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

struct Dispatch {
    pipeline: Arc<Pipeline>,
    bind_group: wgpu::BindGroup,
    params: wgpu::Buffer,
    grid: [u32; 3],
}

/// Prepared dispatches (usually one; two for split reductions): pipelines, bind groups, params
/// buffers and grids. Built once, recorded many times.
pub struct Launch {
    pub kernel: Kernel,
    pub label: String,
    steps: Vec<Dispatch>,
    /// Useful floating-point operations per recording (a multiply-add counts 2), for reports.
    pub flops: u64,
    /// Bytes the launch must read and write at least once per recording, for reports.
    pub bytes: u64,
}

impl Launch {
    /// Record the dispatches, in order, into a compute pass.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.steps {
            pass.set_pipeline(&d.pipeline.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.grid[0], d.grid[1], d.grid[2]);
        }
    }

    /// The workgroup grid of each dispatch.
    pub fn grids(&self) -> Vec<[u32; 3]> {
        self.steps.iter().map(|d| d.grid).collect()
    }

    /// Number of dispatches recorded.
    pub fn dispatches(&self) -> usize {
        self.steps.len()
    }

    /// Append the dispatches of `next` (run after this one's).
    pub fn then(mut self, next: Launch) -> Launch {
        self.steps.extend(next.steps);
        self.flops += next.flops;
        self.bytes += next.bytes;
        self
    }

    /// Record the work this launch does (see [`Launch::flops`], [`Launch::bytes`]).
    pub fn with_work(mut self, flops: u64, bytes: u64) -> Launch {
        self.flops = flops;
        self.bytes = bytes;
        self
    }

    /// Record each dispatch, in order, into its own compute pass of `enc`, the pass bracketed by
    /// timestamp queries `first` and `first + 1` of `queries` (profiling; see `wgcnn bench`).
    pub fn record_timed(&self, enc: &mut wgpu::CommandEncoder, queries: &wgpu::QuerySet, first: u32) {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(&self.label),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: queries,
                beginning_of_pass_write_index: Some(first),
                end_of_pass_write_index: Some(first + 1),
            }),
        });
        self.record(&mut pass);
    }

    /// Overwrite the first dispatch's params (same struct type as at creation; e.g. Adam's per-step
    /// bias correction).
    pub fn set_params<P: bytemuck::Pod>(&self, ctx: &Context, params: &P) {
        if let Some(d) = self.steps.first() {
            ctx.queue.write_buffer(&d.params, 0, bytemuck::bytes_of(params));
        }
    }
}

impl Context {
    /// The cached pipeline of `kernel`, built on first use.
    pub fn pipeline(&self, kernel: Kernel) -> Arc<Pipeline> {
        self.pipeline_with(kernel, &[])
    }

    /// The cached pipeline of `kernel` with its WGSL `override` constants set to `consts` (a kernel
    /// specialised to a shape: loops of known trip count unroll, divisions by constants become
    /// multiplications), built on first use.
    pub fn pipeline_with(&self, kernel: Kernel, consts: &[(&'static str, u32)]) -> Arc<Pipeline> {
        let key = (kernel, consts.to_vec());
        let mut cache = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(&key) {
            return Arc::clone(p);
        }
        let file = kernel.file();
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
            modules
                .entry(file)
                .or_insert_with(|| {
                    self.count_created(1);
                    self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(file.file_name()),
                        source: wgpu::ShaderSource::Wgsl(file.source().into()),
                    })
                })
                .clone()
        };
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, access) in kernel.bindings().iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: *access == Access::Read },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let name = kernel.entry_point();
        let constants: Vec<(&str, f64)> = consts.iter().map(|&(k, v)| (k, f64::from(v))).collect();
        self.count_created(3); // bind-group layout, pipeline layout, pipeline
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(name), entries: &entries });
        let pipeline_layout = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(name),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: true,
            },
            cache: None,
        });
        let p = Arc::new(Pipeline { pipeline, layout });
        cache.insert(key, Arc::clone(&p));
        p
    }

    /// Prepare a dispatch of `kernel` over `threads` invocations with `params` and `tensors` bound at
    /// 1.. in order. `label` names the bind group (e.g. `conv1.dw`) so validation errors point at it.
    /// `loop_iters` is the most loop iterations one invocation runs, checked against
    /// [`Context::max_loop_iterations`].
    pub fn launch<P: bytemuck::Pod>(
        &self,
        kernel: Kernel,
        label: &str,
        params: &P,
        tensors: &[&Tensor],
        threads: u64,
        loop_iters: u64,
    ) -> Result<Launch> {
        self.launch_with(kernel, &[], label, params, tensors, threads, loop_iters)
    }

    /// [`Context::launch`] of a kernel specialised with `override` constants (see
    /// [`Context::pipeline_with`]).
    #[allow(clippy::too_many_arguments)]
    pub fn launch_with<P: bytemuck::Pod>(
        &self,
        kernel: Kernel,
        consts: &[(&'static str, u32)],
        label: &str,
        params: &P,
        tensors: &[&Tensor],
        threads: u64,
        loop_iters: u64,
    ) -> Result<Launch> {
        self.launch_layered(kernel, consts, label, params, tensors, threads, 1, loop_iters)
    }

    /// [`Context::launch_with`] over `layers` copies of the grid of `threads` invocations, stacked in
    /// the grid's third dimension: shaders read the layer from `workgroup_id.z`, a value every invocation
    /// of a workgroup shares (so loads indexed by it alone are uniform, which lets lavapipe load once
    /// and broadcast instead of gathering per lane).
    #[allow(clippy::too_many_arguments)]
    pub fn launch_layered<P: bytemuck::Pod>(
        &self,
        kernel: Kernel,
        consts: &[(&'static str, u32)],
        label: &str,
        params: &P,
        tensors: &[&Tensor],
        threads: u64,
        layers: u32,
        loop_iters: u64,
    ) -> Result<Launch> {
        let name = kernel.entry_point();
        if layers == 0 || layers > self.limits.max_compute_workgroups_per_dimension {
            return Err(Error::Limit {
                op: name.to_string(),
                what: "grid layers".into(),
                value: u64::from(layers),
                limit: u64::from(self.limits.max_compute_workgroups_per_dimension),
            });
        }
        if loop_iters > self.max_loop_iterations() {
            return Err(Error::Limit {
                op: name.to_string(),
                what: format!("loop iterations per invocation on {}", self.info.name),
                value: loop_iters,
                limit: self.max_loop_iterations(),
            });
        }
        if tensors.len() != kernel.bindings().len() {
            return Err(crate::error::shape_err(
                name,
                format!("{} tensors bound, the kernel takes {}", tensors.len(), kernel.bindings().len()),
            ));
        }
        let max_binding = self.limits.max_storage_buffer_binding_size;
        let align = u64::from(self.limits.min_storage_buffer_offset_alignment);
        for t in tensors {
            if t.byte_len() > max_binding {
                return Err(Error::Limit {
                    op: name.to_string(),
                    what: format!("binding size of {}", t.label),
                    value: t.byte_len(),
                    limit: max_binding,
                });
            }
            if t.offset % align != 0 {
                return Err(crate::error::shape_err(
                    name,
                    format!("{} starts at byte {}, not a multiple of {align}", t.label, t.offset),
                ));
            }
        }
        let mut grid = dispatch_grid(name, threads, WORKGROUP_SIZE, self.limits.max_compute_workgroups_per_dimension)?;
        grid[2] = layers;
        let pipeline = self.pipeline_with(kernel, consts);
        let bytes = bytemuck::bytes_of(params);
        self.count_created(2); // params buffer, bind group
        self.count_bytes(crate::tensor::padded_bytes(bytes.len() as u64));
        let params_buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: crate::tensor::padded_bytes(bytes.len() as u64),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&params_buf, 0, bytes);
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: params_buf.as_entire_binding() }];
        for (i, t) in tensors.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: t.binding() });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.layout,
            entries: &entries,
        });
        let steps = vec![Dispatch { pipeline, bind_group, params: params_buf, grid }];
        Ok(Launch { kernel, label: label.to_string(), steps, flops: 0, bytes: 0 })
    }

    /// Record `launches` in order into one compute pass of one encoder and submit once.
    pub fn run(&self, launches: &[&Launch]) -> Result<()> {
        self.submit_pass("wgcnn.run", |pass| {
            for l in launches {
                l.record(pass);
            }
        })
    }

    /// Record whatever `record` puts into one compute pass of one encoder, and submit it once.
    pub fn submit_pass(&self, label: &str, record: impl FnOnce(&mut wgpu::ComputePass<'_>)) -> Result<()> {
        let mut enc = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        {
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(label), timestamp_writes: None });
            record(&mut pass);
        }
        self.queue.submit([enc.finish()]);
        self.check_device_error()
    }
}
