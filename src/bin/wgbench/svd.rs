//! `wgbench svd`: the on-device SVD and the metrics of pico's matrix shapes, timed beside a
//! CPU SVD (nalgebra, f64) in the same run.

use crate::{open_gpu, print_adapter, random, xorshift};
use std::time::Instant;
use wgtrain::bench::record::Timing;
use wgtrain::bench::timing::WALL;
use wgtrain::metrics::dynamics::MetricsPlan;
use wgtrain::metrics::svd::{SvdPlan, SvdReport};
use wgtrain::model::config::ModelConfig;
use wgtrain::{Gpu, Result, Tensor};

pub fn bench_svd(backend: &str, up_to: &str, repeats: usize) -> Result<()> {
    let gpu = open_gpu(backend)?;
    let presets = ["tiny", "small", "medium", "large"];
    let last = presets.iter().position(|p| *p == up_to).ok_or_else(|| {
        wgtrain::Error::Invalid(format!(
            "--up-to {up_to}: choose tiny, small, medium or large"
        ))
    })?;
    print_adapter(&gpu);
    println!("CPU baseline: nalgebra 0.35 SVD (f64, singular values only), 1 thread");
    println!();
    println!("| matrix (rows x cols) | ours: SVD s | ours: SVD + metrics s | sweeps | CPU SVD s | CPU / ours |");
    println!("|---|---|---|---|---|---|");
    for preset in &presets[..=last] {
        let c = ModelConfig::preset(preset)?;
        let d = c.d_model;
        // w_2 is [d, hidden]; the OV circuit is d x (heads * d).
        for (what, rows, cols) in [
            ("w_2", d, c.activation_hidden_dim),
            ("OV circuit", d, c.attention_n_heads * d),
        ] {
            let t = time_on_device(&gpu, rows, cols, repeats, repeats)?;
            let median = |v: &[f64]| Timing::of(WALL, v).map_or(f64::NAN, |t| t.median_s);
            let (svd_s, metrics_s) = (median(&t.svd_samples), median(&t.metrics_samples));
            let cpu = cpu_svd_seconds(rows, cols, repeats.clamp(1, 3));
            println!(
                "| {preset} {what} ({rows} x {cols}) | {:.3} | {:.3} | {} | {:.3} | {:.2}x |",
                svd_s,
                metrics_s,
                t.report.map_or(0, |r| r.sweeps),
                cpu,
                cpu / svd_s
            );
        }
    }
    Ok(())
}

/// Mean seconds of the CPU SVD (nalgebra, f64, singular values only) of a random
/// `rows x cols` matrix over `runs` runs.
pub fn cpu_svd_seconds(rows: usize, cols: usize, runs: usize) -> f64 {
    let data = random(rows * cols, 7);
    let m = nalgebra::DMatrix::<f64>::from_row_iterator(rows, cols, data.iter().map(|&v| v as f64));
    let t0 = Instant::now();
    for _ in 0..runs {
        let s = m.clone().singular_values();
        std::hint::black_box(s);
    }
    t0.elapsed().as_secs_f64() / runs as f64
}

/// Timings of the solver on one shape.
pub struct DeviceTiming {
    /// Seconds of each timed [`SvdPlan::singular_values`] (sweeps, norms, readback).
    pub svd_samples: Vec<f64>,
    /// Seconds of each timed [`MetricsPlan::run`] (the SVD plus sort and reductions).
    pub metrics_samples: Vec<f64>,
    /// How the last timed SVD converged (none when the SVD alone was not timed).
    pub report: Option<SvdReport>,
}

/// Time the solver and the metrics on a random `rows x cols` matrix (uniform entries, as
/// pico's init): the SVD alone `svd_runs` times (after a warm-up run, none when 0), then
/// the metrics `repeats` times after one warm-up run.
pub fn time_on_device(
    gpu: &Gpu,
    rows: usize,
    cols: usize,
    svd_runs: usize,
    repeats: usize,
) -> Result<DeviceTiming> {
    let repeats = repeats.max(1);
    let bound = 1.0 / (cols as f32).sqrt();
    let data: Vec<f32> = xorshift(0x9E37_79B9_7F4A_7C15u64 ^ ((rows as u64) << 20) ^ cols as u64)
        .take(rows * cols)
        .map(|s| ((s >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * bound)
        .collect();
    let m = Tensor::from_f32(gpu, &[rows, cols], &data)?;
    let svd = SvdPlan::new(gpu, rows, cols)?;
    let metrics = MetricsPlan::new(gpu, rows, cols)?;
    // Building the plans (pipelines, bind groups) stays out of the timed runs.
    gpu.finish_blocking()?;
    let mut report = None;
    let mut svd_times = Vec::new();
    if svd_runs > 0 {
        report = Some(svd.singular_values_blocking(gpu, &m)?.1);
        for _ in 0..svd_runs {
            let t = Instant::now();
            report = Some(svd.singular_values_blocking(gpu, &m)?.1);
            svd_times.push(t.elapsed().as_secs_f64());
        }
    }
    metrics.run_blocking(gpu, &m)?;
    let mut metric_times = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        metrics.run_blocking(gpu, &m)?;
        metric_times.push(t.elapsed().as_secs_f64());
    }
    Ok(DeviceTiming {
        svd_samples: svd_times,
        metrics_samples: metric_times,
        report,
    })
}
