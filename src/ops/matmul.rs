//! The matmul family: `C = alpha * op(A) * op(B) + beta * C` with op = identity or transpose,
//! batched (leading dims) and strided, on tensors that may be stored in pieces.
//!
//! Shapes: A is `[.., M, K]` (or `[.., K, M]` when `trans_a`), B is `[.., K, N]` (or
//! `[.., N, K]` when `trans_b`), C is `[.., M, N]`. A 2-D A or B is broadcast over C's batch.
//! `A·B`, `A·Bᵀ` and `Aᵀ·B` cover a linear layer's forward and both backward products.

pub use super::matmul_epilogue::{Epilogue, LowRank, LowRankDropout};
use super::matmul_tune::{self as tune, ProductShape};
pub use super::matmul_tune::{available_kernels, check_available};
use crate::error::{Error, Result};
pub use crate::formulas::matmul::{MatmulKernel, MatmulSpec};
use crate::gpu::shaders::{
    MatmulShaders, MATMUL, MATMUL_ROWS_16X8, MATMUL_ROWS_8X4, MATMUL_ROWS_8X8, MATMUL_ROWS_SG_16X8,
};
use crate::gpu::{DType, Dispatch, Gpu, Tensor};

/// A concrete kernel: its shader (one per epilogue), entry point, and the output tile one
/// workgroup computes.
#[derive(Clone, Copy)]
struct Variant {
    shaders: &'static MatmulShaders,
    entry: &'static str,
    tile_m: u32,
    tile_n: u32,
}

/// The shader and tile of a concrete `kernel`. The rows tiles are ROWS_TM rows by
/// ROWS_WG * ROWS_TN columns of each `matmul_rows_*.wgsl` (a test reads them back).
fn variant(kernel: MatmulKernel) -> Variant {
    let rows = |shaders, tile_m, tile_n| Variant {
        shaders,
        entry: "matmul_rows",
        tile_m,
        tile_n,
    };
    match kernel {
        MatmulKernel::Rows8x4 => rows(&MATMUL_ROWS_8X4, 8, 16 * 4),
        MatmulKernel::Rows16x8 => rows(&MATMUL_ROWS_16X8, 16, 8 * 8),
        MatmulKernel::Rows8x8 => rows(&MATMUL_ROWS_8X8, 8, 8 * 8),
        MatmulKernel::RowsSubgroup16x8 => Variant {
            entry: "matmul_rows_sg",
            ..rows(&MATMUL_ROWS_SG_16X8, 16, 8 * 8)
        },
        MatmulKernel::Tiled | MatmulKernel::Auto => Variant {
            shaders: &MATMUL,
            entry: "matmul_tiled",
            tile_m: 64,
            tile_n: 64,
        },
    }
}

/// The variant the autotune picks for `shape` on `gpu` (recorded, measured now on scratch
/// operands, or the rule; see [`tune`]).
pub fn choose_kernel(gpu: &Gpu, shape: ProductShape) -> MatmulKernel {
    let mut scratch: Option<[Tensor; 3]> = None;
    let mut time = |kernel: MatmulKernel, runs: usize| -> Result<f64> {
        if scratch.is_none() {
            scratch = Some(scratch_operands(gpu, shape)?);
        }
        let [a, b, c] = scratch.as_ref().expect("just made");
        let spec = MatmulSpec {
            trans_a: shape.trans_a,
            trans_b: shape.trans_b,
            kernel,
            ..MatmulSpec::default()
        };
        let mm = Matmul::new(gpu, a, b, c, spec)?;
        let mut best = f64::INFINITY;
        for _ in 0..runs {
            best = best.min(time_once(gpu, &mm)?);
        }
        Ok(best)
    };
    tune::choose(gpu, shape, &available_kernels(gpu), &mut time)
}

