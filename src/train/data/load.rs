//! Loading: each kind of input turned into stores of token ids and the segments of rows that
//! windows are cut from. Text and parquet are converted (or read from the cache), `.bin`
//! files are read in place; every id is checked against the model's vocabulary, and inputs
//! too short for one window are refused, with errors that say where and what to change.

use super::cache::{token_stream, StreamMeta};
use super::parquet::read_parquet_files;
use super::spec::{BinDtype, DataKind, DataSpec};
use super::store::Store;
use super::tokenize::tokenize_text;
use super::PROGRESS_BYTES;
use crate::error::{Error, Result};
use crate::train::progress;
use indicatif::ProgressBar;
use std::path::PathBuf;

/// Rows of equal length laid out one after another in a store.
pub(super) struct Segment {
    pub(super) store: usize,
    /// Position of the first row's first id in the store.
    pub(super) start: u64,
    pub(super) row_len: u64,
    pub(super) n_rows: u64,
}

/// The token ids of a data path and how they are laid out.
pub(super) struct Loaded {
    pub(super) stores: Vec<Store>,
    pub(super) segments: Vec<Segment>,
}

/// Opens `files`, the inputs of `spec`, which are of `kind`.
pub(super) fn load(spec: &DataSpec, kind: DataKind, files: &[PathBuf]) -> Result<Loaded> {
    match kind {
        DataKind::Text => load_text(spec, files),
        DataKind::Parquet => load_parquet(spec, files),
        DataKind::Bin => load_bin(spec, files),
    }
}

/// Text: one stream of all documents, tokenized (or from the cache), as a single row.
fn load_text(spec: &DataSpec, files: &[PathBuf]) -> Result<Loaded> {
    let w = spec.seq_len as u64 + 1;
    let cache = spec.cache_dir.as_deref();
    let where_ = spec.path.display();
    let tok = spec.tokenizer.as_ref().ok_or_else(|| {
        Error::Invalid(format!(
            "{where_} is text: a tokenizer is needed to read it (pico's \
             tokenizer.json, or one trained with train_bpe)"
        ))
    })?;
    let tag = format!(
        "text\nfield={}\ntokenizer={:016x}",
        spec.text_field,
        tok.fingerprint()
    );
    let (store, meta) = token_stream(DataKind::Text, &tag, files, cache, |wr| {
        tokenize_text(files, tok, &spec.text_field, spec.progress, wr)
    })?;
    if meta.docs == 0 {
        return Err(Error::Invalid(format!(
            "no documents in {where_}: its {} file(s) are empty",
            files.len()
        )));
    }
    if meta.n_tokens < w {
        return Err(Error::Invalid(format!(
            "{where_} is too short: found {} tokens in {} document(s), need at least \
             {w} (seq_len + 1) for one sequence; use more data or a shorter seq_len",
            meta.n_tokens, meta.docs
        )));
    }
    check_vocab(&store, &meta, spec, tok.vocab_size())?;
    Ok(Loaded {
        stores: vec![store],
        segments: vec![Segment {
            store: 0,
            start: 0,
            row_len: meta.n_tokens,
            n_rows: 1,
        }],
    })
}

/// Parquet: the shards' rows in one stream (or from the cache); windows never cross rows.
fn load_parquet(spec: &DataSpec, files: &[PathBuf]) -> Result<Loaded> {
    let w = spec.seq_len as u64 + 1;
    let cache = spec.cache_dir.as_deref();
    let where_ = spec.path.display();
    let tag = format!("parquet\ncolumn={}", spec.parquet_column);
    let (store, meta) = token_stream(DataKind::Parquet, &tag, files, cache, |wr| {
        read_parquet_files(files, &spec.parquet_column, spec.progress, wr)
    })?;
    let mut segments = Vec::new();
    if meta.docs == 0 || meta.n_tokens == 0 {
        return Err(Error::Invalid(format!(
            "no tokens in {where_}: {} row(s) in {} parquet file(s)",
            meta.docs,
            files.len()
        )));
    }
    for f in &meta.files {
        let (mut row, mut at) = (0, f.start);
        for &(len, count) in &f.rows {
            if len < w {
                return Err(Error::Invalid(format!(
                    "{}: row {row} (0-based) has {len} token ids, fewer than \
                     seq_len + 1 = {w}: use seq_len at most {}",
                    f.path.display(),
                    len.saturating_sub(1)
                )));
            }
            segments.push(Segment {
                store: 0,
                start: at,
                row_len: len,
                n_rows: count,
            });
            at += len * count;
            row += count;
        }
    }
    check_vocab(&store, &meta, spec, 0)?;
    Ok(Loaded {
        stores: vec![store],
        segments,
    })
}

