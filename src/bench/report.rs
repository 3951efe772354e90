//! `wgbench report`: records from several machines and backends merged into one table per
//! family (one column per record), charts (SVG and PNG), and the generated block of
//! BENCHMARKS.md.

use super::record::{number, Entry, Record};
use crate::error::{Error, Result};
use crate::study::charts::{save_svg_and_png, BarChart};
use std::path::{Path, PathBuf};

/// The markers around the generated part of a Markdown file; the prose outside stays.
pub const BEGIN: &str = "<!-- wgbench report: generated from the records, do not edit -->";
pub const END: &str = "<!-- wgbench report: end -->";

/// Read the records at `paths` (each a `wgbench suite --out` file).
pub fn load(paths: &[PathBuf]) -> Result<Vec<Record>> {
    if paths.is_empty() {
        return Err(Error::Invalid(
            "wgbench report: give at least one record (a `wgbench suite --out` JSON file)".into(),
        ));
    }
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Error::Invalid(format!("reading {}: {e}", p.display())))?;
            Record::from_json(&text).map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))
        })
        .collect()
}

/// The families of `records` in first-seen order, each with its entry keys in first-seen order.
fn families(records: &[Record]) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for r in records {
        for e in &r.entries {
            let i = match out.iter().position(|(f, _)| *f == e.family) {
                Some(i) => i,
                None => {
                    out.push((e.family.clone(), Vec::new()));
                    out.len() - 1
                }
            };
            let row = (e.name.clone(), e.variant.clone().unwrap_or_default());
            if !out[i].1.contains(&row) {
                out[i].1.push(row);
            }
        }
    }
    out
}

fn find<'r>(r: &'r Record, family: &str, name: &str, variant: &str) -> Option<&'r Entry> {
    r.entries.iter().find(|e| {
        e.family == family && e.name == name && e.variant.as_deref().unwrap_or("") == variant
    })
}

/// One cell: the rate and the ratio to each baseline of the same run.
fn cell(e: Option<&Entry>) -> String {
    let Some(e) = e else {
        return "not run".into();
    };
    if let Some(why) = &e.skipped {
        return format!("skipped ({why})");
    }
    let mut s = match (&e.rate, &e.timing) {
        (Some(r), _) => format!("{} {}", number(r.value), r.unit),
        (None, Some(t)) => super::record::seconds(t.median_s),
        _ => String::new(),
    };
    for b in &e.baselines {
        s.push_str(&format!("; {}x {}", number(b.ratio), b.name));
    }
    s
}

/// The merged tables as Markdown; `charts` names the chart files (relative links) to show.
pub fn markdown(records: &[Record], charts: &[String]) -> String {
    let mut out = String::from("| record | adapter | backend | driver | suite | date | commit | baselines |\n|---|---|---|---|---|---|---|---|\n");
    for (i, r) in records.iter().enumerate() {
        let baselines: Vec<String> = r
            .baselines
            .iter()
            .map(|b| {
                if b.available {
                    format!("{}: {}", b.name, b.detail)
                } else {
                    format!("{}: not available ({})", b.name, b.detail)
                }
            })
            .collect();
        out.push_str(&format!(
            "| {} | {} ({}) on {} ({} cores) | {} | {} | {} | {} | {} | {} |\n",
            i + 1,
            r.adapter.name,
            r.adapter.device_type,
            r.host.cpu,
            r.host.cores,
            r.adapter.backend,
            r.adapter.driver_info,
            r.size,
            r.date,
            r.commit,
            baselines.join("; ")
        ));
    }
    out.push_str(
        "\nEach cell: our rate (median of the repeats), then our speed over each baseline \
         measured in the same run (above 1: we are faster).\n",
    );
    for chart in charts {
        out.push_str(&format!("\n![{chart}]({chart})\n"));
    }
    let columns: Vec<String> = records.iter().map(Record::column).collect();
    for (family, rows) in families(records) {
        out.push_str(&format!(
            "\n### {family}\n\n| entry | variant | {} |\n|---|---|{}\n",
            columns.join(" | "),
            "---|".repeat(columns.len())
        ));
        for (name, variant) in rows {
            let cells: Vec<String> = records
                .iter()
                .map(|r| cell(find(r, &family, &name, &variant)))
                .collect();
            out.push_str(&format!("| {name} | {variant} | {} |\n", cells.join(" | ")));
        }
    }
    out
}

/// Groups and series of a bar chart.
type Bars = (Vec<String>, Vec<(String, usize, Vec<f64>)>);

/// The bars of a chart over the entries `pick` selects, grouped by `group`, one series per
/// record, of what `value` reads from an entry.
fn bars(
    records: &[Record],
    pick: &dyn Fn(&Entry) -> bool,
    group: &dyn Fn(&Entry) -> String,
    value: &dyn Fn(&Entry) -> Option<f64>,
) -> Option<Bars> {
    let mut groups: Vec<String> = Vec::new();
    for r in records {
        for e in r.entries.iter().filter(|e| pick(e)) {
            let g = group(e);
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
    }
    if groups.is_empty() {
        return None;
    }
    let series = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let vals = groups
                .iter()
                .map(|g| {
                    r.entries
                        .iter()
                        .find(|e| pick(e) && group(e) == *g)
                        .and_then(value)
                        .unwrap_or(f64::NAN)
                })
                .collect();
            (r.column(), i, vals)
        })
        .collect();
    Some((groups, series))
}

