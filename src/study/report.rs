//! `report.md`: the setup, the results table in the paper's form, and the findings table,
//! every number computed from the runs (see [`super::summary`] for each definition).

use super::results::RunResult;
use super::stats::mcnemar_exact;
use super::summary::{
    blimp, blimp_correct, final_loss, loss_jump, mean_dynamics, mean_of, paloma, paloma_pooled,
    Grouped, OV_MEAN, W2,
};
use std::fmt::Write;

/// What the report needs beside the runs.
pub struct ReportInput<'a> {
    pub study_name: &'a str,
    pub description: Option<&'a str>,
    pub command: &'a str,
    pub figures: &'a [String],
    pub reset_window: u64,
    pub early_steps: Option<u64>,
}

fn fmt(x: Option<f64>, digits: usize) -> String {
    x.filter(|v| v.is_finite())
        .map_or_else(|| "n/a".to_string(), |v| format!("{v:.digits$}"))
}

fn fmt_sd(x: Option<(f64, f64)>, digits: usize, seeds: usize) -> String {
    match x {
        Some((m, sd)) if seeds > 1 => format!("{m:.digits$} ± {sd:.digits$}"),
        Some((m, _)) => format!("{m:.digits$}"),
        None => "n/a".into(),
    }
}

/// Three significant digits, scientific below 0.001.
fn p_value(p: f64) -> String {
    if p < 1e-3 {
        format!("{p:.2e}")
    } else {
        format!("{p:.3}")
    }
}

fn holds(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "**holds**",
        Some(false) => "**does not hold**",
        None => "not measured",
    }
}

