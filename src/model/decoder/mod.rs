//! pico-decoder on the GPU: an explicit program of op dispatches, planned once.
//!
//! [`Decoder::new`] allocates every parameter, gradient, activation and scratch buffer from
//! the config and the (batch, seq) shape, counting their bytes as it allocates them
//! ([`Memory`]), and prepares every dispatch of the forward and the backward pass and of
//! ReLoRA's reset. A training micro-step then only writes the token ids and records the
//! prepared dispatches: nothing is allocated inside a step.
//!
//! The plan reads like the math (llm.c's `gpt2_forward` / `gpt2_backward` are the model):
//! [`plan_forward`] is the embedding, then every block (`block.rs`: per layer, pre-norm
//! attention and SwiGLU), then the head (`head.rs`: final norm, output projection, mean token
//! cross-entropy); [`plan_backward`] runs the matching backward ops in reverse. Parameter
//! gradients accumulate (micro-batches add up) until `record_zero_grads` clears them.

mod block;
mod head;
mod residual;

use super::config::ModelConfig;
use super::program::{Memory, Program};
use super::relora::ReloraConfig;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::ops::attention::AttentionShape;
use crate::ops::embedding::EmbeddingBackward;
use crate::ops::lora::Seed;
use crate::ops::rope;
use block::Block;
use head::Head;
use residual::Residual;
use std::collections::HashMap;

pub use head::{LogitsPlan, LOGITS_CHUNK_BYTES};

pub use super::program::{Param, Stage};

/// The sizes every part of the plan is built from.
#[derive(Clone, Copy)]
struct Dims {
    batch: usize,
    seq: usize,
    d_model: usize,
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    vocab: usize,
    eps: f32,
}

impl Dims {
    fn of(c: &ModelConfig, batch: usize, seq: usize) -> Dims {
        Dims {
            batch,
            seq,
            d_model: c.d_model,
            hidden: c.activation_hidden_dim,
            heads: c.attention_n_heads,
            kv_heads: c.attention_n_kv_heads,
            head_dim: c.head_dim(),
            vocab: c.vocab_size,
            eps: c.norm_eps as f32,
        }
    }

    /// Token positions per micro-batch, N = B * T.
    fn tokens(&self) -> usize {
        self.batch * self.seq
    }

    /// The shape `[B, T, heads, hd]` of a tensor split into `heads` heads.
    fn heads(&self, heads: usize) -> [usize; 4] {
        [self.batch, self.seq, heads, self.head_dim]
    }

    fn attention(&self) -> AttentionShape {
        AttentionShape::new(
            self.batch,
            self.seq,
            self.heads,
            self.kv_heads,
            self.head_dim,
        )
    }
}

/// What planning any part of the decoder reads: the device, the parameters, the RoPE table,
/// LoRA dropout's seed and the sizes.
struct Plan<'a> {
    gpu: &'a Gpu,
    params: &'a [Param],
    index: &'a HashMap<String, usize>,
    rope: &'a Tensor,
    dropout_seed: &'a Seed,
    dims: Dims,
    purpose: Purpose,
    logits: LogitsPlan,
}

impl Plan<'_> {
    fn index(&self, name: &str) -> usize {
        self.index[name]
    }

    fn param(&self, name: &str) -> &Param {
        &self.params[self.index(name)]
    }

    /// A `[B, T, heads, hd]` activation seen as the `[N, heads * hd]` matrix a linear reads.
    fn flat(&self, t: &Tensor) -> Result<Tensor> {
        let n = self.dims.tokens();
        t.reshaped(&[n, t.numel() / n])
    }
}

