//! Crash safety: a trainer killed with SIGKILL at random moments, 20 times (every other kill
//! aimed at a checkpoint write: sent a random few microseconds after a save begins), always leaves a latest checkpoint that loads, and resuming from it ends
//! bit for bit where an uninterrupted run ends. A disk that fills up while a checkpoint is
//! written gives a clear error and leaves the previous checkpoint intact.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wgtrain::train::trainer::{latest_checkpoint, Trainer};

/// A small model that saves a checkpoint after every step, so kills land in writes often.
fn run_yaml(steps: u64, save_every: u64) -> String {
    format!(
        r#"
model: {{ preset: tiny, d_model: 32, n_layers: 2, attention_n_heads: 4, attention_n_kv_heads: 2,
         activation_hidden_dim: 64, max_seq_len: 16 }}
training:
  max_steps: {steps}
  seed: 11
  optimization: {{ lr: 0.003, lr_scheduler: cosine, lr_warmup_steps: 5 }}
data:
  dataset: {{ name: {:?} }}
  dataloader: {{ batch_size: 4 }}
  tokenizer: {{ name: bpe, vocab_size: 300 }}
checkpointing: {{ save_every_n_steps: {save_every} }}
evaluation: {{ metrics: [] }}
"#,
        common::alice()
    )
}

/// The step of the last complete line of a metrics log (0 when there is none).
fn logged_step(run: &Path) -> u64 {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |i| &text[..i]);
    complete
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["step"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Whether a checkpoint directory is complete: its weights, optimizer state, trainer state
/// and tokenizer all read back.
fn check_checkpoint(dir: &Path) -> Result<u64, String> {
    use wgtrain::model::checkpoint;
    checkpoint::load_checked(dir).map_err(|e| e.to_string())?;
    checkpoint::read_safetensors(&dir.join("optimizer.safetensors")).map_err(|e| e.to_string())?;
    let state =
        std::fs::read_to_string(dir.join("trainer_state.json")).map_err(|e| e.to_string())?;
    let state: wgtrain::train::trainer::TrainerState =
        serde_json::from_str(&state).map_err(|e| e.to_string())?;
    wgtrain::train::tokenizer::Tokenizer::from_file(dir.join("tokenizer.json"))
        .map_err(|e| e.to_string())?;
    Ok(state.step)
}

/// Leftovers of a save that was interrupted: the staging and previous directories of the
/// atomic swap, or the `latest` pointer's temporary file.
fn interrupted_save(run: &Path) -> bool {
    std::fs::read_dir(run.join("checkpoints"))
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with('.'))
        })
        .unwrap_or(false)
}

fn train_cli(run: &Path, config: Option<&Path>) -> common::Cli {
    let cli = common::wgtrain(["train", "--quiet"]).test_backend();
    match config {
        Some(c) => cli.arg("--config").arg(c).arg("--run-dir").arg(run),
        None => cli.arg("--resume").arg(run),
    }
}

/// The loss and gradient norm of every step, in log order.
fn step_series(run: &Path) -> Vec<(u64, String, String)> {
    let log = wgtrain::metrics::log::read_log(&run.join("metrics.jsonl")).unwrap();
    log.iter()
        .filter(|r| r.contains_key("loss"))
        .map(|r| {
            (
                r["step"].as_u64().unwrap(),
                r["loss"].to_string(),
                r["grad_norm"].to_string(),
            )
        })
        .collect()
}

