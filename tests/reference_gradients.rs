//! The CPU reference ops against finite differences. Each op is run in f64, the objective is
//! `L = sum(out * R)` for a fixed random R, and every coordinate of the analytic gradient is
//! compared with the central difference `(L(x+h) - L(x-h)) / 2h`. In f64 with h = 1e-5 the
//! truncation error is about h^2 and the rounding error about 1e-16 / h, both far below the
//! 1e-7 tolerance. Also: known values, odd shapes, the causal mask, the logsumexp, GQA against
//! repeated heads, stability at extreme inputs, data-error messages, and the f32 path.

use wgtrain::reference::attention::{attention, attention_backward, AttentionShape};
use wgtrain::reference::cross_entropy::cross_entropy;
use wgtrain::reference::embedding::{embedding, embedding_backward};
use wgtrain::reference::residual::{add, add_backward};
use wgtrain::reference::rmsnorm::{rmsnorm, rmsnorm_backward, rmsnorm_rstd};
use wgtrain::reference::rope::{rope, rope_backward, ROPE_THETA};
use wgtrain::reference::swiglu::{swiglu, swiglu_backward};

/// splitmix64: deterministic, no crates.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.uniform()).collect()
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % n as u64) as u32
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

const H: f64 = 1e-5;
const TOL: f64 = 1e-7;

/// Compares `analytic` with central differences of `loss` at `x`, on every coordinate.
fn check_grad(what: &str, x: &[f64], analytic: &[f64], loss: impl Fn(&[f64]) -> f64) {
    assert_eq!(x.len(), analytic.len(), "{what}: gradient length");
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        xp[i] = x[i] + H;
        let lp = loss(&xp);
        xp[i] = x[i] - H;
        let lm = loss(&xp);
        xp[i] = x[i];
        let numeric = (lp - lm) / (2.0 * H);
        let err = (numeric - analytic[i]).abs();
        assert!(
            err <= TOL * (1.0 + numeric.abs()),
            "{what}[{i}]: analytic {} vs numeric {numeric} (error {err:e})",
            analytic[i]
        );
    }
}

