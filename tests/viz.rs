//! The pictures: the classic filters computed by the GPU kernels equal the CPU reference, every PNG
//! decodes with the expected size and is not blank, and bad pictures give clear errors.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use wgcnn::model::{init_params, lenet5, LeNetConfig};
use wgcnn::reference as cpu;
use wgcnn::shape::{Conv2dGeom, Pool2dGeom};
use wgcnn::train::{EpochStats, Evaluation};
use wgcnn::viz::*;
use wgcnn::{Context, KernelSet};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgcnn-viz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A photo-like RGB picture: a lit gradient, a bright disc, a dark bar and grain.
fn photo_like(path: &Path, w: u32, h: u32) {
    let mut r = rng(91);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let mut v = 60.0 + 120.0 * fx + 40.0 * fy;
        let (dx, dy) = (fx - 0.3, fy - 0.45);
        if dx * dx + dy * dy < 0.04 {
            v = 235.0;
        }
        if (0.6..0.7).contains(&fx) && (0.2..0.85).contains(&fy) {
            v = 25.0;
        }
        v += r.vec_f32(1, -12.0, 12.0)[0];
        let g = v.clamp(0.0, 255.0) as u8;
        image::Rgb([g, g.saturating_add(10), g.saturating_sub(10)])
    });
    img.save(path).unwrap();
}

fn decode(path: &Path) -> image::RgbImage {
    image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8()
}

fn distinct_colours(img: &image::RgbImage) -> usize {
    let mut seen = std::collections::HashSet::new();
    for p in img.pixels() {
        seen.insert(p.0);
        if seen.len() > 100 {
            break;
        }
    }
    seen.len()
}

#[test]
fn classic_filters_on_the_gpu_equal_the_cpu_reference() {
    let (w, h) = (61, 37); // odd sizes: the pools drop the last row and column
    let mut r = rng(92);
    let img = Grey { w, h, data: r.vec_f32(w * h, 0.0, 1.0) };
    let res = run_filters(ctx(), &img).unwrap();
    let g = Conv2dGeom::square(1, 1, h, w, CLASSIC.len(), 3, 1, 1);
    let weights: Vec<f64> = CLASSIC.iter().flat_map(|k| k.weights).map(f64::from).collect();
    let want = cpu::conv2d_forward(&g, &to_f64(&img.data), &weights, &vec![0.0; CLASSIC.len()]);
    for (k, kernel) in CLASSIC.iter().enumerate() {
        check(&format!("filters.{}", kernel.name), &res.outputs[k], &want[k * w * h..(k + 1) * w * h], F32_TOL);
    }
    assert_eq!(res.outputs[0], img.data, "the identity kernel returns the picture exactly");
    let relu: Vec<f64> = want[RECTIFIED * w * h..(RECTIFIED + 1) * w * h].iter().map(|v| v.max(0.0)).collect();
    check("filters.relu", &res.relu, &relu, F32_TOL);
    let pg = Pool2dGeom::square(1, 1, h, w, 2, 2);
    assert_eq!((res.pool_w, res.pool_h), (30, 18));
    check("filters.max_pool", &res.max_pool, &cpu::maxpool2d_forward(&pg, &to_f64(&res.relu)).0, F32_TOL);
    check("filters.avg_pool", &res.avg_pool, &cpu::avgpool2d_forward(&pg, &to_f64(&res.relu)), F32_TOL);
}

