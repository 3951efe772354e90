//! The metrics of a checkpoint's matrices (`wgtrain analyze`).

use super::matrix_metrics::{MatrixMetrics, MetricsPlans};
use super::matrix_names::default_matrices;
use super::measure::measure_matrices;
use super::model_matrix::effective_weight;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::model::checkpoint::Checkpoint;

/// Which weights of a ReLoRA checkpoint are measured (a plain checkpoint has only one kind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AnalyzedWeights {
    /// What the model computes with: `W + s·B·A` for every wrapped weight, as the trainer's
    /// dynamics measure a live model.
    #[default]
    Effective,
    /// The frozen base `W` alone, as stored (what merge-and-reset last folded in).
    Base,
}

/// The metrics of `matrices` of a checkpoint (default: [`default_matrices`]), in order, OV
/// requests expanded (see [`measure_matrices`]). A name is a 2-D tensor of the checkpoint or
/// one of the OV-circuit names.
pub async fn analyze_checkpoint_async(
    gpu: &Gpu,
    ckpt: &Checkpoint,
    matrices: Option<&[String]>,
    weights: AnalyzedWeights,
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
    let relora = ckpt.config.relora.as_ref();
    let matrix = |name: &str| -> Result<Tensor> {
        let w = upload(name)?;
        match relora.filter(|r| r.wraps_weight(name)) {
            Some(r) if weights == AnalyzedWeights::Effective => {
                let module = name.trim_end_matches(".weight");
                let a = upload(&format!("{module}.A_lora.weight"))?;
                let b = upload(&format!("{module}.B_lora.weight"))?;
                effective_weight(gpu, &w, &b, &a, r.scale())
            }
            _ => Ok(w),
        }
    };
    let mut plans = MetricsPlans::default();
    measure_matrices(gpu, &mut plans, &ckpt.config, &names, matrix).await
}

/// Blocking [`analyze_checkpoint_async`] (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn analyze_checkpoint(
    gpu: &Gpu,
    ckpt: &Checkpoint,
    matrices: Option<&[String]>,
    weights: AnalyzedWeights,
) -> Result<Vec<(String, MatrixMetrics)>> {
    pollster::block_on(analyze_checkpoint_async(gpu, ckpt, matrices, weights))
}
