//! Writing pico-train's Hugging Face checkpoint layout (`wgtrain export --hf`): what
//! pico-train's `save_pretrained` of its `PicoDecoderHF` wrapper leaves in a step directory.
//!
//! - `model.safetensors`: f32, every parameter under `pico_decoder.` + its pico name (the
//!   wrapper holds the model as its attribute `pico_decoder`);
//! - `config.json`: pico's model fields (its `ModelConfig` dataclass: `d_model`, `n_layers`,
//!   `vocab_size`, `batch_size`, `max_seq_len`, `attention_n_heads`, `attention_n_kv_heads`,
//!   `activation_hidden_dim`, `norm_eps`, `position_emb_theta`) and the Hugging Face keys
//!   (`model_type: "pico_decoder"`, `architectures: ["PicoDecoderHF"]`, the `auto_map` pico's
//!   `register_for_auto_class` calls produce, `torch_dtype`), keys sorted as Hugging Face
//!   writes them;
//! - the tokenizer: `tokenizer.json` (and `tokenizer_config.json`, `special_tokens_map.json`
//!   when they lie beside it).
//!
//! The model code itself (`pico_decoder.py`, which `auto_map` names) is pico-train's and is
//! not written: copy it into the directory to load it with
//! `AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)`.
//!
//! A ReLoRA checkpoint is merged first (`W + s·B·A`, [`merge_checkpoint`]): the export is the
//! plain pico-decoder that computes the same function. The directory is written atomically
//! ([`replace_dir_atomically`]).

use super::durable::replace_dir_atomically;
use super::load::Checkpoint;
use super::safetensors_write::{checked_views, f32_tensors, serialize_to_file};
use super::{file_err, io_err, CONFIG_FILE, HF_PREFIX, MODEL_FILE};
use crate::error::Result;
use crate::model::config::ModelConfig;
use crate::model::merge::merge_checkpoint;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};

/// The tokenizer file an export carries.
const TOKENIZER_FILE: &str = "tokenizer.json";
/// Tokenizer files copied along with `tokenizer.json` when they lie beside it.
const TOKENIZER_COMPANIONS: [&str; 2] = ["tokenizer_config.json", "special_tokens_map.json"];
/// pico's `ModelConfig.batch_size` default. Its attention module reads the key but nothing
/// computes with it; wgtrain's model config has no batch size, so the export writes pico's.
const PICO_BATCH_SIZE: usize = 1024;

/// What [`export_hf`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct HfExport {
    /// Number of tensors in `model.safetensors`.
    pub tensors: usize,
    /// `Some(s)` when the checkpoint was a ReLoRA one whose adapters were merged as
    /// `W + s·B·A`.
    pub merged_scale: Option<f32>,
    /// The tokenizer.json copied, if one was found.
    pub tokenizer: Option<PathBuf>,
    /// Every file of the export, by name.
    pub files: Vec<String>,
}

/// The tokenizer of a checkpoint directory: its own `tokenizer.json`, else the one of the run
/// it belongs to (`RUN/checkpoints/step_N` -> `RUN/tokenizer.json`, where `wgtrain train`
/// keeps it).
pub fn find_tokenizer(checkpoint_dir: &Path) -> Option<PathBuf> {
    let own = checkpoint_dir.join(TOKENIZER_FILE);
    if own.is_file() {
        return Some(own);
    }
    let parent = checkpoint_dir.parent()?;
    if parent.file_name()? != "checkpoints" {
        return None;
    }
    let run = parent.parent()?.join(TOKENIZER_FILE);
    run.is_file().then_some(run)
}

/// pico's Hugging Face `config.json` for a plain model config (its `relora` block, if any,
/// is not written: [`export_hf`] merges ReLoRA checkpoints first).
pub fn hf_config_json(config: &ModelConfig) -> String {
    // serde_json's map keeps keys sorted, as Hugging Face's `to_json_string` writes them.
    let value = json!({
        "model_type": "pico_decoder",
        "architectures": ["PicoDecoderHF"],
        "auto_map": {
            "AutoConfig": "pico_decoder.PicoDecoderHFConfig",
            "AutoModel": "pico_decoder.PicoDecoderHF",
            "AutoModelForCausalLM": "pico_decoder.PicoDecoderHF",
        },
        "torch_dtype": "float32",
        "d_model": config.d_model,
        "n_layers": config.n_layers,
        "vocab_size": config.vocab_size,
        "batch_size": PICO_BATCH_SIZE,
        "max_seq_len": config.max_seq_len,
        "attention_n_heads": config.attention_n_heads,
        "attention_n_kv_heads": config.attention_n_kv_heads,
        "activation_hidden_dim": config.activation_hidden_dim,
        "norm_eps": config.norm_eps,
        "position_emb_theta": config.position_emb_theta,
    });
    let mut s = serde_json::to_string_pretty(&value).expect("a config always serializes");
    s.push('\n');
    s
}

