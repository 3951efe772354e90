//! Training end to end on real text from ../shared/data: the loss falls, a resumed run is
//! bit-identical to an uninterrupted one, `wgtrain eval` reports perplexity and BLiMP, and
//! bad configs get messages naming the key.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use wgtrain::metrics::log::{read_log, series};
use wgtrain::train::config::TrainConfig;
use wgtrain::train::trainer::{latest_checkpoint, Trainer};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel)
}

fn temp(tag: &str) -> PathBuf {
    common::temp_path(&format!("train-{tag}"))
}

/// A small pico-decoder on one book of the shared corpus with a 512-id BPE tokenizer.
fn small_run_yaml(data: &Path, steps: u64, extra: &str) -> String {
    format!(
        r#"
model: {{ preset: tiny, d_model: 64, n_layers: 2, attention_n_heads: 4, attention_n_kv_heads: 2,
         activation_hidden_dim: 128, max_seq_len: 32 }}
training:
  max_steps: {steps}
  seed: 7
  optimization: {{ lr: 0.003, lr_scheduler: constant, lr_warmup_steps: 5 {extra} }}
data:
  dataset: {{ name: {data:?}, holdout_fraction: 0.02 }}
  dataloader: {{ batch_size: 8 }}
  tokenizer: {{ name: bpe, vocab_size: 512 }}
checkpointing: {{ save_every_n_steps: 1000 }}
evaluation: {{ metrics: [] }}
"#
    )
}

#[test]
fn loss_falls_on_the_shared_corpus() {
    let gpu = common::gpu();
    let run = temp("falls");
    let config = TrainConfig::from_yaml(&small_run_yaml(&common::alice(), 60, ""), &[]).unwrap();
    let mut t = Trainer::new(&gpu, config, &run).unwrap();
    t.show_progress = false;
    let summary = t.run(&Arc::new(AtomicBool::new(false))).unwrap();
    let losses = series(&read_log(&run.join("metrics.jsonl")).unwrap(), "loss");
    assert_eq!(losses.len(), 60);
    let first = losses[0].1;
    let last5 = losses[55..].iter().map(|l| l.1).sum::<f64>() / 5.0;
    assert!(
        last5 < 0.8 * first,
        "loss should fall below 80% of its start: {first} -> {last5}"
    );
    assert!(summary
        .checkpoint
        .unwrap()
        .join("model.safetensors")
        .exists());
    // A second fresh run into the same directory is refused rather than mixed in.
    let again = TrainConfig::from_yaml(&small_run_yaml(&common::alice(), 60, ""), &[]).unwrap();
    let err = Trainer::new(&gpu, again, &run).err().unwrap().to_string();
    assert!(
        err.contains("already holds a run") && err.contains("--resume"),
        "{err}"
    );
    std::fs::remove_dir_all(&run).ok();
}

#[test]
fn resume_is_bitwise_identical_to_an_uninterrupted_run() {
    let gpu = common::gpu();
    // Gradient accumulation over 2 micro-batches and clipping on: every piece of state counts.
    let yaml = small_run_yaml(
        &common::alice(),
        8,
        ", gradient_accumulation_steps: 2, max_grad_norm: 0.5",
    );
    let save4 = ["checkpointing.save_every_n_steps=4".to_string()];
    let straight = temp("straight");
    let mut a = Trainer::new(
        &gpu,
        TrainConfig::from_yaml(&yaml, &save4).unwrap(),
        &straight,
    )
    .unwrap();
    a.show_progress = false;
    a.run(&Arc::new(AtomicBool::new(false))).unwrap();

    // The second run starts from the first one's step-4 checkpoint, copied into a new run.
    let resumed = temp("resumed");
    let ck4 = straight.join("checkpoints/step_000004");
    let dst = resumed.join("checkpoints/step_000004");
    common::copy_checkpoint(&ck4, &dst);
    // Other data on resume would be silently ignored: refused, naming both.
    let other = ["data.dataset.name=\"elsewhere.txt\"".to_string()];
    let err = match Trainer::resume(&gpu, &dst, &other) {
        Ok(_) => panic!("other data on --resume must be refused"),
        Err(e) => e,
    };
    assert!(
        err.to_string().contains("elsewhere.txt") && err.to_string().contains("--resume"),
        "{err}"
    );
    let mut b = Trainer::resume(&gpu, &dst, &[]).unwrap();
    assert_eq!(b.step(), 4);
    b.show_progress = false;
    b.run(&Arc::new(AtomicBool::new(false))).unwrap();

    let read = |p: PathBuf| std::fs::read(p).unwrap();
    for f in ["model.safetensors", "optimizer.safetensors"] {
        assert!(
            read(straight.join("checkpoints/step_000008").join(f))
                == read(resumed.join("checkpoints/step_000008").join(f)),
            "{f} differs between the straight and the resumed run"
        );
    }
    let la = series(&read_log(&straight.join("metrics.jsonl")).unwrap(), "loss");
    let lb = series(&read_log(&resumed.join("metrics.jsonl")).unwrap(), "loss");
    assert_eq!(lb.len(), 4);
    for (x, y) in la[4..].iter().zip(&lb) {
        assert_eq!(x.0, y.0);
        assert_eq!(x.1.to_bits(), y.1.to_bits(), "loss at step {}", x.0);
    }
    assert_eq!(
        latest_checkpoint(&resumed),
        resumed.join("checkpoints/step_000008")
    );
    std::fs::remove_dir_all(&straight).ok();
    std::fs::remove_dir_all(&resumed).ok();
}

