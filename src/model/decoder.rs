//! pico-decoder on the GPU: an explicit program of op dispatches, planned once.
//!
//! `Decoder::new` allocates every parameter, gradient, activation and scratch buffer from
//! the config and the (batch, seq) shape, and prepares every dispatch of the forward and the
//! backward pass. A training micro-step then only writes the token ids and records the
//! prepared dispatches: nothing is allocated inside a step.
//!
//! The forward reads top to bottom like the math (per layer, pre-norm):
//!   h = x + o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))   with n1 = rmsnorm(x)
//!   x' = h + w_2(silu(w_0 n2) * w_1 n2)                                      with n2 = rmsnorm(h)
//! then logits = de_embedding_proj(rmsnorm(x_L)) and the mean token cross-entropy.
//! The backward runs the matching backward ops in reverse. Parameter gradients accumulate
//! (micro-batches add up) until `record_zero_grads` clears them.

use super::config::{ModelConfig, ParamSpec};
use super::linear::Linear;
use super::relora::{ReloraConfig, LINEARS};
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Tensor};
use crate::ops::attention::{self, AttentionShape};
use crate::ops::embedding::{self, EmbeddingBackward};
use crate::ops::lora::Seed;
use crate::ops::{cross_entropy, elementwise, reduce, rmsnorm, rope, swiglu, Matmul, MatmulSpec};
use std::collections::HashMap;

/// A parameter and its gradient (same shape, accumulated by the backward). Frozen
/// parameters (the base weights under LoRA adapters) get no gradient: `grad` is a
/// one-element placeholder and `trainable` is false.
pub struct Param {
    pub name: String,
    pub value: Tensor,
    pub grad: Tensor,
    pub trainable: bool,
}

/// Dispatches of one op family, recorded in order (and timed together by `wgbench step`).
pub struct Stage {
    pub family: &'static str,
    pub dispatches: Vec<Dispatch>,
}

/// Activations one layer's backward needs, kept from its forward.
struct LayerActs {
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
    h: Tensor,
    n2: Tensor,
    rstd2: Tensor,
    g: Tensor,
    u: Tensor,
    act: Tensor,
}

/// Gradient buffers reused by every layer's backward (consumed in order).
struct Scratch {
    dres: Tensor,
    dtmp: Tensor,
    dnorm: Tensor,
    dact: Tensor,
    dg: Tensor,
    du: Tensor,
    dattn: Tensor,
    dq_rot: Tensor,
    dk_rot: Tensor,
    dq: Tensor,
    dk: Tensor,
    dv: Tensor,
    delta: Tensor,
}

pub struct Decoder {
    pub config: ModelConfig,
    pub batch: usize,
    pub seq: usize,
    params: Vec<Param>,
    index: HashMap<String, usize>,
    ids: Tensor,
    labels: Tensor,
    logits: Tensor,
    row_loss: Tensor,
    loss: Tensor,
    forward: Vec<Stage>,
    backward: Vec<Stage>,
    embedding_backward: EmbeddingBackward,
    bytes: u64,
    relora: Option<ReloraConfig>,
    // The linears own the LoRA buffers their dispatches use.
    _linears: Vec<Vec<Linear>>,
    merge: Vec<Dispatch>,
    reinit: Vec<Dispatch>,
    lora_b: Vec<usize>,
    seed: Seed,
    reset_seed: Seed,
    // Buffers the dispatches use; owned here so the plan is self-contained.
    _acts: Vec<LayerActs>,
    _other: Vec<Tensor>,
    _scratch: Scratch,
}

fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
    Tensor::zeros(gpu, shape, DType::F32)
}

fn mm(gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor, spec: MatmulSpec) -> Result<Vec<Dispatch>> {
    Ok(Matmul::new(gpu, a, b, c, spec)?.into_dispatches())
}

/// Collects stages, merging consecutive dispatches of the same family.
#[derive(Default)]
pub struct Program(pub Vec<Stage>);

