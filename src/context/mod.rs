//! The GPU context: adapter selection, device creation with explicit limits, readback.
//!
//! Selection order (see [`AdapterChoice`]): discrete GPU, integrated GPU, virtual GPU, then the software
//! adapter (lavapipe on Linux, WARP on Windows). `WGCNN_ADAPTER=software|hardware|<name substring>`
//! overrides it and `WGPU_BACKEND=vulkan,metal,dx12,gl` restricts the backends (GL is otherwise tried
//! only when no other backend has a fitting adapter); a value that is not understood is an
//! [`Error::BadEnv`], never a panic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::kernels::{Kernel, Pipeline, ShaderFile};

mod adapter;
mod cache;
mod readback;
mod serial;
mod tune;

pub use adapter::{
    backend_rank, describe_adapter, is_llvmpipe, parse_backends, select_adapter, AdapterChoice, Budget,
    LLVMPIPE_MAX_LOOP_ITERATIONS,
};
use adapter::{backends_from_env, candidates, PRIMARY_BACKENDS};
pub(crate) use readback::block_on;
pub use serial::Guarded;
use serial::SerialLock;
pub use tune::{parse_tune_budget, tune_budget_from_env, TuneChoice, Tuning, TUNE_BUDGET};

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
    /// wgpu's pipeline cache and its file, where the backend has one (see `context/cache.rs`).
    pub(crate) disk_cache: Mutex<Option<cache::DiskCache>>,
    /// How launches with several variants choose one (`WGCNN_TUNE`; see `context/tune.rs`).
    tuner: Mutex<tune::Tuner>,
    /// See [`Context::uniform_dummy`].
    pub(crate) window_dummy: Mutex<Option<crate::tensor::Tensor>>,
    device_error: Arc<Mutex<Option<String>>>,
    created: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
}

impl Context {
    /// Create a context from the environment (`WGCNN_ADAPTER`, `WGPU_BACKEND`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Self> {
        Self::with_choice(&AdapterChoice::from_env()?)
    }

    /// Create a context on the adapter `choice` selects.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_choice(choice: &AdapterChoice) -> Result<Self> {
        pollster::block_on(Self::create(choice))
    }

    /// Create a context on the adapter `choice` selects, awaited: the only way in a browser, where
    /// nothing may block (there the one adapter is the browser's WebGPU).
    pub async fn create(choice: &AdapterChoice) -> Result<Self> {
        let env = backends_from_env()?;
        let kernels = KernelSet::from_env()?;
        let tuning = Tuning::from_env()?;
        let tune_budget = tune::tune_budget_from_env()?;
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
        // Subgroups natively only: the browser's WGSL compiler wants an `enable subgroups;` that naga
        // does not parse, and only the subgroup build of conv_fast.wgsl uses them (tuning variants).
        let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::PIPELINE_CACHE;
        #[cfg(not(target_arch = "wasm32"))]
        let wanted = wanted | wgpu::Features::SUBGROUP;
        let required_features = adapter_features & wanted;
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
        let disk_cache = cache::DiskCache::open(&device, &info);
        let mut tuner = tune::Tuner::new(tuning, &info);
        tuner.budget = tune_budget;
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
            disk_cache: Mutex::new(disk_cache),
            tuner: Mutex::new(tuner),
            window_dummy: Mutex::new(None),
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

    /// The device's subgroup size where subgroup operations are on (wgpu's `SUBGROUP` feature) and
    /// the adapter has one size only that divides the workgroup size (lavapipe: 8, NVIDIA: 32):
    /// what the subgroup variants of `conv2d_direct` and the weight gradients are built for. `None`
    /// elsewhere.
    pub fn subgroup_size(&self) -> Option<u32> {
        let (lo, hi) = (self.info.subgroup_min_size, self.info.subgroup_max_size);
        (self.features.contains(wgpu::Features::SUBGROUP)
            && lo == hi
            && lo.is_power_of_two()
            && crate::kernels::WORKGROUP_SIZE.is_multiple_of(lo))
        .then_some(lo)
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
}

impl Context {
    /// Save the driver's pipeline cache to its file when pipelines were compiled since it was loaded
    /// (Vulkan; see `WGCNN_PIPELINE_CACHE`). Also done when the context is dropped; a failure there
    /// is only logged. `Ok(true)` when a file was written.
    pub fn save_pipeline_cache(&self) -> Result<bool> {
        let _serial = self.serial();
        let mut slot = self.disk_cache.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_mut() {
            Some(c) => c.save(),
            None => Ok(false),
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Err(e) = self.save_pipeline_cache() {
            log::warn!("the pipeline cache was not saved: {e}");
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("adapter", &describe_adapter(&self.info)).finish()
    }
}
