//! Reference for rotary position embeddings with INTERLEAVED pairs (pico's layout, not the
//! rotate-half layout of HF Llama): in each head vector, dims (2i, 2i+1) at position t are
//! rotated as a complex number by the angle `t * theta^(-2i / head_dim)`.
//!
//! Tensors are [batch, seq, heads, head_dim] row-major; the batch is `len / (seq*heads*hd)`.
//! Positions start at 0 for every sequence. Angles are computed in f64 here; a GPU kernel
//! computing them in f32 differs by about t * 1e-7 rad.

use super::real::{narrow, widen, Real};

/// pico's RoPE base.
pub const ROPE_THETA: f32 = 10000.0;

/// Rotates every pair by `sign * angle`; the backward of a rotation is the opposite rotation.
fn rotate<T: Real>(
    x: &[T],
    seq: usize,
    heads: usize,
    head_dim: usize,
    theta: f32,
    sign: f64,
) -> Vec<T> {
    assert!(
        head_dim > 0 && head_dim.is_multiple_of(2),
        "rope: head_dim {head_dim} must be even and non-zero"
    );
    let per_seq = seq * heads * head_dim;
    assert!(
        per_seq > 0 && x.len().is_multiple_of(per_seq),
        "rope: length {} is not a multiple of seq*heads*head_dim = {per_seq}",
        x.len()
    );
    // freqs[i] = theta^(-2i/hd), shared by all positions and heads.
    let freqs: Vec<f64> = (0..head_dim / 2)
        .map(|i| (theta as f64).powf(-2.0 * i as f64 / head_dim as f64))
        .collect();
    let x = widen(x);
    let mut y = vec![0.0f64; x.len()];
    for (row, (xh, yh)) in x.chunks(head_dim).zip(y.chunks_mut(head_dim)).enumerate() {
        let t = (row / heads) % seq;
        for (i, f) in freqs.iter().enumerate() {
            let (sin, cos) = (sign * t as f64 * f).sin_cos();
            let (x0, x1) = (xh[2 * i], xh[2 * i + 1]);
            yh[2 * i] = x0 * cos - x1 * sin;
            yh[2 * i + 1] = x0 * sin + x1 * cos;
        }
    }
    narrow(&y)
}

/// Forward: `x` is [batch, seq, heads, head_dim]; returns the rotated tensor, same shape.
pub fn rope<T: Real>(x: &[T], seq: usize, heads: usize, head_dim: usize, theta: f32) -> Vec<T> {
    rotate(x, seq, heads, head_dim, theta, 1.0)
}

/// Backward: the gradient of the input is `dy` rotated by the negative angles.
pub fn rope_backward<T: Real>(
    dy: &[T],
    seq: usize,
    heads: usize,
    head_dim: usize,
    theta: f32,
) -> Vec<T> {
    rotate(dy, seq, heads, head_dim, theta, -1.0)
}