fn assert_close(what: &str, a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

/// f32 results against f64 ones: the f32 path only adds input/output rounding.
fn assert_f32_close(what: &str, a: &[f32], b: &[f64]) {
    let a: Vec<f64> = a.iter().map(|&v| v as f64).collect();
    assert_close(what, &a, b, 1e-5);
}

fn to_f32(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

// ---------------------------------------------------------------- embedding

#[test]
fn embedding_gradient() {
    let mut rng = Rng(1);
    let (vocab, d) = (5, 3);
    let table = rng.vec(vocab * d);
    let ids = [1u32, 4, 1, 0, 1, 4, 2];
    let r = rng.vec(ids.len() * d);
    let dt: Vec<f64> = embedding_backward(&r, &ids, vocab, d).unwrap();
    check_grad("d_table", &table, &dt, |t| {
        dot(&embedding(t, &ids, d).unwrap(), &r)
    });
    // Row 3 is never looked up: its gradient is exactly zero.
    assert!(dt[3 * d..4 * d].iter().all(|&v| v == 0.0));
}

#[test]
fn embedding_values_and_f32() {
    let table: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let out = embedding(&table, &[2, 0, 2], 4).unwrap();
    assert_eq!(out, [8., 9., 10., 11., 0., 1., 2., 3., 8., 9., 10., 11.]);
    let d_out: Vec<f32> = vec![1.0; 12];
    let dt = embedding_backward(&d_out, &[2, 0, 2], 3, 4).unwrap();
    assert_eq!(dt, [1., 1., 1., 1., 0., 0., 0., 0., 2., 2., 2., 2.]);
    assert!(embedding::<f32>(&table, &[], 4).unwrap().is_empty());
}

#[test]
fn embedding_out_of_range_id() {
    let table = vec![0.0f32; 12];
    let err = embedding(&table, &[0, 1, 3], 4).unwrap_err().to_string();
    assert!(
        err.contains("token id 3") && err.contains("position 2"),
        "{err}"
    );
    assert!(err.contains("vocabulary size 3"), "{err}");
    let err = embedding_backward(&[0.0f32; 4], &[7], 3, 4)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("token id 7") && err.contains("vocabulary size 3"),
        "{err}"
    );
}

// ---------------------------------------------------------------- rmsnorm

const EPS: f32 = 1e-6;

#[test]
fn rmsnorm_gradient() {
    let mut rng = Rng(2);
    for (rows, d) in [(4, 7), (1, 1), (3, 16)] {
        let x = rng.vec(rows * d);
        let w: Vec<f64> = rng.vec(d).iter().map(|v| 1.0 + 0.5 * v).collect();
        let r = rng.vec(rows * d);
        let (dx, dw) = rmsnorm_backward(&x, &w, &r, EPS);
        check_grad("rmsnorm dx", &x, &dx, |x| dot(&rmsnorm(x, &w, EPS), &r));
        check_grad("rmsnorm dw", &w, &dw, |w| dot(&rmsnorm(&x, w, EPS), &r));
    }
}

#[test]
fn rmsnorm_values_and_f32() {
    // mean(x^2) = (9 + 16) / 2 = 12.5.
    let x = [3.0f64, 4.0, 0.0, 0.0];
    let w = [1.0f64, 2.0];
    let y = rmsnorm(&x, &w, EPS);
    let r = 1.0 / (12.5f64 + EPS as f64).sqrt();
    assert_close("rmsnorm y", &y, &[3.0 * r, 8.0 * r, 0.0, 0.0], 1e-15);
    let rstd = rmsnorm_rstd(&x, 2, EPS);
    assert_close("rstd", &rstd, &[r, 1.0 / (EPS as f64).sqrt()], 1e-12);

    let mut rng = Rng(3);
    let (x, w, dy) = (rng.vec(5 * 6), rng.vec(6), rng.vec(5 * 6));
    let y32 = rmsnorm(&to_f32(&x), &to_f32(&w), EPS);
    let (dx32, dw32) = rmsnorm_backward(&to_f32(&x), &to_f32(&w), &to_f32(&dy), EPS);
    let (xr, wr, dyr): (Vec<f64>, Vec<f64>, Vec<f64>) = (
        to_f32(&x).iter().map(|&v| v as f64).collect(),
        to_f32(&w).iter().map(|&v| v as f64).collect(),
        to_f32(&dy).iter().map(|&v| v as f64).collect(),
    );
    let (dx, dw) = rmsnorm_backward(&xr, &wr, &dyr, EPS);
    assert_f32_close("rmsnorm f32 y", &y32, &rmsnorm(&xr, &wr, EPS));
    assert_f32_close("rmsnorm f32 dx", &dx32, &dx);
    assert_f32_close("rmsnorm f32 dw", &dw32, &dw);
}

// ---------------------------------------------------------------- rope

#[test]
fn rope_gradient() {
    let mut rng = Rng(4);
    // (batch, seq, heads, head_dim)
    for (b, t, h, hd) in [(2, 7, 3, 4), (1, 1, 1, 2), (1, 5, 2, 8), (3, 2, 1, 6)] {
        let x = rng.vec(b * t * h * hd);
        let r = rng.vec(x.len());
        let dx = rope_backward(&r, t, h, hd, ROPE_THETA);
        check_grad("rope dx", &x, &dx, |x| {
            dot(&rope(x, t, h, hd, ROPE_THETA), &r)
        });
        // A rotation is orthogonal: the backward inverts the forward.
        let back = rope_backward(&rope(&x, t, h, hd, ROPE_THETA), t, h, hd, ROPE_THETA);
        assert_close("rope inverse", &back, &x, 1e-14);
    }
}

#[test]
fn rope_values() {
    // head_dim 2, positions 0 and 1: frequency 1, so position 1 rotates by 1 radian.
    let x = [1.0f64, 0.0, 1.0, 0.0];
    let y = rope(&x, 2, 1, 2, ROPE_THETA);
    assert_close("rope hd2", &y, &[1.0, 0.0, 1f64.cos(), 1f64.sin()], 1e-15);
    // head_dim 4 at position 3: pair 0 at angle 3, pair 1 (interleaved dims 2, 3) at
    // 3 * 10000^(-1/2) = 0.03.
    let mut x = vec![0.0f64; 4 * 4];
    x[12..16].copy_from_slice(&[0.0, 1.0, 2.0, 0.0]);
    let y = rope(&x, 4, 1, 4, ROPE_THETA);
    let (a0, a1) = (3.0f64, 0.03f64);
    let want = [-a0.sin(), a0.cos(), 2.0 * a1.cos(), 2.0 * a1.sin()];
    assert_close("rope hd4", &y[12..16], &want, 1e-14);
    // Batch and head indices do not move the position: every head of position 0 is unchanged.
    let mut rng = Rng(5);
    let x = rng.vec(2 * 3 * 2 * 4);
    let y = rope(&x, 3, 2, 4, ROPE_THETA);
    for b in 0..2 {
        let o = b * 3 * 2 * 4;
        assert_eq!(&y[o..o + 8], &x[o..o + 8]);
    }
}

#[test]
fn rope_is_relative() {
    // q_t . k_s after rotation depends only on t - s.
    let mut rng = Rng(6);
    let hd = 8;
    let (qv, kv) = (rng.vec(hd), rng.vec(hd));
    let seq = 9;
    let q: Vec<f64> = (0..seq).flat_map(|_| qv.clone()).collect();
    let k: Vec<f64> = (0..seq).flat_map(|_| kv.clone()).collect();
    let (rq, rk) = (
        rope(&q, seq, 1, hd, ROPE_THETA),
        rope(&k, seq, 1, hd, ROPE_THETA),
    );
    let s = |t: usize, u: usize| dot(&rq[t * hd..][..hd], &rk[u * hd..][..hd]);
    assert!((s(5, 2) - s(3, 0)).abs() < 1e-12);
    assert!((s(8, 8) - s(0, 0)).abs() < 1e-12);
    assert!((s(2, 6) - s(0, 4)).abs() < 1e-12);
}

#[test]
fn rope_f32() {
    let mut rng = Rng(7);
    let x = to_f32(&rng.vec(2 * 5 * 3 * 4));
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    assert_f32_close(
        "rope f32",
        &rope(&x, 5, 3, 4, ROPE_THETA),
        &rope(&xd, 5, 3, 4, ROPE_THETA),
    );
    assert_f32_close(
        "rope_backward f32",
        &rope_backward(&x, 5, 3, 4, ROPE_THETA),
        &rope_backward(&xd, 5, 3, 4, ROPE_THETA),
    );
}

// ---------------------------------------------------------------- attention

fn shapes() -> Vec<AttentionShape> {
    vec![
        AttentionShape::new(1, 1, 1, 1, 2),
        AttentionShape::new(2, 7, 3, 1, 4),
        AttentionShape::new(1, 5, 4, 4, 2),
        AttentionShape::new(2, 3, 6, 2, 3),
        AttentionShape::new(1, 4, 12, 4, 8),
    ]
}

fn qkv(rng: &mut Rng, s: AttentionShape) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let nq = s.batch * s.seq * s.heads * s.head_dim;
    let nk = s.batch * s.seq * s.kv_heads * s.head_dim;
    // Scale up so the softmax is far from uniform and the test sees its curvature.
    let mut big = |n| rng.vec(n).iter().map(|v| 2.0 * v).collect::<Vec<f64>>();
    (big(nq), big(nk), big(nk))
}

