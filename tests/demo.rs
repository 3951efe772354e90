//! The browser demo's session, run natively on the test adapter: training (plain and
//! ReLoRA) lowers the loss on real text, sampling gives text, the metrics are sane, and the
//! exported archive is a pico checkpoint that `wgtrain eval` and `wgtrain generate` read.

mod common;

use pollster::block_on;
use std::path::{Path, PathBuf};
use std::process::Command;
use wgtrain::demo::{DemoOptions, DemoSession, StepPoint};
use wgtrain::model::checkpoint;
use wgtrain::model::generate::SampleOptions;

fn shakespeare() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/tinyshakespeare/input.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the tests read ../shared/data)", path.display()));
    text.chars().take(30_000).collect()
}

fn mean_loss(points: &[StepPoint]) -> f32 {
    points.iter().map(|p| p.loss).sum::<f32>() / points.len() as f32
}

fn small_options() -> DemoOptions {
    DemoOptions {
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        seq: 32,
        batch: 4,
        steps: 80,
        warmup_steps: Some(20),
        ..Default::default()
    }
}

#[test]
fn plain_training_learns_and_exports_a_checkpoint_the_cli_reads() {
    let gpu = common::gpu();
    let text = shakespeare();
    let mut s = DemoSession::new(&gpu, &text, small_options()).unwrap();
    let (train, held) = s.token_counts();
    assert_eq!(train + held, text.len());
    assert!(held > 0);
    let before = block_on(s.heldout_loss(&gpu)).unwrap().unwrap();
    let mut points = Vec::new();
    for _ in 0..8 {
        points.extend(block_on(s.train(&gpu, 10)).unwrap());
    }
    assert_eq!(points.len(), 80);
    assert_eq!(s.step(), 80);
    assert!(points
        .iter()
        .enumerate()
        .all(|(i, p)| p.step == i as u64 + 1 && !p.reset));
    let first = points[0].loss;
    // Random init over 320 ids starts near ln 320 = 5.77.
    assert!((first - 320f32.ln()).abs() < 0.5, "first loss {first}");
    let last = mean_loss(&points[70..]);
    assert!(last < 0.7 * first, "loss {first} -> {last}");
    let after = block_on(s.heldout_loss(&gpu)).unwrap().unwrap();
    assert!(after < before - 1.0, "held-out loss {before} -> {after}");

    let sample = SampleOptions {
        max_new_tokens: 40,
        temperature: 0.8,
        top_k: 20,
        seed: 3,
    };
    let a = block_on(s.generate(&gpu, "ROMEO:", &sample)).unwrap();
    let b = block_on(s.generate(&gpu, "ROMEO:", &sample)).unwrap();
    assert!(!a.trim().is_empty(), "generated {a:?}");
    assert_eq!(a, b, "the same seed samples the same text");

    let m = block_on(s.matrix_metrics(&gpu, "layers.1.swiglu.w_2.weight")).unwrap();
    assert!(m.per > 0.0 && m.per <= 1.0, "{m:?}");
    assert!(
        m.condition_number >= 1.0 && m.condition_number.is_finite(),
        "{m:?}"
    );
    assert!(block_on(s.matrix_metrics(&gpu, "layers.0.ov_circuit")).is_ok());
    let err = block_on(s.matrix_metrics(&gpu, "layers.9.swiglu.w_2.weight")).unwrap_err();
    assert!(err.to_string().contains("no parameter"), "{err}");

    // The archive unpacks to a checkpoint holding exactly the trained weights.
    let dir = common::temp_path("demo_export");
    std::fs::create_dir_all(&dir).unwrap();
    let tar = block_on(s.checkpoint_tar(&gpu, "demo-ckpt", 1_700_000_000)).unwrap();
    std::fs::write(dir.join("demo.tar"), &tar).unwrap();
    let status = Command::new("tar")
        .args(["xf", "demo.tar"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let ckpt_dir = dir.join("demo-ckpt");
    let ckpt = checkpoint::load_checked(&ckpt_dir).unwrap();
    assert_eq!(ckpt.config, s.options().model_config().unwrap());
    let params = block_on(s.merged_params(&gpu)).unwrap();
    assert_eq!(ckpt.tensors.len(), params.len());
    for (name, shape, values) in &params {
        let t = ckpt.tensor(name).unwrap();
        assert_eq!(&t.shape, shape);
        assert_eq!(&t.data, values, "{name}");
    }
    check_cli_reads(&ckpt_dir, &dir, &text[text.len() - 3000..]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `wgtrain eval` scores the text with the archive's own tokenizer; `wgtrain generate` samples.
fn check_cli_reads(ckpt: &Path, scratch: &Path, text: &str) {
    let text_path: PathBuf = scratch.join("heldout.txt");
    std::fs::write(&text_path, text).unwrap();
    let out = common::wgtrain(["eval", "--checkpoint"])
        .arg(ckpt)
        .arg("--text")
        .arg(&text_path)
        .run_ok();
    let ppl: f64 = out
        .lines()
        .find_map(|l| l.split("perplexity").nth(1))
        .and_then(|r| {
            r.split_whitespace().find_map(|w| {
                w.trim_matches(|c: char| !c.is_ascii_digit() && c != '.')
                    .parse()
                    .ok()
            })
        })
        .unwrap_or_else(|| panic!("no perplexity in {out}"));
    // Trained bytes are far better than the uniform 320.
    assert!(ppl > 1.0 && ppl < 40.0, "perplexity {ppl}: {out}");
    let said = common::wgtrain([
        "generate",
        "--prompt",
        "KING:",
        "--max-new-tokens",
        "30",
        "--checkpoint",
    ])
    .arg(ckpt)
    .run_ok();
    assert!(said.trim().len() > "KING:".len(), "generated {said:?}");
}

#[test]
fn relora_training_resets_on_schedule_and_still_learns() {
    let gpu = common::gpu();
    let options = DemoOptions {
        relora: true,
        relora_r: 4,
        relora_reset_every: 20,
        steps: 60,
        ..small_options()
    };
    let mut s = DemoSession::new(&gpu, &shakespeare(), options).unwrap();
    let (trainable, total) = s.parameter_counts();
    assert!(trainable < total);
    let points = block_on(s.train(&gpu, 60)).unwrap();
    let resets: Vec<u64> = points.iter().filter(|p| p.reset).map(|p| p.step).collect();
    assert_eq!(resets, vec![21, 41]);
    let first = points[0].loss;
    let last = mean_loss(&points[50..]);
    assert!(last < 0.8 * first, "loss {first} -> {last}");
    // The merged model scores held-out text; the archive holds the plain weights only.
    assert!(block_on(s.heldout_loss(&gpu)).unwrap().unwrap().is_finite());
    let tar = block_on(s.checkpoint_tar(&gpu, "relora-demo", 0)).unwrap();
    let mut plain = s.config().clone();
    plain.relora = None;
    assert!(tar.len() > 4 * plain.num_params() && tar.len() < 4 * total);
    let m = block_on(s.matrix_metrics(&gpu, "layers.0.attention.q_proj.weight")).unwrap();
    assert!(m.per > 0.0 && m.per <= 1.0);
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let gpu = common::gpu();
    let err = DemoSession::new(&gpu, "too short", small_options())
        .err()
        .unwrap();
    assert!(err.to_string().contains("longer text"), "{err}");
    let err = DemoOptions::from_json(r#"{"d_model": 32, "layers": 3}"#).unwrap_err();
    assert!(err.to_string().contains("layers"), "{err}");
    let bad_heads = DemoOptions {
        n_heads: 3,
        ..small_options()
    };
    assert!(DemoSession::new(&gpu, &shakespeare(), bad_heads).is_err());
    let ok = DemoOptions::from_json(r#"{"relora": true, "relora_r": 4}"#).unwrap();
    assert!(ok.relora && ok.relora_r == 4 && ok.d_model == 64);
}
