//! Typed errors. Library code returns these; it does not panic on bad input.

use std::fmt;

/// Everything that can go wrong in wgcnn, with enough context to act on it.
#[derive(Debug)]
pub enum Error {
    /// No adapter could be found at all.
    NoAdapter { backends: String },
    /// `WGCNN_ADAPTER` or `WGPU_BACKEND` holds a value we cannot interpret.
    BadEnv { var: &'static str, value: String, expected: String },
    /// An explicit adapter selection matched none of the adapters present.
    AdapterNotFound { wanted: String, available: Vec<String> },
    /// The adapter refused the device request.
    RequestDevice(String),
    /// An operation received tensors or parameters of the wrong shape.
    Shape { op: String, detail: String },
    /// A size exceeds what the device (or a u32 index) can address.
    Limit { op: String, what: String, value: u64, limit: u64 },
    /// Reading a buffer back from the GPU failed.
    Readback(String),
    /// The device reported a validation or out-of-memory error.
    Device(String),
    /// A file could not be read or written.
    Io { path: String, source: std::io::Error },
    /// A data file (IDX, image) is missing, truncated or malformed.
    Data { path: String, detail: String },
    /// A checkpoint does not fit the model (names, shapes, dtypes) or is malformed.
    Checkpoint { path: String, detail: String },
    /// A model description (file or builder) is wrong: `at` names the file and layer, `detail` the field.
    Model { at: String, detail: String },
    /// An ONNX file is malformed or holds what wgcnn cannot run: `path` names the file, `at` the node
    /// or tensor (empty: the file as a whole).
    Onnx { path: String, at: String, detail: String },
    /// Training diverged or was given an unusable setting.
    Train(String),
    /// Drawing a picture failed.
    Render(String),
    /// The run was stopped (SIGINT/SIGTERM) after a step; `detail` says what was saved where.
    Interrupted(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoAdapter { backends } => write!(
                f,
                "no GPU adapter found (backends tried: {backends}). On Linux without a GPU install the \
                 software Vulkan driver: `apt-get install mesa-vulkan-drivers libvulkan1`"
            ),
            Error::BadEnv { var, value, expected } => {
                write!(f, "{var}={value:?} is not understood; expected {expected}")
            }
            Error::AdapterNotFound { wanted, available } => write!(
                f,
                "no adapter matches WGCNN_ADAPTER={wanted:?}; available: {}",
                if available.is_empty() { "none".to_string() } else { available.join(", ") }
            ),
            Error::RequestDevice(e) => write!(f, "the adapter refused the device request: {e}"),
            Error::Shape { op, detail } => write!(f, "{op}: bad shape: {detail}"),
            Error::Limit { op, what, value, limit } => {
                write!(f, "{op}: {what} is {value}, over the limit of {limit}")
            }
            Error::Readback(e) => write!(f, "reading a buffer back from the GPU failed: {e}"),
            Error::Device(e) => write!(f, "GPU device error: {e}"),
            Error::Io { path, source } => write!(f, "{path}: {source}"),
            Error::Data { path, detail } => write!(f, "{path}: {detail}"),
            Error::Checkpoint { path, detail } => write!(f, "checkpoint {path}: {detail}"),
            Error::Model { at, detail } if at.is_empty() => write!(f, "model: {detail}"),
            Error::Model { at, detail } => write!(f, "model {at}: {detail}"),
            Error::Onnx { path, at, detail } if at.is_empty() => write!(f, "ONNX file {path}: {detail}"),
            Error::Onnx { path, at, detail } => write!(f, "ONNX file {path}: {at}: {detail}"),
            Error::Train(e) => write!(f, "training: {e}"),
            Error::Render(e) => write!(f, "drawing a picture: {e}"),
            Error::Interrupted(e) => write!(f, "interrupted: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Build an [`Error::Io`] for `path`.
pub(crate) fn io_err(path: &std::path::Path, source: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), source }
}

/// Build an [`Error::Data`] for `path`.
pub(crate) fn data_err(path: &std::path::Path, detail: impl Into<String>) -> Error {
    Error::Data { path: path.display().to_string(), detail: detail.into() }
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Build a [`Error::Shape`].
pub(crate) fn shape_err(op: &str, detail: impl Into<String>) -> Error {
    Error::Shape { op: op.to_string(), detail: detail.into() }
}

/// Convert a length to `u32` for a shader, or return a [`Error::Limit`] naming it.
pub(crate) fn to_u32(op: &str, what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::Limit {
        op: op.to_string(),
        what: what.to_string(),
        value: value as u64,
        limit: u64::from(u32::MAX),
    })
}
