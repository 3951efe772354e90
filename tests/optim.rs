//! The optimizer on the device: the fused AdamW kernel against a plain f64 AdamW (tensors in
//! pieces included), the PyTorch fixtures (4 steps of torch.optim.AdamW on pico_mini and
//! pico_tiny_shape), the global gradient norm and clipping, the non-blocking step readback,
//! checkpointing the optimizer state, and bitwise determinism.

mod common;

use wgtrain::model::checkpoint::{load, read_safetensors, HostTensor};
use wgtrain::model::decoder::{Decoder, Param};
use wgtrain::model::grads::batch_tokens;
use wgtrain::train::optim::{AdamW, AdamWConfig, NonFinite, StepReadback, StepValues};
use wgtrain::{Gpu, GpuOptions, Tensor};

// ---------------------------------------------------------------------------------------
// A plain AdamW in f64 (torch.optim.AdamW semantics, with torch's clip_grad_norm_).
// ---------------------------------------------------------------------------------------

struct CpuAdamW {
    cfg: AdamWConfig,
    params: Vec<Vec<f64>>,
    m: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
}

impl CpuAdamW {
    fn new(cfg: AdamWConfig, params: &[Vec<f32>]) -> Self {
        let to64 = |p: &Vec<f32>| p.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        CpuAdamW {
            cfg,
            params: params.iter().map(to64).collect(),
            m: params.iter().map(|p| vec![0.0; p.len()]).collect(),
            v: params.iter().map(|p| vec![0.0; p.len()]).collect(),
        }
    }

    /// Returns the global norm of the scaled gradients.
    fn step(&mut self, grads: &[Vec<f32>], lr: f64, t: u64, grad_scale: f64) -> f64 {
        let c = &self.cfg;
        let norm = global_norm(grads) * grad_scale;
        let clip = c
            .max_grad_norm
            .map_or(1.0, |max| (max / (norm + 1e-6)).min(1.0));
        let bc1 = 1.0 - c.beta1.powi(t as i32);
        let bc2 = 1.0 - c.beta2.powi(t as i32);
        for (i, g) in grads.iter().enumerate() {
            for (j, &gj) in g.iter().enumerate() {
                let g = gj as f64 * grad_scale * clip;
                let p = &mut self.params[i][j];
                *p *= 1.0 - lr * c.weight_decay;
                let m = &mut self.m[i][j];
                let v = &mut self.v[i][j];
                *m = c.beta1 * *m + (1.0 - c.beta1) * g;
                *v = c.beta2 * *v + (1.0 - c.beta2) * g * g;
                let mhat = *m / bc1;
                let vhat = *v / bc2;
                *p -= lr * mhat / (vhat.sqrt() + c.eps);
            }
        }
        norm
    }
}

fn global_norm(grads: &[Vec<f32>]) -> f64 {
    grads
        .iter()
        .flatten()
        .map(|&g| (g as f64) * (g as f64))
        .sum::<f64>()
        .sqrt()
}

