//! The statistics of the report: an exact McNemar test for paired BLiMP outcomes, and the
//! mean and spread over seeds.

/// Two-sided exact McNemar test on paired binary outcomes: `b` pairs only model A gets
/// right, `c` pairs only model B does. Under the null (no difference) the `b + c` discordant
/// pairs split as Binomial(b + c, 1/2); the p-value is the probability of a split at least as
/// uneven, `min(1, 2 · P(X <= min(b, c)))`. 1 when there is no discordant pair.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // ln C(n, i) built up term by term; every term times 2^-n, summed in f64.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0f64;
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// `(b, c)` of two runs' per-pair correctness: pairs only `a` gets right, only `b` does.
pub fn discordant(a: &[bool], b: &[bool]) -> (usize, usize) {
    a.iter()
        .zip(b)
        .fold((0, 0), |(x, y), (&ra, &rb)| match (ra, rb) {
            (true, false) => (x + 1, y),
            (false, true) => (x, y + 1),
            _ => (x, y),
        })
}

/// Mean and sample standard deviation (0 for a single value; `None` for none).
pub fn mean_sd(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 {
        (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Some((mean, sd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_matches_hand_computed_binomial_tails() {
        // 1 vs 9 discordant: 2 * (C(10,0) + C(10,1)) / 2^10.
        assert!((mcnemar_exact(1, 9) - 22.0 / 1024.0).abs() < 1e-15);
        assert!((mcnemar_exact(9, 1) - 22.0 / 1024.0).abs() < 1e-15);
        // 0 vs 5: 2 / 32.
        assert!((mcnemar_exact(0, 5) - 0.0625).abs() < 1e-15);
        // Balanced splits and no discordant pair: no evidence.
        assert_eq!(mcnemar_exact(4, 4), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // 40 vs 60: 2 * sum_{i<=40} C(100, i) / 2^100, in exact integers = 0.0568879336409808.
        assert!((mcnemar_exact(40, 60) - 0.056_887_933_640_980_8).abs() < 1e-12);
        // Large n does not underflow: 500 vs 700.
        let p = mcnemar_exact(500, 700);
        assert!(p > 0.0 && p < 1e-7, "{p}");
    }

    #[test]
    fn discordant_counts_and_spread() {
        let a = [true, true, false, false, true];
        let b = [true, false, true, false, false];
        assert_eq!(discordant(&a, &b), (2, 1));
        assert_eq!(mean_sd(&[1.0, 3.0]), Some((2.0, 2f64.sqrt())));
        assert_eq!(mean_sd(&[5.0]), Some((5.0, 0.0)));
        assert_eq!(mean_sd(&[]), None);
    }
}
