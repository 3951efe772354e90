//! The suite in the browser: `wgbench suite --quick`'s entries run on the page's WebGPU and
//! written as the same JSON record `wgbench report` merges. Shapes come from the suite's
//! table ([`wgtrain::bench::shapes`], quick size) and the ops from its workloads, so a figure
//! here means what the native record's does. Differences, as the record says: the time is
//! the host's (performance.now from submit to the device's completion, ~0.1 ms resolution),
//! there are no baselines (no CPU GEMM or PyTorch in a page), and the matmul's `auto` is the
//! rule (the browser does not autotune).

use wgtrain::bench::record::{Adapter, BaselineInfo, Entry, Host, Record, Timing, Unit, FORMAT};
use wgtrain::bench::shapes::{self, Size};
use wgtrain::bench::workloads::{
    attention_backward_flops, attention_forward_flops, attention_ops, family_share_entries,
    is_head, lora_sizes, matmul_op, matmul_operands, planned_model, random, record_families,
    stage_families,
};
use wgtrain::demo::{DemoOptions, DemoSession};
use wgtrain::formulas::kernels::{AttentionKernel, KernelPins, MatmulKernel};
use wgtrain::metrics::dynamics::MetricsPlan;
use wgtrain::model::config::ModelConfig;
use wgtrain::model::decoder::Purpose;
use wgtrain::model::relora::ReloraConfig;
use wgtrain::ops::attention::AttentionShape;
use wgtrain::train::optim::{AdamW, AdamWConfig};
use wgtrain::{Backend, Gpu, GpuOptions, Result, Tensor};

const SIZE: Size = Size::Quick;

/// The host clock in seconds (performance.now).
fn now() -> f64 {
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).ok();
    let ms = perf.and_then(|p| {
        let f: js_sys::Function = js_sys::Reflect::get(&p, &"now".into()).ok()?.into();
        f.call0(&p).ok()?.as_f64()
    });
    ms.unwrap_or_else(js_sys::Date::now) / 1000.0
}

/// One warm-up run, then `repeats` runs, each submitted alone and timed until the device is
/// done.
async fn measure(
    gpu: &Gpu,
    repeats: usize,
    record: &mut dyn FnMut(&mut wgpu::CommandEncoder),
) -> Result<Timing> {
    let mut samples = Vec::new();
    for i in 0..=repeats.max(1) {
        let t0 = now();
        let mut enc = gpu.encoder();
        record(&mut enc);
        gpu.submit(enc);
        gpu.finish().await?;
        if i > 0 {
            samples.push(now() - t0);
        }
    }
    Ok(Timing::of("wall", &samples).expect("samples"))
}

fn pass(enc: &mut wgpu::CommandEncoder) -> wgpu::ComputePass<'_> {
    enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default())
}

/// An entry, or the error it met as a skipped entry.
fn entry(family: &str, name: &str, variant: Option<&str>, r: Result<Entry>) -> Entry {
    r.unwrap_or_else(|e| {
        let mut s = Entry::new(family, name).skipped(e.to_string());
        s.variant = variant.map(str::to_string);
        s
    })
}

async fn matmuls(gpu: &Gpu, out: &mut Vec<Entry>) {
    for case in shapes::matmul_cases(SIZE) {
        let s = case.shape;
        let label = case.label();
        let operands = matmul_operands(gpu, &s, &random(s.m * s.k, 1), &random(s.k * s.n, 2));
        for kernel in std::iter::once(MatmulKernel::Auto).chain(MatmulKernel::VARIANTS) {
            let r = async {
                let ops = operands
                    .as_ref()
                    .map_err(|e| wgtrain::Error::Invalid(e.to_string()))?;
                let mm = matmul_op(gpu, &s, ops, kernel)?;
                let t = measure(gpu, shapes::repeats(SIZE), &mut |enc| {
                    mm.record(&mut pass(enc))
                })
                .await?;
                Ok(Entry::new("matmul", label.clone())
                    .variant(kernel.name())
                    .measured(t, s.flops(), Unit::GflopPerS))
            };
            out.push(entry("matmul", &label, Some(kernel.name()), r.await));
        }
    }
}

