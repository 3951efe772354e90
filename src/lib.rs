//! wgtrain: a portable GPU training runtime for pico-lm models, on wgpu and WGSL.
//!
//! The layers, bottom up: [`gpu`] owns the device, buffers and pipelines; [`formulas`] holds
//! what the GPU ops and their CPU reference share; [`ops`] records the WGSL kernels of each
//! operation; [`reference`] holds plain-Rust CPU versions of every op, used as the ground
//! truth in tests; [`model`] plans the pico-decoder as a program of dispatches; [`train`],
//! [`eval`] and [`metrics`] train it, score it and measure its learning dynamics; [`demo`] is
//! the browser demo's session; [`bench`] is what the benchmark suite (`wgbench`) shares with
//! the criterion benches. `docs/architecture.md` has the map and the data path.

pub mod bench;
pub mod cache;
pub mod demo;
pub mod distributed;
pub mod error;
pub mod eval;
pub mod formulas;
pub mod gpu;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod panic_guard;
pub mod reference;
#[cfg(not(target_arch = "wasm32"))]
pub mod study;
pub mod train;

pub use error::{Error, Result};
pub use gpu::{Backend, Gpu, GpuOptions, Tensor};