impl Program {
    pub fn push(&mut self, family: &'static str, dispatches: impl IntoIterator<Item = Dispatch>) {
        match self.0.last_mut() {
            Some(s) if s.family == family => s.dispatches.extend(dispatches),
            _ => self.0.push(Stage {
                family,
                dispatches: dispatches.into_iter().collect(),
            }),
        }
    }
}

impl Decoder {
    /// Plan the model for micro-batches of `batch` sequences of `seq` tokens.
    pub fn new(gpu: &Gpu, config: &ModelConfig, batch: usize, seq: usize) -> Result<Decoder> {
        Self::with_accumulation(gpu, config, batch, seq, 1)
    }

    /// As [`Decoder::new`], for optimizer steps made of `accumulation` micro-batches: the
    /// gradients then add up to those of the mean loss over all their tokens.
    pub fn with_accumulation(
        gpu: &Gpu,
        config: &ModelConfig,
        batch: usize,
        seq: usize,
        accumulation: usize,
    ) -> Result<Decoder> {
        config.validate()?;
        if batch == 0 || seq == 0 || seq > config.max_seq_len {
            return Err(Error::Invalid(format!(
                "batch {batch} x seq {seq}: both must be at least 1 and seq at most max_seq_len ({})",
                config.max_seq_len
            )));
        }
        let c = config;
        let (n, d, hidden, vocab) = (
            batch * seq,
            c.d_model,
            c.activation_hidden_dim,
            c.vocab_size,
        );
        let (heads, kv, hd) = (c.attention_n_heads, c.attention_n_kv_heads, c.head_dim());
        let shape4 = |h: usize| [batch, seq, h, hd];
        let att = AttentionShape {
            batch,
            seq,
            heads,
            kv_heads: kv,
            head_dim: hd,
        };

        let relora = ReloraConfig::of(c)?;
        let specs: Vec<ParamSpec> = c.param_specs();
        let mut params = Vec::with_capacity(specs.len());
        let mut index = HashMap::new();
        for s in &specs {
            let trainable = !relora.as_ref().is_some_and(|r| r.wraps_weight(&s.name));
            index.insert(s.name.clone(), params.len());
            params.push(Param {
                name: s.name.clone(),
                value: zeros(gpu, &s.shape)?,
                grad: zeros(gpu, if trainable { &s.shape } else { &[1] })?,
                trainable,
            });
        }
        // LoRA dropout's RNG key, reseeded every micro-step (see `set_dropout_seed`).
        let seed = Seed::new(gpu, 0);
        // Every layer's seven linears, plain or wrapped with LoRA adapters.
        let mut linears: Vec<Vec<Linear>> = Vec::with_capacity(c.n_layers);
        for l in 0..c.n_layers {
            let mut layer = Vec::with_capacity(LINEARS.len());
            for (i, (path, _)) in LINEARS.iter().enumerate() {
                let w = index[&format!("layers.{l}.{path}.weight")];
                layer.push(match &relora {
                    Some(r) if r.wraps(path) => Linear::lora(
                        gpu,
                        &params,
                        w,
                        index[&format!("layers.{l}.{path}.A_lora.weight")],
                        index[&format!("layers.{l}.{path}.B_lora.weight")],
                        n,
                        r.scale(),
                        r.lora_dropout as f32,
                        (l * LINEARS.len() + i) as u32,
                    )?,
                    _ => Linear::plain(w),
                });
            }
            linears.push(layer);
        }
        let p = |name: &str| -> &Param { &params[index[name]] };

        let ids = Tensor::zeros(gpu, &[n], DType::U32)?;
        let labels = Tensor::zeros(gpu, &[n], DType::U32)?;
        let table = Tensor::from_f32(gpu, &[seq, hd], &rope::table(seq, hd, c.position_emb_theta))?;
        let x0 = zeros(gpu, &[n, d])?;

        let mut bytes_extra = 0u64;
        let mut fwd = Program::default();
        fwd.push(
            "embedding",
            embedding::forward(gpu, &p("embedding_proj.weight").value, &ids, &x0)?,
        );

        // Forward, layer by layer.
        let mut acts: Vec<LayerActs> = Vec::with_capacity(c.n_layers);
        let mut x = x0;
        for (l, layer) in linears.iter().enumerate() {
            let w = |s: &str| &p(&format!("layers.{l}.{s}")).value;
            let a = LayerActs {
                x,
                n1: zeros(gpu, &[n, d])?,
                rstd1: zeros(gpu, &[n])?,
                q: zeros(gpu, &shape4(heads))?,
                k: zeros(gpu, &shape4(kv))?,
                v: zeros(gpu, &shape4(kv))?,
                q_rot: zeros(gpu, &shape4(heads))?,
                k_rot: zeros(gpu, &shape4(kv))?,
                attn: zeros(gpu, &shape4(heads))?,
                lse: zeros(gpu, &[batch, heads, seq])?,
                h: zeros(gpu, &[n, d])?,
                n2: zeros(gpu, &[n, d])?,
                rstd2: zeros(gpu, &[n])?,
                g: zeros(gpu, &[n, hidden])?,
                u: zeros(gpu, &[n, hidden])?,
                act: zeros(gpu, &[n, hidden])?,
            };
            let flat = |t: &Tensor| t.reshaped(&[n, t.numel() / n]);
            let (q2, k2, v2, attn2) = (flat(&a.q)?, flat(&a.k)?, flat(&a.v)?, flat(&a.attn)?);
            let eps = c.norm_eps as f32;
            fwd.push(
                "norm",
                [rmsnorm::forward(
                    gpu,
                    &a.x,
                    w("attention_norm.weight"),
                    eps,
                    &a.n1,
                    &a.rstd1,
                )?],
            );
            let [lq, lk, lv, lo, l0, l1, l2] = &layer[..] else {
                unreachable!("seven linears per layer")
            };
            lq.forward(gpu, &params, &mut fwd, &seed, &a.n1, &q2)?;
            lk.forward(gpu, &params, &mut fwd, &seed, &a.n1, &k2)?;
            lv.forward(gpu, &params, &mut fwd, &seed, &a.n1, &v2)?;
            fwd.push("rope", [rope::apply(gpu, &a.q, &table, &a.q_rot, false)?]);
            fwd.push("rope", [rope::apply(gpu, &a.k, &table, &a.k_rot, false)?]);
            fwd.push(
                "attention",
                attention::forward(gpu, &a.q_rot, &a.k_rot, &a.v, &a.attn, &a.lse, att)?,
            );
            let o = zeros(gpu, &[n, d])?;
            lo.forward(gpu, &params, &mut fwd, &seed, &attn2, &o)?;
            fwd.push("elementwise", [elementwise::add(gpu, &a.x, &o, &a.h)?]);
            fwd.push(
                "norm",
                [rmsnorm::forward(
                    gpu,
                    &a.h,
                    w("swiglu_norm.weight"),
                    eps,
                    &a.n2,
                    &a.rstd2,
                )?],
            );
            l0.forward(gpu, &params, &mut fwd, &seed, &a.n2, &a.g)?;
            l1.forward(gpu, &params, &mut fwd, &seed, &a.n2, &a.u)?;
            fwd.push("swiglu", [swiglu::forward(gpu, &a.g, &a.u, &a.act)?]);
            let f = zeros(gpu, &[n, d])?;
            l2.forward(gpu, &params, &mut fwd, &seed, &a.act, &f)?;
            let next = zeros(gpu, &[n, d])?;
            fwd.push("elementwise", [elementwise::add(gpu, &a.h, &f, &next)?]);
            // `o` and `f` are only needed inside the forward: the dispatches keep them alive.
            acts.push(a);
            x = next;
        }

        // Head: final norm, output projection (bound in pieces when large), cross-entropy.
        let eps = c.norm_eps as f32;
        let nf = zeros(gpu, &[n, d])?;
        let rstdf = zeros(gpu, &[n])?;
        let logits = zeros(gpu, &[n, vocab])?;
        let row_loss = zeros(gpu, &[n])?;
        let lse_ce = zeros(gpu, &[n])?;
        let loss = zeros(gpu, &[1])?;
        fwd.push(
            "norm",
            [rmsnorm::forward(
                gpu,
                &x,
                &p("output_norm.weight").value,
                eps,
                &nf,
                &rstdf,
            )?],
        );
        fwd.push(
            "output projection",
            mm(
                gpu,
                &nf,
                &p("de_embedding_proj.weight").value,
                &logits,
                MatmulSpec::nt(),
            )?,
        );
        fwd.push(
            "cross-entropy",
            cross_entropy::forward(gpu, &logits, &labels, &row_loss, &lse_ce)?,
        );
        fwd.push("cross-entropy", [reduce::mean(gpu, &row_loss, &loss)?]);

        // Backward, in reverse.
        let s = Scratch {
            dres: zeros(gpu, &[n, d])?,
            dtmp: zeros(gpu, &[n, d])?,
            dnorm: zeros(gpu, &[n, d])?,
            dact: zeros(gpu, &[n, hidden])?,
            dg: zeros(gpu, &[n, hidden])?,
            du: zeros(gpu, &[n, hidden])?,
            dattn: zeros(gpu, &shape4(heads))?,
            dq_rot: zeros(gpu, &shape4(heads))?,
            dk_rot: zeros(gpu, &shape4(kv))?,
            dq: zeros(gpu, &shape4(heads))?,
            dk: zeros(gpu, &shape4(kv))?,
            dv: zeros(gpu, &shape4(kv))?,
            delta: zeros(gpu, &[batch, heads, seq])?,
        };
        let mut bwd = Program::default();
        let grad_w = MatmulSpec::tn().accumulate(); // dW += dYᵀ · X
        let grad_x = MatmulSpec::nn(); // dX = dY · W
                                       // The gradient of the mean loss over all tokens of the optimizer step.
        let grad_scale = 1.0 / (n * accumulation.max(1)) as f32;
        bwd.push(
            "cross-entropy",
            cross_entropy::backward(gpu, &logits, &labels, &lse_ce, grad_scale)?,
        );
        let out_w = p("de_embedding_proj.weight");
        bwd.push(
            "output projection",
            mm(gpu, &logits, &out_w.value, &s.dnorm, grad_x)?,
        );
        bwd.push(
            "output projection",
            mm(gpu, &logits, &nf, &out_w.grad, grad_w)?,
        );
        let on = p("output_norm.weight");
        bwd.push(
            "norm",
            rmsnorm::backward(gpu, &x, &on.value, &rstdf, &s.dnorm, eps, &s.dres, &on.grad)?,
        );
        for l in (0..c.n_layers).rev() {
            let a = &acts[l];
            let w = |s: &str| p(&format!("layers.{l}.{s}"));
            let flat = |t: &Tensor| t.reshaped(&[n, t.numel() / n]);
            // FFN branch: dres is the gradient of x' = h + w_2(...).
            let [lq, lk, lv, lo, l0, l1, l2] = &linears[l][..] else {
                unreachable!("seven linears per layer")
            };
            l2.backward(
                gpu, &params, &mut bwd, &seed, &a.act, &s.dres, &s.dact, false,
            )?;
            bwd.push(
                "swiglu",
                [swiglu::backward(gpu, &a.g, &a.u, &s.dact, &s.dg, &s.du)?],
            );
            l0.backward(gpu, &params, &mut bwd, &seed, &a.n2, &s.dg, &s.dnorm, false)?;
            l1.backward(gpu, &params, &mut bwd, &seed, &a.n2, &s.du, &s.dnorm, true)?;
            let sn = w("swiglu_norm.weight");
            bwd.push(
                "norm",
                rmsnorm::backward(
                    gpu, &a.h, &sn.value, &a.rstd2, &s.dnorm, eps, &s.dtmp, &sn.grad,
                )?,
            );
            bwd.push(
                "elementwise",
                [elementwise::accumulate(gpu, &s.dres, &s.dtmp)?],
            );
            // Attention branch: dres is now the gradient of h = x + o_proj(...).
            let (dattn2, attn2) = (flat(&s.dattn)?, flat(&a.attn)?);
            lo.backward(
                gpu, &params, &mut bwd, &seed, &attn2, &s.dres, &dattn2, false,
            )?;
            bwd.push(
                "attention",
                attention::backward(
                    gpu, &a.q_rot, &a.k_rot, &a.v, &a.attn, &a.lse, &s.dattn, &s.dq_rot, &s.dk_rot,
                    &s.dv, &s.delta, att,
                )?,
            );
            bwd.push("rope", [rope::apply(gpu, &s.dq_rot, &table, &s.dq, true)?]);
            bwd.push("rope", [rope::apply(gpu, &s.dk_rot, &table, &s.dk, true)?]);
            let (dq2, dk2, dv2) = (flat(&s.dq)?, flat(&s.dk)?, flat(&s.dv)?);
            lq.backward(gpu, &params, &mut bwd, &seed, &a.n1, &dq2, &s.dnorm, false)?;
            lk.backward(gpu, &params, &mut bwd, &seed, &a.n1, &dk2, &s.dnorm, true)?;
            lv.backward(gpu, &params, &mut bwd, &seed, &a.n1, &dv2, &s.dnorm, true)?;
            let an = w("attention_norm.weight");
            bwd.push(
                "norm",
                rmsnorm::backward(
                    gpu, &a.x, &an.value, &a.rstd1, &s.dnorm, eps, &s.dtmp, &an.grad,
                )?,
            );
            bwd.push(
                "elementwise",
                [elementwise::accumulate(gpu, &s.dres, &s.dtmp)?],
            );
        }
        let embedding_backward =
            EmbeddingBackward::new(gpu, &s.dres, &p("embedding_proj.weight").grad)?;

        // ReLoRA's reset: merge every adapter into its base weight, then (after B is
        // cleared) draw A anew from the reset seed.
        let reset_seed = Seed::new(gpu, 0);
        let mut merge = Vec::new();
        let mut reinit = Vec::new();
        let mut lora_b = Vec::new();
        if let Some(r) = &relora {
            for (i, lin) in linears.iter().flatten().enumerate() {
                merge.extend(lin.merge(gpu, &params, r.quirk_merge_without_scale)?);
                if let Some(l) = &lin.lora {
                    reinit.extend(crate::ops::lora::kaiming_uniform(
                        gpu,
                        &params[l.a].value,
                        &reset_seed,
                        i as u32,
                    )?);
                    lora_b.push(l.b);
                }
            }
        }
        bytes_extra += linears
            .iter()
            .flatten()
            .map(Linear::activation_bytes)
            .sum::<u64>();

        let other = vec![table, x, nf, rstdf, lse_ce];
        let mut bytes: u64 = bytes_extra
            + params
                .iter()
                .map(|p| p.value.size_bytes() + p.grad.size_bytes())
                .sum::<u64>();
        bytes += acts
            .iter()
            .map(|a| {
                [&a.x, &a.n1, &a.rstd1, &a.q, &a.k, &a.v, &a.q_rot, &a.k_rot, &a.attn, &a.lse, &a.h, &a.n2, &a.rstd2, &a.g, &a.u, &a.act]
                    .iter()
                    .map(|t| t.size_bytes())
                    .sum::<u64>()
                    // o and f, owned by the dispatches
                    + 2 * (n * d * 4) as u64
            })
            .sum::<u64>();
        bytes += other.iter().map(|t| t.size_bytes()).sum::<u64>();
        bytes += [
            &s.dres, &s.dtmp, &s.dnorm, &s.dact, &s.dg, &s.du, &s.dattn, &s.dq_rot, &s.dk_rot,
            &s.dq, &s.dk, &s.dv, &s.delta,
        ]
        .iter()
        .map(|t| t.size_bytes())
        .sum::<u64>();
        bytes += [&ids, &labels, &logits, &row_loss, &loss]
            .iter()
            .map(|t| t.size_bytes())
            .sum::<u64>();

        Ok(Decoder {
            config: c.clone(),
            batch,
            seq,
            params,
            index,
            ids,
            labels,
            logits,
            row_loss,
            loss,
            forward: fwd.0,
            backward: bwd.0,
            embedding_backward,
            bytes,
            relora,
            _linears: linears,
            merge,
            reinit,
            lora_b,
            seed,
            reset_seed,
            _acts: acts,
            _other: other,
            _scratch: s,
        })
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        self.index.get(name).map(|&i| &self.params[i])
    }

