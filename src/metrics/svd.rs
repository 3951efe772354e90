//! All singular values of a matrix, on the device: one-sided Jacobi (Hestenes) in f32.
//!
//! # Method
//!
//! The matrix `A` (`rows x cols`, row-major, possibly stored in pieces) is copied on the device
//! into a working buffer of `k = min(rows, cols)` vectors of length `len = max(rows, cols)`
//! (A's columns when `cols <= rows`, else its rows), scaled by an exact power of two so that
//! `max |a|` lies in `[0.5, 1)` (no overflow or underflow in the sums of squares, whatever the
//! scale of the weights or gradients). A *sweep* rotates every pair of vectors once so that the
//! two become orthogonal: `kk - 1` rounds (`kk` = `k` rounded up to even) of `kk / 2` pairs
//! that share no vector (round-robin "circle" pairing), one workgroup per pair, one dispatch per
//! round. A pair whose cosine `|<a_p, a_q>| / (|a_p| |a_q|)` is at most `tol` is left alone.
//! The largest cosine met in a sweep is its *convergence measure*
//! ([`SvdReport::off_diagonal`]); the device compares it with `tol` after every sweep and,
//! once it is at most `tol`, flags the run as converged, after which every queued kernel
//! returns at once. The host only reads back a 16-word status block every few sweeps (to stop
//! queueing sweeps) and, at the end, the `k` singular values (the vector norms, times the
//! scale): the matrix itself never leaves the device.
//!
//! `tol` defaults to `sqrt(len) * f32::EPSILON`, about the rounding noise of an f32 dot
//! product of length `len` (LAPACK's `xGESVJ` uses a threshold of this form); at most 30
//! sweeps by default. The host first looks at the device's flag after 5 sweeps, then every 2
//! (sweeps queued past convergence cost only their empty dispatches). Measured in
//! `tests/dynamics.rs`: random matrices converge in 7 to 10 sweeps (up to 256 x 1024),
//! ill-conditioned ones (`kappa` 1e3 to 1e6) in 12 to 18, with the convergence measure then at
//! most `tol` and no rotation left in the last sweep.
//!
//! # Accuracy
//!
//! Rotations are applied in Rutishauser's form `a_p - s (a_q + tau a_p)`,
//! `a_q + s (a_p - tau a_q)` with `tau = s / (1 + c)`: with the textbook `c a_p - s a_q`, `c`
//! rounds to 1 for the small rotations near convergence and every such rotation inflates the
//! norms by `t^2`, a systematic drift (measured: all singular values 2e-5 too large at
//! 256 x 1024) that this form removes (measured: 1e-7).
//!
//! One-sided Jacobi never forms `AᵀA`, so, unlike the Gram route (eigenvalues of `AᵀA`, whose
//! f32 rounding costs `eps * s_max^2`: relative errors near `eps * kappa^2`, useless beyond
//! `kappa` of about 1e3), a singular value keeps an error of a few `eps * s_max`: its
//! *relative* error grows like `eps * kappa`. Measured in `tests/dynamics.rs` against an f64
//! SVD of the same f32 matrix (`A = U diag(s) Vᵀ`, random orthogonal `U`, `V`, singular values
//! spread geometrically from 1 down to `1/kappa`; 48 x 64, 160 x 64 and 64 x 64):
//!
//! | kappa | worst relative error of the smallest s, and of the condition number |
//! |---|---|
//! | 1e1 | 3e-7 |
//! | 1e3 | 5e-6 |
//! | 1e5 | 6e-4 |
//! | 1e6 | 7e-3 |
//!
//! (tests assert 8 times these). Every singular value of a random matrix is within `2e-7 s_max`
//! (up to 256 x 1024), and at `kappa = 1e4` the Gram route misses `s_min` by 76% where this
//! solver misses it by 4e-5. So condition numbers up to 1e6 are resolved to better than 1%, up
//! to 1e5 to better than 0.1%. Beyond about 1e7 the smallest singular values sink into the f32
//! rounding noise of the matrix itself (about `1e-7 s_max`; measured `7e-8 s_max` for a rank-3
//! 64 x 40 matrix): a rank-deficient matrix (a rank-16 LoRA product) reports a large finite
//! condition number set by that noise, as any f32 SVD does; PER is barely affected (the noise
//! terms weigh `p ln p` with `p ~ 1e-7`).

