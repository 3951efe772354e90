//! The head computes the logits a chunk of token rows at a time (`LogitsPlan`), so `[N, V]`
//! is never stored whole: the matmul on row windows against the CPU reference, and the
//! chunked decoder against the whole-logits one (loss, per-token losses, every gradient),
//! with chunks that do not divide the batch, also with every buffer bound in pieces; the
//! memory the chunked plan saves is exactly the rows it does not hold.

mod common;

use common::{assert_close, gpu, gpu_with, random};
use wgtrain::model::checkpoint::Checkpoint;
use wgtrain::model::decoder::{Decoder, LogitsPlan, Purpose};
use wgtrain::model::memory_estimate::MemoryEstimate;
use wgtrain::ops::matmul::{prepare_rows, Rows};
use wgtrain::ops::MatmulSpec;
use wgtrain::{reference, Gpu, GpuOptions, Tensor};

/// `c[c0..c0+m] (+)= op(a[a0..]) · op(b[b0..])` on the GPU against the reference on the
/// same windows, with the rows of C outside the window left as they were.
fn check_window(gpu: &Gpu, spec: MatmulSpec, (m, n, k): (usize, usize, usize), seed: u64) {
    // A window of A's rows is M rows (or K rows when transposed), likewise for B.
    let (a_rows, a_cols) = if spec.trans_a { (k, m) } else { (m, k) };
    let (b_rows, b_cols) = if spec.trans_b { (n, k) } else { (k, n) };
    let (a0, b0, c0) = (3, 2, 4);
    let a_all = random((a_rows + 5) * a_cols, seed);
    let b_all = random((b_rows + 4) * b_cols, seed + 1);
    let c_all = random((m + 7) * n, seed + 2);
    let a = Tensor::from_f32(gpu, &[a_rows + 5, a_cols], &a_all).unwrap();
    let b = Tensor::from_f32(gpu, &[b_rows + 4, b_cols], &b_all).unwrap();
    let c = Tensor::from_f32(gpu, &[m + 7, n], &c_all).unwrap();
    let dispatches = prepare_rows(
        gpu,
        Rows::range(&a, a0, a_rows),
        Rows::range(&b, b0, b_rows),
        Rows::range(&c, c0, m),
        spec,
    )
    .unwrap();
    wgtrain::gpu::run_all(gpu, &dispatches);
    let got = c.to_vec_f32(gpu).unwrap();

    let mut want = c_all.clone();
    let window = &mut want[c0 * n..(c0 + m) * n];
    reference::matmul::matmul(
        &a_all[a0 * a_cols..(a0 + a_rows) * a_cols],
        &[a_rows, a_cols],
        &b_all[b0 * b_cols..(b0 + b_rows) * b_cols],
        &[b_rows, b_cols],
        window,
        &[m, n],
        &spec,
    );
    let what = format!("window matmul {spec:?} m{m} n{n} k{k}");
    assert_close(&got, &want, 1e-4, 1e-5, &what);
    // Outside the window nothing moved (bitwise).
    assert_eq!(&got[..c0 * n], &c_all[..c0 * n], "{what}: rows before");
    assert_eq!(
        &got[(c0 + m) * n..],
        &c_all[(c0 + m) * n..],
        "{what}: rows after"
    );
}

#[test]
fn matmul_on_row_windows_matches_the_reference() {
    let g = gpu();
    for (i, spec) in [
        MatmulSpec::nt(),
        MatmulSpec::nn(),
        MatmulSpec::tn().accumulate(),
    ]
    .into_iter()
    .enumerate()
    {
        check_window(&g, spec, (9, 13, 7), 10 + i as u64);
        check_window(&g, spec, (1, 5, 33), 20 + i as u64);
    }
    // Pieces: a 1 KiB binding limit stores every operand here in several buffers.
    let small = gpu_with(GpuOptions {
        max_binding_bytes: Some(1024),
        ..Default::default()
    });
    for spec in [MatmulSpec::nt(), MatmulSpec::tn().accumulate()] {
        check_window(&small, spec, (21, 6, 11), 30);
    }
}

#[test]
fn a_row_window_outside_its_tensor_is_an_error() {
    let g = gpu();
    let a = Tensor::zeros(&g, &[4, 3], wgtrain::gpu::DType::F32).unwrap();
    let b = Tensor::zeros(&g, &[5, 3], wgtrain::gpu::DType::F32).unwrap();
    let c = Tensor::zeros(&g, &[4, 5], wgtrain::gpu::DType::F32).unwrap();
    let err = prepare_rows(
        &g,
        Rows::range(&a, 2, 3),
        Rows::all(&b),
        Rows::range(&c, 0, 3),
        MatmulSpec::nt(),
    )
    .err()
    .expect("rows 2..5 of a 4-row tensor");
    assert!(err.to_string().contains("rows 2..5"), "{err}");
}

/// Loss, per-token losses and every trainable gradient after one forward and backward.
struct Outcome {
    loss: f32,
    row_losses: Vec<f32>,
    grads: Vec<(String, Vec<f32>)>,
    bytes: u64,
    chunk_rows: usize,
}

