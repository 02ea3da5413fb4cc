//! The forward graph of a model for one batch size: a node per layer (views included), parameters as
//! values named as PyTorch names them, and the loss on the last layer's output.

use std::collections::HashMap;

use crate::error::{shape_err, Result};
use crate::ir::{in_node, Ir, Role, ValueId};
use crate::kernels::pool::PoolKind;
use crate::model::{Init, Layer, LayerOp, ModelSpec, ParamSpec, INPUT};
use crate::ops::{ActOp, AddOp, BatchNormOp, ConcatOp, ConvOp, DropoutOp, LinearOp, LossOp, Op, PoolOp, ViewOp};
use crate::tensor::DType;

/// A model's forward graph and the values the executor binds or reads.
#[derive(Clone, Debug)]
pub struct Forward {
    pub ir: Ir,
    /// `[batch, c, h, w]` images.
    pub input: ValueId,
    /// `[batch]` class labels (u32).
    pub labels: ValueId,
    /// `[batch, classes]`: the last layer's output.
    pub logits: ValueId,
    /// `[batch]` per-sample losses.
    pub loss: ValueId,
    /// `[batch, classes]` softmax of the logits.
    pub probs: ValueId,
    /// The `[seed, step]` pair, when a training graph has dropout.
    pub step: Option<ValueId>,
    /// Each layer's name and output, in layer order.
    pub layers: Vec<(String, ValueId)>,
    /// The parameters, in `state_dict()` order (their values have [`Role::Param`] with these indices).
    pub params: Vec<ParamSpec>,
    /// The f32 buffers (running statistics), in `state_dict()` order ([`Role::Buffer`]).
    pub buffers: Vec<ParamSpec>,
}

struct Builder {
    ir: Ir,
    params: Vec<ParamSpec>,
    buffers: Vec<ParamSpec>,
}

impl Builder {
    fn param(&mut self, name: String, shape: Vec<usize>, fan_in: usize) -> ValueId {
        self.param_init(name, shape, fan_in, Init::Uniform)
    }

    fn param_init(&mut self, name: String, shape: Vec<usize>, fan_in: usize, init: Init) -> ValueId {
        let v = self.ir.add_value(&name, &shape, DType::F32, Role::Param(self.params.len()));
        self.params.push(ParamSpec { name, shape, fan_in, init });
        v
    }

    fn buffer(&mut self, name: String, shape: Vec<usize>, init: Init) -> ValueId {
        let v = self.ir.add_value(&name, &shape, DType::F32, Role::Buffer(self.buffers.len()));
        self.buffers.push(ParamSpec { name, shape, fan_in: 0, init });
        v
    }

    /// The op and extra inputs (parameters, buffers, the step pair) of layer `l` (number `index`) on an
    /// input of shape `xs`, in its training or evaluation form.
    fn layer_op(
        &mut self,
        l: &Layer,
        index: usize,
        xs: &[usize],
        step: Option<ValueId>,
        train: bool,
    ) -> Result<(Op, Vec<ValueId>)> {
        Ok(match l.op {
            LayerOp::Conv2d(cv) => {
                if xs.len() != 4 {
                    let msg = format!("conv2d expects an input of shape [n, c, h, w], got {xs:?}");
                    return Err(in_node(&l.name, shape_err("conv2d", msg)));
                }
                let k = cv.kernel_size;
                let p = self.weights(&l.name, cv.out_channels, &[xs[1], k, k], cv.bias);
                (Op::Conv(ConvOp::Forward { stride: cv.stride, pad: cv.padding, relu: false }), p)
            }
            LayerOp::Linear(f) => {
                if xs.len() != 2 {
                    let msg = format!("linear expects an input of shape [n, features], got {xs:?} (flatten it first)");
                    return Err(in_node(&l.name, shape_err("linear", msg)));
                }
                (Op::Linear(LinearOp::Forward { relu: false }), self.weights(&l.name, f.out_features, &[xs[1]], f.bias))
            }
            LayerOp::Act(a) => (Op::Act(ActOp::Forward(a)), vec![]),
            LayerOp::Pool(p) => {
                let (k, stride, pad) = (p.kernel_size, p.stride, p.padding);
                let op = match p.kind {
                    PoolKind::Max => PoolOp::Max { k, stride, pad },
                    PoolKind::Avg => PoolOp::Avg { k, stride, pad },
                };
                (Op::Pool(op), vec![])
            }
            LayerOp::Flatten => (Op::View(ViewOp::Flatten), vec![]),
            LayerOp::Add => (Op::Add(AddOp::default()), vec![]),
            LayerOp::Concat => (Op::Concat(ConcatOp::Forward), vec![]),
            LayerOp::GlobalAvgPool => (Op::Pool(PoolOp::GlobalAvg), vec![]),
            LayerOp::BatchNorm2d(bn) => {
                if xs.len() != 4 {
                    let msg = format!("batchnorm2d expects an input of shape [n, c, h, w], got {xs:?}");
                    return Err(in_node(&l.name, shape_err("batchnorm2d", msg)));
                }
                let op = match train {
                    true => BatchNormOp::Train { eps: bn.eps, momentum: bn.momentum, relu: false },
                    false => BatchNormOp::Eval { eps: bn.eps, relu: false },
                };
                (Op::BatchNorm(op), self.batchnorm(&l.name, xs[1]))
            }
            LayerOp::Dropout(p) => match step {
                Some(s) => (Op::Dropout(DropoutOp::Forward { p, salt: index as u32 }), vec![s]),
                None => (Op::View(ViewOp::Reshape(xs.to_vec())), vec![]),
            },
        })
    }

