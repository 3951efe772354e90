//! `wgbench step`: a pico-decoder training micro-step (forward + backward), timed.

use crate::{open_gpu, print_adapter};
use std::collections::BTreeMap;
use std::time::Instant;
use wgtrain::model::config::ModelConfig;
use wgtrain::model::decoder::{Decoder, LogitsPlan, Purpose};
use wgtrain::model::init::Rng;
use wgtrain::model::relora::ReloraConfig;
use wgtrain::{Gpu, Result};

fn one_step(gpu: &Gpu, model: &Decoder) -> Result<()> {
    let mut enc = gpu.encoder();
    model.record_zero_grads(&mut enc);
    model.record_forward(&mut enc);
    model.record_backward(&mut enc);
    gpu.submit(enc);
    gpu.finish_blocking()
}

/// GPU time per op family for one step, from timestamp queries around each stage's pass.
pub fn family_times(gpu: &Gpu, model: &Decoder) -> Result<Option<BTreeMap<&'static str, f64>>> {
    if !gpu
        .device
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY)
    {
        return Ok(None);
    }
    let mut stages: Vec<(&'static str, Vec<&wgtrain::gpu::Dispatch>)> = Vec::new();
    for st in model.forward_stages().iter().chain(model.backward_stages()) {
        stages.push((st.family, st.dispatches.iter().collect()));
    }
    if let Some(embedding) = model.embedding_backward() {
        stages.push(("embedding", embedding.dispatches().iter().collect()));
    }
    let count = 2 * stages.len() as u32;
    let queries = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("stage timestamps"),
        ty: wgpu::QueryType::Timestamp,
        count,
    });
    let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: count as u64 * 8,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let readback = wgtrain::Tensor::zeros(gpu, &[count as usize * 2], wgtrain::gpu::DType::U32)?;
    let mut enc = gpu.encoder();
    model.record_zero_grads(&mut enc);
    for (i, (_, dispatches)) in stages.iter().enumerate() {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &queries,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            }),
        });
        for d in dispatches {
            d.record(&mut pass);
        }
    }
    enc.resolve_query_set(&queries, 0..count, &resolve, 0);
    enc.copy_buffer_to_buffer(
        &resolve,
        0,
        &readback.pieces()[0].buffer,
        0,
        count as u64 * 8,
    );
    gpu.submit(enc);
    let words = readback.to_vec_u32(gpu)?;
    let period_ns = gpu.queue.get_timestamp_period() as f64;
    let mut out = BTreeMap::new();
    for (i, (family, _)) in stages.iter().enumerate() {
        let t = |j: usize| words[2 * j] as u64 | (words[2 * j + 1] as u64) << 32;
        let ns = t(2 * i + 1).saturating_sub(t(2 * i)) as f64 * period_ns;
        *out.entry(*family).or_insert(0.0) += ns * 1e-9;
    }
    Ok(Some(out))
}

/// The micro-batch and how many steps are timed.
#[derive(Clone, Copy)]
pub struct StepShape {
    pub batch: usize,
    pub seq: usize,
    pub steps: usize,
}

/// Plan `config` (logits held as `logits` says), run one warm-up step, then time `steps`
/// steps: (seconds per step, loss).
fn measure(
    gpu: &Gpu,
    config: &ModelConfig,
    shape: StepShape,
    logits: LogitsPlan,
) -> Result<(Decoder, f64, f32)> {
    let StepShape { batch, seq, steps } = shape;
    let model =
        Decoder::planned_with_logits(gpu, config, batch, seq, Purpose::Training, 1, logits)?;
    model.init_params(gpu, 0)?;
    let mut rng = Rng::new(1);
    let tokens: Vec<u32> = (0..batch * (seq + 1))
        .map(|_| (rng.next_u64() % config.vocab_size as u64) as u32)
        .collect();
    model.set_batch(gpu, &tokens)?;
    one_step(gpu, &model)?; // warm-up: pipelines compile here
    let t0 = Instant::now();
    for _ in 0..steps {
        one_step(gpu, &model)?;
    }
    let per_step = t0.elapsed().as_secs_f64() / steps as f64;
    let loss = model.loss().to_vec_f32(gpu)?[0];
    Ok((model, per_step, loss))
}

