//! pico-relora's configuration: which linears get LoRA adapters, their rank and scale, the
//! reset cadence, and the two reference quirks (as options; the defaults are corrected).
//!
//! It lives in the model config's `relora` object (config.json and the YAML `model.relora`
//! block), with pico's keys: `target_modules`, `reset_frequency`, `r`, `lora_alpha`,
//! `lora_dropout`, `keep_original_weights`, `lora_only`, `trainable_scaling`. wgtrain adds:
//! - `quirk_zero_init_a` (false): the reference also zeroes A when wrapping, so LoRA gets no
//!   gradient until the first reset;
//! - `quirk_merge_without_scale` (false): the reference merges `W += B A` instead of
//!   `W += s B A`;
//! - `optimizer_reset` (`random`, or `magnitude` as in the original ReLoRA) and
//!   `prune_ratio` (0.999): how the Adam moments of the LoRA parameters are pruned at a reset.

use super::params::ParamSpec;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The seven linears of a layer, by module path inside the layer, and which target group
/// (`attention` / `swiglu`) each belongs to.
pub const LINEARS: [(&str, &str); 7] = [
    ("attention.q_proj", "attention"),
    ("attention.k_proj", "attention"),
    ("attention.v_proj", "attention"),
    ("attention.o_proj", "attention"),
    ("swiglu.w_0", "swiglu"),
    ("swiglu.w_1", "swiglu"),
    ("swiglu.w_2", "swiglu"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerReset {
    Random,
    Magnitude,
}

fn default_targets() -> Vec<String> {
    vec!["attention".into(), "swiglu".into()]
}
fn default_reset() -> u64 {
    2000
}
fn default_r() -> usize {
    16
}
fn default_alpha() -> f64 {
    32.0
}
fn default_dropout() -> f64 {
    0.1
}
fn default_true() -> bool {
    true
}
fn default_ratio() -> f64 {
    0.999
}
fn default_reset_kind() -> OptimizerReset {
    OptimizerReset::Random
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn is_random(k: &OptimizerReset) -> bool {
    *k == OptimizerReset::Random
}
fn is_default_ratio(r: &f64) -> bool {
    *r == default_ratio()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloraConfig {
    #[serde(default = "default_targets")]
    pub target_modules: Vec<String>,
    #[serde(default = "default_reset")]
    pub reset_frequency: u64,
    #[serde(default = "default_r")]
    pub r: usize,
    #[serde(default = "default_alpha")]
    pub lora_alpha: f64,
    #[serde(default = "default_dropout")]
    pub lora_dropout: f64,
    #[serde(default = "default_true")]
    pub keep_original_weights: bool,
    #[serde(default)]
    pub lora_only: bool,
    #[serde(default)]
    pub trainable_scaling: bool,
    // wgtrain's own keys are written only when they differ from the default, so a
    // config.json stays pico's unless a quirk or another pruning rule was asked for.
    #[serde(default, skip_serializing_if = "is_false")]
    pub quirk_zero_init_a: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub quirk_merge_without_scale: bool,
    #[serde(default = "default_reset_kind", skip_serializing_if = "is_random")]
    pub optimizer_reset: OptimizerReset,
    #[serde(default = "default_ratio", skip_serializing_if = "is_default_ratio")]
    pub prune_ratio: f64,
}

/// pico-relora's settings of the study: LoRA r 16, alpha 32, dropout 0.1 on every attention
/// and FFN linear, a reset every 2000 steps; the corrected (non-quirk) behaviour.
impl Default for ReloraConfig {
    fn default() -> Self {
        ReloraConfig {
            target_modules: default_targets(),
            reset_frequency: default_reset(),
            r: default_r(),
            lora_alpha: default_alpha(),
            lora_dropout: default_dropout(),
            keep_original_weights: true,
            lora_only: false,
            trainable_scaling: false,
            quirk_zero_init_a: false,
            quirk_merge_without_scale: false,
            optimizer_reset: default_reset_kind(),
            prune_ratio: default_ratio(),
        }
    }
}

/// Whether a `target_modules` entry names the linear at `path` of `group`: the group
/// (`attention`, `swiglu`), the linear's own name (`q_proj`) or its path (`attention.q_proj`).
/// Names match whole, never as a suffix (`proj` names nothing).
fn names_module(target: &str, path: &str, group: &str) -> bool {
    target == group || target == path || path.rsplit('.').next() == Some(target)
}

fn bad(key: &str, problem: impl std::fmt::Display) -> Error {
    Error::Config {
        key: format!("relora.{key}"),
        problem: problem.to_string(),
    }
}

impl ReloraConfig {
    /// Parse and validate a `relora` block (config.json's object, or the YAML `model.relora`
    /// block read as JSON). Errors name the key, e.g. `relora.r`.
    pub fn from_json_value(block: &serde_json::Value) -> Result<ReloraConfig> {
        if !block.is_object() {
            return Err(Error::Config {
                key: "relora".into(),
                problem: format!(
                    "must be an object of ReLoRA settings (r, lora_alpha, ...), got {block}"
                ),
            });
        }
        let c: ReloraConfig =
            serde_json::from_value(block.clone()).map_err(|e| bad("(block)", e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<()> {
        if self.r == 0 {
            return Err(bad("r", "must be at least 1"));
        }
        if self.reset_frequency < 2 {
            return Err(bad(
                "reset_frequency",
                format!(
                    "must be at least 2 (got {}): a reset before every step would merge \
                     adapters that never trained",
                    self.reset_frequency
                ),
            ));
        }
        if self.target_modules.is_empty() {
            return Err(bad(
                "target_modules",
                "is empty: name the linears to wrap (attention, swiglu, or q_proj, k_proj, \
                 v_proj, o_proj, w_0, w_1, w_2)",
            ));
        }
        if !self.keep_original_weights {
            return Err(bad(
                "keep_original_weights",
                "false is not supported: wgtrain keeps every wrapped base weight, frozen, \
                 under its adapters (pico-relora's true)",
            ));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(bad(
                "lora_dropout",
                format!("must be in [0, 1), got {}", self.lora_dropout),
            ));
        }
        if !(0.0..=1.0).contains(&self.prune_ratio) {
            return Err(bad(
                "prune_ratio",
                format!("must be in [0, 1], got {}", self.prune_ratio),
            ));
        }
        if !self.lora_alpha.is_finite() {
            return Err(bad("lora_alpha", "must be a number"));
        }
        for t in &self.target_modules {
            let known = LINEARS
                .iter()
                .any(|(path, group)| names_module(t, path, group));
            if !known {
                return Err(bad(
                    "target_modules",
                    format!("'{t}' is not a module: use attention, swiglu, or q_proj, k_proj, v_proj, o_proj, w_0, w_1, w_2"),
                ));
            }
        }
        if self.trainable_scaling {
            return Err(bad(
                "trainable_scaling",
                "is not supported (the scale is alpha / r)",
            ));
        }
        if self.lora_only {
            return Err(bad(
                "lora_only",
                "is not supported: the embeddings, output projection and norms stay trainable",
            ));
        }
        Ok(())
    }

    /// The LoRA scale s = alpha / r.
    pub fn scale(&self) -> f32 {
        (self.lora_alpha / self.r as f64) as f32
    }

    /// Whether the linear at `path` inside a layer (e.g. `attention.q_proj`) gets adapters.
    pub fn wraps(&self, path: &str) -> bool {
        LINEARS
            .iter()
            .find(|(p, _)| *p == path)
            .is_some_and(|(p, g)| self.target_modules.iter().any(|t| names_module(t, p, g)))
    }

    /// Whether optimizer step `t` (1-based) starts with a merge-and-reset: as in the
    /// reference, after the first `reset_frequency` steps, at t = k * reset_frequency + 1.
    pub fn resets_at(&self, t: u64) -> bool {
        let f = self.reset_frequency;
        t > f && t % f == 1 % f
    }

    /// Whether the base weight named `layers.{i}.{path}.weight` is wrapped (and so frozen).
    pub fn wraps_weight(&self, name: &str) -> bool {
        name.strip_prefix("layers.")
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(_, path)| path.strip_suffix(".weight"))
            .is_some_and(|path| self.wraps(path))
    }

    /// A and B of every wrapped linear: `{layer}.{path}.A_lora.weight` [r, in] and
    /// `{layer}.{path}.B_lora.weight` [out, r], appended to the base parameters.
    pub fn adapter_specs(&self, base: &[ParamSpec]) -> Vec<ParamSpec> {
        let mut out = Vec::new();
        for spec in base {
            let Some(module) = spec.name.strip_suffix(".weight") else {
                continue;
            };
            let Some(path) = module
                .split_once('.')
                .and_then(|(_, rest)| rest.split_once('.'))
                .map(|(_, p)| p)
            else {
                continue;
            };
            if !module.starts_with("layers.") || !self.wraps(path) {
                continue;
            }
            let (o, i) = (spec.shape[0], spec.shape[1]);
            out.push(ParamSpec {
                name: format!("{module}.A_lora.weight"),
                shape: vec![self.r, i],
            });
            out.push(ParamSpec {
                name: format!("{module}.B_lora.weight"),
                shape: vec![o, self.r],
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::ModelConfig;

    fn block(extra: serde_json::Value) -> serde_json::Value {
        let mut block = serde_json::json!({"target_modules": ["attention", "swiglu"], "reset_frequency": 2000,
            "r": 16, "lora_alpha": 32, "lora_dropout": 0.1, "keep_original_weights": true,
            "lora_only": false, "trainable_scaling": false});
        for (k, v) in extra.as_object().unwrap() {
            block[k] = v.clone();
        }
        block
    }

    fn parse(extra: serde_json::Value) -> Result<ReloraConfig> {
        ReloraConfig::from_json_value(&block(extra))
    }

    #[test]
    fn trainable_counts_match_the_spec() {
        // Spec: trainable / total, tiny 10.0 M / 11.6 M, small 40.2 M / 66.1 M.
        for (name, trainable, total) in [("tiny", 10.0, 11.6), ("small", 40.2, 66.1)] {
            let mut c = ModelConfig::preset(name).unwrap();
            c.relora = Some(parse(serde_json::json!({})).unwrap());
            let r = c.relora.clone().unwrap();
            let specs = c.param_specs();
            let all: usize = specs.iter().map(|s| s.numel()).sum();
            let frozen: usize = specs
                .iter()
                .filter(|s| s.name.starts_with("layers.") && r.wraps_weight(&s.name))
                .map(|s| s.numel())
                .sum();
            // The spec truncates to one decimal (as it does for 11.28 M -> 11.2 M).
            let tenths = |n: usize| (n as f64 / 1e5).floor() / 10.0;
            assert_eq!(tenths(all - frozen), trainable, "{name}: trainable");
            assert_eq!(tenths(all), total, "{name}: total");
        }
    }

    #[test]
    fn cadence_scale_and_errors() {
        let r = parse(serde_json::json!({})).unwrap();
        assert_eq!(r.scale(), 2.0);
        let fired: Vec<u64> = (1..=8001).filter(|&t| r.resets_at(t)).collect();
        assert_eq!(fired, vec![2001, 4001, 6001, 8001]);
        let e = parse(serde_json::json!({"r": 0})).unwrap_err().to_string();
        assert!(e.contains("relora.r"), "{e}");
        let e = parse(serde_json::json!({"target_modules": ["mlp"]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'mlp' is not a module"), "{e}");
        for (extra, key) in [
            (
                serde_json::json!({"target_modules": ["proj"]}),
                "'proj' is not a module",
            ),
            (
                serde_json::json!({"target_modules": []}),
                "relora.target_modules",
            ),
            (
                serde_json::json!({"reset_frequency": 1}),
                "relora.reset_frequency",
            ),
            (
                serde_json::json!({"keep_original_weights": false}),
                "keep_original_weights",
            ),
        ] {
            let e = parse(extra.clone()).unwrap_err().to_string();
            assert!(e.contains(key), "{extra}: {e}");
        }
        let only =
            parse(serde_json::json!({"target_modules": ["attention.v_proj", "w_2"]})).unwrap();
        let wrapped: Vec<&str> = LINEARS
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| only.wraps(p))
            .collect();
        assert_eq!(wrapped, ["attention.v_proj", "swiglu.w_2"]);
        let e = parse(serde_json::json!({"rank": 4}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `rank`"), "{e}");
        let e = ReloraConfig::from_json_value(&serde_json::json!(16))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`relora`"), "{e}");
    }

    #[test]
    fn config_json_keeps_pico_keys_and_only_non_default_extras() {
        let keys = |v: &serde_json::Value| -> Vec<String> {
            v.as_object().unwrap().keys().cloned().collect()
        };
        let plain = serde_json::to_value(parse(serde_json::json!({})).unwrap()).unwrap();
        assert_eq!(keys(&plain), keys(&block(serde_json::json!({}))));
        let quirky = parse(serde_json::json!({"quirk_merge_without_scale": true})).unwrap();
        let v = serde_json::to_value(&quirky).unwrap();
        assert_eq!(v["quirk_merge_without_scale"], true);
        assert!(v.get("quirk_zero_init_a").is_none() && v.get("prune_ratio").is_none());
        assert_eq!(ReloraConfig::from_json_value(&v).unwrap(), quirky);
    }
}
