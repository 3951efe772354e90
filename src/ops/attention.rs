//! Causal grouped-query attention, flash-attention style, forward and backward.
//!
//! q, out, dout, dq are `[B, T, H, hd]`; k, v, dk, dv are `[B, T, KV, hd]`; lse and delta are
//! `[B, H, T]`. Query head h reads kv head `h / (H / KV)`, scores are scaled by `1/sqrt(hd)`.
//! The kernels tile over query and key blocks with an online softmax, so memory grows linearly
//! with T (no T x T matrix is stored), and use no atomics: dK/dV are summed per key block over
//! the query blocks and the group's query heads in a fixed order, dQ per query block over the
//! key blocks, so results are deterministic.

use super::common::{grid_2d, to_u32, whole};
use crate::error::{Error, Result};
use crate::gpu::shaders::{ATTENTION, ATTENTION_ROWS};
use crate::gpu::{Dispatch, Gpu, Tensor};

pub use crate::formulas::attention::AttentionShape;
pub use crate::formulas::kernels::AttentionKernel;

/// The variant that runs on `gpu` for heads of `head_dim`: its pin, else rows on software
/// adapters (where workgroup memory and barriers only cost) and tiles on GPUs. The rows
/// kernel reads heads as vec4s, so where 4 does not divide `head_dim` the tiles run.
pub fn kernel_for(gpu: &Gpu, head_dim: usize) -> AttentionKernel {
    let chosen = match gpu.kernels().attention {
        AttentionKernel::Auto if gpu.is_cpu() => AttentionKernel::Rows,
        AttentionKernel::Auto => AttentionKernel::Tiled,
        pinned => pinned,
    };
    if chosen == AttentionKernel::Rows && !head_dim.is_multiple_of(4) {
        AttentionKernel::Tiled
    } else {
        chosen
    }
}

/// The largest head_dim whose rows kernels get constant, unrollable loops.
const ROWS_UNROLLED_HEAD_DIM: usize = 32;

/// Rows per workgroup of `attention_rows.wgsl` (its WG).
const ROWS_PER_GROUP: usize = 16;

/// Largest head_dim the kernels' fixed workgroup tiles hold.
pub const MAX_HEAD_DIM: usize = 128;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    seq: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    group: u32,
    bq: u32,
    bk: u32,
    blocks: u32,
    total: u32,
    groups_x: u32,
    scale: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    Forward,
    Delta,
    Dq,
    Dkv,
}

/// Largest power of two not above `x` (at least 1).
fn pow2_floor(x: usize) -> usize {
    1 << x.max(1).ilog2()
}

/// (query rows, key rows) per block of `kernel`, for `hd <= 128`. They keep each kernel's tiles
/// inside the shader's fixed workgroup arrays (tile_a 2048, tile_b 1024, tile_s 512 floats),
/// with powers of two <= 64 so the 64 invocations split rows evenly; the bounds match the
/// comments at each entry point of `attention.wgsl`.
fn block_sizes(kernel: Kernel, hd: usize) -> (usize, usize) {
    match kernel {
        // Q: bq * hd <= 2048; K or V: bk * hd <= 1024; scores: bq * bk <= 512.
        Kernel::Forward => {
            let bq = pow2_floor((2048 / hd).min(64));
            (bq, pow2_floor((1024 / hd).min(512 / bq).min(64)))
        }
        // Q and dout: 2 * bq * hd <= 2048; K or V: bk * hd <= 1024; dp/ds: bq * bk <= 512.
        Kernel::Dq => {
            let bq = pow2_floor((1024 / hd).min(64));
            (bq, pow2_floor((1024 / hd).min(512 / bq).min(64)))
        }
        // K and V: 2 * bk * hd <= 2048; Q and dout: 2 * bq * hd <= 1024; p and ds:
        // 2 * bq * bk <= 512. Key blocks of at most 32 keep several workgroups per sequence.
        Kernel::Dkv => {
            let bk = pow2_floor((1024 / hd).min(32));
            (pow2_floor((512 / hd).min(256 / bk).min(64)), bk)
        }
        Kernel::Delta => (1, 1),
    }
}

/// The shapes of q (and out, dout, dq), of k (and v, dk, dv) and of lse (and delta).
fn layouts(s: &AttentionShape) -> ([usize; 4], [usize; 4], [usize; 3]) {
    (
        [s.batch, s.seq, s.heads, s.head_dim],
        [s.batch, s.seq, s.kv_heads, s.head_dim],
        [s.batch, s.heads, s.seq],
    )
}

fn check_shape(op: &'static str, s: &AttentionShape) -> Result<()> {
    check_heads(op, s.heads, s.kv_heads, s.head_dim)
}

