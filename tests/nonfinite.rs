//! NaN and Inf during training: the device flags a non-finite loss or gradient every step and
//! applies no update; `training.on_nonfinite: stop` ends the run naming the step, the first
//! tensor affected and the data position (and the checkpoint to resume from); `skip` drops
//! the step and goes on, until `training.max_consecutive_nonfinite` in a row.
//! The NaN is injected into one gradient after a step's backward pass.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use wgtrain::metrics::log::{read_log, series};
use wgtrain::train::config::TrainConfig;
use wgtrain::train::trainer::Trainer;
use wgtrain::Error;

/// A two-layer model on one book; a constant learning rate, so a run's steps do not depend
/// on its length.
fn config(steps: u64, training_extra: &str) -> TrainConfig {
    let yaml = format!(
        r#"
model: {{ preset: tiny, d_model: 32, n_layers: 2, attention_n_heads: 4, attention_n_kv_heads: 2,
         activation_hidden_dim: 64, max_seq_len: 16 }}
training:
  max_steps: {steps}
  seed: 3
  optimization: {{ lr: 0.003, lr_scheduler: constant, lr_warmup_steps: 0 }}
  {training_extra}
data:
  dataset: {{ name: {:?} }}
  dataloader: {{ batch_size: 4 }}
  tokenizer: {{ name: bpe, vocab_size: 300 }}
checkpointing: {{ save_every_n_steps: 2 }}
evaluation: {{ metrics: [] }}
"#,
        common::alice()
    );
    TrainConfig::from_yaml(&yaml, &[]).unwrap()
}

const TARGET: &str = "layers.1.swiglu.w_2.weight";

fn weights(gpu: &wgtrain::Gpu, t: &Trainer) -> Vec<(String, Vec<f32>)> {
    pollster::block_on(t.model().read_params(gpu))
        .unwrap()
        .into_iter()
        .map(|(n, _, v)| (n, v))
        .collect()
}

fn no_stop() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

#[test]
fn stop_names_the_step_the_tensor_and_the_data_position_and_keeps_the_weights_finite() {
    let gpu = common::gpu();
    let run = common::temp_path("nonfinite-stop");
    let mut t = Trainer::new(&gpu, config(8, ""), &run).unwrap();
    t.show_progress = false;
    t.inject_nan_gradient(5, TARGET).unwrap();
    let err = t.run(&no_stop()).unwrap_err();
    let Error::TrainingStopped {
        cause, checkpoint, ..
    } = &err
    else {
        panic!("expected TrainingStopped, got {err}");
    };
    assert!(matches!(**cause, Error::NonFinite(_)), "{cause}");
    let msg = err.to_string();
    for want in [
        "step 5:",
        &format!("the gradient of {TARGET} is not finite"),
        "data position epoch 0, windows 16..",
        "update was not applied",
        "training.on_nonfinite: skip",
        "step_000004",
        "wgtrain train --resume",
    ] {
        assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
    }
    assert!(checkpoint
        .as_ref()
        .unwrap()
        .ends_with("checkpoints/step_000004"));
    // The flagged update was skipped on the device: no weight is NaN.
    for (name, w) in weights(&gpu, &t) {
        assert!(
            w.iter().all(|x| x.is_finite()),
            "{name} holds a non-finite value"
        );
    }
    std::fs::remove_dir_all(&run).ok();
}

#[test]
fn skip_leaves_the_weights_exactly_as_before_the_step() {
    let gpu = common::gpu();
    // Run A: 3 steps, the third one's gradient poisoned and skipped.
    let run_a = common::temp_path("nonfinite-skip-a");
    let mut a = Trainer::new(&gpu, config(3, "on_nonfinite: skip"), &run_a).unwrap();
    a.show_progress = false;
    a.inject_nan_gradient(3, TARGET).unwrap();
    let summary = a.run(&no_stop()).unwrap();
    assert_eq!(summary.steps, 3);
    assert_eq!(a.nonfinite_skipped(), 1);
    // Run B: the same first 2 steps, nothing injected.
    let run_b = common::temp_path("nonfinite-skip-b");
    let mut b = Trainer::new(&gpu, config(2, ""), &run_b).unwrap();
    b.show_progress = false;
    b.run(&no_stop()).unwrap();
    let (wa, wb) = (weights(&gpu, &a), weights(&gpu, &b));
    assert_eq!(wa.len(), wb.len());
    for ((name, x), (_, y)) in wa.iter().zip(&wb) {
        let same = x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
        assert!(same, "{name}: a skipped step changed the weights");
    }
    // The log says which step was skipped.
    let log = read_log(&run_a.join("metrics.jsonl")).unwrap();
    let skipped: Vec<u64> = series(&log, "nonfinite/skipped")
        .iter()
        .map(|s| s.0 as u64)
        .collect();
    assert_eq!(skipped, vec![3]);
    std::fs::remove_dir_all(&run_a).ok();
    std::fs::remove_dir_all(&run_b).ok();
}

#[test]
fn skip_stops_after_too_many_in_a_row_but_not_for_scattered_ones() {
    let gpu = common::gpu();
    let extra = "on_nonfinite: skip\n  max_consecutive_nonfinite: 2";
    // Steps 2 and 4: never two in a row, the run finishes.
    let run = common::temp_path("nonfinite-scattered");
    let mut t = Trainer::new(&gpu, config(5, extra), &run).unwrap();
    t.show_progress = false;
    t.inject_nan_gradient(2, TARGET).unwrap();
    t.inject_nan_gradient(4, "embedding_proj.weight").unwrap();
    assert_eq!(t.run(&no_stop()).unwrap().steps, 5);
    assert_eq!(t.nonfinite_skipped(), 2);
    std::fs::remove_dir_all(&run).ok();
    // Steps 3 and 4: two in a row, the run stops at 4.
    let run = common::temp_path("nonfinite-in-a-row");
    let mut t = Trainer::new(&gpu, config(6, extra), &run).unwrap();
    t.show_progress = false;
    t.inject_nan_gradient(3, TARGET).unwrap();
    t.inject_nan_gradient(4, TARGET).unwrap();
    let msg = t.run(&no_stop()).unwrap_err().to_string();
    assert!(
        msg.contains("step 4:") && msg.contains("2 non-finite steps in a row"),
        "{msg}"
    );
    assert!(
        msg.contains("step_000002") && msg.contains("--resume"),
        "{msg}"
    );
    std::fs::remove_dir_all(&run).ok();
}

#[test]
fn the_policy_is_checked() {
    let e = TrainConfig::from_yaml("training: { on_nonfinite: ignore }", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("training.on_nonfinite") && e.contains("skip"),
        "{e}"
    );
    let e = TrainConfig::from_yaml("training: { max_consecutive_nonfinite: 0 }", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("training.max_consecutive_nonfinite"), "{e}");
}
