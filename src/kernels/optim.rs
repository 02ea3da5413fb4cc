//! Optimizer updates with `torch.optim` semantics (`shaders/optim.wgsl`), one dispatch per arena.

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::{shape_err, to_u32, Result};
use crate::kernels::{Kernel, Launch};
use crate::tensor::{DType, Tensor};

/// Hyper-parameters of `torch.optim.SGD`, held in f64 like PyTorch's Python floats: the scalars the
/// kernel receives are rounded to f32 from the same f64 expressions PyTorch evaluates (e.g.
/// `1 - dampening`), so the updates match PyTorch's CPU kernels operation for operation.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

/// Hyper-parameters of `torch.optim.Adam` (no amsgrad), in f64 like [`Sgd`].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for Adam {
    /// PyTorch's defaults.
    fn default() -> Self {
        Adam { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// Mirrors `struct SgdParams` in `shaders/optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct SgdParams {
    pub len: u32,
    pub lr: f32,
    pub momentum: f32,
    pub one_minus_dampening: f32,
    pub weight_decay: f32,
    pub nesterov: u32,
    pub first_step: u32,
    pub _pad0: u32,
}

/// Mirrors `struct AdamParams` in `shaders/optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct AdamParams {
    pub len: u32,
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub step_size: f32,
    pub bias_correction2_sqrt: f32,
}

/// Check settings are finite, >= 0, and finite in f32, the precision the update kernels use (1e39
/// is a finite f64 but infinite as f32).
fn check_finite(op: &str, values: &[(&str, f64)]) -> Result<()> {
    for (name, v) in values {
        if !v.is_finite() || *v < 0.0 {
            return Err(shape_err(op, format!("{name} = {v} must be a finite number >= 0")));
        }
        if !(*v as f32).is_finite() {
            return Err(shape_err(
                op,
                format!("{name} = {v:e} overflows f32 (at most {:e}), the precision the update uses", f32::MAX),
            ));
        }
    }
    Ok(())
}

/// A scalar derived from the settings, rounded to f32, or an error when it overflows there.
fn derived_f32(op: &str, name: &str, v: f64) -> Result<f32> {
    match v as f32 {
        x if x.is_finite() => Ok(x),
        _ => Err(shape_err(
            op,
            format!("{name} = {v} overflows f32, the precision the update uses: lower the learning rate"),
        )),
    }
}

impl Sgd {
    /// Params for update number `step` (1-based), over `len` elements.
    pub fn params(&self, len: usize, step: u64) -> Result<SgdParams> {
        let op = "sgd_update";
        check_finite(
            op,
            &[
                ("lr", self.lr),
                ("momentum", self.momentum),
                ("dampening", self.dampening),
                ("weight_decay", self.weight_decay),
            ],
        )?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(shape_err(op, "Nesterov momentum requires a momentum and zero dampening"));
        }
        Ok(SgdParams {
            len: to_u32(op, "length", len)?,
            lr: self.lr as f32,
            momentum: self.momentum as f32,
            one_minus_dampening: (1.0 - self.dampening) as f32,
            weight_decay: self.weight_decay as f32,
            nesterov: u32::from(self.nesterov),
            first_step: u32::from(step <= 1),
            _pad0: 0,
        })
    }
}

impl Adam {
    /// Params for update number `step` (1-based): bias corrections computed in f64 as PyTorch does.
    pub fn params(&self, len: usize, step: u64) -> Result<AdamParams> {
        let op = "adam_update";
        check_finite(op, &[("lr", self.lr), ("eps", self.eps), ("weight_decay", self.weight_decay)])?;
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return Err(shape_err(op, format!("betas ({}, {}) must lie in [0, 1)", self.beta1, self.beta2)));
        }
        let t = step.max(1) as f64;
        let bc1 = 1.0 - self.beta1.powf(t);
        let bc2 = 1.0 - self.beta2.powf(t);
        Ok(AdamParams {
            len: to_u32(op, "length", len)?,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            beta2: self.beta2 as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            eps: self.eps as f32,
            weight_decay: self.weight_decay as f32,
            step_size: derived_f32(op, "lr / (1 - beta1^step)", self.lr / bc1)?,
            bias_correction2_sqrt: bc2.sqrt() as f32,
        })
    }
}

/// The vec4 kernel and its invocation count where the tensors' length is a multiple of 4 (the same
/// updates, element by element, as the scalar kernel), else the scalar one. (Every binding starts on
/// the storage offset alignment, which the launch checks: a whole number of vec4s.)
fn by_vec4(ctx: &Context, scalar: Kernel, vec4: Kernel, len: usize) -> (Kernel, u64) {
    if super::vec4_fits(ctx, len) {
        (vec4, (len / 4) as u64)
    } else {
        (scalar, len as u64)
    }
}

fn expect_same(op: &str, grad: &Tensor, others: &[(&str, &Tensor)]) -> Result<()> {
    grad.expect(op, "grad", DType::F32, grad.len())?;
    for (name, t) in others {
        t.expect(op, name, DType::F32, grad.len())?;
    }
    Ok(())
}

/// One SGD step over `param` (in place) with momentum buffer `buf`.
pub fn sgd_update(
    ctx: &Context,
    label: &str,
    opt: &Sgd,
    step: u64,
    grad: &Tensor,
    param: &Tensor,
    buf: &Tensor,
) -> Result<Launch> {
    let op = Kernel::SgdUpdate.entry_point();
    expect_same(op, grad, &[("param", param), ("momentum_buffer", buf)])?;
    let p = opt.params(grad.len(), step)?;
    let (kernel, threads) = by_vec4(ctx, Kernel::SgdUpdate, Kernel::SgdUpdate4, grad.len());
    Ok(ctx.launch(kernel, label, &p, &[grad, param, buf], threads, 0)?.with_work(0, 20 * grad.len() as u64))
}

/// One Adam step over `param` (in place) with moments `m`, `v`.
pub fn adam_update(
    ctx: &Context,
    label: &str,
    opt: &Adam,
    step: u64,
    grad: &Tensor,
    param: &Tensor,
    m: &Tensor,
    v: &Tensor,
) -> Result<Launch> {
    let op = Kernel::AdamUpdate.entry_point();
    expect_same(op, grad, &[("param", param), ("exp_avg", m), ("exp_avg_sq", v)])?;
    let p = opt.params(grad.len(), step)?;
    let (kernel, threads) = by_vec4(ctx, Kernel::AdamUpdate, Kernel::AdamUpdate4, grad.len());
    Ok(ctx.launch(kernel, label, &p, &[grad, param, m, v], threads, 0)?.with_work(0, 28 * grad.len() as u64))
}
