//! pico-relora on the GPU against the PyTorch reference (`tests/reference/relora_reference.py`
//! writes `tests/fixtures/relora_mini`): loss, logits and the gradients of A, B and the
//! trainable full-rank parameters (none for the frozen base weights); the merge-and-reset,
//! with and without the reference's quirks; and training with resets on real text.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use wgtrain::metrics::log::{read_log, series};
use wgtrain::model::checkpoint::{load, read_safetensors, Checkpoint, HostTensor};
use wgtrain::model::decoder::Decoder;
use wgtrain::model::grads::{batch_tokens, compute};
use wgtrain::train::config::TrainConfig;
use wgtrain::train::trainer::Trainer;
use wgtrain::Gpu;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/relora_mini")
}

fn f32s<'a>(map: &'a std::collections::BTreeMap<String, HostTensor>, name: &str) -> &'a [f32] {
    map.get(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .data
        .as_f32()
        .unwrap()
}

fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    let (mut d, mut r) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        d += ((g - w) as f64).powi(2);
        r += (*w as f64).powi(2);
    }
    (d / r.max(1e-30)).sqrt()
}

fn tokens() -> (usize, usize, Vec<u32>) {
    let p = fixture().join("batch.safetensors");
    batch_tokens(&read_safetensors(&p).unwrap(), &p).unwrap()
}

#[test]
fn loss_logits_and_trainable_gradients_match_pytorch() {
    let gpu = common::gpu();
    let ckpt = load(&fixture()).unwrap();
    let (b, t, ids) = tokens();
    let out = pollster::block_on(compute(&gpu, &ckpt, b, t, &ids)).unwrap();
    let want = read_safetensors(&fixture().join("expected.safetensors")).unwrap();
    let loss = f32s(&want, "loss")[0];
    assert!(
        ((out.loss - loss) / loss).abs() < 1e-4,
        "loss {} vs {loss}",
        out.loss
    );
    common::assert_close(&out.logits, f32s(&want, "logits"), 1e-4, 1e-4, "logits");
    let expected: Vec<&str> = want
        .keys()
        .filter_map(|k| k.strip_prefix("grad."))
        .collect();
    let got: Vec<&str> = out.grads.iter().map(|(n, _, _)| n.as_str()).collect();
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        sorted, expected,
        "gradients for exactly the trainable parameters"
    );
    assert!(got.iter().any(|n| n.ends_with("A_lora.weight")));
    assert!(
        !got.contains(&"layers.0.attention.q_proj.weight"),
        "the base weight is frozen"
    );
    for (name, _, g) in &out.grads {
        let w = f32s(&want, &format!("grad.{name}"));
        let max = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        let e = rel_err(g, w);
        assert!(e < 1e-3, "grad.{name}: relative error {e}");
        for (i, (x, y)) in g.iter().zip(w).enumerate() {
            assert!(
                (x - y).abs() <= 1e-3 * max + 1e-7,
                "grad.{name}[{i}]: {x} vs {y}"
            );
        }
    }
}

fn plan(gpu: &Gpu, ckpt: &Checkpoint) -> Decoder {
    let (b, t, ids) = tokens();
    let m = Decoder::new(gpu, &ckpt.config, b, t).unwrap();
    m.load_params(gpu, |n| ckpt.tensors.get(n).map(|x| x.data.as_slice()))
        .unwrap();
    m.set_batch(gpu, &ids).unwrap();
    m
}

fn logits(gpu: &Gpu, m: &Decoder) -> Vec<f32> {
    let mut enc = gpu.encoder();
    m.record_forward(&mut enc);
    gpu.submit(enc);
    m.logits().unwrap().to_vec_f32(gpu).unwrap()
}

