//! `wgbench demo`: the browser demo's training session run natively, the same way the page
//! runs it (same model, text, optimizer, chunks of steps with their losses read back), so its
//! steps/s sit beside the page's on the same machine.

use crate::{open_gpu, print_adapter};
use std::time::Instant;
use wgtrain::demo::{DemoOptions, DemoSession};
use wgtrain::Result;

/// The page's built-in sample text.
pub const SAMPLE: &str = include_str!("../../../wasm/www/sample.txt");

pub fn bench_demo(backend: &str, options: DemoOptions, steps: u32, relora: bool) -> Result<()> {
    // The page's schedule for this many steps: its horizon is the steps asked for (here the
    // timed ones and the warm-up step), its warmup derived from them (DemoOptions::warmup).
    let options = DemoOptions {
        steps: steps as u64 + 1,
        warmup_steps: None,
        ..options
    };
    let gpu = open_gpu(backend)?;
    print_adapter(&gpu);
    let mut runs = vec![DemoOptions {
        relora: false,
        ..options.clone()
    }];
    if relora {
        runs.push(DemoOptions {
            relora: true,
            ..options
        });
    }
    for o in runs {
        let mut session = DemoSession::new(&gpu, SAMPLE, o.clone())?;
        let (trainable, total) = session.parameter_counts();
        // The first step compiles the pipelines, as in the page; it is not timed.
        let warm = pollster::block_on(session.train(&gpu, 1))?;
        let t0 = Instant::now();
        let mut last = warm;
        let mut done = 0;
        while done < steps {
            let n = (steps - done).min(10);
            last = pollster::block_on(session.train(&gpu, n))?;
            done += n;
        }
        let secs = t0.elapsed().as_secs_f64();
        let sps = steps as f64 / secs;
        println!(
            "demo {} (d_model {}, {} layers, batch {} x {} bytes, {:.3} M params, {:.3} M trained): \
             {sps:.2} steps/s, {:.0} tokens/s, loss {:.3} after {} steps",
            if o.relora { "ReLoRA" } else { "plain" },
            o.d_model,
            o.n_layers,
            o.batch,
            o.seq,
            total as f64 / 1e6,
            trainable as f64 / 1e6,
            sps * session.tokens_per_step() as f64,
            last.last().map_or(f32::NAN, |p| p.loss),
            session.step()
        );
    }
    Ok(())
}
