//! wgtrain: a portable GPU training runtime for pico-lm models, on wgpu and WGSL.
//!
//! The layers, bottom up: [`gpu`] owns the device, buffers and pipelines; [`ops`] records
//! the WGSL kernels of each operation; [`reference`] holds plain-Rust CPU versions of every op,
//! used as the ground truth in tests.

pub mod demo;
pub mod error;
pub mod eval;
pub mod formulas;
pub mod gpu;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod reference;
pub mod train;

pub use error::{Error, Result};
pub use gpu::{Backend, Gpu, GpuOptions, Tensor};
