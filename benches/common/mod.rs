//! What the criterion benches share: the device (skipped with a message where there is none)
//! and a group configured for GPU work (few samples, short runs). Shapes come from the
//! suite's table (`wgtrain::bench::shapes`, its quick size), so a bench and `wgbench suite`
//! measure the same products.

#![allow(dead_code)]

use criterion::{BenchmarkGroup, Criterion};
use std::time::Duration;
use wgtrain::{Gpu, GpuOptions};

pub fn gpu(what: &str) -> Option<Gpu> {
    match Gpu::new_blocking(GpuOptions::default()) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("skipping the {what} bench: no adapter ({e})");
            None
        }
    }
}

pub fn group<'c>(
    c: &'c mut Criterion,
    family: &str,
    gpu: &Gpu,
) -> BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(format!("{family} on {}", gpu.adapter.name));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g
}

/// Submit what `record` encodes and wait for it.
pub fn run(gpu: &Gpu, record: &mut dyn FnMut(&mut wgpu::CommandEncoder)) {
    let mut enc = gpu.encoder();
    record(&mut enc);
    gpu.submit(enc);
    gpu.finish_blocking().expect("GPU error during a bench");
}
