//! The optimizer of a training run: which one (`torch.optim` semantics), its state arena and its one
//! update launch over every parameter.

use crate::context::Context;
use crate::error::Result;
use crate::graph::{Arena, Params};
use crate::kernels::optim::{adam_update, sgd_update, Adam, Sgd};
use crate::kernels::Launch;
use crate::tensor::Tensor;

/// Which optimizer, with `torch.optim` semantics.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
}

impl Optimizer {
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd(_) => "sgd",
            Optimizer::Adam(_) => "adam",
        }
    }
    /// The learning rate the updates start from.
    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::Sgd(s) => s.lr,
            Optimizer::Adam(a) => a.lr,
        }
    }
    /// Check every setting in the precision the update kernel uses, before any GPU work.
    pub fn check(&self) -> Result<()> {
        let checked = match self {
            Optimizer::Sgd(s) => s.params(1, 1).map(|_| ()),
            Optimizer::Adam(a) => a.params(1, 1).map(|_| ()),
        };
        checked.map_err(|e| match e {
            crate::Error::Shape { detail, .. } => crate::Error::Train(format!("{}: {detail}", self.name())),
            e => e,
        })
    }
    /// Names of the state tensors per parameter, as PyTorch's optimizer `state` calls them.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Sgd(_) => &["momentum_buffer"],
            Optimizer::Adam(_) => &["exp_avg", "exp_avg_sq"],
        }
    }
}

/// The optimizer's state arena (one copy of the parameter layout per state tensor) and its one launch.
pub struct OptimizerState {
    pub opt: Optimizer,
    pub state: Arena,
    /// Updates applied so far (PyTorch's `step`).
    pub step: u64,
    pub(crate) launch: Launch,
}

impl OptimizerState {
    pub fn new(ctx: &Context, opt: Optimizer, params: &Params) -> Result<OptimizerState> {
        let copies = opt.state_names().len();
        let state = Arena::new(ctx, "optim", &params.specs, copies)?;
        let (p, g) = (&params.values.whole, &params.grads.whole);
        // Views of the state arena's halves, each the size of the parameter arena.
        let half = |i: usize| Tensor {
            offset: i as u64 * p.byte_len(),
            shape: p.shape.clone(),
            label: format!("optim.{}", opt.state_names()[i]),
            ..state.whole.clone()
        };
        let launch = match opt {
            Optimizer::Sgd(s) => sgd_update(ctx, "optim.sgd", &s, 1, g, p, &half(0))?,
            Optimizer::Adam(a) => adam_update(ctx, "optim.adam", &a, 1, g, p, &half(0), &half(1))?,
        };
        Ok(OptimizerState { opt, state, step: 0, launch })
    }

    /// Set the learning rate of the coming updates (a schedule, like `torch.optim.lr_scheduler`).
    pub fn set_lr(&mut self, lr: f64) {
        match &mut self.opt {
            Optimizer::Sgd(s) => s.lr = lr,
            Optimizer::Adam(a) => a.lr = lr,
        }
    }

    /// Prepare the params of the next update (step + 1) and count it.
    pub(crate) fn advance(&mut self, ctx: &Context, len: usize) -> Result<()> {
        self.step += 1;
        match self.opt {
            Optimizer::Sgd(s) => self.launch.set_params(ctx, &s.params(len, self.step)?),
            Optimizer::Adam(a) => self.launch.set_params(ctx, &a.params(len, self.step)?),
        }
        Ok(())
    }
}
