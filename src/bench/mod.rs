//! The benchmark suite's shared parts: the shape tables (one table for `wgbench suite`, its
//! PyTorch baseline and the criterion benches), the timer, the JSON record of a run, and the
//! report that merges records from several machines and backends.

pub mod record;
#[cfg(not(target_arch = "wasm32"))]
pub mod report;
pub mod shapes;
#[cfg(not(target_arch = "wasm32"))]
pub mod timing;
pub mod workloads;
