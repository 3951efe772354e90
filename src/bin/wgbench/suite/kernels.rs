//! The kernel entries: every matmul variant on the suite's shapes beside the CPU's GEMM and
//! PyTorch, and every attention variant forward and backward at pico's head shapes.

use super::{Ctx, Sink};
use crate::attention::open_pinned;
use crate::cpu_gemm;
use std::time::Instant;
use wgtrain::bench::record::{Entry, Unit};
use wgtrain::bench::shapes::{self, MatmulCase};
use wgtrain::bench::workloads::{
    attention_backward_flops, attention_forward_flops, attention_ops, matmul_op, matmul_operands,
    random,
};
use wgtrain::formulas::kernels::{AttentionKernel, MatmulKernel};
use wgtrain::ops::attention::{self, AttentionShape};
use wgtrain::Gpu;

/// Median seconds of the CPU GEMM on `case` (one warm-up run).
fn cpu_seconds(case: &MatmulCase, a: &[f32], b: &[f32], repeats: usize) -> f64 {
    let s = case.shape;
    let mut c = vec![0f32; s.m * s.n];
    cpu_gemm(&s, a, b, &mut c);
    let mut t: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let t0 = Instant::now();
            cpu_gemm(&s, a, b, &mut c);
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

pub fn matmul(ctx: &Ctx, sink: &mut Sink) {
    if !sink.wants("matmul") {
        return;
    }
    let repeats = shapes::repeats(ctx.size);
    for case in shapes::matmul_cases(ctx.size) {
        let s = case.shape;
        let label = case.label();
        let a = random(s.m * s.k, 1);
        let b = random(s.k * s.n, 2);
        let cpu = cpu_seconds(&case, &a, &b, repeats);
        let operands = matmul_operands(ctx.gpu, &s, &a, &b);
        let picked = wgtrain::ops::matmul::choose_kernel(ctx.gpu, s);
        for kernel in std::iter::once(MatmulKernel::Auto).chain(MatmulKernel::VARIANTS) {
            sink.run("matmul", &label, Some(kernel.name()), || {
                let operands = operands
                    .as_ref()
                    .map_err(|e| wgtrain::Error::Invalid(e.to_string()))?;
                let mm = matmul_op(ctx.gpu, &s, operands, kernel)?;
                let t = ctx.timer.measure_pass(repeats, &|p| mm.record(p))?;
                let mut e = Entry::new("matmul", label.clone())
                    .variant(kernel.name())
                    .measured(t, s.flops(), Unit::GflopPerS);
                e.planned_bytes = Some(4 * (s.m * s.k + s.k * s.n + s.m * s.n) as u64);
                e.baseline("cpu gemm", cpu, s.flops());
                ctx.torch.add_matmul(&mut e, &label, s.flops());
                if kernel == MatmulKernel::Auto {
                    e = e.note("picks", picked.name());
                }
                Ok(e)
            });
        }
    }
}

/// Bytes an attention entry's tensors hold (q, k, v, out and their gradients, the row stats).
fn attention_bytes(s: &AttentionShape) -> u64 {
    let q = s.batch * s.seq * s.heads * s.head_dim;
    let kv = s.batch * s.seq * s.kv_heads * s.head_dim;
    let rows = s.batch * s.heads * s.seq;
    4 * (3 * q + 4 * kv + 2 * rows) as u64
}

pub fn attention(ctx: &Ctx, sink: &mut Sink) {
    if !sink.wants("attention forward") && !sink.wants("attention backward") {
        return;
    }
    let repeats = shapes::repeats(ctx.size);
    // One device per pinned variant; `auto` runs on the suite's own device.
    let mut devices: Vec<(AttentionKernel, Option<Gpu>)> = vec![(AttentionKernel::Auto, None)];
    for v in AttentionKernel::VARIANTS {
        match open_pinned(&ctx.backend, v) {
            Ok(g) => devices.push((v, Some(g))),
            Err(e) => sink.push(
                Entry::new("attention forward", "every shape")
                    .variant(v.name())
                    .skipped(e.to_string()),
            ),
        }
    }
    for (preset, heads, kv, hd) in shapes::HEAD_SHAPES {
        for &seq in shapes::attention_seqs(ctx.size) {
            let s = AttentionShape::new(1, seq, heads, kv, hd);
            let name = format!("{preset} 1 x {seq}, {heads}/{kv} heads x {hd}");
            for (variant, device) in &devices {
                let gpu = device.as_ref().unwrap_or(ctx.gpu);
                let timer = match wgtrain::bench::timing::Timer::new(gpu) {
                    Ok(t) => t,
                    Err(e) => {
                        sink.push(Entry::new("attention forward", &name).skipped(e.to_string()));
                        continue;
                    }
                };
                let ops = attention_ops(gpu, s);
                let picks = attention::kernel_for(gpu, hd).name();
                for (family, flops) in [
                    ("attention forward", attention_forward_flops(&s)),
                    ("attention backward", attention_backward_flops(&s)),
                ] {
                    sink.run(family, &name, Some(variant.name()), || {
                        let ops = ops
                            .as_ref()
                            .map_err(|e| wgtrain::Error::Invalid(e.to_string()))?;
                        let dispatches = if family == "attention forward" {
                            &ops.forward
                        } else {
                            &ops.backward
                        };
                        let t = timer.measure_pass(repeats, &|p| {
                            for d in dispatches {
                                d.record(p);
                            }
                        })?;
                        let mut e = Entry::new(family, name.clone())
                            .variant(variant.name())
                            .measured(t, flops, Unit::GflopPerS)
                            .note("runs", picks);
                        e.planned_bytes = Some(attention_bytes(&s));
                        Ok(e)
                    });
                }
            }
        }
    }
}
