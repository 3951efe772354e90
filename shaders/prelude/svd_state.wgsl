// prelude/svd_state.wgsl: the words of the SVD's `state` buffer (svd.wgsl writes them;
// matrix_stats.wgsl reads the scale exponent). Mirrored by the host in src/metrics/svd.rs.

const S_ABSMAX: u32 = 0u;    // max |a| as f32 bits (atomicMax over the pieces)
const S_DONE: u32 = 1u;      // 1 once converged (or nothing to do)
const S_SWEEPS: u32 = 2u;    // sweeps run before convergence (the converging sweep included)
const S_OFF: u32 = 3u;       // f32 bits: largest cosine met in the last sweep run
const S_EXP: u32 = 4u;       // i32 bits: e with w = a * 2^-e
const S_ROT_LAST: u32 = 5u;  // rotations applied in the last sweep run
const S_ROT_CUR: u32 = 6u;   // rotations applied so far in the current sweep
const S_NONFINITE: u32 = 7u; // 1 when A holds an infinity or a NaN
const S_WORDS: u32 = 16u;