fn rate(e: &Entry) -> Option<f64> {
    e.rate.as_ref().map(|r| r.value)
}

fn first_ratio(prefix: &'static str) -> impl Fn(&Entry) -> Option<f64> {
    move |e: &Entry| {
        e.baselines
            .iter()
            .find(|b| b.name.starts_with(prefix))
            .map(|b| b.ratio)
    }
}

/// Draw the report's charts into `dir`; returns the file stems written (without extension).
pub fn draw_charts(records: &[Record], dir: &Path) -> Result<Vec<String>> {
    let step = |e: &Entry| e.family == "training step" && e.skipped.is_none();
    let auto_mm = |e: &Entry| {
        e.family == "matmul" && e.variant.as_deref() == Some("auto") && e.skipped.is_none()
    };
    let forward_or_square =
        move |e: &Entry| auto_mm(e) && (e.name.starts_with("square") || e.name.contains("forward"));
    let short = |e: &Entry| e.name.split(" (").next().unwrap_or(&e.name).to_string();
    let step_name = |e: &Entry| {
        format!(
            "{} {}",
            e.variant.as_deref().unwrap_or(""),
            e.name.replace("pico-decoder ", "")
        )
    };
    let charts = [
        (
            "step_tokens_per_s",
            "Training step throughput (forward, backward, AdamW)",
            "tokens/s",
            bars(records, &step, &step_name, &rate),
        ),
        (
            "step_vs_pytorch",
            "Training step: our speed over PyTorch's in the same run",
            "ours / PyTorch",
            bars(records, &step, &step_name, &first_ratio("pytorch")),
        ),
        (
            "matmul_gflops",
            "Matmul (autotune's pick) GFLOP/s per shape",
            "GFLOP/s",
            bars(records, &forward_or_square, &short, &rate),
        ),
        (
            "matmul_vs_cpu_gemm",
            "Matmul (autotune's pick) over the CPU's GEMM in the same run",
            "ours / CPU GEMM",
            bars(
                records,
                &forward_or_square,
                &short,
                &first_ratio("cpu gemm"),
            ),
        ),
    ];
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Invalid(format!("creating {}: {e}", dir.display())))?;
    let mut written = Vec::new();
    for (stem, title, y_label, bars) in charts {
        let Some((groups, series)) = bars else {
            continue;
        };
        // A chart with no finite bar (e.g. no baseline anywhere) is left out.
        if series
            .iter()
            .all(|s| s.2.iter().all(|v| !v.is_finite() || *v <= 0.0))
        {
            continue;
        }
        let chart = BarChart {
            title,
            x_label: "",
            y_label,
            groups,
            series,
        };
        save_svg_and_png(&chart.svg()?, &dir.join(stem))?;
        written.push(stem.to_string());
    }
    Ok(written)
}

/// Write the report of `records` into `dir` (report.md, the charts); with `benchmarks`,
/// also replace the generated block of that Markdown file (between [`BEGIN`] and [`END`]),
/// with chart links relative to it. Returns the report's Markdown.
pub fn write(records: &[Record], dir: &Path, benchmarks: Option<&Path>) -> Result<String> {
    let stems = draw_charts(records, dir)?;
    let svg = |prefix: &str| -> Vec<String> {
        stems.iter().map(|s| format!("{prefix}{s}.svg")).collect()
    };
    let report = markdown(records, &svg(""));
    write_atomic(&dir.join("report.md"), &report)?;
    if let Some(md) = benchmarks {
        let base = match md.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let rel = relative(dir, base);
        let block = markdown(records, &svg(&format!("{rel}/")));
        let text = std::fs::read_to_string(md)
            .map_err(|e| Error::Invalid(format!("reading {}: {e}", md.display())))?;
        write_atomic(
            md,
            &replace_block(&text, &block)
                .map_err(|e| Error::Invalid(format!("{}: {e}", md.display())))?,
        )?;
    }
    Ok(report)
}

/// `text` with the block between the markers replaced by `block`.
pub fn replace_block(text: &str, block: &str) -> std::result::Result<String, String> {
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        return Err(format!(
            "no generated block: add the lines `{BEGIN}` and `{END}` where the tables go"
        ));
    };
    if e < b {
        return Err("the end marker comes before the begin marker".into());
    }
    Ok(format!(
        "{}{BEGIN}\n\n{}\n{}",
        &text[..b],
        block.trim_end(),
        &text[e..]
    ))
}

/// The generated block of `text`, as [`replace_block`] wrote it.
pub fn block_of(text: &str) -> Option<&str> {
    let b = text.find(BEGIN)? + BEGIN.len();
    let e = text.find(END)?;
    (e >= b).then(|| text[b..e].trim())
}

/// `dir` as a path relative to `base` where `dir` is inside it, else `dir` as given.
fn relative(dir: &Path, base: &Path) -> String {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (d, b) = (canon(dir), canon(base));
    d.strip_prefix(&b)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| dir.display().to_string())
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp-report");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::Invalid(format!("writing {}: {e}", path.display())))
}
