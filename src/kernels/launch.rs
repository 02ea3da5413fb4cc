//! Prepared launches: pipelines built once per [`Context`] and cached by (kernel, constants), bind
//! groups and params buffers made when a launch is prepared, and recording into a compute pass.

use std::sync::Arc;

use crate::context::{Context, Guarded};
use crate::error::{Error, Result};
use crate::kernels::{dispatch_grid, Access, Kernel, UNIFORM_WINDOW, WORKGROUP_SIZE};
use crate::tensor::Tensor;

/// Workgroups per CPU below which a software adapter's dispatch is split into smaller workgroups
/// (see `Context::workgroup_for`).
pub const SMALL_DISPATCH_GROUPS: u64 = 8;

/// A compute pipeline with its explicit bind-group layout.
pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

struct Dispatch {
    kernel: Kernel,
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
    steps: Vec<Guarded<Dispatch>>,
    /// Useful floating-point operations per recording (a multiply-add counts 2), for reports.
    pub flops: u64,
    /// Bytes the launch must read and write at least once per recording, for reports.
    pub bytes: u64,
    /// The pipeline's specialisation constants (of the first dispatch, for launches chained by
    /// [`Launch::then`]).
    consts: Vec<(&'static str, u32)>,
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

    /// The kernel of each dispatch, in order (`kernel` names the launch's main one).
    pub fn kernels(&self) -> Vec<Kernel> {
        self.steps.iter().map(|d| d.kernel).collect()
    }

    /// Append the dispatches of `next` (run after this one's).
    pub fn then(mut self, next: Launch) -> Launch {
        self.steps.extend(next.steps);
        self.flops += next.flops;
        self.bytes += next.bytes;
        self
    }

    /// Run the dispatches of `first` (a preparation, such as packing weights) before this one's,
    /// keeping this launch's kernel, label and constants: profiles name the launch by its main
    /// kernel, with the preparation's time in its row.
    pub fn after(mut self, first: Launch) -> Launch {
        let mut steps = first.steps;
        steps.append(&mut self.steps);
        self.steps = steps;
        self.flops += first.flops;
        self.bytes += first.bytes;
        self
    }

    /// Record the work this launch does (see [`Launch::flops`], [`Launch::bytes`]).
    pub fn with_work(mut self, flops: u64, bytes: u64) -> Launch {
        self.flops = flops;
        self.bytes = bytes;
        self
    }

    /// The value of specialisation constant `name` the launch's (first) pipeline was built with.
    pub fn constant(&self, name: &str) -> Option<u32> {
        self.consts.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
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
            let _serial = ctx.serial();
            ctx.queue.write_buffer(&d.params, 0, bytemuck::bytes_of(params));
        }
    }
}

impl Context {
    /// Whether `t` can be bound as a uniform window ([`Access::Uniform`]): `t` is at most
    /// [`UNIFORM_WINDOW`] bytes (every value readable through it), the adapter binds that many bytes,
    /// `t` starts on the uniform offset alignment, and its buffer holds the whole window from there
    /// (parameter arenas are made with that room).
    pub fn uniform_window_fits(&self, t: &Tensor) -> bool {
        t.byte_len() <= UNIFORM_WINDOW
            && self.limits.max_uniform_buffer_binding_size >= UNIFORM_WINDOW
            && t.offset.is_multiple_of(u64::from(self.limits.min_uniform_buffer_offset_alignment))
            && t.offset + UNIFORM_WINDOW <= t.buffer.size()
    }

    /// A zero tensor of [`UNIFORM_WINDOW`] bytes, made once per context: what a kernel with a uniform
    /// binding gets there when the variant chosen does not read it.
    pub fn uniform_dummy(&self) -> Result<Tensor> {
        let mut slot = self.window_dummy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = slot.as_ref() {
            return Ok(t.clone());
        }
        let t = Tensor::zeros(self, "uniform.window", &[(UNIFORM_WINDOW / 4) as usize], crate::tensor::DType::F32)?;
        *slot = Some(t.clone());
        Ok(t)
    }

