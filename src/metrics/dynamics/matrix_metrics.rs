//! [`MatrixMetrics`] on the device: the SVD ([`SvdPlan`]) with, recorded into the same
//! submissions, a bitonic sort of the entries and the reductions of `shaders/matrix_stats.wgsl`;
//! only the stats block and the singular values are read back. The definitions are in the
//! [module docs](super).

use crate::error::{Error, Result};
use crate::gpu::shaders::MATRIX_STATS;
use crate::gpu::{DType, Dispatch, Gpu, Tensor};
use crate::metrics::svd::{SvdOptions, SvdPlan, SvdReport};
use crate::ops::common::{grid_2d, matrix_dims, to_u32, whole, whole_u32};
use std::collections::HashMap;

/// The metrics of one matrix.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MatrixMetrics {
    pub rows: usize,
    pub cols: usize,
    /// Proportional effective rank: `erank / min(rows, cols)`.
    pub per: f32,
    /// `exp(entropy of s / sum s)`.
    pub effective_rank: f32,
    /// `max s / min s`; infinite when `min s = 0`.
    pub condition_number: f32,
    pub frobenius: f32,
    /// `sum s`
    pub nuclear: f32,
    /// `max s`
    pub spectral: f32,
    /// `max |x|`
    pub max_abs: f32,
    pub gini: f32,
    pub hoyer: f32,
    /// All `min(rows, cols)` singular values, largest first.
    pub singular_values: Vec<f32>,
    /// How the SVD converged.
    pub svd: SvdReport,
}

impl MatrixMetrics {
    /// The metrics of a `rows x cols` matrix from its singular values (any order) and its
    /// entries, on the host in f64, with the same definitions and conventions as the device's
    /// reductions: for the small per-head matrices whose SVD runs in one batch, where a
    /// reduction per matrix would cost more dispatches than arithmetic.
    pub fn from_parts(
        rows: usize,
        cols: usize,
        values: &[f32],
        entries: &[f32],
        svd: SvdReport,
    ) -> MatrixMetrics {
        let mut sv = values.to_vec();
        sv.sort_by(|a, b| b.total_cmp(a));
        let nuclear: f64 = sv.iter().map(|&s| s as f64).sum();
        let (smax, smin) = (
            sv.first().copied().unwrap_or(0.0) as f64,
            sv.last().copied().unwrap_or(0.0) as f64,
        );
        let entropy: f64 = sv
            .iter()
            .map(|&s| s as f64 / nuclear)
            .filter(|&p| p > 0.0)
            .map(|p| -p * p.ln())
            .sum();
        let n = entries.len() as f64;
        let mut abs: Vec<f64> = entries.iter().map(|&x| (x as f64).abs()).collect();
        abs.sort_by(f64::total_cmp);
        let l1: f64 = abs.iter().sum();
        let l2 = abs.iter().map(|x| x * x).sum::<f64>().sqrt();
        let gini = if l1 > 0.0 {
            let weighted: f64 = abs
                .iter()
                .enumerate()
                .map(|(i, x)| (2.0 * (i + 1) as f64 - n - 1.0) * x)
                .sum();
            weighted / (n * l1)
        } else {
            0.0
        };
        let (mut per, mut erank, mut cond, mut hoyer) = (
            entropy.exp() / sv.len() as f64,
            entropy.exp(),
            smax / smin,
            (n.sqrt() - l1 / l2) / (n.sqrt() - 1.0),
        );
        if nuclear == 0.0 {
            // The zero matrix: 0/0 as PyTorch gives it.
            (per, erank, cond, hoyer) = (f64::NAN, f64::NAN, f64::NAN, f64::NAN);
        } else if smin == 0.0 {
            cond = f64::INFINITY;
        }
        if entries.len() == 1 {
            hoyer = f64::NAN;
        }
        MatrixMetrics {
            rows,
            cols,
            per: per as f32,
            effective_rank: erank as f32,
            condition_number: cond as f32,
            frobenius: l2 as f32,
            nuclear: nuclear as f32,
            spectral: smax as f32,
            max_abs: abs.last().copied().unwrap_or(0.0) as f32,
            gini: gini as f32,
            hoyer: hoyer as f32,
            singular_values: sv,
            svd,
        }
    }

    /// Each scalar metric's mean over `ms` (a layer's heads), in f64; no singular values.
    /// A NaN or infinite metric of one head makes its mean NaN or infinite, as a plain mean
    /// does. `None` when `ms` is empty.
    pub fn mean_of(ms: &[MatrixMetrics]) -> Option<MatrixMetrics> {
        let first = ms.first()?;
        let mean = |f: fn(&MatrixMetrics) -> f32| {
            (ms.iter().map(|m| f(m) as f64).sum::<f64>() / ms.len() as f64) as f32
        };
        Some(MatrixMetrics {
            rows: first.rows,
            cols: first.cols,
            per: mean(|m| m.per),
            effective_rank: mean(|m| m.effective_rank),
            condition_number: mean(|m| m.condition_number),
            frobenius: mean(|m| m.frobenius),
            nuclear: mean(|m| m.nuclear),
            spectral: mean(|m| m.spectral),
            max_abs: mean(|m| m.max_abs),
            gini: mean(|m| m.gini),
            hoyer: mean(|m| m.hoyer),
            singular_values: Vec::new(),
            svd: first.svd,
        })
    }
}

