//! The elementwise part of SwiGLU, forward and backward: `h = silu(g) * u`.
//! (`g = x W_0ᵀ` and `u = x W_1ᵀ` come from the matmul.)

use super::common::{flat_params, same_shape, whole};
use crate::error::Result;
use crate::gpu::shaders::SWIGLU;
use crate::gpu::{Dispatch, Gpu, Tensor};

pub fn forward(gpu: &Gpu, g: &Tensor, u: &Tensor, h: &Tensor) -> Result<Dispatch> {
    let op = "swiglu";
    same_shape(op, g, u, ("g", "u"))?;
    same_shape(op, g, h, ("g", "h"))?;
    let (p, grid) = flat_params(gpu, g.numel())?;
    let bufs = [whole(g, op, "g")?, whole(u, op, "u")?, whole(h, op, "h")?];
    Ok(Dispatch::new(
        gpu,
        &SWIGLU,
        "swiglu_forward",
        bytemuck::bytes_of(&p),
        &bufs,
        grid,
    ))
}

pub fn backward(
    gpu: &Gpu,
    g: &Tensor,
    u: &Tensor,
    dh: &Tensor,
    dg: &Tensor,
    du: &Tensor,
) -> Result<Dispatch> {
    let op = "swiglu backward";
    for (t, name) in [(u, "u"), (dh, "dh"), (dg, "dg"), (du, "du")] {
        same_shape(op, g, t, ("g", name))?;
    }
    let (p, grid) = flat_params(gpu, g.numel())?;
    let bufs = [
        whole(g, op, "g")?,
        whole(u, op, "u")?,
        whole(dg, op, "dg")?,
        whole(dh, op, "dh")?,
        whole(du, op, "du")?,
    ];
    Ok(Dispatch::new(
        gpu,
        &SWIGLU,
        "swiglu_backward",
        bytemuck::bytes_of(&p),
        &bufs,
        grid,
    ))
}
