//! A wgcnn model and its state as an ONNX graph (opset 17, IR 8).
//!
//! - The input is `input`, `[N, C, H, W]` float32 with the batch symbolic (`dim_param` "N"), already
//!   prepared as the checkpoint records (x = (pixel / 255 − mean[c]) / std[c]); the preparation is in
//!   the metadata (`wgcnn.preparation`, and in words under `input_preparation`), not in the graph.
//! - The output is `logits`, `[N, classes]` (no softmax).
//! - Each layer is one node named as the layer, whose output value carries the layer's name; its
//!   tensors are initializers under their PyTorch `state_dict` names (`conv1.weight`).
//! - Batch-norm is an inference-mode `BatchNormalization` with the running statistics (not folded into
//!   the conv: the importer then gets back the same tensors, and PyTorch's names stay meaningful).
//! - Dropout is left out (the identity in inference); the model file in the metadata keeps it, so
//!   importing the file gives back the same model.

use crate::checkpoint::{model_metadata, MODEL_KEY};
use crate::data::prep::{Preparation, PREPARATION_KEY};
use crate::error::{Error, Result};
use crate::kernels::activation::Activation;
use crate::kernels::pool::PoolKind;
use crate::model::{LayerOp, ModelSpec, ModelState, INPUT};

use super::proto::{Attribute, Dim, Graph, Model, Node, Tensor, ValueInfo, FLOAT};

/// The opset wgcnn writes.
pub const OPSET: i64 = 17;
/// The IR version of opset 17.
pub const IR_VERSION: i64 = 8;
/// Names of the graph's input and output.
pub const INPUT_NAME: &str = "input";
pub const OUTPUT_NAME: &str = "logits";
/// The symbolic batch dimension.
pub const BATCH_DIM: &str = "N";