fn assert_close64(got: &[f32], want: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = atol + rtol * w.abs();
        assert!(
            ((g as f64) - w).abs() <= tol && g.is_finite(),
            "{what}[{i}]: got {g}, want {w} (tolerance {tol:e})"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Random tensors, some stored in pieces.
// ---------------------------------------------------------------------------------------

/// Largest binding of the small-limit GPU: 256 floats, so bigger tensors come in pieces.
const SMALL_BINDING: u64 = 1024;

fn small_gpu() -> Gpu {
    common::gpu_with(GpuOptions {
        max_binding_bytes: Some(SMALL_BINDING),
        ..Default::default()
    })
}

/// (name, shape): one piece, three pieces of a vector, four pieces of a matrix, one element,
/// one piece not a multiple of the workgroup size.
const SHAPES: [(&str, &[usize]); 5] = [
    ("a", &[5, 7]),
    ("b", &[600]),
    ("c", &[40, 24]),
    ("d", &[1]),
    ("e", &[3, 83]),
];

fn random_params(gpu: &Gpu, seed: u64) -> (Vec<Param>, Vec<Vec<f32>>) {
    let mut params = Vec::new();
    let mut values = Vec::new();
    for (i, (name, shape)) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let v = common::random(n, seed * 100 + i as u64);
        params.push(Param {
            name: name.to_string(),
            value: Tensor::from_f32(gpu, shape, &v).unwrap(),
            grad: Tensor::zeros(gpu, shape, wgtrain::gpu::DType::F32).unwrap(),
            trainable: true,
        });
        values.push(v);
    }
    (params, values)
}

/// Gradients of step `t`: random, with a few exact zeros and one tiny entry per tensor.
fn random_grads(t: u64, scale: f32) -> Vec<Vec<f32>> {
    SHAPES
        .iter()
        .enumerate()
        .map(|(i, (_, shape))| {
            let n: usize = shape.iter().product();
            let mut g: Vec<f32> = common::random(n, 7000 + 31 * t + i as u64)
                .into_iter()
                .map(|x| x * scale)
                .collect();
            if n > 3 {
                g[1] = 0.0;
                g[2] = 1e-7;
            }
            g
        })
        .collect()
}

fn upload_grads(gpu: &Gpu, params: &[Param], grads: &[Vec<f32>]) {
    for (p, g) in params.iter().zip(grads) {
        p.grad.write(gpu, bytemuck::cast_slice(g)).unwrap();
    }
}

fn read(gpu: &Gpu, t: &Tensor) -> Vec<f32> {
    t.to_vec_f32(gpu).unwrap()
}

/// Run `steps` AdamW steps on the GPU and on the CPU with the same gradients and compare
/// weights, moments and norms after each step.
fn compare_with_cpu(cfg: AdamWConfig, grad_scale: f32, grad_size: f32) {
    let gpu = small_gpu();
    let (params, values) = random_params(&gpu, 1);
    assert_eq!(params[1].value.pieces().len(), 3, "b should be in pieces");
    assert_eq!(params[2].value.pieces().len(), 4, "c should be in pieces");
    let opt = AdamW::new(&gpu, &params, cfg.clone()).unwrap();
    assert_eq!(opt.state()[2].m.pieces().len(), 4);
    let mut cpu = CpuAdamW::new(cfg.clone(), &values);
    let mut clipped_steps = 0;
    for t in 1..=5u64 {
        let lr = 1e-2 / t as f32;
        let grads = random_grads(t, grad_size * (1.0 + t as f32 * 0.5));
        upload_grads(&gpu, &params, &grads);
        let mut enc = gpu.encoder();
        opt.record_step_scaled(&gpu, &mut enc, lr, t, grad_scale)
            .unwrap();
        gpu.submit(enc);
        let norm = cpu.step(&grads, lr as f64, t, grad_scale as f64);
        if cfg.max_grad_norm.is_some_and(|m| norm > m) {
            clipped_steps += 1;
        }
        let got_norm = read(&gpu, opt.grad_norm())[0] as f64;
        assert!(
            (got_norm - norm).abs() <= 1e-5 * norm,
            "step {t}: grad norm {got_norm}, CPU {norm}"
        );
        for (i, p) in params.iter().enumerate() {
            let what = format!("step {t} {}", p.name);
            assert_close64(
                &read(&gpu, &p.value),
                &cpu.params[i],
                1e-6,
                1e-5,
                &format!("{what} value"),
            );
            let (m, v) = opt.moments(&p.name).unwrap();
            assert_close64(&read(&gpu, m), &cpu.m[i], 1e-7, 1e-5, &format!("{what} m"));
            assert_close64(&read(&gpu, v), &cpu.v[i], 1e-9, 1e-5, &format!("{what} v"));
        }
    }
    gpu.finish_blocking().unwrap();
    if let Some(m) = cfg.max_grad_norm {
        // The threshold is meant to clip some steps and not others.
        assert!(
            (1..5).contains(&clipped_steps),
            "max_grad_norm {m} clipped {clipped_steps} of 5 steps"
        );
    }
}

#[test]
fn adamw_matches_a_cpu_adamw_on_tensors_in_pieces() {
    compare_with_cpu(
        AdamWConfig {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
            max_grad_norm: None,
        },
        1.0,
        1.0,
    );
}

#[test]
fn adamw_with_clipping_and_grad_scale_matches_a_cpu_adamw() {
    // The gradients' norms grow from about 0.5 * 1.5 * 25 (step 1) to 0.5 * 3.5 * 25
    // (step 5): a threshold of 35 clips the last steps only.
    compare_with_cpu(
        AdamWConfig {
            max_grad_norm: Some(35.0),
            weight_decay: 0.05,
            ..AdamWConfig::default()
        },
        0.5,
        1.0,
    );
}

#[test]
fn clipping_equals_an_update_with_prescaled_gradients() {
    let gpu = small_gpu();
    let grads = random_grads(1, 1.0);
    let norm = global_norm(&grads) as f32;
    let max_norm = 0.25 * norm;
    let base = AdamWConfig {
        weight_decay: 0.01,
        ..AdamWConfig::default()
    };

    // A: clipping on, raw gradients.
    let (pa, _) = random_params(&gpu, 2);
    let a = AdamW::new(
        &gpu,
        &pa,
        AdamWConfig {
            max_grad_norm: Some(max_norm as f64),
            ..base.clone()
        },
    )
    .unwrap();
    upload_grads(&gpu, &pa, &grads);
    let mut enc = gpu.encoder();
    a.record_step(&gpu, &mut enc, 1e-3, 1).unwrap();
    gpu.submit(enc);
    let device_norm = read(&gpu, a.grad_norm())[0];
    assert!((device_norm - norm).abs() <= 1e-5 * norm);

    // B: clipping off, gradients scaled on the host by torch's clip coefficient.
    let coef = (max_norm / (device_norm + 1e-6)).min(1.0);
    assert!(coef < 0.3);
    let scaled: Vec<Vec<f32>> = grads
        .iter()
        .map(|g| g.iter().map(|x| x * coef).collect())
        .collect();
    let (pb, _) = random_params(&gpu, 2);
    let b = AdamW::new(&gpu, &pb, base.clone()).unwrap();
    upload_grads(&gpu, &pb, &scaled);
    let mut enc = gpu.encoder();
    b.record_step(&gpu, &mut enc, 1e-3, 1).unwrap();
    gpu.submit(enc);

    for (x, y) in pa.iter().zip(&pb) {
        let (ma, va) = a.moments(&x.name).unwrap();
        let (mb, vb) = b.moments(&y.name).unwrap();
        for (ta, tb, what) in [(&x.value, &y.value, "value"), (ma, mb, "m"), (va, vb, "v")] {
            let (ga, gb) = (read(&gpu, ta), read(&gpu, tb));
            let gb64: Vec<f64> = gb.iter().map(|&v| v as f64).collect();
            assert_close64(&ga, &gb64, 1e-12, 2e-6, &format!("{} {what}", x.name));
        }
        // The gradients themselves are not modified by clipping.
        let gx = read(&gpu, &x.grad);
        assert_eq!(gx, grads[pa.iter().position(|p| p.name == x.name).unwrap()]);
    }

    // A threshold above the norm leaves the update bitwise unchanged.
    let (pc, _) = random_params(&gpu, 2);
    let c = AdamW::new(
        &gpu,
        &pc,
        AdamWConfig {
            max_grad_norm: Some(2.0 * norm as f64),
            ..base.clone()
        },
    )
    .unwrap();
    let (pd, _) = random_params(&gpu, 2);
    let d = AdamW::new(&gpu, &pd, base).unwrap();
    for (p, o) in [(&pc, &c), (&pd, &d)] {
        upload_grads(&gpu, p, &grads);
        let mut enc = gpu.encoder();
        o.record_step(&gpu, &mut enc, 1e-3, 1).unwrap();
        gpu.submit(enc);
    }
    for (x, y) in pc.iter().zip(&pd) {
        assert_eq!(read(&gpu, &x.value), read(&gpu, &y.value), "{}", x.name);
    }
}

#[test]
fn bad_settings_are_refused() {
    let gpu = small_gpu();
    let (params, _) = random_params(&gpu, 3);
    for cfg in [
        AdamWConfig {
            beta1: 1.0,
            ..AdamWConfig::default()
        },
        AdamWConfig {
            eps: 0.0,
            ..AdamWConfig::default()
        },
        AdamWConfig {
            max_grad_norm: Some(0.0),
            ..AdamWConfig::default()
        },
    ] {
        assert!(AdamW::new(&gpu, &params, cfg).is_err());
    }
    let opt = AdamW::new(&gpu, &params, AdamWConfig::default()).unwrap();
    let mut enc = gpu.encoder();
    let err = opt.record_step(&gpu, &mut enc, 1e-3, 0).unwrap_err();
    assert!(err.to_string().contains("counts from 1"), "{err}");
    let names: Vec<String> = opt.state_tensors().into_iter().map(|(n, _)| n).collect();
    assert_eq!(&names[..4], ["m.a", "v.a", "m.b", "v.b"]);
    let err = opt.load_state(&gpu, |_| None).unwrap_err();
    assert!(err.to_string().contains("m.a"), "{err}");
}

/// The ring is the step pipeline's back-pressure: with every slot in flight, recording the
/// next step waits for the oldest (so the host is never more than `depth` steps ahead), and
/// the values collected while waiting come out of the next poll, none lost or repeated.
#[test]
fn a_full_readback_ring_waits_for_the_oldest_step() {
    let gpu = small_gpu();
    let mut rb = StepReadback::new(&gpu, 2);
    let scalars: Vec<(Tensor, Tensor)> = (0..6)
        .map(|i| {
            (
                Tensor::from_f32(&gpu, &[1], &[i as f32 + 0.5]).unwrap(),
                Tensor::from_f32(&gpu, &[1], &[-(i as f32)]).unwrap(),
            )
        })
        .collect();
    for (i, (loss, norm)) in scalars.iter().enumerate() {
        let mut enc = gpu.encoder();
        rb.record_copy(&gpu, &mut enc, 10 + i as u64, loss, norm)
            .unwrap();
        let index = gpu.submit(enc);
        // Told the submission or not (then it waits for everything submitted), it waits.
        if i % 2 == 0 {
            rb.submitted(index);
        }
        assert!(
            rb.in_flight() <= 2,
            "step {i}: {} in flight",
            rb.in_flight()
        );
        assert_eq!(rb.depth(), 2, "the ring grew");
    }
    let mut got = rb.poll(&gpu).unwrap();
    assert!(
        got.len() >= 4,
        "the steps waited for come out of poll: {got:?}"
    );
    // An encoder dropped without being submitted frees its slot.
    let mut enc = gpu.encoder();
    rb.record_copy(&gpu, &mut enc, 99, &scalars[0].0, &scalars[0].1)
        .unwrap();
    drop(enc);
    got.extend(pollster::block_on(rb.finish(&gpu)).unwrap());
    let want: Vec<StepValues> = (0..6)
        .map(|i| StepValues {
            step: 10 + i as u64,
            loss: i as f32 + 0.5,
            grad_norm: -(i as f32),
            nonfinite: NonFinite::None,
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(rb.in_flight(), 0);
}

// ---------------------------------------------------------------------------------------
// The model with PyTorch fixtures.
// ---------------------------------------------------------------------------------------

fn f32s<'a>(map: &'a std::collections::BTreeMap<String, HostTensor>, name: &str) -> &'a [f32] {
    map.get(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .data
        .as_f32()
        .unwrap()
}

/// torch.optim.AdamW as the fixtures ran it: constant lr, no clipping.
fn fixture_config() -> AdamWConfig {
    AdamWConfig {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
        max_grad_norm: None,
    }
}

struct Trainer {
    model: Decoder,
    opt: AdamW,
    readback: StepReadback,
    /// Collected from the readback as they arrive.
    values: Vec<StepValues>,
    /// Read synchronously right after each step's submission.
    sync: Vec<StepValues>,
}

impl Trainer {
    fn new(gpu: &Gpu, name: &str, cfg: AdamWConfig) -> Trainer {
        let dir = common::fixture(name);
        let ckpt = load(&dir).unwrap();
        let path = dir.join("batch.safetensors");
        let (b, t, tokens) = batch_tokens(&read_safetensors(&path).unwrap(), &path).unwrap();
        let model = Decoder::new(gpu, &ckpt.config, b, t).unwrap();
        model
            .load_params(gpu, |n| ckpt.tensors.get(n).map(|t| t.data.as_slice()))
            .unwrap();
        model.set_batch(gpu, &tokens).unwrap();
        let opt = AdamW::new(gpu, model.params(), cfg).unwrap();
        Trainer {
            model,
            opt,
            readback: StepReadback::new(gpu, 2),
            values: Vec::new(),
            sync: Vec::new(),
        }
    }

    /// One optimizer step t: zero grads, forward, backward, AdamW, all in one submission.
    fn step(&mut self, gpu: &Gpu, t: u64, read_sync: bool) {
        let mut enc = gpu.encoder();
        self.model.record_zero_grads(&mut enc);
        self.model.record_forward(&mut enc);
        self.model.record_backward(&mut enc);
        self.opt
            .record_step(gpu, &mut enc, self.opt.config().lr as f32, t)
            .unwrap();
        self.readback
            .record_copy(gpu, &mut enc, t, self.model.loss(), self.opt.grad_norm())
            .unwrap();
        gpu.submit(enc);
        self.values.extend(self.readback.poll(gpu).unwrap());
        if read_sync {
            self.sync.push(StepValues {
                step: t,
                loss: read(gpu, self.model.loss())[0],
                grad_norm: read(gpu, self.opt.grad_norm())[0],
                nonfinite: NonFinite::None,
            });
        }
    }

    fn finish(&mut self, gpu: &Gpu) {
        self.values
            .extend(pollster::block_on(self.readback.finish(gpu)).unwrap());
        assert_eq!(self.readback.in_flight(), 0);
    }

    fn losses(&self) -> Vec<f32> {
        self.values.iter().map(|v| v.loss).collect()
    }

    fn params(&self, gpu: &Gpu) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        pollster::block_on(self.model.read_params(gpu)).unwrap()
    }

    fn state(&self, gpu: &Gpu) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        pollster::block_on(self.opt.read_state(gpu)).unwrap()
    }
}

