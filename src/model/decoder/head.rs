//! The ends of the decoder: the input embedding, and the head after the last block
//! (final RMSNorm, output projection, token cross-entropy and its mean):
//!
//!   x_0 = embedding_proj[ids]
//!   logits = de_embedding_proj(rmsnorm(x_L)),   loss = mean_t CE(logits_t, label_t)
//!
//! The logits `[N, V]` are the largest buffer of a step (3.3 GB for the study's micro-batch
//! of 8 × 2048 tokens at V = 50304), so they are computed a chunk of token rows at a time in
//! one `[C, V]` buffer ([`LogitsPlan`]): the forward projects each chunk and keeps only its
//! rows' loss and logsumexp; the backward projects each chunk again (the price of not
//! storing them: one more output-projection product per step), turns it into its gradient
//! in place and accumulates both products from it. One chunk holding every row is the
//! plain path, with nothing recomputed.
//!
//! The head's backward leaves the gradient of x_L in `dres` for the last block's backward.
//! The embedding's backward is a separate gather over a host-built index
//! (`EmbeddingBackward`), set up by the decoder once the gradient buffers exist.

use super::residual::Residual;
use super::{Plan, Scratch};
use crate::error::Result;
use crate::gpu::Tensor;
use crate::model::program::{Memory, Program};
use crate::ops::cross_entropy::Chunk;
use crate::ops::matmul::{prepare_rows as mm_rows, Rows};
use crate::ops::{cross_entropy, embedding, reduce, rmsnorm, MatmulSpec};

/// The most bytes of logits a plan holds at once unless told otherwise (a chunk of
/// `LOGITS_CHUNK_BYTES / (4 V)` rows; 1,334 rows at V = 50304).
pub const LOGITS_CHUNK_BYTES: u64 = 256 << 20;

/// How a plan holds the logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsPlan {
    /// Whole when they fit in [`LOGITS_CHUNK_BYTES`], else in chunks that do.
    Auto,
    /// Every row at once, readable after the forward ([`super::Decoder::logits`]):
    /// gradient checks and generation.
    Whole,
    /// Chunks of this many rows (tests of the chunked path).
    ChunkRows(usize),
}

impl LogitsPlan {
    /// Rows per chunk for `rows` token rows over a vocabulary of `vocab`.
    pub fn chunk_rows(self, rows: usize, vocab: usize) -> usize {
        let want = match self {
            LogitsPlan::Auto => (LOGITS_CHUNK_BYTES / (4 * vocab.max(1) as u64)) as usize,
            LogitsPlan::Whole => rows,
            LogitsPlan::ChunkRows(c) => c,
        };
        want.clamp(1, rows.max(1))
    }
}

/// `x_0 = embedding_proj[ids]`.
pub(super) fn plan_embedding(
    plan: &Plan,
    prog: &mut Program,
    ids: &Tensor,
    x0: &Tensor,
) -> Result<()> {
    let table = &plan.param("embedding_proj.weight").value;
    prog.push("embedding", embedding::forward(plan.gpu, table, ids, x0)?);
    Ok(())
}

/// The head's buffers: its input x_L (the last block's output) and what the loss needs.
pub(super) struct Head {
    pub x: Tensor,
    norm: Tensor,
    rstd: Tensor,
    /// `[C, V]`, the logits of one chunk of token rows (all of them when C = N); the backward
    /// overwrites them with their gradient.
    pub logits: Tensor,
    /// Token rows `(first, rows)` of each chunk, in order.
    chunks: Vec<Chunk>,
    pub row_loss: Tensor,
    lse: Tensor,
    pub loss: Tensor,
}

impl Head {
    pub fn allocate(mem: &mut Memory, plan: &Plan) -> Result<Head> {
        let d = plan.dims;
        let n = d.tokens();
        let c = plan.logits.chunk_rows(n, d.vocab);
        let chunks = if c >= n {
            vec![Chunk {
                first: 0,
                rows: n,
                whole: true,
            }]
        } else {
            (0..n)
                .step_by(c)
                .map(|first| Chunk::rows(first, c.min(n - first)))
                .collect()
        };
        Ok(Head {
            x: mem.zeros(&[n, d.d_model])?,
            norm: mem.zeros(&[n, d.d_model])?,
            rstd: mem.zeros(&[n])?,
            logits: mem.zeros(&[c, d.vocab])?,
            chunks,
            row_loss: mem.zeros(&[n])?,
            lse: mem.zeros(&[n])?,
            loss: mem.zeros(&[1])?,
        })
    }

