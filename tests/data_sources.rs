//! Data sources behind `--data`: image folders, CIFAR binary files and IDX files give the same bytes
//! for the same pictures, train to the same bits, carry their preparation into the checkpoint, and
//! refuse bad input with an error naming the file.

mod cli;
mod common;

use std::path::{Path, PathBuf};

use common::ctx;
use wgcnn::data::{self, Augment, LoadOptions, Normalize, Split};
use wgcnn::model::{file, ModelSpec};
use wgcnn::rng::Rng;
use wgcnn::session::train::{run, TrainOptions};
use wgcnn::train::{Optimizer, Schedule, TrainConfig};

/// A fresh folder for one test, and (once per binary) a private decoded-picture cache.
fn temp(name: &str) -> PathBuf {
    static CACHE: std::sync::Once = std::sync::Once::new();
    CACHE.call_once(|| {
        let c = std::env::temp_dir().join(format!("wgcnn-data-cache-{}", std::process::id()));
        std::env::set_var("WGCNN_DATA_CACHE", c);
    });
    let d = std::env::temp_dir().join(format!("wgcnn-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sgd() -> Optimizer {
    common::sgd()
}

/// `wgcnn train` with its defaults, on `data` with `model`, in file order unless `shuffle`.
fn options(data: &Path, model: ModelSpec, epochs: usize, batch: usize) -> TrainOptions {
    TrainOptions {
        data: data.to_path_buf(),
        normalize: Normalize::Auto,
        augment: Augment::default(),
        val_split: 0.1,
        cifar_labels: data::CifarLabels::Fine,
        cache: true,
        model,
        batch_size: batch,
        optimizer: sgd(),
        config: TrainConfig {
            epochs,
            shuffle: false,
            schedule: Schedule::Constant,
            log_every: 1000,
            ..TrainConfig::default()
        },
        seed: 1,
        init: None,
        model_given: false,
        reset: Vec::new(),
        freeze: Vec::new(),
        save: None,
        plot: None,
        resume: false,
        epochs_given: false,
        save_every_epoch: false,
    }
}

/// The f32 tensors of a safetensors file, by name.
fn tensors(path: &Path) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    wgcnn::checkpoint::read(path).unwrap().tensors
}

fn write_idx(path: &Path, dims: &[usize], bytes: &[u8]) {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    dims.iter().for_each(|&d| out.extend_from_slice(&(d as u32).to_be_bytes()));
    out.extend_from_slice(bytes);
    std::fs::write(path, out).unwrap();
}

/// Fashion-MNIST from Debian's `dataset-fashion-mnist` (CI installs it), else the bundled MNIST sample.
fn grey_source() -> PathBuf {
    let f = PathBuf::from("/usr/share/datasets/fashion-mnist");
    if f.join("train-images-idx3-ubyte.gz").exists() {
        return f;
    }
    assert!(std::env::var_os("CI").is_none(), "CI installs dataset-fashion-mnist: {} is missing", f.display());
    eprintln!("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist): using the bundled MNIST sample");
    data::bundled_dir()
}

/// Class folder names that sort in label order.
const GARMENTS: [&str; 10] =
    ["0_tshirt", "1_trouser", "2_pullover", "3_dress", "4_coat", "5_sandal", "6_shirt", "7_sneaker", "8_bag", "9_boot"];

#[test]
fn a_png_tree_loads_and_trains_as_the_idx_files_holding_the_same_pictures() {
    let src = grey_source();
    let (train, test) = (data::load(&src, Split::Train).unwrap(), data::load(&src, Split::Test).unwrap());
    let dir = temp("tree");
    let (tree, idx) = (dir.join("tree"), dir.join("idx"));
    std::fs::create_dir_all(&idx).unwrap();
    // The first 640 training and 200 test pictures as PNGs, DIR/{train,test}/<class>/<n>.png; the IDX
    // copies hold the same pictures in the folder's order (class by class, then by number).
    for (split, set, n, prefix) in [("train", &train, 640usize, "train"), ("test", &test, 200, "t10k")] {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (set.labels[i], i));
        for &i in &order {
            let folder = tree.join(split).join(GARMENTS[set.labels[i] as usize]);
            std::fs::create_dir_all(&folder).unwrap();
            image::GrayImage::from_raw(28, 28, set.image(i).to_vec())
                .unwrap()
                .save(folder.join(format!("{i:05}.png")))
                .unwrap();
        }
        let picked = set.select(&order);
        write_idx(&idx.join(format!("{prefix}-images-idx3-ubyte")), &[n, 28, 28], &picked.images);
        write_idx(&idx.join(format!("{prefix}-labels-idx1-ubyte")), &[n], &picked.labels);
    }
    std::fs::write(tree.join("train").join(".DS_Store"), b"junk").unwrap();
    std::fs::write(tree.join("train").join("0_tshirt").join("notes.txt"), b"not a picture").unwrap();
    let opts = LoadOptions::new([1, 28, 28]);
    let mut skipped = 0;
    let from_tree = data::load_splits(&tree, &opts, &mut |p| {
        if let data::LoadProgress::Skipped { count, .. } = p {
            skipped += count;
        }
    })
    .unwrap();
    let from_idx = data::load_splits(&idx, &opts, &mut |_| {}).unwrap();
    assert_eq!((from_tree.kind, from_idx.kind), (data::SourceKind::FolderSplits, data::SourceKind::Idx));
    assert_eq!(skipped, 2, ".DS_Store and notes.txt are skipped and counted");
    assert_eq!(from_tree.train.class_names, GARMENTS);
    for (a, b, what) in [(&from_tree.train, &from_idx.train, "train"), (&from_tree.test, &from_idx.test, "test")] {
        assert!(a.images == b.images, "{what}: the PNG tree's pixels differ from the IDX files'");
        assert_eq!(a.labels, b.labels, "{what}: labels");
    }
    // Same pictures, same order, same normalisation (the training split's, computed): same bits.
    let spec = wgcnn::model::lenet5(Default::default());
    let mut checkpoints = Vec::new();
    for (name, d) in [("tree", &tree), ("idx", &idx)] {
        let mut o = options(d, spec.clone(), 1, 32);
        o.normalize = Normalize::Computed;
        o.save = Some(dir.join(format!("{name}.safetensors")));
        let r = run(&o, &mut |_| {}).unwrap();
        eprintln!("{name}: test accuracy {:.3} after {} steps", r.test_accuracy, r.steps);
        checkpoints.push(tensors(o.save.as_ref().unwrap()));
    }
    assert!(checkpoints[0] == checkpoints[1], "the tree and the IDX files trained to different weights");
    // The preparation travels: the tree's checkpoint names the garments and holds the statistics.
    let (_, _, prep) = wgcnn::checkpoint::load_prepared(&dir.join("tree.safetensors")).unwrap();
    assert_eq!(prep.classes, GARMENTS);
    let (m, s) = data::prep::channel_stats(&from_tree.train);
    assert_eq!((prep.mean.clone(), prep.std.clone()), (m, s));
}