use crate::error::{Error, Result};
use crate::gpu::shaders::SVD;
use crate::gpu::{DType, Dispatch, Gpu, Tensor};
use crate::ops::common::{grid_2d, matrix_dims, to_u32, whole, whole_u32};

/// How the solver runs.
#[derive(Clone, Copy, Debug)]
pub struct SvdOptions {
    /// Sweeps at most (a sweep rotates every pair of vectors once).
    pub max_sweeps: u32,
    /// Rotation / convergence threshold on the cosine of two vectors; `None`:
    /// `sqrt(len) * f32::EPSILON`.
    pub tol: Option<f32>,
    /// Sweeps queued before the first look at the device's convergence flag.
    pub first_check: u32,
    /// Sweeps queued between later looks.
    pub check_every: u32,
}

impl Default for SvdOptions {
    fn default() -> Self {
        SvdOptions {
            max_sweeps: 30,
            tol: None,
            first_check: 5,
            check_every: 2,
        }
    }
}

/// How a run went.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct SvdReport {
    /// Sweeps run, the converging one included.
    pub sweeps: u32,
    /// Largest cosine `|<a_p, a_q>| / (|a_p| |a_q|)` met during the last sweep run (before its
    /// rotations): the convergence measure. At most `tol` when converged.
    pub off_diagonal: f32,
    /// Rotations applied during the last sweep run.
    pub rotations_last_sweep: u32,
    /// The measure fell to `tol` within `max_sweeps` sweeps.
    pub converged: bool,
    /// The threshold used.
    pub tol: f32,
}

// Words of the state block (see shaders/svd.wgsl).
const STATE_WORDS: usize = 16;
const S_DONE: usize = 1;
const S_SWEEPS: usize = 2;
const S_OFF: usize = 3;
const S_ROT_LAST: usize = 5;
const S_NONFINITE: usize = 7;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    k: u32,
    len: u32,
    kk: u32,
    round: u32,
    rows: u32,
    cols: u32,
    row_start: u32,
    transpose: u32,
    tol: f32,
    groups_x: u32,
    total: u32,
    tiles_c: u32,
    block: u32,
    pairs: u32,
    pad: [u32; 2],
}

const B_STATE: u32 = 1;
const B_A: u32 = 2;
const B_W: u32 = 3;
const B_OFF: u32 = 4;
const B_SV: u32 = 5;

/// Everything a run of the solver reads back, plus the bytes of any extra tensors asked for.
pub struct SvdOutput {
    /// Singular values, largest first.
    pub values: Vec<f32>,
    /// The same values in the order of the working vectors: for a batch
    /// ([`SvdPlan::batched_square`]), matrix `b`'s values are `by_vector[b*n .. (b+1)*n]`.
    pub by_vector: Vec<f32>,
    pub report: SvdReport,
    /// Bytes of the extra tensors passed to [`SvdPlan::run_with`], in order.
    pub extra: Vec<Vec<u8>>,
}

/// The solver's scratch and prepared dispatches for one matrix shape; reuse it for every
/// matrix of that shape (weights of each layer, each checkpoint, ...).
pub struct SvdPlan {
    rows: usize,
    cols: usize,
    k: usize,
    len: usize,
    transpose: bool,
    block: usize,
    tol: f32,
    options: SvdOptions,
    work: Tensor,
    state: Tensor,
    values: Tensor,
    _off: Tensor,
    reset: Dispatch,
    scale: Dispatch,
    sweep: Vec<Dispatch>,
    norms: Dispatch,
}

impl SvdPlan {
    /// A plan for `rows x cols` matrices with the default options.
    pub fn new(gpu: &Gpu, rows: usize, cols: usize) -> Result<SvdPlan> {
        Self::with_options(gpu, rows, cols, SvdOptions::default())
    }

