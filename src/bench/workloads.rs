//! What the suite and the criterion benches run, built once here: reproducible random
//! inputs, a matmul case's operands, an attention shape's forward and backward, a planned
//! model with a random micro-batch, and a model's stages of chosen op families.

use crate::bench::record::{Entry, Timing};
use crate::formulas::kernels::MatmulKernel;
use crate::gpu::{DType, Dispatch};
use crate::model::config::ModelConfig;
use crate::model::decoder::{Decoder, Purpose};
use crate::model::init::Rng;
use crate::ops::attention::{self, AttentionShape};
use crate::ops::matmul_tune::ProductShape;
use crate::ops::{Matmul, MatmulSpec};
use crate::{Gpu, Result, Tensor};

/// A xorshift64 stream from `state` (not zero): cheap, reproducible benchmark inputs.
pub fn xorshift(mut state: u64) -> impl Iterator<Item = u64> {
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    })
}

/// `n` values uniform in `[-0.5, 0.5)`, the same for the same seed.
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    xorshift(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
        .take(n)
        .map(|s| (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        .collect()
}

/// A product's operands on the device: A (`[K, M]` when transposed), B (`[N, K]` when
/// transposed) from `a` and `b`, and a zero C `[M, N]`.
pub fn matmul_operands(gpu: &Gpu, s: &ProductShape, a: &[f32], b: &[f32]) -> Result<[Tensor; 3]> {
    let a_shape = if s.trans_a { [s.k, s.m] } else { [s.m, s.k] };
    let b_shape = if s.trans_b { [s.n, s.k] } else { [s.k, s.n] };
    Ok([
        Tensor::from_f32(gpu, &a_shape, a)?,
        Tensor::from_f32(gpu, &b_shape, b)?,
        Tensor::zeros(gpu, &[s.m, s.n], DType::F32)?,
    ])
}

/// The product `s` on `operands` with `kernel`.
pub fn matmul_op(
    gpu: &Gpu,
    s: &ProductShape,
    operands: &[Tensor; 3],
    kernel: MatmulKernel,
) -> Result<Matmul> {
    let spec = MatmulSpec {
        trans_a: s.trans_a,
        trans_b: s.trans_b,
        kernel,
        ..MatmulSpec::default()
    };
    let [a, b, c] = operands;
    Matmul::new(gpu, a, b, c, spec)
}

/// The forward's and the backward's dispatches of one attention shape on random inputs, and
/// the tensors they bind.
pub struct AttentionOps {
    pub forward: Vec<Dispatch>,
    pub backward: Vec<Dispatch>,
    _tensors: Vec<Tensor>,
}

pub fn attention_ops(gpu: &Gpu, s: AttentionShape) -> Result<AttentionOps> {
    let qs = [s.batch, s.seq, s.heads, s.head_dim];
    let kvs = [s.batch, s.seq, s.kv_heads, s.head_dim];
    let ls = [s.batch, s.heads, s.seq];
    let n = |d: &[usize]| d.iter().product::<usize>();
    let q = Tensor::from_f32(gpu, &qs, &random(n(&qs), 1))?;
    let k = Tensor::from_f32(gpu, &kvs, &random(n(&kvs), 2))?;
    let v = Tensor::from_f32(gpu, &kvs, &random(n(&kvs), 3))?;
    let dout = Tensor::from_f32(gpu, &qs, &random(n(&qs), 4))?;
    let zeros = |d: &[usize]| Tensor::zeros(gpu, d, DType::F32);
    let (out, lse, delta) = (zeros(&qs)?, zeros(&ls)?, zeros(&ls)?);
    let (dq, dk, dv) = (zeros(&qs)?, zeros(&kvs)?, zeros(&kvs)?);
    let forward = attention::forward(gpu, &q, &k, &v, &out, &lse, s)?;
    let backward =
        attention::backward(gpu, &q, &k, &v, &out, &lse, &dout, &dq, &dk, &dv, &delta, s)?;
    Ok(AttentionOps {
        forward,
        backward,
        _tensors: vec![q, k, v, dout, out, lse, delta, dq, dk, dv],
    })
}

/// Useful FLOPs of the causal attention forward: q·k and p·v over the T(T+1)/2 visible
/// pairs per head.
pub fn attention_forward_flops(s: &AttentionShape) -> f64 {
    let pairs = (s.seq * (s.seq + 1) / 2) as f64;
    4.0 * (s.batch * s.heads * s.head_dim) as f64 * pairs
}

/// The backward counted as 2.5 forwards (five products over the pairs, the scores
/// recomputed), as flash-attention papers count it.
pub fn attention_backward_flops(s: &AttentionShape) -> f64 {
    2.5 * attention_forward_flops(s)
}

/// `config` planned for `purpose` on a `batch x seq` micro-batch, initialised (seed 0), with
/// random tokens and a dropout key.
pub fn planned_model(
    gpu: &Gpu,
    config: &ModelConfig,
    batch: usize,
    seq: usize,
    purpose: Purpose,
) -> Result<Decoder> {
    let model = Decoder::planned(gpu, config, batch, seq, purpose, 1)?;
    model.init_params(gpu, 0)?;
    let mut rng = Rng::new(1);
    let tokens: Vec<u32> = (0..batch * (seq + 1))
        .map(|_| (rng.next_u64() % config.vocab_size as u64) as u32)
        .collect();
    model.set_batch(gpu, &tokens)?;
    model.set_dropout_seed(gpu, 7);
    Ok(model)
}

/// Record, in one pass, the forward and backward stages of `model` whose op family `keep`
/// accepts (e.g. the head's `output projection` and `cross-entropy`, or `lora`).
pub fn record_families(
    enc: &mut wgpu::CommandEncoder,
    model: &Decoder,
    keep: &dyn Fn(&str) -> bool,
) {
    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
    for st in model.forward_stages().iter().chain(model.backward_stages()) {
        if keep(st.family) {
            for d in &st.dispatches {
                d.record(&mut pass);
            }
        }
    }
}

/// The op families of `model`'s forward and backward stages, in the order they first run.
pub fn stage_families(model: &Decoder) -> Vec<&'static str> {
    let mut families = Vec::new();
    for st in model.forward_stages().iter().chain(model.backward_stages()) {
        if !families.contains(&st.family) {
            families.push(st.family);
        }
    }
    families
}

/// The suite's `step op families` entries of one micro-step: one per family, slowest first,
/// each noting its share of the families' summed time (`share_suffix` follows the per cent).
pub fn family_share_entries(
    label: &str,
    variant: &str,
    mut times: Vec<(&str, Timing)>,
    share_suffix: &str,
) -> Vec<Entry> {
    let total: f64 = times.iter().map(|(_, t)| t.median_s).sum();
    times.sort_by(|a, b| b.1.median_s.total_cmp(&a.1.median_s));
    times
        .into_iter()
        .map(|(family, t)| {
            let share = format!("{:.1} %{share_suffix}", 100.0 * t.median_s / total);
            let mut e =
                Entry::new("step op families", format!("{label}: {family}")).variant(variant);
            e.timing = Some(t);
            e.note("share of the micro-step", share)
        })
        .collect()
}

/// The linear + cross-entropy head's op families.
pub fn is_head(family: &str) -> bool {
    family == "output projection" || family == "cross-entropy"
}

/// A ReLoRA model's adapters, summed: `r (in + out)` (the LoRA products' size per token
/// row), `out in r` (the merge's), and the rank. Adapters are `<module>.A_lora.weight`
/// `[r, in]` and `<module>.B_lora.weight` `[out, r]`.
pub fn lora_sizes(model: &Decoder) -> (f64, f64, usize) {
    let (mut products, mut merge, mut rank) = (0.0, 0.0, 0);
    for p in model.params() {
        if let Some(module) = p.name.strip_suffix(".A_lora.weight") {
            let (r, inp) = (p.value.shape()[0], p.value.shape()[1]);
            let out = model
                .param(&format!("{module}.B_lora.weight"))
                .map_or(0, |b| b.value.shape()[0]);
            products += (r * (inp + out)) as f64;
            merge += (out * inp * r) as f64;
            rank = r;
        }
    }
    (products, merge, rank)
}
