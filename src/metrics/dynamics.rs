//! Learning-dynamics metrics of weight matrices (pico-analyze's, as the ReLoRA study plots
//! them), computed on the device: only scalars and the singular values are read back.
//!
//! # Metrics ([`MatrixMetrics`])
//!
//! From the singular values `s` (all `min(rows, cols)` of them, by one-sided Jacobi: see
//! [`crate::metrics::svd`] for its accuracy):
//! - proportional effective rank: `p = s / sum s`, `erank = exp(-sum p ln p)` (natural log, no
//!   epsilon; terms with `s = 0` count `0 ln 0 = 0`, where pico-analyze's PyTorch code would
//!   turn the whole PER into NaN), `PER = erank / len(s)`;
//! - condition number `max s / min s` (infinite when `min s = 0`);
//! - nuclear norm `sum s`, spectral norm `max s`.
//!
//! From the entries `x` (n of them):
//! - Frobenius norm `sqrt(sum x^2)`, `max |x|` (the entrywise inf norm, what
//!   `torch.norm(p=inf)` gives pico-analyze);
//! - Gini `sum_i (2i - n - 1) |x|_(i) / (n sum |x|)` over `|x|` sorted ascending (i from 1).
//!   Exact: the entries are sorted on the device (bitonic sort, ties need no order), and the
//!   weighted sum runs in a fixed order;
//! - Hoyer `(sqrt n - |x|_1 / |x|_2) / (sqrt n - 1)`.
//!
//! Conventions for degenerate inputs (as pico-analyze's PyTorch code gives them): for the
//! zero matrix PER, effective rank, condition number and Hoyer are NaN (0/0) and Gini is 0;
//! Hoyer of a single entry is NaN. A matrix holding infinities or NaNs is an error. serde_json
//! writes non-finite values as `null`.
//!
//! # What is measured
//!
//! - `layers.{i}.swiglu.w_2.weight` as stored (`[d_model, hidden]`);
//! - the OV circuit of layer `i` ([`ov_circuit`], named `layers.{i}.ov_circuit`): with pico's
//!   `v_proj` `[KV*hd, d]` and `o_proj` `[d, H*hd]` (`[out, in]`), query head `h` reads kv
//!   head `g = h / (H / KV)`, and its OV matrix is
//!   `OV_h = W_o[:, h*hd .. (h+1)*hd] · W_v[g*hd .. (g+1)*hd, :]` (`d x hd` times `hd x d`:
//!   `d x d`, the map from the attended token's residual to the head's output); the heads are
//!   concatenated along the columns: `[OV_0 | OV_1 | ... | OV_{H-1}]`, `d x (H*d)`.
//! - for comparison, pico-analyze's code multiplies the other way round, per head
//!   `W_v[g*hd.., :] · W_o[:, h*hd..]` (`hd x hd`), and scores each head on its own:
//!   [`OvForm::HeadsVo`] builds those side by side (`hd x (H*hd)`, named
//!   `layers.{i}.ov_circuit_vo`).
//!
//! The functions take weight tensors, so the trainer can pass weights, gradients, or LoRA
//! products `B·A` ([`lora_product`]).

use super::svd::{grid_2d, matrix_dims, whole, SvdOptions, SvdPlan, SvdReport};
use crate::error::{Error, Result};
use crate::gpu::shaders::MATRIX_STATS;
use crate::gpu::{DType, Dispatch, Gpu, Tensor};
use crate::model::checkpoint::Checkpoint;
use crate::model::config::ModelConfig;
use crate::model::decoder::Decoder;
use crate::ops::elementwise;
use crate::ops::{Matmul, MatmulSpec};
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
        let (kb, pb, tb) = (
            whole(&keys, "metrics keys")?,
            whole(&partials, "metrics partials")?,
            whole(&stats, "metrics stats")?,
        );
        let wb = whole(svd.work(), "svd work")?;
        let sb = whole(svd.state(), "svd state")?;
        let vb = whole(svd.values(), "svd values")?;
        let base = StatsParams {
            n: u32::try_from(n).map_err(|_| Error::TooLarge {
                detail: format!("{n} entries"),
            })?,
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
}

