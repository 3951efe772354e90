//! `wgbench suite`: every benchmark entry on one adapter, with the CPU's GEMM and PyTorch as
//! baselines measured in the same run, written as one JSON record (`wgbench report` merges
//! records) and printed as Markdown.

mod extras;
mod host;
mod kernels;
mod model;
mod pytorch;

use crate::{open_gpu, print_adapter};
use std::path::PathBuf;
use std::time::Instant;
use wgtrain::bench::record::{BaselineInfo, Entry, Record};
use wgtrain::bench::shapes::Size;
use wgtrain::bench::timing::Timer;
use wgtrain::{Gpu, Result};

pub struct SuiteArgs {
    pub backend: String,
    pub quick: bool,
    pub out: Option<PathBuf>,
    /// The Python that runs the PyTorch baseline; none skips it.
    pub python: Option<String>,
    /// Families to run (all when empty), e.g. `matmul,training step`.
    pub only: Vec<String>,
}

/// What the entry runners share.
pub struct Ctx<'g> {
    pub gpu: &'g Gpu,
    pub backend: String,
    pub timer: Timer<'g>,
    pub size: Size,
    pub torch: pytorch::Torch,
}

/// Collects entries, printing each as it lands (the run's progress).
pub struct Sink {
    pub entries: Vec<Entry>,
    started: Instant,
    only: Vec<String>,
}

impl Sink {
    /// Whether `family` is part of this run.
    pub fn wants(&self, family: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|f| f == family)
    }

    /// Run one entry; an error (a buffer too large for the adapter, a missing feature)
    /// becomes a skipped entry that says why, and the suite goes on.
    pub fn run(
        &mut self,
        family: &str,
        name: &str,
        variant: Option<&str>,
        f: impl FnOnce() -> Result<Entry>,
    ) {
        let entry = f().unwrap_or_else(|e| {
            let mut skipped = Entry::new(family, name).skipped(e.to_string());
            skipped.variant = variant.map(str::to_string);
            skipped
        });
        self.push(entry);
    }

    pub fn push(&mut self, e: Entry) {
        let what = match (&e.skipped, &e.rate) {
            (Some(why), _) => format!("skipped: {why}"),
            (None, Some(r)) => {
                let base: Vec<String> = e
                    .baselines
                    .iter()
                    .map(|b| format!("{:.3}x {}", b.ratio, b.name))
                    .collect();
                format!(
                    "{} {}{}",
                    wgtrain::bench::record::number(r.value),
                    r.unit,
                    if base.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", base.join(", "))
                    }
                )
            }
            (None, None) => String::new(),
        };
        println!(
            "[{:>7.1} s] {} | {}{} | {what}",
            self.started.elapsed().as_secs_f64(),
            e.family,
            e.name,
            e.variant
                .as_deref()
                .map_or(String::new(), |v| format!(" | {v}"))
        );
        self.entries.push(e);
    }
}

pub fn run(args: SuiteArgs) -> Result<()> {
    let size = if args.quick { Size::Quick } else { Size::Full };
    // Refuse an unwritable output before an hour of measuring.
    if let Some(out) = &args.out {
        host::check_writable(out)?;
    }
    let gpu = open_gpu(&args.backend)?;
    print_adapter(&gpu);
    let mut sink = Sink {
        entries: Vec::new(),
        started: Instant::now(),
        only: args.only.clone(),
    };
    let torch = pytorch::Torch::run(args.python.as_deref(), size, &sink);
    let mut baselines = vec![BaselineInfo {
        name: "cpu gemm".into(),
        available: true,
        detail: format!(
            "matrixmultiply 0.3 sgemm on the host CPU, {} threads",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ),
    }];
    baselines.extend(torch.info.iter().cloned());
    baselines.push(BaselineInfo {
        name: "cpu svd".into(),
        available: true,
        detail: "nalgebra 0.35 SVD, f64, singular values only, 1 thread".into(),
    });
    for b in &baselines {
        println!(
            "baseline {}: {}{}",
            b.name,
            if b.available { "" } else { "not available: " },
            b.detail
        );
    }
    let ctx = Ctx {
        gpu: &gpu,
        backend: args.backend.clone(),
        timer: Timer::new(&gpu)?,
        size,
        torch,
    };
    println!(
        "suite {}: timing from {}\n",
        size.name(),
        ctx.timer.source()
    );
    let header = Record {
        baselines,
        ..host::header(&gpu, size)
    };
    // What has been measured so far is kept in OUT.partial after every family, so a run cut
    // short (a time limit, a lost device) still leaves its figures; OUT appears at the end.
    let partial = args.out.as_ref().map(|o| o.with_extension("json.partial"));
    let families: [fn(&Ctx, &mut Sink); 6] = [
        kernels::matmul,
        kernels::attention,
        model::steps,
        model::evaluation,
        extras::metrics,
        extras::demo,
    ];
    for run_family in families {
        run_family(&ctx, &mut sink);
        if let Some(p) = &partial {
            let so_far = Record {
                entries: sink.entries.clone(),
                ..header.clone()
            };
            host::write_record(&so_far, p)?;
        }
    }
    let record = Record {
        entries: sink.entries,
        ..header
    };
    println!("\n{}", record.summary_markdown());
    if let Some(out) = &args.out {
        host::write_record(&record, out)?;
        if let Some(p) = &partial {
            let _ = std::fs::remove_file(p);
        }
        println!("record written to {}", out.display());
    }
    Ok(())
}
