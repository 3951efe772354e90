//! The study's figures, as in the paper, each as SVG and PNG in the output directory.

use super::charts::{save_svg_and_png, BarChart, Line, LineChart};
use super::summary::{blimp, paloma, Grouped, OV_MEAN, W2};
use crate::error::Result;
use std::path::{Path, PathBuf};

/// Draw every figure into `out`; returns the file stems written (without extension).
pub fn draw_figures(g: &Grouped, out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut save = |name: String, svg: Result<String>| -> Result<()> {
        let stem = out.join(name);
        save_svg_and_png(&svg?, &stem)?;
        written.push(stem);
        Ok(())
    };
    for scale in &g.scales {
        let cells: Vec<_> = g.cells.iter().filter(|c| &c.scale == scale).collect();
        let resets: Vec<f64> = cells
            .iter()
            .flat_map(|c| c.runs[0].resets())
            .collect::<std::collections::BTreeSet<u64>>()
            .into_iter()
            .map(|t| t as f64)
            .collect();
        let lines = |f: &dyn Fn(&super::results::RunResult) -> Vec<(f64, f64)>| -> Vec<Line> {
            cells
                .iter()
                .map(|c| Line {
                    label: c.variant.clone(),
                    points: c.mean_series(f),
                    color: c.variant_index,
                    dashed: false,
                })
                .filter(|l| !l.points.is_empty())
                .collect()
        };
        save(
            format!("loss_{scale}"),
            LineChart {
                title: &format!("Training loss, {scale}: ReLoRA's resets marked"),
                x_label: "optimizer step",
                y_label: "training loss (nats/token)",
                lines: lines(&|r| r.series("loss")),
                markers: resets.clone(),
                marker_label: "ReLoRA reset",
                log_y: false,
            }
            .svg(),
        )?;
        for (kind, what) in [("weights", "weights"), ("update", "updates")] {
            let mut ls = lines(&|r| r.layer_mean(W2, kind, "per"));
            for l in &mut ls {
                l.label = format!("{} (w_2)", l.label);
            }
            if kind == "weights" {
                for mut l in lines(&|r| r.layer_mean(OV_MEAN, kind, "per")) {
                    l.label = format!("{} (OV, head mean)", l.label);
                    l.dashed = true;
                    ls.push(l);
                }
            }
            save(
                format!("per_{what}_{scale}"),
                LineChart {
                    title: &format!("Proportional effective rank of the {what}, {scale}"),
                    x_label: "optimizer step",
                    y_label: "PER (mean over layers)",
                    lines: ls,
                    markers: Vec::new(),
                    marker_label: "",
                    log_y: false,
                }
                .svg(),
            )?;
        }
        save(
            format!("condition_updates_{scale}"),
            LineChart {
                title: &format!("Condition number of the w_2 updates, {scale}"),
                x_label: "optimizer step",
                y_label: "condition number (mean over layers, log)",
                lines: lines(&|r| r.layer_mean(W2, "update", "condition_number")),
                markers: resets,
                marker_label: "ReLoRA reset",
                log_y: true,
            }
            .svg(),
        )?;
    }
    let bars = |f: &dyn Fn(&super::results::RunResult) -> Option<f64>| {
        g.variants
            .iter()
            .enumerate()
            .map(|(vi, v)| {
                let vals = g
                    .scales
                    .iter()
                    .map(|s| {
                        g.cell(s, v)
                            .and_then(|c| c.over_seeds(f))
                            .map_or(f64::NAN, |m| m.0)
                    })
                    .collect();
                (v.clone(), vi, vals)
            })
            .collect::<Vec<_>>()
    };
    save(
        "blimp".into(),
        BarChart {
            title: "BLiMP accuracy of the final weights (higher is better)",
            x_label: "model scale",
            y_label: "BLiMP (%)",
            groups: g.scales.clone(),
            series: bars(&blimp),
        }
        .svg(),
    )?;
    save(
        "paloma".into(),
        BarChart {
            title: "Paloma-style perplexity of the final weights (lower is better)",
            x_label: "model scale",
            y_label: "perplexity (mean over documents)",
            groups: g.scales.clone(),
            series: bars(&paloma),
        }
        .svg(),
    )?;
    Ok(written)
}
