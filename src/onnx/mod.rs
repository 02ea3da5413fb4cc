//! ONNX in and out: [`export`] writes a model and its state as an ONNX graph (opset 17) that
//! onnxruntime runs; [`import`] reads a graph made of the ops wgcnn has back into a model and its
//! state. [`proto`] is the small protobuf codec both use (no `protoc`, no generated code).

pub mod export;
pub mod import;
pub mod proto;

pub use export::{to_onnx, INPUT_NAME, OPSET, OUTPUT_NAME};
pub use import::{import_bytes, import_file, Imported};

use std::path::Path;

use crate::data::Preparation;
use crate::error::Result;
use crate::model::{ModelSpec, ModelState};

/// Write `spec` with `state` (and `prep` in the metadata) to `path` as an ONNX file, atomically.
pub fn save_onnx(path: &Path, spec: &ModelSpec, state: &ModelState, prep: &Preparation) -> Result<()> {
    let model = to_onnx(spec, state, prep)?;
    crate::fsio::write_atomic(path, &model.encode())
}