async fn attention(gpu: &Gpu, out: &mut Vec<Entry>) -> Result<()> {
    let mut devices = Vec::new();
    for v in [
        AttentionKernel::Auto,
        AttentionKernel::Tiled,
        AttentionKernel::Rows,
    ] {
        let pins = KernelPins {
            attention: v,
            ..gpu.kernels()
        };
        let g = Gpu::new(GpuOptions {
            backend: Backend::WebGpu,
            kernels: pins,
            ..Default::default()
        })
        .await?;
        devices.push((v, g));
    }
    for (preset, heads, kv, hd) in shapes::HEAD_SHAPES {
        for &seq in shapes::attention_seqs(SIZE) {
            let s = AttentionShape::new(1, seq, heads, kv, hd);
            let name = format!("{preset} 1 x {seq}, {heads}/{kv} heads x {hd}");
            for (v, g) in &devices {
                let ops = attention_ops(g, s);
                for (family, flops) in [
                    ("attention forward", attention_forward_flops(&s)),
                    ("attention backward", attention_backward_flops(&s)),
                ] {
                    let r = async {
                        let ops = ops
                            .as_ref()
                            .map_err(|e| wgtrain::Error::Invalid(e.to_string()))?;
                        let ds = if family == "attention forward" {
                            &ops.forward
                        } else {
                            &ops.backward
                        };
                        let t = measure(g, shapes::repeats(SIZE), &mut |enc| {
                            let mut p = pass(enc);
                            for d in ds {
                                d.record(&mut p);
                            }
                        })
                        .await?;
                        Ok(Entry::new(family, name.clone()).variant(v.name()).measured(
                            t,
                            flops,
                            Unit::GflopPerS,
                        ))
                    };
                    out.push(entry(family, &name, Some(v.name()), r.await));
                }
            }
        }
    }
    Ok(())
}

async fn model_entries(gpu: &Gpu, out: &mut Vec<Entry>) -> Result<()> {
    let case = shapes::step_cases(SIZE)[0];
    let label = format!("{} {} x {}", case.preset, case.batch, case.seq);
    let rows = case.batch * case.seq;
    let repeats = shapes::step_repeats(SIZE);
    for relora in [false, true] {
        let mut config = ModelConfig::preset(case.preset)?;
        if relora {
            config.relora = Some(ReloraConfig::default());
        }
        let variant = if relora {
            "pico-relora"
        } else {
            "pico-decoder"
        };
        let model = planned_model(gpu, &config, case.batch, case.seq, Purpose::Training)?;
        let optim = AdamW::new(gpu, model.params(), AdamWConfig::default())?;
        optim.write_step(gpu, 1e-3, 1, 1.0)?;
        let t = measure(gpu, repeats, &mut |enc| {
            model.record_zero_grads(enc);
            model.record_forward(enc);
            model.record_backward(enc);
            optim.record(&mut pass(enc));
        })
        .await?;
        let mut e = Entry::new("training step", label.clone())
            .variant(variant)
            .measured(t, rows as f64, Unit::TokensPerS);
        e.planned_bytes = Some(model.planned_bytes() + optim.state_bytes());
        out.push(e);
        family_entries(gpu, &model, &label, variant, out).await?;
        let c = &model.config;
        if !relora {
            let name = format!(
                "{} {rows} rows x {} -> V {}",
                case.preset, c.d_model, c.vocab_size
            );
            let t = measure(gpu, shapes::repeats(SIZE), &mut |enc| {
                record_families(enc, &model, &is_head)
            })
            .await?;
            let flops = 6.0 * (rows * c.d_model * c.vocab_size) as f64;
            out.push(Entry::new("linear + cross-entropy", name).measured(
                t,
                flops,
                Unit::GflopPerS,
            ));
            let params: usize = optim.state().iter().map(|s| s.m.numel()).sum();
            let t = measure(gpu, shapes::repeats(SIZE), &mut |enc| {
                optim.record(&mut pass(enc))
            })
            .await?;
            let name = format!("{} ({:.2} M parameters)", case.preset, params as f64 / 1e6);
            out.push(Entry::new("adamw", name).measured(t, 32.0 * params as f64, Unit::GbPerS));
        } else {
            let (products, merge, r) = lora_sizes(&model);
            let t = measure(gpu, shapes::repeats(SIZE), &mut |enc| {
                record_families(enc, &model, &|f| f == "lora")
            })
            .await?;
            let name = format!("{} {rows} rows, r {r}", case.preset);
            out.push(Entry::new("lora", name).measured(
                t,
                6.0 * rows as f64 * products,
                Unit::GflopPerS,
            ));
            let t = measure(gpu, shapes::repeats(SIZE), &mut |enc| {
                model.record_merge_and_reset(gpu, enc, 11)
            })
            .await?;
            let name = format!("{} r {r}", case.preset);
            out.push(Entry::new("merge-and-reset", name).measured(t, 2.0 * merge, Unit::GflopPerS));
        }
    }
    for case in shapes::eval_cases(SIZE) {
        let config = ModelConfig::preset(case.preset)?;
        let model = planned_model(gpu, &config, case.batch, case.seq, Purpose::Inference)?;
        let t = measure(gpu, repeats, &mut |enc| model.record_eval_forward(enc)).await?;
        let name = format!("{} {} x {}", case.preset, case.batch, case.seq);
        out.push(Entry::new("evaluation forward", name).measured(
            t,
            (case.batch * case.seq) as f64,
            Unit::TokensPerS,
        ));
    }
    Ok(())
}

