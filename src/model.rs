//! Layer specs that the graph executor turns into ops. LeNet-5 first; parameters are named and laid out
//! as PyTorch's `state_dict()` of the equivalent module names them.

use crate::kernels::activation::Activation;
use crate::kernels::loss::LossKind;
use crate::kernels::pool::PoolKind;
use crate::rng::Rng;

/// One layer of a sequential model.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// `name.weight [c_out, c_in, k, k]`, `name.bias [c_out]`.
    Conv2d {
        name: &'static str,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    },
    Act(Activation),
    Pool {
        kind: PoolKind,
        k: usize,
        stride: usize,
    },
    /// `[n, c, h, w]` → `[n, c·h·w]` (a view; no data moves).
    Flatten,
    /// `name.weight [out_f, in_f]`, `name.bias [out_f]`.
    Linear {
        name: &'static str,
        in_f: usize,
        out_f: usize,
    },
}

/// A learnable tensor: its PyTorch name, shape and fan-in (for the default initialisation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub fan_in: usize,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A model: input shape `[c, h, w]`, layers ending in `classes` logits, and the loss.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub name: &'static str,
    pub input: [usize; 3],
    pub classes: usize,
    pub layers: Vec<Layer>,
    pub loss: LossKind,
}

/// The choices `wgcnn train` exposes for LeNet-5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeNetConfig {
    pub activation: Activation,
    pub pool: PoolKind,
    pub loss: LossKind,
}

impl Default for LeNetConfig {
    fn default() -> Self {
        LeNetConfig { activation: Activation::Relu, pool: PoolKind::Max, loss: LossKind::CrossEntropy }
    }
}

/// LeNet-5 on 28×28 grey images: conv 6@5×5 pad 2 → act → pool 2 → conv 16@5×5 → act → pool 2 →
/// FC 120 → act → FC 84 → act → FC 10.
pub fn lenet5(cfg: LeNetConfig) -> ModelSpec {
    let act = Layer::Act(cfg.activation);
    let pool = Layer::Pool { kind: cfg.pool, k: 2, stride: 2 };
    ModelSpec {
        name: "lenet5",
        input: [1, 28, 28],
        classes: 10,
        layers: vec![
            Layer::Conv2d { name: "conv1", c_in: 1, c_out: 6, k: 5, stride: 1, pad: 2 }, // [n, 6, 28, 28]
            act.clone(),
            pool.clone(),                                                                 // [n, 6, 14, 14]
            Layer::Conv2d { name: "conv2", c_in: 6, c_out: 16, k: 5, stride: 1, pad: 0 }, // [n, 16, 10, 10]
            act.clone(),
            pool,           // [n, 16, 5, 5]
            Layer::Flatten, // [n, 400]
            Layer::Linear { name: "fc1", in_f: 400, out_f: 120 },
            act.clone(),
            Layer::Linear { name: "fc2", in_f: 120, out_f: 84 },
            act,
            Layer::Linear { name: "fc3", in_f: 84, out_f: 10 }, // [n, 10] logits
        ],
        loss: cfg.loss,
    }
}

impl ModelSpec {
    /// Parameters in `state_dict()` order.
    pub fn params(&self) -> Vec<ParamSpec> {
        let mut out = Vec::new();
        for l in &self.layers {
            let (name, wshape, fan_in, bias) = match *l {
                Layer::Conv2d { name, c_in, c_out, k, .. } => (name, vec![c_out, c_in, k, k], c_in * k * k, c_out),
                Layer::Linear { name, in_f, out_f } => (name, vec![out_f, in_f], in_f, out_f),
                _ => continue,
            };
            out.push(ParamSpec { name: format!("{name}.weight"), shape: wshape, fan_in });
            out.push(ParamSpec { name: format!("{name}.bias"), shape: vec![bias], fan_in });
        }
        out
    }
}

/// PyTorch's default initialisation of `nn.Conv2d` / `nn.Linear`, from `seed`: weights
/// Kaiming-uniform with a = √5, i.e. U(−1/√fan_in, 1/√fan_in), and biases U(−1/√fan_in, 1/√fan_in).
/// (The distribution is PyTorch's; the random stream is wgcnn's own.)
pub fn init_params(params: &[ParamSpec], seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    params
        .iter()
        .map(|p| {
            let bound = 1.0 / (p.fan_in as f64).sqrt();
            rng.vec_f32(p.len(), -bound, bound)
        })
        .collect()
}
