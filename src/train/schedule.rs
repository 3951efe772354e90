//! Learning-rate schedules as pure functions of the step.
//!
//! **Step counting.** `step` is the number of optimizer updates already taken: 0 for the
//! first update. This is how pico counts: it wraps its lambda in
//! `torch.optim.lr_scheduler.LambdaLR` and calls `scheduler.step()` after each
//! `optimizer.step()`, so the update that Adam numbers `t` (1, 2, ...) uses the learning rate
//! at `step = t - 1`. In particular, with a warmup the very first update has learning rate 0.
//!
//! Each schedule function returns the multiplier of the peak learning rate (`lr` in pico's
//! config); [`LrSchedule::lr_at`] multiplies it in. Divisions by a length use `max(1, len)`,
//! as pico does, so zero-length warmups and decays are well defined.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// pico's `linear_with_warmup` (from Hugging Face's `get_linear_schedule_with_warmup`):
///
/// - `step < warmup_steps`: `step / max(1, warmup_steps)`, rising linearly from 0;
/// - otherwise: `max(0, (max_steps - step) / max(1, max_steps - warmup_steps))`, falling
///   linearly from 1 at `step = warmup_steps` to 0 at `step = max_steps`, and 0 after.
pub fn linear_with_warmup(step: u64, warmup_steps: u64, max_steps: u64) -> f64 {
    if step < warmup_steps {
        return warmup(step, warmup_steps);
    }
    let left = max_steps.saturating_sub(step) as f64;
    let span = max_steps.saturating_sub(warmup_steps).max(1) as f64;
    (left / span).max(0.0)
}

/// Linear warmup, then a half cosine from 1 down to `min_lr_ratio`:
///
/// - `step < warmup_steps`: `step / max(1, warmup_steps)`;
/// - otherwise, with `progress = min(1, (step - warmup_steps) / max(1, max_steps -
///   warmup_steps))`: `min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * progress)) / 2`,
///   which is 1 at `step = warmup_steps` and `min_lr_ratio` from `step = max_steps` on.
pub fn cosine(step: u64, warmup_steps: u64, max_steps: u64, min_lr_ratio: f64) -> f64 {
    if step < warmup_steps {
        return warmup(step, warmup_steps);
    }
    let span = max_steps.saturating_sub(warmup_steps).max(1) as f64;
    let progress = ((step - warmup_steps) as f64 / span).min(1.0);
    min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// pico-relora's `relora_jagged_cosine` (the original ReLoRA's cosine schedule with
/// multiple warmups):
///
/// - `step < warmup_steps`: `step / max(1, warmup_steps)`;
/// - in the first `restart_warmup_steps` steps of every `restart_every` period after the
///   first (`step >= restart_every` and `step % restart_every < restart_warmup_steps`), a
///   ramp from 0: `(step % restart_every) / max(1, restart_warmup_steps)` times the cosine
///   value at the ramp's end (`k * restart_every + restart_warmup_steps`), so the curve
///   rejoins the cosine without a jump;
/// - otherwise [`cosine`]`(step, warmup_steps, max_steps, min_lr_ratio)`.
///
/// With ReLoRA's resets at update `t = k * restart_every + 1` (`step = k * restart_every`),
/// every reset starts a ramp from 0.
pub fn relora_jagged_cosine(
    step: u64,
    warmup_steps: u64,
    max_steps: u64,
    min_lr_ratio: f64,
    restart_every: u64,
    restart_warmup_steps: u64,
) -> f64 {
    if step < warmup_steps {
        return warmup(step, warmup_steps);
    }
    let every = restart_every.max(1);
    let into = step % every;
    if step >= every && into < restart_warmup_steps {
        let ramp_end = step - into + restart_warmup_steps;
        let target = cosine(ramp_end, warmup_steps, max_steps, min_lr_ratio);
        return into as f64 / restart_warmup_steps.max(1) as f64 * target;
    }
    cosine(step, warmup_steps, max_steps, min_lr_ratio)
}

/// A constant 1, after an optional linear warmup (`step / max(1, warmup_steps)` while
/// `step < warmup_steps`; `warmup_steps = 0` means no warmup).
pub fn constant(step: u64, warmup_steps: u64) -> f64 {
    if step < warmup_steps {
        warmup(step, warmup_steps)
    } else {
        1.0
    }
}

fn warmup(step: u64, warmup_steps: u64) -> f64 {
    step as f64 / warmup_steps.max(1) as f64
}

/// The schedule kinds, named as in pico's `training.optimization.lr_scheduler`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    LinearWithWarmup,
    Cosine,
    Constant,
    /// pico-relora's schedule; its restart settings live in [`LrSchedule`].
    ReloraJaggedCosine,
}

