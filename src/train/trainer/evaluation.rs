//! The trainer's measurements of the current weights: the configured evaluations (Paloma,
//! held-out perplexity, BLiMP) and the learning-dynamics metrics.

use super::Trainer;
use crate::error::Result;
use std::path::Path;

impl Trainer<'_> {
    /// The configured evaluations (see [`Trainer::evaluate`]), written to the metrics log.
    pub fn evaluate_and_log(&mut self, bar: &indicatif::ProgressBar) -> Result<Vec<(String, f64)>> {
        let results = self.evaluate()?;
        if !results.is_empty() {
            let values: Vec<(&str, f64)> = results.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            self.log.write(self.step, &values)?;
            let line: Vec<String> = results.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
            bar.println(format!("step {}: {}", self.step, line.join(", ")));
        }
        Ok(results)
    }

    /// The configured evaluations on the current weights, on the no-dropout forward:
    /// `paloma` (`eval/paloma`, the mean of the held-out documents' perplexities by Paloma's
    /// rule, as `wgtrain eval --documents`; `eval/paloma_pooled`, the token-pooled perplexity;
    /// `eval/paloma_documents` and `eval/paloma_tokens`, the documents and tokens scored),
    /// `perplexity` (`eval/perplexity` and `eval/loss`, over held-out windows of the training
    /// data) and `blimp` (`eval/blimp`).
    pub fn evaluate(&mut self) -> Result<Vec<(String, f64)>> {
        let gpu = self.gpu;
        let mut out = Vec::new();
        if let Some(p) = &self.paloma {
            let r = pollster::block_on(crate::eval::perplexity_per_document(
                gpu,
                &self.engine.model,
                &p.documents,
                p.options,
            ))?;
            let scored = p.documents.len() - r.skipped;
            out.push(("eval/paloma".to_string(), r.mean_perplexity));
            out.push(("eval/paloma_pooled".to_string(), r.pooled.perplexity));
            out.push(("eval/paloma_documents".to_string(), scored as f64));
            out.push(("eval/paloma_tokens".to_string(), r.pooled.tokens as f64));
        }
        let metrics = &self.config.evaluation.metrics;
        if metrics.iter().any(|m| m == "perplexity") {
            if let Some(h) = &self.heldout {
                let windows = h.num_windows().min(
                    (self.config.evaluation.perplexity_batches * self.engine.model.batch) as u64,
                );
                let mut tokens = Vec::new();
                for i in 0..windows {
                    tokens.extend(h.window(i)?);
                }
                // Windows are scored as one stream cut at the model's length.
                let report = pollster::block_on(crate::eval::perplexity::perplexity(
                    gpu,
                    &self.engine.model,
                    &tokens,
                ))?;
                out.push(("eval/perplexity".to_string(), report.perplexity));
                out.push(("eval/loss".to_string(), report.mean_nll));
            }
        }
        if metrics.iter().any(|m| m == "blimp") {
            if let (Some(dir), Some(tok)) = (&self.config.evaluation.blimp_dir, &self.tokenizer) {
                let bos = tok.eos_id().unwrap_or(0);
                let encode = |s: &str| tok.encode(s).unwrap_or_default();
                let report = pollster::block_on(crate::eval::blimp::blimp(
                    gpu,
                    &self.engine.model,
                    &encode,
                    bos,
                    Path::new(dir),
                    self.config.evaluation.blimp_limit,
                ))?;
                out.push(("eval/blimp".to_string(), report.mean_accuracy));
            }
        }
        Ok(out)
    }

    /// Learning-dynamics metrics of the configured matrices, as in the study: the weights
    /// (for ReLoRA the effective `W + s·B·A`) and the updates (the last step's gradients; for
    /// ReLoRA the adapters' `s·B·A`). OV circuits (per head, and their mean) are measured for
    /// the weights only, as pico-analyze does. Keys: `dynamics/{matrix}/{weights|update}/{metric}`.
    pub fn dynamics(&mut self) -> Result<Vec<(String, f64)>> {
        use crate::metrics::dynamics::{
            default_matrices, is_ov_name, measure_matrices, model_matrix,
        };
        let gpu = self.gpu;
        let names = self
            .config
            .evaluation
            .dynamics_matrices
            .clone()
            .unwrap_or_else(|| default_matrices(&self.model_config));
        let updates: Vec<String> = names.iter().filter(|n| !is_ov_name(n)).cloned().collect();
        let mut kinds = vec![("weights", false, names)];
        if self.config.evaluation.dynamics_updates {
            kinds.push(("update", true, updates));
        }
        let mut out = Vec::new();
        for (kind, update, names) in kinds {
            let model = &self.engine.model;
            let measured = pollster::block_on(measure_matrices(
                gpu,
                &mut self.dynamics_plans,
                &self.model_config,
                &names,
                |name| model_matrix(gpu, model, name, update),
            ))?;
            for (name, r) in measured {
                let key = |metric: &str| format!("dynamics/{name}/{kind}/{metric}");
                out.push((key("per"), r.per as f64));
                out.push((key("condition_number"), r.condition_number as f64));
                out.push((key("frobenius"), r.frobenius as f64));
                out.push((key("spectral"), r.spectral as f64));
            }
        }
        Ok(out)
    }
}
