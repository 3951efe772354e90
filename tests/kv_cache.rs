//! Generation with a KV cache: the one-row attention against the cache matches the CPU
//! reference (positions past the filled length ignored); the cached model's logits at every
//! position are the full causal forward's row at that position (plain and ReLoRA); greedy
//! generation gives the windowed generator's tokens; bad ids and a full cache are errors.

mod common;

use common::{assert_close, gpu, random};
use wgtrain::gpu::DType;
use wgtrain::model::checkpoint::Checkpoint;
use wgtrain::model::decoder::Decoder;
use wgtrain::model::generate::{generate, SampleOptions};
use wgtrain::model::kv_cache::{generate_cached, CachedDecoder};
use wgtrain::ops::attention_decode::{self, Cache, DecodeShape};
use wgtrain::{reference, Gpu, Tensor};

fn decode_case(gpu: &Gpu, s: DecodeShape, capacity: usize, len: usize, seed: u64) {
    let row = s.kv_heads * s.head_dim;
    let q = random(s.heads * s.head_dim, seed);
    let mut k = random(capacity * row, seed + 1);
    let mut v = random(capacity * row, seed + 2);
    // Rows past `len` hold values that would dominate the softmax if they were read.
    for x in k[len * row..].iter_mut().chain(v[len * row..].iter_mut()) {
        *x = 1e4;
    }
    let t = |data: &[f32], shape: &[usize]| Tensor::from_f32(gpu, shape, data).unwrap();
    let (qt, kt, vt) = (
        t(&q, &[s.heads, s.head_dim]),
        t(&k, &[capacity, row]),
        t(&v, &[capacity, row]),
    );
    let len_t = Tensor::from_u32(gpu, &[1], &[len as u32]).unwrap();
    let scores = Tensor::zeros(gpu, &[s.heads, capacity], DType::F32).unwrap();
    let out = Tensor::zeros(gpu, &[s.heads, s.head_dim], DType::F32).unwrap();
    let cache = Cache {
        k: &kt,
        v: &vt,
        len: &len_t,
    };
    let d = attention_decode::forward(gpu, &qt, cache, &scores, &out, s).unwrap();
    wgtrain::gpu::run_all(gpu, &[d]);
    let got = out.to_vec_f32(gpu).unwrap();
    let want = reference::attention::attention_decode(
        &q,
        &k[..len * row],
        &v[..len * row],
        s.heads,
        s.kv_heads,
        s.head_dim,
    );
    assert_close(
        &got,
        &want,
        1e-5,
        1e-4,
        &format!("{s:?} len {len}/{capacity}"),
    );
}

#[test]
fn attention_against_the_cache_matches_the_reference() {
    let g = gpu();
    let gqa = DecodeShape {
        heads: 6,
        kv_heads: 2,
        head_dim: 8,
    };
    for (len, seed) in [(1, 1), (7, 2), (10, 3)] {
        decode_case(&g, gqa, 10, len, seed);
    }
    // More positions than lanes, and the largest head.
    decode_case(
        &g,
        DecodeShape {
            heads: 2,
            kv_heads: 1,
            head_dim: 128,
        },
        300,
        300,
        4,
    );
}

#[test]
fn attention_decode_rejects_bad_shapes() {
    let g = gpu();
    let z = |shape: &[usize]| Tensor::zeros(&g, shape, DType::F32).unwrap();
    let (q, k, v, scores, out) = (z(&[4, 8]), z(&[5, 16]), z(&[5, 16]), z(&[4, 5]), z(&[4, 8]));
    let len = Tensor::zeros(&g, &[1], DType::U32).unwrap();
    let cache = Cache {
        k: &k,
        v: &v,
        len: &len,
    };
    let bad = DecodeShape {
        heads: 3,
        kv_heads: 2,
        head_dim: 8,
    };
    let err = attention_decode::forward(&g, &q, cache, &scores, &out, bad)
        .err()
        .unwrap();
    assert!(err.to_string().contains("multiple of kv_heads"), "{err}");
    let shape = DecodeShape {
        heads: 4,
        kv_heads: 2,
        head_dim: 8,
    };
    let small_scores = z(&[4, 4]);
    let err = attention_decode::forward(&g, &q, cache, &small_scores, &out, shape)
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("scores has 16 elements, expected 20"),
        "{err}"
    );
}