/// Write `ckpt` to the directory `out` in pico-train's Hugging Face layout (see the module
/// docs), with the tokenizer at `tokenizer` (default: [`find_tokenizer`] of the checkpoint;
/// none found, none written). A ReLoRA checkpoint is merged first. Nothing is written unless
/// everything checks out; `out` is replaced atomically, and must not be the checkpoint itself.
pub fn export_hf(ckpt: &Checkpoint, out: &Path, tokenizer: Option<&Path>) -> Result<HfExport> {
    let (config, tensors, merged_scale) = match &ckpt.config.relora {
        Some(r) => {
            let (plain, tensors) = merge_checkpoint(ckpt)?;
            (plain, tensors, Some(r.scale()))
        }
        None => {
            let specs = ckpt.config.param_specs();
            ckpt.check_against(&specs)?;
            let tensors = specs
                .into_iter()
                .map(|s| Ok((s.name.clone(), ckpt.tensor(&s.name)?.clone())))
                .collect::<Result<Vec<_>>>()?;
            (ckpt.config.clone(), tensors, None)
        }
    };
    config.validate()?;
    if same_dir(out, &ckpt.path) {
        return Err(file_err(
            out,
            None,
            "is the checkpoint being exported: give --out another directory (the export \
             replaces the whole directory)",
        ));
    }

    let names: Vec<String> = tensors
        .iter()
        .map(|(n, _)| format!("{HF_PREFIX}{n}"))
        .collect();
    let list: Vec<(&str, &[usize], &[f32])> = names
        .iter()
        .zip(&tensors)
        .map(|(n, (_, t))| (n.as_str(), t.shape.as_slice(), t.data.as_slice()))
        .collect();
    let model_path = out.join(MODEL_FILE);
    let views = checked_views(&model_path, &f32_tensors(&list))?;
    let config_text = hf_config_json(&config);

    let tokenizer = match tokenizer {
        Some(p) => Some(p.to_path_buf()),
        None => find_tokenizer(&ckpt.path),
    };
    let mut extra: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(path) = &tokenizer {
        extra.push((TOKENIZER_FILE.into(), read_json_file(path)?));
        let dir = path.parent().unwrap_or(Path::new("."));
        for name in TOKENIZER_COMPANIONS {
            let p = dir.join(name);
            if p.is_file() {
                extra.push((name.into(), read_json_file(&p)?));
            }
        }
    }

    replace_dir_atomically(out, |staging| {
        fs::write(staging.join(CONFIG_FILE), config_text.as_bytes())
            .map_err(|e| io_err(&out.join(CONFIG_FILE), "write the file", e))?;
        serialize_to_file(&staging.join(MODEL_FILE), &views, &model_path)?;
        for (name, bytes) in &extra {
            fs::write(staging.join(name), bytes)
                .map_err(|e| io_err(&out.join(name), "write the file", e))?;
        }
        Ok(())
    })?;

    let mut files = vec![CONFIG_FILE.to_string(), MODEL_FILE.to_string()];
    files.extend(extra.into_iter().map(|(n, _)| n));
    Ok(HfExport {
        tensors: list.len(),
        merged_scale,
        tokenizer,
        files,
    })
}

/// A tokenizer file's bytes, checked to be JSON (a tokenizer file that is not is refused
/// before anything is written).
fn read_json_file(path: &Path) -> Result<Vec<u8>> {
    let bytes = fs::read(path).map_err(|e| io_err(path, "read the tokenizer file", e))?;
    serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| {
        file_err(
            path,
            None,
            format!("is not a JSON file ({e}): give a Hugging Face tokenizer.json"),
        )
    })?;
    Ok(bytes)
}

/// Whether `a` and `b` name the same existing directory.
fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
