//! `wgtrain study`: the comparison the project exists for. A study file names model scales,
//! training variants (full-rank pico-decoder, pico-relora, pico-relora with the reference's
//! quirks, ...) and seeds; every combination is an ordinary run directory trained by the
//! ordinary trainer, evaluated (Paloma-style perplexity, BLiMP) and analysed (PER and
//! condition numbers of weights and updates) the same way; the figures and `report.md`,
//! with the paper's five findings checked one by one, are computed from those directories.
//!
//! - `file`: the study file;
//! - `plan`: the runs and their training configs;
//! - `budget`: `--plan`, the planned memory and time of each run before anything trains;
//! - `execute`: training (resuming, skipping what is finished) and the final measurements;
//! - `results`: a finished run read back from its directory;
//! - `summary`: the runs grouped, and the definition of every figure the report shows;
//! - `stats`: the exact McNemar test and the spread over seeds;
//! - `charts`, `figures`: the figures (SVG and PNG);
//! - `report`: `report.md`.

pub mod budget;
pub mod charts;
pub mod execute;
pub mod figures;
pub mod file;
pub mod plan;
pub mod report;
pub mod results;
pub mod stats;
pub mod summary;

use crate::error::{Error, Result};
use results::RunResult;
use std::path::{Path, PathBuf};

/// Where a study's outputs go: `--out`, else the file's `out`, else `runs/study-NAME`.
pub fn out_dir(study: &file::StudyFile, out: Option<&Path>) -> PathBuf {
    out.map(Path::to_path_buf)
        .or_else(|| study.out.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(format!("runs/study-{}", study.name)))
}

/// Draw the figures and write `report.md` into `out` from finished run directories;
/// returns the report's path.
pub fn write_report(
    run_dirs: &[PathBuf],
    out: &Path,
    input: &report::ReportInput,
) -> Result<PathBuf> {
    let runs: Vec<RunResult> = run_dirs
        .iter()
        .map(|d| RunResult::load(d))
        .collect::<Result<_>>()?;
    if runs.is_empty() {
        return Err(Error::Invalid("no finished runs to report on".into()));
    }
    std::fs::create_dir_all(out)
        .map_err(|e| Error::Invalid(format!("cannot create {}: {e}", out.display())))?;
    let grouped = summary::Grouped::new(&runs);
    let stems = figures::draw_figures(&grouped, out)?;
    let names: Vec<String> = stems
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let md = report::report_markdown(
        &runs,
        &report::ReportInput {
            figures: &names,
            ..*input
        },
    );
    let path = out.join("report.md");
    let tmp = out.join(".report.md.tmp");
    std::fs::write(&tmp, md)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| Error::Invalid(format!("writing {}: {e}", path.display())))?;
    Ok(path)
}