/// Zeroed A, B and C of `shape`, laid out as the product reads them.
fn scratch_operands(gpu: &Gpu, shape: ProductShape) -> Result<[Tensor; 3]> {
    let dims = |rows: usize, cols: usize| {
        if shape.batch == 1 {
            vec![rows, cols]
        } else {
            vec![shape.batch, rows, cols]
        }
    };
    let (m, n, k) = (shape.m, shape.n, shape.k);
    let a = if shape.trans_a {
        dims(k, m)
    } else {
        dims(m, k)
    };
    let b = if shape.trans_b {
        dims(n, k)
    } else {
        dims(k, n)
    };
    Ok([
        Tensor::zeros(gpu, &a, DType::F32)?,
        Tensor::zeros(gpu, &b, DType::F32)?,
        Tensor::zeros(gpu, &dims(m, n), DType::F32)?,
    ])
}

/// Wall seconds of one run, submitted alone and waited for. The waits take no errors off
/// the device: one found later is the caller's to see.
fn time_once(gpu: &Gpu, mm: &Matmul) -> Result<f64> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        gpu.poll_wait();
        let t0 = std::time::Instant::now();
        mm.run(gpu);
        gpu.poll_wait();
        Ok(t0.elapsed().as_secs_f64())
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = (gpu, mm);
        Err(Error::Invalid(
            "kernels are not measured in the browser".into(),
        ))
    }
}

/// The kernel that runs a product: the call's own choice, else the device's pin, else the
/// tuner's measurement (or rule) for this shape.
fn choose(gpu: &Gpu, spec: &MatmulSpec, shape: ProductShape) -> Result<MatmulKernel> {
    let kernel = match (spec.kernel, gpu.kernels().matmul) {
        (MatmulKernel::Auto, MatmulKernel::Auto) => choose_kernel(gpu, shape),
        (MatmulKernel::Auto, pinned) => pinned,
        (chosen, _) => chosen,
    };
    check_available(gpu, kernel)?;
    Ok(kernel)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_off: u32,
    a_rs: u32,
    a_cs: u32,
    a_bs: u32,
    b_off: u32,
    b_rs: u32,
    b_cs: u32,
    b_bs: u32,
    c_off: u32,
    c_rs: u32,
    c_bs: u32,
    groups_x: u32,
    alpha: f32,
    beta: f32,
    tiles_m: u32,
    tiles_n: u32,
    groups_y: u32,
    lr_rank: u32,
    lr_row0: u32,
    lr_col0: u32,
    lr_cols: u32,
    lr_right_js: u32,
    lr_right_cs: u32,
    lr_stream: u32,
    lr_threshold: u32,
    lr_dropout: u32,
    lr_scale: f32,
    lr_drop_scale: f32,
}

/// A prepared matmul: one dispatch, or several when operands are stored in pieces.
pub struct Matmul {
    dispatches: Vec<Dispatch>,
}

/// Rows `start .. start + len` of a 2-D tensor as a matmul operand (all of it for
/// [`Rows::all`], which also takes batched tensors): how a product works on a chunk of
/// token rows without a copy (the head's chunked output projection).
#[derive(Clone, Copy)]
pub struct Rows<'t> {
    pub tensor: &'t Tensor,
    pub start: usize,
    pub len: usize,
}

impl<'t> Rows<'t> {
    pub fn all(tensor: &'t Tensor) -> Rows<'t> {
        Rows {
            tensor,
            start: 0,
            len: tensor.rows(),
        }
    }

    pub fn range(tensor: &'t Tensor, start: usize, len: usize) -> Rows<'t> {
        Rows { tensor, start, len }
    }
}

/// The shape of one operand as a stack of matrices.
struct Operand<'t> {
    t: &'t Tensor,
    /// The first row used: 0 unless the operand is a [`Rows`] window of a 2-D tensor.
    row0: usize,
    /// Rows and columns of one matrix as stored.
    rows: usize,
    cols: usize,
    /// 1 when broadcast over the batch.
    batch: usize,
}

impl<'t> Operand<'t> {
    fn of(w: Rows<'t>, name: &str) -> Result<Self> {
        let mut o = Self::whole(w.tensor, name)?;
        if (w.start, w.len) != (0, w.tensor.rows()) {
            if w.tensor.shape().len() != 2 || w.start + w.len > o.rows {
                return Err(Error::Shape {
                    op: "matmul",
                    detail: format!(
                        "{name}: rows {}..{} of a {:?} tensor (row windows need a 2-D tensor)",
                        w.start,
                        w.start + w.len,
                        w.tensor.shape()
                    ),
                });
            }
            o.row0 = w.start;
            o.rows = w.len;
        }
        Ok(o)
    }

