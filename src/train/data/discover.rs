//! File discovery: the kind of a data path and its files, in a fixed (sorted) order so
//! that the same directory always gives the same stream.

use super::spec::{DataKind, DataSpec};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Extensions of text documents (a file is one document) and of JSONL (a line is one).
pub(super) const TEXT_EXTS: [&str; 5] = ["txt", "text", "md", "tokens", "raw"];
pub(super) const JSONL_EXTS: [&str; 2] = ["jsonl", "ndjson"];

/// Whether the extension of `path` is one of `exts` (ignoring ASCII case).
pub(super) fn has_ext(path: &Path, exts: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The kind and the files of the input.
pub(super) fn list_inputs(spec: &DataSpec) -> Result<(DataKind, Vec<PathBuf>)> {
    let path = &spec.path;
    let md = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Invalid(format!(
                "data path {} does not exist: give a text, .jsonl, .parquet or .bin file, or a \
                 directory of them",
                path.display()
            ))
        } else {
            Error::Invalid(format!("cannot read data path {}: {e}", path.display()))
        }
    })?;
    if md.is_file() {
        let kind = spec.kind.unwrap_or(if has_ext(path, &["parquet"]) {
            DataKind::Parquet
        } else if has_ext(path, &["bin"]) {
            DataKind::Bin
        } else {
            DataKind::Text
        });
        return Ok((kind, vec![path.clone()]));
    }
    let mut all = Vec::new();
    walk(path, &mut all)?;
    all.sort();
    let of_kind = |k: DataKind| -> Vec<PathBuf> {
        all.iter()
            .filter(|f| match k {
                DataKind::Parquet => has_ext(f, &["parquet"]),
                DataKind::Bin => has_ext(f, &["bin"]),
                DataKind::Text => has_ext(f, &TEXT_EXTS) || has_ext(f, &JSONL_EXTS),
            })
            .cloned()
            .collect()
    };
    let kind = match spec.kind {
        Some(k) => k,
        None => {
            let (pq, bin) = (of_kind(DataKind::Parquet), of_kind(DataKind::Bin));
            match (pq.is_empty(), bin.is_empty()) {
                (false, false) => {
                    return Err(Error::Invalid(format!(
                        "{} holds both .parquet and .bin files: choose the data kind explicitly",
                        path.display()
                    )))
                }
                (false, true) => DataKind::Parquet,
                (true, false) => DataKind::Bin,
                (true, true) => DataKind::Text,
            }
        }
    };
    let files = of_kind(kind);
    if files.is_empty() {
        let expected = match kind {
            DataKind::Text => "text files (.txt, .text, .md, .tokens, .raw) or JSONL (.jsonl)",
            DataKind::Parquet => ".parquet files",
            DataKind::Bin => ".bin token files",
        };
        return Err(Error::Invalid(format!(
            "no data in {}: no documents found (looked for {expected}, recursively)",
            path.display()
        )));
    }
    Ok((kind, files))
}

/// Appends the files under `dir` to `out`, recursively; hidden entries are skipped.
pub(super) fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Invalid(format!("cannot list {}: {e}", dir.display())))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| Error::Invalid(format!("cannot list {}: {e}", dir.display())))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let p = entry.path();
        match std::fs::metadata(&p) {
            Ok(md) if md.is_dir() => walk(&p, out)?,
            Ok(md) if md.is_file() => out.push(p),
            _ => {}
        }
    }
    Ok(())
}
