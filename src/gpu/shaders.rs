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

shader!(MATMUL, "matmul.wgsl");
shader!(MATMUL_BASELINE, "matmul_baseline.wgsl");
shader!(RMSNORM, "rmsnorm.wgsl");
shader!(ROPE, "rope.wgsl");
shader!(SWIGLU, "swiglu.wgsl");

pub const ALL: &[&ShaderSource] = &[&MATMUL, &MATMUL_BASELINE, &RMSNORM, &ROPE, &SWIGLU];
