//! SVG line plots of metrics over steps (plotters' SVG backend: no fonts or image codecs
//! to install). One figure per metric; several runs overlay in one figure.

use crate::error::{Error, Result};
use crate::metrics::log;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// One labelled line.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// The palette of every figure (the study's too), one colour per run or variant.
pub const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draw `series` against the step into an SVG file; `log_y` for quantities spanning decades
/// (condition numbers, perplexity).
pub fn line_plot(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<()> {
    let points = series.iter().flat_map(|s| s.points.iter().copied());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in points.filter(|p| p.1.is_finite() && (!log_y || p.1 > 0.0)) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return Err(Error::Invalid(format!("nothing to plot for {title}")));
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + y0.abs().max(1.0) * 0.1;
    }
    let pad = (y1 - y0) * 0.05;
    let err = |e: String| Error::Invalid(format!("plotting {}: {e}", path.display()));
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc("step")
                .y_desc(y_label)
                .draw()
                .map_err(|e| err(e.to_string()))?;
            for (i, s) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.1.is_finite() && (!log_y || p.1 > 0.0))
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                    .map_err(|e| err(e.to_string()))?
                    .label(s.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
            }
            if series.len() > 1 || !series[0].label.is_empty() {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| err(e.to_string()))?;
            }
        }};
    }
    if log_y {
        draw!(builder
            .build_cartesian_2d(x0..x1, (y0 * 0.9..y1 * 1.1).log_scale())
            .map_err(|e| err(e.to_string()))?);
    } else {
        draw!(builder
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(|e| err(e.to_string()))?);
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Plot every metric of the metrics logs `logs` (`metrics.jsonl` files, or run directories
/// holding one) into `out` (created), one `KEY.svg` per metric key (`/` becomes `_`), and
/// return the files written. With several logs, each figure overlays the runs, labelled by
/// their directory's name. Perplexities and condition numbers get a log scale.
pub fn plot_logs(logs: &[PathBuf], out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| Error::Invalid(format!("{}: {e}", out.display())))?;
    let mut runs = Vec::new();
    for l in logs {
        let path = if l.is_dir() {
            l.join("metrics.jsonl")
        } else {
            l.clone()
        };
        let label = path.parent().and_then(|p| p.file_name()).map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        runs.push((label, log::read_log(&path)?));
    }
    let mut keys: Vec<String> = runs
        .iter()
        .flat_map(|(_, recs)| recs.iter().flat_map(|r| r.keys().cloned()))
        .filter(|k| k != "step")
        .collect();
    keys.sort();
    keys.dedup();
    let mut written = Vec::new();
    for key in keys {
        let series: Vec<Series> = runs
            .iter()
            .map(|(label, recs)| Series {
                label: if runs.len() > 1 {
                    label.clone()
                } else {
                    String::new()
                },
                points: log::series(recs, &key),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let file = out.join(format!("{}.svg", key.replace('/', "_")));
        let log_y = key.contains("perplexity") || key.contains("condition");
        line_plot(&file, &key, &key, &series, log_y)?;
        written.push(file);
    }
    Ok(written)
}
