//! Which windows each split serves, and in what order: the hold-out set aside for evaluation
//! (spread over the data, or its tail) and the seeded shuffle that reorders the training
//! windows every epoch.

use crate::error::{Error, Result};
use crate::model::init::Rng;

/// Windows kept out of training, for evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Holdout {
    /// Train on everything.
    #[default]
    None,
    /// This fraction of the windows (in (0, 1), rounded, at least one), spread evenly over the
    /// data so that every part of it (every file of a directory) is represented.
    Fraction(f64),
    /// The last N windows of the data, in file order.
    LastWindows(u64),
}

/// Which part of the data a [`DataSource`](super::DataSource) serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The windows not held out, shuffled every epoch.
    Train,
    /// The held-out windows, in data order.
    Heldout,
}

/// Train and held-out window indices (both in data order).
pub(super) fn split_windows(
    n: u64,
    holdout: Holdout,
    seq_len: usize,
) -> Result<(Vec<u64>, Vec<u64>)> {
    let held: Vec<u64> = match holdout {
        Holdout::None | Holdout::LastWindows(0) => Vec::new(),
        Holdout::LastWindows(k) => (n.saturating_sub(k)..n).collect(),
        Holdout::Fraction(f) => {
            if !(f > 0.0 && f < 1.0) {
                return Err(Error::Invalid(format!(
                    "holdout fraction {f} must be between 0 and 1"
                )));
            }
            let h = ((f * n as f64).round() as u64).max(1).min(n);
            (0..h)
                .map(|j| ((2 * j as u128 + 1) * n as u128 / (2 * h as u128)) as u64)
                .collect()
        }
    };
    if !held.is_empty() && held.len() as u64 >= n {
        return Err(Error::Invalid(format!(
            "holding out {} windows leaves none to train on: the data has only {n} windows of \
             {} ids",
            held.len(),
            seq_len + 1
        )));
    }
    let mut train = Vec::with_capacity((n - held.len() as u64) as usize);
    let mut hi = held.iter().peekable();
    for i in 0..n {
        if hi.peek() == Some(&&i) {
            hi.next();
        } else {
            train.push(i);
        }
    }
    Ok((train, held))
}

/// Shuffles `order` for epoch `epoch` of a run seeded with `seed` (Fisher-Yates): the same
/// seed and epoch always give the same order.
pub(super) fn shuffle(order: &mut [u64], seed: u64, epoch: u64) {
    let mut rng = Rng::new(epoch_seed(seed, epoch));
    for i in (1..order.len()).rev() {
        let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
}

fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    Rng::new(seed ^ epoch.wrapping_mul(0xA076_1D64_78BD_642F)).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_disjoint_and_complete() {
        for (n, hold) in [
            (10, Holdout::Fraction(0.1)),
            (10, Holdout::Fraction(0.5)),
            (7, Holdout::LastWindows(3)),
            (1000, Holdout::Fraction(0.013)),
            (5, Holdout::None),
        ] {
            let (t, h) = split_windows(n, hold, 8).unwrap();
            let mut all: Vec<u64> = t.iter().chain(&h).copied().collect();
            all.sort();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "{hold:?}");
        }
        let (_, h) = split_windows(10, Holdout::Fraction(0.2), 8).unwrap();
        assert_eq!(h, vec![2, 7]);
        assert!(split_windows(3, Holdout::LastWindows(3), 8).is_err());
        assert!(split_windows(3, Holdout::Fraction(1.5), 8).is_err());
    }
}
