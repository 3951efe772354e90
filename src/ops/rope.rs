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
    pad: [u32; 2],
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
    let n_pairs = x.numel() / 2;
    let grid = grid_2d(gpu, n_pairs.div_ceil(256))?;
    let p = Params {
        n_pairs: to_u32(n_pairs)?,
        seq: to_u32(seq)?,
        heads: to_u32(heads)?,
        half: to_u32(head_dim / 2)?,
        sign: if backward { -1.0 } else { 1.0 },
        groups_x: grid[0],
        pad: [0; 2],
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
