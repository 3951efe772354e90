//! One transformer block of the decoder (pre-norm, no bias), planned forward and backward:
//!
//!   n1 = rmsnorm(x)                      h  = x + o_proj(attn(rope(q_proj n1), rope(k_proj n1), v_proj n1))
//!   n2 = rmsnorm(h)                      x' = h + w_2(silu(w_0 n2) * w_1 n2)
//!
//! Each residual add is fused into the norm that reads its sum (`rmsnorm::add_forward`):
//! `h` with `n2` here, and `x'` with the next block's `n1` (or the head's norm), so a block's
//! forward ends with the two terms of `x'` ([`Block::output`]). SwiGLU runs in matmul
//! epilogues: `silu(g) * u` in u's product, its backward in the product of its gradient.
//!
//! `plan_forward` records exactly those steps top to bottom; `plan_backward` records their
//! backward ops bottom to top, with the gradient of the block's output in `dres` on entry and
//! the gradient of its input there on exit; `plan_reset` records ReLoRA's merge of its
//! adapters and the re-initialisation of A.

use super::residual::Residual;
use super::{Dims, Plan, Reset, Scratch};
use crate::error::Result;
use crate::gpu::Tensor;
use crate::model::linear::{Linear, LoraBackward};
use crate::model::program::{Memory, Program};
use crate::model::relora::{ReloraConfig, LINEARS};
use crate::ops::matmul::Epilogue;
use crate::ops::{attention, lora, rmsnorm, rope};

/// Activations of one block: the ones its backward reads, and the two branch outputs
/// (`o`, `f`) that only its forward uses.
struct Acts {
    x: Tensor,
    n1: Tensor,
    rstd1: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_rot: Tensor,
    k_rot: Tensor,
    attn: Tensor,
    lse: Tensor,
    o: Tensor,
    h: Tensor,
    n2: Tensor,
    rstd2: Tensor,
    g: Tensor,
    u: Tensor,
    act: Tensor,
    f: Tensor,
}

/// The seven linears of a block (in [`LINEARS`]' order) and its activations.
pub(super) struct Block {
    layer: usize,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    w_0: Linear,
    w_1: Linear,
    w_2: Linear,
    acts: Acts,
}

impl Block {
    /// Allocate block `layer`: its activations and, for every wrapped linear, the LoRA
    /// buffers. Its input `x` is allocated here too (block 0's is the embedding's output).
    pub fn allocate(
        mem: &mut Memory,
        plan: &Plan,
        relora: Option<&ReloraConfig>,
        layer: usize,
    ) -> Result<Block> {
        let d: Dims = plan.dims;
        let (n, model, hidden) = (d.tokens(), d.d_model, d.hidden);
        let mut linears = Vec::with_capacity(LINEARS.len());
        for (j, (path, _)) in LINEARS.iter().enumerate() {
            let name = |part: &str| plan.index(&format!("layers.{layer}.{path}.{part}"));
            linears.push(match relora {
                Some(r) if r.wraps(path) => Linear::lora(
                    mem,
                    plan.params,
                    name("weight"),
                    name("A_lora.weight"),
                    name("B_lora.weight"),
                    n,
                    r.scale(),
                    if plan.purpose.dropout() {
                        r.lora_dropout as f32
                    } else {
                        0.0
                    },
                    Self::stream(layer, j),
                    match (plan.purpose.backward(), *path) {
                        (false, _) => LoraBackward::None,
                        // dx's product has SwiGLU's backward in its epilogue.
                        (true, "swiglu.w_2") => LoraBackward::Buffered,
                        (true, _) => LoraBackward::Fused,
                    },
                )?,
                _ => Linear::plain(name("weight")),
            });
        }
        let [q_proj, k_proj, v_proj, o_proj, w_0, w_1, w_2] =
            <[Linear; 7]>::try_from(linears).unwrap_or_else(|_| unreachable!("seven linears"));
        let acts = Acts {
            x: mem.zeros(&[n, model])?,
            n1: mem.zeros(&[n, model])?,
            rstd1: mem.zeros(&[n])?,
            q: mem.zeros(&d.heads(d.heads))?,
            k: mem.zeros(&d.heads(d.kv_heads))?,
            v: mem.zeros(&d.heads(d.kv_heads))?,
            q_rot: mem.zeros(&d.heads(d.heads))?,
            k_rot: mem.zeros(&d.heads(d.kv_heads))?,
            attn: mem.zeros(&d.heads(d.heads))?,
            lse: mem.zeros(&[d.batch, d.heads, d.seq])?,
            o: mem.zeros(&[n, model])?,
            h: mem.zeros(&[n, model])?,
            n2: mem.zeros(&[n, model])?,
            rstd2: mem.zeros(&[n])?,
            g: mem.zeros(&[n, hidden])?,
            u: mem.zeros(&[n, hidden])?,
            act: mem.zeros(&[n, hidden])?,
            f: mem.zeros(&[n, model])?,
        };
        Ok(Block {
            layer,
            q_proj,
            k_proj,
            v_proj,
            o_proj,
            w_0,
            w_1,
            w_2,
            acts,
        })
    }

