//! The study's results grouped by scale and variant, and the per-run figures every table and
//! finding is computed from (each defined here, once).

use super::results::{mean_at_common_steps, RunResult};
use super::stats::mean_sd;

/// The runs of one (scale, variant) cell, all seeds.
pub struct Cell<'a> {
    pub scale: String,
    pub variant: String,
    pub variant_index: usize,
    pub runs: Vec<&'a RunResult>,
}

/// The runs grouped, scales and variants in the order they first appear.
pub struct Grouped<'a> {
    pub scales: Vec<String>,
    pub variants: Vec<String>,
    pub cells: Vec<Cell<'a>>,
}

impl<'a> Grouped<'a> {
    pub fn new(runs: &'a [RunResult]) -> Grouped<'a> {
        let mut scales: Vec<String> = Vec::new();
        let mut variants: Vec<String> = Vec::new();
        for r in runs {
            if !scales.contains(&r.meta.scale) {
                scales.push(r.meta.scale.clone());
            }
            if !variants.contains(&r.meta.variant) {
                variants.push(r.meta.variant.clone());
            }
        }
        let mut cells = Vec::new();
        for s in &scales {
            for (vi, v) in variants.iter().enumerate() {
                let runs: Vec<&RunResult> = runs
                    .iter()
                    .filter(|r| &r.meta.scale == s && &r.meta.variant == v)
                    .collect();
                if !runs.is_empty() {
                    cells.push(Cell {
                        scale: s.clone(),
                        variant: v.clone(),
                        variant_index: vi,
                        runs,
                    });
                }
            }
        }
        Grouped {
            scales,
            variants,
            cells,
        }
    }

    pub fn cell(&self, scale: &str, variant: &str) -> Option<&Cell<'a>> {
        self.cells
            .iter()
            .find(|c| c.scale == scale && c.variant == variant)
    }

    /// The full-rank baseline: the first variant whose runs have no ReLoRA block.
    pub fn baseline(&self) -> Option<&str> {
        self.variants
            .iter()
            .find(|v| {
                self.cells
                    .iter()
                    .any(|c| &c.variant == *v && !c.runs[0].is_relora())
            })
            .map(String::as_str)
    }

    /// The ReLoRA variant the findings compare: the first one with a ReLoRA block.
    pub fn relora(&self) -> Option<&str> {
        self.variants
            .iter()
            .find(|v| {
                self.cells
                    .iter()
                    .any(|c| &c.variant == *v && c.runs[0].is_relora())
            })
            .map(String::as_str)
    }
}

impl Cell<'_> {
    /// Mean and spread over seeds of `f` (runs where it is defined).
    pub fn over_seeds(&self, f: impl Fn(&RunResult) -> Option<f64>) -> Option<(f64, f64)> {
        let xs: Vec<f64> = self.runs.iter().filter_map(|r| f(r)).collect();
        mean_sd(&xs)
    }

    /// The per-step mean over seeds of a series.
    pub fn mean_series(&self, f: impl Fn(&RunResult) -> Vec<(f64, f64)>) -> Vec<(f64, f64)> {
        let all: Vec<Vec<(f64, f64)>> = self.runs.iter().map(|r| f(r)).collect();
        mean_at_common_steps(&all)
    }
}

/// The final training loss: the mean of the logged losses over the last tenth of the steps
/// (at least 1), which smooths the step-to-step noise of one batch.
pub fn final_loss(r: &RunResult) -> Option<f64> {
    let loss = r.series("loss");
    let n = (loss.len() / 10).max(1);
    let tail = &loss[loss.len().checked_sub(n)?..];
    Some(tail.iter().map(|p| p.1).sum::<f64>() / tail.len() as f64)
}

/// The last evaluation's Paloma perplexity (per-document mean).
pub fn paloma(r: &RunResult) -> Option<f64> {
    r.last("eval/paloma")
}

pub fn paloma_pooled(r: &RunResult) -> Option<f64> {
    r.last("eval/paloma_pooled")
}

/// BLiMP (%) of the final weights on the study's fixed pairs: the mean over paradigms.
pub fn blimp(r: &RunResult) -> Option<f64> {
    r.blimp_pairs.as_ref().map(|b| 100.0 * b.mean_accuracy)
}

/// Every pair's correctness (good scored strictly above bad), paradigms in order.
pub fn blimp_correct(r: &RunResult) -> Option<Vec<bool>> {
    r.blimp_pairs
        .as_ref()
        .map(|b| b.pairs.iter().flatten().map(|(g, b)| g > b).collect())
}

/// Mean over the logged steps (and layers) of a dynamics metric of `matrix`.
pub fn mean_dynamics(r: &RunResult, matrix: &str, kind: &str, metric: &str) -> Option<f64> {
    mean_of(&r.layer_mean(matrix, kind, metric), |_| true)
}

/// Mean of the points whose step passes `keep`.
pub fn mean_of(points: &[(f64, f64)], keep: impl Fn(f64) -> bool) -> Option<f64> {
    let ys: Vec<f64> = points
        .iter()
        .filter(|p| keep(p.0) && p.1.is_finite())
        .map(|p| p.1)
        .collect();
    (!ys.is_empty()).then(|| ys.iter().sum::<f64>() / ys.len() as f64)
}

/// The mean loss jump at ReLoRA's resets: for each reset step `t`, the mean loss over steps
/// `t .. t + w` minus the mean over `t - w .. t`, averaged over `at`; evaluated on any run (a
/// full-rank run at the same steps gives the noise level to compare with).
pub fn loss_jump(r: &RunResult, at: &[u64], w: u64) -> Option<f64> {
    let loss = r.series("loss");
    let jumps: Vec<f64> = at
        .iter()
        .filter_map(|&t| {
            let t = t as f64;
            let after = mean_of(&loss, |s| s >= t && s < t + w as f64)?;
            let before = mean_of(&loss, |s| s >= t - w as f64 && s < t)?;
            Some(after - before)
        })
        .collect();
    (!jumps.is_empty()).then(|| jumps.iter().sum::<f64>() / jumps.len() as f64)
}

/// Names of the dynamics matrices the figures use, as the trainer logs them.
pub const W2: &str = "swiglu.w_2.weight";
pub const OV_MEAN: &str = "ov_circuit.weights.head_mean";
