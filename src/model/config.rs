//! The model configuration, with pico-lm's model-config keys, and the parameter list it implies.
//!
//! `config.json` in a checkpoint holds exactly these keys (as pico writes them), plus, for a
//! ReLoRA checkpoint, a `relora` object (pico's keys; see [`ReloraConfig`]). Other keys are
//! ignored when reading: pico's Hugging Face `config.json` carries its bookkeeping
//! (`architectures`, `auto_map`, `torch_dtype`, `transformers_version`, ...) and `batch_size`.
//! Its `model_type` is checked: a config of another model type is refused, not read as a pico
//! one.

use super::relora::ReloraConfig;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

pub use super::params::ParamSpec;

/// The keys this config understands; anything else in a config.json is ignored.
const KNOWN_KEYS: [&str; 10] = [
    "d_model",
    "n_layers",
    "vocab_size",
    "attention_n_heads",
    "attention_n_kv_heads",
    "activation_hidden_dim",
    "max_seq_len",
    "norm_eps",
    "position_emb_theta",
    "relora",
];

/// The `model_type` values of pico's models (pico-train's `model.model_type`, and what its
/// Hugging Face `config.json` carries); a config.json with any other `model_type` is refused.
pub const PICO_MODEL_TYPES: [&str; 2] = ["pico_decoder", "pico_relora"];

/// The sizes of the study, in the order of [`ModelConfig::preset`]'s table.
pub const PRESETS: [&str; 4] = ["tiny", "small", "medium", "large"];

fn default_norm_eps() -> f64 {
    1e-6
}

fn default_theta() -> f64 {
    10000.0
}

/// A pico-decoder model configuration (pico-lm's model-config keys, same names and meaning).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub d_model: usize,
    pub n_layers: usize,
    pub vocab_size: usize,
    pub attention_n_heads: usize,
    pub attention_n_kv_heads: usize,
    /// Hidden width of the SwiGLU FFN.
    pub activation_hidden_dim: usize,
    pub max_seq_len: usize,
    /// RMSNorm epsilon (default 1e-6).
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    /// RoPE base (default 10000).
    #[serde(default = "default_theta")]
    pub position_emb_theta: f64,
    /// A ReLoRA model's `relora` block (`r`, `lora_alpha`, ...), parsed and validated once
    /// when the config is read ([`ReloraConfig::from_json_value`]).
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub relora: Option<ReloraConfig>,
}

impl ModelConfig {
    /// One of the sizes of the study: `tiny`, `small`, `medium` or `large` (vocab 50304,
    /// max_seq_len 2048, 12 layers, 12 heads / 4 kv heads, hidden = 4 d_model).
    pub fn preset(name: &str) -> Result<Self> {
        let d_model = match name {
            "tiny" => 96,
            "small" => 384,
            "medium" => 768,
            "large" => 1536,
            _ => {
                return Err(Error::Config {
                    key: "preset".into(),
                    problem: format!(
                        "'{name}' is not a model size: choose one of {}",
                        PRESETS.join(", ")
                    ),
                })
            }
        };
        Ok(ModelConfig {
            d_model,
            n_layers: 12,
            vocab_size: 50304,
            attention_n_heads: 12,
            attention_n_kv_heads: 4,
            activation_hidden_dim: 4 * d_model,
            max_seq_len: 2048,
            norm_eps: default_norm_eps(),
            position_emb_theta: default_theta(),
            relora: None,
        })
    }