/// One CIFAR record: label byte(s), then the R, G and B planes.
fn cifar_record(labels: &[u8], rgb: [u8; 3], marker: u8) -> Vec<u8> {
    let mut r = labels.to_vec();
    for (c, &v) in rgb.iter().enumerate() {
        let mut plane = vec![v; 1024];
        plane[0] = marker.wrapping_add(c as u8); // the first pixel tells the planes apart
        r.extend(plane);
    }
    r
}

#[test]
fn cifar_files_load_with_their_labels_and_planes_in_order() {
    let dir = temp("cifar10");
    let mut batch1 = Vec::new();
    let mut batch2 = Vec::new();
    for i in 0..6u8 {
        batch1.extend(cifar_record(&[i % 10], [10 + i, 100 + i, 200 + i], 3 * i));
    }
    batch2.extend(cifar_record(&[9], [1, 2, 3], 90));
    std::fs::write(dir.join("data_batch_1.bin"), &batch1).unwrap();
    std::fs::write(dir.join("data_batch_2.bin"), &batch2).unwrap();
    std::fs::write(dir.join("test_batch.bin"), cifar_record(&[4], [7, 8, 9], 0)).unwrap();
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    std::fs::write(dir.join("batches.meta.txt"), names).unwrap();
    let s = data::load_splits(&dir, &LoadOptions::new([3, 32, 32]), &mut |_| {}).unwrap();
    assert_eq!(s.kind, data::SourceKind::Cifar10);
    assert_eq!(s.train.labels, vec![0, 1, 2, 3, 4, 5, 9]);
    assert_eq!(s.train.class_names[9], "truck");
    for i in 0..6usize {
        let im = s.train.image(i);
        assert_eq!(
            [im[0], im[1024], im[2048]],
            [3 * i as u8, 3 * i as u8 + 1, 3 * i as u8 + 2],
            "plane order, item {i}"
        );
        assert_eq!(
            [im[1], im[1025], im[2049]],
            [10 + i as u8, 100 + i as u8, 200 + i as u8],
            "R, G, B values, item {i}"
        );
    }
    assert_eq!(s.test.labels, vec![4]);
    // A grey model sees the luma (PIL's "L") of the same pictures.
    let g = data::load_splits(&dir, &LoadOptions::new([1, 32, 32]), &mut |_| {}).unwrap();
    let want = ((19595 * 10 + 38470 * 100 + 7471 * 200 + 0x8000) >> 16) as u8;
    assert_eq!(g.train.image(0)[1], want);

    // CIFAR-100: (coarse, fine) label pairs.
    let dir = temp("cifar100");
    let mut train = Vec::new();
    for (coarse, fine) in [(3u8, 77u8), (19, 99), (0, 0)] {
        train.extend(cifar_record(&[coarse, fine], [1, 2, 3], 0));
    }
    std::fs::write(dir.join("train.bin"), &train).unwrap();
    std::fs::write(dir.join("test.bin"), cifar_record(&[5, 50], [1, 2, 3], 0)).unwrap();
    let fine = data::load_splits(&dir, &LoadOptions::new([3, 32, 32]), &mut |_| {}).unwrap();
    // The same file from bytes (as a browser page gets it).
    let bytes = std::fs::read(dir.join("train.bin")).unwrap();
    let from_bytes =
        data::cifar::from_bytes(Path::new("train.bin"), &bytes, data::SourceKind::Cifar100, data::CifarLabels::Fine)
            .unwrap();
    assert!(from_bytes.images == fine.train.images && from_bytes.labels == fine.train.labels);
    assert_eq!(
        (fine.kind, fine.train.labels.clone(), fine.train.class_names.len()),
        (data::SourceKind::Cifar100, vec![77, 99, 0], 100)
    );
    let mut o = LoadOptions::new([3, 32, 32]);
    o.cifar_labels = data::CifarLabels::Coarse;
    let coarse = data::load_splits(&dir, &o, &mut |_| {}).unwrap();
    assert_eq!(
        (coarse.train.labels, coarse.test.labels, coarse.train.class_names.len()),
        (vec![3, 19, 0], vec![5], 20)
    );
}

