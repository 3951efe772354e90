//! Data-parallel training under MPI (`cargo test --features mpi`, OpenMPI's `mpirun` on the
//! PATH): the weights after every step are bitwise the same for 1, 2 and 4 ranks; a run
//! continues on another number of ranks exactly; a killed or hung rank is named and the last
//! checkpoint survives; set-ups that cannot work are refused with the reason.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A small model, four micro-batches per step (so 1, 2 and 4 ranks all have work),
/// checkpoints at steps 2 and 4. `relora` adds adapters with a merge-and-reset at step 3.
fn yaml(relora: bool, accumulation: usize) -> String {
    let model_extra = if relora {
        ", relora: { r: 4, lora_alpha: 8, lora_dropout: 0.1, reset_frequency: 2 }"
    } else {
        ""
    };
    let schedule = if relora {
        "lr_scheduler: relora_jagged_cosine, restart_warmup_steps: 1, min_lr_ratio: 0.1"
    } else {
        "lr_scheduler: constant"
    };
    format!(
        r#"
model: {{ preset: tiny, d_model: 32, n_layers: 2, attention_n_heads: 4, attention_n_kv_heads: 2,
         activation_hidden_dim: 64, max_seq_len: 16 {model_extra} }}
training:
  max_steps: 4
  seed: 11
  optimization: {{ lr: 0.003, {schedule}, lr_warmup_steps: 2,
                   gradient_accumulation_steps: {accumulation} }}
data:
  dataset: {{ name: {:?}, holdout_fraction: 0.02 }}
  dataloader: {{ batch_size: 8 }}
  tokenizer: {{ name: bpe, vocab_size: 300 }}
checkpointing: {{ save_every_n_steps: 2 }}
evaluation: {{ metrics: [] }}
"#,
        common::alice()
    )
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One MPI job at a time: the jobs' ranks share this machine's cores, and the hang test's
/// short timeout must not be outlasted by a slow healthy rank.
static ONE_JOB: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_job() -> std::sync::MutexGuard<'static, ()> {
    ONE_JOB.lock().unwrap_or_else(|p| p.into_inner())
}

/// `mpirun -np N wgtrain ARGS` on the tests' backend, with `env` passed to every rank.
fn mpirun(n: usize, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("mpirun");
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        &n.to_string(),
    ]);
    for (k, v) in env {
        c.arg("-x").arg(format!("{k}={v}"));
    }
    c.arg(env!("CARGO_BIN_EXE_wgtrain")).args(args).args([
        "--quiet",
        "--backend",
        common::backend().name(),
    ]);
    c.env("LP_NUM_THREADS", "0");
    c.output()
        .expect("mpirun runs (apt-get install openmpi-bin)")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `mpirun -np N wgtrain train --config CONFIG --run-dir RUN EXTRA...` with `env`.