#[test]
fn attention_gradient() {
    let mut rng = Rng(8);
    for s in shapes() {
        let (q, k, v) = qkv(&mut rng, s);
        let r = rng.vec(q.len());
        let (dq, dk, dv) = attention_backward(&q, &k, &v, &r, s);
        let what = format!("{s:?}");
        check_grad(&format!("dq {what}"), &q, &dq, |q| {
            dot(&attention(q, &k, &v, s).0, &r)
        });
        check_grad(&format!("dk {what}"), &k, &dk, |k| {
            dot(&attention(&q, k, &v, s).0, &r)
        });
        check_grad(&format!("dv {what}"), &v, &dv, |v| {
            dot(&attention(&q, &k, v, s).0, &r)
        });
    }
}

/// Full score matrix with -inf above the diagonal, then softmax, in the most direct form.
fn naive_attention(q: &[f64], k: &[f64], v: &[f64], s: AttentionShape) -> (Vec<f64>, Vec<f64>) {
    let (t_, hd) = (s.seq, s.head_dim);
    let mut out = vec![0.0; q.len()];
    let mut lse = vec![0.0; s.batch * s.heads * t_];
    for b in 0..s.batch {
        for h in 0..s.heads {
            let g = h * s.kv_heads / s.heads;
            for t in 0..t_ {
                let qv = &q[((b * t_ + t) * s.heads + h) * hd..][..hd];
                let scores: Vec<f64> = (0..t_)
                    .map(|j| {
                        if j > t {
                            f64::NEG_INFINITY
                        } else {
                            dot(qv, &k[((b * t_ + j) * s.kv_heads + g) * hd..][..hd])
                                / (hd as f64).sqrt()
                        }
                    })
                    .collect();
                let l = scores.iter().map(|x| x.exp()).sum::<f64>().ln();
                lse[(b * s.heads + h) * t_ + t] = l;
                for j in 0..t_ {
                    let p = (scores[j] - l).exp();
                    for i in 0..hd {
                        out[((b * t_ + t) * s.heads + h) * hd + i] +=
                            p * v[((b * t_ + j) * s.kv_heads + g) * hd + i];
                    }
                }
            }
        }
    }
    (out, lse)
}

