//! Criterion bench of every matmul variant on the suite's quick shapes (a square and tiny's
//! layers, forward and both backward products). `wgbench suite` gives the table with
//! baselines; this tracks changes over time.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgtrain::bench::shapes::{matmul_cases, Size};
use wgtrain::bench::workloads::{matmul_op, matmul_operands, random};

fn bench(c: &mut Criterion) {
    let Some(gpu) = common::gpu("matmul") else {
        return;
    };
    let mut group = common::group(c, "matmul", &gpu);
    for case in matmul_cases(Size::Quick) {
        let s = case.shape;
        let operands = matmul_operands(&gpu, &s, &random(s.m * s.k, 1), &random(s.k * s.n, 2))
            .expect("operands");
        group.throughput(Throughput::Elements(s.flops() as u64));
        for kernel in wgtrain::ops::matmul::available_kernels(&gpu) {
            let op = matmul_op(&gpu, &s, &operands, kernel).expect("matmul");
            group.bench_function(format!("{} {kernel}", case.label()), |b| {
                b.iter(|| {
                    op.run(&gpu);
                    gpu.finish_blocking().unwrap();
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
