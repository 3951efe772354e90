//! `wgtrain study --plan`: before anything trains, each run's memory and time.
//!
//! Memory is the estimate from the shapes that `wgtrain train` checks too
//! ([`MemoryEstimate`], stated per part so a reader can check it). It is compared with what
//! the adapter can hold ([`Gpu::memory_budget`]): the machine's memory for a CPU adapter
//! (lavapipe, llvmpipe), or what the user states; wgpu reports no memory size for GPUs, so
//! there the estimate is printed with the size it needs. Small runs are also planned
//! for real (`Decoder::planned`, the exact bytes) and timed over a few real steps, whose mean
//! gives the time estimate (training steps only; evaluations come on top).

use super::plan::PlannedRun;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::decoder::{Decoder, Purpose};
use crate::model::memory_estimate::{human_bytes as gib, MemoryEstimate};
use crate::train::trainer::Trainer;
use std::time::Instant;

/// On a CPU adapter, runs whose estimate is above this are not built for real or timed by
/// `--plan` (building them allocates that much of the machine's memory, and a step takes
/// minutes). On a GPU every run is built and timed.
const CPU_REAL_PLAN_LIMIT: u64 = 2 << 30;

const ADVICE: &str = "lower the micro-batch (raise training.optimization.\
                      gradient_accumulation_steps, which keeps the global batch) or the \
                      sequence length, or use a larger adapter";

/// One run's plan.
#[derive(Clone, Debug)]
pub struct RunBudget {
    pub name: String,
    pub params_bytes: u64,
    pub logits_bytes: u64,
    pub activations_bytes: u64,
    pub attention_bytes: u64,
    /// The sum of the parts above.
    pub estimate_bytes: u64,
    /// `Decoder::planned`'s own count, when the run was small enough to build.
    pub planned_bytes: Option<u64>,
    /// Seconds per optimizer step over a few real steps, and the whole run's training time.
    pub step_seconds: Option<f64>,
    pub total_seconds: Option<f64>,
    /// Why there is no time estimate, or why it does not fit.
    pub note: Option<String>,
    pub fits: Option<bool>,
}

/// The plan of `run`: the estimate, and for small runs the exact plan and measured steps.
pub fn budget_run(
    gpu: &Gpu,
    run: &PlannedRun,
    budget: Option<u64>,
    time_steps: u64,
) -> Result<RunBudget> {
    let cfg = run.config.model_config()?;
    let micro = run.config.micro_batch();
    let seq = cfg.max_seq_len;
    let parts = MemoryEstimate::training(&cfg, micro, seq);
    let estimate = parts.total();
    let MemoryEstimate {
        params_bytes,
        logits_bytes,
        activations_bytes,
        attention_bytes,
    } = parts;
    let name = run
        .dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into());
    let mut b = RunBudget {
        name,
        params_bytes,
        logits_bytes,
        activations_bytes,
        attention_bytes,
        estimate_bytes: estimate,
        planned_bytes: None,
        step_seconds: None,
        total_seconds: None,
        note: None,
        fits: budget.map(|m| estimate <= m),
    };
    if b.fits == Some(false) {
        b.note = Some(format!(
            "does not fit: about {} needed, the adapter holds {}; {ADVICE}",
            gib(estimate),
            gib(budget.unwrap_or(0))
        ));
        return Ok(b);
    }
    if budget.is_some() && estimate > CPU_REAL_PLAN_LIMIT {
        b.note = Some(format!(
            "needs about {}: not built or timed on a CPU adapter (--plan builds runs under {} \
             there; on a GPU every run is built and timed)",
            gib(estimate),
            gib(CPU_REAL_PLAN_LIMIT)
        ));
        return Ok(b);
    }
    let accum = run.config.training.optimization.gradient_accumulation_steps;
    match Decoder::planned(gpu, &cfg, micro, seq, Purpose::Training, accum) {
        Ok(decoder) => b.planned_bytes = Some(decoder.planned_bytes()),
        Err(e) => {
            b.fits = Some(false);
            b.note = Some(format!("does not fit this adapter: {e}; {ADVICE}"));
            return Ok(b);
        }
    }
    if time_steps == 0 {
        return Ok(b);
    }
    // A few real steps in a scratch directory: the first warms up, the rest are timed.
    let scratch =
        std::env::temp_dir().join(format!("wgtrain-plan-{}-{}", std::process::id(), b.name));
    let _ = std::fs::remove_dir_all(&scratch);
    let timed = (|| -> Result<f64> {
        let mut t = Trainer::new(gpu, run.config.clone(), &scratch)?;
        t.show_progress = false;
        t.train_step()?;
        gpu.poll_wait();
        let start = Instant::now();
        for _ in 0..time_steps {
            t.train_step()?;
        }
        gpu.poll_wait();
        Ok(start.elapsed().as_secs_f64() / time_steps as f64)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    match timed {
        Ok(s) => {
            b.step_seconds = Some(s);
            b.total_seconds = Some(s * run.steps as f64);
        }
        Err(e) => b.note = Some(format!("no measured step: {e}")),
    }
    Ok(b)
}

/// A table of the budgets, for the terminal.
pub fn budget_table(budgets: &[RunBudget], budget: Option<u64>) -> String {
    let mut s = format!(
        "adapter memory: {}\n{:<34} {:>10} {:>10} {:>11} {:>10} {:>10} {:>11} {:>10} {:>11}\n",
        budget.map_or("not reported by wgpu for GPUs".to_string(), gib),
        "run",
        "params",
        "logits",
        "activations",
        "attention",
        "estimate",
        "planned",
        "s/step",
        "train time"
    );
    for b in budgets {
        s += &format!(
            "{:<34} {:>10} {:>10} {:>11} {:>10} {:>10} {:>11} {:>10} {:>11}\n",
            b.name,
            gib(b.params_bytes),
            gib(b.logits_bytes),
            gib(b.activations_bytes),
            gib(b.attention_bytes),
            gib(b.estimate_bytes),
            b.planned_bytes.map_or("-".into(), gib),
            b.step_seconds.map_or("-".into(), |x| format!("{x:.3}")),
            b.total_seconds
                .map_or("-".into(), |x| format!("{:.1} min", x / 60.0)),
        );
        if let Some(n) = &b.note {
            s += &format!("    {n}\n");
        }
    }
    let total: f64 = budgets.iter().filter_map(|b| b.total_seconds).sum();
    if total > 0.0 {
        s += &format!(
            "training time of the timed runs: {:.1} min (evaluations and analysis come on top)\n",
            total / 60.0
        );
    }
    s
}