#[test]
fn attention_matches_naive_and_lse() {
    let mut rng = Rng(9);
    for s in shapes() {
        let (q, k, v) = qkv(&mut rng, s);
        let (out, lse) = attention(&q, &k, &v, s);
        let (n_out, n_lse) = naive_attention(&q, &k, &v, s);
        assert_close("out vs naive", &out, &n_out, 1e-12);
        assert_close("lse vs naive", &lse, &n_lse, 1e-12);
    }
    // T = 1: the only key gets all the weight.
    let s = AttentionShape::new(1, 1, 2, 1, 4);
    let (q, k, v) = qkv(&mut rng, s);
    let (out, lse) = attention(&q, &k, &v, s);
    assert_close("T=1 out", &out[..4], &v, 1e-15);
    assert_close("T=1 out", &out[4..], &v, 1e-15);
    assert!((lse[1] - dot(&q[4..], &k) / 2.0).abs() < 1e-15);
}

#[test]
fn attention_is_causal() {
    let mut rng = Rng(10);
    let s = AttentionShape::new(2, 7, 6, 2, 4);
    let (q, k, v) = qkv(&mut rng, s);
    let (out, lse) = attention(&q, &k, &v, s);
    let t0 = 4;
    // Change q, k and v at positions >= t0 in every batch and head.
    let bump = |x: &[f64], heads: usize| -> Vec<f64> {
        let mut y = x.to_vec();
        for (i, val) in y.iter_mut().enumerate() {
            if (i / (heads * s.head_dim)) % s.seq >= t0 {
                *val += 0.75;
            }
        }
        y
    };
    let (q2, k2, v2) = (
        bump(&q, s.heads),
        bump(&k, s.kv_heads),
        bump(&v, s.kv_heads),
    );
    let (out2, lse2) = attention(&q2, &k2, &v2, s);
    let row = s.heads * s.head_dim;
    for (i, (a, b)) in out.iter().zip(&out2).enumerate() {
        let t = (i / row) % s.seq;
        assert_eq!(t < t0, a == b, "out[{i}] at position {t}");
    }
    for (i, (a, b)) in lse.iter().zip(&lse2).enumerate() {
        let t = i % s.seq;
        assert_eq!(t < t0, a == b, "lse[{i}] at position {t}");
    }
    // And the backward: an upstream gradient only at positions < t0 gives zero dk, dv beyond.
    let mut dout = rng.vec(q.len());
    for (i, val) in dout.iter_mut().enumerate() {
        if (i / row) % s.seq >= t0 {
            *val = 0.0;
        }
    }
    let (_, dk, dv) = attention_backward(&q, &k, &v, &dout, s);
    let krow = s.kv_heads * s.head_dim;
    for i in 0..dk.len() {
        if (i / krow) % s.seq >= t0 {
            assert_eq!((dk[i], dv[i]), (0.0, 0.0), "dk/dv[{i}]");
        }
    }
}

