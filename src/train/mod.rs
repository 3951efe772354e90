//! Training: the optimizer and learning-rate schedules (usable in the browser too); the
//! native-only parts (data, tokenizer, the training loop) are gated by target below.

pub mod byte_tokenizer;
pub mod optim;
pub mod readback;
pub mod schedule;
pub mod step;

#[cfg(not(target_arch = "wasm32"))]
mod checkpoint_write;
#[cfg(not(target_arch = "wasm32"))]
pub mod config;
#[cfg(not(target_arch = "wasm32"))]
mod config_keys;
#[cfg(not(target_arch = "wasm32"))]
pub mod data;
#[cfg(not(target_arch = "wasm32"))]
pub mod fetch;
#[cfg(not(target_arch = "wasm32"))]
mod nonfinite;
#[cfg(not(target_arch = "wasm32"))]
pub mod paloma;
#[cfg(not(target_arch = "wasm32"))]
mod progress;
#[cfg(not(target_arch = "wasm32"))]
pub mod run_lock;
#[cfg(not(target_arch = "wasm32"))]
mod run_setup;
#[cfg(not(target_arch = "wasm32"))]
pub mod tokenizer;
#[cfg(not(target_arch = "wasm32"))]
pub mod trainer;
