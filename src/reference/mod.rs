//! Plain-Rust CPU implementations of every GPU op, accumulating in f64. They mirror
//! `src/ops` one to one and are the ground truth the GPU is tested against.

pub mod attention;
pub mod cross_entropy;
pub mod embedding;
pub mod lora;
pub mod matmul;
pub mod real;
pub mod residual;
pub mod rmsnorm;
pub mod rope;
pub mod swiglu;

pub use matmul::matmul;
