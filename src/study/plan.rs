//! The runs of a study: one ordinary training config per (scale, variant, seed).

use super::file::StudyFile;
use crate::error::{Error, Result};
use crate::train::config::TrainConfig;
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// What a run directory of a study is, kept in `RUN/study_run.json` so that the report can be
/// redrawn from the directories alone (`wgtrain compare`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunMeta {
    pub scale: String,
    pub variant: String,
    pub seed: u64,
}

/// One run of the study.
#[derive(Clone, Debug)]
pub struct PlannedRun {
    pub meta: RunMeta,
    pub dir: PathBuf,
    pub config: TrainConfig,
    /// Steps it trains for: the study's `train_steps`, at most `training.max_steps`.
    pub steps: u64,
}

/// The file name of [`RunMeta`] in a run directory.
pub const RUN_META: &str = "study_run.json";

/// `over` merged into `base`: mappings key by key (recursively), anything else replaced.
pub fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn mapping(pairs: &[(&str, Value)]) -> Value {
    let mut m = serde_yaml::Mapping::new();
    for (k, v) in pairs {
        m.insert(Value::String((*k).to_string()), v.clone());
    }
    Value::Mapping(m)
}

/// The file of held-out documents a study writes (see [`StudyFile::held_out_documents`]).
pub const HELD_OUT_DOCUMENTS: &str = "held_out_documents.jsonl";

/// Write the study's held-out documents into `out` (once; the same every time) and return
/// their absolute path, when the study cuts them from WikiText.
pub fn prepare_documents(study: &StudyFile, out: &Path) -> Result<Option<PathBuf>> {
    let Some(h) = &study.held_out_documents else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&h.wikitext)
        .map_err(|e| Error::Invalid(format!("held_out_documents.wikitext {}: {e}", h.wikitext)))?;
    let docs = crate::eval::wikitext_documents(&text);
    if docs.len() < h.count || h.count == 0 {
        return Err(Error::Invalid(format!(
            "held_out_documents: {} has {} articles, {} asked for (at least 1)",
            h.wikitext,
            docs.len(),
            h.count
        )));
    }
    std::fs::create_dir_all(out)
        .map_err(|e| Error::Invalid(format!("cannot create {}: {e}", out.display())))?;
    let mut jsonl = String::new();
    for d in &docs[..h.count] {
        jsonl += &serde_json::json!({ "text": d }).to_string();
        jsonl.push('\n');
    }
    let path = out.join(HELD_OUT_DOCUMENTS);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(jsonl.as_str()) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &jsonl)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::Invalid(format!("writing {}: {e}", path.display())))?;
    }
    let abs = path
        .canonicalize()
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    Ok(Some(abs))
}

/// The study's runs in order (scale, then variant, then seed), under `out`; `documents`
/// (from [`prepare_documents`]) becomes every run's `evaluation.paloma.documents`.
pub fn plan_runs(
    study: &StudyFile,
    out: &Path,
    documents: Option<&Path>,
) -> Result<Vec<PlannedRun>> {
    let mut runs = Vec::new();
    for scale in &study.scales {
        for variant in &study.variants {
            for &seed in &study.seeds {
                let mut config = study.base.clone();
                deep_merge(&mut config, &mapping(&[("model", scale.model.clone())]));
                if let Some(o) = &variant.overrides {
                    deep_merge(&mut config, o);
                }
                deep_merge(
                    &mut config,
                    &mapping(&[("training", mapping(&[("seed", Value::from(seed))]))]),
                );
                if let Some(d) = documents {
                    let paloma = mapping(&[("documents", Value::from(d.display().to_string()))]);
                    deep_merge(
                        &mut config,
                        &mapping(&[("evaluation", mapping(&[("paloma", paloma)]))]),
                    );
                }
                let name = format!("{}-{}-seed{seed}", scale.name, variant.name);
                let text = serde_yaml::to_string(&config)
                    .map_err(|e| Error::Invalid(format!("run {name}: {e}")))?;
                let config = TrainConfig::from_yaml(&text, &[])
                    .map_err(|e| Error::Invalid(format!("run {name} of the study: {e}")))?;
                config
                    .model_config()
                    .map_err(|e| Error::Invalid(format!("run {name} of the study: {e}")))?;
                let max = config.training.max_steps;
                runs.push(PlannedRun {
                    steps: study.train_steps.map_or(max, |t| t.min(max)),
                    meta: RunMeta {
                        scale: scale.name.clone(),
                        variant: variant.name.clone(),
                        seed,
                    },
                    dir: out.join(&name),
                    config,
                });
            }
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_what_the_override_does_not_name() {
        let mut base: Value =
            serde_yaml::from_str("model: {d_model: 8, n_layers: 2}\ntraining: {max_steps: 3}")
                .unwrap();
        let over: Value = serde_yaml::from_str("model: {d_model: 16, relora: {r: 4}}").unwrap();
        deep_merge(&mut base, &over);
        let want: Value = serde_yaml::from_str(
            "model: {d_model: 16, n_layers: 2, relora: {r: 4}}\ntraining: {max_steps: 3}",
        )
        .unwrap();
        assert_eq!(base, want);
    }
}
