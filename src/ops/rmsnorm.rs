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
    /// Backward only: 1 adds dx into its buffer instead of overwriting it.
    accumulate: u32,
    pad: [u32; 3],
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
        accumulate: 0,
        pad: [0; 3],
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

/// The residual add fused with the norm after it: `h = x + b` (written, the residual
/// stream) and `y = rmsnorm(h) * w`, `rstd` as in [`forward`]. Bitwise the same as
/// `elementwise::add` then [`forward`], in one dispatch.
#[allow(clippy::too_many_arguments)]
pub fn add_forward(
    gpu: &Gpu,
    x: &Tensor,
    b: &Tensor,
    w: &Tensor,
    eps: f32,
    h: &Tensor,
    y: &Tensor,
    rstd: &Tensor,
) -> Result<Dispatch> {
    let op = "add + rmsnorm";
    same_shape(op, x, b, ("x", "b"))?;
    same_shape(op, x, h, ("x", "h"))?;
    same_shape(op, x, y, ("x", "y"))?;
    if rstd.numel() != x.rows() {
        return Err(Error::Shape {
            op,
            detail: format!("rstd has {} elements for {} rows", rstd.numel(), x.rows()),
        });
    }
    if std::ptr::eq(h, x) || std::ptr::eq(h, b) || std::ptr::eq(y, h) {
        return Err(Error::Shape {
            op,
            detail: "h must be its own tensor, apart from x, b and y".into(),
        });
    }
    let (p, grid) = params(gpu, x, w, eps)?;
    Ok(Dispatch::with_bindings(
        gpu,
        &RMSNORM,
        "add_rmsnorm_forward",
        bytemuck::bytes_of(&p),
        &[
            (1, whole(x, op, "x")?),
            (2, whole(w, op, "w")?),
            (3, whole(y, op, "y")?),
            (4, whole(rstd, op, "rstd")?),
            (6, whole(b, op, "b")?),
            (7, whole(h, op, "h")?),
        ],
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
    backward_with(gpu, x, w, rstd, dy, eps, dx, dw, false)
}

/// [`backward`] adding dx into `dx` (the residual stream's gradient, which the norm's input
/// also feeds) instead of overwriting it: the backward of a norm and the residual
/// `elementwise::accumulate` after it in one dispatch pair.
#[allow(clippy::too_many_arguments)]
pub fn backward_accumulating(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    eps: f32,
    dx: &Tensor,
    dw: &Tensor,
) -> Result<[Dispatch; 2]> {
    backward_with(gpu, x, w, rstd, dy, eps, dx, dw, true)
}

#[allow(clippy::too_many_arguments)]
fn backward_with(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    eps: f32,
    dx: &Tensor,
    dw: &Tensor,
    accumulate: bool,
) -> Result<[Dispatch; 2]> {
    let op = "rmsnorm backward";
    same_shape(op, x, dy, ("x", "dy"))?;
    same_shape(op, x, dx, ("x", "dx"))?;
    same_shape(op, w, dw, ("w", "dw"))?;
    if std::ptr::eq(dx, dy) || std::ptr::eq(dx, x) {
        return Err(Error::Shape {
            op,
            detail: "dx must not be dy or x".into(),
        });
    }
    let (mut p, grid) = params(gpu, x, w, eps)?;
    p.accumulate = accumulate as u32;
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