/// A 3-class set where only colour separates the classes: squares and discs of random size and place,
/// in red, green or blue of equal luma (so a grey copy cannot tell them apart), at random brightness,
/// on black, at random picture sizes; every third picture a JPEG.
fn colour_set(root: &Path, split: &str, per_class: usize, rng: &mut Rng) {
    // Colours of (nearly) equal ITU-R 601 luma: 103, 100, 100.
    let colours = [("blue", [120.0, 60.0, 255.0]), ("green", [0.0, 170.0, 0.0]), ("red", [255.0, 40.0, 30.0])];
    for (name, rgb) in colours {
        let folder = root.join(split).join(name);
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..per_class {
            let side = 24 + rng.below(24) as u32;
            let r = (4 + rng.below(u64::from(side / 3))) as f64;
            let (cx, cy) = (rng.uniform(r, f64::from(side) - r), rng.uniform(r, f64::from(side) - r));
            let disc = rng.below(2) == 0;
            let bright = rng.uniform(0.55, 1.0);
            let img = image::RgbImage::from_fn(side, side, |x, y| {
                let (dx, dy) = (f64::from(x) + 0.5 - cx, f64::from(y) + 0.5 - cy);
                let inside = if disc { dx * dx + dy * dy <= r * r } else { dx.abs() <= r && dy.abs() <= r };
                if inside {
                    image::Rgb(rgb.map(|v| (v * bright) as u8))
                } else {
                    image::Rgb([0, 0, 0])
                }
            });
            if i % 3 == 2 {
                img.save(folder.join(format!("{i:04}.jpg"))).unwrap();
            } else {
                img.save(folder.join(format!("{i:04}.png"))).unwrap();
            }
        }
    }
}

fn colour_model(channels: usize) -> ModelSpec {
    file::parse(&format!(
        r#"
[model]
name = "colour-{channels}"
input = [{channels}, 16, 16]
classes = 3

[[layer]]
name = "conv1"
op = "conv2d"
out_channels = 8
kernel_size = 3
padding = 1

[[layer]]
name = "relu1"
op = "relu"

[[layer]]
name = "pool1"
op = "maxpool2d"
kernel_size = 2

[[layer]]
name = "conv2"
op = "conv2d"
out_channels = 16
kernel_size = 3
padding = 1

[[layer]]
name = "relu2"
op = "relu"

[[layer]]
name = "gap"
op = "global_avgpool"

[[layer]]
name = "flatten"
op = "flatten"

[[layer]]
name = "fc"
op = "linear"
out_features = 3
"#
    ))
    .unwrap()
}

#[test]
fn colour_alone_separates_classes_that_grey_cannot() {
    let dir = temp("colour");
    let mut rng = Rng::new(9);
    colour_set(&dir, "train", 120, &mut rng);
    colour_set(&dir, "test", 40, &mut rng);
    let mut acc = Vec::new();
    for channels in [3, 1] {
        let mut o = options(&dir, colour_model(channels), 12, 32);
        o.config.shuffle = true;
        o.augment = Augment { crop: 4, flip: true, ..Augment::default() };
        o.optimizer = Optimizer::Adam(wgcnn::kernels::optim::Adam { lr: 0.01, ..Default::default() });
        o.save = Some(dir.join(format!("c{channels}.safetensors")));
        let r = run(&o, &mut |_| {}).unwrap();
        eprintln!("{channels} channel(s): test accuracy {:.3} ({}/{})", r.test_accuracy, r.test_correct, r.test_count);
        acc.push(r.test_accuracy);
    }
    assert!(acc[0] >= 0.99, "RGB: {:.3} < 0.99", acc[0]);
    assert!(acc[1] <= 0.5, "grey (channels merged) should be near chance (1/3), got {:.3}", acc[1]);

    // predict on a PNG of the test folder gives eval's probabilities for that picture.
    let ckpt = dir.join("c3.safetensors");
    let pic = dir.join("test").join("green").join("0000.png");
    let (names, rows) = wgcnn::session::infer::predict(&ckpt, &[pic]).unwrap();
    assert_eq!(names, ["blue", "green", "red"]);
    assert_eq!(rows[0].name, "green");
    let (spec, state, prep) = wgcnn::checkpoint::load_prepared(&ckpt).unwrap();
    assert!(!prep.is_plain(), "pictures are normalised by the training split's statistics");
    let test = data::load_splits(&dir, &LoadOptions::new(spec.input), &mut |_| {}).unwrap().test;
    let c = ctx();
    let mut params = wgcnn::graph::Params::new(c, &spec).unwrap();
    params.write_state(c, &state).unwrap();
    let ev = wgcnn::train::Evaluator::prepared(c, &spec, &params, &test, 1000, &prep.transform()).unwrap();
    let probs = ev.probabilities(c).unwrap();
    let first_green = test.labels.iter().position(|&l| l == 1).unwrap();
    let diff = probs[first_green].iter().zip(&rows[0].probabilities).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!("predict vs eval on green/0000.png: max |Δp| = {diff:e}");
    assert_eq!(probs[first_green], rows[0].probabilities, "predict and eval disagree on the same picture");

    // eval's per-class figures and confusion matrix add up.
    let opts = wgcnn::session::infer::EvalOptions {
        data: dir.clone(),
        batch_size: 1000,
        val_split: 0.1,
        seed: 1,
        cifar_labels: data::CifarLabels::Fine,
        cache: true,
        weights: Default::default(),
    };
    let r = wgcnn::session::infer::eval(&ckpt, &opts, &mut |_| {}).unwrap();
    assert_eq!(r.confusion.iter().flatten().sum::<u64>(), r.count as u64);
    assert_eq!((0..3).map(|i| r.confusion[i][i]).sum::<u64>(), r.correct);
    assert_eq!(r.per_class.iter().map(|c| c.count).collect::<Vec<_>>(), [40, 40, 40]);
    let plot = dir.join("confusion.png");
    wgcnn::viz::plot_confusion(&plot, &r.classes, &r.confusion, &r.name).unwrap();
    assert!(image::open(&plot).unwrap().width() > 200);
}