/// Time per op family of one micro-step (forward and backward stages of that family, run
/// alone): the native suite's `step op families`, with wall time in place of timestamp
/// queries, which a page cannot read back synchronously.
async fn family_entries(
    gpu: &Gpu,
    model: &wgtrain::model::decoder::Decoder,
    label: &str,
    variant: &str,
    out: &mut Vec<Entry>,
) -> Result<()> {
    let mut timed = Vec::new();
    for family in stage_families(model) {
        let t = measure(gpu, shapes::repeats(SIZE), &mut |enc| {
            record_families(enc, model, &|f| f == family)
        })
        .await?;
        timed.push((family, t));
    }
    out.extend(family_share_entries(
        label,
        variant,
        timed,
        " (of the families' sum)",
    ));
    Ok(())
}

async fn metrics(gpu: &Gpu, out: &mut Vec<Entry>) -> Result<()> {
    for preset in shapes::metric_presets(SIZE) {
        let c = ModelConfig::preset(preset)?;
        let d = c.d_model;
        for (what, rows, cols) in [
            ("w_2", d, c.activation_hidden_dim),
            ("OV circuit", d, c.attention_n_heads * d),
        ] {
            let m = Tensor::from_f32(gpu, &[rows, cols], &random(rows * cols, 7))?;
            let plan = MetricsPlan::new(gpu, rows, cols)?;
            plan.run(gpu, &m).await?;
            let mut samples = Vec::new();
            for _ in 0..2 {
                let t0 = now();
                plan.run(gpu, &m).await?;
                samples.push(now() - t0);
            }
            let name = format!("{preset} {what} ({rows} x {cols}): SVD, PER, condition number");
            out.push(Entry::new("metrics", name).measured(
                Timing::of("wall", &samples).expect("samples"),
                1.0,
                Unit::RunsPerS,
            ));
        }
    }
    Ok(())
}

async fn demo(gpu: &Gpu, text: &str, out: &mut Vec<Entry>) -> Result<()> {
    const CHUNKS: u32 = 2;
    const STEPS: u32 = 5;
    for relora in [false, true] {
        let options = DemoOptions {
            relora,
            steps: (CHUNKS * STEPS + 1) as u64,
            warmup_steps: None,
            ..Default::default()
        };
        let name = format!(
            "d_model {}, {} layers, batch {} x {} bytes",
            options.d_model, options.n_layers, options.batch, options.seq
        );
        let mut session = DemoSession::new(gpu, text, options)?;
        session.train(gpu, 1).await?;
        let mut samples = Vec::new();
        for _ in 0..CHUNKS {
            let t0 = now();
            session.train(gpu, STEPS).await?;
            samples.push((now() - t0) / STEPS as f64);
        }
        // Named as the native entry is, so the report puts the page beside `wgbench`.
        out.push(
            Entry::new("browser demo session", name)
                .variant(if relora { "relora" } else { "plain" })
                .measured(
                    Timing::of("wall", &samples).expect("samples"),
                    1.0,
                    Unit::StepsPerS,
                )
                .note("where", "in the page"),
        );
    }
    Ok(())
}

/// Run every entry on `gpu` (the demo session on `text`). The header's host, commit, date,
/// command and wgpu version are left for the page's driver to fill in: a page cannot see them.
pub async fn run(gpu: &Gpu, text: &str) -> Record {
    let mut entries = Vec::new();
    matmuls(gpu, &mut entries).await;
    let fail =
        |family: &str, e: wgtrain::Error| Entry::new(family, "every entry").skipped(e.to_string());
    if let Err(e) = attention(gpu, &mut entries).await {
        entries.push(fail("attention forward", e));
    }
    if let Err(e) = model_entries(gpu, &mut entries).await {
        entries.push(fail("training step", e));
    }
    if let Err(e) = metrics(gpu, &mut entries).await {
        entries.push(fail("metrics", e));
    }
    if let Err(e) = demo(gpu, text, &mut entries).await {
        entries.push(fail("browser demo session", e));
    }
    let f = gpu.device.features();
    Record {
        format: FORMAT,
        size: SIZE.name().into(),
        adapter: Adapter::of(gpu),
        wgpu_version: "unknown".into(),
        features: f.iter_names().map(|(n, _)| n.to_string()).collect(),
        limits: [
            (
                "max_storage_buffer_binding_size".to_string(),
                gpu.device.limits().max_storage_buffer_binding_size,
            ),
            ("binding_bytes_used".to_string(), gpu.binding_limit()),
        ]
        .into_iter()
        .collect(),
        host: Host {
            cpu: "unknown".into(),
            cores: 0,
            os: "unknown".into(),
        },
        commit: "unknown".into(),
        date: "unknown".into(),
        command: "suite() in the page".into(),
        baselines: vec![BaselineInfo {
            name: "cpu gemm, pytorch".into(),
            available: false,
            detail: "a page cannot run the host's BLAS or PyTorch; compare with the native \
                     records of the same machine"
                .into(),
        }],
        entries,
    }
}
