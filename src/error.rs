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

    #[error(
        "{0}. The driver reset the GPU or it was removed (a crash of another program, a \
         driver update, a laptop switching GPUs); check `wgtrain devices` and run again"
    )]
    DeviceLost(String),

    /// A run whose planned memory is above what the adapter holds, refused before it starts.
    #[error("{0}")]
    PlanTooLarge(String),

    #[error("reading back from the GPU failed: {0}")]
    Readback(String),

    #[error("{0}")]
    Invalid(String),

    /// Data-parallel ranks that refused to start together (rank 0 reports it; the message
    /// names the ranks and the reason).
    #[error("{0}")]
    RanksDisagree(String),

    /// A config value that cannot work (a zero size, heads that do not divide, a bad policy...).
    #[error("invalid config: `{key}` {problem}")]
    Config { key: String, problem: String },

    /// A step whose loss or gradients hold NaN or Inf (the message names the step, the first
    /// tensor affected and the data position).
    #[error("{0}")]
    NonFinite(String),

    /// Training ended early: `cause`, then where the run can continue from.
    #[error("{cause}\n{}", resume_hint(.checkpoint.as_deref(), .run_dir))]
    TrainingStopped {
        cause: Box<Error>,
        /// The last complete checkpoint of the run, if one was saved or resumed from.
        checkpoint: Option<PathBuf>,
        run_dir: PathBuf,
    },

    /// A checkpoint or safetensors file that cannot be read or written, or that does not match
    /// the model: `path` is the file (or checkpoint directory), `tensor` the tensor concerned.
    #[error("{}", file_message(.path, .tensor.as_deref(), .problem))]
    Checkpoint {
        path: PathBuf,
        tensor: Option<String>,
        problem: String,
    },
}

fn resume_hint(checkpoint: Option<&Path>, run_dir: &Path) -> String {
    match checkpoint {
        Some(c) => format!(
            "The last checkpoint, {}, is intact: continue with `wgtrain train --resume {}`",
            c.display(),
            run_dir.display()
        ),
        None => format!(
            "No checkpoint was saved yet: start again after deleting {} (or with another \
             --run-dir); a lower checkpointing.save_every_n_steps keeps more of a run",
            run_dir.display()
        ),
    }
}

impl Error {
    /// The error itself, without the [`Error::TrainingStopped`] wrapping.
    pub fn root(&self) -> &Error {
        match self {
            Error::TrainingStopped { cause, .. } => cause.root(),
            e => e,
        }
    }
}

fn file_message(path: &Path, tensor: Option<&str>, problem: &str) -> String {
    match tensor {
        Some(t) => format!("{}: tensor '{t}': {problem}", path.display()),
        None => format!("{}: {problem}", path.display()),
    }
}

pub type Result<T> = std::result::Result<T, Error>;
