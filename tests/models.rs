//! Models defined by users: model files (the shipped ones, the canonical form, every error case) and the
//! Rust builder, over the same checks. The error cases need no GPU; the last test builds on one.

mod common;

use std::path::Path;

use wgcnn::kernels::activation::Activation;
use wgcnn::model::{file, lenet5, Conv2d, LayerOp, LeNetConfig, Linear, ModelBuilder, Pool2d};

fn err(text: &str) -> String {
    match file::parse(text) {
        Err(e) => e.to_string(),
        Ok(s) => panic!("accepted a bad model file: {s:?}"),
    }
}

const HEAD: &str = "[model]\nname = \"t\"\ninput = [1, 8, 8]\nclasses = 3\n";

/// A model file of `HEAD` and the given layers.
fn with(layers: &str) -> String {
    format!("{HEAD}{layers}")
}

const GOOD: &str = "
[[layer]]
name = \"conv1\"
op = \"conv2d\"
out_channels = 2
kernel_size = 3
[[layer]]
name = \"flat\"
op = \"flatten\"
[[layer]]
name = \"fc\"
op = \"linear\"
out_features = 3
";

#[test]
fn the_shipped_lenet5_file_is_the_built_in_lenet5() {
    let spec = file::load(Path::new("models/lenet5.toml")).unwrap();
    assert_eq!(spec, lenet5(LeNetConfig::default()));
    let names: Vec<String> = spec.params().iter().map(|p| p.name.clone()).collect();
    assert_eq!(names[..3], ["conv1.weight", "conv1.bias", "conv2.weight"]);
    assert_eq!(spec.params()[4].shape, [120, 400], "in_features inferred through the flatten");
    // Every shipped model file parses, and its canonical form reads back as the same model.
    // (models/torchvision/ too: full-size networks named as torchvision names them.)
    let mut files = Vec::new();
    for entry in std::fs::read_dir("models").unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path())),
            false => files.push(path),
        }
    }
    assert!(files.iter().any(|p| p.ends_with("torchvision/resnet18.toml")), "{files:?}");
    for path in files {
        let spec = file::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file::parse(&file::to_toml(&spec)).unwrap(), spec, "{}", path.display());
    }
}

#[test]
fn the_builder_and_a_file_make_the_same_model() {
    let built = ModelBuilder::new("t", [1, 8, 8], 3)
        .layer("conv1", Conv2d::new(2, 3))
        .layer("flat", LayerOp::Flatten)
        .layer("fc", Linear::new(3))
        .build()
        .unwrap();
    assert_eq!(file::parse(&with(GOOD)).unwrap(), built);
    // Names with dots (torchvision's), a DAG, layers without bias.
    let dag = ModelBuilder::new("dag", [2, 6, 6], 4)
        .layer("layer1.0.conv1", Conv2d::new(2, 3).padding(1).bias(false))
        .layer("layer1.0.relu", Activation::Relu)
        .layer_from("layer1.0.add", LayerOp::Add, &["layer1.0.relu", "input"])
        .layer("pool", Pool2d::avg(2))
        .layer("flat", LayerOp::Flatten)
        .layer("fc", Linear::new(4).bias(false))
        .build()
        .unwrap();
    let names: Vec<String> = dag.params().iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["layer1.0.conv1.weight", "fc.weight"]);
    assert_eq!(file::parse(&file::to_toml(&dag)).unwrap(), dag);
}

