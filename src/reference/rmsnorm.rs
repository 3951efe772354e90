//! Reference for RMSNorm over the last dimension: `y = x * rsqrt(mean(x^2) + eps) * w`,
//! no bias (pico uses eps = 1e-6). The row length d is `w.len()`.

use super::real::{narrow, widen, Real};

/// `1 / sqrt(mean(x^2) + eps)` of one row, in f64.
fn row_rstd(row: &[f64], eps: f64) -> f64 {
    let ms = row.iter().map(|v| v * v).sum::<f64>() / row.len() as f64;
    1.0 / (ms + eps).sqrt()
}

fn check(x_len: usize, d: usize) {
    assert!(
        d > 0 && x_len.is_multiple_of(d),
        "rmsnorm: x length {x_len} is not a multiple of the weight length {d}"
    );
}

/// Per-row reciprocal RMS, [rows]: what a fused kernel may save for the backward.
pub fn rmsnorm_rstd<T: Real>(x: &[T], d: usize, eps: f32) -> Vec<T> {
    check(x.len(), d);
    let x = widen(x);
    let r: Vec<f64> = x.chunks(d).map(|row| row_rstd(row, eps as f64)).collect();
    narrow(&r)
}

/// `x` is [rows, d], `w` is [d]; returns y, [rows, d].
pub fn rmsnorm<T: Real>(x: &[T], w: &[T], eps: f32) -> Vec<T> {
    let d = w.len();
    check(x.len(), d);
    let (x, w) = (widen(x), widen(w));
    let mut y = vec![0.0f64; x.len()];
    for (xr, yr) in x.chunks(d).zip(y.chunks_mut(d)) {
        let r = row_rstd(xr, eps as f64);
        for j in 0..d {
            yr[j] = xr[j] * r * w[j];
        }
    }
    narrow(&y)
}

/// Returns (dx [rows, d], dw [d]); dw is summed over rows. With r = rstd of the row:
/// `dx_k = r w_k dy_k - x_k r^3 / d * sum_j dy_j w_j x_j` and `dw_j = sum_rows dy_j x_j r`.
pub fn rmsnorm_backward<T: Real>(x: &[T], w: &[T], dy: &[T], eps: f32) -> (Vec<T>, Vec<T>) {
    let d = w.len();
    check(x.len(), d);
    assert_eq!(
        dy.len(),
        x.len(),
        "rmsnorm_backward: dy must be shaped like x"
    );
    let (x, w, dy) = (widen(x), widen(w), widen(dy));
    let mut dx = vec![0.0f64; x.len()];
    let mut dw = vec![0.0f64; d];
    for ((xr, dyr), dxr) in x.chunks(d).zip(dy.chunks(d)).zip(dx.chunks_mut(d)) {
        let r = row_rstd(xr, eps as f64);
        let dot: f64 = (0..d).map(|j| dyr[j] * w[j] * xr[j]).sum();
        let c = r * r * r * dot / d as f64;
        for k in 0..d {
            dxr[k] = r * w[k] * dyr[k] - xr[k] * c;
            dw[k] += dyr[k] * xr[k] * r;
        }
    }
    (narrow(&dx), narrow(&dw))
}
