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
    /// The updates, each over a run of consecutive trainable tensors (one over the whole arena
    /// unless some are frozen), with its length in elements.
    pub(crate) launches: Vec<(Launch, usize)>,
}

impl OptimizerState {
    pub fn new(ctx: &Context, opt: Optimizer, params: &Params) -> Result<OptimizerState> {
        let copies = opt.state_names().len();
        let state = Arena::new(ctx, "optim", &params.specs, copies)?;
        let mut o = OptimizerState { opt, state, step: 0, launches: Vec::new() };
        o.freeze(ctx, params, &vec![false; params.specs.len()])?;
        Ok(o)
    }

    /// Update only the tensors not `frozen` (one flag per parameter, in spec order): those are left
    /// exactly as they are, with their optimizer state. The updates run over each run of consecutive
    /// trainable tensors (their views are aligned, and the zero padding between them stays zero).
    pub fn freeze(&mut self, ctx: &Context, params: &Params, frozen: &[bool]) -> Result<()> {
        if frozen.len() != params.specs.len() {
            return Err(crate::error::Error::Train(format!(
                "{} frozen flags for {} parameters",
                frozen.len(),
                params.specs.len()
            )));
        }
        let opt = self.opt;
        let (p, g) = (&params.values.whole, &params.grads.whole);
        // Runs [first element, end) of trainable tensors.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut open = false;
        for (v, &f) in params.values.views.iter().zip(frozen) {
            let (start, end) = ((v.offset / 4) as usize, (v.offset / 4) as usize + v.len());
            match (f, open) {
                (true, _) => open = false,
                (false, true) => runs.last_mut().expect("an open run").1 = end,
                (false, false) => {
                    runs.push((start, end));
                    open = true;
                }
            }
        }
        if !frozen.contains(&true) {
            runs = vec![(0, p.len())];
        }
        let view = |t: &Tensor, base: u64, (a, b): (usize, usize), label: String| Tensor {
            offset: t.offset + base + 4 * a as u64,
            shape: vec![b - a],
            label,
            ..t.clone()
        };
        let mut launches = Vec::with_capacity(runs.len());
        for (i, &r) in runs.iter().enumerate() {
            let n = |s: &str| if runs.len() > 1 { format!("optim.{s}{i}") } else { format!("optim.{s}") };
            let (gv, pv) = (view(g, 0, r, n("grad")), view(p, 0, r, n("param")));
            let half = |k: usize| view(&self.state.whole, k as u64 * p.byte_len(), r, n(opt.state_names()[k]));
            let launch = match opt {
                Optimizer::Sgd(s) => sgd_update(ctx, &n("sgd"), &s, self.step.max(1), &gv, &pv, &half(0))?,
                Optimizer::Adam(a) => adam_update(ctx, &n("adam"), &a, self.step.max(1), &gv, &pv, &half(0), &half(1))?,
            };
            launches.push((launch, r.1 - r.0));
        }
        self.launches = launches;
        Ok(())
    }

    /// Set the learning rate of the coming updates (a schedule, like `torch.optim.lr_scheduler`).
    pub fn set_lr(&mut self, lr: f64) {
        match &mut self.opt {
            Optimizer::Sgd(s) => s.lr = lr,
            Optimizer::Adam(a) => a.lr = lr,
        }
    }

    /// Prepare the params of the next update (step + 1) and count it.
    pub(crate) fn advance(&mut self, ctx: &Context) -> Result<()> {
        self.step += 1;
        for (launch, len) in &self.launches {
            match self.opt {
                Optimizer::Sgd(s) => launch.set_params(ctx, &s.params(*len, self.step)?),
                Optimizer::Adam(a) => launch.set_params(ctx, &a.params(*len, self.step)?),
            }
        }
        Ok(())
    }
}