    /// GPU memory planned for parameters, gradients, activations and scratch, in bytes.
    pub fn planned_bytes(&self) -> u64 {
        self.bytes
    }

    /// Logits of the last forward `[B*T, V]`. The backward overwrites them with their
    /// gradient, so read them between `record_forward` and `record_backward`.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }

    pub fn row_losses(&self) -> &Tensor {
        &self.row_loss
    }

    /// The mean loss of the last forward, on the device (`[1]`).
    pub fn loss(&self) -> &Tensor {
        &self.loss
    }

    pub fn forward_stages(&self) -> &[Stage] {
        &self.forward
    }

    pub fn backward_stages(&self) -> &[Stage] {
        &self.backward
    }

    pub fn embedding_backward(&self) -> &EmbeddingBackward {
        &self.embedding_backward
    }

    /// Upload one micro-batch: `tokens` holds B rows of T+1 ids; inputs are ids[:, :-1] and
    /// labels ids[:, 1:]. Ids outside the vocabulary are an error naming the id and position.
    pub fn set_batch(&self, gpu: &Gpu, tokens: &[u32]) -> Result<()> {
        let (b, t, v) = (self.batch, self.seq, self.config.vocab_size);
        if tokens.len() != b * (t + 1) {
            return Err(Error::Invalid(format!(
                "a micro-batch needs {b} x {} token ids, got {}",
                t + 1,
                tokens.len()
            )));
        }
        if let Some((i, id)) = tokens.iter().enumerate().find(|(_, &id)| id as usize >= v) {
            return Err(Error::Invalid(format!(
                "token id {id} (sequence {}, position {}) is outside the vocabulary of {v}; \
                 check that the tokenizer matches the model's vocab_size",
                i / (t + 1),
                i % (t + 1)
            )));
        }
        let mut inputs = Vec::with_capacity(b * t);
        let mut labels = Vec::with_capacity(b * t);
        for row in tokens.chunks(t + 1) {
            inputs.extend_from_slice(&row[..t]);
            labels.extend_from_slice(&row[1..]);
        }
        self.ids.write(gpu, bytemuck::cast_slice(&inputs))?;
        self.labels.write(gpu, bytemuck::cast_slice(&labels))?;
        self.embedding_backward.set_ids(gpu, &inputs)
    }

