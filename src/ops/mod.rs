//! GPU operations. Each op binds its shader, checks shapes, and prepares dispatches once;
//! recording them into an encoder is cheap and allocation-free. Forward and backward of an
//! op sit side by side in its module.

pub mod attention;
pub mod attention_decode;
// Shared with the on-device metrics (`crate::metrics`).
pub(crate) mod common;
pub mod cross_entropy;
pub mod elementwise;
pub mod embedding;
pub mod lora;
pub mod matmul;
pub mod matmul_epilogue;
pub mod matmul_tune;
pub mod reduce;
pub mod rmsnorm;
pub mod rope;
pub mod swiglu;

pub use matmul::{Matmul, MatmulKernel, MatmulSpec};