/// Gradient buffers reused by every block's backward (consumed in order). `dres` carries the
/// gradient of the residual stream from the head down to the embedding.
struct Scratch {
    dres: Tensor,
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

impl Scratch {
    fn allocate(mem: &mut Memory, d: Dims) -> Result<Scratch> {
        let n = d.tokens();
        Ok(Scratch {
            dres: mem.zeros(&[n, d.d_model])?,
            dnorm: mem.zeros(&[n, d.d_model])?,
            dact: mem.zeros(&[n, d.hidden])?,
            dg: mem.zeros(&[n, d.hidden])?,
            du: mem.zeros(&[n, d.hidden])?,
            dattn: mem.zeros(&d.heads(d.heads))?,
            dq_rot: mem.zeros(&d.heads(d.heads))?,
            dk_rot: mem.zeros(&d.heads(d.kv_heads))?,
            dq: mem.zeros(&d.heads(d.heads))?,
            dk: mem.zeros(&d.heads(d.kv_heads))?,
            dv: mem.zeros(&d.heads(d.kv_heads))?,
            delta: mem.zeros(&[d.batch, d.heads, d.seq])?,
        })
    }
}

/// ReLoRA's merge-and-reset, prepared: the merges, then (after B is cleared) A drawn anew
/// from `seed`.
struct Reset {
    merge: Vec<Dispatch>,
    reinit: Vec<Dispatch>,
    /// Parameter indices of every B, cleared between the two.
    lora_b: Vec<usize>,
    seed: Seed,
}

pub struct Decoder {
    pub config: ModelConfig,
    pub batch: usize,
    pub seq: usize,
    params: Vec<Param>,
    index: HashMap<String, usize>,
    ids: Tensor,
    labels: Tensor,
    purpose: Purpose,
    forward: Vec<Stage>,
    /// The forward without LoRA dropout, when it differs from `forward`.
    eval_forward: Option<Vec<Stage>>,
    backward: Option<Backward>,
    reset: Reset,
    bytes: u64,
    relora: Option<ReloraConfig>,
    dropout_seed: Seed,
    // The buffers the prepared dispatches use, owned here so the plan is self-contained.
    _blocks: Vec<Block>,
    head: Head,
    _rope: Tensor,
}

/// What a plan is for. Only training applies LoRA dropout (PyTorch's `model.train()`); the
/// others compute the model as `model.eval()` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Forward with dropout, backward, gradients.
    Training,
    /// Forward without dropout, backward, gradients: the deterministic gradient
    /// (`wgtrain grads`).
    Gradients,
    /// Forward only, without dropout; no gradient or backward buffers are allocated
    /// (evaluation, BLiMP, generation).
    Inference,
}

impl Purpose {
    fn dropout(self) -> bool {
        self == Purpose::Training
    }

    fn backward(self) -> bool {
        self != Purpose::Inference
    }
}

/// The backward half of a plan: its stages, the embedding's gather, and the scratch they use.
struct Backward {
    stages: Vec<Stage>,
    embedding: EmbeddingBackward,
    _scratch: Scratch,
}

/// Every parameter of `config` in pico's order, with a gradient unless it is a base weight
/// frozen under LoRA adapters or the plan has no backward.
fn allocate_params(
    mem: &mut Memory,
    config: &ModelConfig,
    backward: bool,
) -> Result<(Vec<Param>, HashMap<String, usize>)> {
    let specs = config.param_specs();
    let mut params = Vec::with_capacity(specs.len());
    let mut index = HashMap::new();
    for s in &specs {
        let frozen = config
            .relora
            .as_ref()
            .is_some_and(|r| r.wraps_weight(&s.name));
        let trainable = backward && !frozen;
        index.insert(s.name.clone(), params.len());
        params.push(Param {
            name: s.name.clone(),
            value: mem.zeros(&s.shape)?,
            grad: mem.zeros(if trainable { &s.shape } else { &[1] })?,
            trainable,
        });
    }
    Ok((params, index))
}

/// The forward: x_0 = embedding(ids), x_{l+1} = block_l(x_l), loss = head(x_L); with or
/// without LoRA dropout.
fn plan_forward(
    plan: &Plan,
    ids: &Tensor,
    labels: &Tensor,
    blocks: &[Block],
    head: &Head,
    dropout: bool,
) -> Result<Program> {
    let mut prog = Program::default();
    head::plan_embedding(
        plan,
        &mut prog,
        ids,
        blocks.first().map_or(&head.x, Block::input),
    )?;
    // Each block's output x' = h + f is summed by the norm that reads it next.
    let mut input = Residual::Written;
    for block in blocks {
        block.plan_forward(plan, &mut prog, input, dropout)?;
        input = block.output();
    }
    head.plan_forward(plan, &mut prog, labels, input)?;
    Ok(prog)
}

/// The backward, in reverse: the head leaves dL/dx_L in `scratch.dres`, every block turns
/// dL/dx_{l+1} into dL/dx_l there; the embedding's gather (planned separately) reads dL/dx_0.
fn plan_backward(
    plan: &Plan,
    labels: &Tensor,
    blocks: &[Block],
    head: &Head,
    scratch: &Scratch,
    grad_scale: f32,
) -> Result<Program> {
    let mut prog = Program::default();
    head.plan_backward(plan, &mut prog, labels, scratch, grad_scale)?;
    for block in blocks.iter().rev() {
        block.plan_backward(plan, &mut prog, scratch)?;
    }
    Ok(prog)
}

