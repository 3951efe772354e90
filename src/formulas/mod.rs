//! Shapes, specs and formulas that the GPU ops (`ops`) and their CPU reference (`reference`)
//! must agree on exactly. Both import them from here, so neither depends on the other: the
//! reference stays an independent oracle, and production code never reaches into test code.

pub mod attention;
pub mod kernels;
pub mod lora;
pub mod matmul;
