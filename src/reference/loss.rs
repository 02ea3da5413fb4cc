use super::Real;
use crate::shape::LossGeom;

/// softmax of each row, and log Σ exp of each row.
fn softmax_rows<T: Real>(g: &LossGeom, z: &[T]) -> (Vec<T>, Vec<T>) {
    let mut probs = vec![T::zero(); g.len()];
    let mut lse = Vec::with_capacity(g.n);
    for n in 0..g.n {
        let row = &z[n * g.classes..(n + 1) * g.classes];
        let m = row.iter().copied().fold(row[0], |a, b| if b > a { b } else { a });
        let s = row.iter().fold(T::zero(), |acc, &v| acc + (v - m).exp());
        for (k, &v) in row.iter().enumerate() {
            probs[n * g.classes + k] = (v - m).exp() / s;
        }
        lse.push(m + s.ln());
    }
    (probs, lse)
}

fn onehot<T: Real>(label: u32, k: usize) -> T {
    if label as usize == k {
        T::one()
    } else {
        T::zero()
    }
}

/// Per-sample cross-entropy of softmax(z) and the probabilities. Out-of-range labels give NaN.
pub fn softmax_xent_forward<T: Real>(g: &LossGeom, z: &[T], labels: &[u32]) -> (Vec<T>, Vec<T>) {
    let (probs, lse) = softmax_rows(g, z);
    let loss = (0..g.n)
        .map(|n| match labels[n] as usize {
            l if l < g.classes => lse[n] - z[n * g.classes + l],
            _ => T::from_f64(f64::NAN),
        })
        .collect();
    (loss, probs)
}

/// scale·(p − onehot).
pub fn softmax_xent_backward<T: Real>(g: &LossGeom, scale: T, probs: &[T], labels: &[u32]) -> Vec<T> {
    (0..g.len()).map(|i| (probs[i] - onehot(labels[i / g.classes], i % g.classes)) * scale).collect()
}

/// Per-sample ½ Σ (onehot − softmax(z))² and the probabilities. Out-of-range labels give NaN.
pub fn softmax_mse_forward<T: Real>(g: &LossGeom, z: &[T], labels: &[u32]) -> (Vec<T>, Vec<T>) {
    let (probs, _) = softmax_rows(g, z);
    let loss = (0..g.n)
        .map(|n| {
            if labels[n] as usize >= g.classes {
                return T::from_f64(f64::NAN);
            }
            let mut acc = T::zero();
            for k in 0..g.classes {
                let d = onehot::<T>(labels[n], k) - probs[n * g.classes + k];
                acc += d * d;
            }
            T::from_f64(0.5) * acc
        })
        .collect();
    (loss, probs)
}

/// scale · p_j ((p_j − t_j) − Σ_k (p_k − t_k) p_k).
pub fn softmax_mse_backward<T: Real>(g: &LossGeom, scale: T, probs: &[T], labels: &[u32]) -> Vec<T> {
    let mut dz = vec![T::zero(); g.len()];
    for n in 0..g.n {
        let row = &probs[n * g.classes..(n + 1) * g.classes];
        let dot = row.iter().enumerate().fold(T::zero(), |acc, (k, &p)| acc + (p - onehot(labels[n], k)) * p);
        for (j, &p) in row.iter().enumerate() {
            dz[n * g.classes + j] = p * ((p - onehot(labels[n], j)) - dot) * scale;
        }
    }
    dz
}