#[test]
fn attention_gqa_equals_repeated_heads() {
    // GQA with H = 3 KV equals multi-head attention with each kv head repeated 3 times, and
    // the GQA kv gradient is the sum of the repeated heads' gradients.
    let mut rng = Rng(11);
    let g = AttentionShape::new(2, 5, 6, 2, 4);
    let m = AttentionShape::new(2, 5, 6, 6, 4);
    let (q, k, v) = qkv(&mut rng, g);
    let hd = g.head_dim;
    let repeat = |x: &[f64]| -> Vec<f64> {
        x.chunks(g.kv_heads * hd)
            .flat_map(|tok| (0..g.heads).flat_map(move |h| tok[h / 3 * hd..][..hd].to_vec()))
            .collect()
    };
    let (kr, vr) = (repeat(&k), repeat(&v));
    assert_close(
        "gqa out",
        &attention(&q, &k, &v, g).0,
        &attention(&q, &kr, &vr, m).0,
        1e-14,
    );
    let dout = rng.vec(q.len());
    let (dq, dk, dv) = attention_backward(&q, &k, &v, &dout, g);
    let (dqm, dkm, dvm) = attention_backward(&q, &kr, &vr, &dout, m);
    assert_close("gqa dq", &dq, &dqm, 1e-13);
    let fold = |x: &[f64]| -> Vec<f64> {
        let mut y = vec![0.0; k.len()];
        for (tok, chunk) in x.chunks(g.heads * hd).enumerate() {
            for h in 0..g.heads {
                for i in 0..hd {
                    y[(tok * g.kv_heads + h / 3) * hd + i] += chunk[h * hd + i];
                }
            }
        }
        y
    };
    assert_close("gqa dk", &dk, &fold(&dkm), 1e-13);
    assert_close("gqa dv", &dv, &fold(&dvm), 1e-13);
}

#[test]
fn attention_stable_and_f32() {
    // Scores around +-1e4 must not overflow.
    let s = AttentionShape::new(1, 3, 1, 1, 2);
    let q = [100.0f64, 100.0, -100.0, 100.0, 100.0, -100.0];
    let k = [100.0f64, 100.0, 100.0, -100.0, -100.0, 100.0];
    let v = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
    let (out, lse) = attention(&q, &k, &v, s);
    let (dq, dk, dv) = attention_backward(&q, &k, &v, &v, s);
    for x in out.iter().chain(&lse).chain(&dq).chain(&dk).chain(&dv) {
        assert!(x.is_finite());
    }

    let mut rng = Rng(12);
    let s = AttentionShape::new(2, 6, 6, 2, 4);
    let (q, k, v) = qkv(&mut rng, s);
    let dout = rng.vec(q.len());
    let r = |x: &[f64]| to_f32(x).iter().map(|&v| v as f64).collect::<Vec<f64>>();
    let (qr, kr, vr, dr) = (r(&q), r(&k), r(&v), r(&dout));
    let (o32, l32) = attention(&to_f32(&q), &to_f32(&k), &to_f32(&v), s);
    let (o, l) = attention(&qr, &kr, &vr, s);
    assert_f32_close("attn f32 out", &o32, &o);
    assert_f32_close("attn f32 lse", &l32, &l);
    let g32 = attention_backward(&to_f32(&q), &to_f32(&k), &to_f32(&v), &to_f32(&dout), s);
    let g = attention_backward(&qr, &kr, &vr, &dr, s);
    assert_f32_close("attn f32 dq", &g32.0, &g.0);
    assert_f32_close("attn f32 dk", &g32.1, &g.1);
    assert_f32_close("attn f32 dv", &g32.2, &g.2);
}

// ---------------------------------------------------------------- swiglu

#[test]
fn swiglu_gradient() {
    let mut rng = Rng(13);
    let n = 3 * 11;
    let g: Vec<f64> = rng.vec(n).iter().map(|v| 4.0 * v).collect();
    let u = rng.vec(n);
    let r = rng.vec(n);
    let (dg, du) = swiglu_backward(&g, &u, &r);
    check_grad("swiglu dg", &g, &dg, |g| dot(&swiglu(g, &u), &r));
    check_grad("swiglu du", &u, &du, |u| dot(&swiglu(&g, u), &r));
}

