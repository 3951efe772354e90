//! `wgbench attention`: GFLOP/s of every attention variant, forward and backward, at pico's
//! head shapes, side by side in one run.

use crate::{print_adapter, random, time_gpu};
use wgtrain::formulas::kernels::KernelPins;
use wgtrain::gpu::{Backend, DType, Dispatch};
use wgtrain::ops::attention::{self, AttentionKernel, AttentionShape};
use wgtrain::{Gpu, GpuOptions, Result, Tensor};

/// Pico's head shapes: (preset, heads, kv heads, head_dim).
pub const HEAD_SHAPES: [(&str, usize, usize, usize); 2] =
    [("tiny", 12, 4, 8), ("small", 12, 4, 32)];

/// Useful FLOPs of the causal forward: q·k and p·v over the T(T+1)/2 visible pairs per head.
pub fn forward_flops(s: &AttentionShape) -> f64 {
    let pairs = (s.seq * (s.seq + 1) / 2) as f64;
    4.0 * (s.batch * s.heads * s.head_dim) as f64 * pairs
}

/// The backward counted as 2.5 forwards (five products over the pairs, the scores recomputed),
/// as flash-attention papers count it.
pub fn backward_flops(s: &AttentionShape) -> f64 {
    2.5 * forward_flops(s)
}

/// Seconds per forward and per backward of `shape` on `gpu` (median of `repeats` batches).
pub fn time_attention(gpu: &Gpu, s: AttentionShape, repeats: usize) -> Result<(f64, f64)> {
    let qs = [s.batch, s.seq, s.heads, s.head_dim];
    let kvs = [s.batch, s.seq, s.kv_heads, s.head_dim];
    let ls = [s.batch, s.heads, s.seq];
    let n = |d: &[usize]| d.iter().product::<usize>();
    let q = Tensor::from_f32(gpu, &qs, &random(n(&qs), 1))?;
    let k = Tensor::from_f32(gpu, &kvs, &random(n(&kvs), 2))?;
    let v = Tensor::from_f32(gpu, &kvs, &random(n(&kvs), 3))?;
    let dout = Tensor::from_f32(gpu, &qs, &random(n(&qs), 4))?;
    let zeros = |d: &[usize]| Tensor::zeros(gpu, d, DType::F32);
    let (out, lse, delta) = (zeros(&qs)?, zeros(&ls)?, zeros(&ls)?);
    let (dq, dk, dv) = (zeros(&qs)?, zeros(&kvs)?, zeros(&kvs)?);
    let fwd = attention::forward(gpu, &q, &k, &v, &out, &lse, s)?;
    let bwd = attention::backward(gpu, &q, &k, &v, &out, &lse, &dout, &dq, &dk, &dv, &delta, s)?;
    let t_fwd = time_gpu(gpu, repeats, &|pass| record_all(&fwd, pass));
    let t_bwd = time_gpu(gpu, repeats, &|pass| record_all(&bwd, pass));
    Ok((t_fwd, t_bwd))
}

fn record_all(dispatches: &[Dispatch], pass: &mut wgpu::ComputePass<'_>) {
    for d in dispatches {
        d.record(pass);
    }
}

/// The device of `backend` with attention pinned to `variant`.
pub fn open_pinned(backend: &str, variant: AttentionKernel) -> Result<Gpu> {
    Gpu::new_blocking(GpuOptions {
        backend: backend.parse::<Backend>()?,
        kernels: KernelPins {
            attention: variant,
            ..KernelPins::default()
        },
        ..Default::default()
    })
}

pub fn bench_attention(backend: &str, batch: usize, seqs: &[usize], repeats: usize) -> Result<()> {
    let gpus: Vec<(AttentionKernel, Gpu)> = AttentionKernel::VARIANTS
        .iter()
        .map(|&v| open_pinned(backend, v).map(|g| (v, g)))
        .collect::<Result<_>>()?;
    print_adapter(&gpus[0].1);
    let auto = open_pinned(backend, AttentionKernel::Auto)?;
    println!("auto picks: {}", attention::kernel_for(&auto, 8));
    println!("FLOPs: forward 4·B·H·hd·T(T+1)/2 (causal pairs only), backward 2.5x the forward");
    println!();
    println!("| shape (B x T, H/KV x hd) | variant | forward ms | forward GFLOP/s | backward ms | backward GFLOP/s | vs tiled (fwd / bwd) |");
    println!("|---|---|---|---|---|---|---|");
    for (preset, heads, kv, hd) in HEAD_SHAPES {
        for &seq in seqs {
            let s = AttentionShape::new(batch, seq, heads, kv, hd);
            let mut tiled = None;
            for (variant, gpu) in &gpus {
                let (f, b) = time_attention(gpu, s, repeats)?;
                let (tf, tb) = *tiled.get_or_insert((f, b));
                println!(
                    "| {preset} {batch} x {seq}, {heads}/{kv} x {hd} | {variant} | {:.1} | {:.2} | {:.1} | {:.2} | {:.2}x / {:.2}x |",
                    f * 1e3,
                    forward_flops(&s) / f / 1e9,
                    b * 1e3,
                    backward_flops(&s) / b / 1e9,
                    tf / f,
                    tb / b
                );
            }
        }
    }
    Ok(())
}
