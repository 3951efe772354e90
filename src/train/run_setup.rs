//! What a run is made of before its first step: the model config sized for the tokenizer,
//! the data spec, the tokenizer kept in the run directory, and the memory check against the
//! adapter.

use super::config::TrainConfig;
use super::data::{BinDtype, DataSpec, Holdout};
use super::tokenizer::Tokenizer;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::config::ModelConfig;
use std::path::{Path, PathBuf};

/// The tokenizer's file name in a run directory and in each checkpoint.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// What a checkpoint stores besides weights and optimizer moments ([`super::trainer::TrainerState`]).
pub const TRAINER_STATE_FILE: &str = "trainer_state.json";
/// The Adam moments of a checkpoint, one `m.NAME` and `v.NAME` per trainable parameter.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// Refuse, before anything is allocated, a run whose estimated memory is above what the
/// adapter holds (when that is known: [`Gpu::memory_budget`]).
pub(super) fn check_memory(gpu: &Gpu, config: &TrainConfig, model: &ModelConfig) -> Result<()> {
    use crate::model::memory_estimate::{human_bytes, MemoryEstimate};
    let Some(budget) = gpu.memory_budget() else {
        return Ok(());
    };
    let micro = config.micro_batch();
    let need = MemoryEstimate::training(model, micro, model.max_seq_len);
    if need.total() <= budget {
        return Ok(());
    }
    let accum = config.training.optimization.gradient_accumulation_steps;
    Err(Error::PlanTooLarge(format!(
        "this run needs about {} for micro-batches of {micro} x {} tokens, and the adapter \
         holds {} ({}). Lower the micro-batch: raise training.optimization.\
         gradient_accumulation_steps (now {accum}; the global batch stays \
         data.dataloader.batch_size {}), or shorten model.max_seq_len, or use an adapter with \
         more memory",
        need.describe(),
        model.max_seq_len,
        human_bytes(budget),
        if gpu.is_cpu() && !gpu.memory_stated() {
            "the machine's memory, for a CPU adapter"
        } else {
            "as stated with --memory-gib"
        },
        config.data.dataloader.batch_size,
    )))
}

/// The model `config` describes, its vocabulary sized for `tokenizer` when the config
/// leaves it open (and checked against it when not).
pub(super) fn model_config_for(
    config: &TrainConfig,
    tokenizer: Option<&Tokenizer>,
) -> Result<ModelConfig> {
    let mut model_config = config.model_config()?;
    if let Some(tok) = tokenizer {
        let needed = tok.vocab_size();
        if config.model.vocab_size.is_none() {
            // pico pads the vocabulary to a multiple of 64.
            model_config.vocab_size = needed.div_ceil(64) * 64;
        } else if model_config.vocab_size < needed {
            return Err(Error::Config {
                key: "model.vocab_size".into(),
                problem: format!(
                    "({}) is smaller than the tokenizer's vocabulary ({needed})",
                    model_config.vocab_size
                ),
            });
        }
    }
    Ok(model_config)
}

/// Keeps a copy of the tokenizer file in the run directory (unless it is already there).
pub(super) fn copy_into_run(tokenizer: &Tokenizer, run_dir: &Path) -> Result<()> {
    if let Some(src) = tokenizer.path() {
        let dst = run_dir.join(TOKENIZER_FILE);
        if src != dst {
            std::fs::copy(src, &dst)
                .map_err(|e| Error::Invalid(format!("cannot copy the tokenizer: {e}")))?;
        }
    }
    Ok(())
}

/// How the run reads `data_path`: windows of the model's length, the config's seed, holdout
/// and `.bin` dtype.
pub(super) fn data_spec(
    config: &TrainConfig,
    data_path: &Path,
    tokenizer: Option<Tokenizer>,
    model_config: &ModelConfig,
) -> DataSpec {
    let dataset = &config.data.dataset;
    DataSpec {
        tokenizer,
        seed: config.training.seed,
        holdout: if dataset.holdout_fraction > 0.0 {
            Holdout::Fraction(dataset.holdout_fraction)
        } else {
            Holdout::None
        },
        bin_dtype: if dataset.token_dtype == "u32" {
            BinDtype::U32
        } else {
            BinDtype::U16
        },
        ..DataSpec::new(data_path, model_config.max_seq_len, model_config.vocab_size)
    }
}

/// The checkpoint `runs/NAME/checkpoints/latest` points at, for `--resume RUN_DIR`.
pub fn latest_checkpoint(run_or_checkpoint: &Path) -> PathBuf {
    if run_or_checkpoint.join(TRAINER_STATE_FILE).exists() {
        return run_or_checkpoint.to_path_buf();
    }
    for root in [
        run_or_checkpoint.to_path_buf(),
        run_or_checkpoint.join("checkpoints"),
    ] {
        if let Ok(name) = std::fs::read_to_string(root.join("latest")) {
            return root.join(name.trim());
        }
    }
    run_or_checkpoint.to_path_buf()
}
