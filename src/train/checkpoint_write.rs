//! A training checkpoint landing on disk: every file written into a staging directory that
//! replaces `checkpoints/step_N` in one rename, then the `latest` pointer moved by another,
//! so a process killed at any moment leaves the previous checkpoint whole (tests/crash_safety.rs).

use super::run_setup::{OPTIMIZER_FILE, TOKENIZER_FILE, TRAINER_STATE_FILE};
use crate::error::{Error, Result};
use crate::model::checkpoint::{self, write_safetensors, HostSlice};
use std::path::{Path, PathBuf};

/// Named tensors as read back from the device: (name, shape, values).
pub(super) type HostTensors = [(String, Vec<usize>, Vec<f32>)];

/// Everything a training checkpoint holds.
pub(super) struct CheckpointFiles<'a> {
    pub params: &'a HostTensors,
    pub moments: &'a HostTensors,
    pub config_json: &'a str,
    pub trainer_state_json: &'a str,
    /// The run's tokenizer file, copied in when there is one.
    pub tokenizer: Option<&'a Path>,
}

/// The directory name of step `step`'s checkpoint.
pub(super) fn step_dir_name(step: u64) -> String {
    format!("step_{step:06}")
}

/// Write `files` as `ckpt_root/step_{step:06}` and point `ckpt_root/latest` at it.
pub(super) fn write_checkpoint(
    ckpt_root: &Path,
    step: u64,
    files: &CheckpointFiles,
) -> Result<PathBuf> {
    let dir = ckpt_root.join(step_dir_name(step));
    checkpoint::replace_dir_atomically(&dir, |staging| {
        let w = |name: &str, bytes: &[u8]| {
            std::fs::write(staging.join(name), bytes)
                .map_err(|e| Error::Invalid(format!("writing {name}: {e}")))
        };
        w(checkpoint::CONFIG_FILE, files.config_json.as_bytes())?;
        write_tensors(&staging.join(checkpoint::MODEL_FILE), files.params)?;
        write_tensors(&staging.join(OPTIMIZER_FILE), files.moments)?;
        if let Some(src) = files.tokenizer {
            std::fs::copy(src, staging.join(TOKENIZER_FILE))
                .map_err(|e| Error::Invalid(format!("copying the tokenizer: {e}")))?;
        }
        // Last: a checkpoint directory with its trainer state is a complete one.
        w(TRAINER_STATE_FILE, files.trainer_state_json.as_bytes())
    })?;
    let latest = ckpt_root.join("latest");
    let tmp = ckpt_root.join(".latest.tmp");
    std::fs::write(&tmp, format!("step_{step:06}\n"))
        .and_then(|()| std::fs::rename(&tmp, &latest))
        .map_err(|e| Error::Invalid(format!("updating {}: {e}", latest.display())))?;
    Ok(dir)
}

fn write_tensors(path: &Path, tensors: &HostTensors) -> Result<()> {
    let views: Vec<(&str, &[usize], HostSlice)> = tensors
        .iter()
        .map(|(n, s, v)| (n.as_str(), s.as_slice(), HostSlice::F32(v)))
        .collect();
    write_safetensors(path, &views)
}