    /// Clear every parameter gradient (start of an optimizer step).
    pub fn record_zero_grads(&self, encoder: &mut wgpu::CommandEncoder) {
        for p in &self.params {
            for piece in p.grad.pieces() {
                encoder.clear_buffer(&piece.buffer, 0, None);
            }
        }
    }

    pub fn record_forward(&self, encoder: &mut wgpu::CommandEncoder) {
        record_stages(encoder, &self.forward, &[]);
    }

    pub fn record_backward(&self, encoder: &mut wgpu::CommandEncoder) {
        record_stages(
            encoder,
            &self.backward,
            self.embedding_backward.dispatches(),
        );
    }

    /// Upload parameter values by name (e.g. from a checkpoint); every parameter must be given.
    pub fn load_params<'a>(
        &self,
        gpu: &Gpu,
        mut get: impl FnMut(&str) -> Option<&'a [f32]>,
    ) -> Result<()> {
        for p in &self.params {
            let data = get(&p.name).ok_or_else(|| {
                Error::Invalid(format!("no value given for parameter {}", p.name))
            })?;
            p.value.write(gpu, bytemuck::cast_slice(data))?;
        }
        Ok(())
    }

    /// Download every parameter: (name, shape, values), in pico's order.
    pub async fn read_params(&self, gpu: &Gpu) -> Result<Vec<(String, Vec<usize>, Vec<f32>)>> {
        let mut out = Vec::with_capacity(self.params.len());
        for p in &self.params {
            out.push((
                p.name.clone(),
                p.value.shape().to_vec(),
                p.value.read_f32(gpu).await?,
            ));
        }
        Ok(out)
    }

    /// Write the weights as a pico checkpoint directory (config.json + model.safetensors),
    /// atomically: an interrupted save leaves the previous checkpoint intact.
    pub async fn save_checkpoint(&self, gpu: &Gpu, dir: &std::path::Path) -> Result<()> {
        let params = self.read_params(gpu).await?;
        let tensors: Vec<(&str, &[usize], &[f32])> = params
            .iter()
            .map(|(n, s, v)| (n.as_str(), s.as_slice(), v.as_slice()))
            .collect();
        super::checkpoint::save(dir, &self.config, &tensors)
    }

    /// Seeded initialisation as in the reference (see `init`); LoRA's B starts at zero, and
    /// so does A with the reference's `quirk_zero_init_a`.
    pub fn init_params(&self, gpu: &Gpu, seed: u64) -> Result<()> {
        let zero_a = self.relora.as_ref().is_some_and(|r| r.quirk_zero_init_a);
        for p in &self.params {
            let zero = p.name.ends_with(".B_lora.weight")
                || (zero_a && p.name.ends_with(".A_lora.weight"));
            let v = if zero {
                vec![0.0; p.value.numel()]
            } else {
                super::init::init_param(&p.name, p.value.shape(), seed)
            };
            p.value.write(gpu, bytemuck::cast_slice(&v))?;
        }
        Ok(())
    }

    /// The ReLoRA settings when the model has LoRA adapters.
    pub fn relora(&self) -> Option<&ReloraConfig> {
        self.relora.as_ref()
    }

    /// The key of LoRA dropout's masks for the next submission (set it per micro-step; the
    /// forward and backward of one micro-step must see the same key).
    pub fn set_dropout_seed(&self, gpu: &Gpu, seed: u32) {
        self.seed.set_seed(gpu, seed);
    }

    /// ReLoRA's merge-and-reset, on the device: `W += s B A` for every adapter, then B = 0 and
    /// A drawn anew (kaiming-uniform) from `seed`. The model's function is unchanged (B = 0).
    /// The optimizer's moments are the trainer's to prune.
    pub fn record_merge_and_reset(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, seed: u32) {
        self.reset_seed.set_seed(gpu, seed);
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for d in &self.merge {
                d.record(&mut pass);
            }
        }
        for &b in &self.lora_b {
            for piece in self.params[b].value.pieces() {
                encoder.clear_buffer(&piece.buffer, 0, None);
            }
        }
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for d in &self.reinit {
            d.record(&mut pass);
        }
    }
}

fn record_stages(encoder: &mut wgpu::CommandEncoder, stages: &[Stage], tail: &[Dispatch]) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: None,
        timestamp_writes: None,
    });
    for st in stages {
        for d in &st.dispatches {
            d.record(&mut pass);
        }
    }
    for d in tail {
        d.record(&mut pass);
    }
}
