//! ReLoRA's device kernels against `reference::lora`: the counter-based RNG and every mask it
//! drives are compared bit for bit (integer arithmetic only, so every adapter must agree);
//! dropout, kaiming re-initialisation and random pruning are also checked statistically, and
//! magnitude pruning against the exact CPU order statistic, with tensors stored in pieces.
//!
//! Statistical bounds: a count of n Bernoulli(q) trials has standard deviation
//! sqrt(n q (1 - q)); each test allows 6 of them (a false failure about once in 5e8 runs).
//! For U(-b, b) the mean of n draws has deviation b / sqrt(3n) and the (population) variance
//! b^2 sqrt(4 / (45 n)); 6 of each are allowed.

mod common;

use common::{assert_close, gpu, gpu_with, random};
use wgtrain::formulas::kernels::{KernelPins, LoraKernel};
use wgtrain::gpu::{run_all, DType, Dispatch, Gpu};
use wgtrain::model::linear::{Linear, LoraBackward};
use wgtrain::model::program::{Memory, Param, Program};
use wgtrain::ops::lora::{self, MagnitudeRule, MagnitudeScratch, Seed};
use wgtrain::ops::matmul::Epilogue;
use wgtrain::ops::{swiglu, Matmul, MatmulSpec};
use wgtrain::reference::lora as reflora;
use wgtrain::{GpuOptions, Tensor};

fn upload(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_f32(gpu, shape, data).unwrap()
}

/// A GPU whose tensors are split into pieces of `rows` rows of `row_len` f32.
fn gpu_in_pieces(row_len: usize, rows: usize) -> Gpu {
    gpu_with(GpuOptions {
        max_binding_bytes: Some((row_len * rows * 4) as u64),
        ..Default::default()
    })
}

