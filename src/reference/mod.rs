//! Plain-Rust CPU implementations of every GPU op, accumulating in f64. They mirror
//! `src/ops` one to one and are the ground truth the GPU is tested against.

pub mod matmul;

pub use matmul::matmul;
