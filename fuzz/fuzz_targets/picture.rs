// Pictures for `predict` (PNG, JPEG; transparency; any size up to the pixel cap): any bytes give a
// 28x28 input in [0, 1] or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::input_file("digit.png", data);
    if let Ok(x) = wgcnn::digits::load_digit(&path) {
        assert_eq!(x.len(), 28 * 28);
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)), "inputs lie in [0, 1]");
    }
});