    /// The RNG stream of linear `j` of block `layer`: LoRA dropout and A's re-initialisation
    /// draw from it, so every site gets its own numbers under one seed.
    fn stream(layer: usize, j: usize) -> u32 {
        (layer * LINEARS.len() + j) as u32
    }

    /// The block's input, which the previous block (or the embedding) writes.
    pub fn input(&self) -> &Tensor {
        &self.acts.x
    }

    fn linears(&self) -> [&Linear; 7] {
        [
            &self.q_proj,
            &self.k_proj,
            &self.v_proj,
            &self.o_proj,
            &self.w_0,
            &self.w_1,
            &self.w_2,
        ]
    }

    /// The block's output `x' = h + f` as its two terms: the next block's (or the head's)
    /// first norm adds them ([`Residual::Sum`]).
    pub fn output(&self) -> Residual<'_> {
        Residual::Sum(&self.acts.h, &self.acts.f)
    }

    /// `block(x)` up to its two output terms ([`Block::output`]), with or without LoRA
    /// dropout; `input` says how x arrives.
    pub fn plan_forward(
        &self,
        plan: &Plan,
        prog: &mut Program,
        input: Residual,
        dropout: bool,
    ) -> Result<()> {
        let (gpu, params, seed) = (plan.gpu, plan.params, plan.dropout_seed);
        let a = &self.acts;
        let w = |s: &str| &plan.param(&format!("layers.{}.{s}", self.layer)).value;
        let eps = plan.dims.eps;
        let (q, k, v, attn) = (
            plan.flat(&a.q)?,
            plan.flat(&a.k)?,
            plan.flat(&a.v)?,
            plan.flat(&a.attn)?,
        );

        // Attention branch: h = x + o_proj(attn(rope(q), rope(k), v)) of n1 = rmsnorm(x).
        let attention_norm = w("attention_norm.weight");
        prog.push(
            "norm",
            [input.norm(gpu, &a.x, attention_norm, eps, &a.n1, &a.rstd1)?],
        );
        self.q_proj
            .forward(gpu, params, prog, seed, &a.n1, &q, dropout)?;
        self.k_proj
            .forward(gpu, params, prog, seed, &a.n1, &k, dropout)?;
        self.v_proj
            .forward(gpu, params, prog, seed, &a.n1, &v, dropout)?;
        let rotate = rope::apply_two(gpu, [&a.q, &a.k], plan.rope, [&a.q_rot, &a.k_rot], false)?;
        prog.push("rope", [rotate]);
        let shape = plan.dims.attention();
        prog.push(
            "attention",
            attention::forward(gpu, &a.q_rot, &a.k_rot, &a.v, &a.attn, &a.lse, shape)?,
        );
        self.o_proj
            .forward(gpu, params, prog, seed, &attn, &a.o, dropout)?;

        // FFN branch: x' = h + w_2(silu(w_0 n2) * w_1 n2) of n2 = rmsnorm(h), the residual
        // add h = x + o fused into the norm.
        let swiglu_norm = w("swiglu_norm.weight");
        prog.push(
            "norm",
            [rmsnorm::add_forward(
                gpu,
                &a.x,
                &a.o,
                swiglu_norm,
                eps,
                &a.h,
                &a.n2,
                &a.rstd2,
            )?],
        );
        self.w_0
            .forward(gpu, params, prog, seed, &a.n2, &a.g, dropout)?;
        // act = silu(g) * u in the epilogue of u's product.
        let swiglu = Epilogue::SwiGlu {
            gate: &a.g,
            act: &a.act,
        };
        self.w_1
            .forward_fused(gpu, params, prog, seed, &a.n2, &a.u, dropout, swiglu)?;
        self.w_2
            .forward(gpu, params, prog, seed, &a.act, &a.f, dropout)?;
        Ok(())
    }

    /// The backward of [`Block::plan_forward`]: `s.dres` holds the gradient of the block's
    /// output and is turned into the gradient of its input; parameter gradients accumulate.
    pub fn plan_backward(&self, plan: &Plan, prog: &mut Program, s: &Scratch) -> Result<()> {
        let (gpu, params, seed) = (plan.gpu, plan.params, plan.dropout_seed);
        let a = &self.acts;
        let w = |name: &str| plan.param(&format!("layers.{}.{name}", self.layer));
        let eps = plan.dims.eps;

        // FFN branch: dres is the gradient of x' = h + w_2(...).
        // SwiGLU's backward (d_act into dg, du) in the epilogue of d_act's product.
        let swiglu = Epilogue::SwiGluBackward {
            gate: &a.g,
            up: &a.u,
            d_gate: &s.dg,
            d_up: &s.du,
        };
        let (act, dres, dact) = (&a.act, &s.dres, &s.dact);
        self.w_2
            .backward_fused(gpu, params, prog, seed, act, dres, dact, false, swiglu)?;
        self.w_0
            .backward(gpu, params, prog, seed, &a.n2, &s.dg, &s.dnorm, false)?;
        self.w_1
            .backward(gpu, params, prog, seed, &a.n2, &s.du, &s.dnorm, true)?;
        let sn = w("swiglu_norm.weight");
        // dres += the norm's dx: both paths from h meet here.
        prog.push(
            "norm",
            rmsnorm::backward_accumulating(
                gpu, &a.h, &sn.value, &a.rstd2, &s.dnorm, eps, &s.dres, &sn.grad,
            )?,
        );

        // Attention branch: dres is now the gradient of h = x + o_proj(...).
        let (dattn, attn) = (plan.flat(&s.dattn)?, plan.flat(&a.attn)?);
        self.o_proj
            .backward(gpu, params, prog, seed, &attn, &s.dres, &dattn, false)?;
        prog.push(
            "attention",
            attention::backward(
                gpu,
                &a.q_rot,
                &a.k_rot,
                &a.v,
                &a.attn,
                &a.lse,
                &s.dattn,
                &s.dq_rot,
                &s.dk_rot,
                &s.dv,
                &s.delta,
                plan.dims.attention(),
            )?,
        );
        let (d_rot, d) = ([&s.dq_rot, &s.dk_rot], [&s.dq, &s.dk]);
        prog.push("rope", [rope::apply_two(gpu, d_rot, plan.rope, d, true)?]);
        let (dq, dk, dv) = (plan.flat(&s.dq)?, plan.flat(&s.dk)?, plan.flat(&s.dv)?);
        self.q_proj
            .backward(gpu, params, prog, seed, &a.n1, &dq, &s.dnorm, false)?;
        self.k_proj
            .backward(gpu, params, prog, seed, &a.n1, &dk, &s.dnorm, true)?;
        self.v_proj
            .backward(gpu, params, prog, seed, &a.n1, &dv, &s.dnorm, true)?;
        let an = w("attention_norm.weight");
        prog.push(
            "norm",
            rmsnorm::backward_accumulating(
                gpu, &a.x, &an.value, &a.rstd1, &s.dnorm, eps, &s.dres, &an.grad,
            )?,
        );
        Ok(())
    }

    /// ReLoRA's reset of this block: `W += s B A` for every wrapped linear (into
    /// `reset.merge`), then A drawn anew from the reset seed (into `reset.reinit`; B is
    /// cleared between the two).
    pub fn plan_reset(&self, plan: &Plan, without_scale: bool, reset: &mut Reset) -> Result<()> {
        for (j, linear) in self.linears().into_iter().enumerate() {
            reset
                .merge
                .extend(linear.merge(plan.gpu, plan.params, without_scale)?);
            if let Some(l) = &linear.lora {
                let a = &plan.params[l.a].value;
                let stream = Self::stream(self.layer, j);
                reset
                    .reinit
                    .extend(lora::kaiming_uniform(plan.gpu, a, &reset.seed, stream)?);
                reset.lora_b.push(l.b);
            }
        }
        Ok(())
    }
}
