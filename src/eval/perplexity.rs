//! Perplexity of a token stream, and per-document perplexity as the study reported it.
//!
//! A stream `x` of N ids is cut into non-overlapping windows of the model's `seq + 1` ids:
//! window k is `x[k*seq ..= k*seq + seq]`, so consecutive windows share their boundary id, every
//! id but the first is predicted exactly once (N - 1 scored tokens), and each window starts
//! without context from the previous one. The last window is usually shorter: it is padded and
//! its padded positions are not counted. `mean NLL = sum of token NLLs / scored tokens`,
//! `perplexity = exp(mean NLL)`.
//!
//! Paloma rule (pico-train's evaluation, through the Hugging Face `evaluate` perplexity metric
//! with `add_start_token=False` and `max_length` = the model's context): each document is
//! tokenized alone and truncated to its first `max_length` ids; there is no start token, so
//! its first id is context only and ids 2..n are scored; its perplexity is
//! `exp(mean NLL of ids 2..n)`; the reported figure is the *mean over documents of the
//! per-document perplexities*. The token-pooled perplexity `exp(total NLL / total scored
//! ids)` is reported beside it. [`LongDocuments::Slide`] instead scores every id of a long
//! document in sliding windows of `max_length` ids (not the study's rule).

use super::{disjoint_windows, score_windows, sliding_windows, Nll, Progress};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::decoder::Decoder;

/// Perplexity of one token stream (or one document).
#[derive(Clone, Debug, PartialEq)]
pub struct PerplexityReport {
    /// Scored tokens (ids minus one per stream or document).
    pub tokens: usize,
    /// Summed negative log-likelihood, natural log.
    pub nll_sum: f64,
    pub mean_nll: f64,
    /// `exp(mean_nll)`.
    pub perplexity: f64,
    /// Windows (batch rows) the stream was cut into.
    pub windows: usize,
}

impl PerplexityReport {
    fn from_nll(nll: Nll, windows: usize) -> PerplexityReport {
        let mean_nll = nll.sum / nll.tokens as f64;
        PerplexityReport {
            tokens: nll.tokens,
            nll_sum: nll.sum,
            mean_nll,
            perplexity: mean_nll.exp(),
            windows,
        }
    }
}

/// Per-document perplexities and their mean (the Paloma number).
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentPerplexityReport {
    /// One entry per input document; `None` for documents with fewer than 2 ids (nothing to
    /// score), which are left out of both averages.
    pub documents: Vec<Option<PerplexityReport>>,
    /// Mean over scored documents of each document's perplexity (the study's rule).
    pub mean_perplexity: f64,
    /// All scored tokens pooled: `exp(total NLL / total tokens)`.
    pub pooled: PerplexityReport,
    /// Documents left out for having fewer than 2 ids.
    pub skipped: usize,
}

fn check_vocab(model: &Decoder, x: &[u32], what: impl Fn() -> String) -> Result<()> {
    let vocab = model.config.vocab_size;
    match x.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
        Some((p, id)) => Err(Error::Invalid(format!(
            "{}: token id {id} at position {p} is outside the vocabulary of {vocab}; check that \
             the tokenizer matches the model",
            what()
        ))),
        None => Ok(()),
    }
}

/// Perplexity of a token stream (see the module docs for the windowing). Needs at least 2 ids.
pub async fn perplexity(gpu: &Gpu, model: &Decoder, tokens: &[u32]) -> Result<PerplexityReport> {
    if tokens.len() < 2 {
        return Err(Error::Invalid(format!(
            "perplexity needs at least 2 token ids (one to predict), got {}",
            tokens.len()
        )));
    }
    check_vocab(model, tokens, || "token stream".into())?;
    let mut windows = Vec::new();
    disjoint_windows(tokens, model.seq, 0, &mut windows);
    let progress = Progress::new(windows.len() as u64, "perplexity", true);
    let nll = score_windows(gpu, model, &windows, 1, &progress).await?;
    Ok(PerplexityReport::from_nll(nll[0], windows.len()))
}

/// What is scored of a document longer than `max_length` ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongDocuments {
    /// Only its first `max_length` ids (Paloma's rule, as the Hugging Face metric truncates).
    Truncate,
    /// Every id: the first window scores ids 2..=max_length, each next one `stride` labels
    /// further with the `max_length - 1` ids before its last label as context.
    Slide { stride: usize },
}

/// How documents are cut for [`perplexity_per_document`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentOptions {
    /// Ids per window, first id included (the model's context, `max_seq_len`, for Paloma).
    pub max_length: usize,
    pub long: LongDocuments,
}

