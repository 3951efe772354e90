//! Held-out documents for Paloma's per-document perplexity, during training
//! (`evaluation.metrics: [paloma]` with `evaluation.paloma.documents`) and in
//! `wgtrain eval --documents`: one path from files to each document's token ids, so both score
//! exactly the same ids. The rule itself is [`crate::eval::perplexity_per_document`].

use super::config::TrainConfig;
use super::data::read_parquet_documents;
use super::tokenizer::Tokenizer;
use crate::error::{Error, Result};
use crate::eval::documents::read_documents;
use crate::eval::DocumentOptions;
use std::path::{Path, PathBuf};

/// The token ids of each document at `path`, each document tokenized alone with no special
/// tokens (no start token: its first id is context only). Text documents (a directory of
/// `.txt` files, `.jsonl`/`.jsonl.gz` with a `text` field) need `tokenizer`; `.parquet` files
/// (a file or a directory of them) are pre-tokenized, one document per row of `input_ids`.
pub fn document_ids(path: &Path, tokenizer: Option<&Tokenizer>) -> Result<Vec<Vec<u32>>> {
    if let Some(docs) = read_parquet_documents(path)? {
        if path.is_dir() && read_documents(path).is_ok() {
            return Err(Error::Invalid(format!(
                "{} holds both pre-tokenized .parquet documents and text documents: keep one \
                 kind in the directory",
                path.display()
            )));
        }
        if docs.is_empty() {
            return Err(Error::Invalid(format!(
                "{} holds .parquet files with no rows: nothing to score",
                path.display()
            )));
        }
        return Ok(docs);
    }
    let docs = read_documents(path)?;
    let tokenizer = tokenizer.ok_or_else(|| {
        Error::Invalid(format!(
            "{} holds text documents, and this run has no tokenizer (its data is \
             pre-tokenized): set data.tokenizer.name to the tokenizer.json the data was \
             tokenized with, or give the documents pre-tokenized (.parquet with an input_ids \
             column)",
            path.display()
        ))
    })?;
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    tokenizer.encode_batch(&texts)
}

/// Whether the held-out documents of `config` (if it evaluates `paloma`) are text, and so
/// need the run's tokenizer.
pub fn needs_tokenizer(config: &TrainConfig) -> bool {
    documents_path(config).is_some_and(|p| !matches!(read_parquet_documents(&p), Ok(Some(_))))
}

fn documents_path(config: &TrainConfig) -> Option<PathBuf> {
    if !config.evaluates("paloma") {
        return None;
    }
    let p = config.evaluation.paloma.as_ref()?;
    p.source().map(PathBuf::from).filter(|p| p.exists())
}

/// The held-out documents of a run, read and tokenized once at its start.
pub struct HeldOutDocuments {
    pub path: PathBuf,
    /// Each document's ids, in file order.
    pub documents: Vec<Vec<u32>>,
    pub options: DocumentOptions,
}

/// The documents `config` evaluates `paloma` on (`None` if it does not), for a model of
/// context `context` trained on `data_path`. Refuses a name that is not a local path (the
/// documents are not downloaded) and documents inside the training data or holding it.
pub fn held_out_documents(
    config: &TrainConfig,
    context: usize,
    data_path: &Path,
    tokenizer: Option<&Tokenizer>,
) -> Result<Option<HeldOutDocuments>> {
    if !config.evaluates("paloma") {
        return Ok(None);
    }
    let section = config.evaluation.paloma.clone().unwrap_or_default();
    let key = if section.documents.is_some() {
        "evaluation.paloma.documents"
    } else {
        "evaluation.paloma.dataset_name"
    };
    let invalid = |problem: String| Error::Config {
        key: key.into(),
        problem,
    };
    let name = section
        .source()
        .ok_or_else(|| invalid("is not set, and evaluation.metrics lists paloma".into()))?;
    let path = PathBuf::from(name);
    if !path.exists() {
        let looks_hub = name.starts_with("hf://")
            || (name.contains('/') && !name.starts_with('.') && !name.starts_with('/'));
        return Err(invalid(if looks_hub {
            let repo = name.trim_start_matches("hf://");
            format!(
                "('{name}') is not a local path; it looks like a Hugging Face dataset, and \
                 wgtrain does not download evaluation documents. Download it (e.g. \
                 `huggingface-cli download --repo-type dataset {repo} --local-dir DIR`) and \
                 give the local copy: evaluation.paloma.documents: DIR (a directory of .txt \
                 files, .jsonl/.jsonl.gz with a `text` field, or .parquet with `input_ids`)"
            )
        } else {
            format!(
                "('{name}') does not exist: give a directory of .txt files, a .jsonl/.jsonl.gz \
                 file with a `text` field per line, or .parquet with an `input_ids` column"
            )
        }));
    }
    let canonical = |p: &Path| {
        p.canonicalize()
            .map_err(|e| Error::Invalid(format!("cannot resolve {}: {e}", p.display())))
    };
    let (docs, data) = (canonical(&path)?, canonical(data_path)?);
    if docs.starts_with(&data) || data.starts_with(&docs) {
        return Err(invalid(format!(
            "({}) overlaps the training data ({}): held-out documents must never be trained \
             on. Keep them outside data.dataset.name",
            docs.display(),
            data.display()
        )));
    }
    let documents = document_ids(&path, tokenizer).map_err(|e| match e {
        Error::Invalid(m) => invalid(m),
        e => e,
    })?;
    Ok(Some(HeldOutDocuments {
        path,
        documents,
        options: section.options(context),
    }))
}
