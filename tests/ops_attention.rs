//! Causal grouped-query attention on the GPU, forward and backward, against the CPU reference
//! (whose backward is itself checked by finite differences in `reference_gradients.rs`).
//! Shapes cover T = 1, odd and prime lengths, several query and key blocks, every pico
//! head_dim (8, 32, 64, 128) and tiny ones, and both H = KV and H = 3 KV. Every test runs
//! each kernel variant (tiled and rows), pinned.

mod common;

use common::{assert_close, gpu, gpu_with, random};
use std::time::Instant;
use wgtrain::formulas::kernels::KernelPins;
use wgtrain::gpu::{run_all, DType, Gpu};
use wgtrain::ops::attention::{self, AttentionKernel, AttentionShape};
use wgtrain::{reference, Error, GpuOptions, Tensor};

/// f32 kernels against the f64 reference: |got - want| <= ATOL + RTOL * |want|.
const ATOL: f32 = 1e-5;
const RTOL: f32 = 1e-4;

/// One device per attention variant, each pinned to it.
fn variant_gpus() -> Vec<(AttentionKernel, Gpu)> {
    AttentionKernel::VARIANTS
        .iter()
        .map(|&attention| {
            let kernels = KernelPins {
                attention,
                ..KernelPins::default()
            };
            let gpu = gpu_with(GpuOptions {
                kernels,
                ..GpuOptions::default()
            });
            assert_eq!(attention::kernel_for(&gpu, 8), attention);
            (attention, gpu)
        })
        .collect()
}

fn upload(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_f32(gpu, shape, data).unwrap()
}

fn zeros(gpu: &Gpu, shape: &[usize]) -> Tensor {
    Tensor::zeros(gpu, shape, DType::F32).unwrap()
}

fn q_shape(s: AttentionShape) -> [usize; 4] {
    [s.batch, s.seq, s.heads, s.head_dim]
}

fn kv_shape(s: AttentionShape) -> [usize; 4] {
    [s.batch, s.seq, s.kv_heads, s.head_dim]
}

fn lse_shape(s: AttentionShape) -> [usize; 3] {
    [s.batch, s.heads, s.seq]
}

/// GPU results of one forward and backward: out, lse, dq, dk, dv.
struct Run {
    out: Vec<f32>,
    lse: Vec<f32>,
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
}

fn run(gpu: &Gpu, s: AttentionShape, q: &[f32], k: &[f32], v: &[f32], dout: &[f32]) -> Run {
    let (qs, kvs, ls) = (q_shape(s), kv_shape(s), lse_shape(s));
    let (tq, tk, tv, tdout) = (
        upload(gpu, &qs, q),
        upload(gpu, &kvs, k),
        upload(gpu, &kvs, v),
        upload(gpu, &qs, dout),
    );
    let (out, lse, delta) = (zeros(gpu, &qs), zeros(gpu, &ls), zeros(gpu, &ls));
    // Garbage in the gradients: the backward must overwrite, not accumulate.
    let (dq, dk, dv) = (
        upload(gpu, &qs, &vec![7.0; q.len()]),
        upload(gpu, &kvs, &vec![7.0; k.len()]),
        upload(gpu, &kvs, &vec![7.0; k.len()]),
    );
    let mut ds = attention::forward(gpu, &tq, &tk, &tv, &out, &lse, s).unwrap();
    ds.extend(
        attention::backward(
            gpu, &tq, &tk, &tv, &out, &lse, &tdout, &dq, &dk, &dv, &delta, s,
        )
        .unwrap(),
    );
    run_all(gpu, &ds);
    let read = |t: &Tensor| t.to_vec_f32(gpu).unwrap();
    Run {
        out: read(&out),
        lse: read(&lse),
        dq: read(&dq),
        dk: read(&dk),
        dv: read(&dv),
    }
}

struct Inputs {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    dout: Vec<f32>,
}

fn inputs(s: AttentionShape, seed: u64, amplitude: f32) -> Inputs {
    let nq = s.batch * s.seq * s.heads * s.head_dim;
    let nkv = s.batch * s.seq * s.kv_heads * s.head_dim;
    let amp = |x: Vec<f32>| x.into_iter().map(|v| v * amplitude).collect::<Vec<_>>();
    Inputs {
        q: amp(random(nq, seed)),
        k: amp(random(nkv, seed + 1)),
        v: random(nkv, seed + 2),
        dout: random(nq, seed + 3),
    }
}

fn check_against_reference(gpu: &Gpu, s: AttentionShape, amplitude: f32) {
    let variant = attention::kernel_for(gpu, s.head_dim);
    let x = inputs(s, 100 + s.seq as u64 * 7 + s.head_dim as u64, amplitude);
    let start = Instant::now();
    let got = run(gpu, s, &x.q, &x.k, &x.v, &x.dout);
    let gpu_time = start.elapsed();
    let (out, lse) = reference::attention::attention(&x.q, &x.k, &x.v, s);
    let (dq, dk, dv) = reference::attention::attention_backward(&x.q, &x.k, &x.v, &x.dout, s);
    let what = format!("{variant} {s:?} x{amplitude}");
    let mut worst = 0.0f32;
    for (name, g, w) in [
        ("out", &got.out, &out),
        ("lse", &got.lse, &lse),
        ("dq", &got.dq, &dq),
        ("dk", &got.dk, &dk),
        ("dv", &got.dv, &dv),
    ] {
        assert_close(g, w, ATOL, RTOL, &format!("{what} {name}"));
        for (a, b) in g.iter().zip(w.iter()) {
            worst = worst.max((a - b).abs() / (ATOL + RTOL * b.abs()));
        }
    }
    eprintln!(
        "{what}: GPU forward + backward + readback {gpu_time:.2?}, worst error {worst:.3} of tolerance"
    );
}