impl Schedule {
    /// Every accepted name, in the order error messages list them.
    pub const NAMES: [&'static str; 4] = [
        "linear_with_warmup",
        "cosine",
        "constant",
        "relora_jagged_cosine",
    ];

    pub fn name(self) -> &'static str {
        match self {
            Schedule::LinearWithWarmup => "linear_with_warmup",
            Schedule::Cosine => "cosine",
            Schedule::Constant => "constant",
            Schedule::ReloraJaggedCosine => "relora_jagged_cosine",
        }
    }

    /// The multiplier of the peak learning rate at `step` (see the module docs for counting).
    /// `min_lr_ratio` is used by [`Schedule::Cosine`] only.
    pub fn multiplier(
        self,
        step: u64,
        warmup_steps: u64,
        max_steps: u64,
        min_lr_ratio: f64,
    ) -> f64 {
        match self {
            Schedule::LinearWithWarmup => linear_with_warmup(step, warmup_steps, max_steps),
            Schedule::Cosine => cosine(step, warmup_steps, max_steps, min_lr_ratio),
            Schedule::Constant => constant(step, warmup_steps),
            // Without restart settings the jagged schedule is its underlying cosine; use
            // `LrSchedule::lr_at` for the restarts.
            Schedule::ReloraJaggedCosine => cosine(step, warmup_steps, max_steps, min_lr_ratio),
        }
    }
}

impl FromStr for Schedule {
    type Err = Error;

