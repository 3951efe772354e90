//! Reference for the input embedding: a row lookup forward, a scatter-add backward.

use super::real::{narrow, Real};
use crate::error::{Error, Result};

/// Token ids come from data files, so a bad one is a data error, not a programming error.
fn check_ids(ids: &[u32], vocab: usize) -> Result<()> {
    match ids.iter().position(|&id| id as usize >= vocab) {
        None => Ok(()),
        Some(pos) => Err(Error::Invalid(format!(
            "token id {} at position {pos} is out of range for the vocabulary size {vocab}: \
             the data was tokenized with a different tokenizer than the model expects",
            ids[pos]
        ))),
    }
}

/// `table` is [V, d] row-major; returns [ids.len(), d], row i being `table[ids[i]]`.
pub fn embedding<T: Real>(table: &[T], ids: &[u32], d: usize) -> Result<Vec<T>> {
    assert!(
        d > 0 && table.len().is_multiple_of(d),
        "embedding: table length {} is not a multiple of d = {d}",
        table.len()
    );
    check_ids(ids, table.len() / d)?;
    let mut out = Vec::with_capacity(ids.len() * d);
    for &id in ids {
        let row = id as usize * d;
        out.extend_from_slice(&table[row..row + d]);
    }
    Ok(out)
}

/// Gradient of the table, [vocab, d]: row v is the sum of `d_out` rows at the positions whose
/// id is v, added in position order in f64 so the result is deterministic; rows never looked
/// up are zero. The caller adds it to an accumulated gradient if it keeps one.
pub fn embedding_backward<T: Real>(
    d_out: &[T],
    ids: &[u32],
    vocab: usize,
    d: usize,
) -> Result<Vec<T>> {
    assert_eq!(
        d_out.len(),
        ids.len() * d,
        "embedding_backward: d_out must be [ids.len(), d]"
    );
    check_ids(ids, vocab)?;
    let mut acc = vec![0.0f64; vocab * d];
    for (pos, &id) in ids.iter().enumerate() {
        let dst = &mut acc[id as usize * d..][..d];
        for (a, g) in dst.iter_mut().zip(&d_out[pos * d..][..d]) {
            *a += g.to_f64();
        }
    }
    Ok(narrow(&acc))
}