    fn whole(t: &'t Tensor, name: &str) -> Result<Self> {
        let s = t.shape();
        if s.len() < 2 {
            return Err(Error::Shape {
                op: "matmul",
                detail: format!("{name} must have at least 2 dims, got {s:?}"),
            });
        }
        if t.dtype() != DType::F32 {
            return Err(Error::Shape {
                op: "matmul",
                detail: format!("{name} must be f32, got {:?}", t.dtype()),
            });
        }
        Ok(Operand {
            t,
            row0: 0,
            rows: s[s.len() - 2],
            cols: s[s.len() - 1],
            batch: s[..s.len() - 2].iter().product(),
        })
    }

    fn matrix_len(&self) -> usize {
        self.rows * self.cols
    }

    /// Flattened row index of row `r` of matrix `b` (broadcast operands ignore `b`).
    fn flat_row(&self, b: usize, r: usize) -> usize {
        if self.batch == 1 {
            self.row0 + r
        } else {
            b * self.rows + r
        }
    }

    /// Piece starts inside matrix `b`, as row indices of that matrix.
    fn cuts(&self, b: usize) -> Vec<usize> {
        let first = self.flat_row(b, 0);
        self.t
            .piece_starts()
            .into_iter()
            .filter(|&s| s > first && s < first + self.rows)
            .map(|s| s - first)
            .collect()
    }

    /// Buffer and element offset of element (r, c) of matrix `b`.
    fn locate(&self, b: usize, r: usize, c: usize) -> (&'t wgpu::Buffer, usize) {
        let (piece, local) = self.t.piece_of_row(self.flat_row(b, r));
        (&piece.buffer, local * self.cols + c)
    }
}

fn intervals(len: usize, mut cuts: Vec<usize>) -> Vec<(usize, usize)> {
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for c in cuts.into_iter().chain(std::iter::once(len)) {
        if c > start {
            out.push((start, c));
            start = c;
        }
    }
    if out.is_empty() {
        out.push((0, len));
    }
    out
}

fn to_u32(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::TooLarge {
        detail: format!("{what} = {v} does not fit the kernel's 32-bit indices"),
    })
}

/// The dispatches of `c = spec(a, b)`: a [`Matmul`] prepared and taken apart in one call, for
/// plans that only record it.
pub fn prepare(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    spec: MatmulSpec,
) -> Result<Vec<Dispatch>> {
    Ok(Matmul::new(gpu, a, b, c, spec)?.into_dispatches())
}

/// As [`prepare`], with an [`Epilogue`] on the outputs.
pub fn prepare_fused(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    spec: MatmulSpec,
    epilogue: Epilogue,
) -> Result<Vec<Dispatch>> {
    let (a, b, c) = (Rows::all(a), Rows::all(b), Rows::all(c));
    Ok(Matmul::build(gpu, a, b, c, spec, None, epilogue)?.into_dispatches())
}

/// As [`prepare_fused`], with a [`LowRank`] term added to every output (2-D products only).
pub fn prepare_low_rank(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    spec: MatmulSpec,
    low_rank: LowRank,
    epilogue: Epilogue,
) -> Result<Vec<Dispatch>> {
    Ok(Matmul::with_low_rank(gpu, a, b, c, spec, low_rank, epilogue)?.into_dispatches())
}

