//! The metrics of a checkpoint's matrices (`wgtrain analyze`).

use super::matrix_metrics::{MatrixMetrics, MetricsPlans};
use super::matrix_names::{default_matrices, parse_ov_name};
use super::ov_circuit::layer_ov_circuit;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::model::checkpoint::Checkpoint;

/// The metrics of `matrices` of a checkpoint (default: [`default_matrices`]), in order. A name
/// is a 2-D tensor of the checkpoint, or `layers.{i}.ov_circuit` (built from the layer's
/// `attention.v_proj.weight` and `attention.o_proj.weight`), or `layers.{i}.ov_circuit_vo`.
/// Tensors are analysed as stored: for a ReLoRA checkpoint that is the frozen base weight,
/// without the current adapters.
pub async fn analyze_checkpoint_async(
    gpu: &Gpu,
    ckpt: &Checkpoint,
    matrices: Option<&[String]>,
) -> Result<Vec<(String, MatrixMetrics)>> {
    let names = match matrices {
        Some(m) => m.to_vec(),
        None => default_matrices(&ckpt.config),
    };
    let upload = |name: &str| -> Result<Tensor> {
        let t = ckpt.tensor(name)?;
        if t.shape.len() != 2 {
            return Err(Error::Shape {
                op: "analyze",
                detail: format!("{name} is {:?}, not a matrix", t.shape),
            });
        }
        Tensor::from_f32(gpu, &t.shape, &t.data)
    };
    let mut plans = MetricsPlans::default();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let m = match parse_ov_name(&name) {
            Some((layer, form)) => {
                if layer >= ckpt.config.n_layers {
                    return Err(Error::Invalid(format!(
                        "{name}: the model has {} layers",
                        ckpt.config.n_layers
                    )));
                }
                layer_ov_circuit(gpu, &ckpt.config, layer, form, &upload)?
            }
            None => upload(&name)?,
        };
        let metrics = plans.metrics(gpu, &m).await?;
        out.push((name, metrics));
    }
    Ok(out)
}

/// Blocking [`analyze_checkpoint_async`] (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn analyze_checkpoint(
    gpu: &Gpu,
    ckpt: &Checkpoint,
    matrices: Option<&[String]>,
) -> Result<Vec<(String, MatrixMetrics)>> {
    pollster::block_on(analyze_checkpoint_async(gpu, ckpt, matrices))
}
