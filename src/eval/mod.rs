//! Evaluation of a planned [`Decoder`]: perplexity of token streams and documents
//! ([`perplexity`]) and BLiMP minimal pairs ([`blimp`]). Forward passes only: nothing here
//! records a backward or touches the gradients.
//!
//! Everything is scored the same way. A sequence of ids `x` is cut into *windows* of at most
//! `seq + 1` ids (the model's planned shape); a window's inputs are `w[..len-1]` and its labels
//! `w[1..]`. Windows are packed one per batch row, right-padded to `seq + 1` with id 0. The
//! attention is causal, so padding after a window's last id cannot change what the model
//! computes for the window's own positions; the per-token NLL (`Decoder::row_losses`) is read
//! back and only the window's own, counted label positions are summed, on the host, in f64.
//! A final batch with fewer windows than rows is filled with padding rows that are ignored.
//!
//! Every forward costs `batch x seq` positions however short the windows are, so for BLiMP
//! (sentences of 5 to 30 tokens) plan a separate evaluation `Decoder` with a short `seq` (e.g.
//! 64) and a wide batch, and load the weights into it.
//!
//! The functions are `async` like the rest of the GPU API (they run in a browser too); natively,
//! drive them with `pollster::block_on`.

pub mod blimp;
#[cfg(not(target_arch = "wasm32"))]
pub mod documents;
pub mod perplexity;

pub use blimp::{
    blimp, blimp_paradigms, parse_jsonl, read_paradigm, read_paradigms, BlimpOptions, BlimpPair,
    BlimpReport, PairScore, Paradigm, ParadigmScore,
};
pub use perplexity::{
    perplexity, perplexity_per_document, wikitext_documents, DocumentOptions,
    DocumentPerplexityReport, LongDocuments, PerplexityReport,
};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::decoder::Decoder;

/// The id written into padding positions (any id inside the vocabulary would do: padded
/// positions come after a window's own and are never counted).
pub const PAD_ID: u32 = 0;

/// How a sequence with more labels than the model's `seq` is scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongSequences {
    /// Refuse it: the error names the sequence and its length.
    Error,
    /// Sliding window. The first window scores labels `1..=seq`; each next window ends `stride`
    /// labels further (or at the end) and holds the `seq` ids before its last label, so every
    /// label is scored exactly once and, after the first window, with at least `seq - stride`
    /// ids of context. `1 <= stride <= seq`.
    Slide { stride: usize },
}

impl LongSequences {
    /// Sliding windows that advance by half the model's window.
    pub fn half_window(seq: usize) -> LongSequences {
        LongSequences::Slide {
            stride: (seq / 2).max(1),
        }
    }
}

/// Summed negative log-likelihood (natural log) of a number of scored tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Nll {
    pub sum: f64,
    pub tokens: usize,
}

/// One batch row to score: labels are `ids[1..]`; labels at index `< skip` are context only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub ids: Vec<u32>,
    pub skip: usize,
    pub owner: usize,
}

/// Non-overlapping windows: window k holds `x[k*seq ..= k*seq + seq]` (the last one shorter),
/// so consecutive windows share one boundary id and every id but the first is a label exactly
/// once, each window starting without context from the one before.
pub(crate) fn disjoint_windows(x: &[u32], seq: usize, owner: usize, out: &mut Vec<Window>) {
    let mut start = 0;
    while start + 1 < x.len() {
        let end = (start + seq + 1).min(x.len());
        out.push(Window {
            ids: x[start..end].to_vec(),
            skip: 0,
            owner,
        });
        start += seq;
    }
}

/// Windows that score every label of `x` once (see [`LongSequences::Slide`]).
pub(crate) fn sliding_windows(
    x: &[u32],
    seq: usize,
    stride: usize,
    owner: usize,
    out: &mut Vec<Window>,
) {
    let n = x.len().saturating_sub(1); // labels x[1..=n]
    if n == 0 {
        return;
    }
    let mut end = n.min(seq); // labels up to x[end] are scored
    out.push(Window {
        ids: x[..=end].to_vec(),
        skip: 0,
        owner,
    });
    while end < n {
        let next = (end + stride).min(n);
        let start = next - seq;
        out.push(Window {
            ids: x[start..=next].to_vec(),
            skip: end - start,
            owner,
        });
        end = next;
    }
}