/// As [`prepare`], on row windows of the operands.
pub fn prepare_rows(
    gpu: &Gpu,
    a: Rows,
    b: Rows,
    c: Rows,
    spec: MatmulSpec,
) -> Result<Vec<Dispatch>> {
    Ok(Matmul::on_rows(gpu, a, b, c, spec)?.into_dispatches())
}

impl Matmul {
    pub fn new(gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor, spec: MatmulSpec) -> Result<Matmul> {
        Self::on_rows(gpu, Rows::all(a), Rows::all(b), Rows::all(c), spec)
    }

    /// `c = spec(a, b)` on row windows of the operands (see [`Rows`]).
    pub fn on_rows(gpu: &Gpu, a: Rows, b: Rows, c: Rows, spec: MatmulSpec) -> Result<Matmul> {
        Self::build(gpu, a, b, c, spec, None, Epilogue::Plain)
    }

    /// `c = spec(a, b)` with an epilogue on the outputs.
    pub fn with_epilogue(
        gpu: &Gpu,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        spec: MatmulSpec,
        epilogue: Epilogue,
    ) -> Result<Matmul> {
        let (a, b, c) = (Rows::all(a), Rows::all(b), Rows::all(c));
        Self::build(gpu, a, b, c, spec, None, epilogue)
    }

    /// `c = spec(a, b) + low_rank` with an epilogue on the outputs.
    pub fn with_low_rank(
        gpu: &Gpu,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        spec: MatmulSpec,
        low_rank: LowRank,
        epilogue: Epilogue,
    ) -> Result<Matmul> {
        let (a, b, c) = (Rows::all(a), Rows::all(b), Rows::all(c));
        Self::build(gpu, a, b, c, spec, Some(low_rank), epilogue)
    }

