//! Reference for the elementwise part of the SwiGLU FFN: with g = x W_0^T and u = x W_1^T
//! (the matmuls are `reference::matmul`), `h = silu(g) * u`, `silu(g) = g * sigmoid(g)`.

use super::real::{narrow, widen, Real};

/// Sigmoid that never overflows: exp is only taken of a non-positive number.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `g` and `u` are [rows, hidden]; returns h, same shape.
pub fn swiglu<T: Real>(g: &[T], u: &[T]) -> Vec<T> {
    assert_eq!(g.len(), u.len(), "swiglu: g and u must have the same shape");
    let h: Vec<f64> = widen(g)
        .iter()
        .zip(widen(u))
        .map(|(&g, u)| g * sigmoid(g) * u)
        .collect();
    narrow(&h)
}

/// Returns (dg, du): `du = dh * silu(g)`, `dg = dh * u * sigmoid(g) * (1 + g (1 - sigmoid(g)))`.
pub fn swiglu_backward<T: Real>(g: &[T], u: &[T], dh: &[T]) -> (Vec<T>, Vec<T>) {
    assert_eq!(
        g.len(),
        u.len(),
        "swiglu_backward: g and u must have the same shape"
    );
    assert_eq!(
        dh.len(),
        g.len(),
        "swiglu_backward: dh must be shaped like g"
    );
    let (g, u, dh) = (widen(g), widen(u), widen(dh));
    let mut dg = vec![0.0f64; g.len()];
    let mut du = vec![0.0f64; g.len()];
    for i in 0..g.len() {
        let sg = sigmoid(g[i]);
        du[i] = dh[i] * g[i] * sg;
        dg[i] = dh[i] * u[i] * sg * (1.0 + g[i] * (1.0 - sg));
    }
    (narrow(&dg), narrow(&du))
}
