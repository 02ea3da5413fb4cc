//! An ONNX graph made of the ops wgcnn has, as a wgcnn model and its state.
//!
//! Each node becomes one layer (or, for `Dropout`, `Identity` and a `MatMul`'s bias `Add`, none);
//! the graph must have one picture input `[N, C, H, W]` (fixed C, H, W; any batch) and one output,
//! the logits `[N, classes]`. Layers are named after the tensors they own where those have PyTorch
//! names (`conv1.weight` → `conv1`), else after the node (`/layer1/layer1.0/conv1/Conv` →
//! `layer1.0.conv1`), else after the op. Anything wgcnn cannot run is an error naming the node.
//!
//! A file wgcnn exported carries its model file in the metadata: when the graph is that model (less
//! its dropout layers, which an inference graph leaves out), the model file is taken as it was, so
//! export then import gives back the same model and the same bits.

use std::collections::HashMap;
use std::path::Path;

use crate::checkpoint::MODEL_KEY;
use crate::data::prep::{Preparation, PREPARATION_KEY};
use crate::error::{Error, Result};
use crate::kernels::activation::Activation;
use crate::kernels::loss::LossKind;
use crate::model::{BatchNorm2d, Conv2d, Layer, LayerOp, Linear, ModelSpec, ModelState, Pool2d, INPUT};

use super::proto::{AttrValue, Dim, Model, Node, Tensor, FLOAT};

/// What an import gives: the model, its state, the input preparation (the file's, or `x / 255`),
/// and notes for the user (e.g. which preparation was assumed).
pub struct Imported {
    pub spec: ModelSpec,
    pub state: ModelState,
    pub prep: Preparation,
    pub notes: Vec<String>,
}

/// Read and import an ONNX file.
/// Read and import an ONNX file; tensors stored as external data (torch's `dynamo=True` exporter
/// writes them so) are read from the files the model names beside it.
pub fn import_file(path: &Path) -> Result<Imported> {
    let bytes = std::fs::read(path).map_err(|e| crate::error::io_err(path, e))?;
    import_in(path, &bytes, path.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d }))
}

/// Import an ONNX model's bytes (`path` names it in errors); external data is refused.
pub fn import_bytes(path: &Path, bytes: &[u8]) -> Result<Imported> {
    import_in(path, bytes, None)
}

fn import_in(path: &Path, bytes: &[u8], dir: Option<&Path>) -> Result<Imported> {
    let p = path.display().to_string();
    let whole = |detail: String| Error::Onnx { path: p.clone(), at: String::new(), detail };
    let model = Model::decode(bytes).map_err(|e| whole(format!("not a readable ONNX model: {e}")))?;
    let fallback = path.file_stem().map_or_else(|| "imported".to_string(), |s| s.to_string_lossy().into_owned());
    let mut im = Importer::new(&p, &model, &fallback)?;
    im.dir = dir.map(Path::to_path_buf);
    im.run()
}

/// A node's problem, as an error naming it.
fn node_err(path: &str, n: &Node, detail: impl Into<String>) -> Error {
    let at =
        if n.name.is_empty() { format!("node ({})", n.op_type) } else { format!("node {} ({})", n.name, n.op_type) };
    Error::Onnx { path: path.to_string(), at, detail: detail.into() }
}

struct Importer<'a> {
    path: &'a str,
    model: &'a Model,
    name: String,
    /// Initializers and `Constant` outputs by name.
    consts: HashMap<&'a str, &'a Tensor>,
    constant_nodes: HashMap<String, Tensor>,
    /// How many nodes (and graph outputs) read each value.
    uses: HashMap<&'a str, usize>,
    /// The layer (or `input`) each value is the output of.
    source: HashMap<String, String>,
    layers: Vec<Layer>,
    /// Parameters and buffers by their wgcnn (PyTorch) names.
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    taken: Vec<String>,
    notes: Vec<String>,
    /// The folder external data is read from (a model read from a file), and the files read.
    dir: Option<std::path::PathBuf>,
    external: std::cell::RefCell<HashMap<String, Vec<u8>>>,
}

