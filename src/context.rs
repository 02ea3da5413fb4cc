//! The GPU context: adapter selection, device creation with explicit limits, readback.
//!
//! Selection order (see [`AdapterChoice`]): discrete GPU, integrated GPU, virtual GPU, then the software
//! adapter (lavapipe on Linux, WARP on Windows). `WGCNN_ADAPTER=software|hardware|<name substring>`
//! overrides it and `WGPU_BACKEND=vulkan,metal,dx12,gl` restricts the backends (GL is otherwise tried only when no other
//! backend has a fitting adapter); a value that is not
//! understood is an [`Error::BadEnv`], never a panic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::kernels::{Kernel, Pipeline, ShaderFile};

/// llvmpipe's per-invocation loop cap (`LP_MAX_TGSI_LOOP_ITERATIONS`).
pub const LLVMPIPE_MAX_LOOP_ITERATIONS: u64 = 65_535;

/// Whether an adapter is llvmpipe (lavapipe through Vulkan, or Mesa's GL driver), whose invocations
/// stop after [`LLVMPIPE_MAX_LOOP_ITERATIONS`] loop iterations.
pub fn is_llvmpipe(info: &wgpu::AdapterInfo) -> bool {
    info.driver.contains("llvmpipe") || info.name.contains("llvmpipe")
}

/// How much work the kernels plan for one invocation and for one split reduction on an adapter: the
/// register-blocked kernels and the split reductions ask this, not fixed numbers, so a real GPU gets
/// the fast path and enough parallelism for any shape while lavapipe keeps the plans tuned for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The most loop iterations a kernel plans for one invocation: 60,000 on llvmpipe (a margin below
    /// its 65,535 cap), elsewhere the shaders' u32 loop counters.
    pub loop_iters: usize,
    /// Invocations a split reduction (the conv weight gradient) aims for before it splits rows
    /// further: 4,096 fills lavapipe's SIMD lanes on every CPU thread; a discrete GPU has tens of
    /// thousands of lanes (an H200: 132 SMs × 2,048 resident threads), an integrated one fewer.
    pub threads: usize,
    /// Elements one workgroup of a metric reduction (`sum_accumulate`, `correct_accumulate`) takes
    /// before the reduction spreads over more workgroups: 262,144 on a CPU adapter (one workgroup for
    /// any batch's metrics, as lavapipe runs workgroups on its few threads), 4,096 on a GPU.
    pub reduce_span: usize,
}

impl Budget {
    /// The budget for an adapter, from its driver (llvmpipe's loop cap) and device type. Pure, so the
    /// choices on hardware are tested with mocked adapters.
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> Budget {
        let loop_iters = if is_llvmpipe(info) { 60_000 } else { u32::MAX as usize };
        let threads = match info.device_type {
            wgpu::DeviceType::Cpu => 4096,
            wgpu::DeviceType::DiscreteGpu => 1 << 18,
            wgpu::DeviceType::IntegratedGpu | wgpu::DeviceType::VirtualGpu | wgpu::DeviceType::Other => 1 << 16,
        };
        let reduce_span = if info.device_type == wgpu::DeviceType::Cpu { 64 * 4096 } else { 64 * 64 };
        Budget { loop_iters, threads, reduce_span }
    }
}

/// What the user asked for through `WGCNN_ADAPTER`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdapterChoice {
    /// Best hardware adapter, software when there is none.
    Auto,
    /// Only a CPU (software) adapter.
    Software,
    /// Only a hardware (discrete, integrated or virtual) adapter.
    Hardware,
    /// The best adapter whose name contains this (case-insensitive).
    Name(String),
}

impl AdapterChoice {
    /// Parse a `WGCNN_ADAPTER` value.
    pub fn parse(value: &str) -> Result<Self> {
        let v = value.trim();
        match v.to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(AdapterChoice::Auto),
            "software" | "cpu" => Ok(AdapterChoice::Software),
            "hardware" | "gpu" => Ok(AdapterChoice::Hardware),
            _ => Ok(AdapterChoice::Name(v.to_string())),
        }
    }

    /// Read `WGCNN_ADAPTER` (unset means [`AdapterChoice::Auto`]).
    pub fn from_env() -> Result<Self> {
        match std::env::var("WGCNN_ADAPTER") {
            Ok(v) => Self::parse(&v),
            Err(std::env::VarError::NotPresent) => Ok(AdapterChoice::Auto),
            Err(std::env::VarError::NotUnicode(v)) => Err(Error::BadEnv {
                var: "WGCNN_ADAPTER",
                value: v.to_string_lossy().into_owned(),
                expected: "software, hardware or a name substring in UTF-8".into(),
            }),
        }
    }
}

