// ONNX files: any bytes give an imported model or an error naming the problem, never a panic; a model
// that imports exports to a graph that imports back to the same model.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.onnx");
    if let Ok(m) = wgcnn::onnx::import_bytes(path, data) {
        let again = wgcnn::onnx::to_onnx(&m.spec, &m.state, &m.prep).expect("an imported model exports");
        let back = wgcnn::onnx::import_bytes(path, &again.encode()).expect("an export imports");
        assert_eq!(back.spec, m.spec);
    }
});