#[test]
fn cli_trains_then_eval_prints_perplexity_and_blimp() {
    let run = temp("cli");
    let config = run.with_extension("yaml");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(&config, small_run_yaml(&common::alice(), 6, "")).unwrap();
    let stdout = common::wgtrain(["train", "--quiet"])
        .test_backend()
        .arg("--config")
        .arg(&config)
        .arg("--run-dir")
        .arg(&run)
        .run_ok();
    assert!(stdout.contains("trained 6 steps"), "{stdout}");
    for f in [
        "metrics.jsonl",
        "plots/loss.svg",
        "plots/lr.svg",
        "tokenizer.json",
    ] {
        assert!(run.join(f).exists(), "missing {f}");
    }
    let ckpt = latest_checkpoint(&run);
    // A slice of WikiText-2's test set keeps this short on a CPU adapter.
    let text: String = std::fs::read_to_string(shared("wikitext-2/test.txt"))
        .unwrap()
        .chars()
        .take(4000)
        .collect();
    let text_file = run.join("wiki.txt");
    std::fs::write(&text_file, text).unwrap();
    let stdout = common::wgtrain(["eval"])
        .test_backend()
        .arg("--checkpoint")
        .arg(&ckpt)
        .arg("--text")
        .arg(&text_file)
        .arg("--blimp")
        .arg(shared("blimp"))
        .args(["--blimp-limit", "2", "--seq", "32"])
        .run_ok();
    assert!(stdout.contains("perplexity"), "{stdout}");
    assert!(stdout.contains("anaphor_gender_agreement"), "{stdout}");
    assert!(stdout.contains("mean of 67 paradigms"), "{stdout}");
    // Sampling from the trained checkpoint: deterministic for a seed, and real text.
    let generate = |seed: &str| {
        common::wgtrain(["generate"])
            .test_backend()
            .args([
                "--prompt",
                "Alice was",
                "--max-new-tokens",
                "12",
                "--seed",
                seed,
            ])
            .arg("--checkpoint")
            .arg(&ckpt)
            .run_ok()
    };
    let (a, b) = (generate("1"), generate("1"));
    assert_eq!(a, b, "same seed, same text");
    assert!(
        a.starts_with("Alice was") && a.trim().len() > "Alice was".len(),
        "{a}"
    );
    std::fs::remove_dir_all(&run).ok();
    std::fs::remove_file(&config).ok();
}

