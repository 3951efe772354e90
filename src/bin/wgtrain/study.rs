//! `wgtrain study` and `wgtrain compare`.

use super::open_gpu;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use wgtrain::study::budget::{budget_run, budget_table};
use wgtrain::study::execute::{run_study, RunOptions};
use wgtrain::study::file::StudyFile;
use wgtrain::study::plan::{plan_runs, prepare_documents};
use wgtrain::study::report::ReportInput;
use wgtrain::study::{out_dir, write_report};
use wgtrain::{Error, Result};

#[derive(clap::Args)]
pub struct StudyArgs {
    /// The study file (studies/NAME.yaml).
    #[arg(long)]
    config: PathBuf,
    /// Output directory (default: the file's `out`, else runs/study-NAME).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print each run's planned memory and a time estimate from measured steps, train nothing.
    #[arg(long)]
    plan: bool,
    /// Steps timed per run by --plan, after one warm-up step (0: memory only).
    #[arg(long, default_value_t = 2)]
    plan_steps: u64,
    /// Redraw the figures and report from the finished runs, train nothing.
    #[arg(long)]
    report_only: bool,
    /// Stop (with checkpoints) after this many training steps in this session; rerun to go on.
    #[arg(long, hide = true)]
    stop_after_steps: Option<u64>,
    #[arg(long)]
    quiet: bool,
    #[arg(long, default_value = "auto")]
    backend: String,
}

#[derive(clap::Args)]
pub struct CompareArgs {
    /// Finished run directories of studies (each holds study_run.json and study_done.json).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where the figures and report.md go.
    #[arg(long)]
    out: PathBuf,
    /// Steps after a reset for the loss-jump finding.
    #[arg(long, default_value_t = 5)]
    reset_window: u64,
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

pub fn study(args: StudyArgs) -> Result<()> {
    let study = StudyFile::from_path(&args.config)?;
    let out = out_dir(&study, args.out.as_deref());
    let documents = prepare_documents(&study, &out)?;
    let runs = plan_runs(&study, &out, documents.as_deref())?;
    let dirs: Vec<PathBuf> = runs.iter().map(|r| r.dir.clone()).collect();
    let input = ReportInput {
        study_name: &study.name,
        description: study.description.as_deref(),
        command: &command_line(),
        figures: &[],
        reset_window: study.reset_window,
        early_steps: study.early_steps,
    };
    if args.report_only {
        let path = write_report(&dirs, &out, &input)?;
        println!("report: {}", path.display());
        return Ok(());
    }
    let gpu = open_gpu(&args.backend)?;
    eprintln!(
        "study {}: {} runs ({} scales x {} variants x {} seeds) into {}; adapter {} ({})",
        study.name,
        runs.len(),
        study.scales.len(),
        study.variants.len(),
        study.seeds.len(),
        out.display(),
        gpu.adapter.name,
        gpu.adapter.backend
    );
    if args.plan {
        let budget = gpu.memory_budget();
        let mut budgets = Vec::new();
        for r in &runs {
            budgets.push(budget_run(&gpu, r, budget, args.plan_steps)?);
        }
        print!("{}", budget_table(&budgets, budget));
        let too_big: Vec<&str> = budgets
            .iter()
            .filter(|b| b.fits == Some(false))
            .map(|b| b.name.as_str())
            .collect();
        if !too_big.is_empty() {
            return Err(Error::Invalid(format!(
                "{} of {} runs do not fit this adapter ({}): see the advice above",
                too_big.len(),
                budgets.len(),
                too_big.join(", ")
            )));
        }
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nCtrl-C: finishing the step and saving a checkpoint (Ctrl-C again to quit at once)");
        });
    }
    let options = RunOptions {
        show_progress: !args.quiet,
        stop_after_steps: args.stop_after_steps,
        blimp_pairs_per_paradigm: study.blimp_pairs_per_paradigm,
    };
    let progress = run_study(&gpu, &runs, &options, &stop)?;
    if progress.interrupted {
        println!(
            "study stopped: {} of {} runs finished ({} were already); continue with: wgtrain \
             study --config {}{}",
            progress.finished + progress.skipped,
            progress.total,
            progress.skipped,
            args.config.display(),
            args.out
                .as_ref()
                .map_or(String::new(), |o| format!(" --out {}", o.display()))
        );
        return Ok(());
    }
    let path = write_report(&dirs, &out, &input)?;
    println!(
        "study finished: {} runs trained now, {} already done; report: {}",
        progress.finished,
        progress.skipped,
        path.display()
    );
    Ok(())
}

pub fn compare(args: CompareArgs) -> Result<()> {
    let input = ReportInput {
        study_name: "compare",
        description: None,
        command: &command_line(),
        figures: &[],
        reset_window: args.reset_window,
        early_steps: None,
    };
    let path = write_report(&args.runs, &args.out, &input)?;
    println!("report: {}", path.display());
    Ok(())
}
