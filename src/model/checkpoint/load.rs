//! Loading a pico checkpoint directory (its config.json validated, its weights converted to
//! f32), and checking its tensors against the parameters of a model.

use super::durable::resolve_for_read;
use super::host_tensor::HostData;
use super::safetensors_read::{decode, is_float, parse, read_bytes};
use super::{file_err, io_err, CONFIG_FILE, HF_PREFIX, MODEL_FILE};
use crate::error::{Error, Result};
use crate::model::config::{ModelConfig, ParamSpec};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One weight tensor of a checkpoint, converted to f32.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorData {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A loaded checkpoint: its config and every tensor of its model.safetensors by name.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The directory it was read from (`.NAME.previous` after an interrupted save).
    pub path: PathBuf,
    pub config: ModelConfig,
    pub tensors: BTreeMap<String, TensorData>,
}

/// Load a checkpoint directory: its config.json (validated) and every tensor of its
/// model.safetensors, converted to f32. Integer tensors are an error (weights are floats).
/// Tensor names may all carry pico's Hugging Face prefix `pico_decoder.` (its
/// `PicoDecoderHF` wrapper's state dict) or none of them may: the prefix is stripped, so
/// [`Checkpoint::tensors`] always holds pico's own names; a mix is an error.
/// See [`Checkpoint::check_against`] (or [`load_checked`]) to match it to a model.
pub fn load(dir: &Path) -> Result<Checkpoint> {
    let src = resolve_for_read(dir)?;
    let config = read_config(&src.join(CONFIG_FILE))?;
    let model_path = src.join(MODEL_FILE);
    let bytes = read_bytes(
        &model_path,
        ": a checkpoint directory holds config.json and model.safetensors (the weights)",
    )?;
    let st = parse(&model_path, &bytes)?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.iter() {
        if !is_float(view.dtype()) {
            return Err(file_err(
                &model_path,
                Some(name),
                format!(
                    "unsupported dtype {:?} for a weight: weights must be F32, BF16 or F16 \
                     (or F64)",
                    view.dtype()
                ),
            ));
        }
        let HostData::F32(data) = decode(&model_path, name, &view)? else {
            unreachable!("float dtypes decode to f32")
        };
        tensors.insert(
            name.to_string(),
            TensorData {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    let tensors = strip_hf_prefix(&model_path, tensors)?;
    Ok(Checkpoint {
        path: src,
        config,
        tensors,
    })
}

/// [`load`], then check the tensors against the parameters of the checkpoint's own config
/// (a plain pico-decoder; a ReLoRA checkpoint also holds adapters: check it with its specs).
pub fn load_checked(dir: &Path) -> Result<Checkpoint> {
    let ckpt = load(dir)?;
    ckpt.check_against(&ckpt.config.param_specs())?;
    Ok(ckpt)
}

impl Checkpoint {
    /// Check that the checkpoint holds exactly the tensors of `specs`, with their shapes.
    /// The error names the first offending tensor and counts (and lists) the others.
    pub fn check_against(&self, specs: &[ParamSpec]) -> Result<()> {
        let mut problems: Vec<(String, String)> = Vec::new();
        let expected: HashSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        for spec in specs {
            match self.tensors.get(&spec.name) {
                None => problems.push((
                    spec.name.clone(),
                    format!(
                        "missing: the model needs it with shape {:?}; the checkpoint does not \
                         match its config.json (or the model you asked for)",
                        spec.shape
                    ),
                )),
                Some(t) if t.shape != spec.shape => problems.push((
                    spec.name.clone(),
                    format!(
                        "wrong shape: expected {:?}, got {:?} (linear weights are [out, in]); \
                         the checkpoint is for another model size or layout",
                        spec.shape, t.shape
                    ),
                )),
                Some(_) => {}
            }
        }
        for (name, t) in &self.tensors {
            if !expected.contains(name.as_str()) {
                problems.push((
                    name.clone(),
                    format!(
                        "unexpected tensor (shape {:?}): not a parameter of this model; is it a \
                         checkpoint of another model (e.g. a ReLoRA one with adapters)?",
                        t.shape
                    ),
                ));
            }
        }
        let Some((name, problem)) = problems.first() else {
            return Ok(());
        };
        let mut problem = problem.clone();
        if problems.len() > 1 {
            let others: Vec<&str> = problems[1..].iter().map(|(n, _)| n.as_str()).collect();
            let shown = others.len().min(5);
            problem.push_str(&format!(
                " ({} more problem{}: {}{})",
                others.len(),
                if others.len() == 1 { "" } else { "s" },
                others[..shown].join(", "),
                if others.len() > shown { ", ..." } else { "" }
            ));
        }
        Err(file_err(&self.path.join(MODEL_FILE), Some(name), problem))
    }

    /// One tensor by name; the error names it.
    pub fn tensor(&self, name: &str) -> Result<&TensorData> {
        self.tensors.get(name).ok_or_else(|| {
            file_err(
                &self.path.join(MODEL_FILE),
                Some(name),
                "missing from the checkpoint",
            )
        })
    }
}

/// The tensors under pico's own names: `pico_decoder.` removed when every name has it; names
/// without it are kept as they are; a file with both kinds is refused (names one of each).
fn strip_hf_prefix(
    path: &Path,
    tensors: BTreeMap<String, TensorData>,
) -> Result<BTreeMap<String, TensorData>> {
    let prefixed = tensors.keys().filter(|n| n.starts_with(HF_PREFIX)).count();
    if prefixed == 0 {
        return Ok(tensors);
    }
    if prefixed < tensors.len() {
        let with = tensors.keys().find(|n| n.starts_with(HF_PREFIX));
        let without = tensors.keys().find(|n| !n.starts_with(HF_PREFIX));
        return Err(file_err(
            path,
            without.map(String::as_str),
            format!(
                "has no `{HF_PREFIX}` prefix, but {prefixed} of the {} tensors have it (e.g. \
                 '{}'): the names must all carry pico's Hugging Face prefix or none of them; \
                 this file mixes two state dicts",
                tensors.len(),
                with.map(String::as_str).unwrap_or_default()
            ),
        ));
    }
    Ok(tensors
        .into_iter()
        .map(|(name, t)| (name[HF_PREFIX.len()..].to_string(), t))
        .collect())
}

/// A checkpoint's config.json, validated; errors name the file.
fn read_config(path: &Path) -> Result<ModelConfig> {
    let text =
        match fs::read(path) {
            Ok(b) => String::from_utf8(b).map_err(|_| file_err(path, None, "is not UTF-8 text"))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(file_err(
                path,
                None,
                "file not found: a checkpoint directory holds config.json (the model keys) and \
                 model.safetensors (the weights); is this directory a checkpoint?",
            )),
            Err(e) => return Err(io_err(path, "read the file", e)),
        };
    ModelConfig::from_json_str(&text).map_err(|e| match e {
        Error::Config { key, problem } if key == CONFIG_FILE => file_err(path, None, problem),
        Error::Config { key, problem } => file_err(path, None, format!("`{key}` {problem}")),
        other => other,
    })
}
