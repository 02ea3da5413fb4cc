//! Adapter selection (`WGCNN_ADAPTER`, `WGPU_BACKEND`) and the per-adapter kernel budget: pure
//! functions of adapter infos, so they are tested with mocked adapters.

use crate::error::{Error, Result};

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
    /// Whether the products take their workgroup-memory tiled kernels (`matmul_tiled`; `conv2d_tiled`
    /// for the conv forward and stride-1 input gradient; `conv2d_tiled_weight_grad`): on GPUs, whose
    /// workgroups share fast on-chip memory; not on CPU adapters, where the register-blocked kernels
    /// tuned for lavapipe's SIMD lanes are faster.
    pub tiled: bool,
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
        let cpu = info.device_type == wgpu::DeviceType::Cpu;
        let reduce_span = if cpu { 64 * 4096 } else { 64 * 64 };
        Budget { loop_iters, threads, reduce_span, tiled: !cpu }
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
#[cfg(not(target_arch = "wasm32"))]
pub(super) const PRIMARY_BACKENDS: wgpu::Backends =
    wgpu::Backends::VULKAN.union(wgpu::Backends::METAL).union(wgpu::Backends::DX12);
/// In a browser: its WebGPU, the only backend a wasm build has.
#[cfg(target_arch = "wasm32")]
pub(super) const PRIMARY_BACKENDS: wgpu::Backends = wgpu::Backends::BROWSER_WEBGPU;

/// `WGPU_BACKEND` when set (and not empty): the only backends to try.
pub(super) fn backends_from_env() -> Result<Option<wgpu::Backends>> {
    match std::env::var("WGPU_BACKEND") {
        Ok(v) if !v.trim().is_empty() => parse_backends(&v).map(Some),
        _ => Ok(None),
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
pub(super) async fn candidates(choice: &AdapterChoice, env: Option<wgpu::Backends>) -> Vec<wgpu::Adapter> {
    let mut adapters = enumerate(env.unwrap_or(PRIMARY_BACKENDS)).await;
    let infos: Vec<_> = adapters.iter().map(|a| a.get_info()).collect();
    if env.is_none() && !cfg!(target_arch = "wasm32") && select_adapter(&infos, choice).is_err() {
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
