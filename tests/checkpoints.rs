//! Checkpoints (round trip, resume, the model description they carry, bad files) and bad data files.

mod common;

use common::*;
use wgcnn::checkpoint;
use wgcnn::data::{self, Split};
use wgcnn::kernels::activation::Activation;
use wgcnn::kernels::optim::Adam;
use wgcnn::kernels::pool::PoolKind;
use wgcnn::model::{init_params, lenet5, LeNetConfig};
use wgcnn::train::{Optimizer, Trainer};
use wgcnn::Error;

#[test]
fn checkpoints_round_trip_bit_exactly_and_resume() {
    let c = ctx();
    let dir = std::env::temp_dir().join(format!("wgcnn-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    let data = sample(48);
    let cfg = LeNetConfig { activation: Activation::Tanh, ..LeNetConfig::default() };
    let spec = lenet5(cfg);
    let init = init_params(&spec.params(), 5);
    let opt = Optimizer::Adam(Adam::default());
    // 3 steps, save, 3 more steps  ==  load, 3 steps.
    let (_, mut t) = gpu_steps(&spec, &data, 16, opt, &init, 3);
    checkpoint::save_trainer(c, &path, &t).unwrap();
    let saved = t.params.values.read(c).unwrap();
    let (cspec, state) = checkpoint::load_model(&path).unwrap();
    let values = state.params;
    assert_eq!(cspec, spec, "the checkpoint names its model");
    for (a, b) in saved.iter().zip(&values) {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "checkpoint values differ");
    }
    // wgcnn writes safetensors itself (deterministically): the reference reader agrees on every tensor.
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.len(), spec.params().len());
    for (p, v) in spec.params().iter().zip(&saved) {
        let view = st.tensor(&p.name).unwrap();
        assert_eq!((view.dtype(), view.shape()), (safetensors::Dtype::F32, &p.shape[..]), "{}", p.name);
        assert_eq!(view.data(), bytemuck::cast_slice::<f32, u8>(v), "{}", p.name);
    }
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap().get("format").map(String::as_str), Some("pt"));
    // Saving the same state again gives the same bytes, model and optimizer file both.
    let again = dir.join("again.safetensors");
    checkpoint::save_trainer(c, &again, &t).unwrap();
    assert!(std::fs::read(&again).unwrap() == bytes, "checkpoints of one state are byte-identical");
    let optim = |p: &std::path::Path| std::fs::read(checkpoint::optim_path(p)).unwrap();
    assert!(optim(&again) == optim(&path), "optimizer files of one state are byte-identical");
    for i in 0..3 {
        t.step(c, i).unwrap();
    }
    let continued = t.params.values.read(c).unwrap();
    let mut r = Trainer::new(c, spec.clone(), &data, 16, opt, &values).unwrap();
    assert!(checkpoint::load_optimizer(c, &path, &mut r).unwrap().is_some());
    assert_eq!(r.optim.step, 3);
    r.start_epoch(c, None).unwrap();
    for i in 0..3 {
        r.step(c, i).unwrap();
    }
    let resumed = r.params.values.read(c).unwrap();
    for (a, b) in continued.iter().zip(&resumed) {
        assert!(
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "resuming from the checkpoint changed the run"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_checkpoints_are_refused_with_clear_errors() {
    let dir = std::env::temp_dir().join(format!("wgcnn-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = lenet5(LeNetConfig::default());
    let specs = spec.params();
    let values = init_params(&specs, 1);
    let meta = checkpoint::model_metadata(&spec);
    let expect = |path: &std::path::Path, needle: &str| match checkpoint::load_model(path) {
        Err(e) => assert!(e.to_string().contains(needle), "{e} does not mention {needle:?}"),
        Ok(_) => panic!("{}: loaded", path.display()),
    };
    // Missing file.
    expect(&dir.join("nope.safetensors"), "nope.safetensors");
    // Not safetensors.
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"definitely not a checkpoint").unwrap();
    expect(&junk, "not a valid safetensors file");
    // Another model: a parameter missing and one too many.
    let mut other = specs.clone();
    other[9].name = "fc4.bias".into();
    let p = dir.join("other.safetensors");
    checkpoint::save_params(&p, &other, &values, &meta).unwrap();
    expect(&p, "fc4.bias");
    // A checkpoint of another model (its metadata describes LeNet-5 with tanh: same names and shapes,
    // so it loads as that model, not as the one asked for) and a corrupt model description.
    let tanh = lenet5(LeNetConfig { activation: Activation::Tanh, ..LeNetConfig::default() });
    let p = dir.join("tanh.safetensors");
    checkpoint::save_params(&p, &specs, &values, &checkpoint::model_metadata(&tanh)).unwrap();
    assert_eq!(checkpoint::load_model(&p).unwrap().0, tanh);
    let mut broken = meta.clone();
    broken.insert(checkpoint::MODEL_KEY.into(), "[model]\nname = 3".into());
    let p = dir.join("broken.safetensors");
    checkpoint::save_params(&p, &specs, &values, &broken).unwrap();
    expect(&p, "its model description is wrong");
    // A checkpoint of an older release (LeNet keys, no model description) still loads.
    let mut legacy = std::collections::BTreeMap::new();
    legacy.insert("wgcnn.model".to_string(), "lenet5".to_string());
    legacy.insert("wgcnn.pool".to_string(), "avg".to_string());
    let p = dir.join("legacy.safetensors");
    checkpoint::save_params(&p, &specs, &values, &legacy).unwrap();
    let avg = lenet5(LeNetConfig { pool: PoolKind::Avg, ..LeNetConfig::default() });
    assert_eq!(checkpoint::load_model(&p).unwrap().0, avg);
    // A wrong shape.
    let mut wide = specs.clone();
    wide[0].shape = vec![6, 1, 3, 3];
    let mut wide_values = values.clone();
    wide_values[0] = vec![0.0; 54];
    let p = dir.join("wide.safetensors");
    checkpoint::save_params(&p, &wide, &wide_values, &meta).unwrap();
    expect(&p, "conv1.weight has shape [6, 1, 3, 3]");
    // A NaN.
    let mut nan = values.clone();
    nan[3][2] = f32::NAN;
    let p = dir.join("nan.safetensors");
    checkpoint::save_params(&p, &specs, &nan, &meta).unwrap();
    expect(&p, "non-finite");
    // Saving into a missing folder fails without touching anything.
    assert!(checkpoint::save_params(&dir.join("no/such/dir/m.safetensors"), &specs, &values, &meta).is_err());
    // A failed save leaves the previous file whole.
    let good = dir.join("good.safetensors");
    checkpoint::save_params(&good, &specs, &values, &meta).unwrap();
    let before = std::fs::read(&good).unwrap();
    let bad_values = vec![vec![0.0f32; 3]; specs.len()]; // wrong lengths: serialization fails
    assert!(checkpoint::save_params(&good, &specs, &bad_values, &meta).is_err());
    assert_eq!(std::fs::read(&good).unwrap(), before);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_data_files_are_errors_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("wgcnn-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let expect = |needle: &str| match data::load(&dir, Split::Test) {
        Err(e) => assert!(e.to_string().contains(needle), "{e} does not mention {needle:?}"),
        Ok(_) => panic!("loaded bad data"),
    };
    expect("no t10k images file");
    let idx = |magic: u32, dims: &[u32], payload: &[u8]| {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(payload);
        v
    };
    let img = dir.join("t10k-images-idx3-ubyte");
    let lab = dir.join("t10k-labels-idx1-ubyte");
    std::fs::write(&img, idx(0x0803, &[2, 2, 2], &[0; 8])).unwrap();
    expect("no t10k labels file");
    std::fs::write(&lab, idx(0x0801, &[3], &[1, 2, 3])).unwrap();
    expect("3 labels for 2 images");
    std::fs::write(&lab, idx(0x0801, &[2], &[1, 12])).unwrap();
    expect("label 12 at item 1");
    std::fs::write(&lab, idx(0x0803, &[2], &[1, 2])).unwrap();
    expect("bad IDX magic");
    std::fs::write(&lab, idx(0x0801, &[2], &[1, 2])).unwrap();
    std::fs::write(&img, idx(0x0803, &[2, 2, 2], &[0; 5])).unwrap();
    expect("truncated");
    std::fs::write(&img, [0x1f, 0x8b, 0x08, 0x00, 1, 2, 3]).unwrap();
    expect("corrupt gzip");
    std::fs::write(&img, idx(0x0803, &[2, 2, 2], &[7; 8])).unwrap();
    let d = data::load(&dir, Split::Test).unwrap();
    assert_eq!((d.len(), d.rows, d.cols, d.labels.clone()), (2, 2, 2, vec![1, 2]));
    // Images of the wrong size for LeNet-5: an error naming the file, not a panic.
    let spec = lenet5(LeNetConfig::default());
    match Trainer::new(ctx(), spec.clone(), &d, 2, sgd(), &init_params(&spec.params(), 1)) {
        Err(e @ Error::Data { .. }) => {
            let m = e.to_string();
            assert!(m.contains("1x2x2") && m.contains("t10k-images-idx3-ubyte") && m.contains("1x28x28"), "{m}")
        }
        Err(e) => panic!("expected a data error, got {e}"),
        Ok(_) => panic!("accepted 2x2 images"),
    }
    // Concatenated gzip members (valid gzip, e.g. from `cat a.gz b.gz`) read as one stream.
    let gz = |b: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, b).unwrap();
        e.finish().unwrap()
    };
    let whole = idx(0x0803, &[2, 2, 2], &[5; 8]);
    std::fs::remove_file(&img).unwrap();
    let gz_path = dir.join("t10k-images-idx3-ubyte.gz");
    std::fs::write(&gz_path, [gz(&whole[..10]), gz(&whole[10..])].concat()).unwrap();
    assert_eq!(data::load(&dir, Split::Test).unwrap().images, vec![5; 8]);
    std::fs::remove_file(&gz_path).unwrap();
    // Not a file where a data file should be: each named for what it is.
    #[cfg(unix)]
    not_files(&img, &expect);
    std::fs::remove_dir_all(&dir).ok();
}

#[cfg(unix)]
fn not_files(img: &std::path::Path, expect: &dyn Fn(&str)) {
    let dir = img.parent().unwrap();
    std::fs::create_dir(img).unwrap();
    expect("is a directory");
    std::fs::remove_dir(img).unwrap();
    std::os::unix::fs::symlink(dir.join("nowhere"), img).unwrap();
    expect("dangling symbolic link");
    std::fs::remove_file(img).unwrap();
    std::os::unix::fs::symlink(img, img).unwrap();
    expect("symbolic links");
    std::fs::remove_file(img).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(img).status().unwrap().success());
    expect("FIFO");
    std::fs::remove_file(img).unwrap();
}
