//! The WGSL sources, compiled into the binary. Every file in `shaders/` is listed here.

pub struct ShaderSource {
    pub file: &'static str,
    pub code: &'static str,
}

macro_rules! shader {
    ($name:ident, $file:literal) => {
        pub const $name: ShaderSource = ShaderSource {
            file: $file,
            code: include_str!(concat!("../../shaders/", $file)),
        };
    };
}

shader!(CROSS_ENTROPY, "cross_entropy.wgsl");
shader!(ELEMENTWISE, "elementwise.wgsl");
shader!(EMBEDDING, "embedding.wgsl");
shader!(ADAMW, "adamw.wgsl");
shader!(ATTENTION, "attention.wgsl");
shader!(MATMUL, "matmul.wgsl");
shader!(MATMUL_BASELINE, "matmul_baseline.wgsl");
shader!(REDUCE, "reduce.wgsl");
shader!(RMSNORM, "rmsnorm.wgsl");
shader!(ROPE, "rope.wgsl");
shader!(SWIGLU, "swiglu.wgsl");
shader!(SVD, "svd.wgsl");
shader!(MATRIX_STATS, "matrix_stats.wgsl");
shader!(LORA, "lora.wgsl");

pub const ALL: &[&ShaderSource] = &[
    &ADAMW,
    &ATTENTION,
    &MATMUL,
    &MATMUL_BASELINE,
    &RMSNORM,
    &ROPE,
    &SWIGLU,
    &SVD,
    &MATRIX_STATS,
    &CROSS_ENTROPY,
    &ELEMENTWISE,
    &EMBEDDING,
    &REDUCE,
    &LORA,
];
