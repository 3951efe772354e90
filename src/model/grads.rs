//! The parity computation behind `wgtrain grads`: loss, logits and every parameter's
//! gradient for one batch, to compare against a PyTorch pico-decoder on the same weights.

use super::checkpoint::{write_safetensors, Checkpoint, HostSlice, HostTensor};
use super::decoder::{Decoder, Purpose};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use std::collections::BTreeMap;
use std::path::Path;

pub struct GradsOutput {
    pub loss: f32,
    /// `[B, T, V]`
    pub logits: Vec<f32>,
    pub logits_shape: [usize; 3],
    /// (parameter name, shape, gradient of the mean loss) for every trainable parameter
    pub grads: Vec<(String, Vec<usize>, Vec<f32>)>,
}

/// `input_ids` `[B, T+1]` (any integer type) from a batch file, as (B, T, ids).
pub fn batch_tokens(
    batch: &BTreeMap<String, HostTensor>,
    path: &Path,
) -> Result<(usize, usize, Vec<u32>)> {
    let bad = |problem: String| Error::Checkpoint {
        path: path.to_path_buf(),
        tensor: Some("input_ids".into()),
        problem,
    };
    let t = batch
        .get("input_ids")
        .ok_or_else(|| bad("missing: the batch file needs `input_ids` of shape [B, T+1]".into()))?;
    let ids = t
        .data
        .as_i64()
        .ok_or_else(|| bad("must hold integers (i32 or i64), found floats".into()))?;
    let [b, t1] = t.shape[..] else {
        return Err(bad(format!("must be [B, T+1], got {:?}", t.shape)));
    };
    if b == 0 || t1 < 2 {
        return Err(bad(format!(
            "needs at least one sequence of 2 tokens, got {:?}",
            t.shape
        )));
    }
    let tokens = ids
        .iter()
        .map(|&v| {
            u32::try_from(v).map_err(|_| bad(format!("token id {v} is negative or too large")))
        })
        .collect::<Result<Vec<u32>>>()?;
    Ok((b, t1 - 1, tokens))
}

/// Run forward and backward of the checkpoint's model on `tokens` (`batch` rows of `seq+1`).
pub async fn compute(
    gpu: &Gpu,
    ckpt: &Checkpoint,
    batch: usize,
    seq: usize,
    tokens: &[u32],
) -> Result<GradsOutput> {
    let config = &ckpt.config;
    ckpt.check_against(&config.param_specs())?;
    // The deterministic gradient: no LoRA dropout (as PyTorch's `model.eval()`).
    let model = Decoder::planned(gpu, config, batch, seq, Purpose::Gradients, 1)?;
    model.load_params(gpu, |name| {
        ckpt.tensors.get(name).map(|t| t.data.as_slice())
    })?;
    model.set_batch(gpu, tokens)?;

    let mut enc = gpu.encoder();
    model.record_zero_grads(&mut enc);
    model.record_forward(&mut enc);
    gpu.submit(enc);
    // The backward overwrites the logits with their gradient: read them first.
    let logits = model.logits()?.read_f32(gpu).await?;
    let loss = model.loss().read_f32(gpu).await?[0];

    let mut enc = gpu.encoder();
    model.record_backward(&mut enc);
    gpu.submit(enc);
    let mut grads = Vec::with_capacity(model.params().len());
    // Frozen parameters (base weights under LoRA adapters) have no gradient.
    for p in model.params().iter().filter(|p| p.trainable) {
        grads.push((
            p.name.clone(),
            p.grad.shape().to_vec(),
            p.grad.read_f32(gpu).await?,
        ));
    }
    Ok(GradsOutput {
        loss,
        logits,
        logits_shape: [batch, seq, config.vocab_size],
        grads,
    })
}

/// Write `loss` (scalar), `logits` and `grad.<name>` as f32 safetensors (atomically).
pub fn write_output(path: &Path, out: &GradsOutput) -> Result<()> {
    let loss = [out.loss];
    let names: Vec<String> = out
        .grads
        .iter()
        .map(|(n, _, _)| format!("grad.{n}"))
        .collect();
    let mut tensors: Vec<(&str, &[usize], HostSlice)> = vec![
        ("loss", &[], HostSlice::F32(&loss)),
        ("logits", &out.logits_shape, HostSlice::F32(&out.logits)),
    ];
    for ((_, shape, g), name) in out.grads.iter().zip(&names) {
        tensors.push((name, shape, HostSlice::F32(g)));
    }
    write_safetensors(path, &tensors)
}