    /// Every pipeline this context has built: kernel and `override` constants (for the portability
    /// tests, which translate exactly these to Metal, HLSL, SPIR-V and GLSL).
    pub fn pipeline_specs(&self) -> Vec<(Kernel, Vec<(&'static str, u32)>)> {
        let cache = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = cache.keys().cloned().collect();
        v.sort_by_key(|(k, c)| (k.entry_point(), c.clone()));
        v
    }

    /// The cached pipeline of `kernel`, built on first use.
    pub fn pipeline(&self, kernel: Kernel) -> Arc<Pipeline> {
        self.pipeline_with(kernel, &[])
    }

    /// The cached pipeline of `kernel` with its WGSL `override` constants set to `consts` (a kernel
    /// specialised to a shape: loops of known trip count unroll, divisions by constants become
    /// multiplications), built on first use.
    pub fn pipeline_with(&self, kernel: Kernel, consts: &[(&'static str, u32)]) -> Arc<Pipeline> {
        let key = (kernel, consts.to_vec());
        // The serial lock first, then the caches: the order every path takes them in.
        let _serial = self.serial();
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
                    let desc = wgpu::ShaderModuleDescriptor {
                        label: Some(file.file_name()),
                        source: wgpu::ShaderSource::Wgsl(file.source().into()),
                    };
                    // Bounds and division checks stay; naga's forced loop bounding (a counter and an
                    // extra exit in every loop, against loops that never end) is off: every loop of
                    // shaders/ counts to a bound set by pipeline constants or launch parameters that
                    // the launchers validate (sizes within u32, iterations within the adapter's loop
                    // budget). The extra exit kept lavapipe from unrolling the shape-specialised
                    // loops: LeNet-5's conv2 forward ran 1.3x faster without it, the 1024³ product 1.1x.
                    let mut checks = wgpu::ShaderRuntimeChecks::checked();
                    checks.force_loop_bounding = false;
                    #[allow(unsafe_code)]
                    unsafe {
                        self.device.create_shader_module_trusted(desc, checks)
                    }
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
                    ty: match access {
                        Access::Uniform => wgpu::BufferBindingType::Uniform,
                        a => wgpu::BufferBindingType::Storage { read_only: *a == Access::Read },
                    },
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
        let disk_cache = self.disk_cache.lock().unwrap_or_else(|e| e.into_inner());
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(name),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: true,
            },
            cache: disk_cache.as_ref().map(|c| &c.cache),
        });
        drop(disk_cache);
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
        for (t, access) in tensors.iter().zip(kernel.bindings()) {
            if *access == Access::Uniform {
                if !self.uniform_window_fits(t) {
                    return Err(crate::error::shape_err(
                        name,
                        format!("{} cannot be bound as a {UNIFORM_WINDOW}-byte uniform window", t.label),
                    ));
                }
                continue;
            }
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
        let wg = self.workgroup_for(kernel, threads, layers);
        let mut grid = dispatch_grid(name, threads, wg, self.limits.max_compute_workgroups_per_dimension)?;
        grid[2] = layers;
        let mut consts = consts.to_vec();
        if wg != WORKGROUP_SIZE {
            consts.push(("WG", wg));
        }
        let consts = &consts[..];
        let _serial = self.serial();
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
        for (i, (t, access)) in tensors.iter().zip(kernel.bindings()).enumerate() {
            let resource = match access {
                Access::Uniform => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &t.buffer,
                    offset: t.offset,
                    size: std::num::NonZeroU64::new(UNIFORM_WINDOW),
                }),
                _ => t.binding(),
            };
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.layout,
            entries: &entries,
        });
        let steps = vec![Guarded::new(self, Dispatch { kernel, pipeline, bind_group, params: params_buf, grid })];
        Ok(Launch { kernel, label: label.to_string(), steps, flops: 0, bytes: 0, consts: consts.to_vec() })
    }

    /// Threads per workgroup for a dispatch of `kernel` over `layers` grids of `threads`
    /// invocations. On software adapters, which run each workgroup on one CPU thread, a dispatch of
    /// fewer than [`SMALL_DISPATCH_GROUPS`] workgroups per CPU leaves threads idle while the last
    /// ones finish (LeNet-5's conv2 bias gradient at batch 64 is 32 invocations: one workgroup,
    /// one thread). There a kernel that may ([`Kernel::fixed_workgroup`]) runs in smaller workgroups
    /// of 32, 16 or 8 (the largest that gives enough of them; never below the subgroup size, which
    /// the subgroup kernels need whole). Every invocation computes the same outputs either way.
    pub fn workgroup_for(&self, kernel: Kernel, threads: u64, layers: u32) -> u32 {
        if !self.is_software() || kernel.fixed_workgroup() {
            return WORKGROUP_SIZE;
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let want = SMALL_DISPATCH_GROUPS * cpus;
        let floor = self.subgroup_size().unwrap_or(1).max(8);
        let mut wg = WORKGROUP_SIZE;
        while wg / 2 >= floor && threads.div_ceil(u64::from(wg)) * u64::from(layers) < want {
            wg /= 2;
        }
        wg
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
        let _serial = self.serial();
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