/// pico-relora's adapters (r 16, alpha 32, dropout 0.1 on every attention and FFN linear).
fn with_relora(mut c: ModelConfig) -> ModelConfig {
    c.relora = Some(ReloraConfig::default());
    c
}

pub fn bench_step(
    backend: &str,
    preset: &str,
    shape: StepShape,
    relora: bool,
    logits_rows: Option<usize>,
) -> Result<()> {
    let StepShape { batch, seq, .. } = shape;
    let gpu = open_gpu(backend)?;
    let config = ModelConfig::preset(preset)?;
    print_adapter(&gpu);
    println!(
        "model: pico-decoder {preset} ({:.1} M parameters), micro-batch {batch} x {seq} tokens",
        config.num_params() as f64 / 1e6
    );
    let (model, per_step, loss) = measure(&gpu, &config, shape, LogitsPlan::Auto)?;
    println!(
        "step (forward + backward): {:.1} ms, {:.0} tokens/s, loss {loss:.4} (random init; ln V = {:.4})",
        per_step * 1e3,
        (batch * seq) as f64 / per_step,
        (config.vocab_size as f64).ln()
    );
    println!(
        "planned GPU memory (parameters, gradients, activations, scratch): {:.1} MiB",
        model.planned_bytes() as f64 / (1024.0 * 1024.0)
    );
    let count = |stages: &[wgtrain::model::decoder::Stage]| -> usize {
        stages.iter().map(|s| s.dispatches.len()).sum()
    };
    let gather = model
        .embedding_backward()
        .map_or(0, |e| e.dispatches().len());
    println!(
        "dispatches per micro-step: {} forward + {} backward",
        count(model.forward_stages()),
        count(model.backward_stages()) + gather
    );
    if let Some(rows) = logits_rows {
        let (cmodel, c_step, c_loss) = measure(&gpu, &config, shape, LogitsPlan::ChunkRows(rows))?;
        println!(
            "logits in chunks of {} rows (default plan: {} rows): {:.1} ms, loss {c_loss:.4}; \
             {:.2}x the default step; planned memory {:.1} MiB (default {:.1} MiB)",
            cmodel.logits_chunk_rows(),
            model.logits_chunk_rows(),
            c_step * 1e3,
            c_step / per_step,
            cmodel.planned_bytes() as f64 / (1024.0 * 1024.0),
            model.planned_bytes() as f64 / (1024.0 * 1024.0)
        );
    }
    if relora {
        let rc = with_relora(config.clone());
        let (rmodel, r_step, r_loss) = measure(&gpu, &rc, shape, LogitsPlan::Auto)?;
        println!(
            "pico-relora {preset} step (r 16, dropout 0.1): {:.1} ms, {:.0} tokens/s, loss {r_loss:.4}; \
             {:.2}x the plain step; planned memory {:.1} MiB",
            r_step * 1e3,
            (batch * seq) as f64 / r_step,
            r_step / per_step,
            rmodel.planned_bytes() as f64 / (1024.0 * 1024.0)
        );
        report_families(&gpu, &rmodel, "pico-relora")?;
    } else {
        report_families(&gpu, &model, "pico-decoder")?;
    }
    Ok(())
}

fn report_families(gpu: &Gpu, model: &Decoder, what: &str) -> Result<()> {
    match family_times(gpu, model)? {
        Some(times) => {
            let total: f64 = times.values().sum();
            println!(
                "{what}: GPU time per op family (timestamp queries, one step, {:.1} ms in all):",
                total * 1e3
            );
            let mut rows: Vec<_> = times.into_iter().collect();
            rows.sort_by(|a, b| b.1.total_cmp(&a.1));
            for (family, t) in rows {
                println!(
                    "  {family:<18} {:>8.2} ms  {:>5.1} %",
                    t * 1e3,
                    100.0 * t / total
                );
            }
        }
        None => println!("(this adapter has no timestamp queries: no per-op breakdown)"),
    }
    Ok(())
}