fn run(gpu: &Gpu, dispatches: &[Dispatch]) {
    run_all(gpu, dispatches);
    gpu.finish_blocking().unwrap();
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

fn binomial_bound(n: usize, q: f64) -> f64 {
    6.0 * (n as f64 * q * (1.0 - q)).sqrt()
}

#[test]
fn rng_words_match_the_reference_bit_for_bit_and_follow_set_seed() {
    let gpu = gpu_in_pieces(1, 1000);
    let n = 4099;
    let out = Tensor::zeros(&gpu, &[n], DType::U32).unwrap();
    assert!(out.pieces().len() > 1);
    let seed = Seed::new(&gpu, 0);
    for stream in [0u32, 7, u32::MAX] {
        for word in [0u32, 1] {
            let d = lora::random_words(&gpu, &out, &seed, stream, word).unwrap();
            // The same dispatches follow the seed written before each submission.
            for s in [0u32, 12345, 0xdead_beef, u32::MAX] {
                seed.set_seed(&gpu, s);
                run(&gpu, &d);
                let got = out.to_vec_u32(&gpu).unwrap();
                let want: Vec<u32> = (0..n as u32)
                    .map(|i| reflora::random_words(s, stream, i)[word as usize])
                    .collect();
                assert_eq!(got, want, "seed {s} stream {stream} word {word}");
            }
        }
    }
    // Random123's known answer for counter (0, 0), key 0.
    seed.set_seed(&gpu, 0);
    for word in [0, 1] {
        run(
            &gpu,
            &lora::random_words(&gpu, &out, &seed, 0, word).unwrap(),
        );
        let first = out.to_vec_u32(&gpu).unwrap()[0];
        assert_eq!(first, [0xff1d_ae59, 0x6cd1_0df2][word as usize]);
    }
}

#[test]
fn uniform_draws_are_uniform() {
    // Deciles of 100k reference draws (the GPU equals the reference bit for bit, above).
    let n = 100_000;
    let mut bins = [0usize; 10];
    for i in 0..n as u32 {
        let u = reflora::uniform(42, 3, i);
        assert!((0.0..1.0).contains(&u));
        bins[(u * 10.0) as usize] += 1;
    }
    let bound = binomial_bound(n, 0.1);
    for (b, &c) in bins.iter().enumerate() {
        assert!(
            (c as f64 - n as f64 * 0.1).abs() <= bound,
            "decile {b}: {c} of {n} (bound {bound:.0})"
        );
    }
}

#[test]
fn dropout_p0_is_the_identity_exactly() {
    let gpu = gpu();
    let (rows, cols) = (37, 129);
    let mut x = random(rows * cols, 1);
    x[0] = -0.0;
    x[1] = 1e-40; // subnormal
    let g = random(rows * cols, 2);
    let dx0 = random(rows * cols, 3);
    let (tx, tout, tg, tdx) = (
        upload(&gpu, &[rows, cols], &x),
        Tensor::zeros(&gpu, &[rows, cols], DType::F32).unwrap(),
        upload(&gpu, &[rows, cols], &g),
        upload(&gpu, &[rows, cols], &dx0),
    );
    let seed = Seed::new(&gpu, 99);
    let f = lora::dropout_forward(&gpu, &tx, &tout, 0.0, &seed, 5).unwrap();
    let b = lora::dropout_backward_accumulate(&gpu, &tg, &tdx, 0.0, &seed, 5).unwrap();
    run(&gpu, &[f, b]);
    let out = tout.to_vec_f32(&gpu).unwrap();
    // x * 1.0 is x; a subnormal may be flushed by the adapter, so compare it by value.
    assert_eq!(bits(&out[..1]), bits(&x[..1]));
    assert!(out[1] == x[1] || out[1] == 0.0);
    assert_eq!(bits(&out[2..]), bits(&x[2..]), "p = 0 forward");
    let want: Vec<f32> = dx0.iter().zip(&g).map(|(a, b)| a + b).collect();
    assert_eq!(
        bits(&tdx.to_vec_f32(&gpu).unwrap()),
        bits(&want),
        "p = 0 backward"
    );
}

#[test]
fn dropout_matches_the_reference_and_keeps_about_1_minus_p() {
    let gpu = gpu();
    let (rows, cols) = (400, 250);
    let n = rows * cols;
    // Inputs with no zeros, so a zero output means a dropped element.
    let x: Vec<f32> = random(n, 10).iter().map(|v| v + 2.0).collect();
    let g: Vec<f32> = random(n, 11).iter().map(|v| v - 2.0).collect();
    let dx0 = random(n, 12);
    let (tx, tout, tg, tdx) = (
        upload(&gpu, &[rows, cols], &x),
        Tensor::zeros(&gpu, &[rows, cols], DType::F32).unwrap(),
        upload(&gpu, &[rows, cols], &g),
        upload(&gpu, &[rows, cols], &dx0),
    );
    let seed = Seed::new(&gpu, 0);
    let (p, stream) = (0.1f32, 3u32);
    // Built once; each step only writes the seed.
    let step = [
        lora::dropout_forward(&gpu, &tx, &tout, p, &seed, stream).unwrap(),
        lora::dropout_backward_accumulate(&gpu, &tg, &tdx, p, &seed, stream).unwrap(),
    ];
    let mut masks = Vec::new();
    for s in [2024u32, 2025] {
        seed.set_seed(&gpu, s);
        tdx.write(&gpu, bytemuck::cast_slice(&dx0)).unwrap();
        run(&gpu, &step);
        let out = tout.to_vec_f32(&gpu).unwrap();
        let want = reflora::dropout_forward(&x, p, s, stream);
        assert_eq!(bits(&out), bits(&want), "forward, seed {s}");
        let mask = reflora::dropout_mask(n, p, s, stream);
        let kept = mask.iter().filter(|&&k| k).count();
        assert_eq!(kept, out.iter().filter(|&&v| v != 0.0).count());
        let bound = binomial_bound(n, p as f64);
        assert!(
            (kept as f64 - n as f64 * (1.0 - p as f64)).abs() <= bound,
            "kept {kept} of {n} at p = {p} (bound {bound:.0})"
        );
        // Backward: the same mask (dropped entries untouched, bit for bit), kept entries
        // accumulate d_out / (1 - p) (a fused multiply-add may round once less).
        let dx = tdx.to_vec_f32(&gpu).unwrap();
        let mut want = dx0.clone();
        reflora::dropout_backward_accumulate(&g, &mut want, p, s, stream);
        for i in 0..n {
            if !mask[i] {
                assert_eq!(dx[i].to_bits(), dx0[i].to_bits(), "dropped {i} changed");
            }
        }
        assert_close(&dx, &want, 1e-6, 1e-6, "dropout backward");
        masks.push(mask);
    }
    assert_ne!(masks[0], masks[1], "a new seed gives a new mask");
    // Another stream with the same seed: another mask.
    let other = reflora::dropout_mask(n, p, 2025, stream + 1);
    assert_ne!(other, masks[1]);
    // p = 1 drops everything.
    let f = lora::dropout_forward(&gpu, &tx, &tout, 1.0, &seed, stream).unwrap();
    run(&gpu, &[f]);
    assert!(tout.to_vec_f32(&gpu).unwrap().iter().all(|&v| v == 0.0));
    assert!(lora::dropout_forward(&gpu, &tx, &tout, 1.5, &seed, 0).is_err());
}

#[test]
fn kaiming_uniform_matches_the_reference_in_pieces_with_the_right_moments() {
    let (r, inp) = (64, 1024);
    let gpu = gpu_in_pieces(inp, 5);
    let a = Tensor::zeros(&gpu, &[r, inp], DType::F32).unwrap();
    assert!(a.pieces().len() > 1);
    let seed = Seed::new(&gpu, 7);
    let d = lora::kaiming_uniform(&gpu, &a, &seed, 11).unwrap();
    run(&gpu, &d);
    let got = a.to_vec_f32(&gpu).unwrap();
    let want = reflora::kaiming_uniform(r * inp, inp, 7, 11);
    assert_eq!(bits(&got), bits(&want));

    let b = 1.0 / (inp as f64).sqrt();
    assert_eq!(reflora::kaiming_bound(inp) as f64, b);
    let n = got.len() as f64;
    assert!(got.iter().all(|&v| (v as f64).abs() <= b));
    let max = got.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    assert!(max > 0.999 * b, "max |a| {max} vs bound {b}");
    let mean = got.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = got.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    assert!(mean.abs() <= 6.0 * b / (3.0 * n).sqrt(), "mean {mean}");
    assert!(
        (var - b * b / 3.0).abs() <= 6.0 * b * b * (4.0 / (45.0 * n)).sqrt(),
        "variance {var} vs {}",
        b * b / 3.0
    );
    // Deterministic, and another seed gives other values.
    run(&gpu, &d);
    assert_eq!(bits(&a.to_vec_f32(&gpu).unwrap()), bits(&want));
    seed.set_seed(&gpu, 8);
    run(&gpu, &d);
    assert_eq!(
        bits(&a.to_vec_f32(&gpu).unwrap()),
        bits(&reflora::kaiming_uniform(r * inp, inp, 8, 11))
    );
}

/// Moments with no zero entries (m of both signs, v positive), so zeros mark pruning.
fn moments(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let m = random(n, seed)
        .iter()
        .map(|&v| if v >= 0.0 { v + 0.01 } else { v })
        .collect();
    let v = random(n, seed + 1).iter().map(|&v| v * v + 1e-3).collect();
    (m, v)
}

#[test]
fn random_pruning_zeroes_the_requested_fraction_and_equals_the_reference() {
    let (rows, cols) = (250, 400);
    let n = rows * cols;
    let gpu = gpu_in_pieces(cols, 64);
    let seed = Seed::new(&gpu, 0);
    for (ratio, s, stream) in [(0.999f32, 1u32, 0u32), (0.5, 2, 9)] {
        let (m, v) = moments(n, 20);
        let (tm, tv) = (
            upload(&gpu, &[rows, cols], &m),
            upload(&gpu, &[rows, cols], &v),
        );
        assert!(tm.pieces().len() > 1);
        seed.set_seed(&gpu, s);
        let d = lora::prune_random(&gpu, &tm, &tv, ratio, &seed, stream).unwrap();
        run(&gpu, &d);
        let (gm, gv) = (tm.to_vec_f32(&gpu).unwrap(), tv.to_vec_f32(&gpu).unwrap());
        let (mut wm, mut wv) = (m.clone(), v.clone());
        reflora::prune_random(&mut wm, &mut wv, ratio, s, stream);
        assert_eq!(bits(&gm), bits(&wm), "m at ratio {ratio}");
        assert_eq!(bits(&gv), bits(&wv), "v at ratio {ratio}");
        let bound = binomial_bound(n, ratio as f64);
        for (t, name) in [(&gm, "m"), (&gv, "v")] {
            let zeros = t.iter().filter(|&&x| x == 0.0).count();
            assert!(
                (zeros as f64 - n as f64 * ratio as f64).abs() <= bound,
                "{name}: {zeros} of {n} zeroed at ratio {ratio} (bound {bound:.0})"
            );
        }
        // Kept entries are untouched; m and v have independent masks.
        assert!(gm.iter().zip(&m).all(|(g, o)| *g == 0.0 || g == o));
        let same = gm
            .iter()
            .zip(&gv)
            .filter(|(a, b)| (**a == 0.0) == (**b == 0.0))
            .count();
        let q = ratio as f64;
        let p_same = q * q + (1.0 - q) * (1.0 - q);
        assert!(
            (same as f64 - n as f64 * p_same).abs() <= binomial_bound(n, p_same),
            "m and v masks agree at {same} of {n} positions"
        );
        // Deterministic: the same seed and stream again zero nothing new.
        run(&gpu, &d);
        assert_eq!(bits(&tm.to_vec_f32(&gpu).unwrap()), bits(&wm));
    }
}

/// Magnitudes with many ties (a few distinct values), both signs, -0, a subnormal and inf.
fn tied_moments(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut m: Vec<f32> = random(n, seed)
        .iter()
        .map(|&v| (v * 20.0).round() / 16.0)
        .collect();
    let v: Vec<f32> = random(n, seed + 1)
        .iter()
        .map(|&v| ((v + 1.0) * 8.0).round() / 8.0)
        .collect();
    m[0] = -0.0;
    m[1] = f32::INFINITY;
    m[2] = 1e-40;
    m[n - 1] = f32::NEG_INFINITY;
    (m, v)
}

#[test]
fn magnitude_pruning_equals_the_exact_order_statistic_in_pieces() {
    let cols = 40;
    let gpu = gpu_in_pieces(cols, 64);
    let scratch = MagnitudeScratch::new(&gpu).unwrap();
    for rows in [1usize, 3, 300] {
        let n = rows * cols;
        for ratio in [0.0f32, 0.5, 0.9, 0.999, 1.0] {
            for rule in [MagnitudeRule::ByM, MagnitudeRule::Each] {
                let (m, v) = tied_moments(n, rows as u64);
                let tm = upload(&gpu, &[rows, cols], &m);
                let tv = upload(&gpu, &[rows, cols], &v);
                let d = lora::prune_magnitude(&gpu, &tm, &tv, ratio, rule, &scratch).unwrap();
                run(&gpu, &d);
                let (gm, gv) = (tm.to_vec_f32(&gpu).unwrap(), tv.to_vec_f32(&gpu).unwrap());
                let (mut wm, mut wv) = (m.clone(), v.clone());
                reflora::prune_magnitude(&mut wm, &mut wv, ratio, rule);
                let what = format!("{rows}x{cols} ratio {ratio} {rule:?}");
                assert_eq!(bits(&gm), bits(&wm), "m, {what}");
                assert_eq!(bits(&gv), bits(&wv), "v, {what}");
                // The scratch holds the last threshold selected: |m|'s, or |v|'s for Each.
                let last = if rule == MagnitudeRule::ByM { &m } else { &v };
                let key = scratch.state().to_vec_u32(&gpu).unwrap()[0];
                assert_eq!(
                    Some(key),
                    reflora::magnitude_threshold(last, ratio),
                    "{what}"
                );
                // The rule itself: the threshold is the rank floor(ratio (n - 1)) magnitude;
                // everything at or below it is zeroed (ties too), everything above kept.
                let mut sorted: Vec<f32> = m.iter().map(|x| x.abs()).collect();
                sorted.sort_by(f32::total_cmp);
                let t = sorted[reflora::magnitude_rank(n, ratio)];
                for i in 0..n {
                    let zeroed = m[i].abs() <= t;
                    assert_eq!(gm[i] == 0.0, zeroed || m[i] == 0.0, "{what}: m[{i}]");
                    if rule == MagnitudeRule::ByM {
                        assert_eq!(gv[i] == 0.0, zeroed || v[i] == 0.0, "{what}: v[{i}]");
                    }
                }
                let zeroed = m.iter().filter(|x| x.abs() <= t).count();
                assert!(zeroed > reflora::magnitude_rank(n, ratio));
            }
        }
    }
}

#[test]
fn magnitude_pruning_shares_one_scratch_across_parameters_and_is_deterministic() {
    let gpu = gpu_in_pieces(64, 50);
    let scratch = MagnitudeScratch::new(&gpu).unwrap();
    let shapes = [[16usize, 64], [300, 64], [16, 1]];
    let mut tensors = Vec::new();
    let mut dispatches = Vec::new();
    for (i, shape) in shapes.iter().enumerate() {
        let n = shape[0] * shape[1];
        let (m, v) = moments(n, 40 + i as u64);
        let (tm, tv) = (upload(&gpu, shape, &m), upload(&gpu, shape, &v));
        dispatches.extend(
            lora::prune_magnitude(&gpu, &tm, &tv, 0.9, MagnitudeRule::Each, &scratch).unwrap(),
        );
        tensors.push((m, v, tm, tv));
    }
    run(&gpu, &dispatches);
    let mut first = Vec::new();
    for (m, v, tm, tv) in &tensors {
        let (mut wm, mut wv) = (m.clone(), v.clone());
        reflora::prune_magnitude(&mut wm, &mut wv, 0.9, MagnitudeRule::Each);
        let (gm, gv) = (tm.to_vec_f32(&gpu).unwrap(), tv.to_vec_f32(&gpu).unwrap());
        assert_eq!(bits(&gm), bits(&wm));
        assert_eq!(bits(&gv), bits(&wv));
        first.push((gm, gv));
    }
    // Run again from the same inputs: the same bits.
    for (m, v, tm, tv) in &tensors {
        tm.write(&gpu, bytemuck::cast_slice(m)).unwrap();
        tv.write(&gpu, bytemuck::cast_slice(v)).unwrap();
    }
    run(&gpu, &dispatches);
    for ((_, _, tm, tv), (gm, gv)) in tensors.iter().zip(&first) {
        assert_eq!(bits(&tm.to_vec_f32(&gpu).unwrap()), bits(gm));
        assert_eq!(bits(&tv.to_vec_f32(&gpu).unwrap()), bits(gv));
    }
}

#[test]
fn merge_then_reset_with_w_in_pieces() {
    // W [out, in] += s B A through the matmul, W stored in pieces; then B = 0 and A re-drawn,
    // as a ReLoRA reset does.
    let (out, r, inp, s) = (200usize, 16usize, 48usize, 2.0f32);
    let gpu = gpu_in_pieces(inp, 64);
    let w0 = random(out * inp, 1);
    let b0 = random(out * r, 2);
    let a0 = random(r * inp, 3);
    let (tw, tb, ta) = (
        upload(&gpu, &[out, inp], &w0),
        upload(&gpu, &[out, r], &b0),
        upload(&gpu, &[r, inp], &a0),
    );
    assert!(tw.pieces().len() > 1 && tb.pieces().len() > 1);
    let merge = Matmul::new(&gpu, &tb, &ta, &tw, MatmulSpec::nn().scale(s).accumulate()).unwrap();
    let seed = Seed::new(&gpu, 77);
    let reinit = lora::kaiming_uniform(&gpu, &ta, &seed, 4).unwrap();
    let mut encoder = gpu.encoder();
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        merge.record(&mut pass);
        for d in &reinit {
            d.record(&mut pass);
        }
    }
    for p in tb.pieces() {
        encoder.clear_buffer(&p.buffer, 0, None);
    }
    gpu.submit(encoder);
    gpu.finish_blocking().unwrap();

    let mut want = w0.clone();
    reflora::merge(&mut want, &b0, &a0, out, r, inp, s);
    let mut via_matmul = w0.clone();
    wgtrain::reference::matmul(
        &b0,
        &[out, r],
        &a0,
        &[r, inp],
        &mut via_matmul,
        &[out, inp],
        &MatmulSpec::nn().scale(s).accumulate(),
    );
    assert_close(
        &want,
        &via_matmul,
        1e-6,
        1e-6,
        "reference merge vs reference matmul",
    );
    assert_close(&tw.to_vec_f32(&gpu).unwrap(), &want, 2e-5, 1e-5, "merge");
    assert!(tb.to_vec_f32(&gpu).unwrap().iter().all(|&v| v == 0.0));
    assert_eq!(
        bits(&ta.to_vec_f32(&gpu).unwrap()),
        bits(&reflora::kaiming_uniform(r * inp, inp, 77, 4))
    );
}

