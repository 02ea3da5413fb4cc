//! wgcnn: a convolutional-neural-network engine whose every computation runs in WGSL compute shaders
//! through wgpu.
//!
//! Data flows one way: [`context`] (adapter, device) → [`tensor`] (GPU buffers) → [`kernels`] (one
//! WGSL entry point per op and gradient) — each checked against [`mod@reference`], the plain CPU loops.
// Two `unsafe` calls, allowed where they are made: wgpu's pipeline cache from wgcnn's own file
// (`context/cache.rs`), and shader modules without naga's forced loop bounding (`kernels/launch.rs`).
#![deny(unsafe_code)]

pub mod bench;
pub mod checkpoint;
pub mod context;
pub mod data;
pub mod digits;
pub mod error;
pub mod fault;
pub mod fsio;
pub mod graph;
pub mod ir;
pub mod kernels;
pub mod model;
pub mod onnx;
pub mod ops;
pub mod reference;
pub mod rng;
// The command line's jobs, on files and a blocking context: native only.
#[cfg(not(target_arch = "wasm32"))]
pub mod session;
pub mod shape;
pub mod tensor;
pub mod train;
pub mod viz;

pub use context::{AdapterChoice, Context, KernelSet};
pub use error::{Error, Result};
pub use tensor::{DType, Tensor};
/// The wgpu this crate is built on, for callers that record launches into their own passes.
pub use wgpu;
