//! The WGSL sources, compiled into the binary. Every file in `shaders/` is listed here.
//!
//! WGSL has no `#include`, so code several shaders share lives once in `shaders/prelude/`
//! (`grid.wgsl`, `workgroup_sum.wgsl`, ...). A shader that uses snippets names them on its
//! first line, `// prelude: grid, tree_sum3`, and its entry below names the same ones;
//! `tests/shaders.rs` checks that the two agree. The source a pipeline compiles
//! ([`ShaderSource::code`]) is put together at compile time: the shader file first (so line
//! numbers in compiler errors are the file's own), then each snippet in the order named.
//! WGSL declarations may come in any order, so snippets can use the shader's `p` and `WG`.

pub struct ShaderSource {
    /// The pipeline cache key and label: the file, and for a matmul its epilogue, e.g.
    /// `"matmul_rows_16x8.wgsl+matmul_term_none+matmul_store_swiglu"`.
    pub name: &'static str,
    /// The file in `shaders/`, e.g. `"svd.wgsl"`.
    pub file: &'static str,
    /// The snippets of `shaders/prelude/` appended to the file, e.g. `["grid"]`.
    pub prelude: &'static [&'static str],
    /// A matmul's epilogue snippets (what it adds to an output and how it stores it),
    /// appended after the prelude; empty for other shaders. Each matmul file is compiled once
    /// per epilogue ([`MatmulShaders`]).
    pub epilogue: &'static [&'static str],
    /// What the device compiles: the file, then its prelude and epilogue snippets.
    pub code: &'static str,
}

/// One matmul kernel file with each epilogue of [`MATMUL_EPILOGUES`], in that order.
pub type MatmulShaders = [ShaderSource; 5];

/// The epilogues a matmul is compiled with: a term snippet (with the preludes it needs)
/// and a store snippet. The low-rank term with SwiGLU's backward store is left out: it
/// would bind 9 storage buffers, past WebGPU's guaranteed 8.
pub const MATMUL_EPILOGUES: [&[&str]; 5] = [
    &["matmul_term_none", "matmul_store"],
    &["matmul_term_none", "matmul_store_swiglu"],
    &["matmul_term_none", "matmul_store_swiglu_backward"],
    &["philox", "matmul_term_low_rank", "matmul_store"],
    &["philox", "matmul_term_low_rank", "matmul_store_swiglu"],
];

macro_rules! shader {
    ($name:ident, $file:literal $(, prelude: [$($snippet:literal),+])?) => {
        pub const $name: ShaderSource = ShaderSource {
            name: $file,
            file: $file,
            prelude: &[$($($snippet),+)?],
            epilogue: &[],
            code: concat!(
                include_str!(concat!("../../shaders/", $file)),
                $($(
                    "\n",
                    include_str!(concat!("../../shaders/prelude/", $snippet, ".wgsl")),
                )+)?
            ),
        };
    };
}

macro_rules! matmul_source {
    ($file:literal, [$($snippet:literal),+], [$($epilogue:literal),+]) => {
        ShaderSource {
            name: concat!($file $(, "+", $epilogue)+),
            file: $file,
            prelude: &[$($snippet),+],
            epilogue: &[$($epilogue),+],
            code: concat!(
                include_str!(concat!("../../shaders/", $file)),
                $(
                    "\n",
                    include_str!(concat!("../../shaders/prelude/", $snippet, ".wgsl")),
                )+
                $(
                    "\n",
                    include_str!(concat!("../../shaders/prelude/", $epilogue, ".wgsl")),
                )+
            ),
        }
    };
}

/// A matmul file with every epilogue; the literals repeat [`MATMUL_EPILOGUES`] because
/// `include_str!` needs them (`tests/shaders.rs` checks they agree).
macro_rules! matmul_shaders {
    ($name:ident, $file:literal, prelude: [$($snippet:literal),+]) => {
        pub const $name: MatmulShaders = [
            matmul_source!($file, [$($snippet),+], ["matmul_term_none", "matmul_store"]),
            matmul_source!($file, [$($snippet),+], ["matmul_term_none", "matmul_store_swiglu"]),
            matmul_source!(
                $file,
                [$($snippet),+],
                ["matmul_term_none", "matmul_store_swiglu_backward"]
            ),
            matmul_source!(
                $file,
                [$($snippet),+],
                ["philox", "matmul_term_low_rank", "matmul_store"]
            ),
            matmul_source!(
                $file,
                [$($snippet),+],
                ["philox", "matmul_term_low_rank", "matmul_store_swiglu"]
            ),
        ];
    };
}

