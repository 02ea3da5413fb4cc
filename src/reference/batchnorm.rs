use super::Real;
use crate::kernels::batchnorm::BnGeom;

/// Index of value `j` of channel `ch` (j over batch then pixels).
fn at(g: &BnGeom, ch: usize, j: usize) -> usize {
    ((j / g.hw) * g.c + ch) * g.hw + j % g.hw
}

/// `[Σ x, Σ (x − mean)²]` per channel (`[2, c]`), mean = Σ x / m.
pub fn batchnorm_stats<T: Real>(g: &BnGeom, x: &[T]) -> Vec<T> {
    let inv_m = T::one() / T::from_f64(g.m() as f64);
    let mut out = vec![T::zero(); 2 * g.c];
    for ch in 0..g.c {
        let mut s = T::zero();
        for j in 0..g.m() {
            s += x[at(g, ch, j)];
        }
        let mean = s * inv_m;
        let mut sq = T::zero();
        for j in 0..g.m() {
            let d = x[at(g, ch, j)] - mean;
            sq += d * d;
        }
        out[ch] = s;
        out[g.c + ch] = sq;
    }
    out
}

/// Per-channel mean and 1 / √(var + eps) from the sums of [`batchnorm_stats`].
pub fn batchnorm_moments<T: Real>(g: &BnGeom, stats: &[T], eps: f64) -> (Vec<T>, Vec<T>) {
    let inv_m = T::one() / T::from_f64(g.m() as f64);
    let mean = (0..g.c).map(|ch| stats[ch] * inv_m).collect();
    let invstd = (0..g.c).map(|ch| T::one() / (stats[g.c + ch] * inv_m + T::from_f64(eps)).sqrt()).collect();
    (mean, invstd)
}

/// y = (x − mean) · invstd · weight + bias.
pub fn batchnorm_normalize<T: Real>(g: &BnGeom, x: &[T], w: &[T], b: &[T], mean: &[T], invstd: &[T]) -> Vec<T> {
    (0..g.len())
        .map(|i| {
            let ch = (i / g.hw) % g.c;
            (x[i] - mean[ch]) * invstd[ch] * w[ch] + b[ch]
        })
        .collect()
}

/// 1 / √(var + eps) of running variances.
pub fn batchnorm_invstd<T: Real>(var: &[T], eps: f64) -> Vec<T> {
    var.iter().map(|&v| T::one() / (v + T::from_f64(eps)).sqrt()).collect()
}

/// The running statistics after one training step: momentum · batch + (1 − momentum) · running, the
/// variance unbiased (· m / (m − 1)).
pub fn batchnorm_running<T: Real>(g: &BnGeom, stats: &[T], momentum: f64, mean: &[T], var: &[T]) -> (Vec<T>, Vec<T>) {
    let (m, k) = (g.m() as f64, T::from_f64(momentum));
    let keep = T::one() - k;
    let unbias = T::from_f64(m / (m - 1.0)) / T::from_f64(m);
    let new_mean = (0..g.c).map(|ch| k * (stats[ch] / T::from_f64(m)) + keep * mean[ch]).collect();
    let new_var = (0..g.c).map(|ch| k * (stats[g.c + ch] * unbias) + keep * var[ch]).collect();
    (new_mean, new_var)
}

/// (Σ dy · x̂, Σ dy) per channel: the weight and bias gradients.
pub fn batchnorm_param_grads<T: Real>(g: &BnGeom, dy: &[T], x: &[T], stats: &[T], eps: f64) -> (Vec<T>, Vec<T>) {
    let (mean, invstd) = batchnorm_moments(g, stats, eps);
    let (mut dw, mut db) = (vec![T::zero(); g.c], vec![T::zero(); g.c]);
    for ch in 0..g.c {
        for j in 0..g.m() {
            let i = at(g, ch, j);
            dw[ch] += dy[i] * ((x[i] - mean[ch]) * invstd[ch]);
            db[ch] += dy[i];
        }
    }
    (dw, db)
}

/// dx = weight · invstd · (dy − Σdy / m − x̂ · Σ(dy · x̂) / m).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward_input<T: Real>(
    g: &BnGeom,
    dy: &[T],
    x: &[T],
    stats: &[T],
    w: &[T],
    dw: &[T],
    db: &[T],
    eps: f64,
) -> Vec<T> {
    let (mean, invstd) = batchnorm_moments(g, stats, eps);
    let inv_m = T::one() / T::from_f64(g.m() as f64);
    (0..g.len())
        .map(|i| {
            let ch = (i / g.hw) % g.c;
            let xhat = (x[i] - mean[ch]) * invstd[ch];
            w[ch] * invstd[ch] * (dy[i] - db[ch] * inv_m - xhat * (dw[ch] * inv_m))
        })
        .collect()
}

/// (w', b') of a conv (`w` is `[c_out, …]`, `b` its bias) folded with an evaluation-form batch-norm.
pub fn batchnorm_fold<T: Real>(w: &[T], b: &[T], bn: [&[T]; 4], eps: f64) -> (Vec<T>, Vec<T>) {
    let [gamma, beta, mean, var] = bn;
    let c_out = b.len();
    let per = w.len() / c_out.max(1);
    let s: Vec<T> = (0..c_out).map(|c| gamma[c] / (var[c] + T::from_f64(eps)).sqrt()).collect();
    let w2 = w.iter().enumerate().map(|(i, &v)| v * s[i / per]).collect();
    let b2 = (0..c_out).map(|c| (b[c] - mean[c]) * s[c] + beta[c]).collect();
    (w2, b2)
}