    pub fn with_options(
        gpu: &Gpu,
        rows: usize,
        cols: usize,
        options: SvdOptions,
    ) -> Result<SvdPlan> {
        if rows == 0 || cols == 0 {
            return Err(Error::Shape {
                op: "svd",
                detail: format!("the matrix {rows} x {cols} is empty"),
            });
        }
        Self::build(gpu, rows, cols, cols <= rows, rows.min(cols), options)
    }

    /// A plan for the singular values of `blocks` square `n x n` matrices at once, stacked
    /// vertically into one `[blocks * n, n]` tensor (matrix `b` is rows `b*n .. (b+1)*n`):
    /// the same sweeps rotate only pairs of rows of one matrix, all matrices in the same
    /// dispatches. Read each matrix's values from [`SvdOutput::by_vector`]. The convergence
    /// test is over all of them (the largest cosine of any pair).
    pub fn batched_square(
        gpu: &Gpu,
        blocks: usize,
        n: usize,
        options: SvdOptions,
    ) -> Result<SvdPlan> {
        if blocks == 0 || n == 0 {
            return Err(Error::Shape {
                op: "svd",
                detail: format!("a batch of {blocks} matrices {n} x {n} is empty"),
            });
        }
        Self::build(gpu, blocks * n, n, false, n, options)
    }

