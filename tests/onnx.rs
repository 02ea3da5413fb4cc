//! ONNX export and import (`src/onnx/`): every model file exports to a graph of the expected
//! structure that imports back to the same model file and the same bits; where Python has `onnx` and
//! `onnxruntime` (CI installs them), `onnx.checker` accepts every export and onnxruntime's logits on
//! 256 inputs equal wgcnn's; bad files are errors naming the problem.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use wgcnn::data::Preparation;
use wgcnn::model::{file, ModelSpec, ModelState};
use wgcnn::onnx::proto::{AttrValue, Dim, Model, Node, Tensor};
use wgcnn::onnx::{import_bytes, to_onnx};

fn model_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    assert!(v.len() >= 9, "{v:?}");
    v
}

/// PyTorch's initialisation, with batch-norm running statistics moved off their defaults so that
/// inference-mode batch-norm does something.
fn state_of(spec: &ModelSpec, seed: u64) -> ModelState {
    let mut s = ModelState::init(spec, seed);
    let mut r = rng(seed + 7);
    for (b, p) in s.buffers.iter_mut().zip(spec.buffers()) {
        let (lo, hi) = if p.name.ends_with("running_var") { (0.5, 2.0) } else { (-0.5, 0.5) };
        *b = r.vec_f32(b.len(), lo, hi);
    }
    // Batch-norm's weight and bias too (ones and zeros at first).
    for (v, p) in s.params.iter_mut().zip(spec.params()) {
        if p.fan_in == 0 {
            *v = r.vec_f32(v.len(), 0.5, 1.5);
        }
    }
    s
}

fn prep_of(spec: &ModelSpec) -> Preparation {
    let mut p = Preparation::legacy(spec.input, spec.classes);
    if spec.input[0] == 3 {
        (p.mean, p.std) = (vec![0.49, 0.48, 0.45], vec![0.25, 0.24, 0.26]);
    }
    p
}