#[test]
fn bad_configs_name_the_key() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "training: { optimization: { lrr: 0.1 } }",
            &[],
            "unknown field `lrr`",
        ),
        ("training: { max_steps: 0 }", &[], "training.max_steps"),
        (
            "",
            &["training.optimization.lr=-1"],
            "training.optimization.lr",
        ),
        (
            "",
            &[
                "data.dataloader.batch_size=10",
                "training.optimization.gradient_accumulation_steps=4",
            ],
            "data.dataloader.batch_size",
        ),
        ("", &["training.optimization.lr_scheduler=\"wavy\""], "wavy"),
        ("", &["model.attention_n_heads=5"], "attention_n_heads"),
        ("model: [1, 2", &[], "not valid YAML"),
        ("", &["nonsense"], "section.key=value"),
        (
            "",
            &["training.optimization.optimizer=sgd"],
            "training.optimization.optimizer",
        ),
    ];
    for (yaml, overrides, needle) in cases {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let err = TrainConfig::from_yaml(yaml, &overrides)
            .and_then(|c| {
                // The scheduler name is checked when the run is planned.
                c.training
                    .optimization
                    .lr_scheduler
                    .parse::<wgtrain::train::schedule::Schedule>()?;
                Ok(c)
            })
            .err()
            .unwrap_or_else(|| panic!("{yaml:?} {overrides:?} should be refused"));
        assert!(
            err.to_string().contains(needle),
            "{yaml:?} {overrides:?}: {err}"
        );
    }
    // pico's own demo-style config is accepted as it is.
    let pico = "data:\n  dataloader:\n    batch_size: 32\ncheckpointing:\n  run_name: demo\n  save_every_n_steps: 50\n  save_to_hf: false\n  learning_dynamics:\n    batch_size: 16\nmodel:\n  d_model: 96\n  activation_hidden_dim: 384\nevaluation:\n  paloma:\n    batch_size: 32\nmonitoring:\n  save_to_wandb: false\n  logging:\n    log_every_n_steps: 10\ntraining:\n  max_steps: 100\n  optimization:\n    lr: 0.001\n    lr_warmup_steps: 30\n";
    let c = TrainConfig::from_yaml(pico, &[]).unwrap();
    assert_eq!(c.training.max_steps, 100);
    assert_eq!(c.model_config().unwrap().d_model, 96);
}

#[test]
fn missing_data_and_resume_dirs_are_clear_errors() {
    let gpu = common::gpu();
    let config =
        TrainConfig::from_yaml("", &["data.dataset.name=/no/such/data.txt".into()]).unwrap();
    let err = Trainer::new(&gpu, config, &temp("nodata"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("/no/such/data.txt") && err.contains("not found"),
        "{err}"
    );
    let err = Trainer::resume(&gpu, Path::new("/no/such/checkpoint"), &[])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a wgtrain training checkpoint"), "{err}");
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_exits_cleanly() {
    let run = temp("ctrlc");
    std::fs::create_dir_all(&run).unwrap();
    let config = run.join("config.yaml");
    std::fs::write(&config, small_run_yaml(&common::alice(), 100_000, "")).unwrap();
    let child = common::wgtrain(["train", "--quiet"])
        .test_backend()
        .arg("--config")
        .arg(&config)
        .arg("--run-dir")
        .arg(&run)
        .spawn();
    // Wait until a few steps are logged, then interrupt as a terminal's Ctrl-C would.
    let log = run.join("metrics.jsonl");
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(&log).map_or(0, |s| s.lines().count()) < 3 {
        assert!(t0.elapsed().as_secs() < 120, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // While it trains, the run directory is its own: a second trainer is refused, by pid.
    let e = wgtrain::train::run_lock::RunLock::acquire(&run)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("in use by another trainer") && e.contains(&child.id().to_string()),
        "{e}"
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stdout = common::CliOutput::from(child.wait_with_output().unwrap()).assert_ok();
    assert!(
        stdout.contains("resume with: wgtrain train --resume"),
        "{stdout}"
    );
    let ckpt = latest_checkpoint(&run);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("trainer_state.json")).unwrap())
            .unwrap();
    let step = state["step"].as_u64().unwrap();
    assert!((3..100_000).contains(&step), "saved at step {step}");
    assert!(ckpt.join("model.safetensors").exists() && ckpt.join("optimizer.safetensors").exists());
    std::fs::remove_dir_all(&run).ok();
}

#[test]
fn a_killed_trainer_leaves_no_stuck_lock() {
    let run = temp("kill9-lock");
    std::fs::create_dir_all(&run).unwrap();
    let config = run.join("config.yaml");
    std::fs::write(&config, small_run_yaml(&common::alice(), 100_000, "")).unwrap();
    let mut child = common::wgtrain(["train", "--quiet"])
        .test_backend()
        .arg("--config")
        .arg(&config)
        .arg("--run-dir")
        .arg(&run)
        .spawn();
    let log = run.join("metrics.jsonl");
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(&log).map_or(0, |s| s.lines().count()) < 2 {
        assert!(t0.elapsed().as_secs() < 120, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(wgtrain::train::run_lock::RunLock::acquire(&run).is_err());
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    // The lock file is still there, but nobody holds it: the directory is free again.
    assert!(run.join(wgtrain::train::run_lock::LOCK_FILE).exists());
    let lock = wgtrain::train::run_lock::RunLock::acquire(&run).unwrap();
    drop(lock);
    std::fs::remove_dir_all(&run).ok();
}
