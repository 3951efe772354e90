//! Generation with a KV cache: each new token runs the model on its own row only, against
//! the keys and values of the earlier positions kept per layer, and reads back one row of
//! logits. For position p of a batch-1 sequence:
//!
//!   x = embedding[id];  per layer: n = rmsnorm(x), q k v = projections of n,
//!   k_cache[p] = rope_p(k), v_cache[p] = v, h = x + o_proj(attend(rope_p(q), cache[0..=p])),
//!   x = h + w_2(silu(w_0 rmsnorm(h)) * w_1 rmsnorm(h));   logits = de_embedding(rmsnorm(x))
//!
//! which is row p of the full causal forward on positions 0..=p. Every dispatch is prepared
//! once: the position enters through three small buffers the host writes before each token
//! (the token id, the filled length, the RoPE row of p), and the cache rows through two
//! copies per layer. ReLoRA models run their adapters as evaluation does (no dropout).

use super::decoder::Decoder;
use super::init::Rng;
use super::linear::{Linear, LoraBackward};
use super::program::{Memory, Param, Program};
use super::relora::LINEARS;
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Tensor};
use crate::ops::attention_decode::{self, Cache, DecodeShape};
use crate::ops::lora::Seed;
use crate::ops::matmul::{prepare as mm, Epilogue};
use crate::ops::{elementwise, embedding, rmsnorm, rope, MatmulSpec};

/// One layer: its cache and the dispatches before the cache copies (norm, projections,
/// RoPE) and after them (attention, output projection, residuals, FFN).
struct Layer {
    k_cache: Tensor,
    v_cache: Tensor,
    before: Vec<Dispatch>,
    after: Vec<Dispatch>,
    /// The linears' LoRA buffers, which the prepared dispatches use.
    _linears: [Linear; 7],
}

/// The row buffers of one token, shared by the layers (they run one after another).
struct Rows {
    ids: Tensor,
    len: Tensor,
    rope_row: Tensor,
    x: Tensor,
    k: Tensor,
    k_rot: Tensor,
    v: Tensor,
    logits: Tensor,
}

/// A model prepared for token-by-token generation with a cache of `capacity` positions.
pub struct CachedDecoder {
    capacity: usize,
    vocab: usize,
    /// RoPE's cos/sin for every position, `[capacity, head_dim]` (row p is uploaded for p).
    rope_table: Vec<f32>,
    head_dim: usize,
    /// Bytes of one cached row (`kv_heads × head_dim` floats).
    row_bytes: u64,
    rows: Rows,
    embed: Vec<Dispatch>,
    layers: Vec<Layer>,
    head: Vec<Dispatch>,
    /// Positions filled so far.
    filled: usize,
    /// Buffers only the prepared dispatches use (row scratch, the unused dropout seed),
    /// kept alive with them.
    _scratch: (Vec<Tensor>, Seed),
}

fn index_of(params: &[Param], name: &str) -> Result<usize> {
    params
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| Error::Invalid(format!("the model has no parameter {name}")))
}

fn flatten(prog: Program) -> Vec<Dispatch> {
    prog.0.into_iter().flat_map(|s| s.dispatches).collect()
}

