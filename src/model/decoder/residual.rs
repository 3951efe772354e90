//! The residual stream between blocks: each block's output `x' = h + f` is not added by
//! itself but by the RMSNorm that reads it next (the next block's first norm, or the head's),
//! one dispatch for both (`rmsnorm::add_forward`).

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::ops::rmsnorm;

/// How the input x of a block (or of the head) arrives.
#[derive(Clone, Copy)]
pub(super) enum Residual<'a> {
    /// Already in x: the embedding wrote it.
    Written,
    /// `x = a + b` (the previous block's h and FFN output), summed and written into x by the
    /// norm that reads it.
    Sum(&'a Tensor, &'a Tensor),
}

impl Residual<'_> {
    /// `y = rmsnorm(x) * w` (and `rstd`), with x first written as the sum when it is one.
    pub(super) fn norm(
        self,
        gpu: &Gpu,
        x: &Tensor,
        w: &Tensor,
        eps: f32,
        y: &Tensor,
        rstd: &Tensor,
    ) -> Result<Dispatch> {
        match self {
            Residual::Written => rmsnorm::forward(gpu, x, w, eps, y, rstd),
            Residual::Sum(a, b) => rmsnorm::add_forward(gpu, a, b, w, eps, x, y, rstd),
        }
    }
}