/// The ONNX model of `spec` with `state`'s tensors (and `prep` in the metadata).
pub fn to_onnx(spec: &ModelSpec, state: &ModelState, prep: &Preparation) -> Result<Model> {
    let bad = |detail: String| Error::Model { at: String::new(), detail };
    let params = spec.params();
    let buffers = spec.buffers();
    if state.params.len() != params.len() || state.buffers.len() != buffers.len() {
        return Err(bad("the state does not hold this model's tensors".into()));
    }
    let mut initializers = Vec::new();
    for (p, v) in params.iter().zip(&state.params).chain(buffers.iter().zip(&state.buffers)) {
        if v.len() != p.len() {
            return Err(bad(format!("{} holds {} values, its shape {:?} needs {}", p.name, v.len(), p.shape, p.len())));
        }
        initializers.push(Tensor::float(&p.name, &p.shape, v));
    }
    let has = |name: &str| params.iter().chain(&buffers).any(|p| p.name == name);
    // The value each layer's output is read as: its own name, or (dropout) what it reads.
    let mut alias: Vec<(String, String)> = vec![(INPUT.to_string(), INPUT_NAME.to_string())];
    let value_of = |alias: &[(String, String)], layer: &str| -> String {
        alias.iter().rev().find(|(l, _)| l == layer).map_or_else(|| layer.to_string(), |(_, v)| v.clone())
    };
    let last = spec.layers.len() - 1;
    let mut nodes = Vec::new();
    for (i, l) in spec.layers.iter().enumerate() {
        let inputs: Vec<String> = l.inputs.iter().map(|x| value_of(&alias, x)).collect();
        let out = if i == last { OUTPUT_NAME.to_string() } else { l.name.clone() };
        let node = |op: &str, mut ins: Vec<String>, attributes: Vec<Attribute>| Node {
            name: l.name.clone(),
            op_type: op.to_string(),
            domain: String::new(),
            inputs: {
                ins.retain(|s| !s.is_empty());
                ins
            },
            outputs: vec![out.clone()],
            attributes,
        };
        let tensor = |suffix: &str| -> String {
            let n = format!("{}.{suffix}", l.name);
            if has(&n) {
                n
            } else {
                String::new()
            }
        };
        let x = inputs.first().cloned().unwrap_or_default();
        let n = match l.op {
            LayerOp::Conv2d(c) => {
                let (k, s, p) = (c.kernel_size as i64, c.stride as i64, c.padding as i64);
                node(
                    "Conv",
                    vec![x, tensor("weight"), tensor("bias")],
                    vec![
                        Attribute::ints("dilations", &[1, 1]),
                        Attribute::int("group", 1),
                        Attribute::ints("kernel_shape", &[k, k]),
                        Attribute::ints("pads", &[p, p, p, p]),
                        Attribute::ints("strides", &[s, s]),
                    ],
                )
            }
            LayerOp::Linear(_) => node(
                "Gemm",
                vec![x, tensor("weight"), tensor("bias")],
                vec![Attribute::float("alpha", 1.0), Attribute::float("beta", 1.0), Attribute::int("transB", 1)],
            ),
            LayerOp::Act(a) => {
                let op = match a {
                    Activation::Relu => "Relu",
                    Activation::Tanh => "Tanh",
                    Activation::Sigmoid => "Sigmoid",
                };
                node(op, vec![x], vec![])
            }
            LayerOp::Pool(p) => {
                let (k, s, pad) = (p.kernel_size as i64, p.stride as i64, p.padding as i64);
                let mut attrs = vec![
                    Attribute::int("ceil_mode", 0),
                    Attribute::ints("kernel_shape", &[k, k]),
                    Attribute::ints("pads", &[pad, pad, pad, pad]),
                    Attribute::ints("strides", &[s, s]),
                ];
                match p.kind {
                    PoolKind::Max => node("MaxPool", vec![x], attrs),
                    PoolKind::Avg => {
                        // wgcnn (as PyTorch by default) counts padded cells in an average.
                        attrs.insert(1, Attribute::int("count_include_pad", 1));
                        node("AveragePool", vec![x], attrs)
                    }
                }
            }
            LayerOp::Flatten => node("Flatten", vec![x], vec![Attribute::int("axis", 1)]),
            LayerOp::Add => node("Add", inputs.clone(), vec![]),
            LayerOp::Concat => node("Concat", inputs.clone(), vec![Attribute::int("axis", 1)]),
            LayerOp::GlobalAvgPool => node("GlobalAveragePool", vec![x], vec![]),
            LayerOp::BatchNorm2d(b) => node(
                "BatchNormalization",
                vec![x, tensor("weight"), tensor("bias"), tensor("running_mean"), tensor("running_var")],
                // ONNX's momentum weighs the running value (PyTorch's the new one).
                vec![
                    Attribute::float("epsilon", b.eps),
                    Attribute::float("momentum", (1.0 - f64::from(b.momentum)) as f32),
                ],
            ),
            LayerOp::Dropout(_) if i == last => node("Identity", vec![x], vec![]),
            LayerOp::Dropout(_) => {
                alias.push((l.name.clone(), x));
                continue;
            }
        };
        nodes.push(n);
    }
    let [c, h, w] = spec.input;
    let dims = |rest: &[usize]| {
        let mut d = vec![Dim::Param(BATCH_DIM.into())];
        d.extend(rest.iter().map(|&v| Dim::Value(v as i64)));
        Some(d)
    };
    let graph = Graph {
        name: spec.name.clone(),
        nodes,
        initializers,
        inputs: vec![ValueInfo { name: INPUT_NAME.into(), elem_type: FLOAT, shape: dims(&[c, h, w]) }],
        outputs: vec![ValueInfo { name: OUTPUT_NAME.into(), elem_type: FLOAT, shape: dims(&[spec.classes]) }],
    };
    let mut metadata: Vec<(String, String)> =
        model_metadata(spec).into_iter().filter(|(k, _)| k == MODEL_KEY || k == "wgcnn.model").collect();
    metadata.push((PREPARATION_KEY.into(), prep.to_json()));
    metadata.push(("input_preparation".into(), describe_preparation(prep)));
    metadata.push(("classes".into(), prep.classes.join(",")));
    Ok(Model {
        ir_version: IR_VERSION,
        producer_name: "wgcnn".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "{}: input [N, {c}, {h}, {w}] float32, prepared as input_preparation says; output logits [N, {}]",
            spec.name, spec.classes
        ),
        opsets: vec![(String::new(), OPSET)],
        graph,
        metadata,
    })
}

/// The preparation in words, for readers of the metadata.
fn describe_preparation(p: &Preparation) -> String {
    let list = |v: &[f32]| v.iter().map(|x| format!("{x}")).collect::<Vec<_>>().join(", ");
    format!(
        "NCHW float32; each channel c of a picture's pixels x (0-255): (x / 255 - mean[c]) / std[c] with mean [{}] \
         and std [{}]; pictures {:?}",
        list(&p.mean),
        list(&p.std),
        p.pictures
    )
}