#[test]
fn filters_write_legible_pngs_of_a_photo() {
    let dir = temp_dir("filters");
    let photo = dir.join("photo.png");
    photo_like(&photo, 300, 200);
    let img = load_grey(&photo).unwrap();
    assert_eq!((img.w, img.h), (300, 200));
    let res = run_filters(ctx(), &img).unwrap();
    let files = write_filters(&res, &dir.join("out")).unwrap();
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 2 + CLASSIC.len(), "{names:?}");
    assert!(names.contains(&"filters.png".into()) && names.contains(&"relu-pool.png".into()));
    for f in &files {
        let png = decode(f);
        assert!(png.width() >= 300 && png.height() >= 200, "{}: {}x{}", f.display(), png.width(), png.height());
        assert!(distinct_colours(&png) > 20, "{} looks blank", f.display());
    }
    // filter-identity.png shows the picture itself, pixel for pixel, at 1 pixel per value.
    let id = decode(&dir.join("out/filter-identity.png"));
    let (x0, y0) = (12, 34); // the grid's margin and title height
    for (i, &v) in img.data.iter().enumerate() {
        let p = id.get_pixel(x0 + (i % 300) as u32, y0 + (i / 300) as u32);
        assert_eq!(p.0[0], (v * 255.0).round() as u8, "pixel {i}");
    }
    // A large picture is scaled down to 512 on its longer side.
    let big = dir.join("big.png");
    photo_like(&big, 1200, 300);
    let g = load_grey(&big).unwrap();
    assert_eq!((g.w, g.h), (512, 128));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_pictures_are_clear_errors() {
    let dir = temp_dir("bad");
    let missing = dir.join("missing.png");
    let e = load_grey(&missing).unwrap_err().to_string();
    assert!(e.contains("missing.png"), "{e}");
    let empty = dir.join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let e = load_grey(&empty).unwrap_err().to_string();
    assert!(e.contains("empty.png") && e.contains("empty"), "{e}");
    let text = dir.join("notes.png");
    std::fs::write(&text, b"this is not a picture").unwrap();
    let e = load_grey(&text).unwrap_err().to_string();
    assert!(e.contains("notes.png") && e.contains("not a readable"), "{e}");
    // A PNG signature and header claiming 0x0 pixels.
    let mut zero = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\0\0\0\0\0\x08\0\0\0\0".to_vec();
    zero.extend_from_slice(&[0, 0, 0, 0]);
    let zpath = dir.join("zero.png");
    std::fs::write(&zpath, &zero).unwrap();
    let e = load_grey(&zpath).unwrap_err().to_string();
    assert!(e.contains("zero.png"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn visualize_draws_every_layer_of_lenet() {
    let mut c = Context::new().unwrap();
    c.kernels = KernelSet::Plain;
    let spec = lenet5(LeNetConfig::default());
    let values = init_params(&spec.params(), 3);
    let params = wgcnn::graph::Params::new(&c, &spec).unwrap();
    params.values.write(&c, &values).unwrap();
    let test = wgcnn::data::load(&wgcnn::data::bundled_dir(), wgcnn::data::Split::Test).unwrap();
    let input: Vec<f32> = test.images[..784].iter().map(|&v| f32::from(v) / 255.0).collect();
    let acts = run_layers(&c, &spec, &params, &input).unwrap();
    assert_eq!(acts.layers.len(), spec.layers.len() - 1, "every layer but the flatten (a view)");
    let conv1 = &acts.layers[0];
    assert_eq!((conv1.0.as_str(), conv1.1.clone()), ("conv1", vec![6, 28, 28]));
    assert!(conv1.2.iter().any(|&v| v < 0.0), "conv1 before its ReLU has negative values");
    assert!(acts.layers[1].2.iter().all(|&v| v >= 0.0), "after ReLU nothing is negative");
    // So with the fully connected layers: no ReLU fused into them on the plain kernel set.
    let layer = |name: &str| &acts.layers.iter().find(|l| l.0 == name).unwrap().2;
    for (fc, relu) in [("fc1", "relu3"), ("fc2", "relu4")] {
        assert!(layer(fc).iter().any(|&v| v < 0.0), "{fc} before its ReLU has negative values");
        assert!(layer(relu).iter().all(|&v| v >= 0.0), "{relu}: nothing negative");
    }
    assert!((acts.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    let weights: Vec<(String, Vec<usize>, Vec<f32>)> =
        spec.params().iter().zip(values).map(|(p, v)| (p.name.clone(), p.shape.clone(), v)).collect();
    let dir = temp_dir("visualize");
    let files = write_visualize(&weights, &acts, &dir).unwrap();
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for want in ["filters-conv1.png", "filters-conv2.png", "input.png", "fc.png", "overview.png"] {
        assert!(names.contains(&want.to_string()), "{want} missing from {names:?}");
    }
    assert_eq!(names.iter().filter(|n| n.starts_with("maps-")).count(), 6, "{names:?}");
    for f in &files {
        let png = decode(f);
        assert!(png.width() >= 200 && png.height() >= 100, "{}: {}x{}", f.display(), png.width(), png.height());
        assert!(distinct_colours(&png) > 10, "{} looks blank", f.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn visualize_draws_each_branch_of_a_dag_on_a_non_square_input() {
    use wgcnn::kernels::activation::Activation::Relu;
    use wgcnn::model::{Conv2d, LayerOp, Linear, ModelBuilder, Pool2d};
    let c = ctx();
    let spec = ModelBuilder::new("branchy", [2, 12, 20], 3)
        .layer("conv1", Conv2d::new(3, 3).padding(1))
        .layer("relu1", Relu)
        .layer_from("branch.a", Conv2d::new(3, 3).padding(1), &["relu1"])
        .layer_from("branch.b", Conv2d::new(3, 1), &["relu1"])
        .layer_from("join", LayerOp::Add, &["branch.a", "branch.b"])
        .layer("pool", Pool2d::avg(2))
        .layer("flatten", LayerOp::Flatten)
        .layer("fc", Linear::new(3))
        .build()
        .unwrap();
    let values = init_params(&spec.params(), 4);
    let params = wgcnn::graph::Params::new(c, &spec).unwrap();
    params.values.write(c, &values).unwrap();
    let input = rng(5).vec_f32(2 * 12 * 20, 0.0, 1.0);
    let acts = run_layers(c, &spec, &params, &input).unwrap();
    let shapes: Vec<(&str, &[usize])> = acts.layers.iter().map(|(n, s, _)| (n.as_str(), s.as_slice())).collect();
    assert_eq!(
        shapes[2..5],
        [("branch.a", &[3, 12, 20][..]), ("branch.b", &[3, 12, 20][..]), ("join", &[3, 12, 20][..])]
    );
    let weights: Vec<(String, Vec<usize>, Vec<f32>)> =
        spec.params().iter().zip(values).map(|(p, v)| (p.name.clone(), p.shape.clone(), v)).collect();
    let dir = temp_dir("branchy");
    let files = write_visualize(&weights, &acts, &dir).unwrap();
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for want in ["maps-03-branch-a.png", "maps-04-branch-b.png", "maps-05-join.png", "filters-branch-b.png"] {
        assert!(names.contains(&want.to_string()), "{want} missing from {names:?}");
    }
    let input_png = decode(&dir.join("input.png"));
    assert!(input_png.width() > input_png.height(), "a 12x20 input is drawn wider than tall");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn training_curves_are_drawn() {
    let dir = temp_dir("plot");
    let steps: Vec<StepPoint> = (1..=40)
        .map(|i| StepPoint { at: i as f64 / 10.0, loss: 2.0 / i as f64, accuracy: 1.0 - 0.5 / i as f64 })
        .collect();
    let epochs: Vec<EpochStats> = (1..=4)
        .map(|e| EpochStats {
            epoch: e,
            train_loss: 0.5 / e as f64,
            train_accuracy: 0.9,
            test: Evaluation { loss: 0.4 / e as f64, accuracy: 0.9 + 0.01 * e as f64, correct: 0, count: 100 },
            seconds: 1.0,
            images_per_sec: 100.0,
        })
        .collect();
    let path = dir.join("curves.png");
    plot_training(&path, &steps, &epochs).unwrap();
    let png = decode(&path);
    assert_eq!((png.width(), png.height()), (900, 640));
    assert!(distinct_colours(&png) > 10);
    // A folder that does not exist is an error naming it, not a panic.
    let e = plot_training(&dir.join("no/such/dir/curves.png"), &steps, &epochs).unwrap_err().to_string();
    assert!(e.contains("no/such/dir"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Run the `wgcnn` binary; panics with its output unless it succeeds. Returns stdout.
fn wgcnn(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgcnn")).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "wgcnn {args:?}:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn the_three_commands_work_end_to_end() {
    let dir = temp_dir("cli");
    let d = |name: &str| dir.join(name).to_string_lossy().into_owned();
    // train --plot (a few steps) and a checkpoint for visualize.
    wgcnn(&[
        "train",
        "--epochs",
        "2",
        "--steps",
        "30",
        "--log-every",
        "5",
        "--save",
        &d("m.safetensors"),
        "--plot",
        &d("curves.png"),
    ]);
    let png = decode(&dir.join("curves.png"));
    assert_eq!((png.width(), png.height()), (900, 640));
    // visualize: the default input (first test digit), then a picture of a digit drawn dark on white.
    let files = wgcnn(&["visualize", "--model", &d("m.safetensors"), "--out", &d("vis")]);
    assert_eq!(files.lines().count(), 12, "{files}");
    let digit = image::GrayImage::from_fn(90, 120, |x, y| {
        let on = (40..52).contains(&x) && (15..105).contains(&y) || (25..65).contains(&x) && (15..27).contains(&y);
        image::Luma([if on { 20 } else { 240 }])
    });
    digit.save(dir.join("seven.png")).unwrap();
    let files = wgcnn(&["visualize", "--model", &d("m.safetensors"), &d("seven.png"), "--out", &d("vis7")]);
    for f in files.lines().filter(|f| f.ends_with(".png")) {
        assert!(distinct_colours(&decode(Path::new(f))) > 5, "{f} looks blank");
    }
    // The numbers behind the pictures: layers.json holds the input as fed, every layer in model order
    // and the probabilities, which are predict's for the same picture to 1e-6 (visualize runs the plain
    // kernels, to show each conv's own output, predict the fused ones: sums in another order; measured
    // 3e-8).
    assert!(files.lines().any(|f| f.ends_with("layers.json")), "{files}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("vis7/layers.json")).unwrap()).unwrap();
    let names: Vec<&str> = doc["layers"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names[..3], ["conv1", "relu1", "pool1"], "{names:?}");
    assert_eq!(doc["layers"][0]["shape"], serde_json::json!([6, 28, 28]));
    assert_eq!(doc["layers"][0]["values"].as_array().unwrap().len(), 6 * 28 * 28);
    assert_eq!(doc["input"].as_array().unwrap().len(), 784);
    let (_, rows) = wgcnn::session::infer::predict(&dir.join("m.safetensors"), &[dir.join("seven.png")]).unwrap();
    let probs: Vec<f32> = serde_json::from_value(doc["probabilities"].clone()).unwrap();
    let diff = probs.iter().zip(&rows[0].probabilities).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(probs.len() == 10 && diff <= 1e-6, "layers.json's probabilities differ from predict's by {diff:e}");
    // filters on a photo-like JPEG.
    let photo = dir.join("photo.png");
    photo_like(&photo, 200, 150);
    let jpeg = dir.join("photo.jpg");
    image::open(&photo).unwrap().to_rgb8().save(&jpeg).unwrap();
    let files = wgcnn(&["filters", &jpeg.to_string_lossy(), "--out", &d("filters")]);
    assert_eq!(files.lines().count(), 2 + CLASSIC.len(), "{files}");
    // A bad picture is a clear error and a failed exit, not a panic.
    std::fs::write(dir.join("bad.png"), b"nope").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgcnn"))
        .args(["filters", &d("bad.png"), "--out", &d("bad")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("bad.png") && !err.contains("panicked"), "{err}");
    // A plot (or checkpoint) into a missing folder fails before training, not after it.
    let missing = dir.join("no/such/folder/curves.png");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgcnn"))
        .args(["train", "--plot", &missing.to_string_lossy()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("folder does not exist") && !err.contains("epoch 1"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn visualize_draws_every_branch_of_inception_mini_with_its_batch_norms() {
    // As `wgcnn visualize` does: plain kernels, so no conv + batch-norm fold hides a layer's own output.
    let mut c = wgcnn::Context::new().unwrap();
    c.kernels = wgcnn::KernelSet::Plain;
    let spec = wgcnn::model::file::load(std::path::Path::new("models/inception-mini.toml")).unwrap();
    let values = init_params(&spec.params(), 6);
    let params = wgcnn::graph::Params::new(&c, &spec).unwrap();
    params.values.write(&c, &values).unwrap();
    let acts = run_layers(&c, &spec, &params, &rng(7).vec_f32(28 * 28, 0.0, 1.0)).unwrap();
    let layer = |name: &str| acts.layers.iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v.clone()).unwrap();
    // A batch-norm's maps are its own (normalised) output, not its conv's.
    assert_ne!(layer("inc1.b3"), layer("inc1.b3.bn"));
    let weights: Vec<(String, Vec<usize>, Vec<f32>)> =
        spec.params().iter().zip(values).map(|(p, v)| (p.name.clone(), p.shape.clone(), v)).collect();
    let dir = temp_dir("inception");
    let files = write_visualize(&weights, &acts, &dir).unwrap();
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for block in ["inc1", "inc2"] {
        for branch in ["b1", "b3r", "b3", "b5r", "b5", "pool", "bp", "cat"] {
            assert!(
                names.iter().any(|n| n.ends_with(&format!("-{block}-{branch}.png"))),
                "{block}.{branch}: {names:?}"
            );
        }
    }
    assert!(names.contains(&"filters-inc2-b5.png".to_string()) && names.contains(&"overview.png".to_string()));
    let _ = std::fs::remove_dir_all(&dir);
}
