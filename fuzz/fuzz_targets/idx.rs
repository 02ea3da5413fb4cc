// IDX files (raw or gzip, one or several members): any bytes give data or an error, never a panic, and
// what is returned is what the header promised.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::input_file("train-images-idx3-ubyte", data);
    for dims in [1, 3] {
        if let Ok((shape, body)) = wgcnn::data::read_idx(&path, dims) {
            assert_eq!(shape.len(), dims);
            assert_eq!(shape.iter().product::<usize>(), body.len());
        }
    }
});
