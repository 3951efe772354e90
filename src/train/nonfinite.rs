//! `training.on_nonfinite`: what the host does with a step the device flagged for a NaN or
//! Inf in its loss or gradients (the device has already skipped its update, adamw.wgsl).
//! `stop` ends the run at the first one; `skip` counts them and ends the run after
//! `training.max_consecutive_nonfinite` in a row.

use super::config::TrainingSection;
use super::data::DataState;
use crate::error::{Error, Result};

pub struct NonFinitePolicy {
    skip: bool,
    limit: u64,
    in_a_row: u64,
    total: u64,
}

impl NonFinitePolicy {
    pub fn new(training: &TrainingSection) -> NonFinitePolicy {
        NonFinitePolicy {
            skip: training.on_nonfinite == "skip",
            limit: training.max_consecutive_nonfinite,
            in_a_row: 0,
            total: 0,
        }
    }

    /// A finite step: the run of non-finite ones is over.
    pub fn finite(&mut self) {
        self.in_a_row = 0;
    }

    /// Non-finite steps skipped so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Step `step` was not finite, first at `source` (e.g. "the gradient of NAME"), with
    /// `loss`, after reading the data up to `position`: the count of skipped steps so far, or
    /// the error that ends the run.
    pub fn skipped(
        &mut self,
        step: u64,
        source: &str,
        loss: f32,
        position: Option<DataState>,
    ) -> Result<u64> {
        self.in_a_row += 1;
        self.total += 1;
        let position = position.map_or_else(
            || "unknown".to_string(),
            |p| {
                format!(
                    "epoch {}, windows {}.. of {}",
                    p.epoch, p.position, p.windows
                )
            },
        );
        let what = format!(
            "step {step}: {source} is not finite (NaN or Inf; loss {loss}, data position \
             {position}); its update was not applied"
        );
        if !self.skip {
            return Err(Error::NonFinite(format!(
                "{what}. Lower the learning rate, enable training.optimization.max_grad_norm, \
                 or set training.on_nonfinite: skip to drop such steps"
            )));
        }
        if self.in_a_row >= self.limit {
            return Err(Error::NonFinite(format!(
                "{what}; that is {} non-finite steps in a row \
                 (training.max_consecutive_nonfinite: {}), so the run stops. Lower the \
                 learning rate or enable training.optimization.max_grad_norm",
                self.in_a_row, self.limit
            )));
        }
        log::warn!("{what}; skipped (training.on_nonfinite: skip)");
        Ok(self.total)
    }
}