    /// Parse a config.json, ignoring keys other than the model keys and `relora`, and validate it.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::Config {
            key: "config.json".into(),
            problem: format!("is not valid JSON: {e}"),
        })?;
        let Some(map) = value.as_object() else {
            return Err(Error::Config {
                key: "config.json".into(),
                problem: "must be a JSON object of model keys (d_model, n_layers, ...)".into(),
            });
        };
        let ignored: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !KNOWN_KEYS.contains(k))
            .collect();
        if !ignored.is_empty() {
            log::debug!("config.json: ignoring keys {}", ignored.join(", "));
        }
        check_model_type(map)?;
        let relora = map.get("relora").map(ReloraConfig::from_json_value);
        let mut config: ModelConfig = serde_json::from_value(value).map_err(|e| Error::Config {
            key: "config.json".into(),
            problem: format!("does not describe a model: {e}"),
        })?;
        config.relora = relora.transpose()?;
        config.validate()?;
        Ok(config)
    }

    /// The config.json text (pretty-printed, pico's key names).
    pub fn to_json_string(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a config always serializes");
        s.push('\n');
        s
    }

    /// Reject values no model can have; the error names the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, problem: String| {
            Err(Error::Config {
                key: key.into(),
                problem,
            })
        };
        for (key, value) in [
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("vocab_size", self.vocab_size),
            ("attention_n_heads", self.attention_n_heads),
            ("attention_n_kv_heads", self.attention_n_kv_heads),
            ("activation_hidden_dim", self.activation_hidden_dim),
            ("max_seq_len", self.max_seq_len),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1 (got 0)".into());
            }
        }
        if !self.d_model.is_multiple_of(self.attention_n_heads) {
            return bad(
                "d_model",
                format!(
                    "({}) must be divisible by attention_n_heads ({}): head_dim = d_model / n_heads",
                    self.d_model, self.attention_n_heads
                ),
            );
        }
        if !self
            .attention_n_heads
            .is_multiple_of(self.attention_n_kv_heads)
        {
            return bad(
                "attention_n_kv_heads",
                format!(
                    "({}) must divide attention_n_heads ({}): each kv head serves a whole group of query heads",
                    self.attention_n_kv_heads, self.attention_n_heads
                ),
            );
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(
                "d_model",
                format!(
                    "/ attention_n_heads = {} / {} = head_dim {} must be even: RoPE rotates pairs of dims",
                    self.d_model,
                    self.attention_n_heads,
                    self.head_dim()
                ),
            );
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return bad(
                "norm_eps",
                format!("must be a finite number > 0 (got {})", self.norm_eps),
            );
        }
        if !(self.position_emb_theta.is_finite() && self.position_emb_theta > 0.0) {
            return bad(
                "position_emb_theta",
                format!(
                    "must be a finite number > 0 (got {})",
                    self.position_emb_theta
                ),
            );
        }
        if let Some(r) = &self.relora {
            r.validate()?;
        }
        // Sizes must be addressable on this target (wasm32 has a 32-bit usize).
        let mut total: usize = 0;
        for spec in self.specs_unchecked() {
            let n = spec
                .shape
                .iter()
                .try_fold(1usize, |a, &b| a.checked_mul(b))
                .and_then(|n| n.checked_mul(4));
            match n.and_then(|n| total.checked_add(n)) {
                Some(t) => total = t,
                None => {
                    return bad(
                        "d_model",
                        format!(
                            "and the other sizes make {} too large to address on this target",
                            spec.name
                        ),
                    )
                }
            }
        }
        Ok(())
    }

    /// d_model / attention_n_heads.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.attention_n_heads
    }

    /// Every parameter in pico's state-dict naming, in a fixed order: the input embedding,
    /// then per layer the attention norm, q, k, v, o, the FFN norm, w_0, w_1, w_2; then the
    /// final norm and the output projection.
    /// A ReLoRA config (a `relora` block) adds every wrapped linear's `A_lora` and `B_lora`
    /// after these, in the same order.
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        let mut specs = self.specs_unchecked();
        if let Some(r) = &self.relora {
            let adapters = r.adapter_specs(&specs);
            specs.extend(adapters);
        }
        specs
    }

    fn specs_unchecked(&self) -> Vec<ParamSpec> {
        let d = self.d_model;
        let v = self.vocab_size;
        let hd = if self.attention_n_heads == 0 {
            0
        } else {
            self.head_dim()
        };
        let q = self.attention_n_heads.saturating_mul(hd);
        let kv = self.attention_n_kv_heads.saturating_mul(hd);
        let hidden = self.activation_hidden_dim;
        let mut specs = Vec::with_capacity(3 + 9 * self.n_layers);
        specs.push(ParamSpec::new("embedding_proj.weight", &[v, d]));
        for i in 0..self.n_layers {
            let l = format!("layers.{i}");
            specs.push(ParamSpec::new(format!("{l}.attention_norm.weight"), &[d]));
            specs.push(ParamSpec::new(
                format!("{l}.attention.q_proj.weight"),
                &[q, d],
            ));
            specs.push(ParamSpec::new(
                format!("{l}.attention.k_proj.weight"),
                &[kv, d],
            ));
            specs.push(ParamSpec::new(
                format!("{l}.attention.v_proj.weight"),
                &[kv, d],
            ));
            specs.push(ParamSpec::new(
                format!("{l}.attention.o_proj.weight"),
                &[d, q],
            ));
            specs.push(ParamSpec::new(format!("{l}.swiglu_norm.weight"), &[d]));
            specs.push(ParamSpec::new(
                format!("{l}.swiglu.w_0.weight"),
                &[hidden, d],
            ));
            specs.push(ParamSpec::new(
                format!("{l}.swiglu.w_1.weight"),
                &[hidden, d],
            ));
            specs.push(ParamSpec::new(
                format!("{l}.swiglu.w_2.weight"),
                &[d, hidden],
            ));
        }
        specs.push(ParamSpec::new("output_norm.weight", &[d]));
        specs.push(ParamSpec::new("de_embedding_proj.weight", &[v, d]));
        specs
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.param_specs().iter().map(ParamSpec::numel).sum()
    }
}

