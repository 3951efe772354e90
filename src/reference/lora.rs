//! Reference for `ops::lora` (ReLoRA on the device): the counter-based RNG, LoRA dropout,
//! kaiming re-initialisation of A, and pruning of Adam moments. Every function here mirrors
//! `shaders/lora.wgsl` bit for bit: the RNG uses 32-bit integer arithmetic only, and the float
//! operations are single correctly rounded f32 operations, so CPU and GPU agree exactly
//! (except [`dropout_backward_accumulate`], whose multiply-add a GPU compiler may fuse).
//!
//! The RNG and the formulas both sides must agree on (dropout scale, kaiming bound, the
//! magnitude rank) live in `crate::formulas::lora` and are re-exported here.

pub use crate::formulas::lora::{
    dropout_scale, kaiming_bound, magnitude_key, magnitude_rank, philox2x32, random_words, uniform,
    word_to_uniform, MagnitudeRule, TWO_POW_M24,
};

fn index(i: usize) -> u32 {
    u32::try_from(i).expect("element index fits 32 bits")
}

/// Which elements LoRA dropout keeps: `uniform(seed, stream, i) >= p`.
pub fn dropout_mask(n: usize, p: f32, seed: u32, stream: u32) -> Vec<bool> {
    (0..n)
        .map(|i| uniform(seed, stream, index(i)) >= p)
        .collect()
}

/// `out = x * keep * (1 / (1 - p))`; dropped elements are +0.
pub fn dropout_forward(x: &[f32], p: f32, seed: u32, stream: u32) -> Vec<f32> {
    let scale = dropout_scale(p);
    dropout_mask(x.len(), p, seed, stream)
        .iter()
        .zip(x)
        .map(|(&keep, &v)| if keep { v * scale } else { 0.0 })
        .collect()
}

/// `dx += d_out * keep * (1 / (1 - p))` with the forward's mask.
pub fn dropout_backward_accumulate(d_out: &[f32], dx: &mut [f32], p: f32, seed: u32, stream: u32) {
    assert_eq!(
        d_out.len(),
        dx.len(),
        "dropout backward: d_out and dx differ"
    );
    let scale = dropout_scale(p);
    for (i, (d, g)) in dx.iter_mut().zip(d_out).enumerate() {
        if uniform(seed, stream, index(i)) >= p {
            *d += g * scale;
        }
    }
}

/// `n` values of U(-bound, bound) (torch's `nn.Linear` weight init, kaiming_uniform with
/// a = sqrt 5, bound = 1 / sqrt(fan_in)): `s * bound` with `s = ((word0 >> 7) - 2^24) * 2^-24`,
/// uniform on [-1, 1) in steps of 2^-24. A of a LoRA adapter is `[r, in]`, fan_in = in.
pub fn kaiming_uniform(n: usize, fan_in: usize, seed: u32, stream: u32) -> Vec<f32> {
    let bound = kaiming_bound(fan_in);
    (0..n)
        .map(|i| {
            let w = random_words(seed, stream, index(i))[0];
            let s = ((w >> 7) as i32 - (1 << 24)) as f32 * TWO_POW_M24;
            s * bound
        })
        .collect()
}

/// Random pruning of both Adam moments of one parameter (ReLoRA's `random_pruning_`, which
/// keeps an entry where `torch.rand_like(t) > ratio`): m's entry `i` is kept iff
/// `word_to_uniform(word 0) > ratio`, v's iff `word_to_uniform(word 1) > ratio`, with the
/// words of `(i, stream)` under `seed`; the others become +0. Each entry is zeroed with
/// probability `ratio` (to 2^-24), independently in m and v.
pub fn prune_random(m: &mut [f32], v: &mut [f32], ratio: f32, seed: u32, stream: u32) {
    assert_eq!(m.len(), v.len(), "prune_random: m and v differ");
    for (i, (a, b)) in m.iter_mut().zip(v.iter_mut()).enumerate() {
        let [w0, w1] = random_words(seed, stream, index(i));
        if word_to_uniform(w0) <= ratio {
            *a = 0.0;
        }
        if word_to_uniform(w1) <= ratio {
            *b = 0.0;
        }
    }
}

/// The threshold key: the [`magnitude_rank`]-th smallest [`magnitude_key`] of `x`.
pub fn magnitude_threshold(x: &[f32], ratio: f32) -> Option<u32> {
    if x.is_empty() {
        return None;
    }
    let mut keys: Vec<u32> = x.iter().map(|&v| magnitude_key(v)).collect();
    keys.sort_unstable();
    Some(keys[magnitude_rank(x.len(), ratio)])
}