impl CachedDecoder {
    /// Prepare generation from `model`'s weights (any plan of it: its parameters are read
    /// by the prepared dispatches, so later weight updates are seen) with room for
    /// `capacity` positions (at most the model's `max_seq_len`).
    pub fn new(gpu: &Gpu, model: &Decoder, capacity: usize) -> Result<CachedDecoder> {
        let c = &model.config;
        if capacity == 0 || capacity > c.max_seq_len {
            return Err(Error::Invalid(format!(
                "a KV cache of {capacity} positions: it must hold 1 to max_seq_len ({}) positions",
                c.max_seq_len
            )));
        }
        let params = model.params();
        let (d, hidden, hd) = (c.d_model, c.activation_hidden_dim, c.head_dim());
        let (heads, kv_heads) = (c.attention_n_heads, c.attention_n_kv_heads);
        let eps = c.norm_eps as f32;
        let value = |name: &str| -> Result<&Tensor> { Ok(&params[index_of(params, name)?].value) };
        let mut mem = Memory::new(gpu);
        let z = |shape: &[usize]| Tensor::zeros(gpu, shape, DType::F32);
        let rows = Rows {
            ids: Tensor::zeros(gpu, &[1], DType::U32)?,
            len: Tensor::zeros(gpu, &[1], DType::U32)?,
            rope_row: z(&[1, hd])?,
            x: z(&[1, d])?,
            k: z(&[1, kv_heads * hd])?,
            k_rot: z(&[1, kv_heads * hd])?,
            v: z(&[1, kv_heads * hd])?,
            logits: z(&[1, c.vocab_size])?,
        };
        let (n, rstd, q, q_rot, attn) = (
            z(&[1, d])?,
            z(&[1])?,
            z(&[1, heads * hd])?,
            z(&[1, heads * hd])?,
            z(&[1, heads * hd])?,
        );
        let (o, h, g, u, act, f) = (
            z(&[1, d])?,
            z(&[1, d])?,
            z(&[1, hidden])?,
            z(&[1, hidden])?,
            z(&[1, hidden])?,
            z(&[1, d])?,
        );
        let scores = z(&[heads, capacity])?;
        let seed = Seed::new(gpu, 0);
        let as_heads = |t: &Tensor, k: usize| t.reshaped(&[1, 1, k, hd]);
        let shape = DecodeShape {
            heads,
            kv_heads,
            head_dim: hd,
        };

        let embed = embedding::forward(gpu, value("embedding_proj.weight")?, &rows.ids, &rows.x)?;
        let mut layers = Vec::with_capacity(c.n_layers);
        for l in 0..c.n_layers {
            let name = |s: &str| format!("layers.{l}.{s}");
            let mut linears = Vec::with_capacity(LINEARS.len());
            for (path, _) in LINEARS {
                let w = index_of(params, &name(&format!("{path}.weight")))?;
                linears.push(match &c.relora {
                    Some(r) if r.wraps(path) => Linear::lora(
                        &mut mem,
                        params,
                        w,
                        index_of(params, &name(&format!("{path}.A_lora.weight")))?,
                        index_of(params, &name(&format!("{path}.B_lora.weight")))?,
                        1,
                        r.scale(),
                        0.0,
                        0,
                        LoraBackward::None,
                    )?,
                    _ => Linear::plain(w),
                });
            }
            let [q_proj, k_proj, v_proj, o_proj, w_0, w_1, w_2] =
                <[Linear; 7]>::try_from(linears).unwrap_or_else(|_| unreachable!("seven linears"));
            let k_cache = z(&[capacity, kv_heads * hd])?;
            let v_cache = z(&[capacity, kv_heads * hd])?;

            let mut before = Program::default();
            let norm_w = value(&name("attention_norm.weight"))?;
            before.push(
                "norm",
                [rmsnorm::forward(gpu, &rows.x, norm_w, eps, &n, &rstd)?],
            );
            q_proj.forward(gpu, params, &mut before, &seed, &n, &q, false)?;
            k_proj.forward(gpu, params, &mut before, &seed, &n, &rows.k, false)?;
            v_proj.forward(gpu, params, &mut before, &seed, &n, &rows.v, false)?;
            let (q_heads, q_rot_heads) = (as_heads(&q, heads)?, as_heads(&q_rot, heads)?);
            let (k_heads, k_rot_heads) = (
                as_heads(&rows.k, kv_heads)?,
                as_heads(&rows.k_rot, kv_heads)?,
            );
            before.push(
                "rope",
                [rope::apply_two(
                    gpu,
                    [&q_heads, &k_heads],
                    &rows.rope_row,
                    [&q_rot_heads, &k_rot_heads],
                    false,
                )?],
            );

            let mut after = Program::default();
            let cache = Cache {
                k: &k_cache,
                v: &v_cache,
                len: &rows.len,
            };
            after.push(
                "attention",
                [attention_decode::forward(
                    gpu, &q_rot, cache, &scores, &attn, shape,
                )?],
            );
            o_proj.forward(gpu, params, &mut after, &seed, &attn, &o, false)?;
            after.push("elementwise", [elementwise::add(gpu, &rows.x, &o, &h)?]);
            let norm_w = value(&name("swiglu_norm.weight"))?;
            after.push("norm", [rmsnorm::forward(gpu, &h, norm_w, eps, &n, &rstd)?]);
            w_0.forward(gpu, params, &mut after, &seed, &n, &g, false)?;
            let swiglu = Epilogue::SwiGlu {
                gate: &g,
                act: &act,
            };
            w_1.forward_fused(gpu, params, &mut after, &seed, &n, &u, false, swiglu)?;
            w_2.forward(gpu, params, &mut after, &seed, &act, &f, false)?;
            after.push("elementwise", [elementwise::add(gpu, &h, &f, &rows.x)?]);
            layers.push(Layer {
                k_cache,
                v_cache,
                before: flatten(before),
                after: flatten(after),
                _linears: [q_proj, k_proj, v_proj, o_proj, w_0, w_1, w_2],
            });
        }
        let mut head = vec![rmsnorm::forward(
            gpu,
            &rows.x,
            value("output_norm.weight")?,
            eps,
            &n,
            &rstd,
        )?];
        head.extend(mm(
            gpu,
            &n,
            value("de_embedding_proj.weight")?,
            &rows.logits,
            MatmulSpec::nt(),
        )?);
        let scratch = vec![n, rstd, q, q_rot, attn, o, h, g, u, act, f, scores];
        Ok(CachedDecoder {
            capacity,
            vocab: c.vocab_size,
            rope_table: rope::table(capacity, hd, c.position_emb_theta),
            head_dim: hd,
            row_bytes: (kv_heads * hd * 4) as u64,
            rows,
            embed,
            layers,
            head,
            filled: 0,
            _scratch: (scratch, seed),
        })
    }