    fn from_str(name: &str) -> Result<Schedule> {
        match name {
            "linear_with_warmup" => Ok(Schedule::LinearWithWarmup),
            "cosine" => Ok(Schedule::Cosine),
            "constant" => Ok(Schedule::Constant),
            "relora_jagged_cosine" | "jagged_cosine" => Ok(Schedule::ReloraJaggedCosine),
            other => Err(Error::Invalid(format!(
                "unknown lr_scheduler '{other}': choose one of {}",
                Schedule::NAMES.join(", ")
            ))),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A schedule with its settings: the learning rate of every step.
#[derive(Clone, Debug, PartialEq)]
pub struct LrSchedule {
    pub schedule: Schedule,
    /// The peak learning rate (pico's `lr`).
    pub lr: f64,
    pub warmup_steps: u64,
    pub max_steps: u64,
    /// Floor of [`Schedule::Cosine`] as a fraction of `lr`.
    pub min_lr_ratio: f64,
    /// [`Schedule::ReloraJaggedCosine`]: restart period (ReLoRA's reset_frequency) and the
    /// length of the ramp after each restart.
    pub restart_every: u64,
    pub restart_warmup_steps: u64,
}

impl LrSchedule {
    /// The learning rate of the update at `step` (0 for the first update; Adam's `t = step + 1`).
    pub fn lr_at(&self, step: u64) -> f64 {
        if self.schedule == Schedule::ReloraJaggedCosine {
            return self.lr
                * relora_jagged_cosine(
                    step,
                    self.warmup_steps,
                    self.max_steps,
                    self.min_lr_ratio,
                    self.restart_every,
                    self.restart_warmup_steps,
                );
        }
        self.lr
            * self
                .schedule
                .multiplier(step, self.warmup_steps, self.max_steps, self.min_lr_ratio)
    }
}

#[cfg(test)]
mod jagged_tests {
    use super::*;

    /// Values of the study's schedule (warmup 2000, resets every 2000, ramps of 100,
    /// min ratio 0.1, 20,000 steps), computed independently with Python's math module.
    #[test]
    fn jagged_cosine_matches_a_reference_table() {
        let s = LrSchedule {
            schedule: "relora_jagged_cosine".parse().unwrap(),
            lr: 1.0,
            warmup_steps: 2000,
            max_steps: 20000,
            min_lr_ratio: 0.1,
            restart_every: 2000,
            restart_warmup_steps: 100,
        };
        for (step, want) in [
            (0, 0.0),
            (1000, 0.5),
            (1999, 0.9995),
            (2000, 0.0),
            (2050, 0.4999657314),
            (2099, 0.9899321482),
            (2100, 0.9999314628),
            (3000, 0.9931634889),
            (4000, 0.0),
            (4010, 0.0970111192),
            (11000, 0.55),
            (19999, 0.1000000069),
            (20000, 0.0),
        ] {
            let got = s.lr_at(step);
            assert!((got - want).abs() < 1e-9, "step {step}: {got} vs {want}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, what: &str) {
        assert!(
            (got - want).abs() <= 1e-12,
            "{what}: got {got}, want {want}"
        );
    }

    #[test]
    fn linear_with_warmup_table() {
        // warmup 4, max 12: up over steps 0..4, down from 1 at step 4 to 0 at step 12.
        let table = [
            (0, 0.0),
            (1, 0.25),
            (3, 0.75),
            (4, 1.0),
            (5, 7.0 / 8.0),
            (8, 0.5),
            (11, 1.0 / 8.0),
            (12, 0.0),
            (20, 0.0),
        ];
        for (step, want) in table {
            close(
                linear_with_warmup(step, 4, 12),
                want,
                &format!("step {step}"),
            );
        }
        // pico's baseline: warmup 2500, decay to 0 at 200,000.
        close(linear_with_warmup(1250, 2500, 200_000), 0.5, "pico 1250");
        close(linear_with_warmup(2500, 2500, 200_000), 1.0, "pico 2500");
        close(
            linear_with_warmup(20_000, 2500, 200_000),
            180_000.0 / 197_500.0,
            "pico 20000",
        );
        // No warmup: starts at 1.
        close(linear_with_warmup(0, 0, 10), 1.0, "no warmup");
        close(linear_with_warmup(5, 0, 10), 0.5, "no warmup, half way");
        // Warmup longer than the run: pico's max(1, ...) guard gives 0 after the warmup.
        close(
            linear_with_warmup(7, 10, 5),
            0.7,
            "warmup beyond max, warming",
        );
        close(
            linear_with_warmup(10, 10, 5),
            0.0,
            "warmup beyond max, after",
        );
    }

    #[test]
    fn cosine_table() {
        let half = 0.1 + 0.9 * 0.5;
        let table = [
            (0, 0.0),
            (1, 0.5),
            (2, 1.0),
            (7, half), // progress 1/2
            (
                4,
                0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * 0.2).cos()),
            ), // progress 1/5
            (12, 0.1),
            (100, 0.1),
        ];
        for (step, want) in table {
            close(cosine(step, 2, 12, 0.1), want, &format!("step {step}"));
        }
        close(cosine(5, 0, 10, 0.0), 0.5, "no warmup, floor 0, half way");
        close(cosine(0, 0, 10, 0.0), 1.0, "no warmup, start");
    }

    #[test]
    fn constant_table() {
        for (step, want) in [(0, 0.0), (1, 1.0 / 3.0), (3, 1.0), (1000, 1.0)] {
            close(constant(step, 3), want, &format!("step {step}"));
        }
        close(constant(0, 0), 1.0, "no warmup");
    }

    #[test]
    fn names_parse_and_others_are_refused() {
        for name in Schedule::NAMES {
            let s: Schedule = name.parse().unwrap();
            assert_eq!(s.name(), name);
            assert_eq!(s.to_string(), name);
        }
        let err = "cosine_with_restarts"
            .parse::<Schedule>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown lr_scheduler 'cosine_with_restarts'")
                && err.contains("linear_with_warmup, cosine, constant"),
            "{err}"
        );
    }

    #[test]
    fn lr_schedule_scales_the_multiplier() {
        let s = LrSchedule {
            schedule: "linear_with_warmup".parse().unwrap(),
            lr: 3e-4,
            warmup_steps: 2500,
            max_steps: 200_000,
            min_lr_ratio: 0.0,
            restart_every: 0,
            restart_warmup_steps: 0,
        };
        assert_eq!(s.lr_at(0), 0.0);
        close(s.lr_at(1250), 1.5e-4, "half warmup");
        close(s.lr_at(2500), 3e-4, "peak");
        let c = LrSchedule {
            schedule: Schedule::Cosine,
            min_lr_ratio: 0.1,
            restart_every: 0,
            restart_warmup_steps: 0,
            ..s.clone()
        };
        close(c.lr_at(200_000), 3e-5, "cosine floor");
        let k = LrSchedule {
            schedule: Schedule::Constant,
            warmup_steps: 0,
            ..s
        };
        close(k.lr_at(0), 3e-4, "constant");
    }
}
