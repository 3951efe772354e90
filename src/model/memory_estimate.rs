//! The memory a training run will need, estimated from its shapes before anything is
//! allocated, part by part so a reader can check it (and a refusal can say what to change):
//!
//! - parameters with their gradients and two Adam moments: `16 B` per parameter (an upper
//!   bound for ReLoRA, whose frozen base has neither gradient nor moments);
//! - the logits the head holds at once: one chunk of `min(rows, LOGITS_CHUNK_BYTES / (4 ·
//!   vocab))` token rows × `vocab × 4 B` (see `decoder::LogitsPlan`; all rows when they fit);
//! - the activations kept for the backward, `rows × (n_layers × (12·d + 3·hidden) + 2·d) × 4 B`;
//! - one layer's attention scores, `micro-batch × heads × seq² × 4 B`;
//!
//! with `rows = micro-batch × seq`. `Decoder::planned_bytes` is the exact count of a built
//! plan; `tests/memory_plan.rs` keeps the two close.

use crate::model::config::ModelConfig;
use crate::model::decoder::LogitsPlan;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    pub params_bytes: u64,
    pub logits_bytes: u64,
    pub activations_bytes: u64,
    pub attention_bytes: u64,
}

impl MemoryEstimate {
    /// Training `config` on micro-batches of `micro` sequences of `seq` tokens.
    pub fn training(config: &ModelConfig, micro: usize, seq: usize) -> MemoryEstimate {
        let rows = (micro * seq) as u64;
        let (d, hidden, layers) = (
            config.d_model as u64,
            config.activation_hidden_dim as u64,
            config.n_layers as u64,
        );
        MemoryEstimate {
            params_bytes: config.num_params() as u64 * 16,
            logits_bytes: LogitsPlan::Auto.chunk_rows(rows as usize, config.vocab_size) as u64
                * config.vocab_size as u64
                * 4,
            activations_bytes: rows * (layers * (12 * d + 3 * hidden) + 2 * d) * 4,
            attention_bytes: (micro * config.attention_n_heads * seq * seq) as u64 * 4,
        }
    }

    pub fn total(&self) -> u64 {
        self.params_bytes + self.logits_bytes + self.activations_bytes + self.attention_bytes
    }

    /// "X in all: parameters, gradients and Adam moments A, logits B, ...".
    pub fn describe(&self) -> String {
        format!(
            "{} in all: parameters, gradients and Adam moments {}, logits {}, activations {}, \
             attention scores {}",
            human_bytes(self.total()),
            human_bytes(self.params_bytes),
            human_bytes(self.logits_bytes),
            human_bytes(self.activations_bytes),
            human_bytes(self.attention_bytes)
        )
    }
}

/// Bytes in MiB below a GiB, else in GiB.
pub fn human_bytes(b: u64) -> String {
    if b < 1 << 30 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    }
}