fn check_losses(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: number of losses");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            ((g - w) / w).abs() <= 1e-4,
            "{name}: loss before step {}: {g}, PyTorch {w}",
            i + 1
        );
    }
}

#[test]
fn four_adamw_steps_match_pytorch_on_pico_mini() {
    let gpu = common::gpu();
    let mut tr = Trainer::new(&gpu, "pico_mini", fixture_config());
    for t in 1..=4 {
        tr.step(&gpu, t, false);
    }
    tr.finish(&gpu);
    assert_eq!(
        tr.values.iter().map(|v| v.step).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let expected =
        read_safetensors(&common::fixture("pico_mini").join("expected.safetensors")).unwrap();
    check_losses("pico_mini", &tr.losses(), f32s(&expected, "adamw_losses"));
    let mut worst = (0f32, String::new());
    for (name, _, got) in tr.params(&gpu) {
        let want = f32s(&expected, &format!("adamw_final.{name}"));
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let d = (g - w).abs();
            assert!(
                d <= 1e-5,
                "adamw_final.{name}[{i}]: got {g}, PyTorch {w} (difference {d:e})"
            );
            if d > worst.0 {
                worst = (d, format!("{name}[{i}]"));
            }
        }
    }
    eprintln!(
        "pico_mini after 4 AdamW steps: largest weight difference {:e} at {}",
        worst.0, worst.1
    );
}