#[test]
fn every_model_file_exports_a_graph_that_imports_back_to_the_same_model_and_bits() {
    for f in model_files() {
        let spec = file::load(&f).unwrap();
        let state = state_of(&spec, 3);
        let prep = prep_of(&spec);
        let bytes = to_onnx(&spec, &state, &prep).unwrap().encode();
        let m = Model::decode(&bytes).unwrap();
        let name = &spec.name;
        assert_eq!((m.ir_version, m.opsets.clone()), (8, vec![(String::new(), 17)]), "{name}");
        let g = &m.graph;
        let [c, h, w] = spec.input;
        let batch = Dim::Param("N".into());
        assert_eq!(g.inputs.len(), 1, "{name}");
        assert_eq!(g.inputs[0].name, "input");
        assert_eq!(
            g.inputs[0].shape,
            Some(vec![batch.clone(), Dim::Value(c as i64), Dim::Value(h as i64), Dim::Value(w as i64)])
        );
        assert_eq!(g.outputs[0].name, "logits");
        assert_eq!(g.outputs[0].shape, Some(vec![batch, Dim::Value(spec.classes as i64)]));
        // One node per layer but dropout, named as the layer; the last writes the logits.
        let kept: Vec<&str> = spec
            .layers
            .iter()
            .filter(|l| !matches!(l.op, wgcnn::model::LayerOp::Dropout(_)))
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(g.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), kept, "{name}");
        assert_eq!(g.nodes.last().unwrap().outputs, vec!["logits".to_string()]);
        // Every tensor under its PyTorch name, in raw little-endian float32, bit for bit.
        let specs: Vec<_> = spec.params().into_iter().chain(spec.buffers()).collect();
        let values: Vec<&Vec<f32>> = state.params.iter().chain(&state.buffers).collect();
        assert_eq!(g.initializers.len(), specs.len(), "{name}");
        for ((t, p), v) in g.initializers.iter().zip(&specs).zip(values) {
            assert_eq!(t.name, p.name);
            assert_eq!(t.dims, p.shape.iter().map(|&d| d as i64).collect::<Vec<_>>(), "{}", p.name);
            assert_eq!(t.floats().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>(), bits(v));
        }
        // Batch-norm in inference form with PyTorch's momentum turned into ONNX's.
        for n in g.nodes.iter().filter(|n| n.op_type == "BatchNormalization") {
            assert_eq!(n.inputs.len(), 5, "{}", n.name);
            assert_eq!(n.attr("momentum"), Some(&AttrValue::Float(1.0 - 0.1)), "{}", n.name);
        }
        // The metadata states the preparation.
        assert!(m.meta("input_preparation").is_some_and(|s| s.contains("/ 255")), "{name}");
        // Import gives back the same model file and the same bits.
        let im = import_bytes(Path::new("x.onnx"), &bytes).unwrap();
        assert_eq!(file::to_toml(&im.spec), file::to_toml(&spec), "{name}");
        assert_eq!(
            im.state.params.iter().map(|v| bits(v)).collect::<Vec<_>>(),
            state.params.iter().map(|v| bits(v)).collect::<Vec<_>>()
        );
        assert_eq!(
            im.state.buffers.iter().map(|v| bits(v)).collect::<Vec<_>>(),
            state.buffers.iter().map(|v| bits(v)).collect::<Vec<_>>()
        );
        assert_eq!((im.prep.mean.clone(), im.prep.std.clone()), (prep.mean.clone(), prep.std.clone()), "{name}");
        assert!(im.notes.is_empty(), "{name}: {:?}", im.notes);
        // Without wgcnn's metadata the graph alone gives the same model, less its dropout layers.
        let mut bare = m.clone();
        bare.metadata.clear();
        let im = import_bytes(Path::new("bare.onnx"), &bare.encode()).unwrap();
        let kept_layers: Vec<&str> = im.spec.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(kept_layers, kept, "{name}");
        assert_eq!(im.spec.params(), spec.params(), "{name}");
        assert!(im.notes.iter().any(|n| n.contains("x / 255")), "{name}: {:?}", im.notes);
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Whether python3 has onnx and onnxruntime; in CI it must (`.ci/run` installs them).
fn onnx_python() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok || std::env::var_os("CI").is_none(), "CI installs onnx and onnxruntime: python3 cannot import them");
    ok
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/onnx_check.py")
}