/// Query heads a non-zero multiple of kv heads, and a head size the kernels' tiles hold
/// (shared with [`super::attention_decode`]).
pub(super) fn check_heads(
    op: &'static str,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
) -> Result<()> {
    let bad = |detail: String| Err(Error::Shape { op, detail });
    if kv_heads == 0 || heads == 0 || !heads.is_multiple_of(kv_heads) {
        return bad(format!(
            "heads ({heads}) must be a non-zero multiple of kv_heads ({kv_heads})"
        ));
    }
    if head_dim == 0 || head_dim > MAX_HEAD_DIM {
        return bad(format!(
            "head_dim {head_dim} is outside the supported 1..={MAX_HEAD_DIM}"
        ));
    }
    Ok(())
}

/// The buffer of `t`, after checking it is f32, one binding, and shaped exactly `want`.
fn expect<'t>(
    op: &'static str,
    t: &'t Tensor,
    name: &str,
    layout: &str,
    want: &[usize],
) -> Result<&'t wgpu::Buffer> {
    if t.shape() != want {
        return Err(Error::Shape {
            op,
            detail: format!("{name} is {:?}, expected {layout} = {want:?}", t.shape()),
        });
    }
    whole(t, op, name)
}

fn params(
    gpu: &Gpu,
    s: &AttentionShape,
    kernel: Kernel,
    variant: AttentionKernel,
) -> Result<(Params, [u32; 3])> {
    let (bq, bk) = if variant == AttentionKernel::Rows && kernel != Kernel::Delta {
        (ROWS_PER_GROUP, ROWS_PER_GROUP)
    } else {
        block_sizes(kernel, s.head_dim)
    };
    let (blocks, total) = match kernel {
        Kernel::Forward | Kernel::Dq => {
            let blocks = s.seq.div_ceil(bq);
            (blocks, s.batch * s.heads * blocks)
        }
        Kernel::Dkv => {
            let blocks = s.seq.div_ceil(bk);
            (blocks, s.batch * s.kv_heads * blocks)
        }
        // One invocation per (b, h, t) row, 64 to a workgroup.
        Kernel::Delta => (1, (s.batch * s.heads * s.seq).div_ceil(64)),
    };
    // The kernels' 32-bit indices must reach every element.
    to_u32(s.batch * s.seq * s.heads.max(s.kv_heads) * s.head_dim)?;
    let grid = grid_2d(gpu, total)?;
    let p = Params {
        batch: to_u32(s.batch)?,
        seq: to_u32(s.seq)?,
        heads: to_u32(s.heads)?,
        kv_heads: to_u32(s.kv_heads)?,
        head_dim: to_u32(s.head_dim)?,
        group: to_u32(s.heads / s.kv_heads)?,
        bq: to_u32(bq)?,
        bk: to_u32(bk)?,
        blocks: to_u32(blocks)?,
        total: to_u32(total)?,
        groups_x: grid[0],
        scale: s.scale() as f32,
    };
    Ok((p, grid))
}

/// `out = softmax(scale * q kᵀ + causal mask) v` per head, and `lse` ([B, H, T]) the
/// logsumexp of each query's scaled scores, which [`backward`] needs. One dispatch (none when
/// the batch or sequence is empty).
pub fn forward(
    gpu: &Gpu,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    shape: AttentionShape,
) -> Result<Vec<Dispatch>> {
    let op = "attention";
    check_shape(op, &shape)?;
    let s = &shape;
    let (qs, kvs, ls) = layouts(s);
    let bufs = [
        (1, expect(op, q, "q", "[B, T, H, hd]", &qs)?),
        (2, expect(op, k, "k", "[B, T, KV, hd]", &kvs)?),
        (3, expect(op, v, "v", "[B, T, KV, hd]", &kvs)?),
        (4, expect(op, out, "out", "[B, T, H, hd]", &qs)?),
        (5, expect(op, lse, "lse", "[B, H, T]", &ls)?),
    ];
    if s.batch == 0 || s.seq == 0 {
        return Ok(Vec::new());
    }
    Ok(vec![kernel_dispatch(gpu, s, Kernel::Forward, &bufs)?])
}

