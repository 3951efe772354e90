//! A checkpoint built in memory, for targets without a file system.

use super::safetensors_write::{checked_views, f32_tensors, serialize_to_vec};
use super::{CONFIG_FILE, MODEL_FILE};
use crate::error::Result;
use crate::model::config::ModelConfig;
use std::path::Path;

/// A checkpoint's two files in memory, `(file name, bytes)`: `config.json` and
/// `model.safetensors` (f32), exactly as [`save`](fn@super::save) writes them. For targets
/// without a file system (the browser demo packs them with [`crate::model::archive::tar`]).
pub fn checkpoint_files(
    config: &ModelConfig,
    tensors: &[(&str, &[usize], &[f32])],
) -> Result<Vec<(&'static str, Vec<u8>)>> {
    config.validate()?;
    let shown = Path::new(MODEL_FILE);
    let views = checked_views(shown, &f32_tensors(tensors))?;
    let weights = serialize_to_vec(&views, shown)?;
    Ok(vec![
        (CONFIG_FILE, config.to_json_string().into_bytes()),
        (MODEL_FILE, weights),
    ])
}
