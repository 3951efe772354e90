//! Learning-dynamics metrics of a checkpoint, as `wgtrain analyze` prints them: the
//! proportional effective rank (PER) and condition number of every layer's `swiglu.w_2`
//! and attention OV circuit (per head `W_o,h W_v,h`, heads side by side).
//!
//! The singular values come from an on-device one-sided Jacobi SVD in f32; only the scalars
//! are read back. A ReLoRA checkpoint is measured as stored (the frozen base weights, without
//! the adapters): merge it first (`wgtrain export --merge`) to measure the effective weights.
//!
//! ```sh
//! cargo run --release --example analyze_checkpoint [-- CHECKPOINT_DIR]
//! ```
//!
//! CHECKPOINT_DIR is any pico checkpoint (config.json + model.safetensors), e.g. what the
//! `train_tiny` example saves; it defaults to the test fixture `tests/fixtures/pico_mini`.

use std::path::PathBuf;
use wgtrain::metrics::dynamics::{analyze_checkpoint, default_matrices, AnalyzedWeights};
use wgtrain::model::checkpoint;
use wgtrain::{Gpu, GpuOptions, Result};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pico_mini")
        });
    // `load_checked` also checks the tensors against the checkpoint's own config.json.
    let ckpt = checkpoint::load_checked(&dir)?;
    let c = &ckpt.config;
    println!(
        "{}: d_model {}, {} layers, {}/{} heads, vocab {}",
        dir.display(),
        c.d_model,
        c.n_layers,
        c.attention_n_heads,
        c.attention_n_kv_heads,
        c.vocab_size
    );

    let gpu = Gpu::new_blocking(GpuOptions::default())?;
    // The default matrices are `layers.N.swiglu.w_2.weight` and `layers.N.ov_circuit` for
    // every layer (the latter gives pico-analyze's per-head circuits and their mean); pass
    // `Some(&names)` to measure any other 2-D parameter. ReLoRA checkpoints are measured
    // with their effective weights W + s·B·A (`AnalyzedWeights::Base` for the frozen W).
    let names = default_matrices(c);
    let results = analyze_checkpoint(&gpu, &ckpt, Some(&names), AnalyzedWeights::Effective)?;

    println!(
        "{:<40} {:>9} {:>8} {:>12}",
        "matrix", "shape", "PER", "condition"
    );
    for (name, m) in &results {
        println!(
            "{:<40} {:>9} {:>8.4} {:>12.4e}",
            name,
            format!("{}x{}", m.rows, m.cols),
            m.per,
            m.condition_number
        );
    }
    Ok(())
}