/// The colour model with a batch-norm after its first conv and `classes` outputs.
fn colour_bn_model(classes: usize) -> ModelSpec {
    let text = file::to_toml(&colour_model(3))
        .replace("name = \"relu1\"", "name = \"bn1\"\nop = \"batchnorm2d\"\n\n[[layer]]\nname = \"relu1\"");
    let text = text
        .replace("classes = 3", &format!("classes = {classes}"))
        .replace("out_features = 3", &format!("out_features = {classes}"));
    file::parse(&text).unwrap()
}

#[test]
fn fine_tuning_freezes_resets_and_takes_plain_state_dicts() {
    let dir = temp("finetune");
    let mut rng = Rng::new(6);
    colour_set(&dir, "train", 16, &mut rng);
    colour_set(&dir, "test", 4, &mut rng);
    // A two-class copy (no red) for a new head.
    let two = dir.join("two");
    for split in ["train", "test"] {
        for c in ["blue", "green"] {
            let (from, to) = (dir.join(split).join(c), two.join(split).join(c));
            std::fs::create_dir_all(&to).unwrap();
            for e in std::fs::read_dir(&from).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let three = colour_bn_model(3);
    let mut o = options(&dir, three.clone(), 1, 8);
    let pre = dir.join("pre.safetensors");
    o.save = Some(pre.clone());
    run(&o, &mut |_| {}).unwrap();
    let before = tensors(&pre);
    // Freeze everything but the head: the frozen tensors (and the batch-norm's running statistics)
    // keep every bit, the head moves.
    let tuned = dir.join("tuned.safetensors");
    let mut f = options(&dir, three.clone(), 1, 8);
    (f.init, f.save) = (Some(pre.clone()), Some(tuned.clone()));
    f.freeze = ["conv1", "bn1", "conv2"].map(String::from).to_vec();
    run(&f, &mut |_| {}).unwrap();
    let after = tensors(&tuned);
    for (name, (_, v)) in &before {
        let same = after[name].1.iter().map(|x| x.to_bits()).eq(v.iter().map(|x| x.to_bits()));
        assert_eq!(same, !name.starts_with("fc."), "{name}: frozen tensors keep their bits, the head changes");
    }
    // A new head for two classes from the three-class weights (--model FILE --init W --reset fc),
    // the rest frozen: fc has the new shape, everything else is the pre-trained bits.
    let two_model = colour_bn_model(2);
    let new_head = dir.join("two.safetensors");
    let mut r = options(&two, two_model.clone(), 1, 8);
    (r.init, r.model_given, r.save) = (Some(pre.clone()), true, Some(new_head.clone()));
    r.reset = vec!["fc".into()];
    r.freeze = ["conv1", "bn1", "conv2"].map(String::from).to_vec();
    run(&r, &mut |_| {}).unwrap();
    let got = tensors(&new_head);
    assert_eq!(got["fc.weight"].0, vec![2, 16]);
    assert_eq!(got["conv2.weight"].1, before["conv2.weight"].1);
    assert_eq!(got["bn1.running_var"].1, before["bn1.running_var"].1);
    // Without --reset the three-class head does not fit, and the error says which tensor.
    let mut strict = r.clone();
    strict.reset.clear();
    let e = run(&strict, &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("fc.weight") && e.contains("[3, 16]"), "{e}");
    // Wrong layer names are errors naming them.
    let mut bad = r.clone();
    bad.reset = vec!["fc9".into()];
    let e = run(&bad, &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("--reset fc9") && e.contains("no layer of that name"), "{e}");
    let mut bad = f.clone();
    bad.freeze = vec!["relu1".into()];
    let e = run(&bad, &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("--freeze relu1") && e.contains("no weights"), "{e}");
    // A plain state_dict (no metadata, no num_batches_tracked), as safetensors.torch.save_file writes
    // one: refused alone with what to do, loaded with its model file.
    let plain = dir.join("plain.safetensors");
    let list: Vec<(String, Vec<usize>, wgcnn::checkpoint::Data<'_>)> =
        before.iter().map(|(k, (shape, v))| (k.clone(), shape.clone(), wgcnn::checkpoint::Data::F32(v))).collect();
    std::fs::write(&plain, wgcnn::checkpoint::to_bytes(&list, &Default::default()).unwrap()).unwrap();
    let e = wgcnn::checkpoint::load_model(&plain).err().unwrap().to_string();
    assert!(e.contains("no wgcnn model description") && e.contains("--model FILE.toml"), "{e}");
    let (state, prep) = wgcnn::checkpoint::load_weights(&plain, &three, &[], 0).unwrap();
    assert!(prep.is_none());
    assert_eq!(state.tracked, vec![0]);
    let (_, pre_state) = wgcnn::checkpoint::load_model(&pre).unwrap();
    assert_eq!(state.params, pre_state.params);
    assert_eq!(state.buffers, pre_state.buffers);
}

#[test]
fn augmented_runs_resume_bit_identically() {
    let dir = temp("resume");
    let mut rng = Rng::new(4);
    colour_set(&dir, "train", 20, &mut rng);
    colour_set(&dir, "test", 4, &mut rng);
    let run_to = |name: &str, o: &TrainOptions| {
        let mut o = o.clone();
        o.save = Some(dir.join(format!("{name}.safetensors")));
        run(&o, &mut |_| {}).unwrap();
        o.save.unwrap()
    };
    let mut o = options(&dir, colour_model(3), 2, 16);
    o.config.shuffle = true;
    // Every kind of draw, so an exact resume covers the warp's too.
    o.augment = Augment { crop: 3, flip: true, rotate: 10.0, shear: 8.0, scale: 0.1, shift: 1.5, thick: 0.5 };
    let straight = run_to("straight", &o);
    // Interrupt in the second epoch (60 pictures: 4 steps an epoch), as Ctrl-C does, then resume.
    let stopped = dir.join("stopped.safetensors");
    let mut part = o.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    (part.config.stop, part.config.log_every, part.save) = (Some(stop.clone()), 1, Some(stopped.clone()));
    let e = run(&part, &mut |p| {
        if let wgcnn::session::train::Progress::Event(wgcnn::train::Event::Step { epoch: 2, step: 2, .. }) = p {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    assert!(matches!(e, Err(wgcnn::Error::Interrupted(_))), "{:?}", e.err());
    let mut resume = o.clone();
    (resume.init, resume.resume) = (Some(stopped.clone()), true);
    resume.save = Some(stopped.clone());
    run(&resume, &mut |_| {}).unwrap();
    assert!(tensors(&straight) == tensors(&stopped), "the resumed augmented run differs from the straight one");
    // And the augmentation does something: without it the weights differ.
    let mut plain = o.clone();
    plain.augment = Augment::default();
    assert!(tensors(&run_to("plain", &plain)) != tensors(&straight));
}

#[test]
fn channel_statistics_equal_a_plain_f64_computation_and_numpy() {
    let mut rng = Rng::new(3);
    let (n, c, h, w) = (37usize, 3usize, 9usize, 7usize);
    let images: Vec<u8> = (0..n * c * h * w).map(|i| (rng.below(200) + (i % 3) as u64 * 20) as u8).collect();
    let d = data::Dataset {
        images: images.clone(),
        labels: vec![0; n],
        channels: c,
        rows: h,
        cols: w,
        class_names: vec!["a".into()],
        source: PathBuf::from("synthetic"),
    };
    let (mean, std) = data::prep::channel_stats(&d);
    for ch in 0..c {
        let v: Vec<f64> = (0..n)
            .flat_map(|i| {
                d.image(i)[ch * h * w..(ch + 1) * h * w].iter().map(|&b| f64::from(b) / 255.0).collect::<Vec<_>>()
            })
            .collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let s = (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt();
        assert!((f64::from(mean[ch]) - m).abs() < 1e-6 && (f64::from(std[ch]) - s).abs() < 1e-6, "channel {ch}");
    }
    // numpy's figures for the same bytes (CI installs numpy; elsewhere this part needs it too).
    let dir = temp("numpy");
    std::fs::write(dir.join("x.bin"), &images).unwrap();
    let script = format!(
        "import numpy as np; x = np.fromfile('{}', dtype=np.uint8).reshape({n}, {c}, {h}, {w}) / 255.0; \
         print(' '.join(repr(float(v)) for v in list(x.mean(axis=(0, 2, 3))) + list(x.std(axis=(0, 2, 3)))))",
        dir.join("x.bin").display()
    );
    let out = std::process::Command::new("python3").args(["-c", &script]).output();
    let out = match out {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap(),
        other => {
            assert!(std::env::var_os("CI").is_none(), "CI installs numpy: python3 -c 'import numpy' failed: {other:?}");
            eprintln!("numpy is not installed here: the comparison with numpy is skipped outside CI");
            return;
        }
    };
    let np: Vec<f64> = out.split_whitespace().map(|v| v.parse().unwrap()).collect();
    for ch in 0..c {
        let (dm, ds) = ((f64::from(mean[ch]) - np[ch]).abs(), (f64::from(std[ch]) - np[c + ch]).abs());
        eprintln!("channel {ch}: |Δmean| = {dm:e}, |Δstd| = {ds:e} against numpy");
        assert!(dm <= 1e-6 && ds <= 1e-6, "channel {ch}: {} {} vs numpy {} {}", mean[ch], std[ch], np[ch], np[c + ch]);
    }
}

/// The error of loading `dir` for a 3×16×16 model, as text.
fn load_error(dir: &Path) -> String {
    match data::load_splits(dir, &LoadOptions::new([3, 16, 16]), &mut |_| {}) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn png(path: &Path, side: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(side, side, image::Rgb([200, 10, 10])).save(path).unwrap();
}

#[test]
fn bad_folders_and_files_are_refused_naming_them() {
    let root = temp("bad");
    let case = |name: &str| {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let expect = |dir: &Path, needles: &[&str]| {
        let e = load_error(dir);
        for n in needles {
            assert!(e.contains(n), "{}: {e:?} does not mention {n:?}", dir.display());
        }
        eprintln!("{}: {e}", dir.file_name().unwrap().to_string_lossy());
    };
    // An empty folder; one class only; an empty class folder.
    expect(&case("empty"), &["no class folders"]);
    let d = case("one_class");
    png(&d.join("cats").join("a.png"), 16);
    expect(&d, &["only one class", "cats"]);
    let d = case("empty_class");
    png(&d.join("cats").join("a.png"), 16);
    std::fs::create_dir_all(d.join("dogs")).unwrap();
    std::fs::write(d.join("dogs").join(".DS_Store"), b"x").unwrap();
    expect(&d, &["dogs", "holds no PNG or JPEG"]);
    // Corrupt and truncated JPEGs among good pictures; a 1×1 picture; a 16-bit PNG; a CMYK JPEG.
    let d = case("bad_files");
    for c in ["a", "b"] {
        for i in 0..3 {
            png(&d.join(c).join(format!("{i}.png")), 16);
        }
    }
    let mut jpeg = Vec::new();
    image::RgbImage::from_pixel(32, 32, image::Rgb([9, 9, 9]))
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    std::fs::write(d.join("a").join("truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    std::fs::write(d.join("a").join("corrupt.jpg"), b"\xff\xd8\xff\xe0 this is not a jpeg").unwrap();
    png(&d.join("b").join("tiny.png"), 1);
    image::DynamicImage::ImageLuma16(image::ImageBuffer::from_pixel(16, 16, image::Luma([40000u16])))
        .save(d.join("b").join("deep.png"))
        .unwrap();
    // A JPEG frame header declaring four components (CMYK), as Photoshop writes them.
    let mut cmyk = vec![0xff, 0xd8, 0xff, 0xc0, 0x00, 20, 8, 0, 16, 0, 16, 4];
    for id in 1..=4u8 {
        cmyk.extend([id, 0x11, 0]);
    }
    cmyk.extend([0xff, 0xd9]);
    std::fs::write(d.join("b").join("cmyk.jpg"), &cmyk).unwrap();
    expect(
        &d,
        &[
            "5 of 11 pictures cannot be used",
            "truncated.jpg",
            "corrupt.jpg",
            "tiny.png",
            "1x1",
            "deep.png",
            "8-bit",
            "cmyk.jpg",
            "CMYK",
        ],
    );
    // A link loop inside a class folder.
    let d = case("loop");
    png(&d.join("a").join("0.png"), 16);
    png(&d.join("b").join("0.png"), 16);
    std::os::unix::fs::symlink(d.join("b"), d.join("b").join("again")).unwrap();
    expect(&d, &["link loop", "again"]);
    // A test class the training split lacks.
    let d = case("test_class");
    for (split, class) in [("train", "a"), ("train", "b"), ("test", "a"), ("test", "zebra")] {
        png(&d.join(split).join(class).join("0.png"), 16);
    }
    expect(&d, &["zebra", "not among the training split's classes"]);
    // CIFAR: a file of the wrong length; a label past the classes.
    let d = case("cifar_length");
    std::fs::write(d.join("data_batch_1.bin"), vec![0u8; 3073 * 2 + 5]).unwrap();
    std::fs::write(d.join("test_batch.bin"), vec![0u8; 3073]).unwrap();
    expect(&d, &["data_batch_1.bin", "6151 bytes", "3073-byte records"]);
    let d = case("cifar_label");
    std::fs::write(d.join("data_batch_1.bin"), cifar_record(&[10], [0, 0, 0], 0)).unwrap();
    std::fs::write(d.join("test_batch.bin"), cifar_record(&[0], [0, 0, 0], 0)).unwrap();
    expect(&d, &["data_batch_1.bin", "record 0", "label 10"]);
}

#[test]
fn a_failed_run_writes_nothing_over_the_checkpoint() {
    // A model of 3 classes on a folder of 2: an error naming both, and --save untouched.
    let d = temp("mismatch");
    let mut rng = Rng::new(6);
    colour_set(&d, "all", 3, &mut rng);
    std::fs::remove_dir_all(d.join("all").join("red")).unwrap();
    let d = d.join("all");
    let save = d.join("keep.safetensors");
    std::fs::write(&save, b"the previous checkpoint").unwrap();
    let mut o = options(&d, colour_model(3), 1, 4);
    o.save = Some(save.clone());
    let e = run(&o, &mut |_| {}).expect_err("3 classes on 2 folders must fail").to_string();
    assert!(e.contains("2 classes (blue, green)") && e.contains("has 3"), "{e}");
    assert_eq!(std::fs::read(&save).unwrap(), b"the previous checkpoint");
}

#[test]
fn one_folder_is_split_stratified_and_the_cache_is_used_then_ignored_when_damaged() {
    let d = temp("split");
    let mut rng = Rng::new(5);
    colour_set(&d, "all", 20, &mut rng);
    let root = d.join("all");
    let opts = LoadOptions::new([3, 16, 16]);
    let mut events = Vec::new();
    let first = data::load_splits(&root, &opts, &mut |p| events.push(format!("{p:?}"))).unwrap();
    assert_eq!(first.kind, data::SourceKind::Folder);
    assert_eq!((first.train.len(), first.test.len()), (54, 6), "10 % of each class of 20 held out");
    for c in 0..3u8 {
        assert_eq!(first.test.labels.iter().filter(|&&l| l == c).count(), 2, "class {c} in the validation split");
    }
    assert!(events.iter().any(|e| e.contains("Decoding")), "the first load decodes: {events:?}");
    let mut events = Vec::new();
    let again = data::load_splits(&root, &opts, &mut |p| events.push(format!("{p:?}"))).unwrap();
    assert!(events.iter().any(|e| e.contains("Cached")), "the second load reads the cache: {events:?}");
    assert!(again.train.images == first.train.images && again.test.labels == first.test.labels);
    // Another seed holds out other pictures; the same seed the same ones.
    let mut other = opts.clone();
    other.seed = 2;
    assert!(data::load_splits(&root, &other, &mut |_| {}).unwrap().test.images != first.test.images);
    // A damaged cache file is ignored (and rewritten), never an error.
    let cache = std::env::var_os("WGCNN_DATA_CACHE").map(PathBuf::from).unwrap();
    for f in std::fs::read_dir(&cache).unwrap() {
        let p = f.unwrap().path();
        let mut b = std::fs::read(&p).unwrap();
        let last = b.len() - 1;
        b[last] ^= 0xff;
        std::fs::write(&p, b).unwrap();
    }
    let mut events = Vec::new();
    let healed = data::load_splits(&root, &opts, &mut |p| events.push(format!("{p:?}"))).unwrap();
    assert!(events.iter().any(|e| e.contains("Decoding")), "a damaged cache is decoded again: {events:?}");
    assert!(healed.train.images == first.train.images);
    // A changed picture misses the cache.
    std::thread::sleep(std::time::Duration::from_millis(20));
    png(&root.join("red").join("0000.png"), 20);
    let mut events = Vec::new();
    data::load_splits(&root, &opts, &mut |p| events.push(format!("{p:?}"))).unwrap();
    assert!(events.iter().any(|e| e.contains("Decoding")), "a changed picture decodes again: {events:?}");
}

#[test]
fn conversion_and_resize_agree_with_pil() {
    // Pictures of noise and of smooth gradients, shrunk and enlarged to several sizes, converted by
    // wgcnn and by PIL (`convert("L")` / `convert("RGB")`, then `resize((w, h), BILINEAR)`, what
    // torchvision's `Resize` runs on PIL images). Pillow up to 12.x resizes rows first, then columns,
    // as wgcnn does: every byte equal (CI installs Pillow 12.3). Pillow 13 runs some two-axis resizes
    // columns first: there, values may differ by 1 and the share is reported. Elsewhere than CI the
    // test needs Pillow too, and says so when it is missing.
    let have_pil =
        std::process::Command::new("python3").args(["-c", "import PIL"]).output().is_ok_and(|o| o.status.success());
    if !have_pil {
        assert!(std::env::var_os("CI").is_none(), "CI installs Pillow (pip install pillow)");
        eprintln!("Pillow is not installed: the comparison with PIL is skipped outside CI");
        return;
    }
    let dir = temp("pil");
    let mut rng = Rng::new(11);
    let mut cases = Vec::new();
    for (i, (w, h)) in [(64u32, 48u32), (37, 91), (13, 13), (100, 100)].into_iter().enumerate() {
        let noise = i % 2 == 0;
        let mut px = |x: u32, y: u32, c: u32| -> u8 {
            if noise {
                rng.below(256) as u8
            } else {
                ((x * 255 / w.max(1) + y * 97 / h.max(1) + c * 60) % 256) as u8
            }
        };
        let rgba = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([px(x, y, 0), px(x, y, 1), px(x, y, 2), 255]));
        let path = dir.join(format!("p{i}.png"));
        image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(rgba).to_rgb8()).save(&path).unwrap();
        for input in [[3usize, 32usize, 32usize], [1, 28, 28], [3, 20, 40], [1, 64, 50]] {
            cases.push((path.clone(), input));
        }
    }
    let mut script = String::from("from PIL import Image\nimport PIL\nprint(PIL.__version__)\n");
    for (k, (path, [c, h, w])) in cases.iter().enumerate() {
        let mode = if *c == 1 { "L" } else { "RGB" };
        script += &format!(
            "im = Image.open('{}').convert('{mode}').resize(({w}, {h}), Image.BILINEAR)\n\
             open('{}', 'wb').write(im.tobytes())\n",
            path.display(),
            dir.join(format!("pil{k}.raw")).display()
        );
    }
    let out = std::process::Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major: u32 = version.split('.').next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let (mut worst, mut differ, mut total) = (0i32, 0usize, 0usize);
    for (k, (path, input)) in cases.iter().enumerate() {
        let ours = data::folder::decode_file(path, *input).unwrap();
        let pil = std::fs::read(dir.join(format!("pil{k}.raw"))).unwrap();
        let [c, h, w] = *input;
        for ch in 0..c {
            for p in 0..h * w {
                let d = (i32::from(ours[ch * h * w + p]) - i32::from(pil[p * c + ch])).abs();
                worst = worst.max(d);
                differ += usize::from(d > 0);
                total += 1;
            }
        }
    }
    let share = 100.0 * differ as f64 / total as f64;
    eprintln!("wgcnn vs Pillow {version} over {total} values: max |Δ| = {worst}, {share:.2} % differ");
    let allowed = if major <= 12 { 0 } else { 1 };
    assert!(
        worst <= allowed,
        "wgcnn's conversion and resize differ from Pillow {version}'s by up to {worst} grey levels"
    );
}

#[test]
fn the_command_line_trains_on_a_folder_and_speaks_in_class_names() {
    // train (normalised, augmented) → eval --json with per-class figures and the confusion matrix,
    // eval --plot → predict prints the class name; a bad --normalize or --augment is refused.
    let dir = temp("cli");
    let mut rng = Rng::new(21);
    colour_set(&dir, "train", 30, &mut rng);
    colour_set(&dir, "test", 6, &mut rng);
    std::fs::write(dir.join("model.toml"), file::to_toml(&colour_model(3))).unwrap();
    let cache = dir.join("cache");
    let env = [("WGCNN_DATA_CACHE", cache.to_str().unwrap())];
    let r = cli::wgcnn(
        &dir,
        &[
            "train",
            "--model",
            "model.toml",
            "--data",
            ".",
            "--epochs",
            "8",
            "--batch-size",
            "16",
            "--optimizer",
            "adam",
            "--lr",
            "0.01",
            "--augment",
            "crop=2,flip",
            "--save",
            "m.safetensors",
            "--json",
        ],
        &env,
    );
    let report = r.ok().json();
    assert_eq!(report["source"], "image folders (train/test)");
    assert_eq!(report["classes"], serde_json::json!(["blue", "green", "red"]));
    assert_eq!(report["mean"].as_array().unwrap().len(), 3, "computed per channel");
    let r = cli::wgcnn(&dir, &["eval", "--model", "m.safetensors", "--data", ".", "--json", "--plot", "c.png"], &env);
    let e = r.ok().json();
    assert_eq!(e["count"], 18);
    assert_eq!(e["per_class"][1]["class"], "green");
    let confusion: Vec<Vec<u64>> = serde_json::from_value(e["confusion"].clone()).unwrap();
    assert_eq!(confusion.iter().flatten().sum::<u64>(), 18);
    assert_eq!(confusion.iter().enumerate().map(|(i, r)| r[i]).sum::<u64>(), e["correct"].as_u64().unwrap());
    assert!(image::open(dir.join("c.png")).is_ok(), "the confusion matrix is a PNG");
    eprintln!("eval: {:.3} on the test folder", e["accuracy"].as_f64().unwrap());
    let r = cli::wgcnn(&dir, &["predict", "--model", "m.safetensors", "test/red/0000.png"], &env);
    let line = r.ok().stdout.clone();
    assert!(line.contains("test/red/0000.png: ") && line.contains("red:") && line.contains("blue:"), "{line}");
    cli::wgcnn(&dir, &["train", "--data", ".", "--normalize", "0.5/0"], &env).fails(2, &["--normalize", "must be > 0"]);
    cli::wgcnn(&dir, &["train", "--data", ".", "--augment", "spin=5"], &env)
        .fails(2, &["spin=5", "crop=N, flip, rotate=DEG"]);
    cli::wgcnn(&dir, &["train", "--data", ".", "--augment", "rotate=500"], &env).fails(2, &["rotate=500", "below 180"]);
    // LeNet-5 (1 channel, 10 classes) on this 3-class folder: an error naming both counts.
    cli::wgcnn(&dir, &["train", "--data", ".", "--steps", "1"], &env)
        .fails(1, &["3 classes (blue, green, red)", "lenet5 has 10"]);
}

#[test]
#[ignore = "a manual check on the whole of Fashion-MNIST (70,000 PNGs, written first); see BENCHMARKS.md"]
fn the_whole_fashion_mnist_tree_is_byte_equal_to_its_idx_files() {
    // cargo run --release --example idx_to_folder -- /usr/share/datasets/fashion-mnist /tmp/fashion-png fashion
    // WGCNN_FASHION_TREE=/tmp/fashion-png cargo test --release --test data_sources -- --ignored whole
    let tree = PathBuf::from(std::env::var("WGCNN_FASHION_TREE").unwrap_or_else(|_| "/tmp/fashion-png".into()));
    let idx = PathBuf::from("/usr/share/datasets/fashion-mnist");
    let t0 = std::time::Instant::now();
    let from_tree =
        data::load_splits(&tree, &LoadOptions { cache: false, ..LoadOptions::new([1, 28, 28]) }, &mut |_| {}).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    for (split, got) in [(Split::Train, &from_tree.train), (Split::Test, &from_tree.test)] {
        let want = data::load(&idx, split).unwrap();
        // The tree holds each class's pictures in file-number order: the IDX order, grouped by class.
        let mut order: Vec<usize> = (0..want.len()).collect();
        order.sort_by_key(|&i| (want.labels[i], i));
        let want = want.select(&order);
        assert!(
            got.images == want.images && got.labels == want.labels,
            "{split:?}: the tree differs from the IDX files"
        );
        eprintln!("{split:?}: {} pictures byte-equal", got.len());
    }
    eprintln!("decoded {} pictures in {secs:.2} s", from_tree.train.len() + from_tree.test.len());
}

#[test]
fn a_set_larger_than_the_device_is_refused_naming_its_size() {
    // The check GpuDataset::upload makes first (software adapters: against the host's available memory).
    let d = data::Dataset {
        images: vec![0; 3 * 32 * 32 * 1000],
        labels: vec![0; 1000],
        channels: 3,
        rows: 32,
        cols: 32,
        class_names: vec!["a".into(), "b".into()],
        source: PathBuf::from("photos"),
    };
    assert!(data::check_fits(&d, "train", None, "gpu").is_ok(), "unknown free memory: no refusal");
    assert!(data::check_fits(&d, "train", Some(4 << 20), "gpu").is_ok());
    let e = data::check_fits(&d, "train", Some(1 << 20), "llvmpipe").unwrap_err().to_string();
    for part in ["photos", "train set is 2.9 MiB", "1000 pictures of 3x32x32 bytes", "the 1.0 MiB llvmpipe has free"] {
        assert!(e.contains(part), "{e:?} does not say {part:?}");
    }
}
