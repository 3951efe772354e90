//! The learning-dynamics metrics (on-device SVD of w_2 and of the OV circuit, with PER and
//! the condition number) beside a CPU SVD, and the browser demo's session run natively.

use super::{Ctx, Sink};
use crate::svd::{cpu_svd_seconds, time_on_device};
use std::time::Instant;
use wgtrain::bench::record::{Entry, Timing, Unit};
use wgtrain::bench::shapes;
use wgtrain::bench::timing::WALL;
use wgtrain::demo::{DemoOptions, DemoSession};
use wgtrain::model::config::ModelConfig;

pub fn metrics(ctx: &Ctx, sink: &mut Sink) {
    const FAMILY: &str = "metrics";
    if !sink.wants(FAMILY) {
        return;
    }
    for preset in shapes::metric_presets(ctx.size) {
        let Ok(c) = ModelConfig::preset(preset) else {
            continue;
        };
        let d = c.d_model;
        // w_2 is [d, hidden]; the OV circuit of all heads side by side is d x (heads d).
        for (what, rows, cols) in [
            ("w_2", d, c.activation_hidden_dim),
            ("OV circuit", d, c.attention_n_heads * d),
        ] {
            let name = format!("{preset} {what} ({rows} x {cols}): SVD, PER, condition number");
            sink.run(FAMILY, &name, None, || {
                // The metrics' runs only: they include the SVD.
                let t = time_on_device(
                    ctx.gpu,
                    rows,
                    cols,
                    0,
                    shapes::step_repeats(ctx.size).max(2),
                )?;
                let timing = Timing::of(WALL, &t.metrics_samples)
                    .ok_or_else(|| wgtrain::Error::Invalid("no timed run".into()))?;
                let mut e = Entry::new(FAMILY, name.clone()).measured(timing, 1.0, Unit::RunsPerS);
                // The CPU computes the singular values only: the comparison favours it.
                e.baseline("cpu svd", cpu_svd_seconds(rows, cols, 2), 1.0);
                Ok(e)
            });
        }
    }
}

pub fn demo(ctx: &Ctx, sink: &mut Sink) {
    const FAMILY: &str = "browser demo session";
    if !sink.wants(FAMILY) {
        return;
    }
    let chunks = match ctx.size {
        shapes::Size::Quick => 2,
        shapes::Size::Full => 6,
    };
    const STEPS_PER_CHUNK: u32 = 5;
    for relora in [false, true] {
        let variant = if relora { "relora" } else { "plain" };
        let options = DemoOptions {
            relora,
            steps: (chunks * STEPS_PER_CHUNK + 1) as u64,
            warmup_steps: None,
            ..Default::default()
        };
        let name = format!(
            "d_model {}, {} layers, batch {} x {} bytes",
            options.d_model, options.n_layers, options.batch, options.seq
        );
        sink.run(FAMILY, &name, Some(variant), || {
            let mut session = DemoSession::new(ctx.gpu, crate::demo::SAMPLE, options.clone())?;
            // The first step compiles the pipelines, as in the page; it is not timed.
            pollster::block_on(session.train(ctx.gpu, 1))?;
            let mut samples = Vec::new();
            let mut loss = f32::NAN;
            for _ in 0..chunks {
                let t0 = Instant::now();
                let points = pollster::block_on(session.train(ctx.gpu, STEPS_PER_CHUNK))?;
                samples.push(t0.elapsed().as_secs_f64() / STEPS_PER_CHUNK as f64);
                loss = points.last().map_or(f32::NAN, |p| p.loss);
            }
            let t = Timing::of(WALL, &samples)
                .ok_or_else(|| wgtrain::Error::Invalid("no timed chunk".into()))?;
            let tokens = session.tokens_per_step() as f64 / t.median_s;
            Ok(Entry::new(FAMILY, name.clone())
                .variant(variant)
                .measured(t, 1.0, Unit::StepsPerS)
                .note("tokens/s", format!("{tokens:.0}"))
                .note("loss", format!("{loss:.3} after {} steps", session.step()))
                .note("where", "native"))
        });
    }
}