impl<'a> Importer<'a> {
    fn new(path: &'a str, model: &'a Model, fallback: &str) -> Result<Importer<'a>> {
        let g = &model.graph;
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for n in &g.nodes {
            for i in n.inputs.iter().filter(|i| !i.is_empty()) {
                *uses.entry(i.as_str()).or_default() += 1;
            }
        }
        for o in &g.outputs {
            *uses.entry(o.name.as_str()).or_default() += 1;
        }
        let name = model.meta("wgcnn.model").map(str::to_string).filter(|s| !s.is_empty());
        // (torch names every graph main_graph or torch_jit: the file's name says more.)
        let generic =
            |s: &String| s.is_empty() || ["main_graph", "torch_jit", "torch-jit-export"].contains(&s.as_str());
        let name = name.or_else(|| Some(g.name.clone()).filter(|s| !generic(s))).unwrap_or_else(|| fallback.into());
        Ok(Importer {
            path,
            model,
            name,
            consts: g.initializers.iter().map(|t| (t.name.as_str(), t)).collect(),
            constant_nodes: HashMap::new(),
            uses,
            source: HashMap::new(),
            layers: Vec::new(),
            tensors: HashMap::new(),
            taken: vec![INPUT.to_string()],
            notes: Vec::new(),
            dir: None,
            external: Default::default(),
        })
    }

    fn whole(&self, detail: impl Into<String>) -> Error {
        Error::Onnx { path: self.path.to_string(), at: String::new(), detail: detail.into() }
    }

    fn run(mut self) -> Result<Imported> {
        let g = &self.model.graph;
        if let Some((_, v)) = self.model.opsets.iter().find(|(d, _)| d.is_empty() || d == "ai.onnx") {
            if *v < 7 {
                return Err(self.whole(format!("opset {v} is older than wgcnn reads (7 and later)")));
            }
        }
        // One picture input (inputs with an initializer of the same name are constants, as older
        // exporters list them).
        let inputs: Vec<_> = g.inputs.iter().filter(|v| !self.consts.contains_key(v.name.as_str())).collect();
        if inputs.len() != 1 {
            let names: Vec<&str> = inputs.iter().map(|v| v.name.as_str()).collect();
            return Err(self.whole(format!(
                "the graph has {} inputs ({names:?}); a wgcnn model reads one picture tensor [N, C, H, W]",
                inputs.len()
            )));
        }
        let input = inputs[0];
        if input.elem_type != FLOAT {
            return Err(self.whole(format!("input {:?} is not float32", input.name)));
        }
        let chw = match &input.shape {
            Some(d) if d.len() == 4 => {
                let fixed: Vec<Option<usize>> = d[1..]
                    .iter()
                    .map(|x| if let Dim::Value(v) = x { usize::try_from(*v).ok().filter(|&v| v > 0) } else { None })
                    .collect();
                match fixed[..] {
                    [Some(c), Some(h), Some(w)] => [c, h, w],
                    _ => {
                        return Err(self.whole(format!(
                            "input {:?} has dynamic sizes {:?}: wgcnn needs fixed channels, height and width (only the \
                             batch may vary); export with a fixed picture size",
                            input.name,
                            &d[1..]
                        )))
                    }
                }
            }
            Some(d) => {
                return Err(self.whole(format!(
                    "input {:?} has {} dimensions, expected [N, C, H, W]",
                    input.name,
                    d.len()
                )))
            }
            None => return Err(self.whole(format!("input {:?} has no shape: wgcnn needs [N, C, H, W]", input.name))),
        };
        self.source.insert(input.name.clone(), INPUT.to_string());
        if g.outputs.len() != 1 {
            return Err(
                self.whole(format!("the graph has {} outputs; a wgcnn model has one (the logits)", g.outputs.len()))
            );
        }
        for n in &g.nodes {
            self.node(n)?;
        }
        let out = &g.outputs[0].name;
        let last = self.layers.last().map(|l| l.name.clone());
        match (self.source.get(out), &last) {
            (Some(s), Some(l)) if s == l => {}
            (Some(s), _) if s == INPUT => return Err(self.whole("the graph's output is its input: no layers")),
            (Some(s), Some(_)) => {
                return Err(self.whole(format!("the graph's output {out:?} is not the last layer's but {s}'s")))
            }
            _ => return Err(self.whole(format!("the graph's output {out:?} is made by no node"))),
        }
        let classes = match g.outputs[0].shape.as_deref() {
            Some([_, Dim::Value(c)]) if *c > 0 => *c as usize,
            _ => match self.layers.last().map(|l| l.op) {
                Some(LayerOp::Linear(f)) => f.out_features,
                _ => return Err(self.whole("the output's class count is unknown: give it the shape [N, classes]")),
            },
        };
        let layers = std::mem::take(&mut self.layers);
        let spec = ModelSpec::new(&self.name, chw, classes, LossKind::CrossEntropy, layers)
            .map_err(|e| self.whole(format!("the graph is not a model wgcnn can build: {e}")))?;
        let spec = self.with_file_model(spec);
        let state = self.state(&spec)?;
        let prep = self.preparation(&spec);
        Ok(Imported { spec, state, prep, notes: self.notes })
    }

    /// The model file in wgcnn's metadata when the graph is that model (its dropout layers aside).
    fn with_file_model(&mut self, graph: ModelSpec) -> ModelSpec {
        let Some(text) = self.model.meta(MODEL_KEY) else { return graph };
        let Ok(file) = crate::model::file::parse(text) else { return graph };
        let same = file.input == graph.input && file.classes == graph.classes && without_dropout(&file) == graph.layers;
        if same {
            file
        } else {
            self.notes.push("the file's wgcnn model description differs from its graph: the graph was used".into());
            graph
        }
    }

    fn state(&self, spec: &ModelSpec) -> Result<ModelState> {
        let take = |p: &crate::model::ParamSpec| -> Result<Vec<f32>> {
            let (shape, values) =
                self.tensors.get(&p.name).ok_or_else(|| self.whole(format!("no tensor for {}", p.name)))?;
            if *shape != p.shape {
                return Err(Error::Onnx {
                    path: self.path.to_string(),
                    at: format!("tensor {}", p.name),
                    detail: format!("shape {shape:?}, the layer needs {:?}", p.shape),
                });
            }
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(Error::Onnx {
                    path: self.path.to_string(),
                    at: format!("tensor {}", p.name),
                    detail: format!("element {i} is {}", values[i]),
                });
            }
            Ok(values.clone())
        };
        Ok(ModelState {
            params: spec.params().iter().map(take).collect::<Result<_>>()?,
            buffers: spec.buffers().iter().map(take).collect::<Result<_>>()?,
            tracked: vec![0; spec.tracked().len()],
        })
    }

    fn preparation(&mut self, spec: &ModelSpec) -> Preparation {
        if let Some(text) = self.model.meta(PREPARATION_KEY) {
            if let Ok(p) = serde_json::from_str::<Preparation>(text) {
                if p.check(spec.input, spec.classes).is_ok() {
                    return p;
                }
            }
        }
        self.notes.push(
            "the file records no wgcnn input preparation: pictures are taken as x / 255 (give --normalize, e.g. \
             imagenet for torchvision's weights)"
                .into(),
        );
        Preparation::legacy(spec.input, spec.classes)
    }

    /// A constant (initializer or `Constant` output) by name.
    fn constant(&self, name: &str) -> Option<&Tensor> {
        self.consts.get(name).copied().or_else(|| self.constant_nodes.get(name))
    }

    /// The layer (or input) value `name` comes from.
    fn src(&self, n: &Node, name: &str) -> Result<String> {
        if let Some(s) = self.source.get(name) {
            return Ok(s.clone());
        }
        if self.constant(name).is_some() {
            return Err(node_err(
                self.path,
                n,
                format!("input {name:?} is a constant where wgcnn needs a computed tensor"),
            ));
        }
        Err(node_err(self.path, n, format!("input {name:?} is made by no earlier node")))
    }

    /// A float constant input (weights), with its shape.
    fn weight(&self, n: &Node, name: &str, what: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = self.constant(name).ok_or_else(|| {
            node_err(
                self.path,
                n,
                format!("its {what} {name:?} is computed in the graph; wgcnn needs it as an initializer"),
            )
        })?;
        let err = |e: String| node_err(self.path, n, format!("{what} {name:?}: {e}"));
        let values = if t.external { t.floats_in(&self.external_bytes(t).map_err(err)?) } else { t.floats() };
        let values = values.map_err(err)?;
        Ok((t.dims.iter().map(|&d| d as usize).collect(), values))
    }

    /// The bytes of an external tensor: its slice of a file beside the model (a relative path that
    /// stays in the model's folder, as the ONNX format requires).
    fn external_bytes(&self, t: &Tensor) -> std::result::Result<Vec<u8>, String> {
        let Some(dir) = &self.dir else {
            return Err("its data is in an external file, which only a model read from a file can reach".into());
        };
        let (location, offset, length) = t.external_location()?;
        let rel = Path::new(&location);
        if rel.is_absolute() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(format!("external data location {location:?} leaves the model's folder"));
        }
        let mut files = self.external.borrow_mut();
        if !files.contains_key(&location) {
            let full = dir.join(rel);
            let bytes = std::fs::read(&full).map_err(|e| format!("its external data {}: {e}", full.display()))?;
            files.insert(location.clone(), bytes);
        }
        let bytes = &files[&location];
        let need = 4 * t.len().ok_or_else(|| format!("dims {:?} are not a size", t.dims))? as u64;
        let length = length.unwrap_or(need);
        let end = offset.checked_add(length).filter(|&e| e <= bytes.len() as u64).ok_or_else(|| {
            format!(
                "external data {location:?} at offset {offset}, {length} bytes, is past its end ({} bytes)",
                bytes.len()
            )
        })?;
        Ok(bytes[offset as usize..end as usize].to_vec())
    }

    fn int_attr(&self, n: &Node, name: &str, default: i64) -> Result<i64> {
        match n.attr(name) {
            None => Ok(default),
            Some(AttrValue::Int(v)) => Ok(*v),
            Some(_) => Err(node_err(self.path, n, format!("attribute {name} is not an integer"))),
        }
    }

    fn float_attr(&self, n: &Node, name: &str, default: f32) -> Result<f32> {
        match n.attr(name) {
            None => Ok(default),
            Some(AttrValue::Float(v)) => Ok(*v),
            Some(_) => Err(node_err(self.path, n, format!("attribute {name} is not a float"))),
        }
    }

    fn ints_attr(&self, n: &Node, name: &str) -> Result<Option<Vec<i64>>> {
        match n.attr(name) {
            None => Ok(None),
            Some(AttrValue::Ints(v)) => Ok(Some(v.clone())),
            Some(_) => Err(node_err(self.path, n, format!("attribute {name} is not a list of integers"))),
        }
    }

    /// The square window of a conv or pool: (kernel, stride, padding), each the same on both axes.
    fn window(&self, n: &Node, kernel: Option<[usize; 2]>) -> Result<(usize, usize, usize)> {
        let unsupported = |what: String| {
            node_err(
                self.path,
                n,
                format!("{what}: wgcnn's layers take square windows, equal strides and the same padding on every side"),
            )
        };
        if let Some(AttrValue::String(a)) = n.attr("auto_pad") {
            if a != "NOTSET" && a != "VALID" {
                return Err(node_err(
                    self.path,
                    n,
                    format!("auto_pad {a} is not supported; export with explicit pads"),
                ));
            }
        }
        let k = match (self.ints_attr(n, "kernel_shape")?, kernel) {
            (Some(k), _) if k.len() == 2 => [k[0], k[1]],
            (Some(k), _) => return Err(unsupported(format!("kernel_shape {k:?} is not 2-D"))),
            (None, Some(k)) => [k[0] as i64, k[1] as i64],
            (None, None) => return Err(node_err(self.path, n, "kernel_shape is missing")),
        };
        let s = self.ints_attr(n, "strides")?.unwrap_or(vec![1, 1]);
        let p = self.ints_attr(n, "pads")?.unwrap_or(vec![0, 0, 0, 0]);
        let d = self.ints_attr(n, "dilations")?.unwrap_or(vec![1, 1]);
        if d.iter().any(|&v| v != 1) {
            return Err(node_err(self.path, n, format!("dilations {d:?} are not supported")));
        }
        if k[0] != k[1] || k[0] < 1 {
            return Err(unsupported(format!("kernel {k:?}")));
        }
        if s.len() != 2 || s[0] != s[1] || s[0] < 1 {
            return Err(unsupported(format!("strides {s:?}")));
        }
        if p.len() != 4 || p.iter().any(|&v| v != p[0]) || p[0] < 0 {
            return Err(unsupported(format!("pads {p:?}")));
        }
        Ok((k[0] as usize, s[0] as usize, p[0] as usize))
    }

    /// A unique layer name for node `n`: the prefix of its first tensor's PyTorch name, else its
    /// node name's module path, else its op.
    fn layer_name(&mut self, n: &Node, tensor: Option<&str>) -> String {
        let from_tensor = tensor.and_then(|t| {
            [".weight", ".bias", ".running_mean"].iter().find_map(|s| t.strip_suffix(s)).map(str::to_string)
        });
        let from_node = module_path(&n.name);
        let base = from_tensor.or(from_node).unwrap_or_else(|| n.op_type.to_ascii_lowercase());
        let mut name = base.clone();
        let mut i = 2;
        while self.taken.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.taken.push(name.clone());
        name
    }

    /// The node's output, checking that no extra output (e.g. MaxPool's indices) is read.
    fn single_output(&self, n: &Node) -> Result<String> {
        let used: Vec<&String> =
            n.outputs.iter().skip(1).filter(|o| !o.is_empty() && self.uses.contains_key(o.as_str())).collect();
        if !used.is_empty() {
            return Err(node_err(
                self.path,
                n,
                format!("its extra outputs {used:?} are read, which wgcnn cannot give"),
            ));
        }
        n.outputs.first().filter(|o| !o.is_empty()).cloned().ok_or_else(|| node_err(self.path, n, "no output"))
    }

    fn push(&mut self, n: &Node, name: String, op: LayerOp, inputs: Vec<String>) -> Result<()> {
        let out = self.single_output(n)?;
        self.source.insert(out, name.clone());
        self.layers.push(Layer { name, op, inputs });
        Ok(())
    }

    fn node(&mut self, n: &'a Node) -> Result<()> {
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(node_err(self.path, n, format!("ops of domain {:?} are not supported", n.domain)));
        }
        let data = |i: usize| n.inputs.get(i).filter(|s| !s.is_empty()).cloned();
        let x = || data(0).ok_or_else(|| node_err(self.path, n, "its input is missing"));
        match n.op_type.as_str() {
            "Constant" => {
                let Some(AttrValue::Tensor(t)) = n.attr("value") else {
                    return Err(node_err(self.path, n, "only tensor-valued Constants are supported"));
                };
                let out = n.outputs.first().ok_or_else(|| node_err(self.path, n, "no output"))?;
                self.constant_nodes.insert(out.clone(), t.clone());
            }
            "Identity" | "Dropout" => {
                let x = x()?;
                let s = self.src(n, &x)?;
                if n.op_type == "Dropout" {
                    if let Some(t) = data(2).and_then(|t| self.constant(&t).cloned()) {
                        if t.ints().is_ok_and(|v| v.first().is_some_and(|&b| b != 0)) {
                            return Err(node_err(self.path, n, "dropout in training mode is not an inference graph"));
                        }
                    }
                }
                let out = self.single_output(n)?;
                self.source.insert(out, s);
            }
            "Conv" => {
                let xs = self.src(n, &x()?)?;
                let wname = data(1).ok_or_else(|| node_err(self.path, n, "no weight input"))?;
                let (wshape, w) = self.weight(n, &wname, "weight")?;
                if wshape.len() != 4 {
                    return Err(node_err(
                        self.path,
                        n,
                        format!("weight {wname:?} has shape {wshape:?}, expected [out, in, kh, kw]"),
                    ));
                }
                let group = self.int_attr(n, "group", 1)?;
                if group != 1 {
                    return Err(node_err(
                        self.path,
                        n,
                        format!("grouped convolution (group {group}) is not supported"),
                    ));
                }
                let (k, s, p) = self.window(n, Some([wshape[2], wshape[3]]))?;
                if wshape[2] != k || wshape[3] != k {
                    return Err(node_err(
                        self.path,
                        n,
                        format!("weight shape {wshape:?} does not match kernel_shape {k}x{k}"),
                    ));
                }
                let name = self.layer_name(n, Some(&wname));
                let bias = match data(2) {
                    Some(b) => {
                        let (bshape, bv) = self.weight(n, &b, "bias")?;
                        if bshape != [wshape[0]] {
                            return Err(node_err(
                                self.path,
                                n,
                                format!("bias {b:?} has shape {bshape:?}, expected [{}]", wshape[0]),
                            ));
                        }
                        self.tensors.insert(format!("{name}.bias"), (bshape, bv));
                        true
                    }
                    None => false,
                };
                self.tensors.insert(format!("{name}.weight"), (wshape.clone(), w));
                let op =
                    LayerOp::Conv2d(Conv2d { out_channels: wshape[0], kernel_size: k, stride: s, padding: p, bias });
                self.push(n, name, op, vec![xs])?;
            }
            "Gemm" | "MatMul" => {
                let xs = self.src(n, &x()?)?;
                let wname = data(1).ok_or_else(|| node_err(self.path, n, "no weight input"))?;
                let (wshape, w) = self.weight(n, &wname, "weight")?;
                if wshape.len() != 2 {
                    return Err(node_err(self.path, n, format!("weight {wname:?} has shape {wshape:?}, expected 2-D")));
                }
                let gemm = n.op_type == "Gemm";
                if gemm {
                    if self.int_attr(n, "transA", 0)? != 0 {
                        return Err(node_err(self.path, n, "transA = 1 is not supported"));
                    }
                    for a in ["alpha", "beta"] {
                        let v = self.float_attr(n, a, 1.0)?;
                        if v != 1.0 {
                            return Err(node_err(self.path, n, format!("{a} = {v} is not supported (only 1)")));
                        }
                    }
                }
                // wgcnn's weight is [out, in] (PyTorch's Linear): Gemm with transB = 1 stores it so;
                // otherwise (and MatMul) the stored [in, out] is transposed.
                let trans_b = gemm && self.int_attr(n, "transB", 0)? == 1;
                let (out_f, in_f, weight) = if trans_b {
                    (wshape[0], wshape[1], w)
                } else {
                    let (i, o) = (wshape[0], wshape[1]);
                    let mut t = vec![0.0; w.len()];
                    for r in 0..i {
                        for c in 0..o {
                            t[c * i + r] = w[r * o + c];
                        }
                    }
                    (o, i, t)
                };
                let name = self.layer_name(n, Some(&wname));
                let bias = match data(2).filter(|_| gemm) {
                    Some(b) => {
                        let (bshape, bv) = self.weight(n, &b, "bias")?;
                        if bshape != [out_f] && bshape != [1, out_f] {
                            return Err(node_err(
                                self.path,
                                n,
                                format!("bias {b:?} has shape {bshape:?}, expected [{out_f}]"),
                            ));
                        }
                        self.tensors.insert(format!("{name}.bias"), (vec![out_f], bv));
                        true
                    }
                    None => false,
                };
                self.tensors.insert(format!("{name}.weight"), (vec![out_f, in_f], weight));
                self.push(n, name, LayerOp::Linear(Linear { out_features: out_f, bias }), vec![xs])?;
            }
            "Add" => {
                let (a, b) = (x()?, data(1).ok_or_else(|| node_err(self.path, n, "it needs two inputs"))?);
                match (self.constant(&a).is_some(), self.constant(&b).is_some()) {
                    (false, false) => {
                        let (sa, sb) = (self.src(n, &a)?, self.src(n, &b)?);
                        let name = self.layer_name(n, None);
                        self.push(n, name, LayerOp::Add, vec![sa, sb])?;
                    }
                    (true, true) => return Err(node_err(self.path, n, "adds two constants")),
                    (ca, _) => {
                        // A bias after a MatMul (MatMul + Add is how some exporters write Linear).
                        let (value, bias) = if ca { (b, a) } else { (a, b) };
                        self.fold_bias(n, &value, &bias)?;
                    }
                }
            }
            "Relu" | "Tanh" | "Sigmoid" => {
                let xs = self.src(n, &x()?)?;
                let act = match n.op_type.as_str() {
                    "Relu" => Activation::Relu,
                    "Tanh" => Activation::Tanh,
                    _ => Activation::Sigmoid,
                };
                let name = self.layer_name(n, None);
                self.push(n, name, LayerOp::Act(act), vec![xs])?;
            }
            "MaxPool" | "AveragePool" => {
                let xs = self.src(n, &x()?)?;
                if self.int_attr(n, "ceil_mode", 0)? != 0 {
                    return Err(node_err(self.path, n, "ceil_mode = 1 is not supported"));
                }
                if self.int_attr(n, "storage_order", 0)? != 0 {
                    return Err(node_err(self.path, n, "storage_order = 1 is not supported"));
                }
                let (k, s, p) = self.window(n, None)?;
                let pool = if n.op_type == "MaxPool" {
                    Pool2d::max(k)
                } else {
                    if p > 0 && self.int_attr(n, "count_include_pad", 0)? == 0 {
                        return Err(node_err(
                            self.path,
                            n,
                            "an average that leaves padded cells out (count_include_pad = 0) is not supported: wgcnn \
                             counts them, as PyTorch's AvgPool2d does by default",
                        ));
                    }
                    Pool2d::avg(k)
                };
                let name = self.layer_name(n, None);
                self.push(n, name, LayerOp::Pool(pool.stride(s).padding(p)), vec![xs])?;
            }
            "ReduceMean" => {
                // The mean over both spatial axes is a global average pool (torch's dynamo exporter
                // writes AdaptiveAvgPool2d(1) so); with keepdims = 0 a flatten follows.
                let xs = self.src(n, &x()?)?;
                let axes = match (self.ints_attr(n, "axes")?, data(1)) {
                    (Some(a), _) => a,
                    (None, Some(t)) => self
                        .constant(&t)
                        .map(|t| t.ints())
                        .transpose()
                        .map_err(|e| node_err(self.path, n, format!("axes: {e}")))?
                        .ok_or_else(|| node_err(self.path, n, "its axes are computed in the graph"))?,
                    (None, None) => Vec::new(),
                };
                let mut sorted = axes.clone();
                sorted.sort();
                if sorted != [2, 3] && sorted != [-2, -1] {
                    return Err(node_err(
                        self.path,
                        n,
                        format!("a mean over axes {axes:?} is not supported (only over [2, 3]: a global average pool)"),
                    ));
                }
                let name = self.layer_name(n, None);
                if self.int_attr(n, "keepdims", 1)? != 0 {
                    self.push(n, name, LayerOp::GlobalAvgPool, vec![xs])?;
                } else {
                    self.layers.push(Layer { name: name.clone(), op: LayerOp::GlobalAvgPool, inputs: vec![xs] });
                    let flat = format!("{name}.flatten");
                    self.taken.push(flat.clone());
                    self.push(n, flat, LayerOp::Flatten, vec![name])?;
                }
            }
            "GlobalAveragePool" => {
                let xs = self.src(n, &x()?)?;
                let name = self.layer_name(n, None);
                self.push(n, name, LayerOp::GlobalAvgPool, vec![xs])?;
            }
            "BatchNormalization" => {
                let xs = self.src(n, &x()?)?;
                if self.int_attr(n, "training_mode", 0)? != 0 {
                    return Err(node_err(self.path, n, "training_mode = 1 is not an inference graph"));
                }
                let eps = self.float_attr(n, "epsilon", 1e-5)?;
                let momentum = torch_momentum(self.float_attr(n, "momentum", 0.9)?);
                let names: Vec<String> = (1..5)
                    .map(|i| data(i).ok_or_else(|| node_err(self.path, n, "it needs five inputs")))
                    .collect::<Result<_>>()?;
                let mut ts = Vec::new();
                for (nm, what) in names.iter().zip(["scale", "bias", "mean", "variance"]) {
                    ts.push(self.weight(n, nm, what)?);
                }
                let c = ts[0].0.iter().product::<usize>();
                if ts.iter().any(|(s, _)| *s != [c]) {
                    let shapes: Vec<&Vec<usize>> = ts.iter().map(|(s, _)| s).collect();
                    return Err(node_err(
                        self.path,
                        n,
                        format!("scale, bias, mean and variance have shapes {shapes:?}, expected [C] each"),
                    ));
                }
                let name = self.layer_name(n, Some(&names[0]));
                for ((s, v), suffix) in ts.into_iter().zip(["weight", "bias", "running_mean", "running_var"]) {
                    self.tensors.insert(format!("{name}.{suffix}"), (s, v));
                }
                self.push(n, name, LayerOp::BatchNorm2d(BatchNorm2d { eps, momentum }), vec![xs])?;
            }
            "Concat" => {
                let axis = self.int_attr(n, "axis", i64::MIN)?;
                if axis != 1 && axis != -3 {
                    return Err(node_err(
                        self.path,
                        n,
                        format!("concatenation along axis {axis} is not supported (only channels: 1)"),
                    ));
                }
                let ins: Vec<String> =
                    n.inputs.iter().filter(|s| !s.is_empty()).map(|s| self.src(n, s)).collect::<Result<_>>()?;
                let name = self.layer_name(n, None);
                self.push(n, name, LayerOp::Concat, ins)?;
            }
            "Flatten" => {
                let xs = self.src(n, &x()?)?;
                let axis = self.int_attr(n, "axis", 1)?;
                if axis != 1 {
                    return Err(node_err(
                        self.path,
                        n,
                        format!("flatten at axis {axis} is not supported (only 1: [N, rest])"),
                    ));
                }
                let name = self.layer_name(n, None);
                self.push(n, name, LayerOp::Flatten, vec![xs])?;
            }
            "Reshape" => {
                let xs = self.src(n, &x()?)?;
                let shape = data(1).and_then(|s| self.constant(&s)).map(|t| t.ints());
                match shape {
                    Some(Ok(v)) if v.len() == 2 && (v[0] == 0 || v[0] == -1) && (v[1] == -1 || v[1] > 0) => {}
                    Some(Ok(v)) => {
                        return Err(node_err(
                            self.path,
                            n,
                            format!("reshape to {v:?} is not supported (only to [N, features], e.g. [0, -1])"),
                        ))
                    }
                    _ => {
                        return Err(node_err(
                            self.path,
                            n,
                            "its target shape is computed in the graph (e.g. x.view(x.size(0), -1)); export with \
                             torch.flatten(x, 1) or a constant shape",
                        ))
                    }
                }
                let name = self.layer_name(n, None);
                self.push(n, name, LayerOp::Flatten, vec![xs])?;
            }
            "Softmax" | "LogSoftmax" => {
                return Err(node_err(
                    self.path,
                    n,
                    "a wgcnn model ends in logits (its loss applies the softmax): export the network without it",
                ))
            }
            op => {
                return Err(node_err(
                    self.path,
                    n,
                    format!(
                    "op {op} is not supported; wgcnn runs Conv, Gemm, MatMul (+ Add), Relu, Tanh, Sigmoid, MaxPool, \
                         AveragePool, GlobalAveragePool, ReduceMean over H and W, BatchNormalization, Add, Concat, \
                         Flatten, Reshape to 2-D, Dropout and Identity"
                ),
                ))
            }
        }
        Ok(())
    }

    /// Fold a constant added to a bias-less linear layer's output (read nowhere else) into its bias.
    fn fold_bias(&mut self, n: &Node, value: &str, bias: &str) -> Result<()> {
        let src = self.src(n, value)?;
        let alone = self.uses.get(value).copied() == Some(1);
        let idx = self.layers.iter().position(|l| l.name == src);
        let Some(i) = idx.filter(|_| alone) else {
            return Err(node_err(self.path, n, "adding a constant is supported only as the bias of a MatMul"));
        };
        let LayerOp::Linear(f) = self.layers[i].op else {
            return Err(node_err(self.path, n, "adding a constant is supported only as the bias of a MatMul"));
        };
        if f.bias {
            return Err(node_err(self.path, n, "adds a second bias to a linear layer"));
        }
        let (bshape, bv) = self.weight(n, bias, "bias")?;
        if bshape != [f.out_features] && bshape != [1, f.out_features] {
            return Err(node_err(
                self.path,
                n,
                format!("bias {bias:?} has shape {bshape:?}, expected [{}]", f.out_features),
            ));
        }
        let name = self.layers[i].name.clone();
        self.layers[i].op = LayerOp::Linear(Linear { bias: true, ..f });
        self.tensors.insert(format!("{name}.bias"), (vec![f.out_features], bv));
        let out = self.single_output(n)?;
        self.source.insert(out, name);
        Ok(())
    }
}