/// Parse a `WGPU_BACKEND` list (`vulkan,metal,dx12,gl`); unknown names are an error.
pub fn parse_backends(value: &str) -> Result<wgpu::Backends> {
    let mut backends = wgpu::Backends::empty();
    for name in value.split(',').map(|s| s.trim().to_ascii_lowercase()) {
        backends |= match name.as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "gl" | "gles" | "opengl" => wgpu::Backends::GL,
            _ => {
                return Err(Error::BadEnv {
                    var: "WGPU_BACKEND",
                    value: value.to_string(),
                    expected: "a comma-separated list of vulkan, metal, dx12, gl".into(),
                })
            }
        };
    }
    Ok(backends)
}

/// The backends tried first when `WGPU_BACKEND` is unset; GL only when none of them has an adapter
/// (so a machine with only OpenGL works, and others never initialise EGL).
const PRIMARY_BACKENDS: wgpu::Backends =
    wgpu::Backends::VULKAN.union(wgpu::Backends::METAL).union(wgpu::Backends::DX12);

/// `WGPU_BACKEND` when set: the only backends to try.
fn backends_from_env() -> Result<Option<wgpu::Backends>> {
    match std::env::var("WGPU_BACKEND") {
        Ok(v) => parse_backends(&v).map(Some),
        Err(_) => Ok(None),
    }
}

async fn enumerate(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    // Backend settings from the environment, e.g. WGPU_DX12_COMPILER=dxc for the DXC compiler.
    desc.backend_options = wgpu::BackendOptions::from_env_or_default();
    wgpu::Instance::new(desc).enumerate_adapters(backends).await
}

/// The adapters `choice` may pick from: those of `WGPU_BACKEND`'s backends, else the primary ones,
/// with GL's added when none of those fits the choice.
async fn candidates(choice: &AdapterChoice, env: Option<wgpu::Backends>) -> Vec<wgpu::Adapter> {
    let mut adapters = enumerate(env.unwrap_or(PRIMARY_BACKENDS)).await;
    let infos: Vec<_> = adapters.iter().map(|a| a.get_info()).collect();
    if env.is_none() && select_adapter(&infos, choice).is_err() {
        adapters.extend(enumerate(wgpu::Backends::GL).await);
    }
    adapters
}

/// Preference rank of a device type: lower is better.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// Among adapters of one type, which backend first: on Windows DX12 (the platform's own API, where the
/// same GPU is usually also listed through Vulkan), elsewhere Vulkan or Metal; GL last.
pub fn backend_rank(b: wgpu::Backend, windows: bool) -> u8 {
    match b {
        wgpu::Backend::Dx12 if windows => 0,
        wgpu::Backend::Vulkan | wgpu::Backend::Metal => 1,
        wgpu::Backend::Dx12 => 2,
        _ => 3,
    }
}

/// Pick an adapter among `infos` for `choice`; returns its index. Pure, so it is tested without a GPU.
pub fn select_adapter(infos: &[wgpu::AdapterInfo], choice: &AdapterChoice) -> Result<usize> {
    let ok = |i: &wgpu::AdapterInfo| match choice {
        AdapterChoice::Auto => true,
        AdapterChoice::Software => i.device_type == wgpu::DeviceType::Cpu,
        AdapterChoice::Hardware => !matches!(i.device_type, wgpu::DeviceType::Cpu | wgpu::DeviceType::Other),
        AdapterChoice::Name(n) => i.name.to_lowercase().contains(&n.to_lowercase()),
    };
    let best = infos
        .iter()
        .enumerate()
        .filter(|(_, i)| ok(i))
        .min_by_key(|(idx, i)| (rank(i.device_type), backend_rank(i.backend, cfg!(windows)), *idx))
        .map(|(idx, _)| idx);
    match (best, choice) {
        (Some(i), _) => Ok(i),
        (None, AdapterChoice::Auto) => Err(Error::NoAdapter { backends: String::new() }),
        (None, c) => Err(Error::AdapterNotFound {
            wanted: match c {
                AdapterChoice::Software => "software".into(),
                AdapterChoice::Hardware => "hardware".into(),
                AdapterChoice::Name(n) => n.clone(),
                AdapterChoice::Auto => unreachable!("handled above"),
            },
            available: infos.iter().map(describe_adapter).collect(),
        }),
    }
}

/// One line naming an adapter: `name (backend, type)`.
pub fn describe_adapter(i: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
}

