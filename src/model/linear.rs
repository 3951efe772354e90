//! A linear layer of the decoder, `y = x Wᵀ` with W stored `[out, in]`, optionally wrapped
//! with LoRA adapters (pico-relora): `y = x Wᵀ + s · dropout(x) Aᵀ Bᵀ`, W frozen.
//! Forward and backward are planned together here so both sides of the math sit side by side.
//!
//! Backward of the LoRA form, with h = dropout(x) Aᵀ (saved by the forward):
//!   dx  = dy W  +  dropout'(dh A)      dh = s · dy B
//!   dB += s · dyᵀ h                   dA += dhᵀ dropout(x)
//! and no gradient for W.
//!
//! The adapters' outer products ride in the base product's epilogue as a low-rank term
//! (`ops::matmul::LowRank`): `s · h Bᵀ` in the forward's, `dropout'(dh A)` (mask
//! regenerated) in dx's, so neither costs a dispatch or a buffer of its own. Where dx's
//! product already has SwiGLU's backward in its epilogue (w_2), the adapters' share is
//! formed in dx first and the base product adds to it ([`LoraBackward::Buffered`]).

use super::program::{Memory, Param, Program};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::ops::lora::{self, Seed};
use crate::ops::matmul::{
    prepare as mm, prepare_fused, prepare_low_rank, Epilogue, LowRank, LowRankDropout,
};
use crate::ops::MatmulSpec;

/// The adapters of one wrapped linear and the buffers their passes need.
pub struct Lora {
    pub scale: f32,
    pub a: usize,
    pub b: usize,
    /// dropout(x) when dropout is on; x itself otherwise.
    xd: Option<Tensor>,
    h: Tensor,
    /// The backward's buffers (absent in a plan without backward).
    dh: Option<Tensor>,
    dxd: Option<Tensor>,
    /// LoRA dropout probability (0: off) and this linear's RNG stream.
    p: f32,
    stream: u32,
    backward: LoraBackward,
    /// Whether the forward adds `s · h Bᵀ` in the base product's epilogue.
    fused_forward: bool,
}

/// The backward a wrapped linear is planned with (with separate LoRA products, the
/// `--kernel lora=...` choice, `Fused` is planned as `Buffered`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoraBackward {
    /// None: an evaluation plan.
    None,
    /// dx's base product adds the adapters' share as a low-rank term.
    Fused,
    /// The adapters' share of dx is formed first (in a buffer of its own under dropout) and
    /// dx's base product adds to it: for a dx product whose epilogue cannot also take the
    /// term (SwiGLU's backward).
    Buffered,
}

pub struct Linear {
    /// Index of the base weight in the parameter list.
    pub w: usize,
    pub lora: Option<Lora>,
}

impl Linear {
    pub fn plain(w: usize) -> Linear {
        Linear { w, lora: None }
    }

    /// A wrapped linear for `n` rows of input: adapters `a` [r, in] and `b` [out, r]. Its
    /// activations (dropout(x), h, and with a backward the gradients it needs) are allocated
    /// from `mem`. `dropout` 0 plans no dropout at all.
    #[allow(clippy::too_many_arguments)]
    pub fn lora(
        mem: &mut Memory,
        params: &[Param],
        w: usize,
        a: usize,
        b: usize,
        n: usize,
        scale: f32,
        dropout: f32,
        stream: u32,
        backward: LoraBackward,
    ) -> Result<Linear> {
        let (r, input) = (params[a].value.shape()[0], params[a].value.shape()[1]);
        let on = dropout > 0.0;
        // The adapter's choice (`--kernel lora=...`): separate products plan every backward
        // as Buffered.
        let fused = mem.gpu().kernels().lora.fused();
        let backward = match backward {
            LoraBackward::Fused if !fused => LoraBackward::Buffered,
            b => b,
        };
        Ok(Linear {
            w,
            lora: Some(Lora {
                scale,
                a,
                b,
                xd: if on {
                    Some(mem.zeros(&[n, input])?)
                } else {
                    None
                },
                h: mem.zeros(&[n, r])?,
                dh: if backward != LoraBackward::None {
                    Some(mem.zeros(&[n, r])?)
                } else {
                    None
                },
                dxd: if on && backward == LoraBackward::Buffered {
                    Some(mem.zeros(&[n, input])?)
                } else {
                    None
                },
                p: dropout,
                stream,
                backward,
                fused_forward: fused,
            }),
        })
    }

