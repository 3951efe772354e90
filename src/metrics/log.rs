//! The metrics log: one JSON object per line, each with the optimizer `step`. Training
//! lines carry `loss`, `lr`, `grad_norm`, `tokens_per_s`; evaluation lines carry `eval/...`
//! keys. Appending line by line means a crash loses at most the line being written.

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Open for appending (a resumed run continues the same log).
    pub fn open(path: &Path) -> Result<MetricsLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(path, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
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
        writeln!(self.file, "{}", Value::Object(m)).map_err(|e| io(&self.path, e))?;
        self.file.flush().map_err(|e| io(&self.path, e))
    }
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