// Words of the stats block (see shaders/matrix_stats.wgsl).
const STATS_WORDS: usize = 16;
const T_NUCLEAR: usize = 0;
const T_SPECTRAL: usize = 1;
const T_MIN: usize = 2;
const T_PER: usize = 4;
const T_COND: usize = 5;
const T_FRO: usize = 6;
const T_GINI: usize = 8;
const T_HOYER: usize = 9;
const T_MAXABS: usize = 10;
const T_ENTROPY: usize = 3;

/// Keys sorted per workgroup and summed per workgroup: BLOCK and CHUNK in the shader.
const BLOCK: usize = 2048;
const CHUNK: usize = 4096;

const B_SRC: u32 = 1;
const B_KEYS: u32 = 2;
const B_PARTIALS: u32 = 3;
const B_STATS: u32 = 4;
const B_STATE: u32 = 5;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct StatsParams {
    n: u32,
    padded: u32,
    k: u32,
    j: u32,
    groups_x: u32,
    total: u32,
    count: u32,
    pad: u32,
}

/// Scratch and prepared dispatches to compute [`MatrixMetrics`] of `rows x cols` matrices;
/// reuse it for every matrix of that shape.
pub struct MetricsPlan {
    svd: SvdPlan,
    stats: Tensor,
    _keys: Tensor,
    _partials: Tensor,
    after_load: Vec<Dispatch>,
    after_norms: Vec<Dispatch>,
}

impl MetricsPlan {
    pub fn new(gpu: &Gpu, rows: usize, cols: usize) -> Result<MetricsPlan> {
        Self::with_options(gpu, rows, cols, SvdOptions::default())
    }

