//! The pico-decoder model on the host side: its configuration and checkpoints.

pub mod archive;
pub mod checkpoint;
pub mod config;
pub mod decoder;
pub mod generate;
pub mod grads;
pub mod init;
pub mod kv_cache;
pub mod linear;
pub mod memory_estimate;
pub mod merge;
pub mod params;
pub mod program;
pub mod relora;
