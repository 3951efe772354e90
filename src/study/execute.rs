//! Running a study: each planned run is an ordinary run directory trained by the ordinary
//! [`Trainer`]. A finished run (its `study_done.json` written) is skipped, an unfinished one
//! resumes from its latest checkpoint (bit for bit, as `wgtrain train --resume`), and a run
//! stopped before its first checkpoint starts again. One progress bar covers the whole study.

use super::plan::{PlannedRun, RUN_META};
use crate::error::{Error, Result};
use crate::eval::blimp::blimp;
use crate::gpu::Gpu;
use crate::train::trainer::{latest_checkpoint, Trainer};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Written when a run of the study is complete.
pub const RUN_DONE: &str = "study_done.json";
/// The config the run was generated with, for `wgtrain compare`.
pub const RUN_CONFIG: &str = "run_config.yaml";
/// Per-pair BLiMP log-probabilities of the final weights.
pub const BLIMP_PAIRS: &str = "blimp_pairs.json";

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunDone {
    pub steps: u64,
    /// Wall seconds of training and evaluation, summed over the sessions that ran it.
    pub wall_seconds: f64,
    pub adapter: String,
}

/// Per-pair BLiMP scores: `pairs[p][i] = (log p(good), log p(bad))` of paradigm `p`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BlimpPairs {
    pub paradigms: Vec<String>,
    pub pairs: Vec<Vec<(f64, f64)>>,
    pub mean_accuracy: f64,
}

/// How a study session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StudyProgress {
    pub finished: usize,
    pub skipped: usize,
    pub total: usize,
    /// Stopped (Ctrl-C or a step limit) before every run finished.
    pub interrupted: bool,
}

/// Options of a session.
#[derive(Clone, Default)]
pub struct RunOptions {
    pub show_progress: bool,
    /// Stop (saving checkpoints) after this many training steps in this session: how a test
    /// interrupts a study at a known point.
    pub stop_after_steps: Option<u64>,
    /// BLiMP pairs per paradigm for the final per-pair scores.
    pub blimp_pairs_per_paradigm: usize,
}

fn session_seconds_file(dir: &Path) -> std::path::PathBuf {
    dir.join("study_seconds.txt")
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Invalid(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::Invalid(format!("writing {}: {e}", path.display())))
}

/// Train every unfinished run of `runs`, in order; `stop` (Ctrl-C) ends the session after
/// the current step with a checkpoint, so the next session resumes there.
pub fn run_study(
    gpu: &Gpu,
    runs: &[PlannedRun],
    options: &RunOptions,
    stop: &Arc<AtomicBool>,
) -> Result<StudyProgress> {
    let total_steps: u64 = runs.iter().map(|r| r.steps).sum();
    let bar = if options.show_progress {
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} steps of the study, {elapsed} | ETA {eta} | {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> ");
        ProgressBar::new(total_steps).with_style(style)
    } else {
        ProgressBar::hidden()
    };
    let mut progress = StudyProgress {
        finished: 0,
        skipped: 0,
        total: runs.len(),
        interrupted: false,
    };
    let session_steps = Arc::new(AtomicU64::new(0));
    let mut done_before = 0u64;
    for (i, run) in runs.iter().enumerate() {
        let name = run
            .dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into());
        bar.set_prefix(format!("run {}/{} {name}", i + 1, runs.len()));
        if run.dir.join(RUN_DONE).exists() {
            progress.skipped += 1;
            done_before += run.steps;
            bar.set_position(done_before);
            continue;
        }
        if stop.load(Ordering::SeqCst) {
            progress.interrupted = true;
            break;
        }
        let finished = train_one(gpu, run, options, stop, &bar, done_before, &session_steps)?;
        if !finished {
            progress.interrupted = true;
            break;
        }
        progress.finished += 1;
        done_before += run.steps;
    }
    bar.finish_and_clear();
    Ok(progress)
}

