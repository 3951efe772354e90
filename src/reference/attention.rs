//! Reference for causal grouped-query attention on projected, rotated heads:
//! q [B, T, H, hd], k and v [B, T, KV, hd], out [B, T, H, hd], all row-major. Query head h
//! reads kv head `h / (H / KV)`; scores are scaled by `1/sqrt(hd)`; query t sees keys 0..=t.
//! The forward also returns the logsumexp of each query's scaled scores, [B, H, T], which a
//! flash-attention kernel stores for its backward.

use super::real::{narrow, widen, Real};
pub use crate::formulas::attention::AttentionShape;

/// Panics unless q, k and v have the lengths `s` implies (a reference is called by tests).
fn check(s: &AttentionShape, q_len: usize, k_len: usize, v_len: usize) {
    assert!(
        s.kv_heads > 0 && s.heads.is_multiple_of(s.kv_heads),
        "attention: heads {} must be a multiple of kv_heads {}",
        s.heads,
        s.kv_heads
    );
    assert!(s.head_dim > 0, "attention: head_dim must be non-zero");
    assert_eq!(
        q_len,
        s.batch * s.seq * s.heads * s.head_dim,
        "attention: q length"
    );
    let kv = s.batch * s.seq * s.kv_heads * s.head_dim;
    assert_eq!(k_len, kv, "attention: k length");
    assert_eq!(v_len, kv, "attention: v length");
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Softmax probabilities of query (b, h, t) over keys 0..=t, and their logsumexp.
/// Subtracting the max keeps exp in range for any score magnitude.
fn probs(
    s: &AttentionShape,
    q: &[f64],
    k: &[f64],
    b: usize,
    h: usize,
    t: usize,
) -> (Vec<f64>, f64) {
    let hd = s.head_dim;
    let g = h / (s.heads / s.kv_heads);
    let qv = &q[s.at(b, t, s.heads, h)..][..hd];
    let scores: Vec<f64> = (0..=t)
        .map(|j| s.scale() * dot(qv, &k[s.at(b, j, s.kv_heads, g)..][..hd]))
        .collect();
    let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + scores.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
    (scores.iter().map(|x| (x - lse).exp()).collect(), lse)
}

/// Returns (out [B, T, H, hd], lse [B, H, T]).
pub fn attention<T: Real>(q: &[T], k: &[T], v: &[T], s: AttentionShape) -> (Vec<T>, Vec<T>) {
    check(&s, q.len(), k.len(), v.len());
    let (q, k, v) = (widen(q), widen(k), widen(v));
    let hd = s.head_dim;
    let mut out = vec![0.0f64; q.len()];
    let mut lse = vec![0.0f64; s.batch * s.heads * s.seq];
    for b in 0..s.batch {
        for h in 0..s.heads {
            let g = h / (s.heads / s.kv_heads);
            for t in 0..s.seq {
                let (p, l) = probs(&s, &q, &k, b, h, t);
                lse[(b * s.heads + h) * s.seq + t] = l;
                let o = &mut out[s.at(b, t, s.heads, h)..][..hd];
                for (j, pj) in p.iter().enumerate() {
                    for (oi, vi) in o.iter_mut().zip(&v[s.at(b, j, s.kv_heads, g)..][..hd]) {
                        *oi += pj * vi;
                    }
                }
            }
        }
    }
    (narrow(&out), narrow(&lse))
}

/// One new query row against cached keys and values (generation): `q` is [H, hd] at position
/// `len - 1`, `k` and `v` are [len, KV, hd]; returns out [H, hd], the same row [`attention`]
/// gives for that position (the query sees every cached position, itself included).
pub fn attention_decode<T: Real>(
    q: &[T],
    k: &[T],
    v: &[T],
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
) -> Vec<T> {
    let len = k.len() / (kv_heads * head_dim);
    let s = AttentionShape::new(1, len, heads, kv_heads, head_dim);
    // The row at position len - 1 of a q whose other rows are unused (query t sees 0..=t).
    let mut q_full = vec![0.0f64; len * heads * head_dim];
    q_full[(len - 1) * heads * head_dim..].copy_from_slice(&widen(q));
    let (k, v) = (widen(k), widen(v));
    let mut out = vec![0.0f64; heads * head_dim];
    for h in 0..heads {
        let g = h / (heads / kv_heads);
        let (p, _) = probs(&s, &q_full, &k, 0, h, len - 1);
        let o = &mut out[h * head_dim..][..head_dim];
        for (j, pj) in p.iter().enumerate() {
            for (oi, vi) in o.iter_mut().zip(&v[s.at(0, j, kv_heads, g)..][..head_dim]) {
                *oi += pj * vi;
            }
        }
    }
    narrow(&out)
}

/// Returns (dq, dk, dv), shaped like q, k, v. Recomputes the probabilities from q and k.
/// With dp_j = dout_t . v_j and ds_j = p_j (dp_j - sum_i p_i dp_i):
/// `dq_t = scale sum_j ds_j k_j`, `dk_j += scale ds_j q_t`, `dv_j += p_j dout_t`;
/// kv gradients sum over the query heads of their group, in a fixed order.
pub fn attention_backward<T: Real>(
    q: &[T],
    k: &[T],
    v: &[T],
    dout: &[T],
    s: AttentionShape,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    check(&s, q.len(), k.len(), v.len());
    assert_eq!(
        dout.len(),
        q.len(),
        "attention_backward: dout must be shaped like q"
    );
    let (q, k, v, dout) = (widen(q), widen(k), widen(v), widen(dout));
    let hd = s.head_dim;
    let scale = s.scale();
    let mut dq = vec![0.0f64; q.len()];
    let mut dk = vec![0.0f64; k.len()];
    let mut dv = vec![0.0f64; v.len()];
    for b in 0..s.batch {
        for h in 0..s.heads {
            let g = h / (s.heads / s.kv_heads);
            for t in 0..s.seq {
                let (p, _) = probs(&s, &q, &k, b, h, t);
                let qo = s.at(b, t, s.heads, h);
                let dot_v = &dout[qo..][..hd];
                let dp: Vec<f64> = (0..=t)
                    .map(|j| dot(dot_v, &v[s.at(b, j, s.kv_heads, g)..][..hd]))
                    .collect();
                let mean = dot(&p, &dp);
                for j in 0..=t {
                    let ko = s.at(b, j, s.kv_heads, g);
                    let ds = p[j] * (dp[j] - mean);
                    for i in 0..hd {
                        dq[qo + i] += scale * ds * k[ko + i];
                        dk[ko + i] += scale * ds * q[qo + i];
                        dv[ko + i] += p[j] * dot_v[i];
                    }
                }
            }
        }
    }
    (narrow(&dq), narrow(&dk), narrow(&dv))
}