/// The limits wgcnn requests: WebGPU defaults (or downlevel ones when the adapter is weaker), with the
/// buffer, binding and workgroup limits raised to everything the adapter offers.
fn wanted_limits(adapter: &wgpu::Limits) -> wgpu::Limits {
    let mut l = wgpu::Limits::default();
    if !l.check_limits(adapter) {
        l = wgpu::Limits::downlevel_defaults();
    }
    l.max_storage_buffer_binding_size = adapter.max_storage_buffer_binding_size;
    l.max_buffer_size = adapter.max_buffer_size;
    l.max_storage_buffers_per_shader_stage = adapter.max_storage_buffers_per_shader_stage;
    l.max_compute_workgroup_storage_size = adapter.max_compute_workgroup_storage_size;
    l.max_compute_invocations_per_workgroup = adapter.max_compute_invocations_per_workgroup;
    l.max_compute_workgroup_size_x = adapter.max_compute_workgroup_size_x;
    l.max_compute_workgroup_size_y = adapter.max_compute_workgroup_size_y;
    l.max_compute_workgroups_per_dimension = adapter.max_compute_workgroups_per_dimension;
    l
}

/// Which implementations the graph executor launches where both exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelSet {
    /// The shape-specialised, register-blocked kernels (the default), plain ones where a shape does not
    /// fit them.
    Fast,
    /// Only the plain one-output-per-invocation kernels (the references), e.g. to measure the gain.
    Plain,
}

impl KernelSet {
    /// From `WGCNN_KERNELS` (`fast` or `plain`; unset means fast).
    pub fn from_env() -> Result<Self> {
        match std::env::var("WGCNN_KERNELS") {
            Err(_) => Ok(KernelSet::Fast),
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "fast" => Ok(KernelSet::Fast),
                "plain" => Ok(KernelSet::Plain),
                _ => Err(Error::BadEnv { var: "WGCNN_KERNELS", value: v, expected: "fast or plain".into() }),
            },
        }
    }
}

/// The lock [`Context::serial`] hands out: reentrant, so a guarded function may call another.
pub(crate) type SerialLock = Arc<parking_lot::ReentrantMutex<()>>;

/// A GPU object whose drop happens under the context's serial lock (see [`Context::serial`]): on GL,
/// releasing a buffer takes wgpu's context lock, which panics when another thread holds it for more
/// than 6 s.
pub struct Guarded<T> {
    value: Option<T>,
    lock: Option<SerialLock>,
}

impl<T> Guarded<T> {
    pub(crate) fn new(ctx: &Context, value: T) -> Self {
        Guarded { value: Some(value), lock: ctx.serial.clone() }
    }
}

impl<T> std::ops::Deref for Guarded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.value {
            Some(v) => v,
            None => unreachable!("the value is taken only by drop"),
        }
    }
}