    /// `k = block * blocks` vectors: A's columns (`transpose`) or rows, in blocks of `block`.
    fn build(
        gpu: &Gpu,
        rows: usize,
        cols: usize,
        transpose: bool,
        block: usize,
        options: SvdOptions,
    ) -> Result<SvdPlan> {
        if options.max_sweeps == 0 {
            return Err(Error::Invalid("svd: max_sweeps must be at least 1".into()));
        }
        let (k, len) = if transpose {
            (cols, rows)
        } else {
            (rows, cols)
        };
        let kk = block + block % 2;
        let pairs = (k / block) * kk / 2;
        let bytes = (k * len * 4) as u64;
        if bytes > gpu.binding_limit() {
            return Err(Error::TooLarge {
                detail: format!(
                    "the SVD of a {rows} x {cols} matrix needs a working copy of {bytes} bytes \
                     in one storage binding (limit {})",
                    gpu.binding_limit()
                ),
            });
        }
        let tol = options
            .tol
            .unwrap_or_else(|| (len as f32).sqrt() * f32::EPSILON);
        let work = Tensor::zeros(gpu, &[k, len], DType::F32)?;
        let state = Tensor::zeros(gpu, &[STATE_WORDS], DType::U32)?;
        let values = Tensor::zeros(gpu, &[k], DType::F32)?;
        let off = Tensor::zeros(gpu, &[pairs.max(1)], DType::F32)?;
        // Sized to fit one binding each (checked above).
        let (wb, sb, vb, ob) = (
            whole(&work, "svd", "work")?,
            whole_u32(&state, "svd", "state")?,
            whole(&values, "svd", "values")?,
            whole(&off, "svd", "measures")?,
        );
        let base = Params {
            k: to_u32(k)?,
            len: to_u32(len)?,
            kk: to_u32(kk)?,
            cols: to_u32(cols)?,
            transpose: transpose as u32,
            tol,
            block: to_u32(block)?,
            pairs: to_u32(pairs)?,
            ..Params::default()
        };
        let one = |entry: &'static str, binds: &[(u32, &wgpu::Buffer)], p: Params, grid| {
            Dispatch::with_bindings(gpu, &SVD, entry, bytemuck::bytes_of(&p), binds, grid)
        };
        let reset = one("svd_reset", &[(B_STATE, sb), (B_OFF, ob)], base, [1, 1, 1]);
        let scale = one("svd_scale", &[(B_STATE, sb)], base, [1, 1, 1]);
        let pair_grid = grid_2d(gpu, pairs)?;
        let mut sweep = Vec::with_capacity(kk);
        for round in 0..kk.saturating_sub(1) {
            let p = Params {
                round: round as u32,
                groups_x: pair_grid[0],
                total: pairs as u32,
                ..base
            };
            sweep.push(one(
                "svd_rotate",
                &[(B_STATE, sb), (B_W, wb), (B_OFF, ob)],
                p,
                pair_grid,
            ));
        }
        sweep.push(one(
            "svd_sweep_end",
            &[(B_STATE, sb), (B_OFF, ob)],
            base,
            [1, 1, 1],
        ));
        let norm_grid = grid_2d(gpu, k)?;
        let norms = one(
            "svd_norms",
            &[(B_STATE, sb), (B_W, wb), (B_SV, vb)],
            Params {
                groups_x: norm_grid[0],
                total: k as u32,
                ..base
            },
            norm_grid,
        );
        Ok(SvdPlan {
            rows,
            cols,
            k,
            len,
            transpose,
            block,
            tol,
            options,
            work,
            state,
            values,
            _off: off,
            reset,
            scale,
            sweep,
            norms,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of singular values: `min(rows, cols)` (for a batch, all matrices' together).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Vectors per independent block: `k` for one matrix, `n` for a batch of `n x n`.
    pub fn block(&self) -> usize {
        self.block
    }

    /// The working vectors `[k, len]`: right after loading, the matrix's entries (transposed
    /// when `cols <= rows`) times `2^-e` (`e` in the state block); after the sweeps, `U diag(s)`
    /// (or `V diag(s)`) scaled likewise.
    pub fn work(&self) -> &Tensor {
        &self.work
    }

    /// The 16-word state block (u32): word 4 holds `e` (i32 bits), the scale exponent.
    pub fn state(&self) -> &Tensor {
        &self.state
    }

    /// The singular values `[k]` in the order of the working vectors (unsorted).
    pub fn values(&self) -> &Tensor {
        &self.values
    }

    /// The threshold on the cosine used for rotations and convergence.
    pub fn tol(&self) -> f32 {
        self.tol
    }

    /// Dispatches that load `m` into the working buffer: reset, max |a|, scale, copy.
    fn load(&self, gpu: &Gpu, m: &Tensor) -> Result<Vec<Dispatch>> {
        let (rows, cols) = matrix_dims(m, "svd")?;
        if (rows, cols) != (self.rows, self.cols) {
            return Err(Error::Shape {
                op: "svd",
                detail: format!(
                    "the plan is for {} x {} matrices, got {rows} x {cols}",
                    self.rows, self.cols
                ),
            });
        }
        let sb = whole_u32(&self.state, "svd", "state")?;
        let wb = whole(&self.work, "svd", "work")?;
        let base = Params {
            k: self.k as u32,
            len: self.len as u32,
            cols: cols as u32,
            transpose: self.transpose as u32,
            tol: self.tol,
            ..Params::default()
        };
        let mut out = vec![];
        let mut loads = vec![];
        for piece in m.pieces() {
            if piece.rows == 0 {
                continue;
            }
            let n = piece.rows * cols;
            let groups = n.div_ceil(256 * 16);
            let grid = grid_2d(gpu, groups)?;
            let p = Params {
                rows: to_u32(piece.rows)?,
                row_start: to_u32(piece.row_start)?,
                groups_x: grid[0],
                total: groups as u32,
                ..base
            };
            out.push(Dispatch::with_bindings(
                gpu,
                &SVD,
                "svd_absmax",
                bytemuck::bytes_of(&p),
                &[(B_STATE, sb), (B_A, &piece.buffer)],
                grid,
            ));
            let tiles_c = cols.div_ceil(16);
            let tiles = piece.rows.div_ceil(16) * tiles_c;
            let grid = grid_2d(gpu, tiles)?;
            let p = Params {
                groups_x: grid[0],
                total: to_u32(tiles)?,
                tiles_c: tiles_c as u32,
                ..p
            };
            loads.push(Dispatch::with_bindings(
                gpu,
                &SVD,
                "svd_load",
                bytemuck::bytes_of(&p),
                &[(B_STATE, sb), (B_A, &piece.buffer), (B_W, wb)],
                grid,
            ));
        }
        Ok(out.into_iter().chain(loads).collect())
    }

    fn submit_sweeps(&self, gpu: &Gpu, before: &[&Dispatch], sweeps: u32) {
        let mut encoder = gpu.encoder();
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("svd"),
                timestamp_writes: None,
            });
            for d in before {
                d.record(&mut pass);
            }
            for _ in 0..sweeps {
                for d in &self.sweep {
                    d.record(&mut pass);
                }
            }
        }
        gpu.submit(encoder);
    }