    /// `y = linear(x)` (overwrites y). With `dropout` (training), LoRA's input is
    /// dropout(x), its masks from `seed` (reseeded per micro-step) and this linear's stream,
    /// which the backward regenerates; without (evaluation, as PyTorch's `model.eval()`), x.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        gpu: &Gpu,
        params: &[Param],
        prog: &mut Program,
        seed: &Seed,
        x: &Tensor,
        y: &Tensor,
        dropout: bool,
    ) -> Result<()> {
        self.forward_fused(gpu, params, prog, seed, x, y, dropout, Epilogue::Plain)
    }

    /// As [`Linear::forward`], with `epilogue` on y's finished values (with LoRA, after the
    /// adapters' term is added).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_fused(
        &self,
        gpu: &Gpu,
        params: &[Param],
        prog: &mut Program,
        seed: &Seed,
        x: &Tensor,
        y: &Tensor,
        dropout: bool,
        epilogue: Epilogue,
    ) -> Result<()> {
        let w = &params[self.w].value;
        let Some(l) = &self.lora else {
            let base = prepare_fused(gpu, x, w, y, MatmulSpec::nt(), epilogue)?;
            prog.push("matmul", base);
            return Ok(());
        };
        let xd = match l.xd.as_ref().filter(|_| dropout) {
            Some(xd) => {
                prog.push(
                    "lora",
                    [lora::dropout_forward(gpu, x, xd, l.p, seed, l.stream)?],
                );
                xd
            }
            None => x,
        };
        prog.push(
            "lora",
            mm(gpu, xd, &params[l.a].value, &l.h, MatmulSpec::nt())?,
        );
        if !l.fused_forward {
            prog.push("matmul", mm(gpu, x, w, y, MatmulSpec::nt())?);
            let up = MatmulSpec::nt().scale(l.scale).accumulate();
            let up = prepare_fused(gpu, &l.h, &params[l.b].value, y, up, epilogue)?;
            prog.push("lora", up);
            return Ok(());
        }
        // y = x Wᵀ + s · h Bᵀ in one product.
        let up = LowRank {
            left: &l.h,
            right: &params[l.b].value,
            right_transposed: true,
            scale: l.scale,
            dropout: None,
        };
        let base = prepare_low_rank(gpu, x, w, y, MatmulSpec::nt(), up, epilogue)?;
        prog.push("matmul", base);
        Ok(())
    }

    /// Gradients from `dy`: dx overwritten (or added to when `accumulate_dx`), parameter
    /// gradients added to. Follows a forward with dropout (when the plan has dropout).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        gpu: &Gpu,
        params: &[Param],
        prog: &mut Program,
        seed: &Seed,
        x: &Tensor,
        dy: &Tensor,
        dx: &Tensor,
        accumulate_dx: bool,
    ) -> Result<()> {
        let epilogue = Epilogue::Plain;
        self.backward_fused(gpu, params, prog, seed, x, dy, dx, accumulate_dx, epilogue)
    }

    /// As [`Linear::backward`], with `epilogue` on dx's finished values (with LoRA, after
    /// the adapters' share is added).
    #[allow(clippy::too_many_arguments)]
    pub fn backward_fused(
        &self,
        gpu: &Gpu,
        params: &[Param],
        prog: &mut Program,
        seed: &Seed,
        x: &Tensor,
        dy: &Tensor,
        dx: &Tensor,
        accumulate_dx: bool,
        epilogue: Epilogue,
    ) -> Result<()> {
        let w = &params[self.w];
        let dx_spec = |accumulate: bool| {
            if accumulate {
                MatmulSpec::nn().accumulate()
            } else {
                MatmulSpec::nn()
            }
        };
        let grad_w = MatmulSpec::tn().accumulate();
        let Some(l) = &self.lora else {
            let base = prepare_fused(gpu, dy, &w.value, dx, dx_spec(accumulate_dx), epilogue)?;
            prog.push("matmul", base);
            prog.push("matmul", mm(gpu, dy, x, &w.grad, grad_w)?);
            return Ok(());
        };
        let internal = |what: &str| Error::Invalid(format!("internal: a LoRA backward {what}"));
        let (a, b) = (&params[l.a], &params[l.b]);
        let xd = l.xd.as_ref().unwrap_or(x);
        let dh =
            l.dh.as_ref()
                .ok_or_else(|| internal("in a plan without backward"))?;
        prog.push(
            "lora",
            mm(gpu, dy, &b.value, dh, MatmulSpec::nn().scale(l.scale))?,
        );
        prog.push("lora", mm(gpu, dy, &l.h, &b.grad, grad_w.scale(l.scale))?);
        prog.push("lora", mm(gpu, dh, xd, &a.grad, grad_w)?);
        let on = l.p > 0.0;
        if l.backward == LoraBackward::Fused {
            // dx = dy W (+ dx) + dropout'(dh A) in one product.
            let share = LowRank {
                left: dh,
                right: &a.value,
                right_transposed: false,
                scale: 1.0,
                dropout: on.then_some(LowRankDropout {
                    p: l.p,
                    seed,
                    stream: l.stream,
                }),
            };
            let spec = dx_spec(accumulate_dx);
            let base = prepare_low_rank(gpu, dy, &w.value, dx, spec, share, epilogue)?;
            prog.push("matmul", base);
            return Ok(());
        }
        // Buffered: the adapters' share written to (or added to) dx first.
        match (&l.dxd, on) {
            (Some(dxd), true) => {
                prog.push("lora", mm(gpu, dh, &a.value, dxd, MatmulSpec::nn())?);
                // dropout_forward on dxd is the backward's mask applied without adding.
                let share = if accumulate_dx {
                    lora::dropout_backward_accumulate(gpu, dxd, dx, l.p, seed, l.stream)?
                } else {
                    lora::dropout_forward(gpu, dxd, dx, l.p, seed, l.stream)?
                };
                prog.push("lora", [share]);
            }
            (None, true) => return Err(internal("under dropout without its buffer")),
            (_, false) => prog.push("lora", mm(gpu, dh, &a.value, dx, dx_spec(accumulate_dx))?),
        }
        let base = prepare_fused(gpu, dy, &w.value, dx, dx_spec(true), epilogue)?;
        prog.push("matmul", base);
        Ok(())
    }

    /// `W += s · B A` (or `W += B A` with the reference's quirk), recorded before the reset.
    pub fn merge(&self, gpu: &Gpu, params: &[Param], without_scale: bool) -> Result<Vec<Dispatch>> {
        let Some(l) = &self.lora else {
            return Ok(Vec::new());
        };
        let s = if without_scale { 1.0 } else { l.scale };
        mm(
            gpu,
            &params[l.b].value,
            &params[l.a].value,
            &params[self.w].value,
            MatmulSpec::nn().scale(s).accumulate(),
        )
    }
}