#[test]
fn every_mistake_in_a_model_file_names_the_layer_and_the_field() {
    let cases: &[(String, &[&str])] = &[
        ("[model".into(), &["not valid TOML"]),
        (format!("{HEAD}[extra]\n"), &["unknown table \"extra\""]),
        (GOOD.into(), &["no [model] table"]),
        (HEAD.into(), &["no [[layer]] tables"]),
        (with(&GOOD.replace("\"flatten\"", "\"flaten\"")), &["layer flat", "unknown op \"flaten\""]),
        (with(&GOOD.replace("kernel_size", "kernal_size")), &["layer conv1", "unknown field \"kernal_size\""]),
        (with(&GOOD.replace("out_features = 3", "")), &["layer fc", "field out_features: missing"]),
        (
            with(&GOOD.replace("kernel_size = 3", "kernel_size = 0")),
            &["layer conv1", "kernel_size: must be at least 1"],
        ),
        (with(&GOOD.replace("kernel_size = 3", "kernel_size = \"3\"")), &["kernel_size: must be an integer"]),
        (with(&GOOD.replace("kernel_size = 3", "kernel_size = [3, 3]")), &["square kernels"]),
        (with(&GOOD.replace("name = \"flat\"", "name = \"conv1\"")), &["layer conv1", "duplicate name"]),
        (
            with(&GOOD.replace("op = \"flatten\"", "op = \"flatten\"\ninputs = [\"conv2\"]")),
            &["input \"conv2\" does not exist"],
        ),
        (
            with(&GOOD.replace("op = \"flatten\"", "op = \"flatten\"\ninputs = [\"fc\"]")),
            &["layer flat", "input \"fc\" comes later"],
        ),
        (with(&GOOD.replace("op = \"flatten\"", "op = \"add\"")), &["layer flat", "add takes 2 inputs"]),
        // A linear layer on an unflattened map: both shapes in the message.
        (with(&GOOD.replace("op = \"flatten\"", "op = \"relu\"")), &["layer fc", "[1, 2, 6, 6]"]),
        // The last layer is not [n, classes].
        (with(&GOOD.replace("out_features = 3", "out_features = 5")), &["layer fc", "[1, 5]", "[1, 3]"]),
        // A kernel larger than the padded input.
        (with(&GOOD.replace("kernel_size = 3", "kernel_size = 9")), &["layer conv1", "larger than the padded input"]),
        (with(&GOOD.replace("name = \"fc\"", "name = \"input\"")), &["cannot be named \"input\""]),
        (HEAD.replace("classes = 3", "classes = 3\nloss = \"hinge\"") + GOOD, &["[model]", "loss", "hinge"]),
        // A concat of maps of different sizes, and a dropout probability out of range.
        (
            with(&GOOD.replace(
                "op = \"flatten\"",
                "op = \"maxpool2d\"\nkernel_size = 2\n[[layer]]\nname = \"cat\"\nop = \"concat\"\ninputs = [\"conv1\", \"flat\"]",
            )),
            &["layer cat (concat)", "[1, 2, 6, 6]", "[1, 2, 3, 3]"],
        ),
        (with(&GOOD.replace("op = \"flatten\"", "op = \"dropout\"\np = 1.0")), &["layer flat", "not a probability"]),
        (with(&GOOD.replace("op = \"flatten\"", "op = \"dropout\"\np = \"0.5\"")), &["field p", "number"]),
        // Batch-norm: eps and momentum out of range, and on a flattened input.
        (with(&GOOD.replace("op = \"flatten\"", "op = \"batchnorm2d\"\neps = 0")), &["layer flat", "eps", "positive"]),
        (
            with(&GOOD.replace("op = \"flatten\"", "op = \"batchnorm2d\"\nmomentum = 1.5")),
            &["layer flat", "momentum", "[0, 1]"],
        ),
        (
            with(&GOOD.replace("name = \"fc\"\nop = \"linear\"", "name = \"bn\"\nop = \"batchnorm2d\"\n[[layer]]\nname = \"fc\"\nop = \"linear\"")),
            &["layer bn", "[n, c, h, w]", "[1, 72]"],
        ),
        (HEAD.replace("[1, 8, 8]", "[1, 8]") + GOOD, &["[model]", "input", "three positive integers"]),
        (
            with(&GOOD.replace("op = \"flatten\"", "op = \"maxpool2d\"\nkernel_size = 2\npadding = 2")),
            &["layer flat", "padding 2x2 is more than half the window 2x2"],
        ),
    ];
    for (text, needles) in cases {
        let e = err(text);
        for n in *needles {
            assert!(e.contains(n), "{e:?} does not mention {n:?}\n--- file:\n{text}");
        }
    }
}

#[test]
fn a_missing_huge_or_misnamed_model_file_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("wgcnn-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.toml");
    assert!(file::load(&missing).unwrap_err().to_string().contains("missing.toml"));
    let huge = dir.join("huge.toml");
    std::fs::write(&huge, vec![b'#'; 2 << 20]).unwrap();
    assert!(file::load(&huge).unwrap_err().to_string().contains("cap"));
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, with(&GOOD.replace("kernel_size", "kernal_size"))).unwrap();
    let e = file::load(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.toml") && e.contains("layer conv1"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_model_too_big_for_the_adapter_is_refused_naming_the_layer() {
    // fc0.weight is 10,000,000 x 72 floats (2.9 GB): past any adapter's storage-binding limit.
    let layers = GOOD.replace("name = \"fc\"", "name = \"fc0\"").replace("out_features = 3", "out_features = 10000000");
    let spec =
        file::parse(&with(&format!("{layers}[[layer]]\nname = \"fc\"\nop = \"linear\"\nout_features = 3\n"))).unwrap();
    match wgcnn::graph::Params::new(common::ctx(), &spec) {
        Err(e) => assert!(e.to_string().contains("fc0.weight"), "{e}"),
        Ok(_) => panic!("allocated a 2.9 GB parameter"),
    }
}