    /// Positions the cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Positions filled so far (the next token goes to this position).
    pub fn len(&self) -> usize {
        self.filled
    }

    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Forget every position (start a new sequence).
    pub fn clear(&mut self) {
        self.filled = 0;
    }

    /// Run token `id` at the next position: record and submit (nothing is read back).
    pub fn push(&mut self, gpu: &Gpu, id: u32) -> Result<()> {
        if id as usize >= self.vocab {
            return Err(Error::Invalid(format!(
                "token id {id} is outside the vocabulary of {}",
                self.vocab
            )));
        }
        let p = self.filled;
        if p >= self.capacity {
            return Err(Error::Invalid(format!(
                "the KV cache is full ({} positions): clear it and feed the context again",
                self.capacity
            )));
        }
        let r = &self.rows;
        r.ids.write(gpu, bytemuck::bytes_of(&id))?;
        r.len.write(gpu, bytemuck::bytes_of(&(p as u32 + 1)))?;
        let hd = self.head_dim;
        r.rope_row.write(
            gpu,
            bytemuck::cast_slice(&self.rope_table[p * hd..(p + 1) * hd]),
        )?;
        let mut enc = gpu.encoder();
        record(&mut enc, &self.embed);
        let offset = p as u64 * self.row_bytes;
        for layer in &self.layers {
            record(&mut enc, &layer.before);
            for (from, to) in [(&r.k_rot, &layer.k_cache), (&r.v, &layer.v_cache)] {
                let (from, to) = (&from.pieces()[0].buffer, &to.pieces()[0].buffer);
                enc.copy_buffer_to_buffer(from, 0, to, offset, self.row_bytes);
            }
            record(&mut enc, &layer.after);
        }
        record(&mut enc, &self.head);
        gpu.submit(enc);
        self.filled += 1;
        Ok(())
    }

    /// Run token `id` at the next position and read back its row of logits (`[V]`).
    pub async fn push_and_read(&mut self, gpu: &Gpu, id: u32) -> Result<Vec<f32>> {
        self.push(gpu, id)?;
        self.rows.logits.read_f32(gpu).await
    }
}

fn record(enc: &mut wgpu::CommandEncoder, dispatches: &[Dispatch]) {
    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: None,
        timestamp_writes: None,
    });
    for d in dispatches {
        d.record(&mut pass);
    }
}

/// Feed `context` from an empty cache; the logits after its last token.
async fn prefill(gpu: &Gpu, cache: &mut CachedDecoder, context: &[u32]) -> Result<Vec<f32>> {
    cache.clear();
    let (last, rest) = context
        .split_last()
        .ok_or_else(|| Error::Invalid("no context to feed".into()))?;
    for &id in rest {
        cache.push(gpu, id)?;
    }
    cache.push_and_read(gpu, *last).await
}

/// [`super::generate::generate`] with a KV cache: the same sampling, one row of logits read
/// per token. While prompt and output fit the cache, the tokens are those of the windowed
/// `generate` (up to float rounding in near ties); past it, the cache is refilled with the
/// last half of its positions and generation goes on from there.
pub async fn generate_cached(
    gpu: &Gpu,
    cache: &mut CachedDecoder,
    prompt: &[u32],
    stop: Option<u32>,
    options: &super::generate::SampleOptions,
) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        return Err(Error::Invalid(
            "generation needs at least one prompt token (e.g. the end-of-text id as BOS)".into(),
        ));
    }
    let cap = cache.capacity();
    let mut rng = Rng::new(options.seed);
    let mut tokens = prompt.to_vec();
    let mut logits = prefill(gpu, cache, &tokens[tokens.len().saturating_sub(cap)..]).await?;
    let mut out = Vec::new();
    while out.len() < options.max_new_tokens {
        let next = super::generate::sample(&logits, options.temperature, options.top_k, &mut rng);
        out.push(next);
        tokens.push(next);
        if Some(next) == stop || out.len() == options.max_new_tokens {
            break;
        }
        logits = if cache.len() < cap {
            cache.push_and_read(gpu, next).await?
        } else {
            let keep = (cap / 2).max(1);
            prefill(gpu, cache, &tokens[tokens.len() - keep..]).await?
        };
    }
    Ok(out)
}