fn mpirun_train(
    n: usize,
    config: &Path,
    run: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut args = vec![
        "train",
        "--config",
        config.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    mpirun(n, &args, env)
}

fn train(n: usize, config: &Path, run: &Path) -> String {
    let out = mpirun_train(n, config, run, &[], &[]);
    assert!(out.status.success(), "{n} ranks failed:\n{}", text(&out));
    text(&out)
}

fn bytes(run: &Path, step: u64, file: &str) -> Vec<u8> {
    std::fs::read(run.join(format!("checkpoints/step_{step:06}/{file}"))).unwrap()
}

/// Asserts the weights and optimizer moments of `a` and `b` after `step` are bitwise equal.
fn assert_same(a: &Path, b: &Path, step: u64, what: &str) {
    for file in ["model.safetensors", "optimizer.safetensors"] {
        assert!(
            bytes(a, step, file) == bytes(b, step, file),
            "{what}: {file} after step {step} differs"
        );
    }
}

#[test]
fn one_two_and_four_ranks_give_the_same_bits() {
    let _one = one_job();
    for relora in [false, true] {
        let dir = common::temp_path(&format!("dp-equal-{relora}"));
        let config = write_config(&dir, &yaml(relora, 4));
        let runs: Vec<PathBuf> = [1, 2, 4]
            .iter()
            .map(|n| dir.join(format!("np{n}")))
            .collect();
        for (n, run) in [1, 2, 4].iter().zip(&runs) {
            train(*n, &config, run);
        }
        for step in [2, 4] {
            assert_same(
                &runs[0],
                &runs[1],
                step,
                &format!("relora {relora}: 1 vs 2 ranks"),
            );
            assert_same(
                &runs[0],
                &runs[2],
                step,
                &format!("relora {relora}: 1 vs 4 ranks"),
            );
        }
        // The training moved the weights, and the log records the exchange.
        assert!(bytes(&runs[0], 2, "model.safetensors") != bytes(&runs[0], 4, "model.safetensors"));
        let log = wgtrain::metrics::log::read_log(&runs[1].join("metrics.jsonl")).unwrap();
        let sent = wgtrain::metrics::log::series(&log, "dist/bytes_sent");
        let secs = wgtrain::metrics::log::series(&log, "dist/comm_seconds");
        assert_eq!(sent.len(), 4, "one exchange per step");
        assert!(sent.iter().all(|s| s.1 > 0.0) && secs.iter().all(|s| s.1 >= 0.0));
        assert_eq!(wgtrain::metrics::log::series(&log, "loss").len(), 4);
        // Only rank 0 writes: no log of another rank mixed in (one line per key and step).
        assert_eq!(wgtrain::metrics::log::series(&log, "dist/ranks").len(), 4);
    }
}

#[test]
fn a_run_of_two_ranks_continues_on_one_exactly() {
    let _one = one_job();
    let dir = common::temp_path("dp-resume");
    let config = write_config(&dir, &yaml(false, 4));
    let whole = dir.join("whole");
    train(2, &config, &whole);
    // The same run, stopped after its step-2 checkpoint and continued on one rank.
    let resumed = dir.join("resumed");
    common::copy_checkpoint(
        &whole.join("checkpoints/step_000002"),
        &resumed.join("checkpoints/step_000002"),
    );
    std::fs::copy(whole.join("tokenizer.json"), resumed.join("tokenizer.json")).unwrap();
    let ckpt = resumed.join("checkpoints/step_000002");
    let out = mpirun(1, &["train", "--resume", ckpt.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_same(&whole, &resumed, 4, "2 ranks vs 2 then 1");
}

/// A two-rank run of four steps with `fault` injected and waits bounded by `timeout` seconds,
/// which must fail: its run directory, what it printed and how long it took.
fn faulty_run(tag: &str, fault: &str, timeout: &str) -> (PathBuf, String, Duration) {
    let dir = common::temp_path(tag);
    let config = write_config(&dir, &yaml(false, 4));
    let run = dir.join("run");
    let t0 = Instant::now();
    let out = mpirun_train(
        2,
        &config,
        &run,
        &["--rank-timeout", timeout],
        &[("WGTRAIN_TEST_FAULT", fault)],
    );
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    (run, said, t0.elapsed())
}

#[test]
fn a_killed_rank_stops_the_run_and_its_checkpoint_survives() {
    let _one = one_job();
    let (run, said, took) = faulty_run("dp-killed", "1:die:3", "30");
    assert!(took < Duration::from_secs(120), "took {took:?}");
    assert!(said.contains("rank 1"), "the dead rank is named:\n{said}");
    assert!(
        said.contains("--resume") && said.contains("step_000002"),
        "the resume command is printed:\n{said}"
    );
    let ckpt = wgtrain::model::checkpoint::load(&run.join("checkpoints/step_000002")).unwrap();
    assert!(!ckpt.tensors.is_empty());
    assert!(!run.join("checkpoints/step_000004").exists());
}

#[test]
fn a_hung_rank_is_named_within_the_timeout() {
    let _one = one_job();
    let (run, said, took) = faulty_run("dp-hung", "1:hang:3", "5");
    assert!(took < Duration::from_secs(90), "took {took:?}");
    assert!(
        said.contains("rank 1 (host") && said.contains("has not reached step 3 within 5 s"),
        "{said}"
    );
    assert!(
        said.contains("mpirun -np 2 wgtrain train --resume"),
        "{said}"
    );
    wgtrain::model::checkpoint::load(&run.join("checkpoints/step_000002")).unwrap();
}

/// `mpirun -np 1 wgtrain A... : -np 1 wgtrain B...`: two ranks with their own arguments.
fn mpirun_two(a: &[&str], b: &[&str]) -> Output {
    let exe = env!("CARGO_BIN_EXE_wgtrain");
    let backend = ["--quiet", "--backend", common::backend().name()];
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np", "1", exe])
        .args(a)
        .args(backend)
        .args([":", "-np", "1", exe])
        .args(b)
        .args(backend)
        .env("LP_NUM_THREADS", "0");
    c.output().expect("mpirun runs")
}

#[test]
fn set_ups_that_cannot_work_are_refused_with_the_reason() {
    let _one = one_job();
    let dir = common::temp_path("dp-refused");
    // More ranks than micro-batches.
    let config = write_config(&dir.join("one"), &yaml(false, 1));
    let run = dir.join("too-many");
    let out = mpirun_train(2, &config, &run, &[], &[]);
    let said = text(&out);
    assert!(!out.status.success());
    assert!(
        said.contains("2 ranks, but a step has only 1 micro-batch"),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");

    // Ranks with different configs.
    let config = write_config(&dir.join("four"), &yaml(false, 4));
    let c = config.to_str().unwrap();
    let run = dir.join("mismatch");
    let r = run.to_str().unwrap();
    let out = mpirun_two(
        &["train", "--config", c, "--run-dir", r],
        &[
            "train",
            "--config",
            c,
            "--run-dir",
            r,
            "--set",
            "training.optimization.lr=0.01",
        ],
    );
    let said = text(&out);
    assert!(!out.status.success());
    assert!(
        said.contains("rank 1 (host") && said.contains("training config differs"),
        "{said}"
    );

    // A rank without an adapter.
    let run = dir.join("no-adapter");
    let r = run.to_str().unwrap();
    let out = mpirun_two(
        &["train", "--config", c, "--run-dir", r],
        &["train", "--config", c, "--run-dir", r, "--device", "7"],
    );
    let said = text(&out);
    assert!(!out.status.success());
    assert!(
        said.contains("rank 1 (host") && said.contains("--device 7"),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn a_signal_to_one_rank_stops_every_rank_at_the_same_step_with_a_checkpoint() {
    let _one = one_job();
    let dir = common::temp_path("dp-signal");
    let config = write_config(
        &dir,
        &yaml(false, 4).replace("max_steps: 4", "max_steps: 100000"),
    );
    let run = dir.join("run");
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
        .arg(env!("CARGO_BIN_EXE_wgtrain"))
        .args(["train", "--config", config.to_str().unwrap(), "--run-dir"])
        .arg(&run)
        .args(["--quiet", "--backend", common::backend().name()])
        .env("LP_NUM_THREADS", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let log = run.join("metrics.jsonl");
    let t0 = Instant::now();
    while std::fs::read_to_string(&log).map_or(0, |s| s.lines().count()) < 6 {
        assert!(t0.elapsed().as_secs() < 120, "training did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    // One rank only (mpirun's first child), not the launcher.
    let ranks = Command::new("pgrep")
        .args(["-P", &child.id().to_string()])
        .output()
        .unwrap();
    let ranks = String::from_utf8_lossy(&ranks.stdout).into_owned();
    let one = ranks
        .split_whitespace()
        .next()
        .expect("mpirun has rank processes");
    assert!(Command::new("kill")
        .args(["-TERM", one])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("resume with: mpirun -np 2 wgtrain train --resume"),
        "{said}"
    );
    let ckpt = wgtrain::train::trainer::latest_checkpoint(&run);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("trainer_state.json")).unwrap())
            .unwrap();
    let step = state["step"].as_u64().unwrap();
    assert!((1..100_000).contains(&step), "saved at step {step}");
}
