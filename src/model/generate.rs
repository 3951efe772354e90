//! Sampling text from a model: temperature and top-k, seeded so the same call gives the same
//! tokens. [`generate`] here keeps no cache: each new token runs the model on the last `seq`
//! tokens and reads back all their logits (the browser demo's small model, and the reference
//! the cached path is checked against); [`super::kv_cache::generate_cached`] runs one row
//! per token against a KV cache (`wgtrain generate`).

use super::decoder::Decoder;
use super::init::Rng;
use crate::error::{Error, Result};
use crate::gpu::Gpu;

#[derive(Clone, Copy, Debug)]
pub struct SampleOptions {
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 picks the most likely token (greedy).
    pub temperature: f32,
    /// Keep only the k most likely tokens (0: all).
    pub top_k: usize,
    pub seed: u64,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            max_new_tokens: 64,
            temperature: 0.8,
            top_k: 40,
            seed: 0,
        }
    }
}

/// Pick a token from `logits` (one row) with temperature and top-k, using `rng`.
pub fn sample(logits: &[f32], temperature: f32, top_k: usize, rng: &mut Rng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |b, (i, &v)| {
                if v > b.1 {
                    (i, v)
                } else {
                    b
                }
            })
            .0 as u32
    };
    if temperature <= 0.0 || top_k == 1 {
        return argmax();
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if top_k > 0 {
        order.truncate(top_k);
    }
    let max = logits[order[0]] as f64;
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / temperature as f64).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.uniform() * total;
    for (w, &i) in weights.iter().zip(&order) {
        if u < *w {
            return i as u32;
        }
        u -= w;
    }
    *order.last().expect("at least one token") as u32
}

/// Continue `prompt` (token ids) by up to `options.max_new_tokens` tokens, stopping early at
/// `stop` (e.g. the end-of-text id). `model` must be planned for generation
/// ([`Decoder::for_generation`]); its `seq` is the context window.
pub async fn generate(
    gpu: &Gpu,
    model: &Decoder,
    prompt: &[u32],
    stop: Option<u32>,
    options: &SampleOptions,
) -> Result<Vec<u32>> {
    if model.batch != 1 {
        return Err(Error::Invalid(
            "generation needs a model planned for batch 1".into(),
        ));
    }
    if prompt.is_empty() {
        return Err(Error::Invalid(
            "generation needs at least one prompt token (e.g. the end-of-text id as BOS)".into(),
        ));
    }
    let (seq, vocab) = (model.seq, model.config.vocab_size);
    let mut rng = Rng::new(options.seed);
    let mut tokens = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..options.max_new_tokens {
        let start = tokens.len().saturating_sub(seq);
        let context = &tokens[start..];
        // Inputs are the context padded at the end; causal attention keeps the padding
        // from reaching the last real position, whose logits we sample from.
        let mut row = context.to_vec();
        row.resize(seq + 1, 0);
        model.set_batch(gpu, &row)?;
        let mut enc = gpu.encoder();
        model.record_eval_forward(&mut enc);
        gpu.submit(enc);
        let logits = model.logits()?.read_f32(gpu).await?;
        let last = context.len() - 1;
        let next = sample(
            &logits[last * vocab..(last + 1) * vocab],
            options.temperature,
            options.top_k,
            &mut rng,
        );
        out.push(next);
        tokens.push(next);
        if Some(next) == stop {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_top_k_and_temperature() {
        let logits = [0.1, 2.0, -1.0, 1.9];
        let mut rng = Rng::new(1);
        assert_eq!(sample(&logits, 0.0, 0, &mut rng), 1);
        assert_eq!(sample(&logits, 1.0, 1, &mut rng), 1);
        // top-2 only ever gives tokens 1 and 3.
        let picks: Vec<u32> = (0..200)
            .map(|_| sample(&logits, 1.0, 2, &mut rng))
            .collect();
        assert!(picks.iter().all(|&p| p == 1 || p == 3));
        assert!(picks.contains(&1) && picks.contains(&3));
        // A very low temperature is nearly greedy; a high one spreads over all four.
        let cold = (0..200)
            .filter(|_| sample(&logits, 0.01, 0, &mut rng) == 1)
            .count();
        assert!(cold > 190, "{cold}");
        let hot: std::collections::HashSet<u32> = (0..400)
            .map(|_| sample(&logits, 10.0, 0, &mut rng))
            .collect();
        assert_eq!(hot.len(), 4);
    }
}
