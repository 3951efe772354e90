//! Criterion benches of the model's other kernel families on the suite's quick micro-batch
//! of tiny: the linear + cross-entropy head (V = 50304), AdamW over tiny's parameters, the
//! LoRA products and the merge-and-reset of pico-relora tiny, and the metrics' SVD of w_2.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgtrain::bench::shapes::{step_cases, Size};
use wgtrain::bench::workloads::{is_head, planned_model, random, record_families};
use wgtrain::metrics::dynamics::MetricsPlan;
use wgtrain::model::config::ModelConfig;
use wgtrain::model::decoder::Purpose;
use wgtrain::model::relora::ReloraConfig;
use wgtrain::train::optim::{AdamW, AdamWConfig};
use wgtrain::Tensor;

fn bench(c: &mut Criterion) {
    let Some(gpu) = common::gpu("model parts") else {
        return;
    };
    let case = step_cases(Size::Quick)[0];
    let plain = ModelConfig::preset(case.preset).expect("preset");
    let model = planned_model(&gpu, &plain, case.batch, case.seq, Purpose::Training).unwrap();
    let optim = AdamW::new(&gpu, model.params(), AdamWConfig::default()).unwrap();
    optim.write_step(&gpu, 1e-3, 1, 1.0).unwrap();
    // One full micro-step first, so the head and the optimizer read real activations.
    common::run(&gpu, &mut |enc| {
        model.record_forward(enc);
        model.record_backward(enc);
    });
    let mut relora = plain.clone();
    relora.relora = Some(ReloraConfig::default());
    let lora = planned_model(&gpu, &relora, case.batch, case.seq, Purpose::Training).unwrap();
    let rows = case.batch * case.seq;

    let mut group = common::group(c, "model parts", &gpu);
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function(
        format!("linear + cross-entropy, {rows} rows, V 50304"),
        |b| b.iter(|| common::run(&gpu, &mut |enc| record_families(enc, &model, &is_head))),
    );
    group.bench_function(format!("lora products, {rows} rows"), |b| {
        b.iter(|| {
            common::run(&gpu, &mut |enc| {
                record_families(enc, &lora, &|f| f == "lora")
            })
        })
    });
    group.bench_function("merge-and-reset, tiny", |b| {
        b.iter(|| common::run(&gpu, &mut |enc| lora.record_merge_and_reset(&gpu, enc, 3)))
    });
    group.bench_function("adamw, tiny", |b| {
        b.iter(|| {
            common::run(&gpu, &mut |enc| {
                let mut pass = enc.begin_compute_pass(&Default::default());
                optim.record(&mut pass);
            })
        })
    });
    let (rows, cols) = (plain.d_model, plain.activation_hidden_dim);
    let w2 = Tensor::from_f32(&gpu, &[rows, cols], &random(rows * cols, 5)).unwrap();
    let metrics = MetricsPlan::new(&gpu, rows, cols).unwrap();
    group.bench_function(format!("svd + metrics of w_2 ({rows} x {cols})"), |b| {
        b.iter(|| metrics.run_blocking(&gpu, &w2).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