#[test]
fn swiglu_values_and_f32() {
    let g = [0.0f64, 1.0, -1000.0, 1000.0];
    let u = [5.0f64, 2.0, 3.0, 0.5];
    let h = swiglu(&g, &u);
    let s1 = 1.0 / (1.0 + (-1f64).exp());
    assert_close("swiglu h", &h, &[0.0, 2.0 * s1, 0.0, 500.0], 1e-15);
    let (dg, du) = swiglu_backward(&g, &u, &[1.0; 4]);
    // silu'(0) = 1/2, silu'(+large) = 1, silu'(-large) = 0.
    assert_close("swiglu dg", &[dg[0], dg[2], dg[3]], &[2.5, 0.0, 0.5], 1e-15);
    assert_close("swiglu du", &[du[0], du[3]], &[0.0, 1000.0], 1e-15);

    let mut rng = Rng(14);
    let (g, u, dh) = (rng.vec(20), rng.vec(20), rng.vec(20));
    let r = |x: &[f64]| to_f32(x).iter().map(|&v| v as f64).collect::<Vec<f64>>();
    assert_f32_close(
        "swiglu f32",
        &swiglu(&to_f32(&g), &to_f32(&u)),
        &swiglu(&r(&g), &r(&u)),
    );
    let (dg32, du32) = swiglu_backward(&to_f32(&g), &to_f32(&u), &to_f32(&dh));
    let (dg, du) = swiglu_backward(&r(&g), &r(&u), &r(&dh));
    assert_f32_close("swiglu f32 dg", &dg32, &dg);
    assert_f32_close("swiglu f32 du", &du32, &du);
}

// ---------------------------------------------------------------- cross-entropy

#[test]
fn cross_entropy_gradient() {
    let mut rng = Rng(15);
    for (rows, vocab) in [(5, 7), (1, 1), (1, 2), (4, 33)] {
        let logits: Vec<f64> = rng.vec(rows * vocab).iter().map(|v| 3.0 * v).collect();
        let labels: Vec<u32> = (0..rows).map(|_| rng.below(vocab as u32)).collect();
        let (_, grad) = cross_entropy(&logits, &labels, vocab).unwrap();
        check_grad("dlogits", &logits, &grad, |x| {
            cross_entropy(x, &labels, vocab).unwrap().0
        });
        // Each row of the gradient sums to zero (softmax minus one-hot).
        for row in grad.chunks(vocab) {
            assert!(row.iter().sum::<f64>().abs() < 1e-15);
        }
    }
}

#[test]
fn cross_entropy_values_and_f32() {
    // Uniform logits: loss ln V, whatever the offset, even one that would overflow exp.
    let vocab = 50304;
    let logits = vec![1e4f64; 2 * vocab];
    let (loss, grad) = cross_entropy(&logits, &[0, 50303], vocab).unwrap();
    assert!((loss - (vocab as f64).ln()).abs() < 1e-12, "{loss}");
    assert!((grad[0] - (1.0 / vocab as f64 - 1.0) / 2.0).abs() < 1e-15);
    assert!((grad[1] - 1.0 / vocab as f64 / 2.0).abs() < 1e-15);
    // A confident, correct row: loss -ln(softmax) by hand.
    let (loss, _) = cross_entropy(&[2.0f64, 0.0, -1.0], &[0], 3).unwrap();
    let want = (1.0 + (-2f64).exp() + (-3f64).exp()).ln();
    assert!((loss - want).abs() < 1e-15);

    let mut rng = Rng(16);
    let logits = rng.vec(3 * 10);
    let labels = [9u32, 0, 4];
    let r: Vec<f64> = to_f32(&logits).iter().map(|&v| v as f64).collect();
    let (l32, g32) = cross_entropy(&to_f32(&logits), &labels, 10).unwrap();
    let (l, g) = cross_entropy(&r, &labels, 10).unwrap();
    assert_f32_close("ce f32 loss", &[l32], &[l]);
    assert_f32_close("ce f32 grad", &g32, &g);
}

#[test]
fn cross_entropy_out_of_range_label() {
    let err = cross_entropy(&[0.0f32; 6], &[1, 3], 3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("label 3") && err.contains("row 1"), "{err}");
    assert!(err.contains("vocabulary size 3"), "{err}");
}

// ---------------------------------------------------------------- residual

#[test]
fn residual_gradient() {
    let mut rng = Rng(17);
    let (a, b, r) = (rng.vec(9), rng.vec(9), rng.vec(9));
    let (da, db) = add_backward(&r);
    check_grad("residual da", &a, &da, |a| dot(&add(a, &b), &r));
    check_grad("residual db", &b, &db, |b| dot(&add(&a, b), &r));
    assert_eq!(add(&[1.0f32, 2.0], &[0.5, -2.0]), [1.5, 0.0]);
}