    /// Whether the logits of every row are in `logits` after the forward.
    pub fn logits_whole(&self) -> bool {
        self.chunks.len() == 1
    }

    /// Rows of the logits buffer (the chunk size).
    pub fn chunk_rows(&self) -> usize {
        self.logits.rows()
    }

    /// The output projection of chunk `c` into `logits[0..c.rows]`.
    fn project(&self, plan: &Plan, prog: &mut Program, c: Chunk) -> Result<()> {
        let out_w = &plan.param("de_embedding_proj.weight").value;
        prog.push(
            "output projection",
            mm_rows(
                plan.gpu,
                Rows::range(&self.norm, c.first, c.rows),
                Rows::all(out_w),
                Rows::range(&self.logits, 0, c.rows),
                MatmulSpec::nt(),
            )?,
        );
        Ok(())
    }

    /// Final norm, output projection (bound in pieces when large), cross-entropy per token
    /// and its mean, a chunk of rows at a time.
    pub fn plan_forward(
        &self,
        plan: &Plan,
        prog: &mut Program,
        labels: &Tensor,
        input: Residual,
    ) -> Result<()> {
        let gpu = plan.gpu;
        let output_norm = &plan.param("output_norm.weight").value;
        let eps = plan.dims.eps;
        prog.push(
            "norm",
            [input.norm(gpu, &self.x, output_norm, eps, &self.norm, &self.rstd)?],
        );
        for &c in &self.chunks {
            self.project(plan, prog, c)?;
            prog.push(
                "cross-entropy",
                cross_entropy::forward_chunk(
                    gpu,
                    &self.logits,
                    c,
                    labels,
                    &self.row_loss,
                    &self.lse,
                )?,
            );
        }
        prog.push(
            "cross-entropy",
            [reduce::mean(gpu, &self.row_loss, &self.loss)?],
        );
        Ok(())
    }

    /// The backward of the loss `grad_scale * sum of token losses`, down to `s.dres` (the
    /// gradient of x_L).
    pub fn plan_backward(
        &self,
        plan: &Plan,
        prog: &mut Program,
        labels: &Tensor,
        s: &Scratch,
        grad_scale: f32,
    ) -> Result<()> {
        let gpu = plan.gpu;
        let out_w = plan.param("de_embedding_proj.weight");
        for &c in &self.chunks {
            if !self.logits_whole() {
                // The forward left the last chunk's logits here, not this one's.
                self.project(plan, prog, c)?;
            }
            prog.push(
                "cross-entropy",
                cross_entropy::backward_chunk(gpu, &self.logits, c, labels, &self.lse, grad_scale)?,
            );
            let dlogits = Rows::range(&self.logits, 0, c.rows);
            // dX = dY · W for the chunk's rows; dW += dYᵀ · X over every chunk.
            prog.push(
                "output projection",
                mm_rows(
                    gpu,
                    dlogits,
                    Rows::all(&out_w.value),
                    Rows::range(&s.dnorm, c.first, c.rows),
                    MatmulSpec::nn(),
                )?,
            );
            prog.push(
                "output projection",
                mm_rows(
                    gpu,
                    dlogits,
                    Rows::range(&self.norm, c.first, c.rows),
                    Rows::all(&out_w.grad),
                    MatmulSpec::tn().accumulate(),
                )?,
            );
        }
        let on = plan.param("output_norm.weight");
        let eps = plan.dims.eps;
        prog.push(
            "norm",
            rmsnorm::backward(
                gpu, &self.x, &on.value, &self.rstd, &s.dnorm, eps, &s.dres, &on.grad,
            )?,
        );
        Ok(())
    }
}
