//! Text to token ids, in parallel: documents (whole text files, or JSONL lines) are cut into
//! pieces at whitespace where that cannot change the ids, the pieces are encoded in batches
//! on every core, and the ids are written in document order with end-of-text between
//! documents.

use super::cache::StreamWriter;
use super::discover::{has_ext, JSONL_EXTS};
use super::PROGRESS_BYTES;
use crate::error::{Error, Result};
use crate::train::progress;
use crate::train::tokenizer::Tokenizer;
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};

/// Target size of the pieces a document is cut into for parallel tokenizing.
const PIECE_BYTES: usize = 32 * 1024;
/// Text handed to the tokenizer at once (its pieces are encoded in parallel).
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Part of a document, tokenized on its own (see [`split_at_whitespace`]).
struct Piece {
    text: String,
    doc_start: bool,
    file: usize,
}

/// Tokenizes documents in batches of pieces and writes them, EOS between documents.
struct TextTokenizer<'a> {
    tok: &'a Tokenizer,
    files: &'a [PathBuf],
    piece_bytes: usize,
    pending: Vec<Piece>,
    pending_bytes: usize,
    docs: u64,
    current_file: usize,
    bar: ProgressBar,
}

impl TextTokenizer<'_> {
    fn add_doc(&mut self, doc: &str, file: usize, w: &mut StreamWriter) -> Result<()> {
        if doc.is_empty() {
            return Ok(());
        }
        for (i, piece) in split_at_whitespace(doc, self.piece_bytes)
            .into_iter()
            .enumerate()
        {
            self.pending_bytes += piece.len();
            self.pending.push(Piece {
                text: piece.to_string(),
                doc_start: i == 0,
                file,
            });
        }
        if self.pending_bytes >= BATCH_BYTES {
            self.flush(w)?;
        }
        Ok(())
    }

    fn flush(&mut self, w: &mut StreamWriter) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = self.pending.iter().map(|p| p.text.as_str()).collect();
        let ids = self.tok.encode_batch(&texts)?;
        for (p, ids) in self.pending.iter().zip(ids) {
            if p.file != self.current_file {
                w.begin_file(&self.files[p.file]);
                self.current_file = p.file;
            }
            if p.doc_start {
                if self.docs > 0 {
                    let eos = self.tok.eos_id().ok_or_else(|| {
                        Error::Invalid(
                            "the tokenizer has no end-of-text token (<|endoftext|>, </s>, ...) \
                             to put between documents"
                                .to_string(),
                        )
                    })?;
                    w.push(&[eos])?;
                }
                self.docs += 1;
            }
            w.push(&ids)?;
        }
        self.bar.inc(self.pending_bytes as u64);
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }
}

/// Cuts `doc` into pieces of about `target` bytes, each cut just before an ASCII whitespace
/// that follows a non-whitespace character (see [`Tokenizer::splits_at_whitespace`]).
fn split_at_whitespace(doc: &str, target: usize) -> Vec<&str> {
    let b = doc.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    while b.len() - start > target {
        let mut cut = None;
        for i in start + target..b.len() {
            if matches!(b[i], b' ' | b'\n' | b'\t' | b'\r')
                && doc[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| !c.is_whitespace())
            {
                cut = Some(i);
                break;
            }
        }
        match cut {
            Some(c) => {
                out.push(&doc[start..c]);
                start = c;
            }
            None => break,
        }
    }
    out.push(&doc[start..]);
    out
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|e| {
        Error::Invalid(format!(
            "{}: not UTF-8 text (invalid byte at offset {}); text data must be UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Tokenizes the text and JSONL `files` (JSONL documents in their `field`) into `w`, with the
/// end-of-text id between documents; returns the number of documents.
pub(super) fn tokenize_text(
    files: &[PathBuf],
    tok: &Tokenizer,
    field: &str,
    progress: bool,
    w: &mut StreamWriter,
) -> Result<u64> {
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress::bar(
        progress && total >= PROGRESS_BYTES,
        total,
        "{msg} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} ({eta})",
    )
    .with_message("tokenizing");
    let mut tt = TextTokenizer {
        tok,
        files,
        piece_bytes: if tok.splits_at_whitespace() {
            PIECE_BYTES
        } else {
            usize::MAX
        },
        pending: Vec::new(),
        pending_bytes: 0,
        docs: 0,
        current_file: usize::MAX,
        bar,
    };
    for (fi, f) in files.iter().enumerate() {
        let text = read_text(f)?;
        if has_ext(f, &JSONL_EXTS) {
            for (ln, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                    Error::Invalid(format!(
                        "{} line {}: not valid JSON: {e}",
                        f.display(),
                        ln + 1
                    ))
                })?;
                let doc = v.get(field).and_then(|t| t.as_str()).ok_or_else(|| {
                    Error::Invalid(format!(
                        "{} line {}: no string field \"{field}\" (JSONL documents need one)",
                        f.display(),
                        ln + 1
                    ))
                })?;
                tt.add_doc(doc, fi, w)?;
            }
        } else {
            tt.add_doc(&text, fi, w)?;
        }
    }
    tt.flush(w)?;
    tt.bar.finish_and_clear();
    Ok(tt.docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cut_before_whitespace_after_a_word() {
        let doc = "aaaa bbbb\n\ncccc  dddd";
        let pieces = split_at_whitespace(doc, 3);
        assert_eq!(pieces.concat(), doc);
        assert_eq!(pieces, vec!["aaaa", " bbbb", "\n\ncccc", "  dddd"]);
        assert_eq!(split_at_whitespace("abc", 1), vec!["abc"]);
        assert_eq!(split_at_whitespace("é é é", 1), vec!["é", " é", " é"]);
    }
}
