//! Criterion bench of the matmul kernels on the default adapter (lavapipe in CI machines).
//! `wgbench matmul` gives the GFLOP/s table with baselines; this tracks changes over time.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgtrain::gpu::DType;
use wgtrain::ops::{Matmul, MatmulKernel, MatmulSpec};
use wgtrain::{Gpu, GpuOptions, Tensor};

fn bench(c: &mut Criterion) {
    let gpu = match Gpu::new_blocking(GpuOptions::default()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("skipping the matmul bench: {e}");
            return;
        }
    };
    let mut group = c.benchmark_group(format!("matmul on {}", gpu.adapter.name));
    group.sample_size(10);
    for (m, k, n, trans_b) in [
        (256, 256, 256, false),
        (512, 96, 384, true),
        (512, 384, 96, true),
    ] {
        let a = Tensor::zeros(&gpu, &[m, k], DType::F32).unwrap();
        let b_shape = if trans_b { [n, k] } else { [k, n] };
        let b = Tensor::zeros(&gpu, &b_shape, DType::F32).unwrap();
        let out = Tensor::zeros(&gpu, &[m, n], DType::F32).unwrap();
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        for kernel in MatmulKernel::VARIANTS {
            let spec = MatmulSpec {
                trans_b,
                kernel,
                ..MatmulSpec::default()
            };
            let op = Matmul::new(&gpu, &a, &b, &out, spec).unwrap();
            group.bench_function(
                format!("{m}x{k}x{n} trans_b={trans_b} {kernel:?}"),
                |bench| {
                    bench.iter(|| {
                        op.run(&gpu);
                        gpu.finish_blocking().unwrap();
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