impl DocumentOptions {
    /// Paloma's rule for a model with context `max_length`: truncate, no start token.
    pub fn paloma(max_length: usize) -> DocumentOptions {
        DocumentOptions {
            max_length,
            long: LongDocuments::Truncate,
        }
    }

    /// The `seq` a model must be planned with to score these windows: `max_length - 1`
    /// labels, or fewer when no document is that long.
    pub fn seq_for(&self, documents: &[Vec<u32>]) -> usize {
        let longest = documents.iter().map(Vec::len).max().unwrap_or(0);
        longest.min(self.max_length).saturating_sub(1).max(1)
    }
}

/// Per-document perplexity, Paloma style (see the module docs). Each document is the ids of
/// one document, tokenized alone, without a start token: its first id is context only. The
/// model must be planned with `seq >= options.seq_for(documents)`. Windows of different
/// documents share batches; no window spans two documents.
pub async fn perplexity_per_document(
    gpu: &Gpu,
    model: &Decoder,
    documents: &[Vec<u32>],
    options: DocumentOptions,
) -> Result<DocumentPerplexityReport> {
    let labels = options.max_length.saturating_sub(1);
    if labels == 0 {
        return Err(Error::Invalid(format!(
            "max_length {} must be at least 2 (one id of context, one to score)",
            options.max_length
        )));
    }
    let needed = options.seq_for(documents);
    if model.seq < needed {
        return Err(Error::Invalid(format!(
            "these documents need windows of {needed} scored ids (max_length {}), more than \
             the model's seq of {}: plan the model with seq >= {needed}",
            options.max_length, model.seq
        )));
    }
    let mut windows = Vec::new();
    let mut counts = vec![0usize; documents.len()];
    for (i, doc) in documents.iter().enumerate() {
        check_vocab(model, doc, || format!("document {i}"))?;
        let before = windows.len();
        match options.long {
            LongDocuments::Truncate => {
                let kept = &doc[..doc.len().min(options.max_length)];
                disjoint_windows(kept, labels, i, &mut windows);
            }
            LongDocuments::Slide { stride } => {
                if stride == 0 || stride > labels {
                    return Err(Error::Invalid(format!(
                        "sliding-window stride {stride} must be between 1 and max_length - 1 \
                         ({labels})"
                    )));
                }
                sliding_windows(doc, labels, stride, i, &mut windows);
            }
        }
        counts[i] = windows.len() - before;
    }
    if windows.is_empty() {
        return Err(Error::Invalid(format!(
            "none of the {} documents has 2 or more token ids: nothing to score",
            documents.len()
        )));
    }
    let progress = Progress::new(windows.len() as u64, "perplexity", true);
    let nll = score_windows(gpu, model, &windows, documents.len(), &progress).await?;
    let mut pooled = Nll::default();
    let mut sum_ppl = 0.0;
    let mut scored = 0usize;
    let docs: Vec<Option<PerplexityReport>> = nll
        .iter()
        .zip(&counts)
        .map(|(&n, &w)| {
            (n.tokens > 0).then(|| {
                pooled.sum += n.sum;
                pooled.tokens += n.tokens;
                let r = PerplexityReport::from_nll(n, w);
                sum_ppl += r.perplexity;
                scored += 1;
                r
            })
        })
        .collect();
    Ok(DocumentPerplexityReport {
        skipped: documents.len() - scored,
        documents: docs,
        mean_perplexity: sum_ppl / scored as f64,
        pooled: PerplexityReport::from_nll(pooled, windows.len()),
    })
}

/// Split a WikiText file (the tokenized release: ` = Title = ` heading lines, ` = = Section
/// = = ` subheadings) into its articles, each starting at its top-level heading line. Text
/// before the first heading, if any non-blank, is a document of its own. Lines are joined with
/// `\n`; leading and trailing blank lines of each article are dropped.
pub fn wikitext_documents(text: &str) -> Vec<String> {
    let is_title = |line: &str| {
        let t = line.trim();
        t.len() > 4
            && t.starts_with("= ")
            && t.ends_with(" =")
            && !t.starts_with("= =")
            && !t.ends_with("= =")
    };
    let mut docs: Vec<Vec<&str>> = vec![Vec::new()];
    for line in text.lines() {
        if is_title(line) {
            docs.push(Vec::new());
        }
        docs.last_mut().unwrap().push(line);
    }
    docs.into_iter()
        .filter_map(|lines| {
            let first = lines.iter().position(|l| !l.trim().is_empty())?;
            let last = lines.iter().rposition(|l| !l.trim().is_empty())?;
            Some(lines[first..=last].join("\n"))
        })
        .collect()
}