#[test]
fn attention_matches_the_reference() {
    for (_, gpu) in variant_gpus() {
        every_shape_matches(&gpu);
    }
}

fn every_shape_matches(gpu: &Gpu) {
    for (b, t, h, kv, hd) in [
        (1, 1, 1, 1, 2),
        (2, 7, 3, 1, 4),
        (1, 37, 12, 4, 8),
        (1, 70, 6, 2, 32),
        (2, 19, 4, 4, 16),
        (1, 20, 2, 1, 64),
        (1, 9, 2, 2, 128),
        (1, 41, 3, 1, 128),
        (1, 5, 2, 1, 96),
        (1, 131, 3, 1, 8),
        (1, 257, 2, 1, 64),
    ] {
        check_against_reference(gpu, AttentionShape::new(b, t, h, kv, hd), 1.0);
    }
}

/// Large scores (peaked softmax, lse far from 0): the online softmax must stay finite and
/// exact where a naive exp would overflow.
#[test]
fn attention_handles_large_scores() {
    for (_, gpu) in variant_gpus() {
        check_against_reference(&gpu, AttentionShape::new(1, 29, 2, 1, 16), 6.0);
    }
}

/// Changing tokens from `cut` on leaves the outputs, lse and dq of earlier tokens bitwise
/// unchanged (dk and dv of early keys legitimately depend on later queries).
#[test]
fn future_tokens_do_not_affect_earlier_positions() {
    for (_, gpu) in variant_gpus() {
        future_tokens_leave_earlier_ones(&gpu);
    }
}

fn future_tokens_leave_earlier_ones(gpu: &Gpu) {
    let s = AttentionShape::new(2, 23, 6, 2, 8);
    let cut = 11;
    let x = inputs(s, 5, 1.0);
    let y = inputs(s, 6, 1.0);
    // Tokens >= cut from y, earlier ones from x.
    let mix = |a: &[f32], b: &[f32], heads: usize| -> Vec<f32> {
        let row = heads * s.head_dim;
        a.chunks(row)
            .zip(b.chunks(row))
            .enumerate()
            .flat_map(|(i, (ra, rb))| if i % s.seq < cut { ra } else { rb }.to_vec())
            .collect()
    };
    let (q2, k2, v2, d2) = (
        mix(&x.q, &y.q, s.heads),
        mix(&x.k, &y.k, s.kv_heads),
        mix(&x.v, &y.v, s.kv_heads),
        mix(&x.dout, &y.dout, s.heads),
    );
    let a = run(gpu, s, &x.q, &x.k, &x.v, &x.dout);
    let b = run(gpu, s, &q2, &k2, &v2, &d2);
    let early = |data: &[f32], heads: usize| -> Vec<f32> {
        let row = heads * s.head_dim;
        data.chunks(row)
            .enumerate()
            .filter(|(i, _)| i % s.seq < cut)
            .flat_map(|(_, r)| r.to_vec())
            .collect()
    };
    let early_lse =
        |data: &[f32]| -> Vec<f32> { data.chunks(s.seq).flat_map(|r| r[..cut].to_vec()).collect() };
    assert_eq!(early(&a.out, s.heads), early(&b.out, s.heads), "out");
    assert_eq!(early(&a.dq, s.heads), early(&b.dq, s.heads), "dq");
    assert_eq!(early_lse(&a.lse), early_lse(&b.lse), "lse");
    assert_ne!(a.out, b.out, "the later tokens did change");
}

/// Same inputs, same bits: no atomics, fixed summation order.
#[test]
fn attention_is_deterministic() {
    for (_, gpu) in variant_gpus() {
        same_bits_twice(&gpu);
    }
}

fn same_bits_twice(gpu: &Gpu) {
    let s = AttentionShape::new(1, 45, 6, 2, 32);
    let x = inputs(s, 9, 1.0);
    let a = run(gpu, s, &x.q, &x.k, &x.v, &x.dout);
    let b = run(gpu, s, &x.q, &x.k, &x.v, &x.dout);
    for (name, ga, gb) in [
        ("out", &a.out, &b.out),
        ("lse", &a.lse, &b.lse),
        ("dq", &a.dq, &b.dq),
        ("dk", &a.dk, &b.dk),
        ("dv", &a.dv, &b.dv),
    ] {
        let (ba, bb): (Vec<u32>, Vec<u32>) = (
            ga.iter().map(|v| v.to_bits()).collect(),
            gb.iter().map(|v| v.to_bits()).collect(),
        );
        assert_eq!(ba, bb, "{name}");
    }
}

