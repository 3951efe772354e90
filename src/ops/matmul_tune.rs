//! The matmul autotune: which kernel variant runs a product of a given shape on this adapter.
//!
//! `Auto` products at least [`TUNE_MIN_FLOPS`] large are measured once: every variant runs the
//! shape on scratch operands (one warm-up, then the best of [`TIMED_RUNS`]), and the fastest
//! is kept in the device's [`TuningStore`](crate::gpu::tuning::TuningStore), on disk, so later
//! plans and runs on the same adapter and driver reuse it. Smaller products, products whose
//! scratch would be too large, and devices that do not measure (`Tuning::Rule`, the browser)
//! take the rule: rows kernels on software adapters, tiles on GPUs. Every variant gives the
//! same bits, so a choice never changes a result, only its speed.

use crate::error::{Error, Result};
use crate::formulas::kernels::MatmulKernel;
use crate::gpu::Gpu;

/// Products below this many FLOPs take the rule (measuring would cost more than it saves).
pub const TUNE_MIN_FLOPS: f64 = (1u64 << 22) as f64;

/// Scratch operands of a measurement stay under this many bytes in all; larger products take
/// the rule rather than risk the memory a plan counted on.
pub const TUNE_MAX_SCRATCH_BYTES: usize = 256 << 20;

/// Timed runs per variant after its warm-up (at least; up to 10 while they take under
/// [`TIMED_SECONDS`] in all); the fastest counts.
pub const TIMED_RUNS: usize = 2;
pub const TIMED_SECONDS: f64 = 0.05;

/// One product's shape as the tuner keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProductShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub trans_a: bool,
    pub trans_b: bool,
}

impl ProductShape {
    pub fn flops(&self) -> f64 {
        2.0 * (self.m * self.n * self.k * self.batch) as f64
    }

    /// The cache key, e.g. `matmul nt 512x96x50304 b1` (M x K x N).
    pub fn key(&self) -> String {
        let t = |x: bool| if x { 't' } else { 'n' };
        format!(
            "matmul {}{} {}x{}x{} b{}",
            t(self.trans_a),
            t(self.trans_b),
            self.m,
            self.k,
            self.n,
            self.batch
        )
    }

    pub fn scratch_bytes(&self) -> usize {
        4 * self.batch * (self.m * self.k + self.k * self.n + self.m * self.n)
    }
}

/// Whether `gpu` can run `kernel`: an error that says what is missing when it cannot.
pub fn check_available(gpu: &Gpu, kernel: MatmulKernel) -> Result<()> {
    let Some(lanes) = kernel.min_subgroup() else {
        return Ok(());
    };
    let has = gpu.device.features().contains(wgpu::Features::SUBGROUP);
    let min = gpu.adapter.subgroup_sizes.0;
    if has && min >= lanes {
        return Ok(());
    }
    let why = if has {
        format!("its subgroups may have as few as {min} lanes")
    } else {
        "it has no subgroups".to_string()
    };
    Err(Error::Invalid(format!(
        "matmul kernel {kernel} needs subgroups of at least {lanes} lanes, and adapter '{}' ({}) \
         cannot run it: {why}; pin another kernel (e.g. --kernel matmul=rows_16x8) or leave \
         it on auto",
        if gpu.adapter.name.is_empty() {
            "unnamed"
        } else {
            &gpu.adapter.name
        },
        gpu.adapter.backend
    )))
}

/// The concrete variants `gpu` can run, in the tuner's order.
pub fn available_kernels(gpu: &Gpu) -> Vec<MatmulKernel> {
    MatmulKernel::VARIANTS
        .into_iter()
        .filter(|&k| check_available(gpu, k).is_ok())
        .collect()
}

/// The rule: what runs where nothing was measured. On software adapters with subgroups the
/// shuffle kernel (on lavapipe it ran 1.1-3.2x rows_16x8, the next best, at 11 of the 12
/// shapes of BENCHMARKS.md, small products included); without them rows_8x4, the smallest
/// tile.
pub fn rule(gpu: &Gpu) -> MatmulKernel {
    if gpu.is_cpu() {
        let sg = MatmulKernel::RowsSubgroup16x8;
        if check_available(gpu, sg).is_ok() {
            sg
        } else {
            MatmulKernel::Rows8x4
        }
    } else {
        MatmulKernel::Tiled
    }
}

/// Times one variant on the shape being tuned: `time(kernel, runs)` is the fastest of `runs`
/// runs in seconds (`ops::matmul` owns the scratch operands and the runs).
pub type TimeVariant<'a> = dyn FnMut(MatmulKernel, usize) -> crate::Result<f64> + 'a;

/// The variant for `shape` on `gpu`: recorded, measured now with `time` over `variants`
/// (those the adapter can run), or the rule.
pub fn choose(
    gpu: &Gpu,
    shape: ProductShape,
    variants: &[MatmulKernel],
    time: &mut TimeVariant,
) -> MatmulKernel {
    let store = gpu.tuning();
    if !store.measures()
        || shape.flops() < TUNE_MIN_FLOPS
        || shape.scratch_bytes() > TUNE_MAX_SCRATCH_BYTES
    {
        return rule(gpu);
    }
    let key = shape.key();
    if let Some(k) = store.get(&key).and_then(|name| MatmulKernel::named(&name)) {
        if variants.contains(&k) {
            return k;
        }
    }
    match measure(variants, time) {
        Ok(timings) => {
            let best = timings
                .iter()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(rule(gpu), |t| t.0);
            log::info!(
                "matmul tune {key}: {} -> {best}",
                timings
                    .iter()
                    .map(|(k, s)| format!("{k} {:.2} ms", s * 1e3))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            store.put(&key, best.name());
            best
        }
        Err(e) => {
            log::warn!("matmul tune {key}: not measured ({e}); using {}", rule(gpu));
            rule(gpu)
        }
    }
}

/// Seconds per run of each of `variants` (the fastest of [`TIMED_RUNS`] after a warm-up). A
/// variant whose warm-up took over 4x the best so far is not timed further: it cannot win,
/// and on a software adapter a slow variant costs seconds.
pub fn measure(
    variants: &[MatmulKernel],
    time: &mut TimeVariant,
) -> crate::Result<Vec<(MatmulKernel, f64)>> {
    let mut timings: Vec<(MatmulKernel, f64)> = Vec::new();
    for &kernel in variants {
        let warm = time(kernel, 1)?;
        let best_so_far = timings.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
        if warm > 4.0 * best_so_far {
            continue;
        }
        // Short products get more runs, so one descheduling cannot decide.
        let runs = ((TIMED_SECONDS / warm.max(1e-6)) as usize).clamp(TIMED_RUNS, 10);
        timings.push((kernel, warm.min(time(kernel, runs)?)));
    }
    Ok(timings)
}
