//! The whole model against PyTorch (llm.c's test_gpt2 style): fixtures written by
//! `tests/reference/pico_reference.py` hold weights, a batch, and PyTorch's loss, logits and
//! every parameter's gradient. We load the same weights and batch and compare.
//!
//! Tolerances (f32 on our side; the fixtures are f64 computations stored as f32): loss to
//! relative 1e-4; logits to 1e-4 absolute; each gradient tensor to relative 1e-3 in the
//! 2-norm, and every element within 1e-3 of the tensor's largest magnitude.

mod common;

use wgtrain::model::checkpoint::{load, read_safetensors, HostTensor};
use wgtrain::model::grads::{batch_tokens, compute};

fn f32s<'a>(map: &'a std::collections::BTreeMap<String, HostTensor>, name: &str) -> &'a [f32] {
    map.get(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .data
        .as_f32()
        .unwrap()
}

fn compare_grad(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}");
    let max = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (mut diff2, mut ref2) = (0f64, 0f64);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-3 * max + 1e-7,
            "{name}[{i}]: got {g}, PyTorch {w} (largest |grad| {max})"
        );
        diff2 += ((g - w) as f64).powi(2);
        ref2 += (*w as f64).powi(2);
    }
    let rel = (diff2 / ref2.max(1e-30)).sqrt();
    assert!(rel <= 1e-3, "{name}: relative 2-norm error {rel}");
}

fn check_fixture(name: &str) {
    let gpu = common::gpu();
    let dir = common::fixture(name);
    let ckpt = load(&dir).unwrap();
    let batch_path = dir.join("batch.safetensors");
    let (b, t, tokens) =
        batch_tokens(&read_safetensors(&batch_path).unwrap(), &batch_path).unwrap();
    let expected = read_safetensors(&dir.join("expected.safetensors")).unwrap();
    let out = pollster::block_on(compute(&gpu, &ckpt, b, t, &tokens)).unwrap();

    let want_loss = f32s(&expected, "loss")[0];
    assert!(
        ((out.loss - want_loss) / want_loss).abs() <= 1e-4,
        "{name}: loss {} vs PyTorch {want_loss}",
        out.loss
    );
    common::assert_close(
        &out.logits,
        f32s(&expected, "logits"),
        1e-4,
        1e-4,
        &format!("{name} logits"),
    );
    assert_eq!(out.grads.len(), ckpt.config.param_specs().len());
    for (pname, _, g) in &out.grads {
        compare_grad(
            &format!("{name} grad.{pname}"),
            g,
            f32s(&expected, &format!("grad.{pname}")),
        );
    }
}

#[test]
fn pico_mini_matches_pytorch() {
    check_fixture("pico_mini");
}

#[test]
fn pico_tiny_shape_matches_pytorch() {
    check_fixture("pico_tiny_shape");
}

#[test]
fn wgtrain_grads_cli_reproduces_pytorch() {
    let dir = common::fixture("pico_mini");
    let out =
        std::env::temp_dir().join(format!("wgtrain-grads-{}.safetensors", std::process::id()));
    common::wgtrain(["grads"])
        .test_backend()
        .arg("--checkpoint")
        .arg(&dir)
        .arg("--batch")
        .arg(dir.join("batch.safetensors"))
        .arg("--out")
        .arg(&out)
        .run_ok();
    let got = read_safetensors(&out).unwrap();
    let want = read_safetensors(&dir.join("expected.safetensors")).unwrap();
    std::fs::remove_file(&out).ok();
    assert_eq!(got["loss"].shape, Vec::<usize>::new());
    assert!(
        (f32s(&got, "loss")[0] - f32s(&want, "loss")[0]).abs() <= 1e-4 * f32s(&want, "loss")[0]
    );
    assert_eq!(got["logits"].shape, want["logits"].shape);
    for (k, v) in &want {
        if let Some(pname) = k.strip_prefix("grad.") {
            compare_grad(pname, f32s(&got, k), v.data.as_f32().unwrap());
        }
    }
}

#[test]
fn a_mismatched_checkpoint_names_the_tensor() {
    let gpu = common::gpu();
    let mut ckpt = load(&common::fixture("pico_mini")).unwrap();
    ckpt.tensors.remove("layers.1.swiglu.w_2.weight");
    let err = pollster::block_on(compute(&gpu, &ckpt, 1, 2, &[1, 2, 3]))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("layers.1.swiglu.w_2.weight"), "{err}");
}

#[test]
fn token_ids_outside_the_vocabulary_are_refused() {
    let gpu = common::gpu();
    let ckpt = load(&common::fixture("pico_mini")).unwrap();
    let v = ckpt.config.vocab_size as u32;
    let err = pollster::block_on(compute(&gpu, &ckpt, 1, 2, &[1, v, 3]))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&format!("token id {v}")) && err.contains("outside the vocabulary"),
        "{err}"
    );
}
