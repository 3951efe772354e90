//! One error type for the library: every message says what went wrong and what to do about it.

use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("unknown backend '{0}': choose one of vulkan, metal, dx12, gl, webgpu, auto")]
    UnknownBackend(String),

    #[error("{0}")]
    NoAdapter(String),

    #[error("could not open the GPU device on adapter '{adapter}': {reason}")]
    DeviceRequest { adapter: String, reason: String },

    #[error("shape mismatch in {op}: {detail}")]
    Shape { op: &'static str, detail: String },

    #[error(
        "tensor too large for this adapter: {detail}. Use a smaller model or batch, or an adapter \
         with a larger max_storage_buffer_binding_size (see `wgtrain devices`)"
    )]
    TooLarge { detail: String },

    #[error("GPU out of memory while allocating {what}: {reason}. Reduce the batch size, sequence length or model size")]
    OutOfMemory { what: String, reason: String },

    #[error("reading back from the GPU failed: {0}")]
    Readback(String),

    #[error("{0}")]
    Invalid(String),

    /// A model config value that cannot work (a zero size, heads that do not divide, ...).
    #[error("invalid model config: `{key}` {problem}")]
    Config { key: String, problem: String },

    /// A checkpoint or safetensors file that cannot be read or written, or that does not match
    /// the model: `path` is the file (or checkpoint directory), `tensor` the tensor concerned.
    #[error("{}", file_message(.path, .tensor.as_deref(), .problem))]
    Checkpoint {
        path: PathBuf,
        tensor: Option<String>,
        problem: String,
    },
}

fn file_message(path: &Path, tensor: Option<&str>, problem: &str) -> String {
    match tensor {
        Some(t) => format!("{}: tensor '{t}': {problem}", path.display()),
        None => format!("{}: {problem}", path.display()),
    }
}

pub type Result<T> = std::result::Result<T, Error>;