/// A PyTorch module path from an exporter's node name: `/layer1/layer1.0/conv1/Conv` →
/// `layer1.0.conv1` (each component either extends the path so far or is its next part); `None`
/// for an empty name.
fn module_path(node: &str) -> Option<String> {
    let parts: Vec<&str> = node.split('/').filter(|s| !s.is_empty()).collect();
    // In an exporter's path (`/…/Conv`) the last part is the op (`Conv`, `Relu_1`); a plain name
    // (wgcnn's own: `fc1`) is the layer's.
    let parts = if node.starts_with('/') { &parts[..parts.len().saturating_sub(1)] } else { &parts[..] };
    let mut path = String::new();
    for p in parts {
        if path.is_empty() || !p.starts_with(&format!("{path}.")) {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(p);
        } else {
            path = p.to_string();
        }
    }
    (!path.is_empty()).then_some(path)
}

/// PyTorch's batch-norm momentum from ONNX's (its complement), as the short decimal that gives back
/// the same ONNX value (0.9 → 0.1, not 1 − 0.9f32 = 0.10000002): an export then import keeps it.
fn torch_momentum(onnx: f32) -> f32 {
    let m = 1.0 - f64::from(onnx);
    let back = |t: f32| (1.0 - f64::from(t)) as f32 == onnx;
    (1..=9)
        .map(|digits| format!("{m:.digits$}").parse::<f32>().unwrap_or(m as f32))
        .find(|&t| back(t))
        .unwrap_or(m as f32)
}