/// `.bin`: each file read in place as one row, its ids checked against the vocabulary.
fn load_bin(spec: &DataSpec, files: &[PathBuf]) -> Result<Loaded> {
    let w = spec.seq_len as u64 + 1;
    let mut stores = Vec::new();
    let mut segments = Vec::new();
    let b = spec.bin_dtype.bytes() as u64;
    for f in files {
        let len = std::fs::metadata(f)
            .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", f.display())))?
            .len();
        if !len.is_multiple_of(b) {
            return Err(Error::Invalid(format!(
                "{}: {len} bytes is not a whole number of {} token ids ({b} bytes \
                 each): is the token dtype right?",
                f.display(),
                spec.bin_dtype.name()
            )));
        }
        let n = len / b;
        if n == 0 {
            return Err(Error::Invalid(format!(
                "{} is empty: no tokens",
                f.display()
            )));
        }
        if n < w {
            return Err(Error::Invalid(format!(
                "{} is too short: found {n} tokens, need at least {w} (seq_len + 1) \
                 for one sequence",
                f.display()
            )));
        }
        let store = Store::open_file(f, spec.bin_dtype, n)?;
        // Scanning ids is much quicker than tokenizing: a bar only for files above 512 MB.
        let bar = progress::bar(
            spec.progress && len >= 32 * PROGRESS_BYTES,
            n,
            "{msg} [{elapsed_precise}] [{wide_bar}] {pos}/{len} ids ({eta})",
        )
        .with_message("checking ids");
        if let Some((pos, id)) = store.find_id_at_least(spec.vocab_size as u64, &bar)? {
            let hint = match spec.bin_dtype {
                BinDtype::U32 => " or it holds u16 ids read as u32",
                BinDtype::U16 => "",
            };
            return Err(Error::Invalid(format!(
                "{}: token {pos}: id {id} is outside the vocabulary (vocab_size {}): \
                 the file was written with another tokenizer than the model's{hint}; \
                 check the tokenizer, the model's vocab_size and the token dtype",
                f.display(),
                spec.vocab_size
            )));
        }
        bar.finish_and_clear();
        segments.push(Segment {
            store: stores.len(),
            start: 0,
            row_len: n,
            n_rows: 1,
        });
        stores.push(store);
    }
    Ok(Loaded { stores, segments })
}

/// Fails when the stream holds an id `>= spec.vocab_size`, naming where.
fn check_vocab(store: &Store, meta: &StreamMeta, spec: &DataSpec, tok_vocab: usize) -> Result<()> {
    let v = spec.vocab_size as u64;
    if (meta.max_id as u64) < v {
        return Ok(());
    }
    let Some((pos, id)) = store.find_id_at_least(v, &ProgressBar::hidden())? else {
        return Ok(());
    };
    let (path, in_file, row) = meta.locate(pos);
    let advice = if tok_vocab > 0 {
        format!(
            "the tokenizer ({tok_vocab} ids) does not match the model's vocabulary; use the \
             model's tokenizer, or a model with vocab_size at least {}",
            meta.max_id as u64 + 1
        )
    } else {
        "the data was tokenized with another tokenizer than the model's (pico's OLMo \
         tokenizer has 50280 ids); check the tokenizer and the model's vocab_size"
            .to_string()
    };
    let at = match row {
        Some((r, c)) => format!("{}: row {r} (0-based), position {c}", path.display()),
        None => format!("{}: token {in_file} (as tokenized)", path.display()),
    };
    Err(Error::Invalid(format!(
        "{at}: token id {id} is outside the vocabulary (vocab_size {}): {advice}",
        spec.vocab_size
    )))
}
