//! RMSNorm, forward and backward: `y = x * rstd * w` over rows of length d.
//! Forward saves `rstd` per row; backward overwrites dx and adds into dw (summed over rows
//! in order, no atomics, so it is deterministic; parameter gradients always accumulate).

use super::common::{grid_2d, same_shape, to_u32, whole};
use crate::error::{Error, Result};
use crate::gpu::shaders::RMSNORM;
use crate::gpu::{Dispatch, Gpu, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    groups_x: u32,
}

fn params(gpu: &Gpu, x: &Tensor, w: &Tensor, eps: f32) -> Result<(Params, [u32; 3])> {
    let d = x.row_len();
    if w.shape() != [d] {
        return Err(Error::Shape {
            op: "rmsnorm",
            detail: format!("weight is {:?}, expected [{d}]", w.shape()),
        });
    }
    let grid = grid_2d(gpu, x.rows())?;
    let p = Params {
        rows: to_u32(x.rows())?,
        d: to_u32(d)?,
        eps,
        groups_x: grid[0],
    };
    Ok((p, grid))
}

/// `y = rmsnorm(x) * w`; `rstd` ([rows]) receives 1/rms of each row for the backward.
pub fn forward(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    eps: f32,
    y: &Tensor,
    rstd: &Tensor,
) -> Result<Dispatch> {
    let op = "rmsnorm";
    same_shape(op, x, y, ("x", "y"))?;
    if rstd.numel() != x.rows() {
        return Err(Error::Shape {
            op,
            detail: format!("rstd has {} elements for {} rows", rstd.numel(), x.rows()),
        });
    }
    let (p, grid) = params(gpu, x, w, eps)?;
    let bufs = [
        whole(x, op, "x")?,
        whole(w, op, "w")?,
        whole(y, op, "y")?,
        whole(rstd, op, "rstd")?,
    ];
    Ok(Dispatch::new(
        gpu,
        &RMSNORM,
        "rmsnorm_forward",
        bytemuck::bytes_of(&p),
        &bufs,
        grid,
    ))
}

/// dx (overwritten) and dw (accumulated) from dy, using the forward's x and rstd.
/// Two dispatches, in order.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    eps: f32,
    dx: &Tensor,
    dw: &Tensor,
) -> Result<[Dispatch; 2]> {
    let op = "rmsnorm backward";
    same_shape(op, x, dy, ("x", "dy"))?;
    same_shape(op, x, dx, ("x", "dx"))?;
    same_shape(op, w, dw, ("w", "dw"))?;
    let (p, grid) = params(gpu, x, w, eps)?;
    let (xb, wb, rb, dyb) = (
        whole(x, op, "x")?,
        whole(w, op, "w")?,
        whole(rstd, op, "rstd")?,
        whole(dy, op, "dy")?,
    );
    let input = Dispatch::with_bindings(
        gpu,
        &RMSNORM,
        "rmsnorm_backward_input",
        bytemuck::bytes_of(&p),
        &[
            (1, xb),
            (2, wb),
            (3, whole(dx, op, "dx")?),
            (4, rb),
            (5, dyb),
        ],
        grid,
    );
    let weight = Dispatch::with_bindings(
        gpu,
        &RMSNORM,
        "rmsnorm_backward_weight",
        bytemuck::bytes_of(&p),
        &[(1, xb), (3, whole(dw, op, "dw")?), (4, rb), (5, dyb)],
        [to_u32(x.row_len().div_ceil(64))?.max(1), 1, 1],
    );
    Ok([input, weight])
}
