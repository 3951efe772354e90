//! Memory and device loss: the estimate a run is checked against stays close to the exact
//! plan; a run planned above the adapter's memory is refused before it allocates anything,
//! with the figures and what to change; a device lost during training ends the run with a
//! clear error naming the checkpoint to resume from.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use wgtrain::model::config::ModelConfig;
use wgtrain::model::decoder::Decoder;
use wgtrain::model::memory_estimate::MemoryEstimate;
use wgtrain::train::config::TrainConfig;
use wgtrain::train::optim::{AdamW, AdamWConfig};
use wgtrain::train::trainer::Trainer;
use wgtrain::{Error, GpuOptions};

fn yaml(batch: usize, accumulation: usize) -> String {
    format!(
        r#"
model: {{ preset: tiny, d_model: 64, n_layers: 2, attention_n_heads: 4, attention_n_kv_heads: 2,
         activation_hidden_dim: 128, max_seq_len: 64, vocab_size: 512 }}
training:
  max_steps: 4
  optimization: {{ lr: 0.002, gradient_accumulation_steps: {accumulation} }}
data:
  dataset: {{ name: {:?} }}
  dataloader: {{ batch_size: {batch} }}
  tokenizer: {{ name: bpe, vocab_size: 300 }}
checkpointing: {{ save_every_n_steps: 2 }}
evaluation: {{ metrics: [] }}
"#,
        common::alice()
    )
}

#[test]
fn the_estimate_stays_close_to_the_exact_plan() {
    let gpu = common::gpu();
    for (d, layers, heads, hidden, vocab, micro, seq) in [
        (64, 2, 4, 128, 512, 4, 64),
        (96, 3, 12, 384, 2048, 2, 128),
        (32, 1, 2, 64, 50304, 1, 32),
    ] {
        let cfg = ModelConfig {
            d_model: d,
            n_layers: layers,
            vocab_size: vocab,
            attention_n_heads: heads,
            attention_n_kv_heads: heads,
            activation_hidden_dim: hidden,
            max_seq_len: seq,
            norm_eps: 1e-6,
            position_emb_theta: 10000.0,
            relora: None,
        };
        let model = Decoder::with_accumulation(&gpu, &cfg, micro, seq, 1).unwrap();
        let optim = AdamW::new(&gpu, model.params(), AdamWConfig::default()).unwrap();
        let exact = model.planned_bytes() + optim.state_bytes();
        let estimate = MemoryEstimate::training(&cfg, micro, seq).total();
        let ratio = estimate as f64 / exact as f64;
        eprintln!("d {d} x {layers}, vocab {vocab}, {micro} x {seq}: estimate {estimate} B, plan {exact} B ({ratio:.2}x)");
        assert!(
            (0.8..=1.6).contains(&ratio),
            "estimate {estimate} B vs plan {exact} B ({ratio:.2}x)"
        );
    }
}

#[test]
fn a_run_above_the_adapters_memory_is_refused_with_the_figures_and_fits_with_accumulation() {
    // A stated memory between what micro-batches of 16 and of 4 need.
    let big = TrainConfig::from_yaml(&yaml(16, 1), &[]).unwrap();
    let cfg = big.model_config().unwrap();
    let cfg = ModelConfig {
        vocab_size: 512,
        ..cfg
    };
    let need16 = MemoryEstimate::training(&cfg, 16, 64).total();
    let need4 = MemoryEstimate::training(&cfg, 4, 64).total();
    assert!(need4 < need16);
    let gpu = common::gpu_with(GpuOptions {
        memory_bytes: Some((need4 + need16) / 2),
        ..Default::default()
    });
    let run = common::temp_path("memory-refused");
    let err = Trainer::new(&gpu, big, &run).err().expect("refused");
    assert!(matches!(err, Error::PlanTooLarge(_)), "{err}");
    let msg = err.to_string();
    for want in [
        "needs about",
        "logits",
        "activations",
        "as stated with --memory-gib",
        "gradient_accumulation_steps (now 1",
    ] {
        assert!(msg.contains(want), "missing {want:?}: {msg}");
    }
    // Nothing of a run was started: the advice (same global batch, 4 micro-batches) works in
    // the same directory.
    assert!(!run.join("metrics.jsonl").exists());
    let fits = TrainConfig::from_yaml(&yaml(16, 4), &[]).unwrap();
    let mut t = Trainer::new(&gpu, fits, &run).expect("fits with accumulation");
    t.show_progress = false;
    assert_eq!(t.run(&Arc::new(AtomicBool::new(false))).unwrap().steps, 4);
    std::fs::remove_dir_all(&run).ok();
}

#[test]
fn the_cli_refuses_a_run_above_memory_gib_and_a_bad_value() {
    let dir = common::temp_path("memory-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("c.yaml");
    std::fs::write(&config, yaml(16, 1)).unwrap();
    let out = common::wgtrain(["train", "--quiet", "--memory-gib", "0.001"])
        .test_backend()
        .arg("--config")
        .arg(&config)
        .arg("--run-dir")
        .arg(dir.join("run"))
        .run();
    let err = out.assert_failed();
    assert!(
        err.contains("needs about") && err.contains("1.0 MiB"),
        "{err}"
    );
    let out = common::wgtrain(["train", "--quiet", "--memory-gib=-2"])
        .test_backend()
        .arg("--config")
        .arg(&config)
        .run();
    let err = out.assert_failed();
    assert!(err.contains("--memory-gib -2"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_lost_device_ends_training_with_a_clear_error_and_the_checkpoint_to_resume() {
    let gpu = common::gpu();
    let run = common::temp_path("device-lost");
    let config = TrainConfig::from_yaml(&yaml(4, 1), &["training.max_steps=50".into()]).unwrap();
    let mut t = Trainer::new(&gpu, config, &run).unwrap();
    t.show_progress = false;
    let device = gpu.device.clone();
    t.on_step = Some(Box::new(move |step| {
        if step == 3 {
            device.destroy(); // what a driver reset or a removed GPU looks like to wgpu
        }
    }));
    let err = t.run(&Arc::new(AtomicBool::new(false))).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err.root(), Error::DeviceLost(_)), "{msg}");
    assert!(msg.contains("was lost"), "{msg}");
    assert!(
        msg.contains("step_000002") && msg.contains("--resume"),
        "{msg}"
    );
    // The checkpoint saved before the loss is intact.
    wgtrain::model::checkpoint::load_checked(&run.join("checkpoints/step_000002")).unwrap();
    std::fs::remove_dir_all(&run).ok();
}
