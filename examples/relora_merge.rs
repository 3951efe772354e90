//! pico-relora through the library: wrap every attention and FFN linear of a tiny
//! pico-decoder with LoRA adapters, train a few steps (with ReLoRA merge-and-resets inside
//! them), then merge the adapters into the base weights and check that the plain model
//! computes what the wrapped one computes.
//!
//! A ReLoRA model is a plain `ModelConfig` with a `relora` block ([`ReloraConfig`]): the
//! decoder then freezes the base weights, adds `A_lora` / `B_lora` per wrapped linear, and
//! `TrainingStep` merges `W += s B A` and re-draws A every `reset_frequency` steps, pruning
//! the adapters' Adam moments. `merge_checkpoint` is what `wgtrain export --merge` runs.
//!
//! ```sh
//! cargo run --release --example relora_merge [-- STEPS]   # default 12 steps, resets every 4
//! ```

use wgtrain::model::checkpoint;
use wgtrain::model::config::ModelConfig;
use wgtrain::model::decoder::Decoder;
use wgtrain::model::init::Rng;
use wgtrain::model::merge::merge_checkpoint;
use wgtrain::model::relora::ReloraConfig;
use wgtrain::train::optim::AdamWConfig;
use wgtrain::train::schedule::{LrSchedule, Schedule};
use wgtrain::train::step::TrainingStep;
use wgtrain::{Error, Gpu, GpuOptions, Result};

const BATCH: usize = 4;
const SEQ: usize = 32;
const RESET_EVERY: u64 = 4;
/// Largest logit difference accepted between the wrapped and the merged model.
const TOLERANCE: f32 = 1e-3;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// The logits of one fixed batch, from the no-dropout forward (as evaluation computes them).
fn logits(gpu: &Gpu, model: &Decoder, batch: &[u32]) -> Result<Vec<f32>> {
    model.set_batch(gpu, batch)?;
    let mut enc = gpu.encoder();
    model.record_eval_forward(&mut enc);
    gpu.submit(enc);
    model.logits()?.to_vec_f32(gpu)
}

fn run() -> Result<()> {
    let steps: u64 = match std::env::args().nth(1) {
        None => 12,
        Some(s) => s
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::Invalid(format!("STEPS: '{s}' is not a positive number")))?,
    };
    let gpu = Gpu::new_blocking(GpuOptions::default())?;
    let config = ModelConfig {
        d_model: 32,
        n_layers: 2,
        vocab_size: 128,
        attention_n_heads: 4,
        attention_n_kv_heads: 2,
        activation_hidden_dim: 128,
        max_seq_len: SEQ,
        norm_eps: 1e-6,
        position_emb_theta: 10000.0,
        // pico-relora's settings, with a small rank and frequent resets.
        relora: Some(ReloraConfig {
            r: 4,
            lora_alpha: 8.0,
            reset_frequency: RESET_EVERY,
            ..ReloraConfig::default()
        }),
    };
    let model = Decoder::new(&gpu, &config, BATCH, SEQ)?;
    model.init_params(&gpu, 0)?;
    let trainable: usize = model
        .params()
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.value.numel())
        .sum();
    println!(
        "{}: {} parameters, {} trainable (base weights frozen under r = 4 adapters)",
        gpu.adapter.name,
        config.num_params(),
        trainable
    );

    let lr = 1e-2;
    let schedule = LrSchedule {
        schedule: Schedule::ReloraJaggedCosine,
        lr,
        warmup_steps: 2,
        max_steps: steps,
        min_lr_ratio: 0.1,
        restart_every: RESET_EVERY,
        restart_warmup_steps: 1,
    };
    let adamw = AdamWConfig {
        lr,
        ..AdamWConfig::default()
    };
    let mut train = TrainingStep::new(&gpu, model, adamw, schedule, 0, 1)?;

    // A learnable toy language: each id is the previous one plus 3, modulo 128.
    let mut rng = Rng::new(7);
    let mut next_batch = || -> Result<Vec<u32>> {
        let mut batch = Vec::with_capacity(BATCH * (SEQ + 1));
        for _ in 0..BATCH {
            let start = rng.next_u64() % 128;
            batch.extend((0..=SEQ as u64).map(|i| ((start + 3 * i) % 128) as u32));
        }
        Ok(batch)
    };
    for done in 0..steps {
        let sent = train.submit(&gpu, done, &mut next_batch)?;
        if sent.reset {
            println!(
                "step {:>3}: merge-and-reset (W += s B A, A re-drawn, B = 0)",
                sent.step
            );
        }
    }
    for v in pollster::block_on(train.readback.finish(&gpu))? {
        println!("step {:>3}  loss {:.4}", v.step, v.loss);
    }

    // Merge the adapters on the host, as `wgtrain export --merge` does, into a plain model.
    let dir = std::env::temp_dir().join("wgtrain-relora-merge");
    pollster::block_on(train.model.save_checkpoint(&gpu, &dir))?;
    let (plain_config, tensors) = merge_checkpoint(&checkpoint::load(&dir)?)?;
    let plain = Decoder::for_inference(&gpu, &plain_config, BATCH, SEQ)?;
    plain.load_params(&gpu, |name| {
        tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.data.as_slice())
    })?;

    let batch = next_batch()?;
    let wrapped = logits(&gpu, &train.model, &batch)?;
    let merged = logits(&gpu, &plain, &batch)?;
    let diff = wrapped
        .iter()
        .zip(&merged)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    println!("max |logit difference| wrapped vs merged: {diff:.2e} (tolerance {TOLERANCE:e})");
    if diff > TOLERANCE || !diff.is_finite() {
        return Err(Error::Invalid(format!(
            "the merged model differs from the ReLoRA model by {diff}"
        )));
    }
    println!(
        "the merged plain model computes the ReLoRA model (checkpoint in {})",
        dir.display()
    );
    Ok(())
}