/// A linear `[out, in]` (with LoRA adapters of rank 4 when `lora`), its parameters random.
fn linear_params(gpu: &Gpu, inp: usize, out: usize, lora: bool, seed: u64) -> Vec<Param> {
    let param = |name: &str, shape: &[usize], seed: u64, trainable: bool| Param {
        name: name.into(),
        value: upload(gpu, shape, &random(shape.iter().product(), seed)),
        grad: Tensor::zeros(gpu, if trainable { shape } else { &[1] }, DType::F32).unwrap(),
        trainable,
    };
    let mut params = vec![param("weight", &[out, inp], seed, !lora)];
    if lora {
        params.push(param("A_lora.weight", &[4, inp], seed + 1, true));
        params.push(param("B_lora.weight", &[out, 4], seed + 2, true));
    }
    params
}

fn program_dispatches(prog: Program) -> Vec<Dispatch> {
    prog.0.into_iter().flat_map(|s| s.dispatches).collect()
}

/// SwiGLU in the epilogues of a linear (forward: u's product; backward: d_act's) gives what
/// the linear followed by the separate SwiGLU op gives, with LoRA and its dropout too (the
/// fused backward forms the adapters' share of dx first and lets the base product finish);
/// so does the adapters' share of dx as the dx product's low-rank term, mask included.
#[test]
fn swiglu_in_a_linears_epilogues_equals_the_separate_op() {
    let separate = gpu();
    let fused_lora = gpu_with(GpuOptions {
        kernels: KernelPins {
            lora: LoraKernel::Fused,
            ..KernelPins::default()
        },
        ..Default::default()
    });
    let (n, inp, out) = (6, 10, 12);
    for (lora, p) in [(false, 0.0), (true, 0.0), (true, 0.25)] {
        let what = format!("lora {lora} dropout {p}");
        // Copies of the same layer, so gradients accumulate separately. The reference run:
        // separate ops throughout. Then SwiGLU in the epilogues; LoRA's products fused
        // (forward and dx) with the separate SwiGLU; and both fused (the adapters' share of
        // dx formed first, as w_2's is).
        let variants = [
            (false, LoraBackward::Buffered, LoraKernel::Separate),
            (true, LoraBackward::Buffered, LoraKernel::Separate),
            (false, LoraBackward::Fused, LoraKernel::Fused),
            (true, LoraBackward::Buffered, LoraKernel::Fused),
        ];
        let runs: Vec<_> = variants
            .into_iter()
            .map(|(fused, backward, pin)| {
                let gpu: &Gpu = if pin.fused() { &fused_lora } else { &separate };
                let x = upload(gpu, &[n, inp], &random(n * inp, 40));
                let dy_act = upload(gpu, &[n, out], &random(n * out, 41));
                let gate: Vec<f32> = random(n * out, 42).iter().map(|v| 4.0 * v).collect();
                let gate = upload(gpu, &[n, out], &gate);
                let seed = Seed::new(gpu, 77);
                let params = linear_params(gpu, inp, out, lora, 50);
                let mut mem = Memory::new(gpu);
                let layer = if lora {
                    Linear::lora(&mut mem, &params, 0, 1, 2, n, 2.0, p, 3, backward).unwrap()
                } else {
                    Linear::plain(0)
                };
                let z = |shape: &[usize]| Tensor::zeros(gpu, shape, DType::F32).unwrap();
                let (u, act, dx, dg, du) = (
                    z(&[n, out]),
                    z(&[n, out]),
                    z(&[n, inp]),
                    z(&[n, inp]),
                    z(&[n, inp]),
                );
                let gate_in = upload(gpu, &[n, inp], &random(n * inp, 43));
                let up_in = upload(gpu, &[n, inp], &random(n * inp, 44));
                let mut prog = Program::default();
                let dropout = p > 0.0;
                if fused {
                    let forward = Epilogue::SwiGlu {
                        gate: &gate,
                        act: &act,
                    };
                    layer
                        .forward_fused(gpu, &params, &mut prog, &seed, &x, &u, dropout, forward)
                        .unwrap();
                    let backward = Epilogue::SwiGluBackward {
                        gate: &gate_in,
                        up: &up_in,
                        d_gate: &dg,
                        d_up: &du,
                    };
                    layer
                        .backward_fused(
                            gpu, &params, &mut prog, &seed, &x, &dy_act, &dx, false, backward,
                        )
                        .unwrap();
                } else {
                    layer
                        .forward(gpu, &params, &mut prog, &seed, &x, &u, dropout)
                        .unwrap();
                    prog.push("swiglu", [swiglu::forward(gpu, &gate, &u, &act).unwrap()]);
                    layer
                        .backward(gpu, &params, &mut prog, &seed, &x, &dy_act, &dx, false)
                        .unwrap();
                    let sep = swiglu::backward(gpu, &gate_in, &up_in, &dx, &dg, &du).unwrap();
                    prog.push("swiglu", [sep]);
                }
                run(gpu, &program_dispatches(prog));
                let read = |t: &Tensor| t.to_vec_f32(gpu).unwrap();
                let mut outputs = vec![read(&u), read(&act), read(&dg), read(&du)];
                outputs.extend(params.iter().filter(|p| p.trainable).map(|p| read(&p.grad)));
                outputs
            })
            .collect();
        let names = ["u", "act", "d_gate", "d_up", "grad 0", "grad 1"];
        assert_eq!(runs[0].len(), runs[1].len());
        for (i, (separate, fused)) in runs[0].iter().zip(&runs[1]).enumerate() {
            assert_close(
                fused,
                separate,
                1e-5,
                1e-5,
                &format!("{what}: {}", names[i]),
            );
        }
        assert!(
            runs[0][3].iter().any(|v| *v != 0.0),
            "{what}: d_up is not all zero"
        );
    }
}
