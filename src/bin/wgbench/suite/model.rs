//! The model entries: the training step of tiny and small (plain and pico-relora) beside
//! PyTorch's, and, on each preset's first micro-batch, the parts of it timed alone: the
//! linear + cross-entropy head, AdamW, the LoRA products, the merge-and-reset and the GPU time
//! per op family; then the evaluation forward's throughput.

use super::pytorch::step_label;
use super::{Ctx, Sink};
use wgtrain::bench::record::{Entry, Timing, Unit};
use wgtrain::bench::shapes::{self, StepCase};
use wgtrain::bench::workloads::{
    family_share_entries, is_head, lora_sizes, planned_model, record_families,
};
use wgtrain::model::config::ModelConfig;
use wgtrain::model::decoder::{Decoder, Purpose};
use wgtrain::model::relora::ReloraConfig;
use wgtrain::train::optim::{AdamW, AdamWConfig};
use wgtrain::Result;

fn planned(ctx: &Ctx, config: &ModelConfig, case: &StepCase, purpose: Purpose) -> Result<Decoder> {
    planned_model(ctx.gpu, config, case.batch, case.seq, purpose)
}

fn dispatch_count(model: &Decoder) -> usize {
    let stages = model.forward_stages().iter().chain(model.backward_stages());
    stages.map(|s| s.dispatches.len()).sum::<usize>()
        + model
            .embedding_backward()
            .map_or(0, |e| e.dispatches().len())
}

pub fn steps(ctx: &Ctx, sink: &mut Sink) {
    let mut seen = Vec::new();
    for case in shapes::step_cases(ctx.size) {
        let first = !seen.contains(&case.preset);
        seen.push(case.preset);
        for relora in [false, true] {
            let mut config = match ModelConfig::preset(case.preset) {
                Ok(c) => c,
                Err(e) => {
                    return sink
                        .push(Entry::new("training step", case.preset).skipped(e.to_string()))
                }
            };
            if relora {
                config.relora = Some(ReloraConfig::default());
            }
            let variant = if relora {
                "pico-relora"
            } else {
                "pico-decoder"
            };
            let label = step_label(&case);
            let model = match planned(ctx, &config, &case, Purpose::Training).and_then(|m| {
                let optim = AdamW::new(ctx.gpu, m.params(), AdamWConfig::default())?;
                optim.write_step(ctx.gpu, 1e-3, 1, 1.0)?;
                Ok((m, optim))
            }) {
                Ok(m) => m,
                Err(e) => {
                    sink.push(
                        Entry::new("training step", label)
                            .variant(variant)
                            .skipped(e.to_string()),
                    );
                    continue;
                }
            };
            let (model, optim) = &model;
            if sink.wants("training step") {
                sink.run("training step", &label, Some(variant), || {
                    step_entry(ctx, model, optim, &case, &label, variant, relora)
                });
            }
            if !first {
                continue;
            }
            if !relora {
                head_entry(ctx, sink, model, &case);
                adamw_entry(ctx, sink, optim, &case);
            } else {
                lora_entries(ctx, sink, model, &case);
            }
            family_entries(ctx, sink, model, &label, variant);
        }
    }
}

fn step_entry(
    ctx: &Ctx,
    model: &Decoder,
    optim: &AdamW,
    case: &StepCase,
    label: &str,
    variant: &str,
    relora: bool,
) -> Result<Entry> {
    let tokens = (case.batch * case.seq) as f64;
    let t = ctx
        .timer
        .measure(shapes::step_repeats(ctx.size), &mut |enc| {
            model.record_zero_grads(enc);
            model.record_forward(enc);
            model.record_backward(enc);
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            optim.record(&mut pass);
        })?;
    let loss = model.loss().to_vec_f32(ctx.gpu)?[0];
    let mut e = Entry::new("training step", label)
        .variant(variant)
        .measured(t, tokens, Unit::TokensPerS)
        .note("dispatches", dispatch_count(model).to_string())
        .note("loss after the timed steps", format!("{loss:.4}"));
    e.planned_bytes = Some(model.planned_bytes() + optim.state_bytes());
    if relora {
        e = e.note("pytorch baseline", "plain pico-decoder only");
    } else {
        ctx.torch.add_step(&mut e, label, tokens);
    }
    Ok(e)
}

/// The output projection, log-softmax, loss and their gradients, alone (V = 50304).
fn head_entry(ctx: &Ctx, sink: &mut Sink, model: &Decoder, case: &StepCase) {
    const FAMILY: &str = "linear + cross-entropy";
    if !sink.wants(FAMILY) {
        return;
    }
    let c = &model.config;
    let rows = case.batch * case.seq;
    let name = format!(
        "{} {rows} rows x {} -> V {}",
        case.preset, c.d_model, c.vocab_size
    );
    sink.run(FAMILY, &name, None, || {
        let t = ctx.timer.measure(shapes::repeats(ctx.size), &mut |enc| {
            record_families(enc, model, &is_head)
        })?;
        // Counted: the forward product and the two gradient products (6 N d V); the chunked
        // backward's second projection of each chunk is work done but not counted.
        let flops = 6.0 * (rows * c.d_model * c.vocab_size) as f64;
        let chunk = model.logits_chunk_rows();
        let mut e = Entry::new(FAMILY, name.clone())
            .measured(t, flops, Unit::GflopPerS)
            .note("logits rows held at once", chunk.to_string())
            .note(
                "logits MiB held",
                format!("{:.1}", (chunk * c.vocab_size * 4) as f64 / 1048576.0),
            );
        e.planned_bytes = Some(model.planned_bytes());
        Ok(e)
    });
}

