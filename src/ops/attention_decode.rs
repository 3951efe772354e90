//! Attention of one new query row against a KV cache, for generation: q `[H, hd]` (any shape
//! of that many elements) against the first `len` rows of k and v caches `[capacity, KV, hd]`,
//! where `len` is read from a one-element u32 tensor on the device, so one prepared dispatch
//! serves every position (the host writes `len` before each token). Scores are scaled by
//! `1/sqrt(hd)`; query head h reads kv head `h / (H / KV)`.

use super::attention::check_heads;
use super::common::{grid_2d, to_u32, whole, whole_u32};
use crate::error::{Error, Result};
use crate::gpu::shaders::ATTENTION_DECODE;
use crate::gpu::{Dispatch, Gpu, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    heads: u32,
    head_dim: u32,
    group: u32,
    kv_heads: u32,
    capacity: u32,
    groups_x: u32,
    scale: f32,
    pad: u32,
}

/// The heads of one decode step: `heads` query heads sharing `kv_heads` cached heads.
#[derive(Clone, Copy, Debug)]
pub struct DecodeShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// One layer's cache: keys (after RoPE) and values `[capacity, KV, hd]`, and the number of
/// positions filled (a one-element u32 tensor the host writes).
#[derive(Clone, Copy)]
pub struct Cache<'t> {
    pub k: &'t Tensor,
    pub v: &'t Tensor,
    pub len: &'t Tensor,
}

/// `out[h] = softmax(scale * q[h] · k[0..len]ᵀ) v[0..len]` for every head, `len = cache.len[0]`
/// (at most the caches' capacity). `scores` (`[H, capacity]`) is scratch.
pub fn forward(
    gpu: &Gpu,
    q: &Tensor,
    cache: Cache,
    scores: &Tensor,
    out: &Tensor,
    s: DecodeShape,
) -> Result<Dispatch> {
    let op = "attention decode";
    let (k_cache, v_cache, cache_len) = (cache.k, cache.v, cache.len);
    check_heads(op, s.heads, s.kv_heads, s.head_dim)?;
    let bad = |detail: String| Err(Error::Shape { op, detail });
    let row = s.kv_heads * s.head_dim;
    let capacity = k_cache.numel() / row;
    if capacity == 0 || k_cache.numel() != capacity * row || v_cache.numel() != k_cache.numel() {
        return bad(format!(
            "the caches must be [capacity, {}, {}]: k {:?}, v {:?}",
            s.kv_heads,
            s.head_dim,
            k_cache.shape(),
            v_cache.shape()
        ));
    }
    for (t, name, want) in [
        (q, "q", s.heads * s.head_dim),
        (out, "out", s.heads * s.head_dim),
        (scores, "scores", s.heads * capacity),
        (cache_len, "cache_len", 1),
    ] {
        if t.numel() != want {
            return bad(format!(
                "{name} has {} elements, expected {want}",
                t.numel()
            ));
        }
    }
    to_u32(capacity * row)?;
    let grid = grid_2d(gpu, s.heads)?;
    let p = Params {
        heads: to_u32(s.heads)?,
        head_dim: to_u32(s.head_dim)?,
        group: to_u32(s.heads / s.kv_heads)?,
        kv_heads: to_u32(s.kv_heads)?,
        capacity: to_u32(capacity)?,
        groups_x: grid[0],
        scale: (1.0 / (s.head_dim as f64).sqrt()) as f32,
        pad: 0,
    };
    Ok(Dispatch::new(
        gpu,
        &ATTENTION_DECODE,
        "attention_decode",
        bytemuck::bytes_of(&p),
        &[
            whole(q, op, "q")?,
            whole(k_cache, op, "k_cache")?,
            whole(v_cache, op, "v_cache")?,
            whole_u32(cache_len, op, "cache_len")?,
            whole(scores, op, "scores")?,
            whole(out, op, "out")?,
        ],
        grid,
    ))
}