/// The dispatch of one kernel of the variant that runs on `gpu`.
fn kernel_dispatch(
    gpu: &Gpu,
    s: &AttentionShape,
    kernel: Kernel,
    bufs: &[(u32, &wgpu::Buffer)],
) -> Result<Dispatch> {
    let variant = kernel_for(gpu, s.head_dim);
    let (p, grid) = params(gpu, s, kernel, variant)?;
    let p = bytemuck::bytes_of(&p);
    let rows_entry = match kernel {
        Kernel::Forward => "attention_rows_forward",
        Kernel::Dq => "attention_rows_dq",
        Kernel::Dkv => "attention_rows_dkv",
        // One short pass over rows, shared by both variants.
        Kernel::Delta => "",
    };
    if variant == AttentionKernel::Rows && !rows_entry.is_empty() {
        // Loops over heads up to 32 wide unroll; larger ones keep a loop (see the shader).
        let n4 = if s.head_dim <= ROWS_UNROLLED_HEAD_DIM {
            s.head_dim / 4
        } else {
            0
        };
        let hd = [("HD4", n4 as f64)];
        return Ok(Dispatch::with_constants(
            gpu,
            &ATTENTION_ROWS,
            rows_entry,
            &hd,
            p,
            bufs,
            grid,
        ));
    }
    let entry = match kernel {
        Kernel::Forward => "attention_forward",
        Kernel::Delta => "attention_backward_delta",
        Kernel::Dq => "attention_backward_dq",
        Kernel::Dkv => "attention_backward_dkv",
    };
    Ok(Dispatch::with_bindings(
        gpu, &ATTENTION, entry, p, bufs, grid,
    ))
}

/// dq, dk, dv (overwritten) from `dout`, using the forward's `q`, `k`, `v`, `out` and `lse`.
/// `delta` ([B, H, T]) is scratch for `rowsum(dout * out)`. Three dispatches, to record in
/// order (none when the batch or sequence is empty).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    gpu: &Gpu,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    dout: &Tensor,
    dq: &Tensor,
    dk: &Tensor,
    dv: &Tensor,
    delta: &Tensor,
    shape: AttentionShape,
) -> Result<Vec<Dispatch>> {
    let op = "attention backward";
    check_shape(op, &shape)?;
    let s = &shape;
    let (qs, kvs, ls) = layouts(s);
    let (qb, kb, vb) = (
        expect(op, q, "q", "[B, T, H, hd]", &qs)?,
        expect(op, k, "k", "[B, T, KV, hd]", &kvs)?,
        expect(op, v, "v", "[B, T, KV, hd]", &kvs)?,
    );
    let ob = expect(op, out, "out", "[B, T, H, hd]", &qs)?;
    let lb = expect(op, lse, "lse", "[B, H, T]", &ls)?;
    let dob = expect(op, dout, "dout", "[B, T, H, hd]", &qs)?;
    let dqb = expect(op, dq, "dq", "[B, T, H, hd]", &qs)?;
    let dkb = expect(op, dk, "dk", "[B, T, KV, hd]", &kvs)?;
    let dvb = expect(op, dv, "dv", "[B, T, KV, hd]", &kvs)?;
    let deb = expect(op, delta, "delta", "[B, H, T]", &ls)?;
    if s.batch == 0 || s.seq == 0 {
        return Ok(Vec::new());
    }
    let dispatch = |kernel, bufs: &[(u32, &wgpu::Buffer)]| kernel_dispatch(gpu, s, kernel, bufs);
    Ok(vec![
        dispatch(Kernel::Delta, &[(4, ob), (6, dob), (7, deb)])?,
        dispatch(
            Kernel::Dq,
            &[
                (1, qb),
                (2, kb),
                (3, vb),
                (5, lb),
                (6, dob),
                (7, deb),
                (8, dqb),
            ],
        )?,
        dispatch(
            Kernel::Dkv,
            &[
                (1, qb),
                (2, kb),
                (3, vb),
                (5, lb),
                (6, dob),
                (7, deb),
                (9, dkb),
                (10, dvb),
            ],
        )?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel's tiles fit the shader's arrays, and its rows split evenly over 64
    /// invocations with at most the register accumulators the shader declares.
    #[test]
    fn block_sizes_fit_the_shader_tiles() {
        for hd in 1..=MAX_HEAD_DIM {
            let (bq, bk) = block_sizes(Kernel::Forward, hd);
            assert!(
                bq * hd <= 2048 && bk * hd <= 1024 && bq * bk <= 512,
                "fwd {hd}"
            );
            assert!(64 % bq == 0 && (hd * bq).div_ceil(64) <= 32, "fwd {hd}");
            let (bq, bk) = block_sizes(Kernel::Dq, hd);
            assert!(
                2 * bq * hd <= 2048 && bk * hd <= 1024 && bq * bk <= 512,
                "dq {hd}"
            );
            assert!(64 % bq == 0 && (hd * bq).div_ceil(64) <= 16, "dq {hd}");
            let (bq, bk) = block_sizes(Kernel::Dkv, hd);
            assert!(2 * bk * hd <= 2048 && 2 * bq * hd <= 1024 && 2 * bq * bk <= 512);
            assert!(
                64 % bk == 0 && (hd * bk).div_ceil(64) <= 16 && bq <= 64,
                "dkv {hd}"
            );
        }
    }
}
