// Checkpoints (safetensors header, metadata, the model description inside it, tensor layout): any bytes
// give a model and its state or an error, never a panic; a loaded state fits its model.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::input_file("m.safetensors", data);
    if let Ok((spec, state)) = wgcnn::checkpoint::load_model(&path) {
        assert_eq!(state.params.len(), spec.params().len());
        for (p, v) in spec.params().iter().zip(&state.params) {
            assert_eq!(p.len(), v.len());
            assert!(v.iter().all(|x| x.is_finite()));
        }
    }
    let _ = wgcnn::checkpoint::read(&path);
});
