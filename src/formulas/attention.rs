//! The shape of causal grouped-query attention, shared by the GPU op and its CPU reference:
//! q [B, T, H, hd], k and v [B, T, KV, hd], out [B, T, H, hd], all row-major; query head h
//! reads kv head `h / (H / KV)`.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    pub fn new(
        batch: usize,
        seq: usize,
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
    ) -> AttentionShape {
        AttentionShape {
            batch,
            seq,
            heads,
            kv_heads,
            head_dim,
        }
    }

    /// Softmax scale `1/sqrt(head_dim)`.
    pub fn scale(&self) -> f64 {
        1.0 / (self.head_dim as f64).sqrt()
    }

    /// Offset of head `h` of token `t` in batch `b`, in a tensor with `n` heads.
    pub fn at(&self, b: usize, t: usize, n: usize, h: usize) -> usize {
        ((b * self.seq + t) * n + h) * self.head_dim
    }
}
