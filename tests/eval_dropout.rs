//! Evaluation never applies LoRA dropout (PyTorch evaluates in `model.eval()`): a ReLoRA
//! model with dropout 0.1 and non-zero adapters scores exactly as its merged export, whether
//! it was planned for training, gradients or inference; and the deterministic gradient of
//! `wgtrain grads` does not depend on the dropout seed.

mod common;

use std::path::{Path, PathBuf};
use wgtrain::eval::{perplexity, sequence_logprobs, LongSequences};
use wgtrain::model::checkpoint::{load, Checkpoint};
use wgtrain::model::decoder::{Decoder, Purpose};
use wgtrain::model::merge::merge_checkpoint;
use wgtrain::Gpu;

fn fixture_with_dropout(p: f64) -> Checkpoint {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/relora_mini");
    let mut ckpt = load(&dir).unwrap();
    ckpt.config.relora.as_mut().unwrap().lora_dropout = p;
    ckpt
}

fn planned(gpu: &Gpu, ckpt: &Checkpoint, purpose: Purpose) -> Decoder {
    let m = Decoder::planned(gpu, &ckpt.config, 3, 16, purpose, 1).unwrap();
    m.load_params(gpu, |n| ckpt.tensors.get(n).map(|t| t.data.as_slice()))
        .unwrap();
    m
}

/// Token ids inside the fixture's vocabulary of 97, deterministic.
fn ids(n: usize, seed: u64) -> Vec<u32> {
    common::random(n, seed)
        .iter()
        .map(|u| ((u + 1.0) * 48.0) as u32 % 97)
        .collect()
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

#[test]
fn evaluation_of_a_relora_model_with_dropout_equals_its_merged_export() {
    let gpu = common::gpu();
    let ckpt = fixture_with_dropout(0.1);
    // The adapters must matter, or the comparison would prove nothing.
    let b_max = ckpt
        .tensors
        .iter()
        .filter(|(n, _)| n.ends_with("B_lora.weight"))
        .flat_map(|(_, t)| t.data.iter().map(|v| v.abs()))
        .fold(0.0f32, f32::max);
    assert!(b_max > 1e-3, "the fixture's B are all zero ({b_max})");

    let (plain_config, plain_tensors) = merge_checkpoint(&ckpt).unwrap();
    let merged = Decoder::for_inference(&gpu, &plain_config, 3, 16).unwrap();
    let by_name: std::collections::HashMap<_, _> = plain_tensors.iter().cloned().collect();
    merged
        .load_params(&gpu, |n| by_name.get(n).map(|t| t.data.as_slice()))
        .unwrap();

    let stream = ids(150, 7);
    let sentences: Vec<Vec<u32>> = (0..8).map(|i| ids(6 + i, 100 + i as u64)).collect();
    let want_ppl = pollster::block_on(perplexity(&gpu, &merged, &stream)).unwrap();
    let want_lp = pollster::block_on(sequence_logprobs(
        &gpu,
        &merged,
        &sentences,
        LongSequences::Error,
    ))
    .unwrap();

    for purpose in [Purpose::Training, Purpose::Gradients, Purpose::Inference] {
        let m = planned(&gpu, &ckpt, purpose);
        // Any dropout key: evaluation must not read it.
        m.set_dropout_seed(&gpu, 12345);
        let got = pollster::block_on(perplexity(&gpu, &m, &stream)).unwrap();
        assert!(
            relative(got.perplexity, want_ppl.perplexity) < 1e-4,
            "{purpose:?}: perplexity {} vs merged {}",
            got.perplexity,
            want_ppl.perplexity
        );
        let lp = pollster::block_on(sequence_logprobs(
            &gpu,
            &m,
            &sentences,
            LongSequences::Error,
        ))
        .unwrap();
        for (i, (g, w)) in lp.iter().zip(&want_lp).enumerate() {
            assert!(
                (g - w).abs() < 1e-3 * w.abs().max(1.0),
                "{purpose:?}: sentence {i}: log-probability {g} vs merged {w}"
            );
        }
    }

    // The training forward itself does apply dropout (so the test above has teeth).
    let m = planned(&gpu, &ckpt, Purpose::Training);
    m.set_dropout_seed(&gpu, 12345);
    let batch: Vec<u32> = stream[..3 * 17].to_vec();
    m.set_batch(&gpu, &batch).unwrap();
    let loss_of = |record: &dyn Fn(&mut wgpu::CommandEncoder)| {
        let mut enc = gpu.encoder();
        record(&mut enc);
        gpu.submit(enc);
        m.loss().to_vec_f32(&gpu).unwrap()[0]
    };
    let train_loss = loss_of(&|e| m.record_forward(e));
    let eval_loss = loss_of(&|e| m.record_eval_forward(e));
    assert_ne!(train_loss, eval_loss, "dropout changed nothing in training");
}

#[test]
fn an_inference_plan_allocates_no_gradients_or_backward_buffers() {
    let gpu = common::gpu();
    let ckpt = fixture_with_dropout(0.1);
    let train = planned(&gpu, &ckpt, Purpose::Training);
    let infer = planned(&gpu, &ckpt, Purpose::Inference);
    assert!(infer
        .params()
        .iter()
        .all(|p| !p.trainable && p.grad.numel() == 1));
    assert!(infer.backward_stages().is_empty() && infer.embedding_backward().is_none());
    let grads: u64 = train
        .params()
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.grad.size_bytes())
        .sum();
    assert!(
        infer.planned_bytes() + grads <= train.planned_bytes(),
        "inference {} B + gradients {grads} B should be at most training {} B",
        infer.planned_bytes(),
        train.planned_bytes()
    );
}

#[test]
fn the_deterministic_gradient_ignores_the_dropout_seed() {
    let gpu = common::gpu();
    let ckpt = fixture_with_dropout(0.1);
    let batch = ids(3 * 17, 3);
    let grad_of = |purpose: Purpose, seed: u32| -> Vec<f32> {
        let m = planned(&gpu, &ckpt, purpose);
        m.set_batch(&gpu, &batch).unwrap();
        m.set_dropout_seed(&gpu, seed);
        let mut enc = gpu.encoder();
        m.record_zero_grads(&mut enc);
        m.record_forward(&mut enc);
        m.record_backward(&mut enc);
        gpu.submit(enc);
        let a = m.param("layers.0.attention.q_proj.A_lora.weight").unwrap();
        a.grad.to_vec_f32(&gpu).unwrap()
    };
    assert_eq!(
        grad_of(Purpose::Gradients, 1),
        grad_of(Purpose::Gradients, 2)
    );
    assert_ne!(grad_of(Purpose::Training, 1), grad_of(Purpose::Training, 2));
}