#[test]
fn onnxruntime_gives_wgcnns_logits_for_every_model_file() {
    if !onnx_python() {
        eprintln!("skipped: python3 cannot import onnx and onnxruntime (pip install onnx onnxruntime)");
        return;
    }
    let c = ctx();
    let dir = std::env::temp_dir().join(format!("wgcnn-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // 256 of the bundled MNIST digits for the 28×28 grey models, random pictures for the colour ones.
    let digits = sample(256);
    let n = 256;
    for f in model_files() {
        let spec = file::load(&f).unwrap();
        let state = state_of(&spec, 5);
        let prep = prep_of(&spec);
        let onnx_path = dir.join(format!("{}.onnx", spec.name));
        wgcnn::onnx::save_onnx(&onnx_path, &spec, &state, &prep).unwrap();
        let [ch, h, w] = spec.input;
        let size = ch * h * w;
        let bytes: Vec<u8> = if spec.input == [1, 28, 28] {
            digits.images[..n * size].to_vec()
        } else {
            let mut r = rng(11);
            (0..n * size).map(|_| (r.next_u64() & 0xff) as u8).collect()
        };
        // Prepared as the checkpoint says: (byte / 255 - mean[c]) / std[c].
        let inputs: Vec<Vec<f32>> = bytes
            .chunks(size)
            .map(|img| {
                img.iter()
                    .enumerate()
                    .map(|(i, &b)| {
                        let k = i / (h * w);
                        (b as f32 / 255.0 - prep.mean[k]) / prep.std[k]
                    })
                    .collect()
            })
            .collect();
        let mut params = wgcnn::graph::Params::new(c, &spec).unwrap();
        params.write_state(c, &state).unwrap();
        let ours = wgcnn::train::logits(c, &spec, &params, &inputs).unwrap();
        let x_path = dir.join(format!("{}.x.f32", spec.name));
        let y_path = dir.join(format!("{}.y.f32", spec.name));
        let raw: Vec<u8> = inputs.concat().iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&x_path, raw).unwrap();
        let out = std::process::Command::new("python3")
            .arg(script())
            .arg(&onnx_path)
            .args(["--inputs", x_path.to_str().unwrap(), "--shape", &format!("{n},{ch},{h},{w}")])
            .args(["--out", y_path.to_str().unwrap()])
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {report}\n{}", spec.name, String::from_utf8_lossy(&out.stderr));
        assert!(report.contains("\"ai.onnx\": 17") && report.contains("\"N\""), "{report}");
        let theirs: Vec<f32> = std::fs::read(&y_path)
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(theirs.len(), n * spec.classes, "{}", spec.name);
        // Each logit within 1e-5 of the largest logit magnitude of its row.
        let mut worst = 0.0f64;
        for (row, (a, b)) in ours.iter().zip(theirs.chunks(spec.classes)).enumerate() {
            let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE) as f64;
            for (x, y) in a.iter().zip(b) {
                let rel = (*x as f64 - *y as f64).abs() / scale;
                worst = worst.max(rel);
                assert!(rel <= 1e-5, "{} image {row}: wgcnn {a:?}, onnxruntime {b:?}", spec.name);
            }
        }
        eprintln!(
            "{:<15} onnxruntime vs wgcnn on {n} inputs: max difference {worst:.2e} of the row's largest logit",
            spec.name
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A minimal graph: input [N, 1, 4, 4] → Conv 2@3x3 → Relu → Flatten → Gemm 3, the logits.
fn tiny() -> Model {
    let spec = wgcnn::model::ModelBuilder::new("tiny", [1, 4, 4], 3)
        .layer("conv", wgcnn::model::Conv2d::new(2, 3))
        .layer("relu", wgcnn::kernels::activation::Activation::Relu)
        .layer("flatten", wgcnn::model::LayerOp::Flatten)
        .layer("fc", wgcnn::model::Linear::new(3))
        .build()
        .unwrap();
    let state = ModelState::init(&spec, 1);
    let mut m = to_onnx(&spec, &state, &prep_of(&spec)).unwrap();
    m.metadata.clear();
    m
}

fn import_err(m: &Model) -> String {
    match import_bytes(Path::new("bad.onnx"), &m.encode()) {
        Ok(_) => panic!("imported a bad model"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_onnx_files_are_errors_that_name_the_problem() {
    let good = tiny();
    let bytes = good.encode();
    assert!(import_bytes(Path::new("t.onnx"), &bytes).is_ok());
    // Truncated anywhere: an error (never a panic).
    for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(import_bytes(Path::new("t.onnx"), &bytes[..cut]).is_err(), "cut at {cut}");
    }
    let e = import_bytes(Path::new("junk.onnx"), b"not a protobuf at all").err().unwrap().to_string();
    assert!(e.contains("junk.onnx") && e.contains("not a readable ONNX model"), "{e}");
    // An op wgcnn does not have, named with its node.
    let mut m = good.clone();
    m.graph.nodes[1].op_type = "LeakyRelu".into();
    let e = import_err(&m);
    assert!(e.contains("node relu (LeakyRelu)") && e.contains("not supported"), "{e}");
    // Two inputs.
    let mut m = good.clone();
    let mut second = m.graph.inputs[0].clone();
    second.name = "mask".into();
    m.graph.inputs.push(second);
    let e = import_err(&m);
    assert!(e.contains("2 inputs") && e.contains("mask"), "{e}");
    // Dynamic spatial sizes.
    let mut m = good.clone();
    m.graph.inputs[0].shape.as_mut().unwrap()[2] = Dim::Param("H".into());
    let e = import_err(&m);
    assert!(e.contains("dynamic sizes"), "{e}");
    // An initializer of the wrong size, named with its node.
    let mut m = good.clone();
    m.graph.initializers[0].raw_data.truncate(8);
    let e = import_err(&m);
    assert!(e.contains("node conv (Conv)") && e.contains("conv.weight") && e.contains("raw_data holds 8"), "{e}");
    // Weights whose shape does not fit the layer's input.
    let mut m = good.clone();
    let fc_w = m.graph.initializers.iter_mut().find(|t| t.name == "fc.weight").unwrap();
    *fc_w = Tensor::float("fc.weight", &[3, 5], &[0.1; 15]);
    let e = import_err(&m);
    assert!(e.contains("fc.weight") && e.contains("[3, 5]"), "{e}");
    // Softmax at the end, grouped convolution, a computed reshape: each named.
    let mut m = good.clone();
    m.graph.nodes.last_mut().unwrap().outputs = vec!["fc".into()];
    m.graph.nodes.push(Node {
        name: "softmax".into(),
        op_type: "Softmax".into(),
        inputs: vec!["fc".into()],
        outputs: vec!["logits".into()],
        ..Node::default()
    });
    let e = import_err(&m);
    assert!(e.contains("node softmax (Softmax)") && e.contains("ends in logits"), "{e}");
    let mut m = good.clone();
    m.graph.nodes[0].attributes.push(wgcnn::onnx::proto::Attribute::int("group", 2));
    assert!(import_err(&m).contains("grouped convolution (group 2)"));
    // Non-finite weights.
    let mut m = good.clone();
    m.graph.initializers[1].raw_data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = import_err(&m);
    assert!(e.contains("conv.bias") && e.contains("NaN"), "{e}");
}

#[test]
fn pytorch_style_graphs_import_matmul_add_reshape_and_module_paths() {
    // What other exporters write: node names as module paths, weights under generated names,
    // MatMul + Add for a linear layer (the weight stored [in, out]), Reshape to [0, -1].
    let mut m = tiny();
    let g = &mut m.graph;
    g.nodes[0].name = "/features/features.0/Conv".into();
    g.nodes[1].name = "/features/features.1/Relu".into();
    let w = g.initializers.iter().position(|t| t.name == "conv.weight").unwrap();
    g.initializers[w].name = "onnx::Conv_17".into();
    g.nodes[0].inputs[1] = "onnx::Conv_17".into();
    let b = g.initializers.iter().position(|t| t.name == "conv.bias").unwrap();
    g.initializers[b].name = "onnx::Conv_18".into();
    g.nodes[0].inputs[2] = "onnx::Conv_18".into();
    // Flatten → Reshape(x, [0, -1]) with the shape as an initializer.
    let shape = Tensor {
        name: "shape".into(),
        dims: vec![2],
        data_type: wgcnn::onnx::proto::INT64,
        int64_data: vec![0, -1],
        ..Tensor::default()
    };
    g.initializers.push(shape);
    g.nodes[2] = Node {
        name: "/Reshape".into(),
        op_type: "Reshape".into(),
        inputs: vec!["relu".into(), "shape".into()],
        outputs: vec!["flatten".into()],
        ..Node::default()
    };
    // Gemm(transB = 1) → MatMul with the weight transposed, then Add of the bias.
    let fw = g.initializers.iter().position(|t| t.name == "fc.weight").unwrap();
    let wt = g.initializers[fw].floats().unwrap();
    let (o, i) = (3usize, 8usize);
    let mut tr = vec![0.0; o * i];
    for r in 0..o {
        for col in 0..i {
            tr[col * o + r] = wt[r * i + col];
        }
    }
    g.initializers[fw] = Tensor::float("fc.weight", &[i, o], &tr);
    g.nodes[3] = Node {
        name: "/fc/MatMul".into(),
        op_type: "MatMul".into(),
        inputs: vec!["flatten".into(), "fc.weight".into()],
        outputs: vec!["mm".into()],
        ..Node::default()
    };
    g.nodes.push(Node {
        name: "/fc/Add".into(),
        op_type: "Add".into(),
        inputs: vec!["fc.bias".into(), "mm".into()],
        outputs: vec!["logits".into()],
        ..Node::default()
    });
    let im = import_bytes(Path::new("torch.onnx"), &m.encode()).unwrap();
    let names: Vec<&str> = im.spec.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["features.0", "features.1", "reshape", "fc"]);
    let params: Vec<String> = im.spec.params().iter().map(|p| p.name.clone()).collect();
    assert_eq!(params, ["features.0.weight", "features.0.bias", "fc.weight", "fc.bias"]);
    // The same numbers as the wgcnn graph it was made from.
    let orig = import_bytes(Path::new("t.onnx"), &tiny().encode()).unwrap();
    assert_eq!(im.state.params, orig.state.params);
}

#[test]
fn mutated_onnx_files_are_errors_or_models_never_panics() {
    // A deterministic fuzz run over the reader and the importer: byte flips, truncations, insertions
    // and splices of valid exports (LeNet-5 and resnet-mini: every message kind, batch-norm,
    // residual adds). Each must import or fail with an error; a panic fails the test. (fuzz/ holds
    // the same as a cargo-fuzz target for longer runs.)
    let files: Vec<Vec<u8>> = ["lenet5", "resnet-mini"]
        .iter()
        .map(|m| {
            let spec = file::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("models/{m}.toml"))).unwrap();
            to_onnx(&spec, &state_of(&spec, 1), &prep_of(&spec)).unwrap().encode()
        })
        .collect();
    let mut r = rng(99);
    let mut below = |n: usize| (r.next_u64() % n.max(1) as u64) as usize;
    let (mut ok, mut err) = (0, 0);
    for i in 0..3000 {
        let mut b = files[i % files.len()].clone();
        for _ in 0..1 + below(4) {
            match below(4) {
                0 => {
                    let at = below(b.len());
                    b[at] ^= 1 << below(8);
                }
                1 => {
                    let at = below(b.len());
                    b.truncate(at);
                }
                2 => {
                    let at = below(b.len() + 1);
                    let v = below(256) as u8;
                    b.insert(at, v);
                }
                _ => {
                    let other = &files[below(files.len())];
                    let (from, len) = (below(other.len()), below(64));
                    let at = below(b.len() + 1);
                    let piece: Vec<u8> = other[from..(from + len).min(other.len())].to_vec();
                    b.splice(at..at, piece);
                }
            }
        }
        match std::panic::catch_unwind(|| import_bytes(Path::new("fuzz.onnx"), &b).map(|_| ())) {
            Ok(Ok(())) => ok += 1,
            Ok(Err(_)) => err += 1,
            Err(_) => panic!("mutation {i} panicked the importer ({} bytes)", b.len()),
        }
    }
    eprintln!("3000 mutated files: {ok} imported, {err} refused with an error");
    assert!(err > 1000, "most mutations must be refused: {ok} imported");
}

#[test]
fn external_data_and_reduce_mean_import_as_torchs_dynamo_exporter_writes_them() {
    // torch's dynamo exporter keeps the weights in a file beside the graph (external data) and writes
    // the global average pool as ReduceMean over [2, 3].
    let spec = wgcnn::model::ModelBuilder::new("gapnet", [1, 6, 6], 3)
        .layer("conv", wgcnn::model::Conv2d::new(4, 3))
        .layer("relu", wgcnn::kernels::activation::Activation::Relu)
        .layer("gap", wgcnn::model::LayerOp::GlobalAvgPool)
        .layer("flatten", wgcnn::model::LayerOp::Flatten)
        .layer("fc", wgcnn::model::Linear::new(3))
        .build()
        .unwrap();
    let state = ModelState::init(&spec, 4);
    let mut m = to_onnx(&spec, &state, &prep_of(&spec)).unwrap();
    m.metadata.clear();
    let dir = std::env::temp_dir().join(format!("wgcnn-onnx-ext-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Every weight into one data file, at 4-byte-aligned offsets after a 16-byte header.
    let mut data = vec![0u8; 16];
    for t in &mut m.graph.initializers {
        let offset = data.len();
        data.extend_from_slice(&t.raw_data);
        t.external_data = vec![
            ("location".into(), "gapnet.onnx.data".into()),
            ("offset".into(), offset.to_string()),
            ("length".into(), t.raw_data.len().to_string()),
        ];
        (t.external, t.raw_data) = (true, Vec::new());
    }
    std::fs::write(dir.join("gapnet.onnx.data"), &data).unwrap();
    let gap = m.graph.nodes.iter_mut().find(|n| n.op_type == "GlobalAveragePool").unwrap();
    gap.op_type = "ReduceMean".into();
    gap.attributes = vec![wgcnn::onnx::proto::Attribute::ints("axes", &[2, 3])];
    let path = dir.join("gapnet.onnx");
    std::fs::write(&path, m.encode()).unwrap();
    let im = wgcnn::onnx::import_file(&path).unwrap();
    assert_eq!(file::to_toml(&im.spec), file::to_toml(&spec));
    assert_eq!(im.state.params, state.params);
    // From bytes alone (no folder), and with a location outside the folder: errors that say so.
    let e = import_bytes(&path, &m.encode()).err().unwrap().to_string();
    assert!(e.contains("external file"), "{e}");
    m.graph.initializers[0].external_data[0].1 = "../gapnet.onnx.data".into();
    std::fs::write(&path, m.encode()).unwrap();
    let e = wgcnn::onnx::import_file(&path).err().unwrap().to_string();
    assert!(e.contains("leaves the model's folder"), "{e}");
    // A data file too short for its tensors.
    m.graph.initializers[0].external_data[0].1 = "gapnet.onnx.data".into();
    std::fs::write(dir.join("gapnet.onnx.data"), &data[..20]).unwrap();
    std::fs::write(&path, m.encode()).unwrap();
    let e = wgcnn::onnx::import_file(&path).err().unwrap().to_string();
    assert!(e.contains("past its end"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_command_line_exports_and_imports_and_the_import_evaluates_the_same() {
    // wgcnn train → export → import → eval: the imported checkpoint gives the original's accuracy and
    // loss on the bundled test files, and import writes the model file beside it.
    let dir = std::env::temp_dir().join(format!("wgcnn-onnx-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgcnn")).args(args).output().unwrap();
        let (o, e) =
            (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
        (out.status.success(), o, e)
    };
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/residual-mini.toml");
    let (ok, _, e) = run(&["train", "--model", model.to_str().unwrap(), "--steps", "3", "--save", &p("r.safetensors")]);
    assert!(ok, "{e}");
    let (ok, o, e) = run(&["export", &p("r.safetensors"), "--onnx", &p("r.onnx")]);
    assert!(ok && o.contains("opset 17") && o.contains("\"logits\""), "{o}{e}");
    let (ok, o, e) = run(&["import", &p("r.onnx"), "--out", &p("back.safetensors")]);
    assert!(ok && o.contains("imported residual-mini"), "{o}{e}");
    assert!(dir.join("back.toml").is_file());
    let eval = |ckpt: &str| {
        let (ok, o, e) = run(&["eval", "--model", ckpt, "--json"]);
        assert!(ok, "{e}");
        let v: serde_json::Value = serde_json::from_str(o.trim()).unwrap();
        (v["accuracy"].as_f64().unwrap(), v["loss"].as_f64().unwrap())
    };
    assert_eq!(eval(&p("r.safetensors")), eval(&p("back.safetensors")));
    // The bytes of the checkpoints' tensors are the same too.
    let (a, b) = (
        wgcnn::checkpoint::read(&dir.join("r.safetensors")).unwrap(),
        wgcnn::checkpoint::read(&dir.join("back.safetensors")).unwrap(),
    );
    assert_eq!(a.tensors, b.tensors);
    // A missing file is an error naming it.
    let (ok, _, e) = run(&["import", &p("nope.onnx"), "--out", &p("x.safetensors")]);
    assert!(!ok && e.contains("nope.onnx"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