/// Train (or resume) one run to its end and measure it; false when stopped first.
fn train_one(
    gpu: &Gpu,
    run: &PlannedRun,
    options: &RunOptions,
    stop: &Arc<AtomicBool>,
    bar: &ProgressBar,
    done_before: u64,
    session_steps: &Arc<AtomicU64>,
) -> Result<bool> {
    let started = Instant::now();
    let dir = &run.dir;
    let meta_path = dir.join(RUN_META);
    let checkpoint = latest_checkpoint(dir);
    let mut trainer = if checkpoint.join("trainer_state.json").exists() {
        Trainer::resume(gpu, &checkpoint, &[])?
    } else {
        // Nothing saved yet (or never started): start afresh.
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|e| Error::Invalid(format!("cannot clear {}: {e}", dir.display())))?;
        }
        let t = Trainer::new(gpu, run.config.clone(), dir)?;
        write_json(&meta_path, &run.meta)?;
        std::fs::write(dir.join(RUN_CONFIG), run.config.to_yaml())
            .map_err(|e| Error::Invalid(format!("writing {RUN_CONFIG}: {e}")))?;
        t
    };
    trainer.show_progress = false;
    // The trainer stops on its own flag: at the run's last step, or when the session must.
    let run_stop = Arc::new(AtomicBool::new(stop.load(Ordering::SeqCst)));
    {
        let (bar, stop, run_stop) = (bar.clone(), stop.clone(), run_stop.clone());
        let session_steps = session_steps.clone();
        let (limit, last) = (options.stop_after_steps, run.steps);
        trainer.on_step = Some(Box::new(move |step| {
            bar.set_position(done_before + step);
            let n = session_steps.fetch_add(1, Ordering::SeqCst) + 1;
            if limit.is_some_and(|l| n >= l) {
                stop.store(true, Ordering::SeqCst);
            }
            if step >= last || stop.load(Ordering::SeqCst) {
                run_stop.store(true, Ordering::SeqCst);
            }
        }));
    }
    bar.set_message("training");
    if trainer.step() < run.steps {
        // (Otherwise it finished training and stopped before its final measurements.)
        trainer.run(&run_stop)?;
    }
    trainer.on_step = None;
    let interrupted = trainer.step() < run.steps;
    let seconds_path = session_seconds_file(dir);
    let before: f64 = std::fs::read_to_string(&seconds_path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0.0);
    if interrupted {
        let total = before + started.elapsed().as_secs_f64();
        std::fs::write(&seconds_path, format!("{total}"))
            .map_err(|e| Error::Invalid(format!("{}: {e}", seconds_path.display())))?;
        return Ok(false);
    }
    bar.set_message("evaluating");
    trainer.evaluate_and_log(&ProgressBar::hidden())?;
    if let Some(pairs) = final_blimp_pairs(gpu, &trainer, options.blimp_pairs_per_paradigm)? {
        write_json(&dir.join(super::execute::BLIMP_PAIRS), &pairs)?;
    }
    let done = RunDone {
        steps: trainer.step(),
        wall_seconds: before + started.elapsed().as_secs_f64(),
        adapter: format!("{} ({})", gpu.adapter.name, gpu.adapter.backend),
    };
    write_json(&dir.join(RUN_DONE), &done)?;
    Ok(true)
}

/// The per-pair BLiMP scores of the trainer's current weights, when BLiMP is configured.
fn final_blimp_pairs(gpu: &Gpu, t: &Trainer, per_paradigm: usize) -> Result<Option<BlimpPairs>> {
    let (Some(dir), Some(tok)) = (&t.config.evaluation.blimp_dir, t.tokenizer()) else {
        return Ok(None);
    };
    if per_paradigm == 0 {
        return Ok(None);
    }
    let bos = tok.eos_id().unwrap_or(0);
    let encode = |s: &str| tok.encode(s).unwrap_or_default();
    let report = pollster::block_on(blimp(
        gpu,
        t.model(),
        &encode,
        bos,
        Path::new(dir),
        Some(per_paradigm),
    ))?;
    Ok(Some(BlimpPairs {
        paradigms: report.paradigms.iter().map(|p| p.name.clone()).collect(),
        pairs: report
            .paradigms
            .iter()
            .map(|p| p.pairs.iter().map(|s| (s.good, s.bad)).collect())
            .collect(),
        mean_accuracy: report.mean_accuracy,
    }))
}
