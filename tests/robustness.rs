//! The command line under hostile and careless input, run as a user would run it: every case ends in
//! a clear error (exit 1, or 2 for a bad argument) or the correct result, never a panic, and nothing
//! already written is lost. Hostile inputs are refused from their headers: the process's peak memory
//! (wait4's ru_maxrss) stays under 300 MB.
#![cfg(unix)]

mod cli;

use cli::*;

/// Peak resident memory allowed for a run refusing hostile input.
const RSS_CAP: u64 = 300 << 20;

#[test]
fn outputs_are_never_device_files_fifos_or_folders_and_are_checked_before_training() {
    let dir = scratch("outputs");
    let data = data_dir(&dir, 64, 32);
    let d = s(&data);
    std::os::unix::fs::symlink("/dev/null", dir.join("null-link")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(dir.join("fifo")).status().unwrap().success());
    std::fs::create_dir(dir.join("folder")).unwrap();
    for (flag, target, what) in [
        ("--save", "null-link", "device file"),
        ("--plot", "null-link", "device file"),
        ("--save", "fifo", "FIFO"),
        ("--save", "folder", "directory"),
        ("--save", "/proc/wgcnn.safetensors", "test write before starting"),
        ("--plot", "/proc/wgcnn.png", "test write before starting"),
    ] {
        let r = wgcnn(&dir, &["train", "--data", &d, "--steps", "1", flag, target], &[]);
        r.fails(1, &[what]);
        assert!(!r.stderr.contains("epoch 1"), "refused before training, not after: {}", r.stderr);
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "/dev/null is untouched");
    assert!(std::fs::symlink_metadata(dir.join("null-link")).unwrap().file_type().is_symlink());
    assert!(std::fs::metadata(dir.join("fifo")).unwrap().file_type().is_fifo());
    // The same path for both outputs is refused, and --json errors are JSON on stdout.
    let r = wgcnn(&dir, &["train", "--data", &d, "--save", "a.st", "--plot", "a.st", "--json"], &[]);
    r.fails(1, &["name the same file"]);
    let v = r.json();
    assert!(v["error"].as_str().unwrap().contains("same file"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unusable_settings_and_divergence_end_non_zero_and_keep_what_was_saved() {
    let dir = scratch("diverge");
    let data = data_dir(&dir, 64, 32);
    let d = s(&data);
    let ck = dir.join("m.safetensors");
    // 1e39 is a finite f64 but infinite as f32: refused before any work, nothing saved.
    wgcnn(&dir, &["train", "--data", &d, "--lr", "1e39", "--steps", "1", "--save", &s(&ck)], &[])
        .fails(1, &["overflows f32"]);
    wgcnn(&dir, &["train", "--data", &d, "--optimizer", "adam", "--lr", "1e38", "--steps", "1"], &[])
        .fails(1, &["overflows f32"]);
    assert!(!ck.exists());
    // A good run saves; a diverging one ends non-zero and leaves that file as it was.
    wgcnn(&dir, &["train", "--data", &d, "--steps", "2", "--save", &s(&ck)], &[]).ok();
    let before = std::fs::read(&ck).unwrap();
    let r = wgcnn(
        &dir,
        &["train", "--data", &d, "--lr", "1e30", "--steps", "4", "--log-every", "1", "--save", &s(&ck), "--json"],
        &[],
    );
    r.fails(1, &["diverged", "is as it was before the run"]);
    let v = r.json();
    assert!(v["error"].is_string());
    assert!(std::fs::read(&ck).unwrap() == before, "the checkpoint was not replaced");
    // Successful --json output is JSON too.
    let r = wgcnn(&dir, &["train", "--data", &d, "--steps", "1", "--json"], &[]);
    r.ok();
    let v = r.json();
    assert_eq!(v["steps"], 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn impossible_numbers_are_refused_before_any_work() {
    let dir = scratch("edges");
    for (args, needle) in [
        (&["train", "--steps", "0"][..], "--steps"),
        (&["train", "--epochs", "0"], "--epochs"),
        (&["train", "--batch-size", "0"], "--batch-size"),
        (&["train", "--lr-decay", "0"], "--lr-decay"),
        (&["train", "--lr", "nan"], "--lr"),
        (&["train", "--momentum=-1"], "--momentum"),
        (&["eval", "--model", "m.safetensors", "--batch-size", "0"], "--batch-size"),
        (&["bench", "--infer-batch", "0"], "--infer-batch"),
        (&["bench", "--batch-sizes", "64,0"], "--batch-sizes"),
        (&["train", "--resume"], "--init"),
    ] {
        let r = wgcnn(&dir, args, &[]);
        r.fails(2, &[needle]);
    }
    // With --json, a bad argument is a JSON error on stdout as well.
    let r = wgcnn(&dir, &["train", "--steps", "0", "--json"], &[]);
    r.fails(2, &["--steps"]);
    let v = r.json();
    assert!(v["error"].as_str().unwrap().contains("--steps"), "{v}");
    // A huge --log-every is a number like any other (it used to overflow a multiplication).
    let data = data_dir(&dir, 32, 16);
    wgcnn(&dir, &["train", "--data", &s(&data), "--steps", "1", "--log-every", "9223372036854775808"], &[]).ok();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn hostile_files_are_refused_from_their_headers_in_bounded_memory() {
    let dir = scratch("hostile");
    let data = data_dir(&dir, 64, 32);
    // A 3 GB raw IDX file (sparse) whose header promises more than it holds.
    let big = dir.join("big");
    std::fs::create_dir(&big).unwrap();
    for f in ["train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        std::fs::copy(data.join(f), big.join(f)).unwrap();
    }
    let images = big.join("train-images-idx3-ubyte");
    std::fs::write(&images, idx(0x0803, &[100_000, 200, 200], &[])).unwrap();
    std::fs::OpenOptions::new().write(true).open(&images).unwrap().set_len(3_000_000_000).unwrap();
    let r = wgcnn(&dir, &["train", "--data", &s(&big), "--steps", "1"], &[]);
    r.fails(1, &["truncated", "train-images-idx3-ubyte"]);
    assert_rss(&r);
    // A 1.5 GB checkpoint of another model (sparse data): refused from its header.
    let ck = dir.join("other.safetensors");
    let header = br#"{"__metadata__":{"format":"pt"},"big.weight":{"dtype":"F32","shape":[375000000],"data_offsets":[0,1500000000]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    std::fs::write(&ck, &bytes).unwrap();
    std::fs::OpenOptions::new().write(true).open(&ck).unwrap().set_len(bytes.len() as u64 + 1_500_000_000).unwrap();
    // Alone, it has no model description (and is not LeNet-5's tensors); with a model file, its
    // tensors do not fit that model.
    let r = wgcnn(&dir, &["eval", "--model", &s(&ck), "--data", &s(&data)], &[]);
    r.fails(1, &["no wgcnn model description", "big.weight", "--weights"]);
    assert_rss(&r);
    let lenet = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/lenet5.toml");
    let r = wgcnn(&dir, &["eval", "--model", &s(&lenet), "--weights", &s(&ck), "--data", &s(&data)], &[]);
    r.fails(1, &["does not fit this model", "big.weight"]);
    assert_rss(&r);
    // A small PNG that claims 16000x16000 pixels: refused before decoding.
    let png = dir.join("huge.png");
    std::fs::write(&png, png_claiming(16000, 16000)).unwrap();
    wgcnn(&dir, &["train", "--data", &s(&data), "--steps", "1", "--save", "m.safetensors"], &[]).ok();
    let r = wgcnn(&dir, &["predict", "--model", "m.safetensors", &s(&png)], &[]);
    r.fails(1, &["16000x16000", "pixel cap"]);
    assert_rss(&r);
    let r = wgcnn(&dir, &["filters", &s(&png), "--out", "f"], &[]);
    r.fails(1, &["16000x16000"]);
    assert_rss(&r);
    std::fs::remove_dir_all(&dir).ok();
}

fn assert_rss(r: &Run) {
    eprintln!("PEAK_RSS {} MB: {}", r.peak_rss >> 20, r.stderr.lines().last().unwrap_or(""));
    assert!(r.peak_rss < RSS_CAP, "peak RSS {} MB", r.peak_rss >> 20);
}

/// A 1x1 PNG whose header is rewritten to claim `w` x `h` pixels (CRC fixed, data left 1x1).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::GrayImage::new(1, 1).write_to(&mut out, image::ImageFormat::Png).unwrap();
    let mut b = out.into_inner();
    // Signature (8), IHDR length (4), "IHDR" (4), then width and height.
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

#[test]
fn clear_errors_for_mismatched_data_and_backends() {
    let dir = scratch("clear");
    let data = data_dir(&dir, 64, 32);
    // Test images of another size than the training images: named, before training.
    let odd = dir.join("odd");
    std::fs::create_dir(&odd).unwrap();
    for f in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"] {
        std::fs::copy(data.join(f), odd.join(f)).unwrap();
    }
    std::fs::write(odd.join("t10k-images-idx3-ubyte"), idx(0x0803, &[32, 32, 32], &[0; 32 * 32 * 32])).unwrap();
    wgcnn(&dir, &["train", "--data", &s(&odd), "--steps", "1"], &[])
        .fails(1, &["t10k-images-idx3-ubyte", "32x32", "28x28"]);
    // A FIFO where a data file should be is named, not read (reading it would block forever).
    std::fs::remove_file(odd.join("t10k-images-idx3-ubyte")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(odd.join("t10k-images-idx3-ubyte")).status().unwrap().success());
    wgcnn(&dir, &["train", "--data", &s(&odd), "--steps", "1"], &[]).fails(1, &["t10k-images-idx3-ubyte", "FIFO"]);
    // A backend this platform does not have: the message names the filter.
    wgcnn(&dir, &["info"], &[("WGPU_BACKEND", "metal"), ("WGCNN_ADAPTER", "")]).fails(1, &["WGPU_BACKEND", "unset"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn work_too_big_for_one_binding_is_split() {
    let dir = scratch("split");
    // 10,000 test images: LeNet-5's first activation at batch 10,000 is 188 MB, over lavapipe's 128 MiB
    // binding; evaluation runs in chunks and counts exactly what batch 1,000 counts.
    let data = data_dir(&dir, 64, 10_000);
    wgcnn(&dir, &["train", "--data", &s(&data), "--steps", "3", "--save", "m.safetensors"], &[]).ok();
    let eval = |b: &str| {
        let r =
            wgcnn(&dir, &["eval", "--model", "m.safetensors", "--data", &s(&data), "--batch-size", b, "--json"], &[]);
        r.ok().json()
    };
    let (big, small) = (eval("10000"), eval("1000"));
    assert_eq!((big["correct"].clone(), big["count"].clone()), (small["correct"].clone(), serde_json::json!(10_000)));
    let (a, b) = (big["loss"].as_f64().unwrap(), small["loss"].as_f64().unwrap());
    assert!((a - b).abs() <= 1e-5 * b.abs(), "loss {a} vs {b}");
    // 1,100 pictures: prediction runs in batches of 1,000 and classifies each as it does alone.
    let pics: Vec<String> = (0..1100)
        .map(|i| {
            let p = dir.join(format!("p{i}.png"));
            let mut img = image::GrayImage::new(28, 28);
            for y in 4..24 {
                img.put_pixel((i % 20 + 4) as u32, y, image::Luma([255]));
            }
            img.save(&p).unwrap();
            s(&p)
        })
        .collect();
    let predict = |ps: &[String]| {
        let r = wgcnn(
            &dir,
            &[
                &["predict", "--model", "m.safetensors", "--json"][..],
                &ps.iter().map(String::as_str).collect::<Vec<_>>(),
            ]
            .concat(),
            &[],
        );
        r.ok().json()
    };
    let all = predict(&pics);
    assert_eq!(all.as_array().unwrap().len(), 1100);
    for i in [0, 999, 1000, 1099] {
        let one = predict(&pics[i..=i]);
        assert_eq!(all[i]["class"], one[0]["class"], "picture {i}");
        let (a, b) = (all[i]["probability"].as_f64().unwrap(), one[0]["probability"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-5, "picture {i}: {a} vs {b}");
    }
    // 172,000 training images (135 MB, over lavapipe's 128 MiB binding): the set is split over buffers.
    let big = data_dir(&dir.join("big"), 172_000, 32);
    let r = wgcnn(&dir, &["train", "--data", &s(&big), "--steps", "2", "--json"], &[]);
    assert_eq!(r.ok().json()["steps"], 2);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn identical_runs_write_identical_files_and_stale_temporaries_go() {
    let dir = scratch("identical");
    let data = data_dir(&dir, 64, 32);
    let stale = dir.join(".a.safetensors.tmp-999999999");
    std::fs::write(&stale, b"left by a killed process").unwrap();
    let probe = dir.join(".a.safetensors.probe-999999999");
    std::fs::write(&probe, b"a test write cut short").unwrap();
    for name in ["a.safetensors", "b.safetensors"] {
        wgcnn(&dir, &["train", "--data", &s(&data), "--steps", "3", "--save", name], &[]).ok();
    }
    for (x, y) in [("a.safetensors", "b.safetensors"), ("a.optim.safetensors", "b.optim.safetensors")] {
        assert!(std::fs::read(dir.join(x)).unwrap() == std::fs::read(dir.join(y)).unwrap(), "{x} != {y}");
    }
    assert!(!stale.exists() && !probe.exists(), "a dead process's temporary and probe files are removed");
    let left = hidden_files(&dir, "");
    assert!(left.is_empty(), "no temporary files are left: {left:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_model_files_train_table_sets_what_the_flags_do_not() {
    let dir = cli::scratch("train-table");
    let data = cli::data_dir(&dir, 200, 100);
    let lenet =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/lenet5.toml")).unwrap();
    let model = dir.join("lenet-table.toml");
    let lenet = lenet.replace("batch_size = 64", "batch_size = 50").replace("lr = 0.05", "lr = 0.02");
    std::fs::write(&model, &lenet).unwrap();
    let base = ["train", "--model", &cli::s(&model), "--data", &cli::s(&data), "--steps", "2", "--json"];
    let r = cli::wgcnn(&dir, &base, &[]);
    r.ok();
    let j = r.json();
    assert_eq!((j["batch_size"].as_u64(), j["lr"].as_f64()), (Some(50), Some(0.02)), "{j}");
    assert!(r.stderr.contains("settings from the model file's [train]: optimizer, lr,"), "{}", r.stderr);
    let mut flags = base.to_vec();
    flags.extend(["--batch-size", "20", "--lr", "0.01"]);
    let r = cli::wgcnn(&dir, &flags, &[]);
    r.ok();
    let j = r.json();
    assert_eq!((j["batch_size"].as_u64(), j["lr"].as_f64()), (Some(20), Some(0.01)), "{j}");
    assert!(!r.stderr.contains("batch_size,") && !r.stderr.contains(" lr,"), "{}", r.stderr);
    // A mistake in the table is an error naming the file, the table and the field.
    std::fs::write(&model, lenet.replace("schedule = \"cosine\"", "schedule = \"linear\"")).unwrap();
    cli::wgcnn(&dir, &base, &[]).fails(1, &["lenet-table.toml", "[train]", "field schedule"]);
}
