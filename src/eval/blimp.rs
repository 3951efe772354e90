//! BLiMP: accuracy on grammatical / ungrammatical minimal pairs.
//!
//! Scoring rule (as in lm-evaluation-harness and the study): a sentence's log-probability is
//! the sum over all its tokens, the first conditioned on the end-of-text token used as
//! beginning of sequence, so the model's input is `[bos, t1 .. tn-1]` and its labels
//! `[t1 .. tn]`. A pair is correct when `logp(sentence_good) > logp(sentence_bad)`, strictly:
//! a tie counts as wrong. lm-evaluation-harness takes the argmax over [good, bad], which
//! counts a tie as right; the two rules differ on the 7 pairs of the official data whose two
//! sentences are identical (passive_1: 2, principle_A_case_2: 5), about 0.01 points of the
//! mean accuracy. Accuracy is reported per paradigm (one JSONL file
//! each) and as the mean over paradigms (the study's number); the pooled accuracy over all
//! pairs is reported too.
//!
//! Sentences are scored one per batch row, right-padded (see [`crate::eval`]). A sentence with
//! more tokens than the model's `seq` is, by default, scored with a sliding window that advances by
//! half the window ([`LongSequences::Slide`]): every token still counts once, with at least
//! `seq / 2` tokens of context. BLiMP sentences are short (under 40 tokens with pico's
//! tokenizer), so this only matters for a model planned with a very short `seq`; choose
//! [`LongSequences::Error`] to refuse such sentences instead.

use super::{plan_sequences, score_windows, LongSequences, Progress};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::decoder::Decoder;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One minimal pair, with the (1-based) line of its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlimpPair {
    pub good: String,
    pub bad: String,
    pub line: usize,
}

/// One BLiMP paradigm: a JSONL file of minimal pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paradigm {
    /// The file name without `.jsonl` (equal to the UID in the official data).
    pub name: String,
    /// The `UID` field of the first pair ("" when absent).
    pub uid: String,
    pub path: PathBuf,
    pub pairs: Vec<BlimpPair>,
}

#[derive(Deserialize)]
struct Record {
    sentence_good: String,
    sentence_bad: String,
    #[serde(default, rename = "UID")]
    uid: Option<String>,
}

/// Parse the text of a BLiMP JSONL file (`source` names it in the paradigm and in errors).
/// Blank lines are skipped; any other line must be a JSON object with string fields
/// `sentence_good` and `sentence_bad` (other fields are ignored). Errors name the file and
/// the 1-based line.
pub fn parse_jsonl(text: &str, source: &Path) -> Result<Paradigm> {
    let mut pairs = Vec::new();
    let mut uid = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: Record = serde_json::from_str(line).map_err(|e| {
            Error::Invalid(format!(
                "{}:{}: not a BLiMP pair (a JSON object with string fields sentence_good and \
                 sentence_bad): {e}",
                source.display(),
                i + 1
            ))
        })?;
        if uid.is_none() {
            uid = Some(r.uid.unwrap_or_default());
        }
        pairs.push(BlimpPair {
            good: r.sentence_good,
            bad: r.sentence_bad,
            line: i + 1,
        });
    }
    if pairs.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no minimal pairs in this file",
            source.display()
        )));
    }
    let name = source
        .file_name()
        .map(|f| f.to_string_lossy())
        .unwrap_or_default();
    Ok(Paradigm {
        name: name.strip_suffix(".jsonl").unwrap_or(&name).to_string(),
        uid: uid.unwrap_or_default(),
        path: source.to_path_buf(),
        pairs,
    })
}

/// Read one BLiMP JSONL file.
pub fn read_paradigm(path: &Path) -> Result<Paradigm> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Invalid(format!("{}: cannot read: {e}", path.display())))?;
    parse_jsonl(&text, path)
}

/// Read a BLiMP JSONL file, or every `*.jsonl` file of a directory (sorted by name).
pub fn read_paradigms(files_or_dir: &Path) -> Result<Vec<Paradigm>> {
    if !files_or_dir.is_dir() {
        return Ok(vec![read_paradigm(files_or_dir)?]);
    }
    let entries = std::fs::read_dir(files_or_dir)
        .map_err(|e| Error::Invalid(format!("{}: cannot list: {e}", files_or_dir.display())))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Error::Invalid(format!("{}: cannot list: {e}", files_or_dir.display())))?
            .path();
        if path.extension().is_some_and(|x| x == "jsonl") && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no BLiMP .jsonl files in this directory",
            files_or_dir.display()
        )));
    }
    files.sort();
    files.iter().map(|f| read_paradigm(f)).collect()
}

/// Options of [`blimp_paradigms`].
#[derive(Clone, Debug)]
pub struct BlimpOptions {
    /// Score only the first N pairs of each paradigm.
    pub limit_per_paradigm: Option<usize>,
    /// How sentences longer than the model's window are handled; `None` means a sliding window
    /// with a stride of half the window ([`LongSequences::half_window`]).
    pub long_sentences: Option<LongSequences>,
    /// Show a progress bar on stderr (native only; never drawn when stderr is not a terminal).
    pub progress: bool,
}

impl Default for BlimpOptions {
    fn default() -> Self {
        BlimpOptions {
            limit_per_paradigm: None,
            long_sentences: None,
            progress: true,
        }
    }
}

/// Log-probabilities (natural log) of one pair.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairScore {
    pub good: f64,
    pub bad: f64,
}

impl PairScore {
    pub fn correct(&self) -> bool {
        self.good > self.bad
    }
}