/// A config.json's `model_type`, when it has one, must be a pico one, and `pico_relora` needs
/// the `relora` block (without it the model would silently be a plain decoder).
fn check_model_type(map: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let Some(value) = map.get("model_type") else {
        return Ok(());
    };
    let bad = |problem: String| {
        Err(Error::Config {
            key: "model_type".into(),
            problem,
        })
    };
    let Some(t) = value.as_str() else {
        return bad(format!(
            "must be a string, one of {} (got {value})",
            PICO_MODEL_TYPES.join(", ")
        ));
    };
    if !PICO_MODEL_TYPES.contains(&t) {
        return bad(format!(
            "'{t}' is not a pico model: wgtrain reads {} checkpoints (pico-train's Hugging Face \
             layout or its own), not other architectures",
            PICO_MODEL_TYPES.join(" and ")
        ));
    }
    if t == "pico_relora" && !map.contains_key("relora") {
        return bad(
            "is pico_relora but the config has no `relora` block (r, lora_alpha, \
             target_modules, ...): the adapters' settings are missing"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_text(c: &ModelConfig) -> String {
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn presets_match_the_spec_table() {
        // (size, d_model, hidden, head_dim, params in millions as the spec rounds them)
        for (name, d, hidden, hd, millions) in [
            ("tiny", 96, 384, 8, 11.2),
            ("small", 384, 1536, 32, 64.6),
            ("medium", 768, 3072, 64, 181.0),
            ("large", 1536, 6144, 128, 570.0),
        ] {
            let c = ModelConfig::preset(name).unwrap();
            c.validate().unwrap();
            assert_eq!(
                (c.d_model, c.activation_hidden_dim, c.head_dim()),
                (d, hidden, hd)
            );
            assert_eq!((c.n_layers, c.attention_n_heads), (12, 12));
            assert_eq!((c.attention_n_kv_heads, c.vocab_size), (4, 50304));
            assert_eq!((c.max_seq_len, c.norm_eps), (2048, 1e-6));
            let m = c.num_params() as f64 / 1e6;
            // The table truncates or rounds to its last digit (tiny is 11.28 M, listed 11.2 M).
            let unit = if millions < 100.0 { 0.1 } else { 1.0 };
            assert!(
                m >= millions - unit / 2.0 && m < millions + unit,
                "{name}: {m} M params, the spec says {millions} M"
            );
        }
        assert_eq!(
            ModelConfig::preset("tiny").unwrap().num_params(),
            11_282_784
        );
        assert_eq!(
            ModelConfig::preset("small").unwrap().num_params(),
            64_595_328
        );
        // "at tiny size 9.7 M of the 11.2 M parameters are the two vocab matrices"
        assert_eq!(2 * 50304 * 96, 9_658_368);
    }

    #[test]
    fn unknown_preset_lists_the_valid_names() {
        let e = ModelConfig::preset("huge").unwrap_err().to_string();
        assert!(e.contains("'huge'"), "{e}");
        assert!(e.contains("tiny, small, medium, large"), "{e}");
    }

    #[test]
    fn param_specs_names_shapes_and_order() {
        let c = ModelConfig {
            d_model: 32,
            n_layers: 2,
            vocab_size: 97,
            attention_n_heads: 4,
            attention_n_kv_heads: 2,
            activation_hidden_dim: 64,
            max_seq_len: 16,
            norm_eps: 1e-6,
            position_emb_theta: 10000.0,
            relora: None,
        };
        let specs = c.param_specs();
        assert_eq!(specs.len(), 3 + 9 * 2);
        let want: [(&str, &[usize]); 12] = [
            ("embedding_proj.weight", &[97, 32]),
            ("layers.0.attention_norm.weight", &[32]),
            ("layers.0.attention.q_proj.weight", &[32, 32]),
            ("layers.0.attention.k_proj.weight", &[16, 32]),
            ("layers.0.attention.v_proj.weight", &[16, 32]),
            ("layers.0.attention.o_proj.weight", &[32, 32]),
            ("layers.0.swiglu_norm.weight", &[32]),
            ("layers.0.swiglu.w_0.weight", &[64, 32]),
            ("layers.0.swiglu.w_1.weight", &[64, 32]),
            ("layers.0.swiglu.w_2.weight", &[32, 64]),
            ("layers.1.attention_norm.weight", &[32]),
            ("layers.1.attention.q_proj.weight", &[32, 32]),
        ];
        for (spec, (name, shape)) in specs.iter().zip(want) {
            assert_eq!((spec.name.as_str(), spec.shape.as_slice()), (name, shape));
        }
        let tail: Vec<_> = specs[specs.len() - 2..]
            .iter()
            .map(|s| (s.name.as_str(), s.shape.clone()))
            .collect();
        assert_eq!(
            tail,
            [
                ("output_norm.weight", vec![32]),
                ("de_embedding_proj.weight", vec![97, 32])
            ]
        );
        assert_eq!(
            c.num_params(),
            2 * 97 * 32 + 32 + 2 * (2 * 32 + 2 * 32 * 32 + 2 * 16 * 32 + 3 * 64 * 32)
        );
    }

    #[test]
    fn json_round_trip_and_defaults() {
        let c = ModelConfig::preset("small").unwrap();
        let text = c.to_json_string();
        assert!(!text.contains("relora"), "{text}");
        assert_eq!(ModelConfig::from_json_str(&text).unwrap(), c);

        // pico's key names exactly
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let mut want: Vec<_> = KNOWN_KEYS[..9].iter().map(|k| k.to_string()).collect();
        want.sort();
        assert_eq!(keys, want);

        // norm_eps and theta default; unknown keys (a Hugging Face config's) are ignored
        let c2 = ModelConfig::from_json_str(
            r#"{"d_model": 96, "n_layers": 12, "vocab_size": 50304, "attention_n_heads": 12,
                "attention_n_kv_heads": 4, "activation_hidden_dim": 384, "max_seq_len": 2048,
                "model_type": "pico_decoder", "architectures": ["PicoDecoderHF"]}"#,
        )
        .unwrap();
        assert_eq!(c2, ModelConfig::preset("tiny").unwrap());
    }

    #[test]
    fn hugging_face_bookkeeping_is_ignored_and_model_type_checked() {
        let keys = r#""d_model": 96, "n_layers": 12, "vocab_size": 50304, "attention_n_heads": 12,
            "attention_n_kv_heads": 4, "activation_hidden_dim": 384, "max_seq_len": 2048"#;
        let hf = format!(
            r#"{{{keys}, "model_type": "pico_decoder", "architectures": ["PicoDecoderHF"],
                "auto_map": {{"AutoConfig": "pico_decoder.PicoDecoderHFConfig"}},
                "torch_dtype": "float32", "transformers_version": "4.48.3", "batch_size": 1024}}"#
        );
        assert_eq!(
            ModelConfig::from_json_str(&hf).unwrap(),
            ModelConfig::preset("tiny").unwrap()
        );
        for (model_type, want) in [
            (r#""llama""#, "'llama' is not a pico model"),
            ("3", "must be a string"),
            (r#""pico_relora""#, "no `relora` block"),
        ] {
            let e =
                ModelConfig::from_json_str(&format!(r#"{{{keys}, "model_type": {model_type}}}"#))
                    .unwrap_err()
                    .to_string();
            assert!(e.contains("`model_type`") && e.contains(want), "{e}");
        }
        let relora = format!(r#"{{{keys}, "model_type": "pico_relora", "relora": {{"r": 4}}}}"#);
        assert_eq!(
            ModelConfig::from_json_str(&relora)
                .unwrap()
                .relora
                .unwrap()
                .r,
            4
        );
    }

    #[test]
    fn relora_block_is_preserved() {
        let text = r#"{"d_model": 32, "n_layers": 2, "vocab_size": 97, "attention_n_heads": 4,
            "attention_n_kv_heads": 2, "activation_hidden_dim": 64, "max_seq_len": 16,
            "norm_eps": 1e-6, "position_emb_theta": 10000.0, "batch_size": 1024,
            "relora": {"target_modules": ["q_proj", "w_2"], "reset_frequency": 2000, "r": 16,
                       "lora_alpha": 32, "lora_dropout": 0.1, "keep_original_weights": true,
                       "lora_only": false, "trainable_scaling": false}}"#;
        let c = ModelConfig::from_json_str(text).unwrap();
        let r = c.relora.as_ref().unwrap();
        assert_eq!(r.r, 16);
        assert_eq!(r.target_modules[1], "w_2");
        let again = ModelConfig::from_json_str(&c.to_json_string()).unwrap();
        assert_eq!(again, c);
        assert!(!c.to_json_string().contains("batch_size"));
    }

    #[test]
    fn bad_json_is_an_error_not_a_panic() {
        for text in [
            "",
            "{",
            "[1, 2]",
            r#"{"d_model": 32}"#,
            r#"{"d_model": -1}"#,
        ] {
            let e = ModelConfig::from_json_str(text).unwrap_err().to_string();
            assert!(e.contains("config.json"), "{text:?}: {e}");
        }
        let e = ModelConfig::from_json_str(r#"{"d_model": 32}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("n_layers"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let ok = ModelConfig::preset("tiny").unwrap();
        for key in [
            "d_model",
            "n_layers",
            "vocab_size",
            "attention_n_heads",
            "attention_n_kv_heads",
            "activation_hidden_dim",
            "max_seq_len",
        ] {
            let mut v = serde_json::to_value(&ok).unwrap();
            v[key] = 0.into();
            let c: ModelConfig = serde_json::from_value(v).unwrap();
            let e = err_text(&c);
            assert!(
                e.contains(&format!("`{key}`")) && e.contains("got 0"),
                "{e}"
            );
        }

        let mut c = ok.clone();
        c.d_model = 100; // 100 / 12
        let e = err_text(&c);
        assert!(
            e.contains("`d_model`") && e.contains("divisible by attention_n_heads"),
            "{e}"
        );

        let mut c = ok.clone();
        c.attention_n_kv_heads = 5;
        let e = err_text(&c);
        assert!(
            e.contains("`attention_n_kv_heads`") && e.contains("(5)"),
            "{e}"
        );

        let mut c = ok.clone();
        c.d_model = 36; // head_dim 3
        let e = err_text(&c);
        assert!(e.contains("head_dim 3 must be even"), "{e}");

        for eps in [0.0, -1e-6, f64::NAN, f64::INFINITY] {
            let mut c = ok.clone();
            c.norm_eps = eps;
            assert!(err_text(&c).contains("`norm_eps`"));
        }
        let mut c = ok.clone();
        c.position_emb_theta = 0.0;
        assert!(err_text(&c).contains("`position_emb_theta`"));

        let mut c = ok.clone();
        c.relora = Some(ReloraConfig::from_json_value(&serde_json::json!({"r": 4})).unwrap());
        c.relora.as_mut().unwrap().r = 0;
        assert!(err_text(&c).contains("`relora.r`"));
        let e = ModelConfig::from_json_str(
            &ok.to_json_string()
                .replace("\"max_seq_len\"", "\"relora\": 16, \"max_seq_len\""),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`relora`"), "{e}");

        let mut c = ok;
        c.vocab_size = usize::MAX / 2;
        assert!(err_text(&c).contains("too large"));
    }
}