/// ReLoRA's reset of every block, in order (nothing to do without adapters).
fn plan_reset(plan: &Plan, blocks: &[Block], relora: Option<&ReloraConfig>) -> Result<Reset> {
    let mut reset = Reset {
        merge: Vec::new(),
        reinit: Vec::new(),
        lora_b: Vec::new(),
        seed: Seed::new(plan.gpu, 0),
    };
    if let Some(r) = relora {
        for block in blocks {
            block.plan_reset(plan, r.quirk_merge_without_scale, &mut reset)?;
        }
    }
    Ok(reset)
}

impl Decoder {
    /// Plan the model for training on micro-batches of `batch` sequences of `seq` tokens.
    pub fn new(gpu: &Gpu, config: &ModelConfig, batch: usize, seq: usize) -> Result<Decoder> {
        Self::planned(gpu, config, batch, seq, Purpose::Training, 1)
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
        Self::planned(gpu, config, batch, seq, Purpose::Training, accumulation)
    }

    /// Plan the model for evaluation only: no dropout, no backward (see [`Purpose`]).
    pub fn for_inference(
        gpu: &Gpu,
        config: &ModelConfig,
        batch: usize,
        seq: usize,
    ) -> Result<Decoder> {
        Self::planned(gpu, config, batch, seq, Purpose::Inference, 1)
    }

    /// Plan the model for `purpose`, with `accumulation` micro-batches per optimizer step.
    /// The logits are whole for [`Purpose::Gradients`] and chunked as
    /// [`LogitsPlan::Auto`] says otherwise.
    pub fn planned(
        gpu: &Gpu,
        config: &ModelConfig,
        batch: usize,
        seq: usize,
        purpose: Purpose,
        accumulation: usize,
    ) -> Result<Decoder> {
        let logits = match purpose {
            Purpose::Gradients => LogitsPlan::Whole,
            _ => LogitsPlan::Auto,
        };
        Self::planned_with_logits(gpu, config, batch, seq, purpose, accumulation, logits)
    }

    /// Plan the model for generation: inference on batch 1 with the logits of every position
    /// kept (the last real one is sampled from).
    pub fn for_generation(gpu: &Gpu, config: &ModelConfig, seq: usize) -> Result<Decoder> {
        Self::planned_with_logits(
            gpu,
            config,
            1,
            seq,
            Purpose::Inference,
            1,
            LogitsPlan::Whole,
        )
    }