impl MetricsPlans {
    pub fn new(options: SvdOptions) -> Self {
        MetricsPlans {
            options,
            plans: HashMap::new(),
        }
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

// ---------------------------------------------------------------------------------------------
// What is measured

/// Which product the OV construction builds (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OvForm {
    /// `[W_o,h W_v,g(h)]` over heads h: `d x (H*d)`.
    #[default]
    Circuit,
    /// `[W_v,g(h) W_o,h]` over heads h: `hd x (H*hd)`, pico-analyze's per-head product.
    HeadsVo,
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct OvParams {
    rows: u32,
    cols: u32,
    inner: u32,
    heads: u32,
    group: u32,
    x_rs: u32,
    x_hq: u32,
    x_hkv: u32,
    y_rs: u32,
    y_hq: u32,
    y_hkv: u32,
    tiles_r: u32,
    tiles_c: u32,
    groups_x: u32,
    total: u32,
    pad: u32,
}

/// A prepared OV construction from `v_proj` and `o_proj` into `out`.
pub struct OvCircuit {
    dispatch: Dispatch,
}

/// `(d, head_dim)` of a layer's `v_proj` `[KV*hd, d]` and `o_proj` `[d, H*hd]`.
fn ov_dims(
    v_proj: &Tensor,
    o_proj: &Tensor,
    n_heads: usize,
    n_kv_heads: usize,
) -> Result<(usize, usize)> {
    let op = "ov circuit";
    let (vr, vc) = matrix_dims(v_proj, op)?;
    let (or, oc) = matrix_dims(o_proj, op)?;
    let bad = |detail: String| Error::Shape { op, detail };
    if n_heads == 0 || n_kv_heads == 0 || !n_heads.is_multiple_of(n_kv_heads) {
        return Err(bad(format!(
            "{n_heads} heads are not a multiple of {n_kv_heads} kv heads"
        )));
    }
    if !oc.is_multiple_of(n_heads) {
        return Err(bad(format!(
            "o_proj {:?} has no [d, {n_heads} * head_dim] shape",
            o_proj.shape()
        )));
    }
    let hd = oc / n_heads;
    if vr != n_kv_heads * hd || vc != or {
        return Err(bad(format!(
            "v_proj {:?} does not match o_proj {:?}: expected v_proj [{} * {hd}, {or}]",
            v_proj.shape(),
            o_proj.shape(),
            n_kv_heads
        )));
    }
    Ok((or, hd))
}

impl OvCircuit {
    /// The shape of the OV construction of these weights.
    pub fn output_shape(
        v_proj: &Tensor,
        o_proj: &Tensor,
        n_heads: usize,
        n_kv_heads: usize,
        form: OvForm,
    ) -> Result<[usize; 2]> {
        let (d, hd) = ov_dims(v_proj, o_proj, n_heads, n_kv_heads)?;
        Ok(match form {
            OvForm::Circuit => [d, n_heads * d],
            OvForm::HeadsVo => [hd, n_heads * hd],
        })
    }

    pub fn new(
        gpu: &Gpu,
        v_proj: &Tensor,
        o_proj: &Tensor,
        out: &Tensor,
        n_heads: usize,
        n_kv_heads: usize,
        form: OvForm,
    ) -> Result<OvCircuit> {
        let (d, hd) = ov_dims(v_proj, o_proj, n_heads, n_kv_heads)?;
        let shape = Self::output_shape(v_proj, o_proj, n_heads, n_kv_heads, form)?;
        if out.shape() != shape || out.dtype() != DType::F32 {
            return Err(Error::Shape {
                op: "ov circuit",
                detail: format!("out is {:?}, expected {shape:?} f32", out.shape()),
            });
        }
        let v = whole(v_proj, "v_proj")?;
        let o = whole(o_proj, "o_proj")?;
        let ob = whole(out, "the OV circuit")?;
        let u = |v: usize| {
            u32::try_from(v).map_err(|_| Error::TooLarge {
                detail: format!("{v} in the OV circuit"),
            })
        };
        let (rows, cols, inner, x, y, p) = match form {
            OvForm::Circuit => (
                d,
                d,
                hd,
                o,
                v,
                OvParams {
                    x_rs: u(n_heads * hd)?,
                    x_hq: u(hd)?,
                    y_rs: u(d)?,
                    y_hkv: u(hd * d)?,
                    ..OvParams::default()
                },
            ),
            OvForm::HeadsVo => (
                hd,
                hd,
                d,
                v,
                o,
                OvParams {
                    x_rs: u(d)?,
                    x_hkv: u(hd * d)?,
                    y_rs: u(n_heads * hd)?,
                    y_hq: u(hd)?,
                    ..OvParams::default()
                },
            ),
        };
        let (tiles_r, tiles_c) = (rows.div_ceil(16), cols.div_ceil(16));
        let total = n_heads * tiles_r * tiles_c;
        let grid = grid_2d(gpu, total)?;
        let p = OvParams {
            rows: u(rows)?,
            cols: u(cols)?,
            inner: u(inner)?,
            heads: u(n_heads)?,
            group: u(n_heads / n_kv_heads)?,
            tiles_r: u(tiles_r)?,
            tiles_c: u(tiles_c)?,
            groups_x: grid[0],
            total: u(total)?,
            ..p
        };
        let dispatch = Dispatch::with_bindings(
            gpu,
            &MATRIX_STATS,
            "ov_circuit",
            bytemuck::bytes_of(&p),
            &[(6, x), (7, y), (8, ob)],
            grid,
        );
        Ok(OvCircuit { dispatch })
    }

    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// Record into a fresh encoder and submit (does not wait).
    pub fn run(&self, gpu: &Gpu) {
        crate::gpu::run_all(gpu, std::slice::from_ref(&self.dispatch));
    }
}

/// The OV circuit `[W_o,h W_v,g(h)]_h` (`d x (H*d)`) of a layer's `v_proj` `[KV*hd, d]` and
/// `o_proj` `[d, H*hd]` (weights, gradients or LoRA products alike), on the device.
pub fn ov_circuit(
    gpu: &Gpu,
    v_proj: &Tensor,
    o_proj: &Tensor,
    n_heads: usize,
    n_kv_heads: usize,
) -> Result<Tensor> {
    ov_circuit_with(gpu, v_proj, o_proj, n_heads, n_kv_heads, OvForm::Circuit)
}

/// [`ov_circuit`] in either [`OvForm`].
pub fn ov_circuit_with(
    gpu: &Gpu,
    v_proj: &Tensor,
    o_proj: &Tensor,
    n_heads: usize,
    n_kv_heads: usize,
    form: OvForm,
) -> Result<Tensor> {
    let shape = OvCircuit::output_shape(v_proj, o_proj, n_heads, n_kv_heads, form)?;
    let out = Tensor::zeros(gpu, &shape, DType::F32)?;
    OvCircuit::new(gpu, v_proj, o_proj, &out, n_heads, n_kv_heads, form)?.run(gpu);
    Ok(out)
}

/// [`ov_circuit_with`] with the head counts of `config`.
fn config_ov_circuit(
    gpu: &Gpu,
    config: &ModelConfig,
    v_proj: &Tensor,
    o_proj: &Tensor,
    form: OvForm,
) -> Result<Tensor> {
    let (h, kv) = (config.attention_n_heads, config.attention_n_kv_heads);
    ov_circuit_with(gpu, v_proj, o_proj, h, kv, form)
}

/// `scale * B · A` (`[out, r]` times `[r, in]`): a LoRA update as a full matrix, on the device.
pub fn lora_product(gpu: &Gpu, b: &Tensor, a: &Tensor, scale: f32) -> Result<Tensor> {
    let (out_dim, _) = matrix_dims(b, "lora product")?;
    let (_, in_dim) = matrix_dims(a, "lora product")?;
    let c = Tensor::zeros(gpu, &[out_dim, in_dim], DType::F32)?;
    Matmul::new(gpu, b, a, &c, MatmulSpec::nn().scale(scale))?.run(gpu);
    Ok(c)
}

/// The matrix the study measures for `name` of a live model: a 2-D parameter name, or
/// `layers.{i}.ov_circuit` (`_vo`). With `update` false that is the weight (for a weight
/// ReLoRA wraps, the effective `W + s·B·A`); with `update` true its update (the gradient of
/// the last backward; for a wrapped weight the adapters' `s·B·A`).
pub fn model_matrix(gpu: &Gpu, model: &Decoder, name: &str, update: bool) -> Result<Tensor> {
    if let Some((layer, form)) = parse_ov_name(name) {
        let c = &model.config;
        let v = model_matrix(
            gpu,
            model,
            &format!("layers.{layer}.attention.v_proj.weight"),
            update,
        )?;
        let o = model_matrix(
            gpu,
            model,
            &format!("layers.{layer}.attention.o_proj.weight"),
            update,
        )?;
        return config_ov_circuit(gpu, c, &v, &o, form);
    }
    let param = |name: &str| {
        model.param(name).ok_or_else(|| {
            Error::Invalid(format!(
                "no parameter {name} in this model: name a 2-D weight (e.g. {}) or \
                 layers.N.ov_circuit",
                w2_name(0)
            ))
        })
    };
    let p = param(name)?;
    if p.value.shape().len() != 2 {
        return Err(Error::Invalid(format!(
            "{name} has shape {:?}: the metrics need a matrix",
            p.value.shape()
        )));
    }
    match model.relora().filter(|r| r.wraps_weight(name)) {
        Some(r) => {
            let module = name.trim_end_matches(".weight");
            let a = &param(&format!("{module}.A_lora.weight"))?.value;
            let b = &param(&format!("{module}.B_lora.weight"))?.value;
            let ba = lora_product(gpu, b, a, r.scale())?;
            if update {
                return Ok(ba);
            }
            let sum = Tensor::zeros(gpu, p.value.shape(), DType::F32)?;
            crate::gpu::run_all(gpu, &[elementwise::add(gpu, &p.value, &ba, &sum)?]);
            Ok(sum)
        }
        None if update => p.grad.reshaped(p.value.shape()),
        None => p.value.reshaped(p.value.shape()),
    }
}

/// `layers.{layer}.swiglu.w_2.weight`
pub fn w2_name(layer: usize) -> String {
    format!("layers.{layer}.swiglu.w_2.weight")
}

/// `layers.{layer}.ov_circuit`
pub fn ov_circuit_name(layer: usize) -> String {
    format!("layers.{layer}.ov_circuit")
}

/// What `wgtrain analyze` measures by default: every layer's `w_2`, then its OV circuit.
pub fn default_matrices(config: &ModelConfig) -> Vec<String> {
    (0..config.n_layers)
        .flat_map(|i| [w2_name(i), ov_circuit_name(i)])
        .collect()
}

/// `Some((layer, form))` for `layers.{i}.ov_circuit` / `layers.{i}.ov_circuit_vo`.
fn parse_ov_name(name: &str) -> Option<(usize, OvForm)> {
    let rest = name.strip_prefix("layers.")?;
    let (layer, what) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    match what {
        "ov_circuit" => Some((layer, OvForm::Circuit)),
        "ov_circuit_vo" => Some((layer, OvForm::HeadsVo)),
        _ => None,
    }
}

/// The metrics of `matrices` of a checkpoint (default: [`default_matrices`]), in order. A name
/// is a 2-D tensor of the checkpoint, or `layers.{i}.ov_circuit` (built from the layer's
/// `attention.v_proj.weight` and `attention.o_proj.weight`), or `layers.{i}.ov_circuit_vo`.
/// Tensors are analysed as stored: for a ReLoRA checkpoint that is the frozen base weight,
/// without the current adapters.
pub async fn analyze_checkpoint_async(
    gpu: &Gpu,
    ckpt: &Checkpoint,
    matrices: Option<&[String]>,
) -> Result<Vec<(String, MatrixMetrics)>> {
    let names = match matrices {
        Some(m) => m.to_vec(),
        None => default_matrices(&ckpt.config),
    };
    let upload = |name: &str| -> Result<Tensor> {
        let t = ckpt.tensor(name)?;
        if t.shape.len() != 2 {
            return Err(Error::Shape {
                op: "analyze",
                detail: format!("{name} is {:?}, not a matrix", t.shape),
            });
        }
        Tensor::from_f32(gpu, &t.shape, &t.data)
    };
    let mut plans = MetricsPlans::default();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let m = match parse_ov_name(&name) {
            Some((layer, form)) => {
                if layer >= ckpt.config.n_layers {
                    return Err(Error::Invalid(format!(
                        "{name}: the model has {} layers",
                        ckpt.config.n_layers
                    )));
                }
                let v = upload(&format!("layers.{layer}.attention.v_proj.weight"))?;
                let o = upload(&format!("layers.{layer}.attention.o_proj.weight"))?;
                config_ov_circuit(gpu, &ckpt.config, &v, &o, form)?
            }
            None => upload(&name)?,
        };
        let metrics = plans.metrics(gpu, &m).await?;
        out.push((name, metrics));
    }
    Ok(out)
}

/// Blocking [`analyze_checkpoint_async`] (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn analyze_checkpoint(
    gpu: &Gpu,
    ckpt: &Checkpoint,
    matrices: Option<&[String]>,
) -> Result<Vec<(String, MatrixMetrics)>> {
    pollster::block_on(analyze_checkpoint_async(gpu, ckpt, matrices))
}

