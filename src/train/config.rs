//! The training configuration in pico-train's YAML format: sections `model`, `training`,
//! `data`, `checkpointing`, `evaluation` and `monitoring` with pico's key names, so a pico
//! user's config works as it is. Keys wgtrain adds (optimizer details pico hard-codes, local
//! data paths, evaluation cadence) live in the same sections with their own names.
//!
//! Every key can be overridden on the command line with `--set section.key=value` (YAML
//! syntax for the value). Unknown keys and impossible values are errors naming the key.

use super::config_keys::first_bad_key;
use crate::error::{Error, Result};
use crate::model::config::ModelConfig;
use crate::model::relora::ReloraConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Model keys as in pico's model config; `preset` (wgtrain) fills in the others.
    pub model: ModelSection,
    pub training: TrainingSection,
    pub data: DataSection,
    pub checkpointing: CheckpointingSection,
    pub evaluation: EvaluationSection,
    pub monitoring: MonitoringSection,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// wgtrain: start from a preset (tiny, small, medium, large); keys below override it.
    pub preset: Option<String>,
    /// pico: only `pico_decoder` (and `pico_relora`) exist.
    pub model_type: Option<String>,
    pub d_model: Option<usize>,
    pub n_layers: Option<usize>,
    pub vocab_size: Option<usize>,
    /// pico keeps a batch size here too; the data loader's batch size is the one used.
    pub batch_size: Option<usize>,
    pub max_seq_len: Option<usize>,
    pub attention_n_heads: Option<usize>,
    pub attention_n_kv_heads: Option<usize>,
    pub activation_hidden_dim: Option<usize>,
    pub norm_eps: Option<f64>,
    pub position_emb_theta: Option<f64>,
    /// pico-relora's adapter block (used by the ReLoRA trainer).
    pub relora: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingSection {
    pub max_steps: u64,
    pub optimization: OptimizationSection,
    /// pico's Lightning Fabric settings: accepted for compatibility; wgtrain trains in f32
    /// on one adapter.
    pub fabric: Option<serde_json::Value>,
    /// wgtrain: seed for initialisation and data order.
    pub seed: u64,
    /// wgtrain: what a step whose loss or gradients hold NaN or Inf does. Its update is never
    /// applied (the device checks every step); `stop` then ends the run with the step, the
    /// first tensor affected and the data position, `skip` counts it and goes on.
    pub on_nonfinite: String,
    /// wgtrain: with `on_nonfinite: skip`, stop after this many non-finite steps in a row.
    pub max_consecutive_nonfinite: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizationSection {
    pub optimizer: String,
    pub lr: f64,
    pub lr_scheduler: String,
    pub lr_warmup_steps: u64,
    pub gradient_accumulation_steps: usize,
    // wgtrain: what pico hard-codes.
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global-norm gradient clipping; none by default, as in pico.
    pub max_grad_norm: Option<f64>,
    /// Floor of the cosine schedules, as a fraction of lr.
    pub min_lr_ratio: f64,
    /// pico-relora: ramp length after each reset (jagged cosine).
    pub restart_warmup_steps: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    pub dataset: DatasetSection,
    pub dataloader: DataloaderSection,
    pub tokenizer: TokenizerSection,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatasetSection {
    /// A Hugging Face dataset name (pico's default) or, in wgtrain, a local path: a text
    /// file, a directory of text files, JSONL, parquet shards, or a flat .bin token file.
    pub name: String,
    /// wgtrain: fraction of the data held out for evaluation.
    pub holdout_fraction: f64,
    /// wgtrain: element type of .bin token files (`u16` or `u32`).
    pub token_dtype: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataloaderSection {
    /// Sequences per optimizer step (pico: split over gradient accumulation steps).
    pub batch_size: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenizerSection {
    /// A tokenizer.json path, pico's hub name, or `bpe` to train one on the data.
    pub name: String,
    pub vocab_size: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointingSection {
    pub run_name: Option<String>,
    pub runs_dir: String,
    pub checkpoints_dir: String,
    pub logs_dir: String,
    pub save_every_n_steps: u64,
    // pico keys accepted for compatibility (Hugging Face upload, fabric files, dynamics).
    pub fabric_checkpoint_dir: Option<String>,
    pub fabric_checkpoint_filename: Option<String>,
    pub learning_dynamics_dir: Option<String>,
    pub save_to_hf: Option<bool>,
    pub hf_checkpoint: Option<serde_json::Value>,
    pub training: Option<serde_json::Value>,
    pub evaluation: Option<serde_json::Value>,
    pub learning_dynamics: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationSection {
    /// `paloma` (per-document perplexity of the held-out documents of `paloma`, pico's
    /// rule), `perplexity` (wgtrain: held-out windows of the training data), `blimp`.
    pub metrics: Vec<String>,
    /// The documents `paloma` scores and how (pico's keys, and wgtrain's `documents`).
    pub paloma: Option<PalomaSection>,
    /// wgtrain: evaluate every N optimizer steps (0 = only at the end).
    pub every_n_steps: u64,
    /// wgtrain: windows of held-out data scored for perplexity.
    pub perplexity_batches: usize,
    /// wgtrain: BLiMP JSONL directory and pairs per paradigm.
    pub blimp_dir: Option<String>,
    pub blimp_limit: Option<usize>,
    /// wgtrain: learning-dynamics metrics (PER, condition number, norms) every N optimizer
    /// steps (0 = off), of `dynamics_matrices` (default: every layer's `w_2` and OV circuit),
    /// for the weights and, with `dynamics_updates`, the updates (gradients; B·A for ReLoRA).
    pub dynamics_every_n_steps: u64,
    pub dynamics_matrices: Option<Vec<String>>,
    pub dynamics_updates: bool,
}

/// `evaluation.paloma`: held-out whole documents, scored one by one by Paloma's rule (see
/// [`crate::eval::perplexity`]). pico names a hub dataset; wgtrain reads a local path only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PalomaSection {
    /// wgtrain: the documents: a directory of `.txt` files, `.jsonl`/`.jsonl.gz` with a `text`
    /// field per line, or `.parquet` with an `input_ids` list per row (pre-tokenized).
    pub documents: Option<String>,
    /// pico: the dataset's name; accepted when it is a local path (as `documents`).
    pub dataset_name: Option<String>,
    /// pico: the split of the hub dataset; a local path is read as it is.
    pub dataset_split: Option<String>,
    /// pico: ids per document, first included (default: the model's `max_seq_len`).
    pub max_length: Option<usize>,
    /// pico: documents per batch; wgtrain scores in batches of the training micro-batch.
    pub batch_size: Option<usize>,
    /// wgtrain: `truncate` (default, Paloma's rule) or `slide` (every id of a long document in
    /// sliding windows of `max_length` ids; not the study's rule).
    pub long_documents: Option<String>,
    /// wgtrain: ids a sliding window advances (default `(max_length - 1) / 2`).
    pub stride: Option<usize>,
}

impl PalomaSection {
    /// The configured documents path: `documents`, else pico's `dataset_name` (so
    /// `--set evaluation.paloma.documents=PATH` overrides a config's hub name).
    pub fn source(&self) -> Option<&str> {
        self.documents.as_deref().or(self.dataset_name.as_deref())
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringSection {
    pub logging: LoggingSection,
    pub save_to_wandb: Option<bool>,
    pub wandb: Option<serde_json::Value>,
    pub save_to_picolabs: Option<bool>,
    pub pico_report: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSection {
    pub log_level: String,
    pub log_every_n_steps: u64,
}

impl Default for TrainingSection {
    fn default() -> Self {
        TrainingSection {
            max_steps: 200_000,
            optimization: OptimizationSection::default(),
            fabric: None,
            seed: 42,
            on_nonfinite: "stop".into(),
            max_consecutive_nonfinite: 5,
        }
    }
}

impl Default for OptimizationSection {
    fn default() -> Self {
        OptimizationSection {
            optimizer: "adamw".into(),
            lr: 3e-4,
            lr_scheduler: "linear_with_warmup".into(),
            lr_warmup_steps: 2500,
            gradient_accumulation_steps: 1,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_grad_norm: None,
            min_lr_ratio: 0.0,
            restart_warmup_steps: None,
        }
    }
}

impl Default for DatasetSection {
    fn default() -> Self {
        DatasetSection {
            name: "pico-lm/pretokenized-dolma".into(),
            holdout_fraction: 0.01,
            token_dtype: "u16".into(),
        }
    }
}

impl Default for DataloaderSection {
    fn default() -> Self {
        DataloaderSection { batch_size: 1024 }
    }
}

impl Default for TokenizerSection {
    fn default() -> Self {
        TokenizerSection {
            name: "allenai/OLMo-7B-0724-hf".into(),
            vocab_size: 50304,
        }
    }
}

impl Default for CheckpointingSection {
    fn default() -> Self {
        CheckpointingSection {
            run_name: None,
            runs_dir: "runs".into(),
            checkpoints_dir: "checkpoints".into(),
            logs_dir: "logs".into(),
            save_every_n_steps: 1000,
            fabric_checkpoint_dir: None,
            fabric_checkpoint_filename: None,
            learning_dynamics_dir: None,
            save_to_hf: None,
            hf_checkpoint: None,
            training: None,
            evaluation: None,
            learning_dynamics: None,
        }
    }
}

impl Default for EvaluationSection {
    fn default() -> Self {
        EvaluationSection {
            metrics: vec!["perplexity".into()],
            paloma: None,
            every_n_steps: 0,
            perplexity_batches: 8,
            blimp_dir: None,
            blimp_limit: None,
            dynamics_every_n_steps: 0,
            dynamics_matrices: None,
            dynamics_updates: true,
        }
    }
}

impl Default for LoggingSection {
    fn default() -> Self {
        LoggingSection {
            log_level: "INFO".into(),
            log_every_n_steps: 10,
        }
    }
}

fn invalid(key: &str, problem: impl std::fmt::Display) -> Error {
    Error::Config {
        key: key.into(),
        problem: problem.to_string(),
    }
}

/// Set `path` (dotted, e.g. `training.optimization.lr`) to `value` (YAML) in a YAML tree.
fn set_path(root: &mut serde_yaml::Value, path: &str, value: serde_yaml::Value) -> Result<()> {
    let mut node = root;
    let keys: Vec<&str> = path.split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(invalid(
            path,
            "is not a dotted key such as training.optimization.lr",
        ));
    }
    for (i, key) in keys.iter().enumerate() {
        if node.is_null() {
            *node = serde_yaml::Value::Mapping(Default::default());
        }
        let map = node
            .as_mapping_mut()
            .ok_or_else(|| invalid(&keys[..i].join("."), "is not a section, so it has no keys"))?;
        let k = serde_yaml::Value::String(key.to_string());
        if i + 1 == keys.len() {
            map.insert(k, value);
            return Ok(());
        }
        node = map.entry(k).or_insert(serde_yaml::Value::Null);
    }
    Ok(())
}

impl TrainConfig {
    /// Parse YAML text, apply `key=value` overrides, and validate.
    pub fn from_yaml(text: &str, overrides: &[String]) -> Result<TrainConfig> {
        let mut tree: serde_yaml::Value = if text.trim().is_empty() {
            serde_yaml::Value::Mapping(Default::default())
        } else {
            serde_yaml::from_str(text)
                .map_err(|e| invalid("(config file)", format!("is not valid YAML: {e}")))?
        };
        for o in overrides {
            let (key, value) = o
                .split_once('=')
                .ok_or_else(|| invalid(o, "override must look like section.key=value"))?;
            let value: serde_yaml::Value = serde_yaml::from_str(value)
                .map_err(|e| invalid(key, format!("value is not valid YAML: {e}")))?;
            set_path(&mut tree, key.trim(), value)?;
        }
        let config: TrainConfig = serde_yaml::from_value(tree.clone()).map_err(|e| {
            // serde_yaml names an unknown key but not where a value of the wrong type is:
            // find the first key that fails on its own.
            match first_bad_key::<TrainConfig>(&tree, &mut Vec::new()) {
                Some((key, problem)) => Error::Invalid(format!("config key `{key}`: {problem}")),
                None => Error::Invalid(format!("config: {e}")),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &std::path::Path, overrides: &[String]) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Invalid(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ))
        })?;
        Self::from_yaml(&text, overrides)
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a TrainConfig always serializes")
    }

    /// The model configuration: the preset (default `tiny`) with the section's keys on top.
    pub fn model_config(&self) -> Result<ModelConfig> {
        let m = &self.model;
        let mut c = ModelConfig::preset(m.preset.as_deref().unwrap_or("tiny"))?;
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = m.$f { c.$f = v; } )* };
        }
        take!(
            d_model,
            n_layers,
            vocab_size,
            max_seq_len,
            attention_n_heads,
            attention_n_kv_heads,
            activation_hidden_dim,
            norm_eps,
            position_emb_theta
        );
        c.relora = m
            .relora
            .as_ref()
            .map(ReloraConfig::from_json_value)
            .transpose()?;
        c.validate()?;
        Ok(c)
    }

    /// Sequences per micro-batch: the loader's batch split over accumulation steps.
    pub fn micro_batch(&self) -> usize {
        self.data.dataloader.batch_size
            / self
                .training
                .optimization
                .gradient_accumulation_steps
                .max(1)
    }

    /// Whether `evaluation.metrics` lists `metric`.
    pub fn evaluates(&self, metric: &str) -> bool {
        self.evaluation.metrics.iter().any(|m| m == metric)
    }

    /// The pico keys this config sets that wgtrain accepts but does not act on (Lightning
    /// Fabric, Hugging Face uploads, wandb, pico-analyze's own settings, ...), to list once at
    /// the start of a run so none is dropped silently.
    pub fn ignored_keys(&self) -> Vec<&'static str> {
        let c = &self.checkpointing;
        let m = &self.monitoring;
        let paloma = self.evaluation.paloma.as_ref();
        [
            ("model.batch_size", self.model.batch_size.is_some()),
            ("training.fabric", self.training.fabric.is_some()),
            (
                "checkpointing.fabric_checkpoint_dir",
                c.fabric_checkpoint_dir.is_some(),
            ),
            (
                "checkpointing.fabric_checkpoint_filename",
                c.fabric_checkpoint_filename.is_some(),
            ),
            (
                "checkpointing.learning_dynamics_dir",
                c.learning_dynamics_dir.is_some(),
            ),
            ("checkpointing.save_to_hf", c.save_to_hf.is_some()),
            ("checkpointing.hf_checkpoint", c.hf_checkpoint.is_some()),
            ("checkpointing.training", c.training.is_some()),
            ("checkpointing.evaluation", c.evaluation.is_some()),
            (
                "checkpointing.learning_dynamics",
                c.learning_dynamics.is_some(),
            ),
            (
                "evaluation.paloma",
                paloma.is_some() && !self.evaluates("paloma"),
            ),
            (
                "evaluation.paloma.dataset_name",
                self.evaluates("paloma")
                    && paloma.is_some_and(|p| p.documents.is_some() && p.dataset_name.is_some()),
            ),
            (
                "evaluation.paloma.dataset_split",
                self.evaluates("paloma") && paloma.is_some_and(|p| p.dataset_split.is_some()),
            ),
            (
                "evaluation.paloma.batch_size",
                self.evaluates("paloma") && paloma.is_some_and(|p| p.batch_size.is_some()),
            ),
            ("monitoring.save_to_wandb", m.save_to_wandb.is_some()),
            ("monitoring.wandb", m.wandb.is_some()),
            ("monitoring.save_to_picolabs", m.save_to_picolabs.is_some()),
            ("monitoring.pico_report", m.pico_report.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    pub fn validate(&self) -> Result<()> {
        let o = &self.training.optimization;
        if let Some(t) = &self.model.model_type {
            if t != "pico_decoder" && t != "pico_relora" {
                return Err(invalid(
                    "model.model_type",
                    format!("'{t}' is not supported: use pico_decoder or pico_relora"),
                ));
            }
        }
        let relora = self.model.relora.is_some();
        if self.model.model_type.as_deref() == Some("pico_relora") && !relora {
            return Err(invalid(
                "model.model_type",
                "pico_relora needs a model.relora block (r, lora_alpha, reset_frequency, ...); \
                 without one the run would train a plain pico-decoder",
            ));
        }
        if self.training.optimization.lr_scheduler == "relora_jagged_cosine" && !relora {
            return Err(invalid(
                "training.optimization.lr_scheduler",
                "relora_jagged_cosine restarts every model.relora.reset_frequency steps; without \
                 a model.relora block the learning rate would stay 0 after the warmup: add the \
                 block, or use cosine or linear_with_warmup for a full-rank run",
            ));
        }
        if self.training.max_steps == 0 {
            return Err(invalid("training.max_steps", "must be at least 1"));
        }
        if !matches!(self.training.on_nonfinite.as_str(), "stop" | "skip") {
            return Err(invalid(
                "training.on_nonfinite",
                format!(
                    "'{}' is not a policy: use stop (end the run at the first NaN or Inf) or \
                     skip (drop that step's update and go on)",
                    self.training.on_nonfinite
                ),
            ));
        }
        if self.training.max_consecutive_nonfinite == 0 {
            return Err(invalid(
                "training.max_consecutive_nonfinite",
                "must be at least 1 (the number of non-finite steps in a row that ends a run \
                 with on_nonfinite: skip)",
            ));
        }
        if o.optimizer.to_lowercase() != "adamw" {
            return Err(invalid(
                "training.optimization.optimizer",
                format!("'{}' is not supported: use adamw", o.optimizer),
            ));
        }
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return Err(invalid(
                "training.optimization.lr",
                format!("must be a positive number, got {}", o.lr),
            ));
        }
        if o.gradient_accumulation_steps == 0 {
            return Err(invalid(
                "training.optimization.gradient_accumulation_steps",
                "must be at least 1",
            ));
        }
        let bs = self.data.dataloader.batch_size;
        if bs == 0 || !bs.is_multiple_of(o.gradient_accumulation_steps) {
            return Err(invalid(
                "data.dataloader.batch_size",
                format!("({bs}) must be a positive multiple of training.optimization.gradient_accumulation_steps ({})", o.gradient_accumulation_steps),
            ));
        }
        for (key, v, lo, hi) in [
            ("training.optimization.beta1", o.beta1, 0.0, 1.0),
            ("training.optimization.beta2", o.beta2, 0.0, 1.0),
            (
                "training.optimization.min_lr_ratio",
                o.min_lr_ratio,
                0.0,
                1.0 + f64::EPSILON,
            ),
            (
                "data.dataset.holdout_fraction",
                self.data.dataset.holdout_fraction,
                0.0,
                1.0,
            ),
        ] {
            if !(v >= lo && v < hi) {
                return Err(invalid(key, format!("must be in [{lo}, {hi}), got {v}")));
            }
        }
        if o.eps.is_nan() || o.eps <= 0.0 || o.weight_decay < 0.0 {
            return Err(invalid(
                "training.optimization.eps",
                "eps must be positive and weight_decay not negative",
            ));
        }
        if let Some(n) = o.max_grad_norm {
            if n.is_nan() || n <= 0.0 {
                return Err(invalid(
                    "training.optimization.max_grad_norm",
                    format!("must be positive, got {n}"),
                ));
            }
        }
        if !matches!(self.data.dataset.token_dtype.as_str(), "u16" | "u32") {
            return Err(invalid(
                "data.dataset.token_dtype",
                format!("'{}' must be u16 or u32", self.data.dataset.token_dtype),
            ));
        }
        if self.checkpointing.save_every_n_steps == 0 {
            return Err(invalid(
                "checkpointing.save_every_n_steps",
                "must be at least 1",
            ));
        }
        for m in &self.evaluation.metrics {
            if !matches!(m.as_str(), "paloma" | "perplexity" | "blimp") {
                return Err(invalid(
                    "evaluation.metrics",
                    format!(
                        "'{m}' is unknown: use paloma (per-document perplexity of the held-out \
                         documents in evaluation.paloma.documents), perplexity (held-out \
                         windows of the training data) or blimp"
                    ),
                ));
            }
        }
        let model = self.model_config()?;
        if let Some(p) = &self.evaluation.paloma {
            p.validate(model.max_seq_len)?;
        }
        if self.evaluates("paloma")
            && self
                .evaluation
                .paloma
                .as_ref()
                .and_then(|p| p.source())
                .is_none()
        {
            return Err(invalid(
                "evaluation.paloma.documents",
                "is not set, and evaluation.metrics lists paloma: Paloma's perplexity is \
                 computed on held-out whole documents, never on the training stream. Give \
                 them with evaluation.paloma.documents: PATH (a directory of .txt files, \
                 .jsonl/.jsonl.gz with a `text` field, or .parquet with `input_ids`; for \
                 pico's pico-lm/pretokenized-paloma-tinsy, download it first), or evaluate \
                 `perplexity` (held-out windows of the training data) instead",
            ));
        }
        Ok(())
    }
}

impl PalomaSection {
    /// Checks the keys against a model of context `context`.
    fn validate(&self, context: usize) -> Result<()> {
        if let Some(n) = self.max_length {
            if n < 2 || n > context {
                return Err(invalid(
                    "evaluation.paloma.max_length",
                    format!(
                        "({n}) must be between 2 (one id of context, one to score) and the \
                         model's context, max_seq_len {context} (the default, Paloma's rule)"
                    ),
                ));
            }
        }
        let labels = self.max_length.unwrap_or(context).saturating_sub(1);
        match (self.long_documents.as_deref(), self.stride) {
            (None | Some("truncate"), None) | (Some("slide"), None) => Ok(()),
            (None | Some("truncate"), Some(_)) => Err(invalid(
                "evaluation.paloma.stride",
                "applies to sliding windows only: set evaluation.paloma.long_documents: slide \
                 (the default, Paloma's rule, truncates long documents)",
            )),
            (Some("slide"), Some(s)) if s == 0 || s > labels => Err(invalid(
                "evaluation.paloma.stride",
                format!("({s}) must be between 1 and max_length - 1 ({labels})"),
            )),
            (Some("slide"), Some(_)) => Ok(()),
            (Some(other), _) => Err(invalid(
                "evaluation.paloma.long_documents",
                format!("'{other}' must be truncate (Paloma's rule) or slide"),
            )),
        }
    }

    /// How the documents are cut for a model of context `context` (validated).
    pub fn options(&self, context: usize) -> crate::eval::DocumentOptions {
        let max_length = self.max_length.unwrap_or(context);
        let long = match self.long_documents.as_deref() {
            Some("slide") => crate::eval::LongDocuments::Slide {
                stride: self.stride.unwrap_or(((max_length - 1) / 2).max(1)),
            },
            _ => crate::eval::LongDocuments::Truncate,
        };
        crate::eval::DocumentOptions { max_length, long }
    }
}
