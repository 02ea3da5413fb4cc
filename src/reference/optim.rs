use crate::kernels::optim::{AdamParams, SgdParams};

/// One `torch.optim.SGD` step in place, from the same params struct the kernel receives.
pub fn sgd_update(p: &SgdParams, grad: &[f32], param: &mut [f32], buf: &mut [f32]) {
    for i in 0..grad.len() {
        let w = param[i];
        let mut g = grad[i];
        if p.weight_decay != 0.0 {
            g += p.weight_decay * w;
        }
        if p.momentum != 0.0 {
            let b = if p.first_step != 0 { g } else { p.momentum * buf[i] + p.one_minus_dampening * g };
            buf[i] = b;
            g = if p.nesterov != 0 { g + p.momentum * b } else { b };
        }
        param[i] = w - p.lr * g;
    }
}

/// One `torch.optim.Adam` step in place, from the same params struct the kernel receives.
pub fn adam_update(p: &AdamParams, grad: &[f32], param: &mut [f32], m: &mut [f32], v: &mut [f32]) {
    for i in 0..grad.len() {
        let w = param[i];
        let mut g = grad[i];
        if p.weight_decay != 0.0 {
            g += p.weight_decay * w;
        }
        m[i] += p.one_minus_beta1 * (g - m[i]);
        v[i] = p.beta2 * v[i] + p.one_minus_beta2 * g * g;
        let denom = v[i].sqrt() / p.bias_correction2_sqrt + p.eps;
        param[i] = w - p.step_size * (m[i] / denom);
    }
}
