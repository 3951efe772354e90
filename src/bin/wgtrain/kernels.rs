//! `--kernel` and `--no-autotune`: the kernel pins and tuning every device a command opens
//! starts from.

use std::sync::OnceLock;
use wgtrain::formulas::kernels::KernelPins;
use wgtrain::gpu::tuning::Tuning;
use wgtrain::GpuOptions;

static CHOICE: OnceLock<(KernelPins, Tuning)> = OnceLock::new();

/// Record the command line's choice (once, before any device opens).
pub fn set_from_command_line(kernel: Option<&str>, no_autotune: bool) -> Result<(), String> {
    let pins = kernel.map_or(Ok(KernelPins::default()), str::parse)?;
    let tuning = if no_autotune {
        Tuning::Rule
    } else {
        Tuning::Measure
    };
    let _ = CHOICE.set((pins, tuning));
    Ok(())
}

/// The options every device starts from: the command line's kernel pins and tuning.
pub fn base_options() -> GpuOptions {
    let (kernels, tuning) = CHOICE.get().copied().unwrap_or_default();
    GpuOptions {
        kernels,
        tuning,
        ..Default::default()
    }
}
