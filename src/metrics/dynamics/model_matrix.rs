//! The matrices the study measures, of a live model: weights or their updates, with ReLoRA's
//! adapters taken into account.

use super::matrix_names::{parse_ov_name, w2_name};
use super::ov_circuit::layer_ov_circuit;
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

/// The matrix the study measures for `name` of a live model: a 2-D parameter name, or
/// `layers.{i}.ov_circuit` (`_vo`). With `update` false that is the weight (for a weight
/// ReLoRA wraps, the effective `W + s·B·A`); with `update` true its update (the gradient of
/// the last backward; for a wrapped weight the adapters' `s·B·A`).
pub fn model_matrix(gpu: &Gpu, model: &Decoder, name: &str, update: bool) -> Result<Tensor> {
    if let Some((layer, form)) = parse_ov_name(name) {
        return layer_ov_circuit(gpu, &model.config, layer, form, |weight| {
            model_matrix(gpu, model, weight, update)
        });
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
            let ba = lora_product(gpu, b, a, r.scale())?;
            if update {
                return Ok(ba);
            }
            let sum = Tensor::zeros(gpu, p.value.shape(), DType::F32)?;
            crate::gpu::run_all(gpu, &[elementwise::add(gpu, &p.value, &ba, &sum)?]);
            Ok(sum)
        }
        None if update => p.grad.reshaped(p.value.shape()),
        None => p.value.reshaped(p.value.shape()),
    }
}
