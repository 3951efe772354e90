//! GPU operations. Each op binds its shader, checks shapes, and prepares dispatches once;
//! recording them into an encoder is cheap and allocation-free.

pub mod matmul;

pub use matmul::{Matmul, MatmulKernel, MatmulSpec};
