//! The ends of the decoder: the input embedding, and the head after the last block
//! (final RMSNorm, output projection, token cross-entropy and its mean):
//!
//!   x_0 = embedding_proj[ids]
//!   logits = de_embedding_proj(rmsnorm(x_L)),   loss = mean_t CE(logits_t, label_t)
//!
//! The head's backward leaves the gradient of x_L in `dres` for the last block's backward.
//! The embedding's backward is a separate gather over a host-built index
//! (`EmbeddingBackward`), set up by the decoder once the gradient buffers exist.

use super::{Plan, Scratch};
use crate::error::Result;
use crate::gpu::Tensor;
use crate::model::program::{Memory, Program};
use crate::ops::matmul::prepare as mm;
use crate::ops::{cross_entropy, embedding, reduce, rmsnorm, MatmulSpec};

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
    /// `[N, V]`; the backward overwrites the logits with their gradient.
    pub logits: Tensor,
    pub row_loss: Tensor,
    lse: Tensor,
    pub loss: Tensor,
}

impl Head {
    pub fn allocate(mem: &mut Memory, plan: &Plan) -> Result<Head> {
        let d = plan.dims;
        let n = d.tokens();
        Ok(Head {
            x: mem.zeros(&[n, d.d_model])?,
            norm: mem.zeros(&[n, d.d_model])?,
            rstd: mem.zeros(&[n])?,
            logits: mem.zeros(&[n, d.vocab])?,
            row_loss: mem.zeros(&[n])?,
            lse: mem.zeros(&[n])?,
            loss: mem.zeros(&[1])?,
        })
    }

    /// Final norm, output projection (bound in pieces when large), cross-entropy per token
    /// and its mean.
    pub fn plan_forward(&self, plan: &Plan, prog: &mut Program, labels: &Tensor) -> Result<()> {
        let gpu = plan.gpu;
        let output_norm = &plan.param("output_norm.weight").value;
        let eps = plan.dims.eps;
        prog.push(
            "norm",
            [rmsnorm::forward(
                gpu,
                &self.x,
                output_norm,
                eps,
                &self.norm,
                &self.rstd,
            )?],
        );
        let out_w = &plan.param("de_embedding_proj.weight").value;
        prog.push(
            "output projection",
            mm(gpu, &self.norm, out_w, &self.logits, MatmulSpec::nt())?,
        );
        prog.push(
            "cross-entropy",
            cross_entropy::forward(gpu, &self.logits, labels, &self.row_loss, &self.lse)?,
        );
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
        prog.push(
            "cross-entropy",
            cross_entropy::backward(gpu, &self.logits, labels, &self.lse, grad_scale)?,
        );
        let out_w = plan.param("de_embedding_proj.weight");
        let grad_x = MatmulSpec::nn(); // dX = dY · W
        let grad_w = MatmulSpec::tn().accumulate(); // dW += dYᵀ · X
        prog.push(
            "output projection",
            mm(gpu, &self.logits, &out_w.value, &s.dnorm, grad_x)?,
        );
        prog.push(
            "output projection",
            mm(gpu, &self.logits, &self.norm, &out_w.grad, grad_w)?,
        );
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
