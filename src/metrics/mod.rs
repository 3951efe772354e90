//! Training metrics on the host side: the JSONL log and its plots.

pub mod dynamics;
pub mod log;
#[cfg(not(target_arch = "wasm32"))]
pub mod plot;
pub mod svd;
