//! The matrices the study measures, of a live model: weights or their updates, with ReLoRA's
//! adapters taken into account.

use super::matrix_names::{is_ov_name, w2_name};
use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Tensor};
use crate::model::decoder::Decoder;
use crate::ops::common::matrix_dims;
use crate::ops::elementwise;
use crate::ops::{Matmul, MatmulSpec};

/// `scale * B · A` (`[out, r]` times `[r, in]`): a LoRA update as a full matrix, on the device.
pub fn lora_product(gpu: &Gpu, b: &Tensor, a: &Tensor, scale: f32) -> Result<Tensor> {
    let (out_dim, _) = matrix_dims(b, "lora product")?;
    let (_, in_dim) = matrix_dims(a, "lora product")?;
    let c = Tensor::zeros(gpu, &[out_dim, in_dim], DType::F32)?;
    Matmul::new(gpu, b, a, &c, MatmulSpec::nn().scale(scale))?.run(gpu);
    Ok(c)
}

/// `W + scale * B · A`: the weight a wrapped linear computes with, on the device.
pub fn effective_weight(
    gpu: &Gpu,
    w: &Tensor,
    b: &Tensor,
    a: &Tensor,
    scale: f32,
) -> Result<Tensor> {
    let ba = lora_product(gpu, b, a, scale)?;
    let sum = Tensor::zeros(gpu, w.shape(), DType::F32)?;
    crate::gpu::run_all(gpu, &[elementwise::add(gpu, w, &ba, &sum)?]);
    Ok(sum)
}

/// The 2-D parameter `name` of a live model as the study measures it. With `update` false
/// that is the weight (for a weight ReLoRA wraps, the effective `W + s·B·A`); with `update`
/// true its update (the gradient of the last backward; for a wrapped weight the adapters'
/// `s·B·A`). OV-circuit names are built from two of these by
/// [`measure_matrices`](super::measure_matrices), for weights only.
pub fn model_matrix(gpu: &Gpu, model: &Decoder, name: &str, update: bool) -> Result<Tensor> {
    if is_ov_name(name) && update {
        return Err(Error::Invalid(format!(
            "{name}: the OV circuit is measured for weights only (pico-analyze defines none \
             for updates); measure the updates of attention.v_proj / attention.o_proj instead"
        )));
    }
    let param = |name: &str| {
        model.param(name).ok_or_else(|| {
            Error::Invalid(format!(
                "no parameter {name} in this model: name a 2-D weight (e.g. {}) or \
                 layers.N.ov_circuit",
                w2_name(0)
            ))
        })
    };
    let p = param(name)?;
    if p.value.shape().len() != 2 {
        return Err(Error::Invalid(format!(
            "{name} has shape {:?}: the metrics need a matrix",
            p.value.shape()
        )));
    }
    match model.relora().filter(|r| r.wraps_weight(name)) {
        Some(r) => {
            let module = name.trim_end_matches(".weight");
            let a = &param(&format!("{module}.A_lora.weight"))?.value;
            let b = &param(&format!("{module}.B_lora.weight"))?.value;
            if update {
                return lora_product(gpu, b, a, r.scale());
            }
            effective_weight(gpu, &p.value, b, a, r.scale())
        }
        None if update => p.grad.reshaped(p.value.shape()),
        None => p.value.reshaped(p.value.shape()),
    }
}
