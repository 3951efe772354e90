//! The metrics log: one JSON object per line, each with the optimizer `step`. Training
//! lines carry `loss`, `lr`, `grad_norm`, `tokens_per_s`; evaluation lines carry `eval/...`
//! keys. Each line is written with one `write` call, so a crash loses at most the line being
//! written; opening the log drops such a torn last line, and a resumed run drops the lines of
//! steps after its checkpoint (it writes them again).

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

pub struct MetricsLog {
    path: PathBuf,
    /// `None` for [`MetricsLog::discard`].
    file: Option<std::fs::File>,
}

impl MetricsLog {
    /// Open for appending (a resumed run continues the same log).
    pub fn open(path: &Path) -> Result<MetricsLog> {
        Self::open_at(path, None)
    }

    /// Open for appending after the records of steps up to `step` (all when `None`): a run
    /// resumed from step N's checkpoint repeats the steps after N, so their old lines go. A
    /// torn last line (a crash while writing it) is dropped too. The file is rewritten
    /// atomically when anything is dropped.
    pub fn open_at(path: &Path, step: Option<u64>) -> Result<MetricsLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(path, e))?;
        }
        if let Ok(text) = std::fs::read_to_string(path) {
            let kept = kept_lines(&text, step);
            if kept.len() != text.len() {
                let tmp = path.with_extension("jsonl.tmp");
                std::fs::write(&tmp, kept)
                    .and_then(|()| std::fs::rename(&tmp, path))
                    .map_err(|e| io(path, e))?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    /// A log that keeps nothing (the ranks of data-parallel training other than rank 0,
    /// which writes the run's log): `path` is the log rank 0 writes.
    pub fn discard(path: &Path) -> MetricsLog {
        MetricsLog {
            path: path.to_path_buf(),
            file: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, step: u64, values: &[(&str, f64)]) -> Result<()> {
        let mut m = Map::new();
        m.insert("step".into(), Value::from(step));
        for (k, v) in values {
            // NaN and infinities are not JSON: write null so the line stays parseable.
            let v = serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number);
            m.insert((*k).into(), v);
        }
        let line = format!("{}\n", Value::Object(m));
        match &mut self.file {
            Some(f) => f.write_all(line.as_bytes()).map_err(|e| io(&self.path, e)),
            None => Ok(()),
        }
    }
}

/// The complete lines of `text` whose step is at most `step` (every complete line when
/// `None`), as one string.
fn kept_lines(text: &str, step: Option<u64>) -> &str {
    // Records are in step order (a resumed log was cut before it continued), so the kept
    // part is a prefix: up to the last newline, then up to the first line past `step`.
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    let Some(limit) = step else {
        return complete;
    };
    let mut end = 0;
    for line in complete.split_inclusive('\n') {
        let s = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v.get("step").and_then(Value::as_u64));
        if s.is_some_and(|s| s > limit) {
            break;
        }
        end += line.len();
    }
    &complete[..end]
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Invalid(format!("metrics log {}: {e}", path.display()))
}

/// Every record of a log, in order (lines that do not parse are an error naming the line).
pub fn read_log(path: &Path) -> Result<Vec<Map<String, Value>>> {
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(m)) => out.push(m),
            _ => {
                return Err(Error::Invalid(format!(
                    "metrics log {} line {}: not a JSON object",
                    path.display(),
                    i + 1
                )))
            }
        }
    }
    Ok(out)
}

/// The (step, value) series of `key` across records.
pub fn series(records: &[Map<String, Value>], key: &str) -> Vec<(f64, f64)> {
    records
        .iter()
        .filter_map(|r| Some((r.get("step")?.as_f64()?, r.get(key)?.as_f64()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::kept_lines;

    #[test]
    fn a_torn_line_and_the_steps_after_a_checkpoint_are_dropped() {
        let log = "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n{\"step\":4,\"lo";
        assert_eq!(
            kept_lines(log, None),
            "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n"
        );
        assert_eq!(kept_lines(log, Some(2)), "{\"step\":1}\n{\"step\":2}\n");
        assert_eq!(kept_lines("", Some(2)), "");
        assert_eq!(kept_lines("{\"step\":1", None), "");
    }
}