impl<T> Drop for Guarded<T> {
    fn drop(&mut self) {
        let _guard = self.lock.as_ref().map(|l| l.lock());
        drop(self.value.take());
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Guarded<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

/// A kernel and its `override` constants.
pub(crate) type PipelineKey = (Kernel, Vec<(&'static str, u32)>);

/// The GPU device wgcnn computes on, plus the caches that make "build once" cheap.
pub struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    adapter_features: wgpu::Features,
    /// Fast or plain kernels in graphs built on this context (`WGCNN_KERNELS`).
    pub kernels: KernelSet,
    budget: Budget,
    /// On GL, the lock every GPU call of wgcnn takes (see [`Context::serial`]); none elsewhere.
    serial: Option<SerialLock>,
    pub(crate) modules: Mutex<HashMap<ShaderFile, wgpu::ShaderModule>>,
    pub(crate) pipelines: Mutex<HashMap<PipelineKey, Arc<Pipeline>>>,
    device_error: Arc<Mutex<Option<String>>>,
    created: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
}

impl Context {
    /// Create a context from the environment (`WGCNN_ADAPTER`, `WGPU_BACKEND`).
    pub fn new() -> Result<Self> {
        Self::with_choice(&AdapterChoice::from_env()?)
    }

    /// Create a context on the adapter `choice` selects.
    pub fn with_choice(choice: &AdapterChoice) -> Result<Self> {
        pollster::block_on(Self::create(choice))
    }

    async fn create(choice: &AdapterChoice) -> Result<Self> {
        let env = backends_from_env()?;
        let kernels = KernelSet::from_env()?;
        let adapters = candidates(choice, env).await;
        let infos: Vec<_> = adapters.iter().map(|a| a.get_info()).collect();
        let idx = select_adapter(&infos, choice).map_err(|e| match e {
            Error::NoAdapter { .. } => Error::NoAdapter {
                backends: match std::env::var("WGPU_BACKEND") {
                    Ok(v) if !v.trim().is_empty() => format!(
                        "{:?}, restricted by WGPU_BACKEND={v:?}: this build has Vulkan (Linux, Windows), \
                         Metal (macOS), DX12 (Windows) and GL (EGL on Linux, WGL on Windows), each only on its \
                         platform; unset WGPU_BACKEND to try them all",
                        env.unwrap_or(PRIMARY_BACKENDS)
                    ),
                    _ => format!("{:?}", PRIMARY_BACKENDS | wgpu::Backends::GL),
                },
            },
            e => e,
        })?;
        let adapter = &adapters[idx];
        let info = infos[idx].clone();
        let adapter_limits = adapter.limits();
        let adapter_features = adapter.features();
        let required_limits = wanted_limits(&adapter_limits);
        let required_features = adapter_features & wgpu::Features::TIMESTAMP_QUERY;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgcnn"),
                required_features,
                required_limits: required_limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::RequestDevice(e.to_string()))?;
        let device_error = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&device_error);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("wgpu: {e}");
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        log::info!("adapter: {}", describe_adapter(&info));
        let budget = Budget::for_adapter(&info);
        let serial = (info.backend == wgpu::Backend::Gl).then(|| Arc::new(parking_lot::ReentrantMutex::new(())));
        Ok(Context {
            device,
            queue,
            info,
            limits: required_limits,
            features: required_features,
            adapter_features,
            kernels,
            budget,
            serial,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            device_error,
            created: std::sync::atomic::AtomicU64::new(0),
            bytes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// GPU objects (buffers, bind groups, layouts, pipelines, shader modules) wgcnn has created through
    /// this context. Every creation in the crate goes through a path that counts, so tests can check
    /// that a training step creates nothing.
    pub fn objects_created(&self) -> u64 {
        self.created.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes of GPU buffers wgcnn has allocated through this context for tensors and kernel params
    /// (readback staging buffers, which live only during a read, are not counted).
    pub fn bytes_allocated(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn count_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn count_created(&self, n: u64) {
        self.created.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// True when running on a CPU (software) adapter such as lavapipe.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The most loop iterations one shader invocation may run. llvmpipe (lavapipe) silently stops
    /// every invocation after 65,535 loop iterations in total (measured: a loop summing 4,194,304
    /// ones in 64 threads returned 131,070), so launchers check their work against this and split
    /// long reductions. Other adapters have no such cap.
    pub fn max_loop_iterations(&self) -> u64 {
        if is_llvmpipe(&self.info) {
            LLVMPIPE_MAX_LOOP_ITERATIONS
        } else {
            u64::MAX
        }
    }

    /// Serialise GPU work on GL: wgpu's GL backend shares one context behind a lock, and a thread that
    /// waits more than 6 s for it panics ("Could not lock adapter context"), which a long submit of one
    /// thread causes in another that only wants to create or release a buffer. wgcnn's own GPU calls
    /// (buffer creation, writes, pipelines, submits, waits, readback, and the release of buffers and
    /// launches) hold this reentrant lock instead, which waits without a deadline. `None` on the other
    /// backends, whose queues are safe to share between threads.
    pub(crate) fn serial(&self) -> Option<parking_lot::ReentrantMutexGuard<'_, ()>> {
        self.serial.as_deref().map(|l| l.lock())
    }

    /// The work the kernels plan per invocation and per split reduction on this adapter
    /// ([`Budget::for_adapter`] unless replaced by [`Context::with_budget`]).
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// This context with another kernel budget, e.g. to run a discrete GPU's plans on lavapipe in
    /// tests. A plan whose loops pass [`Context::max_loop_iterations`] still fails at launch.
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// Features the adapter offers (not all are requested).
    pub fn adapter_features(&self) -> wgpu::Features {
        self.adapter_features
    }

    /// Return the first device error reported since the last call, if any.
    pub fn check_device_error(&self) -> Result<()> {
        let taken = self.device_error.lock().ok().and_then(|mut s| s.take());
        match taken {
            Some(e) => Err(Error::Device(e)),
            None => Ok(()),
        }
    }

    /// Block until all submitted work has finished.
    pub fn wait(&self) -> Result<()> {
        let _serial = self.serial();
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Device(e.to_string()))?;
        self.check_device_error()
    }

    /// Copy `size` bytes of `buffer` (which needs `COPY_SRC`) to the host.
    pub fn read_bytes(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        if size == 0 {
            return Ok(Vec::new());
        }
        let _serial = self.serial();
        self.count_created(1);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgcnn.readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("wgcnn.readback") });
        enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            // The receiver only goes away if this function already returned with an error.
            let _ = tx.send(r);
        });
        self.wait()?;
        match pollster::block_on(rx.receive()) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(Error::Readback(e.to_string())),
            None => return Err(Error::Readback("the map callback never ran".into())),
        }
        let bytes = slice.get_mapped_range().map_err(|e| Error::Readback(e.to_string()))?.to_vec();
        staging.unmap();
        Ok(bytes)
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("adapter", &describe_adapter(&self.info)).finish()
    }
}