fn planned(gpu: &Gpu, ckpt: &Checkpoint, seq: usize) -> Decoder {
    let m = Decoder::for_generation(gpu, &ckpt.config, seq).unwrap();
    m.load_params(gpu, |n| ckpt.tensors.get(n).map(|t| t.data.as_slice()))
        .unwrap();
    m
}

fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    random(n, seed)
        .iter()
        .map(|u| ((u + 1.0) * 0.5 * vocab as f32) as u32 % vocab as u32)
        .collect()
}

fn cached_logits_match_the_full_forward(gpu: &Gpu, name: &str) {
    let ckpt = common::fixture_checkpoint(name);
    let (seq, vocab) = (ckpt.config.max_seq_len, ckpt.config.vocab_size);
    let full = planned(gpu, &ckpt, seq);
    let ids = tokens(seq, vocab, 11);
    let mut row = ids.clone();
    row.push(0);
    full.set_batch(gpu, &row).unwrap();
    let mut enc = gpu.encoder();
    full.record_eval_forward(&mut enc);
    gpu.submit(enc);
    let want = full.logits().unwrap().to_vec_f32(gpu).unwrap();

    // The cache reads its weights from a one-token plan of the same checkpoint.
    let weights = planned(gpu, &ckpt, 1);
    let mut cache = CachedDecoder::new(gpu, &weights, seq).unwrap();
    for (p, &id) in ids.iter().enumerate() {
        let got = pollster::block_on(cache.push_and_read(gpu, id)).unwrap();
        let what = format!("{name}: position {p}");
        assert_close(&got, &want[p * vocab..(p + 1) * vocab], 1e-4, 1e-4, &what);
    }
    assert_eq!(cache.len(), seq);
    let err = cache.push(gpu, ids[0]).expect_err("the cache is full");
    assert!(err.to_string().contains("KV cache is full"), "{err}");
    cache.clear();
    let err = cache
        .push(gpu, vocab as u32)
        .expect_err("an id past the vocabulary");
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
}

#[test]
fn the_cached_model_gives_the_full_forward_logits_at_every_position() {
    let g = gpu();
    cached_logits_match_the_full_forward(&g, "pico_mini");
    // ReLoRA: the adapters (non-zero B in this fixture) run in the cached path too.
    cached_logits_match_the_full_forward(&g, "relora_mini");
}

#[test]
fn greedy_generation_with_the_cache_gives_the_windowed_tokens() {
    let g = gpu();
    let ckpt = common::fixture_checkpoint("pico_mini");
    let (seq, vocab) = (ckpt.config.max_seq_len, ckpt.config.vocab_size);
    let prompt = tokens(3, vocab, 5);
    let options = SampleOptions {
        max_new_tokens: seq - prompt.len(),
        temperature: 0.0,
        top_k: 0,
        seed: 0,
    };
    let windowed = pollster::block_on(generate(
        &g,
        &planned(&g, &ckpt, seq),
        &prompt,
        None,
        &options,
    ))
    .unwrap();
    let weights = planned(&g, &ckpt, 1);
    let mut cache = CachedDecoder::new(&g, &weights, seq).unwrap();
    let cached =
        pollster::block_on(generate_cached(&g, &mut cache, &prompt, None, &options)).unwrap();
    assert_eq!(cached.len(), options.max_new_tokens);
    assert_eq!(cached, windowed);
    // Past the cache's capacity generation goes on (the cache is refilled), and a sampled
    // run is reproducible from its seed.
    let long = SampleOptions {
        max_new_tokens: 2 * seq,
        temperature: 0.8,
        top_k: 20,
        seed: 3,
    };
    let a = pollster::block_on(generate_cached(&g, &mut cache, &prompt, None, &long)).unwrap();
    let b = pollster::block_on(generate_cached(&g, &mut cache, &prompt, None, &long)).unwrap();
    assert_eq!(a.len(), 2 * seq);
    assert_eq!(a, b);
    assert!(a.iter().all(|&t| (t as usize) < vocab));
}