    /// As [`Decoder::planned`], with the logits held as `logits` says.
    pub fn planned_with_logits(
        gpu: &Gpu,
        config: &ModelConfig,
        batch: usize,
        seq: usize,
        purpose: Purpose,
        accumulation: usize,
        logits: LogitsPlan,
    ) -> Result<Decoder> {
        config.validate()?;
        if batch == 0 || seq == 0 || seq > config.max_seq_len {
            return Err(Error::Invalid(format!(
                "batch {batch} x seq {seq}: both must be at least 1 and seq at most max_seq_len ({})",
                config.max_seq_len
            )));
        }
        let dims = Dims::of(config, batch, seq);
        let relora = config.relora.clone();
        let mut mem = Memory::new(gpu);
        let (params, index) = allocate_params(&mut mem, config, purpose.backward())?;
        let ids = mem.zeros_u32(&[dims.tokens()])?;
        let labels = mem.zeros_u32(&[dims.tokens()])?;
        let rope_table = rope::table(seq, dims.head_dim, config.position_emb_theta);
        let rope = mem.upload(&[seq, dims.head_dim], &rope_table)?;
        // LoRA dropout's RNG key, reseeded every micro-step (see `set_dropout_seed`).
        let dropout_seed = Seed::new(gpu, 0);
        let plan = Plan {
            gpu,
            params: &params,
            index: &index,
            rope: &rope,
            dropout_seed: &dropout_seed,
            dims,
            purpose,
            logits,
        };

        let blocks = (0..config.n_layers)
            .map(|l| Block::allocate(&mut mem, &plan, relora.as_ref(), l))
            .collect::<Result<Vec<_>>>()?;
        let head = Head::allocate(&mut mem, &plan)?;

        let forward = plan_forward(&plan, &ids, &labels, &blocks, &head, purpose.dropout())?;
        let has_dropout = relora.as_ref().is_some_and(|r| r.lora_dropout > 0.0);
        let eval_forward = if purpose.dropout() && has_dropout {
            Some(plan_forward(&plan, &ids, &labels, &blocks, &head, false)?.0)
        } else {
            None
        };
        let backward = if purpose.backward() {
            let scratch = Scratch::allocate(&mut mem, dims)?;
            // The gradient of the mean loss over all tokens of the optimizer step.
            let grad_scale = 1.0 / (dims.tokens() * accumulation.max(1)) as f32;
            let stages = plan_backward(&plan, &labels, &blocks, &head, &scratch, grad_scale)?;
            let embedding_grad = &plan.param("embedding_proj.weight").grad;
            Some(Backward {
                stages: stages.0,
                embedding: EmbeddingBackward::new(gpu, &scratch.dres, embedding_grad)?,
                _scratch: scratch,
            })
        } else {
            None
        };
        let reset = plan_reset(&plan, &blocks, relora.as_ref())?;

        Ok(Decoder {
            config: config.clone(),
            batch,
            seq,
            bytes: mem.bytes(),
            params,
            index,
            ids,
            labels,
            purpose,
            forward: forward.0,
            eval_forward,
            backward,
            reset,
            relora,
            dropout_seed,
            _blocks: blocks,
            head,
            _rope: rope,
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

    /// Logits of the last forward `[B*T, V]`, when the plan holds them whole (see
    /// [`LogitsPlan`]). The backward overwrites them with their gradient, so read them
    /// between `record_forward` and `record_backward`.
    pub fn logits(&self) -> Result<&Tensor> {
        if self.head.logits_whole() {
            Ok(&self.head.logits)
        } else {
            Err(Error::Invalid(format!(
                "this plan computes the logits {} rows at a time and keeps none whole; plan                  the decoder with LogitsPlan::Whole to read them",
                self.head.chunk_rows()
            )))
        }
    }

    /// Token rows of logits the plan holds at once (all of them when they are whole).
    pub fn logits_chunk_rows(&self) -> usize {
        self.head.chunk_rows()
    }

    pub fn row_losses(&self) -> &Tensor {
        &self.head.row_loss
    }

    /// The mean loss of the last forward, on the device (`[1]`).
    pub fn loss(&self) -> &Tensor {
        &self.head.loss
    }

    pub fn forward_stages(&self) -> &[Stage] {
        &self.forward
    }

    /// The backward's stages (none in an inference plan).
    pub fn backward_stages(&self) -> &[Stage] {
        self.backward.as_ref().map_or(&[], |b| &b.stages)
    }

    /// The embedding's gradient gather (absent in an inference plan).
    pub fn embedding_backward(&self) -> Option<&EmbeddingBackward> {
        self.backward.as_ref().map(|b| &b.embedding)
    }

    /// What the plan was made for.
    pub fn purpose(&self) -> Purpose {
        self.purpose
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
        match &self.backward {
            Some(b) => b.embedding.set_ids(gpu, &inputs),
            None => Ok(()),
        }
    }

    /// Clear every parameter gradient (start of an optimizer step).
    pub fn record_zero_grads(&self, encoder: &mut wgpu::CommandEncoder) {
        for p in &self.params {
            for piece in p.grad.pieces() {
                encoder.clear_buffer(&piece.buffer, 0, None);
            }
        }
    }

    /// The forward as planned: with LoRA dropout in a training plan.
    pub fn record_forward(&self, encoder: &mut wgpu::CommandEncoder) {
        record_stages(encoder, &self.forward, &[]);
    }

    /// The forward as evaluation computes it, without dropout (PyTorch's `model.eval()`),
    /// whatever the plan's purpose: what perplexity, BLiMP and generation record.
    pub fn record_eval_forward(&self, encoder: &mut wgpu::CommandEncoder) {
        record_stages(
            encoder,
            self.eval_forward.as_ref().unwrap_or(&self.forward),
            &[],
        );
    }

    /// The backward of the last forward. An inference plan has none: planning one for
    /// evaluation and recording a backward is a bug in the caller.
    pub fn record_backward(&self, encoder: &mut wgpu::CommandEncoder) {
        let b = self
            .backward
            .as_ref()
            .expect("record_backward on a decoder planned for inference (Purpose::Inference)");
        record_stages(encoder, &b.stages, b.embedding.dispatches());
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
        self.dropout_seed.set_seed(gpu, seed);
    }

    /// ReLoRA's merge-and-reset, on the device: `W += s B A` for every adapter, then B = 0 and
    /// A drawn anew (kaiming-uniform) from `seed`. The model's function is unchanged (B = 0).
    /// The optimizer's moments are the trainer's to prune.
    pub fn record_merge_and_reset(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, seed: u32) {
        self.reset.seed.set_seed(gpu, seed);
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for d in &self.reset.merge {
                d.record(&mut pass);
            }
        }
        for &b in &self.reset.lora_b {
            for piece in self.params[b].value.pieces() {
                encoder.clear_buffer(&piece.buffer, 0, None);
            }
        }
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for d in &self.reset.reinit {
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
