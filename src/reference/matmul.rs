//! Reference for `ops::matmul`: `C = alpha * op(A) * op(B) + beta * C`, same shapes and
//! broadcasting rules as the GPU op.

use crate::formulas::matmul::MatmulSpec;

/// `a`, `b`, `c` are row-major with the given shapes (at least 2-D; leading dims are batch).
pub fn matmul(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    c: &mut [f32],
    c_shape: &[usize],
    spec: &MatmulSpec,
) {
    let split = |s: &[usize]| {
        let n = s.len();
        (s[..n - 2].iter().product::<usize>(), s[n - 2], s[n - 1])
    };
    let (ab, ar, ac) = split(a_shape);
    let (bb, br, bc) = split(b_shape);
    let (batch, m, n) = split(c_shape);
    let k = if spec.trans_a { ar } else { ac };
    assert_eq!(a.len(), ab * ar * ac);
    assert_eq!(b.len(), bb * br * bc);
    assert_eq!(c.len(), batch * m * n);
    for bi in 0..batch {
        let a0 = if ab == 1 { 0 } else { bi * ar * ac };
        let b0 = if bb == 1 { 0 } else { bi * br * bc };
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f64;
                for kk in 0..k {
                    let av = if spec.trans_a {
                        a[a0 + kk * ac + i]
                    } else {
                        a[a0 + i * ac + kk]
                    };
                    let bv = if spec.trans_b {
                        b[b0 + j * bc + kk]
                    } else {
                        b[b0 + kk * bc + j]
                    };
                    acc += av as f64 * bv as f64;
                }
                let ci = bi * m * n + i * n + j;
                let prev = if spec.beta != 0.0 {
                    spec.beta as f64 * c[ci] as f64
                } else {
                    0.0
                };
                c[ci] = (spec.alpha as f64 * acc + prev) as f32;
            }
        }
    }
}