#[test]
fn twenty_kill_9s_damage_no_checkpoint_and_the_resumed_run_is_bitwise_identical() {
    const KILLS: usize = 20;
    const STEPS: u64 = 300;
    let root = common::temp_path("kill9");
    std::fs::create_dir_all(&root).unwrap();
    let config = root.join("config.yaml");
    std::fs::write(&config, run_yaml(STEPS, 1)).unwrap();

    // The uninterrupted reference.
    let reference = root.join("reference");
    train_cli(&reference, Some(&config)).run_ok();

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    eprintln!("kill timing seed {seed}");
    // Random whole numbers below `max` (milliseconds or microseconds).
    let mut random_ms = move |max: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % max
    };

    let run = root.join("killed");
    let (mut kills, mut in_saves, mut damaged) = (0, 0, Vec::new());
    while kills < KILLS {
        let fresh = !run.join("checkpoints/latest").exists();
        if fresh {
            let _ = std::fs::remove_dir_all(&run); // killed before its first checkpoint
        }
        let resumed_from = if fresh {
            0
        } else {
            logged_step(&run).min(STEPS)
        };
        let mut child = train_cli(&run, fresh.then_some(config.as_path())).spawn();
        // Kill while it trains: after a step past the one it resumed from, at a random moment.
        let t0 = Instant::now();
        let mut finished = false;
        while logged_step(&run) <= resumed_from.max(1) || !run.join("checkpoints/latest").exists() {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "training did not start"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            !finished,
            "the run finished before {KILLS} kills; raise STEPS"
        );
        if kills % 2 == 0 {
            // Aim at a checkpoint write: wait until a save's staging directory appears.
            let t1 = Instant::now();
            while !interrupted_save(&run) && t1.elapsed() < Duration::from_secs(5) {
                std::hint::spin_loop();
            }
            std::thread::sleep(Duration::from_micros(random_ms(3000)));
        } else {
            std::thread::sleep(Duration::from_millis(random_ms(120)));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        if interrupted_save(&run) {
            in_saves += 1;
        }
        let latest = latest_checkpoint(&run);
        if let Err(e) = check_checkpoint(&latest) {
            damaged.push(format!("kill {kills}: {}: {e}", latest.display()));
        }
    }
    eprintln!(
        "{kills} kills, {in_saves} inside a checkpoint write, {} damaged checkpoints",
        damaged.len()
    );
    assert!(
        damaged.is_empty(),
        "damaged checkpoints:\n{}",
        damaged.join("\n")
    );
    assert!(in_saves >= 1, "no kill landed inside a checkpoint write");

    // Resume to the end: the same weights, optimizer state, data position and log.
    train_cli(&run, None).run_ok();
    let (a, b) = (latest_checkpoint(&reference), latest_checkpoint(&run));
    assert!(a.ends_with(format!("step_{STEPS:06}")) && b.ends_with(format!("step_{STEPS:06}")));
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let same = std::fs::read(a.join(file)).unwrap() == std::fs::read(b.join(file)).unwrap();
        assert!(same, "{file} differs from the uninterrupted run's");
    }
    let state = |d: &Path| {
        let s: wgtrain::train::trainer::TrainerState =
            serde_json::from_str(&std::fs::read_to_string(d.join("trainer_state.json")).unwrap())
                .unwrap();
        serde_json::to_string(&s.data).unwrap()
    };
    assert_eq!(state(&a), state(&b), "data position");
    let (sa, sb) = (step_series(&reference), step_series(&run));
    assert_eq!(sa.len(), STEPS as usize);
    assert_eq!(
        sa, sb,
        "the resumed run's log differs (each step once, same values)"
    );
    std::fs::remove_dir_all(&root).ok();
}

/// Mount a tmpfs of `bytes` at `dir` (root only); false when the machine does not allow it.
fn mount_tmpfs(dir: &Path, bytes: u64) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Fill the file system of `dir` but for about `leave` bytes.
fn fill_disk(dir: &Path, leave: usize) {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    let mut written = 0usize;
    while f.write_all(&block).and_then(|()| f.flush()).is_ok() {
        written += block.len();
    }
    drop(f);
    std::fs::write(&filler, vec![0u8; written.saturating_sub(leave)]).unwrap();
}

#[test]
fn a_full_disk_while_saving_is_a_clear_error_and_the_previous_checkpoint_survives() {
    let mnt = common::temp_path("diskfull");
    if !mount_tmpfs(&mnt, 8 << 20) {
        // Only root may mount; CI runs as root, so there the test always runs.
        assert!(
            !is_root(),
            "running as root, yet a tmpfs could not be mounted"
        );
        eprintln!("NOT RUN: mounting a size-limited tmpfs needs root");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _unmount = Unmount(mnt.clone());
    let gpu = common::gpu();
    let run = mnt.join("run");
    let config = wgtrain::train::config::TrainConfig::from_yaml(&run_yaml(4, 2), &[]).unwrap();
    let mut t = Trainer::new(&gpu, config, &run).unwrap();
    t.show_progress = false;
    // After step 3, leave room for the log lines but not for step 4's checkpoint.
    let fill_dir = mnt.clone();
    t.on_step = Some(Box::new(move |step| {
        if step == 3 {
            fill_disk(&fill_dir, 16 << 10);
        }
    }));
    let err = t
        .run(&Arc::new(AtomicBool::new(false)))
        .unwrap_err()
        .to_string();
    assert!(err.to_lowercase().contains("no space left"), "{err}");
    assert!(
        err.contains("step_000002") && err.contains("--resume"),
        "{err}"
    );
    let ckpts = run.join("checkpoints");
    assert_eq!(latest_checkpoint(&run), ckpts.join("step_000002"));
    assert_eq!(check_checkpoint(&ckpts.join("step_000002")), Ok(2));
    // Nothing half-written is left behind.
    let names: Vec<String> = std::fs::read_dir(&ckpts)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("000004")), "{names:?}");
}
