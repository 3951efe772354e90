//! What a finished run of a study measured, read back from its run directory: the metrics
//! log, the final per-pair BLiMP scores, and the study's bookkeeping files.

use super::execute::{BlimpPairs, RunDone, BLIMP_PAIRS, RUN_CONFIG, RUN_DONE};
use super::plan::{RunMeta, RUN_META};
use crate::error::{Error, Result};
use crate::metrics::log::{read_log, series};
use crate::train::config::TrainConfig;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// One run's measurements.
pub struct RunResult {
    pub dir: PathBuf,
    pub meta: RunMeta,
    pub config: TrainConfig,
    pub done: RunDone,
    pub log: Vec<Map<String, Value>>,
    pub blimp_pairs: Option<BlimpPairs>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

impl RunResult {
    /// The results of the finished study run in `dir`.
    pub fn load(dir: &Path) -> Result<RunResult> {
        if !dir.join(RUN_DONE).exists() {
            return Err(Error::Invalid(format!(
                "{} is not a finished run of a study (no {RUN_DONE}): finish it with \
                 `wgtrain study --config FILE`",
                dir.display()
            )));
        }
        let config_text = std::fs::read_to_string(dir.join(RUN_CONFIG))
            .map_err(|e| Error::Invalid(format!("{}: {e}", dir.join(RUN_CONFIG).display())))?;
        let pairs = dir.join(BLIMP_PAIRS);
        Ok(RunResult {
            dir: dir.to_path_buf(),
            meta: read_json(&dir.join(RUN_META))?,
            config: TrainConfig::from_yaml(&config_text, &[])?,
            done: read_json(&dir.join(RUN_DONE))?,
            log: read_log(&dir.join("metrics.jsonl"))?,
            blimp_pairs: if pairs.exists() {
                Some(read_json(&pairs)?)
            } else {
                None
            },
        })
    }

    /// The (step, value) series of `key`, one value per step: a run killed between two
    /// checkpoints logs some steps again when it resumes (the same values, as resume is
    /// exact), and the later record of a step is the one kept.
    pub fn series(&self, key: &str) -> Vec<(f64, f64)> {
        let by_step: std::collections::BTreeMap<u64, f64> = series(&self.log, key)
            .into_iter()
            .map(|(step, v)| (step as u64, v))
            .collect();
        by_step.into_iter().map(|(s, v)| (s as f64, v)).collect()
    }

    /// The last logged value of `key`.
    pub fn last(&self, key: &str) -> Option<f64> {
        self.series(key).last().map(|p| p.1)
    }

    /// Steps that began with a merge-and-reset, as the trainer logged them.
    pub fn resets(&self) -> Vec<u64> {
        self.series("relora/reset")
            .iter()
            .map(|p| p.0 as u64)
            .collect()
    }

    pub fn is_relora(&self) -> bool {
        self.config
            .model_config()
            .map(|c| c.relora.is_some())
            .unwrap_or(false)
    }

    /// The mean over layers, at each logged step, of `dynamics/layers.{i}.{matrix}/{kind}/{metric}`
    /// (steps where every layer has a value).
    pub fn layer_mean(&self, matrix: &str, kind: &str, metric: &str) -> Vec<(f64, f64)> {
        let layers = self.config.model_config().map_or(0, |c| c.n_layers);
        let per_layer: Vec<Vec<(f64, f64)>> = (0..layers)
            .map(|i| self.series(&format!("dynamics/layers.{i}.{matrix}/{kind}/{metric}")))
            .collect();
        mean_at_common_steps(&per_layer)
    }

    /// Directory name, for tables.
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }
}

/// The mean of several (step, value) series at each step of the first that all of them have.
pub fn mean_at_common_steps(all: &[Vec<(f64, f64)>]) -> Vec<(f64, f64)> {
    let Some(first) = all.first() else {
        return Vec::new();
    };
    first
        .iter()
        .filter_map(|&(x, _)| {
            let ys: Option<Vec<f64>> = all
                .iter()
                .map(|s| s.iter().find(|p| p.0 == x).map(|p| p.1))
                .collect();
            let ys = ys?;
            Some((x, ys.iter().sum::<f64>() / ys.len() as f64))
        })
        .collect()
}
