//! What a browser page loads from bytes (checkpoints, IDX data, pictures) gives exactly what loading
//! the same files gives, errors included; and the awaited readback the page uses returns what the
//! blocking calls return, for several ranges at once (views at offsets, odd byte lengths, empty ones).

mod common;

use std::path::{Path, PathBuf};

use wgcnn::checkpoint::{load_model, load_model_bytes, save_model};
use wgcnn::data::{read_idx, read_idx_bytes, Dataset};
use wgcnn::model::{lenet5, LeNetConfig, ModelState};
use wgcnn::{DType, Tensor};

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wgcnn-in-memory-{}-{name}", std::process::id()))
}

#[test]
fn a_checkpoints_bytes_load_as_its_file_does() {
    let spec = lenet5(LeNetConfig::default());
    let state = ModelState::init(&spec, 7);
    let path = scratch("lenet5.safetensors");
    save_model(&path, &spec, &state).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (from_file, from_bytes) = (load_model(&path).unwrap(), load_model_bytes(&path, bytes.clone()).unwrap());
    assert_eq!(from_bytes, from_file);
    assert_eq!(from_bytes, (spec, state));
    // A damaged copy: the same error either way, naming the file.
    for (what, cut) in [("truncated", bytes.len() - 3), ("header only", 8), ("empty", 0)] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let file_err = load_model(&path).unwrap_err().to_string();
        let bytes_err = load_model_bytes(&path, bytes[..cut].to_vec()).unwrap_err().to_string();
        assert_eq!(bytes_err, file_err, "{what}");
        assert!(bytes_err.contains("lenet5.safetensors"), "{what}: {bytes_err}");
    }
    let _ = std::fs::remove_file(&path);
}

/// A raw (not gzipped) IDX file of unsigned bytes.
fn idx(dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    dims.iter().for_each(|d| v.extend(d.to_be_bytes()));
    v.extend_from_slice(body);
    v
}

#[test]
fn idx_bytes_read_as_files_do_gzipped_or_raw() {
    let dir = wgcnn::data::bundled_dir();
    for (name, dims) in [("t10k-labels-idx1-ubyte.gz", 1), ("t10k-images-idx3-ubyte.gz", 3)] {
        let path = dir.join(name);
        let got = read_idx_bytes(&path, std::fs::read(&path).unwrap(), dims).unwrap();
        assert_eq!(got, read_idx(&path, dims).unwrap(), "{name}");
    }
    let path = scratch("labels-idx1-ubyte");
    let cases = [
        ("whole", idx(&[5], &[1, 2, 3, 4, 5])),
        ("truncated", idx(&[5], &[1, 2, 3])),
        ("trailing", idx(&[2], &[1, 2, 3])),
        ("bad magic", vec![0, 0, 9, 1, 0, 0, 0, 0]),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let (file, mem) = (read_idx(&path, 1), read_idx_bytes(&path, bytes, 1));
        match (file, mem) {
            (Ok(f), Ok(m)) => assert_eq!(m, f, "{what}"),
            (Err(f), Err(m)) => assert_eq!(m.to_string(), f.to_string(), "{what}"),
            (f, m) => panic!("{what}: from the file {f:?}, from bytes {m:?}"),
        }
    }
    let _ = std::fs::remove_file(&path);
    // A split from bytes is checked as `data::load` checks files.
    let (ip, lp) = (Path::new("images"), Path::new("labels"));
    let images = (vec![2, 2, 2], vec![0; 8]);
    let ok = Dataset::from_idx(ip, images.clone(), lp, (vec![2], vec![3, 9])).unwrap();
    assert_eq!((ok.len(), ok.rows, ok.cols, ok.labels), (2, 2, 2, vec![3, 9]));
    let err = Dataset::from_idx(ip, images.clone(), lp, (vec![3], vec![1, 2, 3])).unwrap_err().to_string();
    assert!(err.contains("3 labels for 2 images"), "{err}");
    let err = Dataset::from_idx(ip, images, lp, (vec![2], vec![1, 10])).unwrap_err().to_string();
    assert!(err.contains("label 10 at item 1"), "{err}");
}

#[test]
fn a_pictures_bytes_prepare_as_its_file_does() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/test/digit.png");
    let bytes = std::fs::read(&path).unwrap();
    let from_bytes = wgcnn::digits::load_digit_bytes(&path, &bytes).unwrap();
    assert_eq!(from_bytes, wgcnn::digits::load_digit(&path).unwrap());
    assert!(from_bytes.iter().any(|&v| v > 0.5), "the digit has ink");
    let err = wgcnn::digits::load_digit_bytes(Path::new("blank.png"), &[]).unwrap_err().to_string();
    assert!(err.contains("blank.png") && err.contains("empty"), "{err}");
    let err = wgcnn::digits::load_digit_bytes(Path::new("junk.png"), b"not a picture").unwrap_err().to_string();
    assert!(err.contains("junk.png") && err.contains("not a readable PNG or JPEG"), "{err}");
}

#[test]
fn one_awaited_readback_returns_every_range() {
    let ctx = common::ctx();
    let values: Vec<f32> = (0..100).map(|i| i as f32 * 0.5 - 7.0).collect();
    let whole = Tensor::from_f32(ctx, "whole", &[100], &values).unwrap();
    // A view 7 values in, as a graph's arena views are.
    let view = Tensor { offset: 28, shape: vec![5], label: "view".into(), ..whole.clone() };
    let bytes = Tensor::from_u8(ctx, "bytes", &[7], &[1, 2, 3, 4, 5, 6, 7]).unwrap();
    let got = pollster::block_on(ctx.read_ranges(&[
        (&**whole.buffer, 0, 400),
        (&**view.buffer, view.offset, view.byte_len()),
        (&**bytes.buffer, 0, 7),
        (&**whole.buffer, 0, 0),
    ]))
    .unwrap();
    assert_eq!(got[0], bytemuck_f32(&values));
    assert_eq!(got[1], bytemuck_f32(&values[7..12]));
    assert_eq!(got[2], vec![1, 2, 3, 4, 5, 6, 7]);
    assert!(got[3].is_empty());
    let f32s = pollster::block_on(ctx.read_f32s(&[&view, &whole])).unwrap();
    assert_eq!(f32s, vec![values[7..12].to_vec(), values.clone()]);
    assert_eq!(view.to_f32(ctx).unwrap(), values[7..12].to_vec());
    assert_eq!(pollster::block_on(view.to_f32_async(ctx)).unwrap(), values[7..12].to_vec());
    // A byte tensor is not f32: refused before any GPU work.
    let err = pollster::block_on(ctx.read_f32s(&[&bytes])).unwrap_err().to_string();
    assert!(err.contains("bytes"), "{err}");
    assert_eq!(bytes.dtype, DType::U8);
}

fn bytemuck_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