    pub fn with_options(
        gpu: &Gpu,
        rows: usize,
        cols: usize,
        options: SvdOptions,
    ) -> Result<MetricsPlan> {
        let svd = SvdPlan::with_options(gpu, rows, cols, options)?;
        let n = rows * cols;
        let padded = n.next_power_of_two().max(BLOCK);
        if (padded * 4) as u64 > gpu.binding_limit() {
            return Err(Error::TooLarge {
                detail: format!(
                    "sorting the {n} entries of a {rows} x {cols} matrix needs {} bytes in one \
                     storage binding",
                    padded * 4
                ),
            });
        }
        let keys = Tensor::zeros(gpu, &[padded], DType::F32)?;
        let chunks = padded.div_ceil(CHUNK);
        let partials = Tensor::zeros(gpu, &[3 * chunks], DType::F32)?;
        let stats = Tensor::zeros(gpu, &[STATS_WORDS], DType::F32)?;
        // Sized to fit one binding each (checked above and by the SVD plan).
        let op = "matrix metrics";
        let (kb, pb, tb) = (
            whole(&keys, op, "keys")?,
            whole(&partials, op, "partials")?,
            whole(&stats, op, "stats")?,
        );
        let wb = whole(svd.work(), op, "svd work")?;
        let sb = whole_u32(svd.state(), op, "svd state")?;
        let vb = whole(svd.values(), op, "svd values")?;
        let base = StatsParams {
            n: to_u32(n)?,
            padded: padded as u32,
            ..StatsParams::default()
        };
        let one = |entry: &'static str, binds: &[(u32, &wgpu::Buffer)], p: StatsParams, grid| {
            Dispatch::with_bindings(
                gpu,
                &MATRIX_STATS,
                entry,
                bytemuck::bytes_of(&p),
                binds,
                grid,
            )
        };
        let mut after_load = Vec::new();
        let g = grid_2d(gpu, padded / 256)?;
        after_load.push(one(
            "stats_fill",
            &[(B_SRC, wb), (B_KEYS, kb)],
            StatsParams {
                groups_x: g[0],
                ..base
            },
            g,
        ));
        let blocks = padded / BLOCK;
        let g_local = grid_2d(gpu, blocks)?;
        let local = |k: usize| {
            one(
                "sort_local",
                &[(B_KEYS, kb)],
                StatsParams {
                    k: k as u32,
                    groups_x: g_local[0],
                    total: blocks as u32,
                    ..base
                },
                g_local,
            )
        };
        after_load.push(local(0));
        let g_pairs = grid_2d(gpu, (padded / 2).div_ceil(256))?;
        let mut k = 2 * BLOCK;
        while k <= padded {
            let mut j = k / 2;
            while j >= BLOCK {
                after_load.push(one(
                    "sort_global",
                    &[(B_KEYS, kb)],
                    StatsParams {
                        k: k as u32,
                        j: j as u32,
                        groups_x: g_pairs[0],
                        ..base
                    },
                    g_pairs,
                ));
                j /= 2;
            }
            after_load.push(local(k));
            k *= 2;
        }
        let g_chunks = grid_2d(gpu, chunks)?;
        after_load.push(one(
            "stats_reduce",
            &[(B_KEYS, kb), (B_PARTIALS, pb)],
            StatsParams {
                groups_x: g_chunks[0],
                total: chunks as u32,
                ..base
            },
            g_chunks,
        ));
        after_load.push(one(
            "stats_finalize",
            &[(B_KEYS, kb), (B_PARTIALS, pb), (B_STATS, tb), (B_STATE, sb)],
            StatsParams {
                count: chunks as u32,
                ..base
            },
            [1, 1, 1],
        ));
        let after_norms = vec![one(
            "stats_singular",
            &[(B_SRC, vb), (B_STATS, tb)],
            StatsParams {
                n: svd.k() as u32,
                ..base
            },
            [1, 1, 1],
        )];
        Ok(MetricsPlan {
            svd,
            stats,
            _keys: keys,
            _partials: partials,
            after_load,
            after_norms,
        })
    }

    pub fn rows(&self) -> usize {
        self.svd.rows()
    }

    pub fn cols(&self) -> usize {
        self.svd.cols()
    }

    pub fn svd(&self) -> &SvdPlan {
        &self.svd
    }

    /// The metrics of `m`, a `rows x cols` f32 tensor (stored whole or in pieces).
    pub async fn run(&self, gpu: &Gpu, m: &Tensor) -> Result<MatrixMetrics> {
        let out = self
            .svd
            .run_with(gpu, m, &self.after_load, &self.after_norms, &[&self.stats])
            .await?;
        let t: Vec<f32> = bytemuck::pod_collect_to_vec(&out.extra[0]);
        let (mut per, mut erank, mut cond, mut hoyer) =
            (t[T_PER], t[T_ENTROPY].exp(), t[T_COND], t[T_HOYER]);
        if t[T_NUCLEAR] == 0.0 {
            // The zero matrix: 0/0 as PyTorch gives it.
            per = f32::NAN;
            erank = f32::NAN;
            cond = f32::NAN;
            hoyer = f32::NAN;
        } else if t[T_MIN] == 0.0 {
            cond = f32::INFINITY;
        }
        if self.rows() * self.cols() == 1 {
            hoyer = f32::NAN;
        }
        Ok(MatrixMetrics {
            rows: self.rows(),
            cols: self.cols(),
            per,
            effective_rank: erank,
            condition_number: cond,
            frobenius: t[T_FRO],
            nuclear: t[T_NUCLEAR],
            spectral: t[T_SPECTRAL],
            max_abs: t[T_MAXABS],
            gini: t[T_GINI],
            hoyer,
            singular_values: out.values,
            svd: out.report,
        })
    }

    /// Blocking [`MetricsPlan::run`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_blocking(&self, gpu: &Gpu, m: &Tensor) -> Result<MatrixMetrics> {
        pollster::block_on(self.run(gpu, m))
    }
}

/// [`MetricsPlan`]s by matrix shape, made on first use: for measuring many matrices.
#[derive(Default)]
pub struct MetricsPlans {
    options: SvdOptions,
    plans: HashMap<(usize, usize), MetricsPlan>,
    /// Batched SVDs of `blocks` square `n x n` matrices, by `(blocks, n)`.
    batched: HashMap<(usize, usize), SvdPlan>,
}

impl MetricsPlans {
    pub fn new(options: SvdOptions) -> Self {
        MetricsPlans {
            options,
            plans: HashMap::new(),
            batched: HashMap::new(),
        }
    }

    /// The batched SVD plan for `blocks` square `n x n` matrices, made on first use.
    pub fn batched_svd(&mut self, gpu: &Gpu, blocks: usize, n: usize) -> Result<&SvdPlan> {
        Ok(match self.batched.entry((blocks, n)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(SvdPlan::batched_square(gpu, blocks, n, self.options)?)
            }
        })
    }

    /// The metrics of `m`, with the plan of its shape.
    pub async fn metrics(&mut self, gpu: &Gpu, m: &Tensor) -> Result<MatrixMetrics> {
        let (rows, cols) = matrix_dims(m, "matrix metrics")?;
        let plan = match self.plans.entry((rows, cols)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(MetricsPlan::with_options(gpu, rows, cols, self.options)?)
            }
        };
        plan.run(gpu, m).await
    }
}

/// The metrics of `m` (a 2-D f32 tensor) with a one-off plan.
pub async fn matrix_metrics(gpu: &Gpu, m: &Tensor) -> Result<MatrixMetrics> {
    let (rows, cols) = matrix_dims(m, "matrix metrics")?;
    MetricsPlan::new(gpu, rows, cols)?.run(gpu, m).await
}

/// Blocking [`matrix_metrics`] (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn matrix_metrics_blocking(gpu: &Gpu, m: &Tensor) -> Result<MatrixMetrics> {
    pollster::block_on(matrix_metrics(gpu, m))
}
