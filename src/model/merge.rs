//! Merging a ReLoRA checkpoint's adapters into its base weights, on the host (`wgtrain export
//! --merge`). The live model merges on the device instead (`Decoder::record_merge_and_reset`).

use super::checkpoint::{Checkpoint, TensorData};
use super::config::ModelConfig;
use crate::error::{Error, Result};

/// A ReLoRA checkpoint as a plain pico-decoder: every wrapped weight becomes `W + s B A`
/// (computed in f64), the
/// adapters and the `relora` block are dropped. Returns the plain config and its tensors in
/// pico's order.
pub fn merge_checkpoint(ckpt: &Checkpoint) -> Result<(ModelConfig, Vec<(String, TensorData)>)> {
    let r = ckpt.config.relora.clone().ok_or_else(|| {
        Error::Invalid(format!(
            "{} is not a ReLoRA checkpoint (its config.json has no relora block): nothing to merge",
            ckpt.path.display()
        ))
    })?;
    ckpt.check_against(&ckpt.config.param_specs())?;
    // The export computes the checkpoint's function, `W x + s B A x`, under every quirk
    // setting: `quirk_merge_without_scale` describes the reference's merge-and-reset during
    // training (where it changes the function), not what a checkpoint computes.
    let s = r.scale() as f64;
    let mut plain = ckpt.config.clone();
    plain.relora = None;
    let mut out = Vec::new();
    for spec in plain.param_specs() {
        let mut t = ckpt.tensor(&spec.name)?.clone();
        if r.wraps_weight(&spec.name) {
            let module = spec.name.trim_end_matches(".weight");
            let a = ckpt.tensor(&format!("{module}.A_lora.weight"))?;
            let b = ckpt.tensor(&format!("{module}.B_lora.weight"))?;
            let (o, i, rank) = (spec.shape[0], spec.shape[1], r.r);
            for row in 0..o {
                for col in 0..i {
                    let ba: f64 = (0..rank)
                        .map(|k| b.data[row * rank + k] as f64 * a.data[k * i + col] as f64)
                        .sum();
                    let w = &mut t.data[row * i + col];
                    *w = (*w as f64 + s * ba) as f32;
                }
            }
        }
        out.push((spec.name, t));
    }
    Ok((plain, out))
}