    fn build(
        gpu: &Gpu,
        a: Rows,
        b: Rows,
        c: Rows,
        spec: MatmulSpec,
        low_rank: Option<LowRank>,
        epilogue: Epilogue,
    ) -> Result<Matmul> {
        let extra = epilogue.buffers(c.tensor, (c.start, c.len) == (0, c.tensor.rows()))?;
        let (oa, ob, oc) = (
            Operand::of(a, "A")?,
            Operand::of(b, "B")?,
            Operand::of(c, "C")?,
        );
        let (a, b, c) = (a.tensor, b.tensor, c.tensor);
        let (m, ka) = if spec.trans_a {
            (oa.cols, oa.rows)
        } else {
            (oa.rows, oa.cols)
        };
        let (kb, n) = if spec.trans_b {
            (ob.cols, ob.rows)
        } else {
            (ob.rows, ob.cols)
        };
        let shape_err = |detail: String| Error::Shape {
            op: "matmul",
            detail,
        };
        if ka != kb {
            return Err(shape_err(format!(
                "inner dimensions differ: A {:?} (trans {}) and B {:?} (trans {})",
                a.shape(),
                spec.trans_a,
                b.shape(),
                spec.trans_b
            )));
        }
        if oc.rows != m || oc.cols != n {
            return Err(shape_err(format!(
                "C is {:?}, expected [.., {m}, {n}]",
                c.shape()
            )));
        }
        let batch = oc.batch;
        for (o, name) in [(&oa, "A"), (&ob, "B")] {
            if o.batch != batch && o.batch != 1 {
                return Err(shape_err(format!(
                    "{name} has batch {} but C has batch {batch}",
                    o.batch
                )));
            }
        }
        if std::ptr::eq(a, c) || std::ptr::eq(b, c) {
            return Err(shape_err("C must not alias A or B".into()));
        }
        let mut fused = epilogue.tensors();
        if let Some(lr) = &low_rank {
            fused.extend([(lr.left, "low-rank left"), (lr.right, "low-rank right")]);
        }
        for (t, name) in fused {
            if [a, b, c].iter().any(|o| std::ptr::eq(*o, t)) {
                return Err(shape_err(format!(
                    "the epilogue's {name} must not alias A, B or C"
                )));
            }
        }
        let k = ka;
        let shader_index = epilogue.shader_index(low_rank.is_some())?;
        if low_rank.is_some() && batch != 1 {
            return Err(shape_err(format!(
                "a low-rank term needs a 2-D product, got batch {batch}"
            )));
        }
        let low_rank = low_rank.map(|lr| lr.bind(gpu, m, n)).transpose()?;
        let shape = ProductShape {
            m,
            n,
            k,
            batch,
            trans_a: spec.trans_a,
            trans_b: spec.trans_b,
        };
        let Variant {
            shaders,
            entry,
            tile_m,
            tile_n,
        } = variant(choose(gpu, &spec, shape)?);

        let single = [&oa, &ob, &oc].iter().all(|o| o.t.pieces().len() == 1);
        let mut dispatches = Vec::new();
        let mut emit = |bi: usize,
                        nb: usize,
                        (m0, m1): (usize, usize),
                        (n0, n1): (usize, usize),
                        (k0, k1): (usize, usize),
                        beta: f32,
                        last_k: bool|
         -> Result<()> {
            let (mm, nn, kk) = (m1 - m0, n1 - n0, k1 - k0);
            let (a_buf, a_off) = if spec.trans_a {
                oa.locate(bi, k0, m0)
            } else {
                oa.locate(bi, m0, k0)
            };
            let (b_buf, b_off) = if spec.trans_b {
                ob.locate(bi, n0, k0)
            } else {
                ob.locate(bi, k0, n0)
            };
            let (c_buf, c_off) = oc.locate(bi, m0, n0);
            let (a_rs, a_cs) = if spec.trans_a {
                (1, oa.cols)
            } else {
                (oa.cols, 1)
            };
            let (b_rs, b_cs) = if spec.trans_b {
                (1, ob.cols)
            } else {
                (ob.cols, 1)
            };
            let stride = |o: &Operand| if o.batch == 1 { 0 } else { o.matrix_len() };
            let tiles_m = mm.div_ceil(tile_m as usize);
            let tiles_n = nn.div_ceil(tile_n as usize);
            let total = to_u32(tiles_m * tiles_n * nb, "workgroups")?;
            let grid = gpu.grid(total)?;
            let mut params = Params {
                m: to_u32(mm, "M")?,
                n: to_u32(nn, "N")?,
                k: to_u32(kk, "K")?,
                batch: nb as u32,
                a_off: to_u32(a_off, "A offset")?,
                a_rs: to_u32(a_rs, "A stride")?,
                a_cs: to_u32(a_cs, "A stride")?,
                a_bs: to_u32(stride(&oa), "A batch stride")?,
                b_off: to_u32(b_off, "B offset")?,
                b_rs: to_u32(b_rs, "B stride")?,
                b_cs: to_u32(b_cs, "B stride")?,
                b_bs: to_u32(stride(&ob), "B batch stride")?,
                c_off: to_u32(c_off, "C offset")?,
                c_rs: to_u32(oc.cols, "C stride")?,
                c_bs: to_u32(stride(&oc), "C batch stride")?,
                groups_x: grid[0],
                alpha: spec.alpha,
                beta,
                tiles_m: tiles_m as u32,
                tiles_n: tiles_n as u32,
                groups_y: grid[1],
                lr_rank: 0,
                lr_row0: to_u32(m0, "row")?,
                lr_col0: to_u32(n0, "column")?,
                lr_cols: to_u32(n, "N")?,
                lr_right_js: 0,
                lr_right_cs: 0,
                lr_stream: 0,
                lr_threshold: 0,
                lr_dropout: 0,
                lr_scale: 0.0,
                lr_drop_scale: 0.0,
            };
            // The epilogue runs once per output, with the last slice of K; earlier slices
            // store partial sums in C for the last to finish.
            let mut buffers = vec![(1, a_buf), (2, b_buf), (3, c_buf)];
            let shader = if last_k {
                buffers.extend((4..).zip(extra.iter().copied()));
                if let Some(lr) = &low_rank {
                    params.lr_rank = lr.rank;
                    params.lr_right_js = lr.right_js;
                    params.lr_right_cs = lr.right_cs;
                    params.lr_stream = lr.stream;
                    params.lr_threshold = lr.threshold;
                    params.lr_dropout = lr.dropout;
                    params.lr_scale = lr.scale;
                    params.lr_drop_scale = lr.drop_scale;
                    buffers.extend([(8, &lr.key), (9, &lr.left), (10, &lr.right)]);
                }
                &shaders[shader_index]
            } else {
                &shaders[0]
            };
            dispatches.push(Dispatch::with_bindings(
                gpu,
                shader,
                entry,
                bytemuck::bytes_of(&params),
                &buffers,
                grid,
            ));
            Ok(())
        };

        if single {
            emit(0, batch, (0, m), (0, n), (0, k), spec.beta, true)?;
        } else {
            // Split along every piece boundary of every operand, one batch at a time; the
            // K-slices after the first accumulate into C.
            for bi in 0..batch {
                let mut m_cuts = oc.cuts(bi);
                let mut n_cuts = Vec::new();
                let mut k_cuts = Vec::new();
                if spec.trans_a {
                    k_cuts.extend(oa.cuts(bi));
                } else {
                    m_cuts.extend(oa.cuts(bi));
                }
                if spec.trans_b {
                    n_cuts.extend(ob.cuts(bi));
                } else {
                    k_cuts.extend(ob.cuts(bi));
                }
                for mr in intervals(m, m_cuts) {
                    for nr in intervals(n, n_cuts.clone()) {
                        let k_slices = intervals(k, k_cuts.clone());
                        let last = k_slices.len() - 1;
                        for (i, kr) in k_slices.into_iter().enumerate() {
                            let beta = if i == 0 { spec.beta } else { 1.0 };
                            emit(bi, 1, mr, nr, kr, beta, i == last)?;
                        }
                    }
                }
            }
        }
        Ok(Matmul { dispatches })
    }