#[test]
fn four_adamw_steps_match_pytorch_losses_on_pico_tiny_shape() {
    let gpu = common::gpu();
    let mut tr = Trainer::new(&gpu, "pico_tiny_shape", fixture_config());
    for t in 1..=4 {
        tr.step(&gpu, t, false);
    }
    tr.finish(&gpu);
    let expected =
        read_safetensors(&common::fixture("pico_tiny_shape").join("expected.safetensors")).unwrap();
    check_losses(
        "pico_tiny_shape",
        &tr.losses(),
        f32s(&expected, "adamw_losses"),
    );
}

#[test]
fn grad_norm_and_readback_match_synchronous_reads() {
    let gpu = common::gpu();
    let mut tr = Trainer::new(
        &gpu,
        "pico_mini",
        AdamWConfig {
            max_grad_norm: Some(1.0),
            ..fixture_config()
        },
    );
    for t in 1..=5 {
        tr.step(&gpu, t, true);
        // The norm on the device against the downloaded gradients (AdamW leaves them as
        // they are).
        let grads: Vec<Vec<f32>> = tr
            .model
            .params()
            .iter()
            .map(|p| read(&gpu, &p.grad))
            .collect();
        let want = global_norm(&grads);
        let got = tr.sync.last().unwrap().grad_norm as f64;
        assert!(
            (got - want).abs() <= 1e-5 * want,
            "step {t}: grad norm {got}, from the downloaded gradients {want}"
        );
    }
    // Each synchronous read drove the device, so the polls of later steps collected the
    // earlier steps' values without waiting.
    assert!(tr.values.len() >= 4, "{:?}", tr.values);
    tr.finish(&gpu);
    assert_eq!(
        tr.values, tr.sync,
        "readback values differ from synchronous reads"
    );
}

