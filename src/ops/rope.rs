//! Rotary position embedding with interleaved pairs, forward and backward, on tensors laid
//! out `[B, T, heads, head_dim]`. The cos/sin table is built on the host in f64.

use super::common::{grid_2d, same_shape, to_u32, whole};
use crate::error::{Error, Result};
use crate::gpu::shaders::ROPE;
use crate::gpu::{Dispatch, Gpu, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_pairs: u32,
    seq: u32,
    heads: u32,
    half: u32,
    sign: f32,
    groups_x: u32,
    n_pairs_2: u32,
    heads_2: u32,
}

/// `[seq, head_dim / 2, 2]`: cos and sin of `t * theta^(-2i / head_dim)`.
pub fn table(seq: usize, head_dim: usize, theta: f64) -> Vec<f32> {
    let half = head_dim / 2;
    let mut out = Vec::with_capacity(seq * half * 2);
    for t in 0..seq {
        for i in 0..half {
            let angle = t as f64 * theta.powf(-2.0 * i as f64 / head_dim as f64);
            out.push(angle.cos() as f32);
            out.push(angle.sin() as f32);
        }
    }
    out
}

/// `y = rope(x)` (`backward = false`) or `dx = rope⁻¹(dy)` (`backward = true`).
/// `x` is `[B, T, heads, head_dim]`; `cos_sin` comes from [`table`] for at least T positions.
pub fn apply(
    gpu: &Gpu,
    x: &Tensor,
    cos_sin: &Tensor,
    y: &Tensor,
    backward: bool,
) -> Result<Dispatch> {
    let op = "rope";
    let (seq, heads, head_dim) = layout(op, x, cos_sin, y)?;
    let n_pairs = x.numel() / 2;
    let grid = grid_2d(gpu, n_pairs.div_ceil(256))?;
    let p = Params {
        n_pairs: to_u32(n_pairs)?,
        seq: to_u32(seq)?,
        heads: to_u32(heads)?,
        half: to_u32(head_dim / 2)?,
        sign: if backward { -1.0 } else { 1.0 },
        groups_x: grid[0],
        n_pairs_2: 0,
        heads_2: 0,
    };
    let bufs = [
        whole(x, op, "x")?,
        whole(cos_sin, op, "table")?,
        whole(y, op, "y")?,
    ];
    Ok(Dispatch::new(
        gpu,
        &ROPE,
        "rope_apply",
        bytemuck::bytes_of(&p),
        &bufs,
        grid,
    ))
}

/// [`apply`] on two tensors at once, `y[0] = rope(x[0])` and `y[1] = rope(x[1])`, in one
/// dispatch: q and k, whose batch, positions and head_dim agree but whose head counts may not.
pub fn apply_two(
    gpu: &Gpu,
    x: [&Tensor; 2],
    cos_sin: &Tensor,
    y: [&Tensor; 2],
    backward: bool,
) -> Result<Dispatch> {
    let op = "rope (two tensors)";
    let (seq, heads, head_dim) = layout(op, x[0], cos_sin, y[0])?;
    let (seq_2, heads_2, head_dim_2) = layout(op, x[1], cos_sin, y[1])?;
    if (x[0].shape()[0], seq, head_dim) != (x[1].shape()[0], seq_2, head_dim_2) {
        return Err(Error::Shape {
            op,
            detail: format!(
                "the two tensors need the same batch, positions and head_dim: {:?} and {:?}",
                x[0].shape(),
                x[1].shape()
            ),
        });
    }
    let (n_pairs, n_pairs_2) = (x[0].numel() / 2, x[1].numel() / 2);
    let grid = grid_2d(gpu, (n_pairs + n_pairs_2).div_ceil(256))?;
    let p = Params {
        n_pairs: to_u32(n_pairs)?,
        seq: to_u32(seq)?,
        heads: to_u32(heads)?,
        half: to_u32(head_dim / 2)?,
        sign: if backward { -1.0 } else { 1.0 },
        groups_x: grid[0],
        n_pairs_2: to_u32(n_pairs_2)?,
        heads_2: to_u32(heads_2)?,
    };
    to_u32(n_pairs + n_pairs_2)?;
    let bufs = [
        whole(x[0], op, "x")?,
        whole(cos_sin, op, "table")?,
        whole(y[0], op, "y")?,
        whole(x[1], op, "second x")?,
        whole(y[1], op, "second y")?,
    ];
    Ok(Dispatch::new(
        gpu,
        &ROPE,
        "rope_apply_two",
        bytemuck::bytes_of(&p),
        &bufs,
        grid,
    ))
}

/// `(seq, heads, head_dim)` of `x` `[B, T, heads, head_dim]`, after checking y matches it,
/// head_dim is even and the table covers T positions.
fn layout(
    op: &'static str,
    x: &Tensor,
    cos_sin: &Tensor,
    y: &Tensor,
) -> Result<(usize, usize, usize)> {
    same_shape(op, x, y, ("input", "output"))?;
    let [_, seq, heads, head_dim] = *x.shape() else {
        return Err(Error::Shape {
            op,
            detail: format!("expected [B, T, heads, head_dim], got {:?}", x.shape()),
        });
    };
    if head_dim % 2 != 0 || cos_sin.numel() < seq * head_dim {
        return Err(Error::Shape {
            op,
            detail: format!(
                "head_dim {head_dim} must be even and the table must cover {seq} positions"
            ),
        });
    }
    Ok((seq, heads, head_dim))
}