/// Accuracy on one paradigm.
#[derive(Clone, Debug, PartialEq)]
pub struct ParadigmScore {
    pub name: String,
    pub uid: String,
    pub correct: usize,
    pub total: usize,
    /// `correct / total`, in [0, 1].
    pub accuracy: f64,
    /// Per pair, in file order (the first `total` pairs).
    pub pairs: Vec<PairScore>,
}

/// BLiMP result: per paradigm, and the mean over paradigms.
#[derive(Clone, Debug, PartialEq)]
pub struct BlimpReport {
    pub paradigms: Vec<ParadigmScore>,
    /// Mean over paradigms of their accuracy, in [0, 1] (the study's BLiMP number, x100).
    pub mean_accuracy: f64,
    /// All pairs pooled.
    pub correct: usize,
    pub total: usize,
}

impl BlimpReport {
    /// A plain-text table: one line per paradigm, then the mean.
    pub fn table(&self) -> String {
        let width = self
            .paradigms
            .iter()
            .map(|p| p.name.len())
            .max()
            .unwrap_or(0);
        let mut s = String::new();
        for p in &self.paradigms {
            s += &format!(
                "{:width$}  {:6.2}%  ({}/{})\n",
                p.name,
                100.0 * p.accuracy,
                p.correct,
                p.total
            );
        }
        s += &format!(
            "{:width$}  {:6.2}%  (mean of {} paradigms; {}/{} pairs)\n",
            "BLiMP",
            100.0 * self.mean_accuracy,
            self.paradigms.len(),
            self.correct,
            self.total
        );
        s
    }
}

/// BLiMP accuracy of `model` on a JSONL file or a directory of them (see the module docs).
/// `encode` turns a sentence into token ids (without BOS); `bos_id` is the end-of-text id put
/// in front of every sentence. Shows a progress bar when stderr is a terminal.
pub async fn blimp(
    gpu: &Gpu,
    model: &Decoder,
    encode: &dyn Fn(&str) -> Vec<u32>,
    bos_id: u32,
    files_or_dir: &Path,
    limit_per_paradigm: Option<usize>,
) -> Result<BlimpReport> {
    let paradigms = read_paradigms(files_or_dir)?;
    let options = BlimpOptions {
        limit_per_paradigm,
        ..BlimpOptions::default()
    };
    blimp_paradigms(gpu, model, encode, bos_id, &paradigms, &options).await
}

/// BLiMP accuracy on paradigms already read (see [`blimp`]).
pub async fn blimp_paradigms(
    gpu: &Gpu,
    model: &Decoder,
    encode: &dyn Fn(&str) -> Vec<u32>,
    bos_id: u32,
    paradigms: &[Paradigm],
    options: &BlimpOptions,
) -> Result<BlimpReport> {
    if paradigms.is_empty() {
        return Err(Error::Invalid("BLiMP: no paradigms to score".into()));
    }
    if options.limit_per_paradigm == Some(0) {
        return Err(Error::Invalid(
            "BLiMP: a limit of 0 pairs per paradigm leaves nothing to score".into(),
        ));
    }
    if let Some(p) = paradigms.iter().find(|p| p.pairs.is_empty()) {
        return Err(Error::Invalid(format!(
            "BLiMP paradigm {} ({}) has no pairs",
            p.name,
            p.path.display()
        )));
    }
    let take = |p: &Paradigm| {
        options
            .limit_per_paradigm
            .unwrap_or(usize::MAX)
            .min(p.pairs.len())
    };
    // Sequences 2k and 2k+1 are pair k's good and bad sentence; `at[k]` locates pair k.
    let mut sequences = Vec::new();
    let mut at = Vec::new();
    for (pi, p) in paradigms.iter().enumerate() {
        for (qi, pair) in p.pairs[..take(p)].iter().enumerate() {
            for s in [&pair.good, &pair.bad] {
                let mut ids = Vec::with_capacity(s.len() / 3 + 2);
                ids.push(bos_id);
                ids.extend(encode(s));
                sequences.push(ids);
            }
            at.push((pi, qi));
        }
    }
    let long = options
        .long_sentences
        .unwrap_or_else(|| LongSequences::half_window(model.seq));
    let windows = plan_sequences(model, &sequences, long, |i| {
        let (pi, qi) = at[i / 2];
        let p = &paradigms[pi];
        format!(
            "BLiMP {}:{} ({})",
            p.path.display(),
            p.pairs[qi].line,
            if i % 2 == 0 {
                "sentence_good"
            } else {
                "sentence_bad"
            }
        )
    })?;
    let progress = Progress::new(windows.len() as u64, "BLiMP", options.progress);
    let nll = score_windows(gpu, model, &windows, sequences.len(), &progress).await?;

    let mut scores: Vec<ParadigmScore> = paradigms
        .iter()
        .map(|p| ParadigmScore {
            name: p.name.clone(),
            uid: p.uid.clone(),
            correct: 0,
            total: 0,
            accuracy: 0.0,
            pairs: Vec::with_capacity(take(p)),
        })
        .collect();
    for (k, &(pi, _)) in at.iter().enumerate() {
        let pair = PairScore {
            good: -nll[2 * k].sum,
            bad: -nll[2 * k + 1].sum,
        };
        let s = &mut scores[pi];
        s.correct += pair.correct() as usize;
        s.total += 1;
        s.pairs.push(pair);
    }
    for s in &mut scores {
        s.accuracy = s.correct as f64 / s.total as f64;
    }
    Ok(BlimpReport {
        mean_accuracy: scores.iter().map(|s| s.accuracy).sum::<f64>() / scores.len() as f64,
        correct: scores.iter().map(|s| s.correct).sum(),
        total: scores.iter().map(|s| s.total).sum(),
        paradigms: scores,
    })
}
