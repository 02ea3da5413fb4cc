//! The CPU reference trainer: a model's training graph interpreted on the CPU.

use wgcnn::ir::{autodiff::autodiff, build, interp, Role, ValueId};
use wgcnn::kernels::activation::Activation;
use wgcnn::model::{init_params, ModelSpec};
use wgcnn::ops::{ActOp, Op};
use wgcnn::reference as cpu;
use wgcnn::train::Optimizer;

use super::to_f64;

/// The CPU reference trainer: the model's training graph (forward + autodiff, no fusion) interpreted
/// in f64 with the reference kernels, then the f32 optimizer references. The spec of one GPU step.
pub struct RefTrainer {
    pub spec: ModelSpec,
    pub params: Vec<Vec<f32>>,
    /// The model's buffers (running statistics), updated by each step's forward.
    pub buffers: Vec<Vec<f64>>,
    pub state: Vec<Vec<f32>>,
    pub opt: Optimizer,
    pub step: u64,
    /// The smallest |input| of any ReLU in the last step's forward: how far the step was from a kink,
    /// where f32 rounding may pick the other side (and the gradients legitimately differ).
    pub relu_margin: f64,
}

impl RefTrainer {
    /// One step on `x` (already /255) and `labels`: returns the mean loss and the reference gradients.
    /// The update uses `use_grads` when given (the GPU's own gradients), else the reference ones.
    pub fn step(&mut self, x: &[f64], labels: &[u32], use_grads: Option<&[Vec<f32>]>) -> (f64, Vec<Vec<f64>>) {
        let n = labels.len();
        let f = build::forward(&self.spec, n, true).unwrap();
        let mut ir = f.ir;
        autodiff(&mut ir).unwrap();
        let mut feeds = vec![(f.input, x.to_vec()), (f.labels, labels.iter().map(|&l| f64::from(l)).collect())];
        // Dropout's [seed, step] pair, as the GPU trainer writes it (seed 0 unless set; steps from 1).
        feeds.extend(f.step.map(|s| (s, vec![0.0, (self.step + 1) as f64])));
        feeds.extend(ir.params().into_iter().zip(&self.params).map(|(v, p)| (v, to_f64(p))));
        let buffer = |k: usize| ValueId(ir.values.iter().position(|v| v.role == Role::Buffer(k)).unwrap() as u32);
        feeds.extend(self.buffers.iter().enumerate().map(|(k, b)| (buffer(k), b.clone())));
        let values = interp::run(&ir, &feeds).unwrap();
        let relu = Op::Act(ActOp::Forward(Activation::Relu));
        self.relu_margin = ir
            .nodes
            .iter()
            .filter(|n| n.op == relu)
            .flat_map(|n| values.get(n.inputs[0]).unwrap().iter().map(|v| v.abs()))
            .fold(f64::INFINITY, f64::min);
        for k in 0..self.buffers.len() {
            self.buffers[k] = values.get(buffer(k)).unwrap().to_vec();
        }
        let mut grads: Vec<Vec<f64>> = vec![Vec::new(); self.params.len()];
        for (i, v) in ir.values.iter().enumerate() {
            if let Role::ParamGrad(k) = v.role {
                grads[k] = values.get(ValueId(i as u32)).unwrap().to_vec();
            }
        }
        let loss = values.get(f.loss).unwrap().iter().sum::<f64>() / n as f64;
        self.step += 1;
        for (i, g) in grads.iter().enumerate() {
            let g: Vec<f32> = match use_grads {
                Some(gpu) => gpu[i].clone(),
                None => g.iter().map(|&v| v as f32).collect(),
            };
            let len = g.len();
            match self.opt {
                Optimizer::Sgd(s) => {
                    cpu::sgd_update(&s.params(len, self.step).unwrap(), &g, &mut self.params[i], &mut self.state[i])
                }
                Optimizer::Adam(a) => {
                    let (m, v) = self.state.split_at_mut(self.params.len());
                    cpu::adam_update(&a.params(len, self.step).unwrap(), &g, &mut self.params[i], &mut m[i], &mut v[i])
                }
            }
        }
        (loss, grads)
    }
}

impl RefTrainer {
    /// A reference trainer starting from `init`, the model's buffers at their defaults.
    pub fn new(spec: &ModelSpec, init: &[Vec<f32>], opt: Optimizer) -> RefTrainer {
        let copies = if matches!(opt, Optimizer::Adam(_)) { 2 } else { 1 };
        let state = (0..copies).flat_map(|_| init.iter().map(|p| vec![0.0f32; p.len()])).collect();
        let buffers = init_params(&spec.buffers(), 0).iter().map(|b| to_f64(b)).collect();
        RefTrainer {
            spec: spec.clone(),
            params: init.to_vec(),
            buffers,
            state,
            opt,
            step: 0,
            relu_margin: f64::INFINITY,
        }
    }
}