/// Zero (to +0) every entry whose magnitude key is at most `threshold`.
fn zero_at_or_below(x: &mut [f32], keys_of: &[f32], threshold: u32) {
    for (v, &k) in x.iter_mut().zip(keys_of) {
        if magnitude_key(k) <= threshold {
            *v = 0.0;
        }
    }
}

/// Magnitude pruning (ReLoRA's `magnitude_pruning_`: keep where `|t| > quantile(|t|, ratio)`).
/// The threshold is the order statistic of rank `floor(ratio * (n - 1))` of the magnitudes
/// ([`magnitude_threshold`]), and every entry whose magnitude is at most the threshold is
/// zeroed, ties included, so at least `rank + 1` entries are zeroed. torch's linearly
/// interpolated quantile lies between this order statistic and the next; it differs from
/// this rule only where the interpolation rounds up onto the next value (adjacent floats).
pub fn prune_magnitude(m: &mut [f32], v: &mut [f32], ratio: f32, rule: MagnitudeRule) {
    assert_eq!(m.len(), v.len(), "prune_magnitude: m and v differ");
    let Some(tm) = magnitude_threshold(m, ratio) else {
        return;
    };
    let m_before = m.to_vec();
    match rule {
        MagnitudeRule::ByM => {
            zero_at_or_below(v, &m_before, tm);
            zero_at_or_below(m, &m_before, tm);
        }
        MagnitudeRule::Each => {
            let tv = magnitude_threshold(v, ratio).expect("v is not empty");
            let v_before = v.to_vec();
            zero_at_or_below(m, &m_before, tm);
            zero_at_or_below(v, &v_before, tv);
        }
    }
}

/// The ReLoRA merge `W += s * B A` (W `[out, in]`, B `[out, r]`, A `[r, in]`), accumulated in
/// f64 and rounded once, as `reference::matmul` with `MatmulSpec::nn().scale(s).accumulate()`.
pub fn merge(w: &mut [f32], b: &[f32], a: &[f32], out: usize, r: usize, inp: usize, s: f32) {
    assert_eq!(w.len(), out * inp, "merge: W is not [out, in]");
    assert_eq!(b.len(), out * r, "merge: B is not [out, r]");
    assert_eq!(a.len(), r * inp, "merge: A is not [r, in]");
    for i in 0..out {
        for j in 0..inp {
            let acc: f64 = (0..r)
                .map(|k| b[i * r + k] as f64 * a[k * inp + j] as f64)
                .sum();
            let wij = &mut w[i * inp + j];
            *wij = (s as f64 * acc + *wij as f64) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123's known-answer vectors for philox2x32 with 10 rounds.
    #[test]
    fn philox_matches_random123_known_answers() {
        assert_eq!(philox2x32([0, 0], 0), [0xff1d_ae59, 0x6cd1_0df2]);
        assert_eq!(
            philox2x32([0xffff_ffff, 0xffff_ffff], 0xffff_ffff),
            [0x2c3f_628b, 0xab4f_d7ad]
        );
        assert_eq!(
            philox2x32([0x243f_6a88, 0x85a3_08d3], 0x1319_8a2e),
            [0xdd7c_e038, 0xf62a_4c12]
        );
    }

    #[test]
    fn uniform_is_in_range_and_exact() {
        assert_eq!(word_to_uniform(0), 0.0);
        assert_eq!(word_to_uniform(u32::MAX), 1.0 - TWO_POW_M24);
        assert_eq!(TWO_POW_M24, 2f32.powi(-24));
        let k = kaiming_uniform(4096, 16, 3, 1);
        assert!(k.iter().all(|v| v.abs() <= 0.25));
    }

    #[test]
    fn magnitude_rank_and_ties() {
        assert_eq!(magnitude_rank(1, 0.999), 0);
        assert_eq!(magnitude_rank(11, 0.5), 5);
        assert_eq!(magnitude_rank(11, 1.0), 10);
        assert_eq!(magnitude_rank(11, 0.0), 0);
        let mut m = vec![0.5, -1.0, 0.5, 2.0, -0.5, 3.0];
        let mut v = vec![1.0; 6];
        // rank floor(0.4 * 5) = 2: sorted |m| = 0.5 0.5 0.5 1 2 3 -> threshold 0.5, three ties.
        prune_magnitude(&mut m, &mut v, 0.4, MagnitudeRule::ByM);
        assert_eq!(m, vec![0.0, -1.0, 0.0, 2.0, 0.0, 3.0]);
        assert_eq!(v, vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    }
}