/// The report's Markdown.
pub fn report_markdown(runs: &[RunResult], input: &ReportInput) -> String {
    let g = Grouped::new(runs);
    let mut md = String::new();
    let _ = writeln!(md, "# Study `{}`: full-rank vs ReLoRA\n", input.study_name);
    if let Some(d) = input.description {
        let _ = writeln!(md, "{}\n", d.trim());
    }
    // ---- setup
    let _ = writeln!(md, "## Setup\n");
    let wall: f64 = runs.iter().map(|r| r.done.wall_seconds).sum();
    let adapters: std::collections::BTreeSet<&str> =
        runs.iter().map(|r| r.done.adapter.as_str()).collect();
    let seeds: std::collections::BTreeSet<u64> = runs.iter().map(|r| r.meta.seed).collect();
    let _ = writeln!(md, "- report made by: `{}`", input.command);
    let _ = writeln!(
        md,
        "- adapter: {}",
        adapters.into_iter().collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(
        md,
        "- wall time: {:.1} min of training and evaluation over {} runs",
        wall / 60.0,
        runs.len()
    );
    let _ = writeln!(
        md,
        "- seeds: {}",
        seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        md,
        "\n| scale | d_model | layers | heads (kv) | hidden | vocab | params | steps | tokens/step | tokens |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for s in &g.scales {
        let Some(r) = g.cells.iter().find(|c| &c.scale == s).map(|c| c.runs[0]) else {
            continue;
        };
        let Ok(m) = r.config.model_config() else {
            continue;
        };
        let tps = r.config.data.dataloader.batch_size * m.max_seq_len;
        let steps = r.done.steps;
        let _ = writeln!(
            md,
            "| {s} | {} | {} | {} ({}) | {} | {} | {:.3} M | {steps} | {tps} | {} |",
            m.d_model,
            m.n_layers,
            m.attention_n_heads,
            m.attention_n_kv_heads,
            m.activation_hidden_dim,
            m.vocab_size,
            m.num_params() as f64 / 1e6,
            tps as u64 * steps
        );
    }
    let _ = writeln!(
        md,
        "\n| variant | ReLoRA | r | alpha | reset every | quirks |\n|---|---|---|---|---|---|"
    );
    for v in &g.variants {
        let Some(c) = g.cells.iter().find(|c| &c.variant == v) else {
            continue;
        };
        let m = c.runs[0].config.model_config().ok();
        match m.and_then(|m| m.relora) {
            Some(rl) => {
                let quirks: Vec<&str> = [
                    (rl.quirk_zero_init_a, "zero-init A"),
                    (rl.quirk_merge_without_scale, "merge without scale"),
                ]
                .iter()
                .filter(|q| q.0)
                .map(|q| q.1)
                .collect();
                let _ = writeln!(
                    md,
                    "| {v} | yes | {} | {} | {} | {} |",
                    rl.r,
                    rl.lora_alpha,
                    rl.reset_frequency,
                    if quirks.is_empty() {
                        "none".to_string()
                    } else {
                        quirks.join(", ")
                    }
                );
            }
            None => {
                let _ = writeln!(md, "| {v} | no (full rank) | | | | |");
            }
        }
    }
    // ---- results
    let _ = writeln!(md, "\n## Results (final weights)\n");
    let _ = writeln!(
        md,
        "BLiMP: mean accuracy over paradigms on each paradigm's first {} pairs (the same pairs \
         for every run). Paloma: mean of per-document perplexities of the held-out documents \
         (pooled over tokens beside it). Loss: mean training loss over the last tenth of the \
         steps.\n",
        runs.iter()
            .filter_map(|r| r.blimp_pairs.as_ref())
            .map(|b| b.pairs.first().map_or(0, Vec::len))
            .max()
            .unwrap_or(0)
    );
    let _ = writeln!(
        md,
        "| scale | variant | seeds | BLiMP (%) | Paloma ppl | pooled ppl | final loss | PER w_2 weights | PER w_2 updates | PER OV (head mean) |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for c in &g.cells {
        let n = c.runs.len();
        let _ = writeln!(
            md,
            "| {} | {} | {n} | {} | {} | {} | {} | {} | {} | {} |",
            c.scale,
            c.variant,
            fmt_sd(c.over_seeds(blimp), 2, n),
            fmt_sd(c.over_seeds(paloma), 2, n),
            fmt_sd(c.over_seeds(paloma_pooled), 2, n),
            fmt_sd(c.over_seeds(final_loss), 4, n),
            fmt_sd(
                c.over_seeds(|r| mean_dynamics(r, W2, "weights", "per")),
                4,
                n
            ),
            fmt_sd(
                c.over_seeds(|r| mean_dynamics(r, W2, "update", "per")),
                4,
                n
            ),
            fmt_sd(
                c.over_seeds(|r| mean_dynamics(r, OV_MEAN, "weights", "per")),
                4,
                n
            ),
        );
    }
    // ---- paired tests
    let _ = writeln!(md, "\n### BLiMP, paired over sentence pairs\n");
    let _ = writeln!(
        md,
        "Exact McNemar test per seed: `b` pairs only the first model gets right, `c` only the \
         second; two-sided p = min(1, 2·P(X ≤ min(b, c))), X ~ Binomial(b + c, 1/2).\n\n\
         | scale | comparison | seed | BLiMP first (%) | BLiMP second (%) | b | c | p |\n|---|---|---|---|---|---|---|---|"
    );
    for s in &g.scales {
        let base = g.baseline();
        for (i, a) in g.variants.iter().enumerate() {
            for b in &g.variants[i + 1..] {
                let (Some(ca), Some(cb)) = (g.cell(s, a), g.cell(s, b)) else {
                    continue;
                };
                // Each variant against the baseline, and the ReLoRA variants among themselves.
                let both_relora = ca.runs[0].is_relora() && cb.runs[0].is_relora();
                if Some(a.as_str()) != base && !both_relora {
                    continue;
                }
                for ra in &ca.runs {
                    let Some(rb) = cb.runs.iter().find(|r| r.meta.seed == ra.meta.seed) else {
                        continue;
                    };
                    let (Some(xa), Some(xb)) = (blimp_correct(ra), blimp_correct(rb)) else {
                        continue;
                    };
                    if xa.len() != xb.len() {
                        continue;
                    }
                    let (nb, nc) = super::stats::discordant(&xa, &xb);
                    let _ = writeln!(
                        md,
                        "| {s} | {a} vs {b} | {} | {} | {} | {nb} | {nc} | {} |",
                        ra.meta.seed,
                        fmt(blimp(ra), 2),
                        fmt(blimp(rb), 2),
                        p_value(mcnemar_exact(nb, nc))
                    );
                }
            }
        }
    }
    // ---- findings
    let _ = writeln!(md, "\n## Findings\n");
    findings(&mut md, &g, input);
    if !input.figures.is_empty() {
        let _ = writeln!(md, "\n## Figures\n");
        for f in input.figures {
            let _ = writeln!(md, "![{f}]({f}.png)\n");
        }
    }
    md
}

fn findings(md: &mut String, g: &Grouped, input: &ReportInput) {
    let (Some(base), Some(relora)) = (g.baseline(), g.relora()) else {
        let _ = writeln!(
            md,
            "The findings compare a full-rank variant with a ReLoRA variant; this study lacks one."
        );
        return;
    };
    let _ = writeln!(
        md,
        "`{relora}` against `{base}` at every scale (means over seeds). Each row says whether \
         the paper's direction is what was measured here; nothing is assumed.\n\n\
         | # | finding (paper) | measured here | holds here |\n|---|---|---|---|"
    );
    let pair = |s: &String| Some((g.cell(s, base)?, g.cell(s, relora)?));
    let pairs: Vec<_> = g
        .scales
        .iter()
        .filter_map(|s| Some((s, pair(s)?)))
        .collect();
    let mean = |c: &super::summary::Cell, f: &dyn Fn(&RunResult) -> Option<f64>| {
        c.over_seeds(f).map(|m| m.0)
    };
    // 1. worse on loss, perplexity and BLiMP
    let mut text = Vec::new();
    let mut all = Some(true);
    for (s, (b, r)) in &pairs {
        let dl = mean(r, &final_loss)
            .zip(mean(b, &final_loss))
            .map(|(x, y)| x - y);
        let dp = mean(r, &paloma).zip(mean(b, &paloma)).map(|(x, y)| x - y);
        let db = mean(r, &blimp).zip(mean(b, &blimp)).map(|(x, y)| x - y);
        text.push(format!(
            "{s}: Δloss {}, Δppl {}, ΔBLiMP {} pts",
            fmt(dl, 4),
            fmt(dp, 2),
            fmt(db, 2)
        ));
        let worse = match (dl, dp, db) {
            (Some(l), Some(p), Some(b)) => Some(l > 0.0 && p > 0.0 && b < 0.0),
            _ => None,
        };
        all = match (all, worse) {
            (Some(a), Some(w)) => Some(a && w),
            _ => None,
        };
    }
    let _ = writeln!(
        md,
        "| 1 | ReLoRA is worse than full-rank training on loss, perplexity and BLiMP | {} (ReLoRA minus full rank) | {} |",
        text.join("; "),
        holds(all)
    );
    // 2. the gap grows with model size
    let gaps: Vec<(String, Option<f64>)> = pairs
        .iter()
        .map(|(s, (b, r))| {
            let gap = mean(b, &blimp).zip(mean(r, &blimp)).map(|(x, y)| x - y);
            (s.to_string(), gap)
        })
        .collect();
    let grows = match (gaps.first(), gaps.last()) {
        // ReLoRA's deficit must exist at the largest scale and be larger there: a gap that
        // only shrinks towards zero from ReLoRA's lead is not the paper's finding.
        (Some((_, Some(a))), Some((_, Some(z)))) if gaps.len() > 1 => Some(*z > 0.0 && z > a),
        _ => None,
    };
    let _ = writeln!(
        md,
        "| 2 | The gap grows with model size | BLiMP gap (full rank minus ReLoRA), smallest to largest scale: {} | {} |",
        gaps.iter()
            .map(|(s, v)| format!("{s} {} pts", fmt(*v, 2)))
            .collect::<Vec<_>>()
            .join(", "),
        holds(grows)
    );
    // 3. lower PER of weights and updates
    let mut text = Vec::new();
    let mut all = Some(true);
    for (s, (b, r)) in &pairs {
        for (kind, matrix, label) in [
            ("weights", W2, "w_2 weights"),
            ("update", W2, "w_2 updates"),
            ("weights", OV_MEAN, "OV weights"),
        ] {
            let f = |x: &RunResult| mean_dynamics(x, matrix, kind, "per");
            let ratio = mean(r, &f).zip(mean(b, &f)).map(|(x, y)| x / y);
            text.push(format!("{s} {label} {}", fmt(ratio, 3)));
            all = match (all, ratio) {
                (Some(a), Some(q)) => Some(a && q < 1.0),
                _ => None,
            };
        }
    }
    let _ = writeln!(
        md,
        "| 3 | ReLoRA lowers the proportional effective rank of weights and updates | mean PER over training and layers, ratio ReLoRA / full rank: {} | {} |",
        text.join("; "),
        holds(all)
    );
    // 4. badly conditioned updates early in training
    let mut text = Vec::new();
    let mut all = Some(true);
    for (s, (b, r)) in &pairs {
        let steps = r.runs[0].done.steps;
        let early = input.early_steps.unwrap_or((steps / 4).max(1)) as f64;
        let f = |x: &RunResult| {
            mean_of(&x.layer_mean(W2, "update", "condition_number"), |t| {
                t <= early
            })
        };
        let ratio = mean(r, &f).zip(mean(b, &f)).map(|(x, y)| x / y);
        text.push(format!("{s} (steps ≤ {early}) {}", fmt(ratio, 2)));
        all = match (all, ratio) {
            (Some(a), Some(q)) => Some(a && q > 1.0),
            _ => None,
        };
    }
    let _ = writeln!(
        md,
        "| 4 | ReLoRA's updates are badly conditioned early in training | mean condition number of the w_2 updates early on, ratio ReLoRA / full rank: {} | {} |",
        text.join("; "),
        holds(all)
    );

    // 5. loss spikes at each reset
    let w = input.reset_window;
    let mut text = Vec::new();
    let mut all = Some(true);
    for (s, (b, r)) in &pairs {
        let resets = r.runs[0].resets();
        let jr = r.over_seeds(|x| loss_jump(x, &x.resets(), w)).map(|m| m.0);
        let jb = b.over_seeds(|x| loss_jump(x, &resets, w)).map(|m| m.0);
        text.push(format!(
            "{s}: {} resets, jump {} (full rank at the same steps {})",
            resets.len(),
            fmt(jr, 4),
            fmt(jb, 4)
        ));
        all = match (all, jr, jb) {
            (Some(a), Some(x), Some(y)) => Some(a && x > 0.0 && x > y),
            _ => None,
        };
    }
    let _ = writeln!(
        md,
        "| 5 | The loss spikes briefly at each reset | mean loss over the {w} steps from a reset minus the {w} before: {} | {} |",
        text.join("; "),
        holds(all)
    );
    let _ = writeln!(
        md,
        "\nOn finding 4: ReLoRA's update `s·B·A` has rank at most r, so its smallest singular \
         values are f32 rounding noise (about 1e-7 of the largest) and its condition number is \
         that of a rank-deficient matrix; the full-rank run's update is the gradient of `w_2`. \
         On finding 5: the full-rank run's loss change over the same steps is the noise level \
         a reset's jump is compared with. On finding 1: all three of loss, perplexity and \
         BLiMP must be worse at every scale for it to hold. On finding 2: the gap is ReLoRA's \
         BLiMP deficit; it holds only where full rank is ahead at the largest scale, by more \
         than at the smallest."
    );
}