    /// Singular values of `m` (a `rows x cols` f32 tensor), largest first.
    pub async fn singular_values(&self, gpu: &Gpu, m: &Tensor) -> Result<(Vec<f32>, SvdReport)> {
        let out = self.run_with(gpu, m, &[], &[], &[]).await?;
        Ok((out.values, out.report))
    }

    /// Blocking [`SvdPlan::singular_values`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn singular_values_blocking(&self, gpu: &Gpu, m: &Tensor) -> Result<(Vec<f32>, SvdReport)> {
        pollster::block_on(self.singular_values(gpu, m))
    }

    /// Run the solver on `m`, recording `after_load` right after the matrix is loaded into
    /// [`SvdPlan::work`] (before any rotation) and `after_norms` once the singular values are in
    /// [`SvdPlan::values`]; then read back the values, the state and `extra` tensors.
    pub async fn run_with(
        &self,
        gpu: &Gpu,
        m: &Tensor,
        after_load: &[Dispatch],
        after_norms: &[Dispatch],
        extra: &[&Tensor],
    ) -> Result<SvdOutput> {
        let load = self.load(gpu, m)?;
        let mut before: Vec<&Dispatch> = vec![&self.reset];
        let (absmax, copies) = load.split_at(load.len() / 2);
        before.extend(absmax);
        before.push(&self.scale);
        before.extend(copies);
        before.extend(after_load);
        let max = self.options.max_sweeps;
        let mut queued = self.options.first_check.clamp(1, max);
        self.submit_sweeps(gpu, &before, queued);
        while queued < max {
            let state = self.state.read_u32(gpu).await?;
            if state[S_DONE] != 0 {
                break;
            }
            let more = self.options.check_every.max(1).min(max - queued);
            self.submit_sweeps(gpu, &[], more);
            queued += more;
        }
        let mut encoder = gpu.encoder();
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("svd norms"),
                timestamp_writes: None,
            });
            self.norms.record(&mut pass);
            for d in after_norms {
                d.record(&mut pass);
            }
        }
        gpu.submit(encoder);
        let by_vector = self.values.read_f32(gpu).await?;
        let state = self.state.read_u32(gpu).await?;
        let mut extra_bytes = Vec::with_capacity(extra.len());
        for t in extra {
            extra_bytes.push(t.read_bytes(gpu).await?);
        }
        if state[S_NONFINITE] != 0 {
            return Err(Error::Invalid(format!(
                "svd: the {} x {} matrix holds an infinity or a NaN",
                self.rows, self.cols
            )));
        }
        let mut values = by_vector.clone();
        values.sort_by(|a, b| b.total_cmp(a));
        let report = SvdReport {
            sweeps: state[S_SWEEPS],
            off_diagonal: f32::from_bits(state[S_OFF]),
            rotations_last_sweep: state[S_ROT_LAST],
            converged: state[S_DONE] != 0,
            tol: self.tol,
        };
        Ok(SvdOutput {
            values,
            by_vector,
            report,
            extra: extra_bytes,
        })
    }
}

/// Singular values of a `rows x cols` f32 tensor, largest first, with a one-off plan.
pub async fn singular_values(gpu: &Gpu, m: &Tensor) -> Result<(Vec<f32>, SvdReport)> {
    let (rows, cols) = matrix_dims(m, "svd")?;
    SvdPlan::new(gpu, rows, cols)?.singular_values(gpu, m).await
}

/// Blocking [`singular_values`] (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn singular_values_blocking(gpu: &Gpu, m: &Tensor) -> Result<(Vec<f32>, SvdReport)> {
    pollster::block_on(singular_values(gpu, m))
}
