//! The study file (`studies/NAME.yaml`): what every run shares, the model scales, the
//! variants and the seeds. Each (scale, variant, seed) becomes one ordinary run directory with
//! an ordinary training config: `base`, then the scale's `model` keys, then the variant's
//! `overrides`, then `training.seed`.
//!
//! ```yaml
//! name: micro
//! base:            # a complete wgtrain training config (data, schedule, evaluation, ...)
//!   training: { max_steps: 40 }
//! scales:
//!   - { name: d32, model: { d_model: 32, n_layers: 2 } }
//! variants:
//!   - { name: pico-decoder }
//!   - { name: pico-relora, overrides: { model: { model_type: pico_relora, relora: { r: 4 } } } }
//! seeds: [1]
//! blimp_pairs_per_paradigm: 20   # the final per-pair BLiMP of every run (paired tests)
//! ```

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// A parsed study file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    pub name: String,
    /// Where the run directories, figures and report go (default `runs/study-NAME`).
    #[serde(default)]
    pub out: Option<String>,
    /// Free text for the report: what this study is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The training config every run starts from.
    pub base: serde_yaml::Value,
    pub scales: Vec<Scale>,
    pub variants: Vec<Variant>,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// BLiMP pairs per paradigm scored on each run's final weights, kept per pair for the
    /// paired tests (the same pairs for every run: each paradigm's first N).
    #[serde(default = "default_pairs")]
    pub blimp_pairs_per_paradigm: usize,
    /// Optimizer steps every run trains for (default: its `training.max_steps`). Schedules
    /// still span `training.max_steps`: the paper evaluated its full-rank runs, whose
    /// schedule decays over 200,000 steps, at step 20,000.
    #[serde(default)]
    pub train_steps: Option<u64>,
    /// Steps after which the loss is compared around each reset (the reset-spike finding).
    #[serde(default = "default_window")]
    pub reset_window: u64,
    /// Steps that count as early training for the condition-number finding (default: the
    /// first quarter).
    #[serde(default)]
    pub early_steps: Option<u64>,
    /// Held-out documents for Paloma-style perplexity cut from a WikiText file (its first
    /// `count` articles, written to `OUT/held_out_documents.jsonl` and given to every run as
    /// `evaluation.paloma.documents`); or set `evaluation.paloma.documents` in `base`.
    #[serde(default)]
    pub held_out_documents: Option<HeldOutDocuments>,
}

/// Whole held-out documents taken from a WikiText file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldOutDocuments {
    pub wikitext: String,
    pub count: usize,
}

/// One model size: keys of the config's `model` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub name: String,
    pub model: serde_yaml::Value,
}

/// One training method: config keys merged over the base (e.g. the `relora` block and its
/// schedule).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    #[serde(default)]
    pub overrides: Option<serde_yaml::Value>,
}

fn default_seeds() -> Vec<u64> {
    vec![42]
}
fn default_pairs() -> usize {
    20
}
fn default_window() -> u64 {
    5
}

impl StudyFile {
    pub fn from_path(path: &Path) -> Result<StudyFile> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Invalid(format!(
                "cannot read the study file {}: {e}",
                path.display()
            ))
        })?;
        Self::from_yaml(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }

    pub fn from_yaml(text: &str) -> Result<StudyFile> {
        let s: StudyFile = serde_yaml::from_str(text).map_err(|e| {
            Error::Invalid(format!(
                "not a study file ({e}); it needs name, base, scales, variants (see studies/)"
            ))
        })?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        let ok_name = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        };
        if !ok_name(&self.name) {
            return bad(format!(
                "study name '{}': use letters, digits, '.', '_' or '-'",
                self.name
            ));
        }
        if self.scales.is_empty() || self.variants.is_empty() {
            return bad("a study needs at least one scale and one variant".into());
        }
        if self.seeds.is_empty() {
            return bad("seeds: give at least one seed".into());
        }
        if !self.base.is_mapping() {
            return bad("base: must be a training config (a mapping)".into());
        }
        for (what, names) in [
            (
                "scale",
                self.scales.iter().map(|s| &s.name).collect::<Vec<_>>(),
            ),
            ("variant", self.variants.iter().map(|v| &v.name).collect()),
        ] {
            for (i, n) in names.iter().enumerate() {
                if !ok_name(n) {
                    return bad(format!(
                        "{what} name '{n}': use letters, digits, '.', '_' or '-'"
                    ));
                }
                if names[..i].contains(n) {
                    return bad(format!("{what} '{n}' is named twice"));
                }
            }
        }
        for s in &self.scales {
            if !s.model.is_mapping() {
                return bad(format!(
                    "scale {}: model must be a mapping of model keys",
                    s.name
                ));
            }
        }
        for v in &self.variants {
            if v.overrides.as_ref().is_some_and(|o| !o.is_mapping()) {
                return bad(format!("variant {}: overrides must be a mapping", v.name));
            }
        }
        if self.train_steps == Some(0) {
            return bad("train_steps must be at least 1".into());
        }
        if self.reset_window == 0 {
            return bad("reset_window must be at least 1".into());
        }
        Ok(())
    }
}