// ---------------------------------------------------------------------------------------------
// Benchmark

/// Timings of the solver on one shape (`wgbench svd`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SvdTiming {
    pub rows: usize,
    pub cols: usize,
    /// Seconds to build the plans (buffers, pipelines, bind groups).
    pub plan_seconds: f64,
    /// Median seconds of [`SvdPlan::singular_values`] (sweeps, norms, readback).
    pub svd_seconds: f64,
    /// Median seconds of [`MetricsPlan::run`] (the SVD plus sort and reductions).
    pub metrics_seconds: f64,
    pub report: SvdReport,
    pub repeats: usize,
}

/// Time the solver and the metrics on random `rows x cols` matrices (uniform entries, as
/// pico's init), `repeats` times each after one warm-up run (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn bench_svd(gpu: &Gpu, shapes: &[(usize, usize)], repeats: usize) -> Result<Vec<SvdTiming>> {
    use std::time::Instant;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let repeats = repeats.max(1);
    let mut out = Vec::new();
    for &(rows, cols) in shapes {
        let mut s = 0x9E37_79B9_7F4A_7C15u64 ^ (rows as u64) << 20 ^ cols as u64;
        let bound = 1.0 / (cols as f32).sqrt();
        let data: Vec<f32> = (0..rows * cols)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * bound
            })
            .collect();
        let m = Tensor::from_f32(gpu, &[rows, cols], &data)?;
        let t0 = Instant::now();
        let svd = SvdPlan::new(gpu, rows, cols)?;
        let metrics = MetricsPlan::new(gpu, rows, cols)?;
        gpu.finish_blocking()?;
        let plan_seconds = t0.elapsed().as_secs_f64();
        let (_, mut report) = svd.singular_values_blocking(gpu, &m)?;
        let mut svd_times = Vec::new();
        for _ in 0..repeats {
            let t = Instant::now();
            report = svd.singular_values_blocking(gpu, &m)?.1;
            svd_times.push(t.elapsed().as_secs_f64());
        }
        metrics.run_blocking(gpu, &m)?;
        let mut metric_times = Vec::new();
        for _ in 0..repeats {
            let t = Instant::now();
            metrics.run_blocking(gpu, &m)?;
            metric_times.push(t.elapsed().as_secs_f64());
        }
        out.push(SvdTiming {
            rows,
            cols,
            plan_seconds,
            svd_seconds: median(svd_times),
            metrics_seconds: median(metric_times),
            report,
            repeats,
        });
    }
    Ok(out)
}
