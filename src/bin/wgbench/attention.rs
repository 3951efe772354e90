//! `wgbench attention`: GFLOP/s of every attention variant, forward and backward, at pico's
//! head shapes, side by side in one run.

use crate::{print_adapter, time_gpu};
use wgtrain::bench::shapes::HEAD_SHAPES;
use wgtrain::bench::workloads::{attention_backward_flops, attention_forward_flops, attention_ops};
use wgtrain::formulas::kernels::KernelPins;
use wgtrain::gpu::{Backend, Dispatch};
use wgtrain::ops::attention::{self, AttentionKernel, AttentionShape};
use wgtrain::{Gpu, GpuOptions, Result};

/// Seconds per forward and per backward of `shape` on `gpu`.
pub fn time_attention(gpu: &Gpu, s: AttentionShape, repeats: usize) -> Result<(f64, f64)> {
    let ops = attention_ops(gpu, s)?;
    let t_fwd = time_gpu(gpu, repeats, &|pass| record_all(&ops.forward, pass));
    let t_bwd = time_gpu(gpu, repeats, &|pass| record_all(&ops.backward, pass));
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
                    attention_forward_flops(&s) / f / 1e9,
                    b * 1e3,
                    attention_backward_flops(&s) / b / 1e9,
                    tf / f,
                    tb / b
                );
            }
        }
    }
    Ok(())
}
