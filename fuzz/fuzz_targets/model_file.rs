// Model files: any text gives a checked model or an error naming the layer, never a panic; a model that
// parses writes a canonical form that parses back to the same model.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(spec) = wgcnn::model::file::parse(text) {
        let again = wgcnn::model::file::parse(&wgcnn::model::file::to_toml(&spec)).expect("the canonical form parses");
        assert_eq!(again, spec);
    }
});