    /// The prepared dispatches, to record in order as part of a larger program.
    pub fn into_dispatches(self) -> Vec<Dispatch> {
        self.dispatches
    }

    /// Number of dispatches (more than one when operands are stored in pieces).
    pub fn dispatch_count(&self) -> usize {
        self.dispatches.len()
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            d.record(pass);
        }
    }

    /// Record into a fresh encoder and submit (does not wait).
    pub fn run(&self, gpu: &Gpu) {
        let mut encoder = gpu.encoder();
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("matmul"),
                timestamp_writes: None,
            });
            self.record(&mut pass);
        }
        gpu.submit(encoder);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `const NAME: u32 = Vu;` in a shader's source.
    fn shader_const(code: &str, name: &str) -> u32 {
        let line = code
            .lines()
            .find(|l| l.starts_with(&format!("const {name}: u32 = ")))
            .unwrap_or_else(|| panic!("no const {name}"));
        line.rsplit(' ')
            .next()
            .unwrap()
            .trim_end_matches(['u', ';'])
            .parse()
            .unwrap()
    }

    #[test]
    fn rows_tiles_match_their_shaders() {
        for kernel in MatmulKernel::VARIANTS {
            let v = variant(kernel);
            if !v.entry.starts_with("matmul_rows") {
                continue;
            }
            let (wg, tm, tn) = (
                shader_const(v.shaders[0].code, "ROWS_WG"),
                shader_const(v.shaders[0].code, "ROWS_TM"),
                shader_const(v.shaders[0].code, "ROWS_TN"),
            );
            assert_eq!((v.tile_m, v.tile_n), (tm, wg * tn), "{kernel}");
            assert!(
                v.shaders[0].file.contains(&format!("{tm}x{tn}")),
                "{kernel}"
            );
        }
    }
}