/// The layers of `spec` without its dropout layers (their readers read what the dropout read).
fn without_dropout(spec: &ModelSpec) -> Vec<Layer> {
    let mut alias: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for l in &spec.layers {
        let inputs: Vec<String> = l.inputs.iter().map(|i| alias.get(i).cloned().unwrap_or_else(|| i.clone())).collect();
        if let LayerOp::Dropout(_) = l.op {
            alias.insert(l.name.clone(), inputs[0].clone());
            continue;
        }
        out.push(Layer { inputs, ..l.clone() });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::module_path;

    #[test]
    fn node_names_become_module_paths() {
        assert_eq!(module_path("/layer1/layer1.0/conv1/Conv").as_deref(), Some("layer1.0.conv1"));
        assert_eq!(module_path("/conv1/Conv").as_deref(), Some("conv1"));
        assert_eq!(module_path("/layer1/layer1.0/relu_1/Relu").as_deref(), Some("layer1.0.relu_1"));
        assert_eq!(module_path("fc1").as_deref(), Some("fc1"));
        assert_eq!(module_path("/features/features.0/Conv").as_deref(), Some("features.0"));
        assert_eq!(module_path(""), None);
        assert_eq!(module_path("/Reshape"), None);
        assert_eq!(module_path("dense.l1.relu").as_deref(), Some("dense.l1.relu"));
    }
}
