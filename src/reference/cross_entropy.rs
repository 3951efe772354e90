//! Reference for fused softmax cross-entropy: the mean over rows of
//! `logsumexp(logits_r) - logits_r[label_r]`, and its gradient `(softmax - onehot) / rows`.
//! There is no ignore index: pico trains on every label.

use super::real::{narrow, widen, Real};
use crate::error::{Error, Result};

/// `logits` is [rows, vocab], `labels` is [rows]; returns (mean loss, dlogits [rows, vocab]).
/// A label outside the vocabulary is a data error, reported as `Error::Invalid`.
pub fn cross_entropy<T: Real>(logits: &[T], labels: &[u32], vocab: usize) -> Result<(T, Vec<T>)> {
    let rows = labels.len();
    assert!(
        rows > 0 && vocab > 0,
        "cross_entropy: needs at least one row and one class"
    );
    assert_eq!(
        logits.len(),
        rows * vocab,
        "cross_entropy: logits must be [rows, vocab]"
    );
    if let Some(r) = labels.iter().position(|&l| l as usize >= vocab) {
        return Err(Error::Invalid(format!(
            "label {} at row {r} is out of range for the vocabulary size {vocab}: the data was \
             tokenized with a different tokenizer than the model expects",
            labels[r]
        )));
    }
    let x = widen(logits);
    let mut grad = vec![0.0f64; x.len()];
    let mut total = 0.0f64;
    for ((xr, gr), &label) in x.chunks(vocab).zip(grad.chunks_mut(vocab)).zip(labels) {
        // Subtract the row max so exp never overflows.
        let m = xr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + xr.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        total += lse - xr[label as usize];
        for (gi, xi) in gr.iter_mut().zip(xr) {
            *gi = (xi - lse).exp() / rows as f64;
        }
        gr[label as usize] -= 1.0 / rows as f64;
    }
    Ok((T::from_f64(total / rows as f64), narrow(&grad)))
}
