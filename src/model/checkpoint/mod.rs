//! pico-format checkpoints and safetensors files, on the host.
//!
//! A checkpoint is a directory holding `config.json` (the model keys, see [`ModelConfig`]) and
//! `model.safetensors` (the parameters by their pico state-dict names), as pico-lm and
//! PyTorch write them. pico-train's Hugging Face checkpoints (names prefixed `pico_decoder.`,
//! a `config.json` with `model_type` and the other Hugging Face keys) load too, and
//! [`export_hf`] writes that layout. [`load`] reads F32, BF16, F16 (and F64) weights into f32; [`save`]
//! writes f32.
//!
//! Saving is atomic: the new checkpoint is built and fsynced in a sibling directory
//! `.NAME.saving`, then swapped in with two renames (`NAME` -> `.NAME.previous`,
//! `.NAME.saving` -> `NAME`), after which the previous one is deleted. A crash at any point
//! leaves either the previous checkpoint complete (in `NAME`, or in `.NAME.previous` when the
//! crash fell between the renames: [`load`] then reads it from there, and the next save puts
//! it back first) or the new one complete in `NAME`. One process at a time may save to a
//! given directory. Saving replaces the whole directory, so it refuses to replace a non-empty
//! directory that has no `config.json` (that is not a checkpoint).
//!
//! [`read_safetensors`] / [`write_safetensors`] handle other safetensors files (batches,
//! expected outputs) with float and integer tensors; writing is atomic too (temporary
//! sibling file, fsync, rename).
//!
//! The files, bottom up:
//! - `half_float`: bf16 and f16 to f32;
//! - `host_tensor`: tensor values on the host, as read from and written to safetensors files;
//! - `safetensors_read` / `safetensors_write`: safetensors files, checked as they are read
//!   or before they are written;
//! - `durable`: fsync, and the atomic replacement of a file or a directory with its crash
//!   recovery (knows nothing of tensors);
//! - `load`, `save`, `in_memory`: pico checkpoint directories;
//! - `hf_export`: pico-train's Hugging Face layout (`pico_decoder.`-prefixed names, its
//!   `config.json` with `model_type` and `auto_map`, the tokenizer beside them).
//!
//! [`ModelConfig`]: super::config::ModelConfig
//! [`load`]: fn@load
//! [`save`]: fn@save

mod durable;
mod half_float;
mod hf_export;
mod host_tensor;
mod in_memory;
mod load;
mod safetensors_read;
mod safetensors_write;
mod save;

pub use durable::replace_dir_atomically;
pub use half_float::{bf16_to_f32, f16_to_f32};
pub use hf_export::{export_hf, find_tokenizer, hf_config_json, HfExport};
pub use host_tensor::{HostData, HostSlice, HostTensor};
pub use in_memory::checkpoint_files;
pub use load::{load, load_checked, Checkpoint, TensorData};
pub use safetensors_read::read_safetensors;
pub use safetensors_write::write_safetensors;
pub use save::save;

use crate::error::Error;
use std::io;
use std::path::Path;

/// The model config inside a checkpoint directory.
pub const CONFIG_FILE: &str = "config.json";
/// The weights inside a checkpoint directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// The prefix of every tensor name in pico's Hugging Face checkpoints (the state dict of its
/// `PicoDecoderHF` wrapper, whose model is the attribute `pico_decoder`). [`load`] strips it;
/// [`export_hf`] writes it.
///
/// [`load`]: fn@load
pub const HF_PREFIX: &str = "pico_decoder.";

/// The error for a problem with the file (or directory) `path`, or with one of its tensors.
fn file_err(path: &Path, tensor: Option<&str>, problem: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        tensor: tensor.map(str::to_string),
        problem: problem.into(),
    }
}

/// The error for a failed file-system call: "could not {action}: {e}".
fn io_err(path: &Path, action: &str, e: io::Error) -> Error {
    file_err(path, None, format!("could not {action}: {e}"))
}
