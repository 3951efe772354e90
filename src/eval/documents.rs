//! Reading evaluation documents, one document per text file or per JSONL line, as Paloma
//! ships them: a directory of `.txt` files (each file one document), or `.jsonl` files (also
//! gzipped, `.jsonl.gz`) with one JSON object per line whose `text` field is the document.
//! A directory may mix both; files are read in name order, so the document order is stable.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// One document and where it came from (for messages).
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub text: String,
    /// `file` or `file:line`.
    pub source: String,
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Invalid(format!("cannot read {}: {e}", path.display()))
}

fn is_jsonl(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.ends_with(".jsonl") || name.ends_with(".jsonl.gz") || name.ends_with(".json.gz")
}

fn is_text(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("txt"))
}

/// Every document file under `dir`, recursively, in path order.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| io_error(dir, e)))
        .collect::<Result<_>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, out)?;
        } else if is_jsonl(&path) || is_text(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let bytes = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
    {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::Invalid(format!("{} is not valid gzip: {e}", path.display())))?;
        out
    } else {
        bytes
    };
    String::from_utf8(bytes)
        .map_err(|e| Error::Invalid(format!("{} is not UTF-8 text: {e}", path.display())))
}

/// The documents of one JSONL text: one object per non-blank line, its `text` field.
pub fn parse_jsonl_documents(text: &str, source: &Path) -> Result<Vec<Document>> {
    let mut docs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", source.display(), i + 1);
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::Invalid(format!("{at}: not a JSON object: {e}")))?;
        let text = value.get("text").and_then(|t| t.as_str()).ok_or_else(|| {
            Error::Invalid(format!(
                "{at}: no string field `text` (each line must be an object like {{\"text\": \"...\"}})"
            ))
        })?;
        docs.push(Document {
            text: text.to_string(),
            source: at,
        });
    }
    Ok(docs)
}

/// The documents at `path`: a `.txt` file (one document), a `.jsonl`/`.jsonl.gz` file (one per
/// line), or a directory of those. Refuses a path that holds no document.
pub fn read_documents(path: &Path) -> Result<Vec<Document>> {
    let files = if path.is_dir() {
        let mut files = Vec::new();
        files_under(path, &mut files)?;
        files
    } else if path.exists() {
        vec![path.to_path_buf()]
    } else {
        return Err(Error::Invalid(format!(
            "{} does not exist: give a directory of .txt documents or a .jsonl(.gz) file with a \
             `text` field per line",
            path.display()
        )));
    };
    let mut docs = Vec::new();
    for file in &files {
        let text = read_text(file)?;
        if is_jsonl(file) {
            docs.extend(parse_jsonl_documents(&text, file)?);
        } else {
            docs.push(Document {
                text,
                source: file.display().to_string(),
            });
        }
    }
    if docs.is_empty() {
        return Err(Error::Invalid(format!(
            "{} holds no documents (.txt files, or .jsonl/.jsonl.gz lines with a `text` field)",
            path.display()
        )));
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_lines_are_documents_and_errors_name_the_line() {
        let p = Path::new("docs.jsonl");
        let docs =
            parse_jsonl_documents("{\"text\": \"a b\"}\n\n{\"text\": \"c\", \"id\": 3}\n", p)
                .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            (docs[0].text.as_str(), docs[1].source.as_str()),
            ("a b", "docs.jsonl:3")
        );
        let e = parse_jsonl_documents("{\"text\": \"a\"}\n{\"body\": 1}\n", p).unwrap_err();
        assert!(
            e.to_string().contains("docs.jsonl:2") && e.to_string().contains("`text`"),
            "{e}"
        );
        let e = parse_jsonl_documents("not json\n", p).unwrap_err();
        assert!(e.to_string().contains("docs.jsonl:1"), "{e}");
    }
}
