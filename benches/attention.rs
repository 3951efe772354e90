//! Criterion bench of the attention forward and backward (the adapter's variant) at pico's
//! head shapes and the suite's quick sequence length.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgtrain::bench::shapes::{attention_seqs, Size, HEAD_SHAPES};
use wgtrain::bench::workloads::{attention_backward_flops, attention_forward_flops, attention_ops};
use wgtrain::ops::attention::AttentionShape;

fn bench(c: &mut Criterion) {
    let Some(gpu) = common::gpu("attention") else {
        return;
    };
    let mut group = common::group(c, "attention", &gpu);
    for (preset, heads, kv, hd) in HEAD_SHAPES {
        for &seq in attention_seqs(Size::Quick) {
            let s = AttentionShape::new(1, seq, heads, kv, hd);
            let ops = attention_ops(&gpu, s).expect("attention");
            for (what, dispatches, flops) in [
                ("forward", &ops.forward, attention_forward_flops(&s)),
                ("backward", &ops.backward, attention_backward_flops(&s)),
            ] {
                group.throughput(Throughput::Elements(flops as u64));
                group.bench_function(format!("{preset} 1 x {seq} {what}"), |b| {
                    b.iter(|| {
                        common::run(&gpu, &mut |enc| {
                            let mut pass = enc.begin_compute_pass(&Default::default());
                            for d in dispatches {
                                d.record(&mut pass);
                            }
                        })
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
