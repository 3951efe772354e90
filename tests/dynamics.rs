//! Learning-dynamics metrics on the device against f64 CPU references: the one-sided Jacobi
//! SVD (random, wide/tall/odd, low-rank and ill-conditioned matrices of known condition
//! number), PER, condition number, norms, Gini, Hoyer, the OV-circuit construction and the
//! checkpoint analysis. The f64 reference SVD (one-sided Jacobi too) is itself checked against
//! matrices built as `U diag(s) Vᵀ` with known `s`.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;
use wgtrain::metrics::dynamics::{
    analyze_checkpoint, default_matrices, lora_product, matrix_metrics_blocking, ov_circuit,
    ov_circuit_with, AnalyzedWeights, MatrixMetrics, MetricsPlan, OvForm,
};
use wgtrain::metrics::svd::{SvdOptions, SvdPlan};
use wgtrain::model::checkpoint::{Checkpoint, TensorData};
use wgtrain::model::config::ModelConfig;
use wgtrain::{Gpu, Tensor};

// ---------------------------------------------------------------------------------------------
// f64 references

/// Deterministic f64 values in [-1, 1).
fn random_f64(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

/// All singular values of a row-major `rows x cols` matrix, largest first: one-sided Jacobi
/// in f64 on the vectors of the smaller side, cyclic order, until no pair has a cosine above
/// `sqrt(len) * eps`.
fn svd_f64(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let (k, len) = (rows.min(cols), rows.max(cols));
    let mut w: Vec<Vec<f64>> = (0..k)
        .map(|v| {
            (0..len)
                .map(|e| {
                    if cols <= rows {
                        a[e * cols + v]
                    } else {
                        a[v * cols + e]
                    }
                })
                .collect()
        })
        .collect();
    let tol = (len as f64).sqrt() * f64::EPSILON;
    for _ in 0..80 {
        let mut rotated = false;
        for p in 0..k {
            for q in p + 1..k {
                let (head, tail) = w.split_at_mut(q);
                let (wp, wq) = (&mut head[p], &mut tail[0]);
                let (mut alpha, mut beta, mut gamma) = (0.0, 0.0, 0.0);
                for (x, y) in wp.iter().zip(wq.iter()) {
                    alpha += x * x;
                    beta += y * y;
                    gamma += x * y;
                }
                if alpha == 0.0 || beta == 0.0 || gamma.abs() <= tol * alpha.sqrt() * beta.sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for (x, y) in wp.iter_mut().zip(wq.iter_mut()) {
                    (*x, *y) = (c * *x - s * *y, s * *x + c * *y);
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let mut s: Vec<f64> = w
        .iter()
        .map(|v| v.iter().map(|x| x * x).sum::<f64>().sqrt())
        .collect();
    s.sort_by(|a, b| b.total_cmp(a));
    s
}

/// `n x k` with orthonormal columns: modified Gram-Schmidt, twice, on random vectors.
fn orthonormal(n: usize, k: usize, seed: u64) -> Vec<f64> {
    let r = random_f64(n * k, seed);
    let mut q: Vec<Vec<f64>> = (0..k)
        .map(|j| (0..n).map(|i| r[i * k + j]).collect())
        .collect();
    for _ in 0..2 {
        for j in 0..k {
            for i in 0..j {
                let (head, tail) = q.split_at_mut(j);
                let (qi, qj) = (&head[i], &mut tail[0]);
                let d: f64 = qi.iter().zip(qj.iter()).map(|(a, b)| a * b).sum();
                for (b, a) in qj.iter_mut().zip(qi) {
                    *b -= d * a;
                }
            }
            let norm = q[j].iter().map(|x| x * x).sum::<f64>().sqrt();
            q[j].iter_mut().for_each(|x| *x /= norm);
        }
    }
    (0..n * k).map(|idx| q[idx % k][idx / k]).collect()
}

/// `U diag(s) Vᵀ` (`rows x cols`) with random orthonormal `U`, `V`.
fn with_singular_values(rows: usize, cols: usize, s: &[f64], seed: u64) -> Vec<f64> {
    let k = s.len();
    let u = orthonormal(rows, k, seed);
    let v = orthonormal(cols, k, seed + 1);
    let mut a = vec![0.0; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            a[i * cols + j] = (0..k).map(|l| u[i * k + l] * s[l] * v[j * k + l]).sum();
        }
    }
    a
}

/// Singular values spread geometrically from 1 down to 1 / kappa.
fn geometric(k: usize, kappa: f64) -> Vec<f64> {
    (0..k)
        .map(|i| kappa.powf(-(i as f64) / (k - 1) as f64))
        .collect()
}

/// pico-analyze's metrics in f64.
struct Reference {
    s: Vec<f64>,
    per: f64,
    cond: f64,
    frobenius: f64,
    nuclear: f64,
    max_abs: f64,
    gini: f64,
    hoyer: f64,
}

fn reference(a: &[f32], rows: usize, cols: usize) -> Reference {
    let x: Vec<f64> = a.iter().map(|&v| v as f64).collect();
    let s = svd_f64(&x, rows, cols);
    let total: f64 = s.iter().sum();
    let entropy: f64 = s
        .iter()
        .map(|v| v / total)
        .filter(|&p| p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    let mut abs: Vec<f64> = x.iter().map(|v| v.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let n = abs.len() as f64;
    let l1: f64 = abs.iter().sum();
    let l2 = abs.iter().map(|v| v * v).sum::<f64>().sqrt();
    let gini = abs
        .iter()
        .enumerate()
        .map(|(i, v)| (2.0 * (i + 1) as f64 - n - 1.0) * v)
        .sum::<f64>()
        / (n * l1);
    Reference {
        per: entropy.exp() / s.len() as f64,
        cond: s[0] / s[s.len() - 1],
        nuclear: total,
        frobenius: l2,
        max_abs: abs[abs.len() - 1],
        gini,
        hoyer: (n.sqrt() - l1 / l2) / (n.sqrt() - 1.0),
        s,
    }
}

fn rel(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

fn upload(gpu: &Gpu, rows: usize, cols: usize, data: &[f32]) -> Tensor {
    Tensor::from_f32(gpu, &[rows, cols], data).unwrap()
}

/// Largest error of the singular values relative to the largest one.
fn normwise_error(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max)
        / want[0]
}

/// The entry-based metrics against the reference.
/// `max_abs` must be exact when the device holds the very matrix the reference saw.
fn check_entry_metrics(m: &MatrixMetrics, r: &Reference, what: &str) {
    check_entry_metrics_tol(m, r, 0.0, what)
}

fn check_entry_metrics_tol(m: &MatrixMetrics, r: &Reference, max_abs_tol: f64, what: &str) {
    for (name, got, want, tol) in [
        ("frobenius", m.frobenius as f64, r.frobenius, 2e-6),
        ("max_abs", m.max_abs as f64, r.max_abs, max_abs_tol),
        ("gini", m.gini as f64, r.gini, 1e-5),
        ("hoyer", m.hoyer as f64, r.hoyer, 1e-5),
    ] {
        assert!(
            rel(got, want) <= tol,
            "{what}: {name} {got} vs {want} (rel {:.2e} > {tol:.0e})",
            rel(got, want)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The reference itself

#[test]
fn reference_svd_recovers_known_singular_values() {
    for (rows, cols, kappa) in [(20, 12, 1e3), (12, 20, 1e6), (30, 30, 1e2)] {
        let k = rows.min(cols);
        let s = geometric(k, kappa);
        let a = with_singular_values(rows, cols, &s, 7);
        let got = svd_f64(&a, rows, cols);
        for (g, w) in got.iter().zip(&s) {
            assert!(rel(*g, *w) < 1e-9, "{rows}x{cols}: {g} vs {w}");
        }
    }
    // Rank 2 of 10 x 6: the zero singular values come out at rounding level.
    let a = with_singular_values(10, 6, &[3.0, 1.0], 3);
    let got = svd_f64(&a, 10, 6);
    assert!(rel(got[0], 3.0) < 1e-12 && rel(got[1], 1.0) < 1e-12);
    assert!(got[2..].iter().all(|&v| v < 1e-14), "{got:?}");
}

// ---------------------------------------------------------------------------------------------
// The device solver and metrics

#[test]
fn random_matrices_match_the_f64_reference() {
    let gpu = common::gpu();
    let shapes = [
        (37, 23),
        (23, 37),
        (64, 64),
        (1, 17),
        (17, 1),
        (2, 2),
        (100, 257),
        (129, 65),
        (5, 300),
    ];
    for (i, &(rows, cols)) in shapes.iter().enumerate() {
        let data = common::random(rows * cols, 100 + i as u64);
        let r = reference(&data, rows, cols);
        let t = Instant::now();
        let m = matrix_metrics_blocking(&gpu, &upload(&gpu, rows, cols, &data)).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let err = normwise_error(&m.singular_values, &r.s);
        let cond_err = rel(m.condition_number as f64, r.cond);
        println!(
            "{rows:>4} x {cols:<4} sweeps {:>2} off {:.1e} (tol {:.1e}) |ds|/s_max {err:.1e} \
             per {:.6} vs {:.6} cond {:.4} vs {:.4} ({cond_err:.1e}) {secs:.3}s",
            m.svd.sweeps, m.svd.off_diagonal, m.svd.tol, m.per, r.per, m.condition_number, r.cond
        );
        assert!(m.svd.converged, "{rows}x{cols}: {:?}", m.svd);
        // Every singular value within a few eps of s_max (measured: up to 2e-7).
        assert!(
            err < 5e-7,
            "{rows}x{cols}: singular values off by {err:.2e} of s_max"
        );
        assert!(rel(m.per as f64, r.per) < 1e-5, "{rows}x{cols}: PER");
        // Condition numbers up to 2e3 here (measured: up to 3e-5).
        assert!(cond_err < 2e-4, "{rows}x{cols}: condition number");
        assert!(rel(m.nuclear as f64, r.nuclear) < 1e-5);
        assert!(rel(m.spectral as f64, r.s[0]) < 1e-5);
        if rows * cols > 1 {
            check_entry_metrics(&m, &r, &format!("{rows}x{cols}"));
        }
        let k = rows.min(cols);
        assert_eq!(m.singular_values.len(), k);
        assert!((m.effective_rank / k as f32 - m.per).abs() < 1e-5);
    }
}

#[test]
fn low_rank_matrix_gives_near_zero_singular_values_and_its_per() {
    let gpu = common::gpu();
    let (rows, cols) = (64, 40);
    let s = [5.0, 2.0, 0.5];
    let a: Vec<f32> = with_singular_values(rows, cols, &s, 11)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let m = matrix_metrics_blocking(&gpu, &upload(&gpu, rows, cols, &a)).unwrap();
    println!(
        "rank 3 of 64x40: s[..4] {:?}, s_min {:.2e}, PER {}, cond {:.2e}, sweeps {}",
        &m.singular_values[..4],
        m.singular_values[39],
        m.per,
        m.condition_number,
        m.svd.sweeps
    );
    assert!(m.svd.converged);
    for (g, w) in m.singular_values.iter().zip(&s) {
        assert!(rel(*g as f64, *w) < 1e-5, "{g} vs {w}");
    }

    // The other 37 are the f32 rounding noise of the stored matrix: about eps * s_max
    // (measured: up to 7e-8 s_max).
    assert!(m.singular_values[3..].iter().all(|&v| v < 1e-6 * 5.0));
    // PER of the exact spectrum (zeros count 0 ln 0 = 0): the noise moves it by < 1e-4.
    let total: f64 = s.iter().sum();
    let h: f64 = s.iter().map(|v| -(v / total) * (v / total).ln()).sum();
    let per = h.exp() / 40.0;
    assert!((m.per as f64 - per).abs() < 1e-4, "PER {} vs {per}", m.per);
    // ... and the f64 PER of the same f32 matrix (its noise singular values included).
    let r = reference(&a, rows, cols);
    assert!(
        (m.per as f64 - r.per).abs() < 1e-5,
        "PER {} vs {}",
        m.per,
        r.per
    );
    assert!(m.condition_number > 1e5, "{}", m.condition_number);
    check_entry_metrics(&m, &r, "rank 3");
}

#[test]
fn ill_conditioned_matrices_resolve_their_condition_numbers() {
    let gpu = common::gpu();

    // (kappa, tolerance on the relative error of s_min, and of the condition number), against
    // the f64 SVD of the same f32 matrix. Measured (printed): 3e-7, 5e-6, 6e-4, 7e-3: the error
    // grows like eps * kappa; the tolerances leave a factor of about 8.
    let cases = [(1e1, 2e-6), (1e3, 4e-5), (1e5, 5e-3), (1e6, 5e-2)];
    let mut worst = Vec::new();
    for &(kappa, tol) in &cases {
        let mut worst_s = 0.0f64;
        let mut worst_cond = 0.0f64;
        for (seed, (rows, cols)) in [(48usize, 64usize), (160, 64), (64, 64)].iter().enumerate() {
            let k = rows.min(cols);
            let a: Vec<f32> =
                with_singular_values(*rows, *cols, &geometric(*k, kappa), seed as u64)
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
            let r = reference(&a, *rows, *cols);
            let m = matrix_metrics_blocking(&gpu, &upload(&gpu, *rows, *cols, &a)).unwrap();
            assert!(m.svd.converged, "kappa {kappa:e}: {:?}", m.svd);
            let s_err = rel(m.singular_values[k - 1] as f64, r.s[k - 1]);
            let worst_any = m
                .singular_values
                .iter()
                .zip(&r.s)
                .map(|(g, w)| rel(*g as f64, *w))
                .fold(0.0, f64::max);
            let cond_err = rel(m.condition_number as f64, r.cond);
            println!(
                "kappa {kappa:.0e} {rows:>3}x{cols:<3}: cond {:.6e} vs {:.6e} (f64 of the f32 \
                 matrix; designed {kappa:.0e}) rel err s_min {s_err:.1e}, any s {worst_any:.1e}, \
                 cond {cond_err:.1e}; PER {:.6} vs {:.6}; sweeps {}",
                m.condition_number, r.cond, m.per, r.per, m.svd.sweeps
            );
            assert!((worst_any - s_err).abs() < 1e-12 || worst_any <= tol);
            assert!(rel(m.per as f64, r.per) < 1e-5);
            worst_s = worst_s.max(s_err);
            worst_cond = worst_cond.max(cond_err);
        }
        assert!(
            worst_s <= tol && worst_cond <= tol,
            "kappa {kappa:e}: s_min off by {worst_s:.2e}, condition number by {worst_cond:.2e} \
             (tolerance {tol:e})"
        );
        worst.push((kappa, worst_s, worst_cond));
    }
    println!("kappa | worst rel. error of s_min | of the condition number");
    for (kappa, s, c) in worst {
        println!("{kappa:.0e} | {s:.1e} | {c:.1e}");
    }
}

#[test]
fn the_gram_route_loses_what_jacobi_keeps() {
    // sqrt(eig(AᵀA)) with AᵀA formed in f32 on the device (eigenvalues in f64 on the host):
    // rounding AᵀA costs eps * s_max^2, so s_min comes out with a relative error near
    // eps * kappa^2, against eps * kappa for one-sided Jacobi on A.
    let gpu = common::gpu();
    let (rows, cols, kappa) = (80, 48, 1e4);
    let a: Vec<f32> = with_singular_values(rows, cols, &geometric(cols, kappa), 5)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let r = reference(&a, rows, cols);
    let at = upload(&gpu, rows, cols, &a);
    let g = Tensor::zeros(&gpu, &[cols, cols], wgtrain::gpu::DType::F32).unwrap();
    wgtrain::ops::Matmul::new(&gpu, &at, &at, &g, wgtrain::ops::MatmulSpec::tn())
        .unwrap()
        .run(&gpu);
    let g64: Vec<f64> = g
        .to_vec_f32(&gpu)
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect();
    let eig = svd_f64(&g64, cols, cols);
    let gram_min = eig[cols - 1].sqrt();
    let m = matrix_metrics_blocking(&gpu, &at).unwrap();
    let gram_err = rel(gram_min, r.s[cols - 1]);
    let jacobi_err = rel(m.singular_values[cols - 1] as f64, r.s[cols - 1]);
    println!(
        "kappa {kappa:.0e}: s_min {:.4e}; Gram route {gram_min:.4e} (rel err {gram_err:.1e}), \
         Jacobi {:.4e} (rel err {jacobi_err:.1e})",
        r.s[cols - 1],
        m.singular_values[cols - 1]
    );
    assert!(jacobi_err < 1e-3, "{jacobi_err}");
    assert!(gram_err > 100.0 * jacobi_err, "{gram_err} vs {jacobi_err}");
}

#[test]
fn zero_and_non_finite_matrices() {
    let gpu = common::gpu();
    let m = matrix_metrics_blocking(&gpu, &upload(&gpu, 8, 5, &[0.0; 40])).unwrap();
    assert!(m.per.is_nan() && m.condition_number.is_nan() && m.hoyer.is_nan());
    assert_eq!(
        (m.gini, m.frobenius, m.nuclear, m.spectral),
        (0.0, 0.0, 0.0, 0.0)
    );
    assert!(m.singular_values.iter().all(|&v| v == 0.0));
    assert!(m.svd.converged);

    // One zero column: an exact zero singular value, an infinite condition number.
    let mut a = common::random(8 * 5, 3);
    for r in 0..8 {
        a[r * 5 + 2] = 0.0;
    }
    let m = matrix_metrics_blocking(&gpu, &upload(&gpu, 8, 5, &a)).unwrap();
    assert_eq!(m.singular_values[4], 0.0);
    assert!(m.condition_number.is_infinite());
    let r = reference(&a, 8, 5);
    assert!(rel(m.per as f64, r.per) < 1e-5);

    let mut a = common::random(8 * 5, 4);
    a[17] = f32::NAN;
    let err = matrix_metrics_blocking(&gpu, &upload(&gpu, 8, 5, &a)).unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
    a[17] = f32::INFINITY;
    assert!(matrix_metrics_blocking(&gpu, &upload(&gpu, 8, 5, &a)).is_err());
}

#[test]
fn scale_does_not_matter() {
    // Gradient-sized and huge entries: the power-of-two scaling keeps sums of squares in range.
    let gpu = common::gpu();
    let base = common::random(30 * 20, 9);
    let r = reference(&base, 30, 20);
    for scale in [1e-30f32, 1e-12, 1e20] {
        let a: Vec<f32> = base.iter().map(|v| v * scale).collect();
        let m = matrix_metrics_blocking(&gpu, &upload(&gpu, 30, 20, &a)).unwrap();
        let s = scale as f64;
        assert!(
            rel(m.singular_values[0] as f64, r.s[0] * s) < 1e-5,
            "{scale}"
        );
        assert!(
            rel(m.singular_values[19] as f64, r.s[19] * s) < 1e-4,
            "{scale}"
        );
        assert!(rel(m.frobenius as f64, r.frobenius * s) < 1e-5, "{scale}");
        assert!(rel(m.per as f64, r.per) < 1e-5 && rel(m.gini as f64, r.gini) < 1e-5);
    }
}

#[test]
fn a_plan_is_reused_across_matrices_and_is_deterministic() {
    let gpu = common::gpu();
    let plan = MetricsPlan::new(&gpu, 40, 70).unwrap();
    let svd = SvdPlan::new(&gpu, 40, 70).unwrap();
    for seed in 0..3 {
        let a = common::random(40 * 70, 50 + seed);
        let t = upload(&gpu, 40, 70, &a);
        let r = reference(&a, 40, 70);
        let m1 = plan.run_blocking(&gpu, &t).unwrap();
        let m2 = plan.run_blocking(&gpu, &t).unwrap();
        assert_eq!(m1, m2, "bitwise reproducible");
        assert!(normwise_error(&m1.singular_values, &r.s) < 5e-7);
        check_entry_metrics(&m1, &r, "reuse");
        let (s, report) = svd.singular_values_blocking(&gpu, &t).unwrap();
        assert_eq!(s, m1.singular_values);
        assert_eq!(report, m1.svd);
    }
    // A matrix of another shape is refused.
    let t = upload(&gpu, 70, 40, &common::random(2800, 1));
    assert!(plan.run_blocking(&gpu, &t).is_err());
}

#[test]
fn a_sweep_cap_reports_no_convergence() {
    let gpu = common::gpu();
    let a = common::random(50 * 50, 77);
    let options = SvdOptions {
        max_sweeps: 2,
        first_check: 1,
        ..SvdOptions::default()
    };
    let plan = SvdPlan::with_options(&gpu, 50, 50, options).unwrap();
    let (_, report) = plan
        .singular_values_blocking(&gpu, &upload(&gpu, 50, 50, &a))
        .unwrap();
    assert_eq!(report.sweeps, 2);
    assert!(
        !report.converged && report.off_diagonal > report.tol,
        "{report:?}"
    );
}

#[test]
fn largest_test_shapes_and_timings() {
    // The largest shapes the CPU adapter runs in reasonable time; prints the sweep counts and
    // seconds (the solver is meant for GPUs: pico large's 1536 x 6144 is `wgbench svd`).
    let gpu = common::gpu();
    for (i, (rows, cols)) in [(256usize, 1024usize), (1024, 256)].into_iter().enumerate() {
        let bound = 1.0 / (cols as f32).sqrt();
        let a: Vec<f32> = common::random(rows * cols, 900 + i as u64)
            .iter()
            .map(|v| v * bound)
            .collect();
        let t = upload(&gpu, rows, cols, &a);
        let plan = MetricsPlan::new(&gpu, rows, cols).unwrap();
        let start = Instant::now();
        let m = plan.run_blocking(&gpu, &t).unwrap();
        let secs = start.elapsed().as_secs_f64();
        let r = reference(&a, rows, cols);
        let err = normwise_error(&m.singular_values, &r.s);
        println!(
            "{rows} x {cols}: {secs:.2}s on {}, sweeps {}, off {:.1e} (tol {:.1e}), rotations in \
             the last sweep {}, |ds|/s_max {err:.1e}, cond {:.5} vs {:.5}, PER {:.6} vs {:.6}",
            gpu.adapter.name,
            m.svd.sweeps,
            m.svd.off_diagonal,
            m.svd.tol,
            m.svd.rotations_last_sweep,
            m.condition_number,
            r.cond,
            m.per,
            r.per
        );
        assert!(m.svd.converged);
        assert!(err < 5e-7, "{err}");
        assert!(rel(m.condition_number as f64, r.cond) < 1e-5);
        assert!(rel(m.per as f64, r.per) < 1e-5);
        check_entry_metrics(&m, &r, "large");
    }
}

// ---------------------------------------------------------------------------------------------
// What is measured

/// The OV constructions on the CPU, as the module docs define them: per head
/// `W_v[g*hd.., :] · W_o[:, h*hd..]` stacked (`[H*hd, hd]`), or the concatenation
/// `[W_o,h · W_v,g]` (`d x H*d`).
fn ov_cpu(v: &[f32], o: &[f32], d: usize, heads: usize, kv: usize, form: OvForm) -> Vec<f64> {
    let hd = d / heads;
    let group = heads / kv;
    match form {
        OvForm::Concat => {
            let cols = heads * d;
            let mut out = vec![0.0; d * cols];
            for h in 0..heads {
                let g = h / group;
                for i in 0..d {
                    for j in 0..d {
                        out[i * cols + h * d + j] = (0..hd)
                            .map(|c| {
                                o[i * heads * hd + h * hd + c] as f64
                                    * v[(g * hd + c) * d + j] as f64
                            })
                            .sum();
                    }
                }
            }
            out
        }
        OvForm::Heads => {
            let mut out = vec![0.0; heads * hd * hd];
            for h in 0..heads {
                let g = h / group;
                for i in 0..hd {
                    for j in 0..hd {
                        out[(h * hd + i) * hd + j] = (0..d)
                            .map(|c| {
                                v[(g * hd + i) * d + c] as f64
                                    * o[c * heads * hd + h * hd + j] as f64
                            })
                            .sum();
                    }
                }
            }
            out
        }
    }
}

#[test]
fn ov_circuit_matches_a_cpu_construction() {
    let gpu = common::gpu();
    // (d, heads, kv heads): pico's 12 / 4 at a small width, and an odd head_dim.
    for (d, heads, kv) in [(48usize, 12usize, 4usize), (30, 6, 2), (20, 4, 4)] {
        let hd = d / heads;
        let v = common::random(kv * hd * d, d as u64);
        let o = common::random(d * heads * hd, d as u64 + 1);
        let vt = upload(&gpu, kv * hd, d, &v);
        let ot = upload(&gpu, d, heads * hd, &o);
        for form in [OvForm::Heads, OvForm::Concat] {
            let got = ov_circuit_with(&gpu, &vt, &ot, heads, kv, form).unwrap();
            let want = ov_cpu(&v, &o, d, heads, kv, form);
            let shape = match form {
                OvForm::Heads => vec![heads * hd, hd],
                OvForm::Concat => vec![d, heads * d],
            };
            assert_eq!(got.shape(), shape.as_slice());
            let want32: Vec<f32> = want.iter().map(|&x| x as f32).collect();
            common::assert_close(&got.to_vec_f32(&gpu).unwrap(), &want32, 1e-5, 1e-5, "ov");
        }
    }
    // Default form is pico-analyze's per-head products.
    let v = upload(&gpu, 8, 24, &common::random(192, 1));
    let o = upload(&gpu, 24, 24, &common::random(576, 2));
    assert_eq!(ov_circuit(&gpu, &v, &o, 6, 2).unwrap().shape(), &[24, 4]);
    assert!(ov_circuit(&gpu, &v, &o, 5, 2).is_err());
    assert!(ov_circuit(&gpu, &o, &v, 6, 2).is_err());
}

#[test]
fn a_batched_svd_gives_every_small_matrix_its_own_singular_values() {
    let gpu = common::gpu();
    // 8 x 8 (pico tiny's head_dim) and an odd size; among the blocks a zero matrix, a rank-2
    // one and an ill-conditioned one (kappa 1e3), the rest random.
    for n in [8usize, 5] {
        let blocks = 37;
        let mut data = Vec::with_capacity(blocks * n * n);
        for b in 0..blocks {
            let m: Vec<f64> = match b {
                3 => vec![0.0; n * n],
                7 => {
                    let u = random_f64(n * 2, 70 + b as u64);
                    let w = random_f64(2 * n, 80 + b as u64);
                    (0..n * n)
                        .map(|idx| {
                            (0..2)
                                .map(|l| u[idx / n * 2 + l] * w[l * n + idx % n])
                                .sum()
                        })
                        .collect()
                }
                11 => with_singular_values(n, n, &geometric(n, 1e3), 90),
                _ => random_f64(n * n, 100 + b as u64),
            };
            data.extend(m.iter().map(|&x| x as f32));
        }
        let stacked = upload(&gpu, blocks * n, n, &data);
        let plan = SvdPlan::batched_square(&gpu, blocks, n, SvdOptions::default()).unwrap();
        let out = pollster::block_on(plan.run_with(&gpu, &stacked, &[], &[], &[])).unwrap();
        assert!(out.report.converged, "{:?}", out.report);
        assert_eq!(out.by_vector.len(), blocks * n);
        for b in 0..blocks {
            let block = &data[b * n * n..(b + 1) * n * n];
            let mut got = out.by_vector[b * n..(b + 1) * n].to_vec();
            got.sort_by(|x, y| y.total_cmp(x));
            if b == 3 {
                assert!(got.iter().all(|&s| s == 0.0), "zero block: {got:?}");
                continue;
            }
            let want = reference(block, n, n);
            assert!(
                normwise_error(&got, &want.s) < 5e-7,
                "block {b} of {n}x{n}: {got:?} vs {:?}",
                want.s
            );
            // The batched host metrics equal a plan of its own on the device.
            let single = matrix_metrics_blocking(&gpu, &upload(&gpu, n, n, block)).unwrap();
            let parts = MatrixMetrics::from_parts(n, n, &got, block, out.report);
            for (what, a, b_) in [
                ("per", parts.per, single.per),
                ("frobenius", parts.frobenius, single.frobenius),
                ("gini", parts.gini, single.gini),
                ("hoyer", parts.hoyer, single.hoyer),
                ("max_abs", parts.max_abs, single.max_abs),
            ] {
                assert!(
                    rel(a as f64, b_ as f64) < 2e-5,
                    "block {b}: {what} {a} vs {b_}"
                );
            }
            if b != 7 {
                assert!(rel(parts.per as f64, want.per) < 1e-5, "block {b}");
                assert!(
                    rel(parts.condition_number as f64, want.cond) < 1e-3,
                    "block {b}"
                );
            }
        }
    }
}

#[test]
fn lora_product_is_b_times_a_scaled() {
    let gpu = common::gpu();
    let (out_dim, r, in_dim) = (24, 4, 36);
    let b = common::random(out_dim * r, 1);
    let a = common::random(r * in_dim, 2);
    let p = lora_product(
        &gpu,
        &upload(&gpu, out_dim, r, &b),
        &upload(&gpu, r, in_dim, &a),
        2.0,
    )
    .unwrap();
    let want: Vec<f32> = (0..out_dim * in_dim)
        .map(|idx| {
            let (i, j) = (idx / in_dim, idx % in_dim);
            2.0 * (0..r)
                .map(|l| b[i * r + l] * a[l * in_dim + j])
                .sum::<f32>()
        })
        .collect();
    common::assert_close(&p.to_vec_f32(&gpu).unwrap(), &want, 1e-5, 1e-5, "B A");
    // Rank r: r singular values above the noise.
    let m = matrix_metrics_blocking(&gpu, &p).unwrap();
    assert!(m.singular_values[r - 1] > 1e-2 && m.singular_values[r] < 1e-5 * m.spectral);
}

#[test]
fn analyze_checkpoint_measures_w2_and_the_ov_circuit_of_every_layer() {
    let gpu = common::gpu();
    let mut config = ModelConfig::preset("tiny").unwrap();
    config.d_model = 24;
    config.n_layers = 2;
    config.attention_n_heads = 6;
    config.attention_n_kv_heads = 2;
    config.activation_hidden_dim = 40;
    let (d, hd, hidden, heads) = (24, 4, 40, 6);
    let mut tensors = BTreeMap::new();
    let mut put = |name: String, shape: Vec<usize>, seed: u64| {
        let data = common::random(shape.iter().product(), seed);
        tensors.insert(name, TensorData { shape, data });
    };
    for l in 0..2 {
        put(
            format!("layers.{l}.swiglu.w_2.weight"),
            vec![d, hidden],
            10 + l as u64,
        );
        put(
            format!("layers.{l}.attention.v_proj.weight"),
            vec![2 * hd, d],
            20 + l as u64,
        );
        put(
            format!("layers.{l}.attention.o_proj.weight"),
            vec![d, 6 * hd],
            30 + l as u64,
        );
        put(
            format!("layers.{l}.attention_norm.weight"),
            vec![d],
            40 + l as u64,
        );
    }
    let ckpt = Checkpoint {
        path: "in-memory".into(),
        config: config.clone(),
        tensors,
    };
    let names = default_matrices(&config);
    assert_eq!(
        names,
        [
            "layers.0.swiglu.w_2.weight",
            "layers.0.ov_circuit",
            "layers.1.swiglu.w_2.weight",
            "layers.1.ov_circuit"
        ]
    );
    let got = analyze_checkpoint(&gpu, &ckpt, None, AnalyzedWeights::Effective).unwrap();
    let mut want_names = Vec::new();
    for l in 0..2 {
        want_names.push(format!("layers.{l}.swiglu.w_2.weight"));
        want_names.extend((0..heads).map(|h| format!("layers.{l}.ov_circuit.weights.heads.{h}")));
        want_names.push(format!("layers.{l}.ov_circuit.weights.head_mean"));
    }
    assert_eq!(
        got.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        want_names
    );
    let mut head_pers = Vec::new();
    for (name, m) in &got {
        if name.ends_with("head_mean") {
            // The plain mean of the layer's heads, as its name says.
            let mean = head_pers.iter().sum::<f64>() / heads as f64;
            assert!(
                rel(m.per as f64, mean) < 1e-6,
                "{name}: {} vs {mean}",
                m.per
            );
            head_pers.clear();
            continue;
        }
        let (want, rows, cols) = if let Some((l, h)) = name.split_once(".ov_circuit.weights.heads.")
        {
            let h: usize = h.parse().unwrap();
            let v = &ckpt.tensors[&format!("{l}.attention.v_proj.weight")].data;
            let o = &ckpt.tensors[&format!("{l}.attention.o_proj.weight")].data;
            let all = ov_cpu(v, o, d, heads, 2, OvForm::Heads);
            let head: Vec<f32> = all[h * hd * hd..(h + 1) * hd * hd]
                .iter()
                .map(|&x| x as f32)
                .collect();
            (head, hd, hd)
        } else {
            (ckpt.tensors[name].data.clone(), d, hidden)
        };
        assert_eq!((m.rows, m.cols), (rows, cols), "{name}");
        let r = reference(&want, rows, cols);
        assert!(normwise_error(&m.singular_values, &r.s) < 5e-7, "{name}");
        assert!(rel(m.per as f64, r.per) < 1e-5, "{name}");
        assert!(rel(m.condition_number as f64, r.cond) < 2e-4, "{name}");
        check_entry_metrics_tol(m, &r, 1e-6, name);
        if name.contains("ov_circuit") {
            head_pers.push(m.per as f64);
        }
    }
    // Chosen matrices: one head, the concatenated form, a plain weight.
    let pick = [
        "layers.1.ov_circuit.weights.heads.5".to_string(),
        "layers.1.ov_circuit_concat".into(),
        "layers.0.attention.o_proj.weight".into(),
    ];
    let got = analyze_checkpoint(&gpu, &ckpt, Some(&pick), AnalyzedWeights::Effective).unwrap();
    assert_eq!((got[0].1.rows, got[0].1.cols), (hd, hd));
    assert_eq!((got[1].1.rows, got[1].1.cols), (d, heads * d));
    assert_eq!((got[2].1.rows, got[2].1.cols), (d, d));
    let v = &ckpt.tensors["layers.1.attention.v_proj.weight"].data;
    let o = &ckpt.tensors["layers.1.attention.o_proj.weight"].data;
    let concat: Vec<f32> = ov_cpu(v, o, d, heads, 2, OvForm::Concat)
        .iter()
        .map(|&x| x as f32)
        .collect();
    let r = reference(&concat, d, heads * d);
    assert!(normwise_error(&got[1].1.singular_values, &r.s) < 5e-7);
    for bad in [
        "layers.0.nothing.weight",
        "layers.0.attention_norm.weight",
        "layers.2.ov_circuit",
        "layers.0.ov_circuit.weights.heads.6",
        "layers.0.ov_circuit_vo",
    ] {
        let err = analyze_checkpoint(&gpu, &ckpt, Some(&[bad.to_string()]), AnalyzedWeights::Base)
            .unwrap_err();
        println!("{bad}: {err}");
    }
}