#[test]
fn a_train_table_is_read_and_every_mistake_in_it_is_named() {
    let train = "[train]\noptimizer = \"sgd\"\nlr = 0.1\nmomentum = 0.9\nnesterov = true\nweight_decay = 5e-4\n\
                 batch_size = 128\nepochs = 12\nschedule = \"step\"\nlr_decay = 0.5\naugment = \"crop=2,flip\"\n";
    let text = with(&format!("{GOOD}{train}"));
    file::parse(&text).unwrap();
    let t = file::train_settings(&text).unwrap();
    assert_eq!(
        t,
        file::TrainSettings {
            optimizer: Some("sgd".into()),
            lr: Some(0.1),
            momentum: Some(0.9),
            nesterov: Some(true),
            weight_decay: Some(5e-4),
            batch_size: Some(128),
            epochs: Some(12),
            schedule: Some("step".into()),
            lr_decay: Some(0.5),
            augment: Some("crop=2,flip".into()),
        }
    );
    assert_eq!(file::train_settings(&with(GOOD)).unwrap(), file::TrainSettings::default());
    let cases: &[(&str, &[&str])] = &[
        ("[train]\nlearning_rate = 0.1\n", &["[train]", "unknown field \"learning_rate\""]),
        ("[train]\nlr = -1\n", &["[train]", "field lr: must be a positive number"]),
        ("[train]\nlr = \"fast\"\n", &["field lr: must be a number"]),
        ("[train]\nmomentum = 1.5\n", &["field momentum: must be in [0, 1)"]),
        ("[train]\nbatch_size = 0\n", &["field batch_size: must be at least 1"]),
        ("[train]\nschedule = \"linear\"\n", &["field schedule: \"linear\" is not one of cosine, step, constant"]),
        ("[train]\noptimizer = \"rmsprop\"\n", &["field optimizer: \"rmsprop\" is not one of sgd, adam"]),
        ("[train]\naugment = \"rotate\"\n", &["field augment"]),
        ("train = 3\n", &["[train]", "must be a table"]),
    ];
    for (extra, needles) in cases {
        // The table is checked when the model file is read, and by train_settings.
        let text = if extra.starts_with("train =") {
            format!("{extra}{}", with(GOOD))
        } else {
            format!("{}{extra}", with(GOOD))
        };
        let e = err(&text);
        for n in *needles {
            assert!(e.contains(n), "{extra:?}: {e:?} lacks {n:?}");
        }
        assert!(file::train_settings(&text).is_err(), "{extra:?}");
    }
}

#[test]
fn every_shipped_model_file_states_its_training_settings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let t = file::load_train_settings(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(
                t.lr.is_some() && t.batch_size.is_some() && t.epochs.is_some() && t.optimizer.is_some(),
                "{}: {t:?}",
                p.display()
            );
        }
    }
}

#[test]
fn the_torchvision_resnet18_file_names_and_shapes_every_tensor_as_torchvision_does() {
    // torchvision.models.resnet18().state_dict(): 122 tensors; the digest is FNV-1a 64 of the sorted
    // "name:[shape]" entries joined by commas (num_batches_tracked's shape is []), computed from
    // torchvision 0.29 (scripts/torchvision_check.py loads such a state_dict strictly).
    let spec = file::load(Path::new("models/torchvision/resnet18.toml")).unwrap();
    let mut entries: Vec<String> = spec
        .params()
        .iter()
        .chain(&spec.buffers())
        .map(|p| format!("{}:{:?}", p.name, p.shape))
        .chain(spec.tracked().iter().map(|n| format!("{n}:[]")))
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 122);
    let text = entries.join(",");
    let digest = wgcnn::fsio::fnv1a(wgcnn::fsio::FNV_OFFSET, text.as_bytes());
    assert_eq!(digest, 0x31bc_3e31_29ff_dc3c, "{text}");
    let params: usize = spec.params().iter().map(|p| p.len()).sum();
    assert_eq!(params, 11_689_512);
}