#[test]
fn optimizer_state_round_trips_through_read_and_load() {
    let gpu = common::gpu();
    let mut whole = Trainer::new(&gpu, "pico_mini", fixture_config());
    let mut first = Trainer::new(&gpu, "pico_mini", fixture_config());
    for t in 1..=2 {
        whole.step(&gpu, t, false);
        first.step(&gpu, t, false);
    }
    let params = first.params(&gpu);
    let state = first.state(&gpu);
    assert_eq!(state.len(), 2 * params.len());
    assert!(state[0].0.starts_with("m.") && state[1].0.starts_with("v."));
    // Resume in a fresh model and optimizer.
    let mut resumed = Trainer::new(&gpu, "pico_mini", fixture_config());
    resumed
        .model
        .load_params(&gpu, |n| {
            params.iter().find(|p| p.0 == n).map(|p| p.2.as_slice())
        })
        .unwrap();
    resumed
        .opt
        .load_state(&gpu, |n| {
            state.iter().find(|s| s.0 == n).map(|s| s.2.as_slice())
        })
        .unwrap();
    for t in 3..=4 {
        whole.step(&gpu, t, false);
        resumed.step(&gpu, t, false);
    }
    assert_eq!(whole.params(&gpu), resumed.params(&gpu));
    assert_eq!(whole.state(&gpu), resumed.state(&gpu));
}