fn shape_error(e: Option<Error>) -> String {
    match e {
        Some(e @ Error::Shape { .. }) => e.to_string(),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn attention_rejects_bad_shapes() {
    let gpu = gpu();
    let s = AttentionShape::new(1, 5, 4, 2, 8);
    let (qs, kvs, ls) = (q_shape(s), kv_shape(s), lse_shape(s));
    let (q, k, v, out, lse) = (
        zeros(&gpu, &qs),
        zeros(&gpu, &kvs),
        zeros(&gpu, &kvs),
        zeros(&gpu, &qs),
        zeros(&gpu, &ls),
    );
    let fwd = |s: AttentionShape, q: &Tensor, k: &Tensor, lse: &Tensor| {
        shape_error(attention::forward(&gpu, q, k, &v, &out, lse, s).err())
    };

    // k laid out with the query heads.
    let msg = fwd(s, &q, &zeros(&gpu, &qs), &lse);
    assert!(
        msg.contains("k is [1, 5, 4, 8], expected [B, T, KV, hd] = [1, 5, 2, 8]"),
        "{msg}"
    );
    // lse transposed to [B, T, H].
    let msg = fwd(s, &q, &k, &zeros(&gpu, &[1, 5, 4]));
    assert!(
        msg.contains("lse is [1, 5, 4], expected [B, H, T]"),
        "{msg}"
    );
    // heads not a multiple of kv_heads.
    let msg = fwd(AttentionShape::new(1, 5, 3, 2, 8), &q, &k, &lse);
    assert!(
        msg.contains("heads (3) must be a non-zero multiple of kv_heads (2)"),
        "{msg}"
    );
    let msg = fwd(AttentionShape::new(1, 5, 4, 0, 8), &q, &k, &lse);
    assert!(msg.contains("kv_heads (0)"), "{msg}");
    // head_dim beyond what the tiles hold.
    let msg = fwd(AttentionShape::new(1, 5, 4, 2, 256), &q, &k, &lse);
    assert!(
        msg.contains("head_dim 256 is outside the supported 1..=128"),
        "{msg}"
    );

    // Backward: a dk shaped like q.
    let (dout, dq, delta) = (zeros(&gpu, &qs), zeros(&gpu, &qs), zeros(&gpu, &ls));
    let msg = shape_error(
        attention::backward(
            &gpu,
            &q,
            &k,
            &v,
            &out,
            &lse,
            &dout,
            &dq,
            &zeros(&gpu, &qs),
            &zeros(&gpu, &kvs),
            &delta,
            s,
        )
        .err(),
    );
    assert!(msg.contains("dk is [1, 5, 4, 8]"), "{msg}");
    // Backward: a delta of the wrong length.
    let msg = shape_error(
        attention::backward(
            &gpu,
            &q,
            &k,
            &v,
            &out,
            &lse,
            &dout,
            &dq,
            &zeros(&gpu, &kvs),
            &zeros(&gpu, &kvs),
            &zeros(&gpu, &[1, 4, 6]),
            s,
        )
        .err(),
    );
    assert!(
        msg.contains("delta is [1, 4, 6], expected [B, H, T]"),
        "{msg}"
    );
}

/// An empty batch or sequence is valid and records nothing.
#[test]
fn attention_of_an_empty_sequence_records_nothing() {
    let gpu = gpu();
    let s = AttentionShape::new(2, 0, 4, 2, 8);
    let (qs, kvs, ls) = (q_shape(s), kv_shape(s), lse_shape(s));
    let (q, k, v, out, lse) = (
        zeros(&gpu, &qs),
        zeros(&gpu, &kvs),
        zeros(&gpu, &kvs),
        zeros(&gpu, &qs),
        zeros(&gpu, &ls),
    );
    let (dout, dq, dk, dv, delta) = (
        zeros(&gpu, &qs),
        zeros(&gpu, &qs),
        zeros(&gpu, &kvs),
        zeros(&gpu, &kvs),
        zeros(&gpu, &ls),
    );
    assert!(attention::forward(&gpu, &q, &k, &v, &out, &lse, s)
        .unwrap()
        .is_empty());
    assert!(
        attention::backward(&gpu, &q, &k, &v, &out, &lse, &dout, &dq, &dk, &dv, &delta, s)
            .unwrap()
            .is_empty()
    );
}

/// The kernels' workgroup arrays stay within WebGPU's guaranteed 16 KiB for every entry
/// point (the whole module counts, as the block sizes for any head_dim <= 128 use them all).
#[test]
fn attention_workgroup_memory_fits_webgpu_minimum() {
    let src = wgtrain::gpu::shaders::ATTENTION.code; // with its prelude, as the device gets it
    let module = naga::front::wgsl::parse_str(src).unwrap();
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).unwrap();
    let bytes: u32 = module
        .global_variables
        .iter()
        .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
        .map(|(_, g)| layouter[g.ty].size)
        .sum();
    assert!(bytes <= 16 * 1024, "{bytes} bytes of workgroup memory");
    assert_eq!(bytes, (2048 + 1024 + 512 + 128) * 4);
}