fn merge_case(quirk: bool) {
    let gpu = common::gpu();
    let mut ckpt = load(&fixture()).unwrap();
    if quirk {
        ckpt.config
            .relora
            .as_mut()
            .unwrap()
            .quirk_merge_without_scale = true;
    }
    let m = plan(&gpu, &ckpt);
    let before = logits(&gpu, &m);
    let mut enc = gpu.encoder();
    m.record_merge_and_reset(&gpu, &mut enc, 99);
    gpu.submit(enc);
    let merged = read_safetensors(&fixture().join("merged.safetensors")).unwrap();
    let params = pollster::block_on(m.read_params(&gpu)).unwrap();
    let mut checked = 0;
    for (name, shape, v) in &params {
        if name.ends_with("B_lora.weight") {
            assert!(
                v.iter().all(|&x| x == 0.0),
                "{name} must be zero after a reset"
            );
        } else if name.ends_with("A_lora.weight") {
            let bound = 1.0 / (shape[1] as f32).sqrt();
            assert!(
                v.iter().all(|x| x.abs() <= bound),
                "{name} re-initialised within ±{bound}"
            );
            assert_ne!(
                v.as_slice(),
                ckpt.tensors[name].data.as_slice(),
                "{name} was drawn anew"
            );
        } else {
            let key = if quirk {
                format!("merged_noscale.{name}")
            } else {
                name.clone()
            };
            if let Some(w) = merged.get(&key) {
                common::assert_close(v, w.data.as_f32().unwrap(), 1e-6, 1e-5, &key);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 14, "every wrapped base weight merged");
    let after = logits(&gpu, &m);
    if quirk {
        // Without the scale the merge changes the function (as the reference's quirk does).
        let diff = before
            .iter()
            .zip(&after)
            .fold(0f32, |d, (a, b)| d.max((a - b).abs()));
        assert!(
            diff > 1e-3,
            "the unscaled merge should change the logits, max diff {diff}"
        );
    } else {
        // B is zero after the reset, so folding s·B·A into W leaves the function unchanged.
        common::assert_close(
            &after,
            &before,
            2e-5,
            1e-5,
            "logits across a merge-and-reset",
        );
        common::assert_close(
            &after,
            f32s(&merged, "merged_logits"),
            1e-4,
            1e-4,
            "merged logits vs PyTorch",
        );
    }
}

#[test]
fn merge_and_reset_matches_pytorch_and_keeps_the_function() {
    merge_case(false);
}

#[test]
fn quirk_merge_without_scale_reproduces_the_reference() {
    merge_case(true);
}

fn yaml(steps: u64, reset: u64, extra_relora: &str) -> String {
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/corpus/train/gutenberg_pg11_Alices_Adventures_in_Wonderland.txt");
    format!(
        r#"
model:
  preset: tiny
  d_model: 64
  n_layers: 2
  attention_n_heads: 4
  attention_n_kv_heads: 2
  activation_hidden_dim: 128
  max_seq_len: 32
  relora: {{ r: 8, lora_alpha: 16, lora_dropout: 0.1, reset_frequency: {reset} {extra_relora} }}
training:
  max_steps: {steps}
  seed: 3
  optimization: {{ lr: 0.003, lr_scheduler: relora_jagged_cosine, lr_warmup_steps: {reset},
                   restart_warmup_steps: 2, min_lr_ratio: 0.1 }}
data:
  dataset: {{ name: {data:?}, holdout_fraction: 0.02 }}
  dataloader: {{ batch_size: 8 }}
  tokenizer: {{ name: bpe, vocab_size: 512 }}
checkpointing: {{ save_every_n_steps: 1000 }}
evaluation: {{ metrics: [] }}
"#
    )
}

fn temp(tag: &str) -> PathBuf {
    common::temp_path(&format!("relora-{tag}"))
}

#[test]
fn training_with_frequent_resets_learns_without_nan() {
    let gpu = common::gpu();
    let run = temp("train");
    let mut t = Trainer::new(
        &gpu,
        TrainConfig::from_yaml(&yaml(60, 10, ""), &[]).unwrap(),
        &run,
    )
    .unwrap();
    t.show_progress = false;
    t.run(&Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(t.resets, vec![11, 21, 31, 41, 51]);
    let log = read_log(&run.join("metrics.jsonl")).unwrap();
    let losses = series(&log, "loss");
    assert_eq!(losses.len(), 60);
    assert!(losses.iter().all(|l| l.1.is_finite()), "no NaN");
    let first = losses[0].1;
    let last = losses[55..].iter().map(|l| l.1).sum::<f64>() / 5.0;
    // ReLoRA learns more slowly than full-rank training (the study's finding): ask for a
    // clear drop, not the 80% the plain model reaches in the same steps.
    assert!(last < 0.9 * first, "loss {first} -> {last}");
    assert_eq!(series(&log, "relora/reset").len(), 5);
    // The checkpoint is a ReLoRA checkpoint: adapters named as the reference names them.
    let ckpt = load(&run.join("checkpoints/step_000060")).unwrap();
    assert!(ckpt
        .tensors
        .contains_key("layers.1.swiglu.w_2.A_lora.weight"));
    assert!(ckpt.config.relora.is_some());
    std::fs::remove_dir_all(&run).ok();
}

#[test]
fn resume_across_a_reset_is_bitwise_identical() {
    let gpu = common::gpu();
    let yaml = yaml(12, 5, "");
    let save = ["checkpointing.save_every_n_steps=4".to_string()];
    let a_dir = temp("straight");
    let mut a = Trainer::new(&gpu, TrainConfig::from_yaml(&yaml, &save).unwrap(), &a_dir).unwrap();
    a.show_progress = false;
    a.run(&Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(a.resets, vec![6, 11]);
    // Resume from step 4: the resets at steps 6 and 11 happen after the resume.
    let b_dir = temp("resumed");
    let dst = b_dir.join("checkpoints/step_000004");
    common::copy_checkpoint(&a_dir.join("checkpoints/step_000004"), &dst);
    let mut b = Trainer::resume(&gpu, &dst, &[]).unwrap();
    b.show_progress = false;
    b.run(&Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(b.resets, vec![6, 11]);
    for f in ["model.safetensors", "optimizer.safetensors"] {
        let x = std::fs::read(a_dir.join("checkpoints/step_000012").join(f)).unwrap();
        let y = std::fs::read(b_dir.join("checkpoints/step_000012").join(f)).unwrap();
        assert!(x == y, "{f} differs after resuming across resets");
    }
    std::fs::remove_dir_all(&a_dir).ok();
    std::fs::remove_dir_all(&b_dir).ok();
}

#[test]
fn quirk_zero_init_a_gives_lora_no_gradient_before_the_first_reset() {
    let gpu = common::gpu();
    let mut ckpt = load(&fixture()).unwrap();
    ckpt.config.relora.as_mut().unwrap().quirk_zero_init_a = true;
    let (b, t, ids) = tokens();
    let m = Decoder::new(&gpu, &ckpt.config, b, t).unwrap();
    m.init_params(&gpu, 5).unwrap();
    m.set_batch(&gpu, &ids).unwrap();
    let mut enc = gpu.encoder();
    m.record_zero_grads(&mut enc);
    m.record_forward(&mut enc);
    m.record_backward(&mut enc);
    gpu.submit(enc);
    for p in m.params() {
        if p.name.contains("_lora.") {
            assert!(
                p.value.to_vec_f32(&gpu).unwrap().iter().all(|&v| v == 0.0),
                "{} starts at zero",
                p.name
            );
            assert!(
                p.grad.to_vec_f32(&gpu).unwrap().iter().all(|&v| v == 0.0),
                "{} gets no gradient",
                p.name
            );
        }
    }
    // The corrected default: A is drawn, B is zero, and B gets a gradient at once.
    let ckpt = load(&fixture()).unwrap();
    let m = Decoder::new(&gpu, &ckpt.config, b, t).unwrap();
    m.init_params(&gpu, 5).unwrap();
    m.set_batch(&gpu, &ids).unwrap();
    let mut enc = gpu.encoder();
    m.record_zero_grads(&mut enc);
    m.record_forward(&mut enc);
    m.record_backward(&mut enc);
    gpu.submit(enc);
    let b_grad = m
        .param("layers.0.attention.q_proj.B_lora.weight")
        .unwrap()
        .grad
        .to_vec_f32(&gpu)
        .unwrap();
    assert!(b_grad.iter().any(|&v| v != 0.0));
}

#[test]
fn the_studys_relora_configs_load() {
    for name in ["pico-relora-tiny", "pico-relora-small"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/{name}.yaml"));
        let c = TrainConfig::from_file(&path, &[]).unwrap();
        let m = c.model_config().unwrap();
        let r = m.relora.unwrap();
        assert_eq!((r.r, r.reset_frequency, r.scale()), (16, 2000, 2.0));
        assert_eq!(c.training.optimization.lr_scheduler, "relora_jagged_cosine");
    }
}

#[test]
fn export_merge_gives_a_plain_checkpoint_with_the_same_function() {
    let gpu = common::gpu();
    let out = temp("export");
    common::wgtrain(["export", "--merge", "--checkpoint"])
        .arg(fixture())
        .arg("--out")
        .arg(&out)
        .run_ok();
    let plain = load(&out).unwrap();
    assert!(plain.config.relora.is_none());
    assert!(!plain.tensors.keys().any(|k| k.contains("_lora")));
    plain.check_against(&plain.config.param_specs()).unwrap();
    let merged = read_safetensors(&fixture().join("merged.safetensors")).unwrap();
    common::assert_close(
        &plain.tensors["layers.1.swiglu.w_2.weight"].data,
        f32s(&merged, "layers.1.swiglu.w_2.weight"),
        1e-6,
        1e-6,
        "exported w_2",
    );
    // The plain model computes what the ReLoRA model computed.
    let relora = load(&fixture()).unwrap();
    let a = logits(&gpu, &plan(&gpu, &relora));
    let b = logits(&gpu, &plan(&gpu, &plain));
    common::assert_close(&b, &a, 1e-4, 1e-4, "logits of the exported model");
    // A plain checkpoint has nothing to merge.
    let again = common::wgtrain(["export", "--merge", "--checkpoint"])
        .arg(&out)
        .arg("--out")
        .arg(out.with_extension("again"))
        .run();
    assert!(!again.ok);
    assert!(again.stderr.contains("not a ReLoRA checkpoint"));
    std::fs::remove_dir_all(&out).ok();
}