#[test]
fn two_identical_runs_are_bitwise_equal() {
    let gpu = common::gpu();
    let cfg = AdamWConfig {
        max_grad_norm: Some(0.5),
        ..fixture_config()
    };
    let run = || {
        let mut tr = Trainer::new(&gpu, "pico_mini", cfg.clone());
        for t in 1..=4 {
            tr.step(&gpu, t, false);
        }
        tr.finish(&gpu);
        (tr.params(&gpu), tr.state(&gpu), tr.values.clone())
    };
    let (a, b) = (run(), run());
    let bits = |v: &[(String, Vec<usize>, Vec<f32>)]| -> Vec<(String, Vec<u32>)> {
        v.iter()
            .map(|(n, _, x)| (n.clone(), x.iter().map(|f| f.to_bits()).collect()))
            .collect()
    };
    assert!(bits(&a.0) == bits(&b.0), "weights differ between runs");
    assert!(
        bits(&a.1) == bits(&b.1),
        "optimizer state differs between runs"
    );
    let vbits = |v: &[StepValues]| -> Vec<(u64, u32, u32)> {
        v.iter()
            .map(|s| (s.step, s.loss.to_bits(), s.grad_norm.to_bits()))
            .collect()
    };
    assert_eq!(vbits(&a.2), vbits(&b.2));
    // The clip threshold is below the norm, so clipping was exercised.
    assert!(a.2.iter().all(|v| v.grad_norm > 0.5), "{:?}", a.2);
}