fn adamw_entry(ctx: &Ctx, sink: &mut Sink, optim: &AdamW, case: &StepCase) {
    const FAMILY: &str = "adamw";
    if !sink.wants(FAMILY) {
        return;
    }
    let params: usize = optim.state().iter().map(|s| s.m.numel()).sum();
    let name = format!("{} ({:.2} M parameters)", case.preset, params as f64 / 1e6);
    sink.run(FAMILY, &name, None, || {
        let t = ctx
            .timer
            .measure_pass(shapes::repeats(ctx.size), &|p| optim.record(p))?;
        // Bytes counted: the norm reads g; the update reads p, g, m, v and writes p, m, v.
        let bytes = 32.0 * params as f64;
        let mut e = Entry::new(FAMILY, name.clone()).measured(t, bytes, Unit::GbPerS);
        e.planned_bytes = Some(optim.state_bytes());
        Ok(e)
    });
}

/// The LoRA products of every adapter, forward and backward, and the merge-and-reset.
fn lora_entries(ctx: &Ctx, sink: &mut Sink, model: &Decoder, case: &StepCase) {
    let rows = case.batch * case.seq;
    let (products, merge, r) = lora_sizes(model);
    let name = format!("{} {rows} rows, r {r}", case.preset);
    if sink.wants("lora") {
        sink.run("lora", &name, None, || {
            let t = ctx.timer.measure(shapes::repeats(ctx.size), &mut |enc| {
                record_families(enc, model, &|f| f == "lora")
            })?;
            // Forward x·Aᵀ and h·Bᵀ, backward dB, dh, dA and dx: 6 products of N r (in + out).
            let flops = 6.0 * rows as f64 * products;
            Ok(Entry::new("lora", name.clone())
                .measured(t, flops, Unit::GflopPerS)
                .note("includes", "dropout on the adapter input"))
        });
    }
    if sink.wants("merge-and-reset") {
        sink.run(
            "merge-and-reset",
            &format!("{} r {r}", case.preset),
            None,
            || {
                let t = ctx.timer.measure(shapes::repeats(ctx.size), &mut |enc| {
                    model.record_merge_and_reset(ctx.gpu, enc, 11)
                })?;
                // W += s B A per adapter: 2 out in r FLOPs; B zeroed and A redrawn are not counted.
                Ok(
                    Entry::new("merge-and-reset", format!("{} r {r}", case.preset)).measured(
                        t,
                        2.0 * merge,
                        Unit::GflopPerS,
                    ),
                )
            },
        );
    }
}

/// GPU time per op family inside one training micro-step (timestamp queries per stage).
fn family_entries(ctx: &Ctx, sink: &mut Sink, model: &Decoder, label: &str, variant: &str) {
    const FAMILY: &str = "step op families";
    if !sink.wants(FAMILY) {
        return;
    }
    match crate::step::family_times(ctx.gpu, model) {
        Ok(Some(times)) => {
            let timed = times
                .into_iter()
                .filter_map(|(family, secs)| {
                    let t = Timing::of(wgtrain::bench::timing::GPU_TIMESTAMPS, &[secs])?;
                    Some((family, t))
                })
                .collect();
            for e in family_share_entries(label, variant, timed, "") {
                sink.push(e);
            }
        }
        Ok(None) => sink.push(
            Entry::new(FAMILY, label)
                .variant(variant)
                .skipped("this adapter has no timestamp queries"),
        ),
        Err(e) => sink.push(
            Entry::new(FAMILY, label)
                .variant(variant)
                .skipped(e.to_string()),
        ),
    }
}

/// Tokens/s of the forward that perplexity and BLiMP run (no dropout, no backward).
pub fn evaluation(ctx: &Ctx, sink: &mut Sink) {
    const FAMILY: &str = "evaluation forward";
    if !sink.wants(FAMILY) {
        return;
    }
    for case in shapes::eval_cases(ctx.size) {
        let label = step_label(&case);
        sink.run(FAMILY, &label, None, || {
            let config = ModelConfig::preset(case.preset)?;
            let model = planned(ctx, &config, &case, Purpose::Inference)?;
            let t = ctx
                .timer
                .measure(shapes::step_repeats(ctx.size), &mut |enc| {
                    model.record_eval_forward(enc)
                })?;
            let mut e = Entry::new(FAMILY, label.clone()).measured(
                t,
                (case.batch * case.seq) as f64,
                Unit::TokensPerS,
            );
            e.planned_bytes = Some(model.planned_bytes());
            Ok(e)
        });
    }
}
