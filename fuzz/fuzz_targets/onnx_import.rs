//! Any bytes given to the ONNX importer give a model or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wgcnn::onnx::import_bytes(std::path::Path::new("fuzz.onnx"), data);
});