/// Score windows in batches of the model's rows; returns the summed NLL per owner.
pub(crate) async fn score_windows(
    gpu: &Gpu,
    model: &Decoder,
    windows: &[Window],
    owners: usize,
    progress: &Progress,
) -> Result<Vec<Nll>> {
    let (b, t) = (model.batch, model.seq);
    let mut out = vec![Nll::default(); owners];
    let mut batch = vec![PAD_ID; b * (t + 1)];
    for chunk in windows.chunks(b) {
        batch.fill(PAD_ID);
        for (r, w) in chunk.iter().enumerate() {
            if w.ids.len() < 2 || w.ids.len() > t + 1 || w.skip >= w.ids.len() - 1 {
                return Err(Error::Invalid(format!(
                    "internal: a window of {} ids (skip {}) does not fit seq {t}",
                    w.ids.len(),
                    w.skip
                )));
            }
            batch[r * (t + 1)..r * (t + 1) + w.ids.len()].copy_from_slice(&w.ids);
        }
        model.set_batch(gpu, &batch)?;
        let mut enc = gpu.encoder();
        model.record_eval_forward(&mut enc);
        gpu.submit(enc);
        let losses = model.row_losses().read_f32(gpu).await?;
        for (r, w) in chunk.iter().enumerate() {
            let labels = w.ids.len() - 1;
            let row = &losses[r * t + w.skip..r * t + labels];
            let o = &mut out[w.owner];
            o.sum += row.iter().map(|&l| l as f64).sum::<f64>();
            o.tokens += row.len();
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish();
    Ok(out)
}

/// Total log-probability (natural log) of each sequence's ids `x[1..]`, each conditioned on
/// the ids before it (so `x[0]` is only context: put the BOS id there). Sequences with more
/// labels than the model's `seq` are handled as `long` says; a sequence of fewer than 2 ids
/// scores 0.
pub async fn sequence_logprobs(
    gpu: &Gpu,
    model: &Decoder,
    sequences: &[Vec<u32>],
    long: LongSequences,
) -> Result<Vec<f64>> {
    let windows = plan_sequences(model, sequences, long, |i| format!("sequence {i}"))?;
    let nll = score_windows(gpu, model, &windows, sequences.len(), &Progress::hidden()).await?;
    Ok(nll.iter().map(|n| -n.sum).collect())
}

/// Windows for whole-sequence scoring; `name(i)` names sequence i in errors.
pub(crate) fn plan_sequences(
    model: &Decoder,
    sequences: &[Vec<u32>],
    long: LongSequences,
    name: impl Fn(usize) -> String,
) -> Result<Vec<Window>> {
    let seq = model.seq;
    let vocab = model.config.vocab_size;
    let mut windows = Vec::with_capacity(sequences.len());
    for (i, x) in sequences.iter().enumerate() {
        if let Some((p, id)) = x.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
            return Err(Error::Invalid(format!(
                "{}: token id {id} at position {p} is outside the vocabulary of {vocab}; \
                 check that the tokenizer matches the model",
                name(i)
            )));
        }
        let labels = x.len().saturating_sub(1);
        match long {
            LongSequences::Error if labels > seq => {
                return Err(Error::Invalid(format!(
                    "{}: {labels} tokens to score, more than the model's window of {seq}; \
                     plan the model with a longer seq or score long sequences with a \
                     sliding window",
                    name(i)
                )))
            }
            LongSequences::Slide { stride } if stride == 0 || stride > seq => {
                return Err(Error::Invalid(format!(
                    "sliding-window stride {stride} must be between 1 and the model's seq ({seq})"
                )))
            }
            LongSequences::Slide { stride } => sliding_windows(x, seq, stride, i, &mut windows),
            LongSequences::Error => sliding_windows(x, seq, seq, i, &mut windows),
        }
    }
    Ok(windows)
}

/// A progress bar on stderr (native only; hidden when stderr is not a terminal).
pub(crate) struct Progress {
    #[cfg(not(target_arch = "wasm32"))]
    bar: indicatif::ProgressBar,
}

impl Progress {
    pub fn hidden() -> Progress {
        Progress {
            #[cfg(not(target_arch = "wasm32"))]
            bar: indicatif::ProgressBar::hidden(),
        }
    }

    #[allow(unused_variables)]
    pub fn new(len: u64, message: &str, show: bool) -> Progress {
        if !show {
            return Progress::hidden();
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let bar = indicatif::ProgressBar::new(len);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} windows, {elapsed_precise} (eta {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(message.to_string());
            Progress { bar }
        }
        #[cfg(target_arch = "wasm32")]
        Progress {}
    }

    #[allow(unused_variables)]
    pub fn inc(&self, n: u64) {
        #[cfg(not(target_arch = "wasm32"))]
        self.bar.inc(n);
    }

    pub fn finish(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels_scored(windows: &[Window], base: &[u32]) -> Vec<usize> {
        // Map every counted label back to its position in `base` (ids are positions).
        let mut got = Vec::new();
        for w in windows {
            for j in w.skip..w.ids.len() - 1 {
                got.push(w.ids[j + 1] as usize);
            }
            assert!(w.ids.windows(2).all(|p| p[1] == p[0] + 1));
            assert_eq!(base[w.ids[0] as usize], w.ids[0]);
        }
        got
    }

    #[test]
    fn disjoint_windows_cover_every_label_once() {
        for len in 0..30u32 {
            let x: Vec<u32> = (0..len).collect();
            let mut w = Vec::new();
            disjoint_windows(&x, 8, 0, &mut w);
            let got = labels_scored(&w, &x);
            assert_eq!(got, (1..len as usize).collect::<Vec<_>>(), "len {len}");
            assert!(w.iter().all(|w| w.ids.len() <= 9 && w.skip == 0));
        }
    }

    #[test]
    fn sliding_windows_cover_every_label_once_with_context() {
        for seq in 1..7 {
            for stride in 1..=seq {
                for len in 0..25u32 {
                    let x: Vec<u32> = (0..len).collect();
                    let mut w = Vec::new();
                    sliding_windows(&x, seq, stride, 0, &mut w);
                    let got = labels_scored(&w, &x);
                    assert_eq!(got, (1..len as usize).collect::<Vec<_>>());
                    for win in w.iter().skip(1) {
                        assert_eq!(win.ids.len(), seq + 1);
                        assert!(win.skip >= seq - stride);
                    }
                }
            }
        }
    }
}
