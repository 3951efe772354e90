//! The formulas of ReLoRA's device-side randomness and pruning that the GPU op (`ops::lora`,
//! `shaders/lora.wgsl`) and its CPU reference (`reference::lora`) share bit for bit.
//!
//! **RNG.** Philox2x32-10 (Salmon, Moraes, Dror, Shaw 2011; Random123's `philox2x32_R(10)`)
//! with counter `(element index, stream)` and key `seed`. Each counter gives two words; word
//! 0 drives dropout, kaiming and the pruning of m, word 1 the pruning of v. A uniform draw is
//! `(word >> 8) * 2^-24`, in [0, 1) with 24 random bits (as `torch.rand` for f32). The element
//! index is global over a tensor (pieces do not change values); the stream tells apart the
//! places that draw with the same seed (LoRA sites, tensors).

/// Philox2x32 multiplier and Weyl key increment.
const PHILOX_M: u32 = 0xD256_D193;
const PHILOX_W: u32 = 0x9E37_79B9;
/// 2^-24, exact in f32.
pub const TWO_POW_M24: f32 = 5.960_464_5e-8;

/// Philox2x32-10 of `counter` under `key`.
pub fn philox2x32(counter: [u32; 2], key: u32) -> [u32; 2] {
    let [mut c0, mut c1] = counter;
    let mut k = key;
    for _ in 0..10 {
        let prod = PHILOX_M as u64 * c0 as u64;
        let (hi, lo) = ((prod >> 32) as u32, prod as u32);
        c0 = hi ^ k ^ c1;
        c1 = lo;
        k = k.wrapping_add(PHILOX_W);
    }
    [c0, c1]
}

/// The two RNG words of element `index` of `stream` under `seed`.
pub fn random_words(seed: u32, stream: u32, index: u32) -> [u32; 2] {
    philox2x32([index, stream], seed)
}

/// Uniform in [0, 1) from one RNG word: `(word >> 8) * 2^-24`.
pub fn word_to_uniform(word: u32) -> f32 {
    (word >> 8) as f32 * TWO_POW_M24
}

/// The uniform draw (word 0) of element `index` of `stream` under `seed`.
pub fn uniform(seed: u32, stream: u32, index: u32) -> f32 {
    word_to_uniform(random_words(seed, stream, index)[0])
}

/// The factor kept elements are multiplied by: `1 / (1 - p)` in f32 (1 exactly for p = 0).
pub fn dropout_scale(p: f32) -> f32 {
    1.0 / (1.0 - p)
}

/// The bound of kaiming_uniform(a = sqrt 5) for `fan_in` inputs: `1 / sqrt(fan_in)`, in f32.
pub fn kaiming_bound(fan_in: usize) -> f32 {
    (1.0 / (fan_in.max(1) as f64).sqrt()) as f32
}

/// Whose magnitudes decide the magnitude pruning of a parameter's moments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MagnitudeRule {
    /// One mask from |m|, applied to both m and v (an entry's moments go together).
    ByM,
    /// m by the quantile of |m| and v by the quantile of |v|, each its own mask: ReLoRA's
    /// `optimizer_reset`, which calls `magnitude_pruning_` on `exp_avg` and `exp_avg_sq`.
    Each,
}

/// The order key of `|x|`: the f32 bits without the sign. Keys order non-negative floats as
/// their values (+0 and -0 alike; NaNs above infinity).
pub fn magnitude_key(x: f32) -> u32 {
    x.to_bits() & 0x7fff_ffff
}

/// The 0-based rank, among `n` ascending magnitudes, of the pruning threshold for `ratio`:
/// `floor(ratio * (n - 1))` computed in f32 as `torch.quantile` computes its rank
/// (clamped to `n - 1`).
pub fn magnitude_rank(n: usize, ratio: f32) -> usize {
    if n == 0 {
        return 0;
    }
    let rank = (ratio * (n - 1) as f32).floor();
    if rank.is_nan() || rank <= 0.0 {
        0
    } else {
        (rank as usize).min(n - 1)
    }
}
