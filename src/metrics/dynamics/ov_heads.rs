//! pico-analyze's per-head OV circuits of several layers, measured together: every head's
//! `hd x hd` product is built on the device into one stacked tensor, and one batched Jacobi
//! SVD (the same dispatches for all heads of all layers: 144 heads at pico tiny size) gives
//! every head's singular values. The per-head scalars then come from those values and the
//! product's entries on the host ([`MatrixMetrics::from_parts`]).

use super::matrix_metrics::{MatrixMetrics, MetricsPlans};
use super::ov_circuit::{OvCircuit, OvForm};
use crate::error::Result;
use crate::gpu::{DType, Gpu, Tensor};
use crate::model::config::ModelConfig;

/// The metrics of one layer's heads, and their mean.
pub(super) struct LayerHeads {
    pub heads: Vec<MatrixMetrics>,
    pub mean: MatrixMetrics,
}

/// The per-head OV metrics of `layers` (in that order), from their `attention.v_proj.weight`
/// and `attention.o_proj.weight` as `matrix` gives them.
pub(super) async fn measure_ov_heads(
    gpu: &Gpu,
    plans: &mut MetricsPlans,
    config: &ModelConfig,
    layers: &[usize],
    matrix: &mut impl FnMut(&str) -> Result<Tensor>,
) -> Result<Vec<LayerHeads>> {
    let (h, kv) = (config.attention_n_heads, config.attention_n_kv_heads);
    let hd = config.d_model / h.max(1);
    let per_layer = h * hd;
    let stacked = Tensor::zeros(gpu, &[layers.len() * per_layer, hd], DType::F32)?;
    let mut dispatches = Vec::with_capacity(layers.len());
    let mut inputs = Vec::with_capacity(2 * layers.len());
    for (slot, &layer) in layers.iter().enumerate() {
        let v = matrix(&format!("layers.{layer}.attention.v_proj.weight"))?;
        let o = matrix(&format!("layers.{layer}.attention.o_proj.weight"))?;
        let ov = OvCircuit::into_slot(gpu, &v, &o, &stacked, slot, h, kv, OvForm::Heads)?;
        dispatches.push(ov.into_dispatch());
        inputs.push((v, o));
    }
    crate::gpu::run_all(gpu, &dispatches);
    let svd = plans.batched_svd(gpu, layers.len() * h, hd)?;
    let out = svd.run_with(gpu, &stacked, &[], &[], &[&stacked]).await?;
    drop(inputs);
    let entries: Vec<f32> = bytemuck::pod_collect_to_vec(&out.extra[0]);
    let block = hd * hd;
    let mut result = Vec::with_capacity(layers.len());
    for slot in 0..layers.len() {
        let heads: Vec<MatrixMetrics> = (0..h)
            .map(|head| {
                let b = slot * h + head;
                MatrixMetrics::from_parts(
                    hd,
                    hd,
                    &out.by_vector[b * hd..(b + 1) * hd],
                    &entries[b * block..(b + 1) * block],
                    out.report,
                )
            })
            .collect();
        let mean = MatrixMetrics::mean_of(&heads).expect("a layer has at least one head");
        result.push(LayerHeads { heads, mean });
    }
    Ok(result)
}
