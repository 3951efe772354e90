//! Train a tiny pico-decoder on a text file through the library API, then save it as a pico
//! checkpoint that `wgtrain eval` and `wgtrain generate` read.
//!
//! The pieces: the byte tokenizer (no training needed), a [`ModelConfig`], a [`Decoder`]
//! planned for one batch shape, and a [`TrainingStep`] (AdamW, a schedule, and an
//! asynchronous read-back of each step's loss). `wgtrain train` wraps the same pieces in
//! `train::trainer::Trainer`, which adds pico's YAML configs, data loading, BPE tokenizers
//! and resumable checkpoints.
//!
//! ```sh
//! cargo run --release --example train_tiny [-- TEXT [OUT_DIR [STEPS]]]
//! ```
//!
//! TEXT defaults to `../shared/data/tinyshakespeare/input.txt`, OUT_DIR to
//! `wgtrain-train-tiny` in the system temp dir, STEPS to 40.

use std::path::PathBuf;
use wgtrain::eval::perplexity::perplexity;
use wgtrain::model::config::ModelConfig;
use wgtrain::model::decoder::Decoder;
use wgtrain::model::init::Rng;
use wgtrain::train::byte_tokenizer;
use wgtrain::train::optim::AdamWConfig;
use wgtrain::train::schedule::{LrSchedule, Schedule};
use wgtrain::train::step::TrainingStep;
use wgtrain::{Error, Gpu, GpuOptions, Result};

const BATCH: usize = 8;
const SEQ: usize = 64;
/// Held-out windows scored for the perplexity (a few batches keep it quick on a CPU).
const HELDOUT_WINDOWS: usize = 4 * BATCH;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let text_path = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/tinyshakespeare/input.txt")
    });
    let out_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("wgtrain-train-tiny"));
    let steps: u64 = match args.next() {
        None => 40,
        Some(s) => s.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
            Error::Invalid(format!("STEPS: '{s}' is not a positive number of steps"))
        })?,
    };

    // Tokens: one id per byte; the last tenth is held out for the perplexity.
    let text = std::fs::read_to_string(&text_path)
        .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", text_path.display())))?;
    let mut tokens = byte_tokenizer::encode(&text);
    let heldout = tokens.split_off(tokens.len() - tokens.len() / 10);
    if tokens.len() <= SEQ + 1 || heldout.len() < 2 {
        return Err(Error::Invalid(format!(
            "{} is too short: it needs well over {} bytes",
            text_path.display(),
            10 * (SEQ + 1)
        )));
    }

    let gpu = Gpu::new_blocking(GpuOptions::default())?;
    // A very small pico-decoder; pico pads the vocabulary (257 byte ids) to a multiple of 64.
    let config = ModelConfig {
        d_model: 64,
        n_layers: 2,
        vocab_size: byte_tokenizer::VOCAB.div_ceil(64) * 64,
        attention_n_heads: 4,
        attention_n_kv_heads: 2,
        activation_hidden_dim: 4 * 64,
        max_seq_len: SEQ,
        norm_eps: 1e-6,
        position_emb_theta: 10000.0,
        relora: None,
    };
    let model = Decoder::new(&gpu, &config, BATCH, SEQ)?;
    model.init_params(&gpu, 0)?;
    println!(
        "{} ({}): {:.2} M parameters, {} training / {} held-out bytes of {}",
        gpu.adapter.name,
        gpu.adapter.backend,
        config.num_params() as f64 / 1e6,
        tokens.len(),
        heldout.len(),
        text_path.display()
    );

    let heldout = &heldout[..heldout.len().min(HELDOUT_WINDOWS * SEQ + 1)];
    let before = pollster::block_on(perplexity(&gpu, &model, heldout))?;
    println!(
        "held-out perplexity before training: {:.2}",
        before.perplexity
    );

    let lr = 3e-3;
    let adamw = AdamWConfig {
        lr,
        beta2: 0.95,
        weight_decay: 0.0,
        max_grad_norm: Some(1.0),
        ..AdamWConfig::default()
    };
    let schedule = LrSchedule {
        schedule: Schedule::Cosine,
        lr,
        warmup_steps: (steps / 10).max(1),
        max_steps: steps,
        min_lr_ratio: 0.1,
        restart_every: 0,
        restart_warmup_steps: 0,
    };
    let mut train = TrainingStep::new(&gpu, model, adamw, schedule, 0, 1)?;

    // Each micro-batch is BATCH random windows of SEQ + 1 ids (inputs and shifted labels).
    let mut rng = Rng::new(1);
    let mut next_batch = || -> Result<Vec<u32>> {
        let mut batch = Vec::with_capacity(BATCH * (SEQ + 1));
        for _ in 0..BATCH {
            let start = (rng.next_u64() % (tokens.len() - SEQ) as u64) as usize;
            batch.extend_from_slice(&tokens[start..start + SEQ + 1]);
        }
        Ok(batch)
    };
    let print = |v: wgtrain::train::optim::StepValues| {
        if v.step == 1 || v.step.is_multiple_of(5) || v.step == steps {
            println!(
                "step {:>4}  loss {:.4}  grad norm {:.3}",
                v.step, v.loss, v.grad_norm
            );
        }
    };
    for done in 0..steps {
        // `submit` does not wait for the GPU; losses arrive a step or two later.
        train.submit(&gpu, done, &mut next_batch)?;
        train.readback.poll(&gpu)?.into_iter().for_each(print);
    }
    pollster::block_on(train.readback.finish(&gpu))?
        .into_iter()
        .for_each(print);

    let after = pollster::block_on(perplexity(&gpu, &train.model, heldout))?;
    println!(
        "held-out perplexity after {steps} steps: {:.2} ({} bytes)",
        after.perplexity, after.tokens
    );

    // config.json + model.safetensors, plus the tokenizer so the CLI can read text with it.
    pollster::block_on(train.model.save_checkpoint(&gpu, &out_dir))?;
    std::fs::write(
        out_dir.join("tokenizer.json"),
        byte_tokenizer::tokenizer_json(),
    )
    .map_err(|e| Error::Invalid(format!("cannot write the tokenizer: {e}")))?;
    println!("saved a pico checkpoint to {}", out_dir.display());
    println!(
        "try: cargo run --release -- generate --checkpoint {} --prompt \"ROMEO:\"",
        out_dir.display()
    );
    Ok(())
}