fn run(gpu: &Gpu, ckpt: &Checkpoint, logits: LogitsPlan, tokens: &[u32]) -> Outcome {
    let (batch, seq) = (3, 16);
    let m =
        Decoder::planned_with_logits(gpu, &ckpt.config, batch, seq, Purpose::Gradients, 1, logits)
            .unwrap();
    m.load_params(gpu, |n| ckpt.tensors.get(n).map(|t| t.data.as_slice()))
        .unwrap();
    m.set_batch(gpu, tokens).unwrap();
    let mut enc = gpu.encoder();
    m.record_zero_grads(&mut enc);
    m.record_forward(&mut enc);
    m.record_backward(&mut enc);
    gpu.submit(enc);
    if m.logits_chunk_rows() < batch * seq {
        let err = m.logits().err().expect("chunked logits are not readable");
        assert!(err.to_string().contains("LogitsPlan::Whole"), "{err}");
    }
    Outcome {
        loss: m.loss().to_vec_f32(gpu).unwrap()[0],
        row_losses: m.row_losses().to_vec_f32(gpu).unwrap(),
        grads: m
            .params()
            .iter()
            .filter(|p| p.trainable)
            .map(|p| (p.name.clone(), p.grad.to_vec_f32(gpu).unwrap()))
            .collect(),
        bytes: m.planned_bytes(),
        chunk_rows: m.logits_chunk_rows(),
    }
}

fn compare_chunked_with_whole(gpu: &Gpu, name: &str, chunk_rows: &[usize]) {
    let ckpt = common::fixture_checkpoint(name);
    let vocab = ckpt.config.vocab_size;
    let tokens: Vec<u32> = random(3 * 17, 7)
        .iter()
        .map(|u| ((u + 1.0) * 0.5 * vocab as f32) as u32 % vocab as u32)
        .collect();
    let whole = run(gpu, &ckpt, LogitsPlan::Whole, &tokens);
    assert_eq!(whole.chunk_rows, 48);
    assert!(whole.loss.is_finite() && whole.loss > 0.0);
    // The gradient of the output projection must be non-trivial, or agreement proves little.
    let dw = &whole
        .grads
        .iter()
        .find(|(n, _)| n == "de_embedding_proj.weight")
        .unwrap()
        .1;
    assert!(dw.iter().any(|v| v.abs() > 1e-4), "{name}: dW is all zero");
    for &rows in chunk_rows {
        let chunked = run(gpu, &ckpt, LogitsPlan::ChunkRows(rows), &tokens);
        let what = format!("{name}, chunks of {rows} rows");
        assert_eq!(chunked.chunk_rows, rows, "{what}");
        assert_close(&[chunked.loss], &[whole.loss], 1e-6, 1e-6, &what);
        assert_close(&chunked.row_losses, &whole.row_losses, 1e-6, 1e-6, &what);
        for ((n, g), (n2, w)) in chunked.grads.iter().zip(&whole.grads) {
            assert_eq!(n, n2);
            assert_close(g, w, 1e-6, 1e-5, &format!("{what}: {n}"));
        }
        // The plan holds `rows` rows of logits instead of 48, and nothing else changes.
        let saved = ((48 - rows) * vocab * 4) as u64;
        assert_eq!(whole.bytes - chunked.bytes, saved, "{what}: bytes");
    }
}

#[test]
fn chunked_logits_give_the_loss_and_gradients_of_whole_ones() {
    let g = gpu();
    // 48 token rows: chunks of 5 (the last holds 3), 16 (dividing) and 1.
    compare_chunked_with_whole(&g, "pico_mini", &[5, 16, 1]);
    // ReLoRA: the output projection is a plain weight, the blocks' adapters see dres.
    compare_chunked_with_whole(&g, "relora_mini", &[5, 16]);
    // A 12 KiB binding limit (the largest activation, [48, 64], just fits): a chunk of 40
    // rows of logits spans two pieces, and so do the vocabulary matrices the products read.
    let small = gpu_with(GpuOptions {
        max_binding_bytes: Some(12288),
        ..Default::default()
    });
    compare_chunked_with_whole(&small, "pico_mini", &[40, 5]);
}

#[test]
fn the_study_micro_batch_holds_a_chunk_of_logits_not_all_of_them() {
    // pico's tiny at the study's micro-batch: 8 × 2048 tokens, V = 50304.
    let config = wgtrain::model::config::ModelConfig::preset("tiny").unwrap();
    assert_eq!(config.vocab_size, 50304);
    let est = MemoryEstimate::training(&config, 8, 2048);
    let whole = 8 * 2048 * 50304 * 4u64;
    let chunk = LogitsPlan::Auto.chunk_rows(8 * 2048, 50304) as u64;
    assert_eq!(
        chunk,
        wgtrain::model::decoder::LOGITS_CHUNK_BYTES / (4 * 50304)
    );
    assert_eq!(est.logits_bytes, chunk * 50304 * 4);
    assert!(
        est.logits_bytes * 12 < whole,
        "{} vs {whole}",
        est.logits_bytes
    );
    // Small batches keep them whole: nothing is recomputed there.
    assert_eq!(LogitsPlan::Auto.chunk_rows(4 * 128, 50304), 4 * 128);
}
