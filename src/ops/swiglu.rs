//! The elementwise part of SwiGLU, forward and backward: `h = silu(g) * u`.
//! (`g = x W_0ᵀ` and `u = x W_1ᵀ` come from the matmul.)

use super::common::{grid_2d, same_shape, to_u32, whole};
use crate::error::Result;
use crate::gpu::shaders::SWIGLU;
use crate::gpu::{Dispatch, Gpu, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    groups_x: u32,
    pad: [u32; 2],
}

fn params(gpu: &Gpu, n: usize) -> Result<(Params, [u32; 3])> {
    let grid = grid_2d(gpu, n.div_ceil(256))?;
    Ok((
        Params {
            n: to_u32(n)?,
            groups_x: grid[0],
            pad: [0; 2],
        },
        grid,
    ))
}

pub fn forward(gpu: &Gpu, g: &Tensor, u: &Tensor, h: &Tensor) -> Result<Dispatch> {
    let op = "swiglu";
    same_shape(op, g, u, ("g", "u"))?;
    same_shape(op, g, h, ("g", "h"))?;
    let (p, grid) = params(gpu, g.numel())?;
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
    let (p, grid) = params(gpu, g.numel())?;
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