shader!(CROSS_ENTROPY, "cross_entropy.wgsl", prelude: ["grid"]);
shader!(ELEMENTWISE, "elementwise.wgsl", prelude: ["grid"]);
shader!(EMBEDDING, "embedding.wgsl", prelude: ["grid"]);
shader!(ADAMW, "adamw.wgsl", prelude: ["grid_3d", "workgroup_sum"]);
shader!(ATTENTION, "attention.wgsl", prelude: ["grid"]);
shader!(ATTENTION_ROWS, "attention_rows.wgsl", prelude: ["grid"]);
shader!(ATTENTION_DECODE, "attention_decode.wgsl", prelude: ["grid"]);
matmul_shaders!(MATMUL, "matmul.wgsl", prelude: ["grid_3d", "matmul_common"]);
matmul_shaders!(
    MATMUL_ROWS_8X4,
    "matmul_rows_8x4.wgsl",
    prelude: ["grid_3d", "matmul_common", "matmul_rows"]
);
matmul_shaders!(
    MATMUL_ROWS_16X8,
    "matmul_rows_16x8.wgsl",
    prelude: ["grid_3d", "matmul_common", "matmul_rows"]
);
matmul_shaders!(
    MATMUL_ROWS_8X8,
    "matmul_rows_8x8.wgsl",
    prelude: ["grid_3d", "matmul_common", "matmul_rows"]
);
matmul_shaders!(
    MATMUL_ROWS_SG_16X8,
    "matmul_rows_sg_16x8.wgsl",
    prelude: ["grid_3d", "matmul_common"]
);
shader!(REDUCE, "reduce.wgsl", prelude: ["workgroup_sum"]);
shader!(RMSNORM, "rmsnorm.wgsl", prelude: ["grid", "workgroup_sum"]);
shader!(ROPE, "rope.wgsl", prelude: ["grid"]);
shader!(SWIGLU, "swiglu.wgsl", prelude: ["grid"]);
shader!(SVD, "svd.wgsl", prelude: ["grid", "tree_sum3", "svd_state"]);
shader!(
    MATRIX_STATS,
    "matrix_stats.wgsl",
    prelude: ["grid", "tree_sum3", "svd_state"]
);
shader!(LORA, "lora.wgsl", prelude: ["grid", "philox"]);

pub const ALL: &[&ShaderSource] = &[
    &ADAMW,
    &ATTENTION,
    &ATTENTION_ROWS,
    &ATTENTION_DECODE,
    &MATMUL[0],
    &MATMUL[1],
    &MATMUL[2],
    &MATMUL[3],
    &MATMUL[4],
    &MATMUL_ROWS_8X4[0],
    &MATMUL_ROWS_8X4[1],
    &MATMUL_ROWS_8X4[2],
    &MATMUL_ROWS_8X4[3],
    &MATMUL_ROWS_8X4[4],
    &MATMUL_ROWS_16X8[0],
    &MATMUL_ROWS_16X8[1],
    &MATMUL_ROWS_16X8[2],
    &MATMUL_ROWS_16X8[3],
    &MATMUL_ROWS_16X8[4],
    &MATMUL_ROWS_8X8[0],
    &MATMUL_ROWS_8X8[1],
    &MATMUL_ROWS_8X8[2],
    &MATMUL_ROWS_8X8[3],
    &MATMUL_ROWS_8X8[4],
    &MATMUL_ROWS_SG_16X8[0],
    &MATMUL_ROWS_SG_16X8[1],
    &MATMUL_ROWS_SG_16X8[2],
    &MATMUL_ROWS_SG_16X8[3],
    &MATMUL_ROWS_SG_16X8[4],
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