    /// A batch-norm layer's weight, bias, running mean and running variance (`[c]` each).
    fn batchnorm(&mut self, layer: &str, c: usize) -> Vec<ValueId> {
        vec![
            self.param_init(format!("{layer}.weight"), vec![c], 0, Init::Ones),
            self.param_init(format!("{layer}.bias"), vec![c], 0, Init::Zeros),
            self.buffer(format!("{layer}.running_mean"), vec![c], Init::Zeros),
            self.buffer(format!("{layer}.running_var"), vec![c], Init::Ones),
        ]
    }

    /// Weight (and bias) of a conv or linear layer, `[out, in, k, k]` or `[out, in]`.
    fn weights(&mut self, layer: &str, out: usize, inner: &[usize], bias: bool) -> Vec<ValueId> {
        let fan_in = inner.iter().product();
        let mut shape = vec![out];
        shape.extend_from_slice(inner);
        let mut v = vec![self.param(format!("{layer}.weight"), shape, fan_in)];
        if bias {
            v.push(self.param(format!("{layer}.bias"), vec![out], fan_in));
        }
        v
    }
}

/// The forward graph of `spec` for `batch` images, in its training form (`train`: dropout draws masks)
/// or its evaluation form (dropout is the identity); the first error names the layer.
pub fn forward(spec: &ModelSpec, batch: usize, train: bool) -> Result<Forward> {
    if batch == 0 {
        return Err(shape_err("graph", "batch size 0"));
    }
    let mut b = Builder { ir: Ir::default(), params: Vec::new(), buffers: Vec::new() };
    let [c, h, w] = spec.input;
    let input = b.ir.add_value(INPUT, &[batch, c, h, w], DType::F32, Role::Input);
    let labels = b.ir.add_value("labels", &[batch], DType::U32, Role::Labels);
    let dropout = train && spec.layers.iter().any(|l| matches!(l.op, LayerOp::Dropout(_)));
    let step = dropout.then(|| b.ir.add_value("step", &[2], DType::U32, Role::Step));
    let mut by_name: HashMap<&str, ValueId> = HashMap::from([(INPUT, input)]);
    let mut layers = Vec::new();
    for (index, l) in spec.layers.iter().enumerate() {
        let ins: Vec<ValueId> = l
            .inputs
            .iter()
            .map(|i| by_name.get(i.as_str()).copied().ok_or_else(|| shape_err(&l.name, format!("no input {i:?}"))))
            .collect::<Result<_>>()?;
        let x = ins[0];
        let xs = b.ir.value(x).shape.clone();
        let (op, mut inputs) = b.layer_op(l, index, &xs, step, train)?;
        inputs.splice(0..0, ins);
        let outs = b.ir.push(&l.name, op, &inputs)?;
        by_name.insert(&l.name, outs[0]);
        layers.push((l.name.clone(), outs[0]));
    }
    let logits = layers.last().map(|l| l.1).ok_or_else(|| shape_err("graph", "no layers"))?;
    let got = &b.ir.value(logits).shape;
    if *got != [batch, spec.classes] {
        let last = &layers[layers.len() - 1].0;
        return Err(shape_err(
            last,
            format!("the last layer gives {got:?}; the loss needs the logits [{batch}, {}]", spec.classes),
        ));
    }
    let outs = b.ir.push("loss", Op::Loss(LossOp::Forward(spec.loss)), &[logits, labels])?;
    let (params, buffers) = (b.params, b.buffers);
    Ok(Forward { ir: b.ir, input, labels, logits, loss: outs[0], probs: outs[1], step, layers, params, buffers })
}
