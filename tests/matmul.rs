//! The matmul family on the GPU against the f64 CPU reference: three layouts, every kernel,
//! ragged and tiny shapes, batching and broadcasting, the epilogue, tensors bound in pieces,
//! and grids folded past the dispatch-dimension limit.

mod common;

use common::{assert_close, gpu, gpu_with, random};
use wgtrain::gpu::DType;
use wgtrain::ops::lora;
use wgtrain::ops::matmul::{Epilogue, LowRank, LowRankDropout};
use wgtrain::ops::{Matmul, MatmulKernel, MatmulSpec};
use wgtrain::{reference, Gpu, GpuOptions, Tensor};

/// f32 products of K terms in [-1, 1): error grows like sqrt(K) * eps; this bound holds with
/// a wide margin for K up to a few thousand.
fn tol(k: usize) -> (f32, f32) {
    (1e-5 * (k as f32).sqrt().max(1.0) * 4.0, 1e-5)
}

struct Case {
    batch_a: usize,
    batch_b: usize,
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
}

fn shape(batch: usize, r: usize, c: usize) -> Vec<usize> {
    if batch == 1 {
        vec![r, c]
    } else {
        vec![batch, r, c]
    }
}

/// Run one case on the GPU and the reference; returns how many dispatches the op needed.
fn check(gpu: &Gpu, case: &Case, spec: MatmulSpec, seed: u64) -> usize {
    let (m, n, k) = (case.m, case.n, case.k);
    let a_shape = if spec.trans_a {
        shape(case.batch_a, k, m)
    } else {
        shape(case.batch_a, m, k)
    };
    let b_shape = if spec.trans_b {
        shape(case.batch_b, n, k)
    } else {
        shape(case.batch_b, k, n)
    };
    let c_shape = shape(case.batch, m, n);
    let a = random(a_shape.iter().product(), seed);
    let b = random(b_shape.iter().product(), seed + 1);
    let c0 = random(c_shape.iter().product(), seed + 2);
    let ta = Tensor::from_f32(gpu, &a_shape, &a).unwrap();
    let tb = Tensor::from_f32(gpu, &b_shape, &b).unwrap();
    let tc = Tensor::from_f32(gpu, &c_shape, &c0).unwrap();
    let op = Matmul::new(gpu, &ta, &tb, &tc, spec).unwrap();
    op.run(gpu);
    let got = tc.to_vec_f32(gpu).unwrap();
    let mut want = c0.clone();
    reference::matmul(&a, &a_shape, &b, &b_shape, &mut want, &c_shape, &spec);
    let (atol, rtol) = tol(k);
    let what = format!(
        "{:?} batch {}/{}/{} m{m} n{n} k{k} trans_a {} trans_b {} alpha {} beta {}",
        spec.kernel,
        case.batch_a,
        case.batch_b,
        case.batch,
        spec.trans_a,
        spec.trans_b,
        spec.alpha,
        spec.beta
    );
    assert_close(&got, &want, atol, rtol, &what);
    op.dispatch_count()
}

const LAYOUTS: [(bool, bool); 3] = [(false, false), (false, true), (true, false)];

/// Every variant `gpu` can run (the subgroup one where the adapter has subgroups).
fn kernels(gpu: &Gpu) -> Vec<MatmulKernel> {
    wgtrain::ops::matmul::available_kernels(gpu)
}

fn plain(m: usize, n: usize, k: usize) -> Case {
    Case {
        batch_a: 1,
        batch_b: 1,
        batch: 1,
        m,
        n,
        k,
    }
}

#[test]
fn all_layouts_on_ragged_shapes_with_both_kernels() {
    let gpu = gpu();
    let shapes = [
        (1, 1, 1),
        (1, 7, 3),
        (5, 1, 9),
        (7, 13, 5),
        (17, 31, 67),
        (64, 64, 64),
        (65, 63, 16),
        (97, 131, 89),
        (3, 257, 2),
        (8, 96, 384),
    ];
    let mut seed = 10;
    for kernel in kernels(&gpu) {
        for (ta, tb) in LAYOUTS {
            for &(m, n, k) in &shapes {
                let spec = MatmulSpec {
                    trans_a: ta,
                    trans_b: tb,
                    kernel,
                    ..MatmulSpec::default()
                };
                check(&gpu, &plain(m, n, k), spec, seed);
                seed += 3;
            }
        }
    }
}

#[test]
fn zero_inner_dimension_gives_beta_times_c() {
    let gpu = gpu();
    for kernel in kernels(&gpu) {
        let spec = MatmulSpec::nn().scale(2.0).accumulate().with_kernel(kernel);
        check(&gpu, &plain(5, 6, 0), spec, 1);
    }
}

#[test]
fn batched_and_broadcast_operands() {
    let gpu = gpu();
    let cases = [
        // (batch_a, batch_b, batch)
        (3, 3, 3),
        (4, 1, 4), // shared weight B
        (1, 2, 2), // shared A
    ];
    let mut seed = 100;
    for kernel in kernels(&gpu) {
        for (ta, tb) in LAYOUTS {
            for &(ba, bb, bc) in &cases {
                let case = Case {
                    batch_a: ba,
                    batch_b: bb,
                    batch: bc,
                    m: 19,
                    n: 70,
                    k: 33,
                };
                let spec = MatmulSpec {
                    trans_a: ta,
                    trans_b: tb,
                    kernel,
                    ..MatmulSpec::default()
                };
                check(&gpu, &case, spec, seed);
                seed += 3;
            }
        }
    }
}

#[test]
fn epilogue_scales_and_accumulates() {
    let gpu = gpu();
    for kernel in kernels(&gpu) {
        for (ta, tb) in LAYOUTS {
            let base = MatmulSpec {
                trans_a: ta,
                trans_b: tb,
                kernel,
                ..MatmulSpec::default()
            };
            check(&gpu, &plain(23, 41, 17), base.scale(0.25), 7);
            check(&gpu, &plain(23, 41, 17), base.accumulate(), 8);
            check(&gpu, &plain(23, 41, 17), base.scale(-1.5).accumulate(), 9);
        }
    }
}

#[test]
fn beta_zero_never_reads_c() {
    let gpu = gpu();
    for kernel in kernels(&gpu) {
        let a = random(6 * 4, 1);
        let b = random(4 * 5, 2);
        let ta = Tensor::from_f32(&gpu, &[6, 4], &a).unwrap();
        let tb = Tensor::from_f32(&gpu, &[4, 5], &b).unwrap();
        let tc = Tensor::from_f32(&gpu, &[6, 5], &[f32::NAN; 30]).unwrap();
        let spec = MatmulSpec::nn().with_kernel(kernel);
        Matmul::new(&gpu, &ta, &tb, &tc, spec).unwrap().run(&gpu);
        let got = tc.to_vec_f32(&gpu).unwrap();
        let mut want = vec![0.0; 30];
        reference::matmul(&a, &[6, 4], &b, &[4, 5], &mut want, &[6, 5], &spec);
        assert_close(&got, &want, 1e-5, 1e-5, "NaN in C with beta = 0");
    }
}

#[test]
fn tensors_bound_in_pieces() {
    // A binding limit of 1 KiB splits every operand below into several buffers, as pico's
    // output projection is split on adapters with a 128 MiB limit.
    let gpu = gpu_with(GpuOptions {
        max_binding_bytes: Some(1024),
        ..Default::default()
    });
    let t = Tensor::zeros(&gpu, &[50, 30], DType::F32).unwrap();
    assert_eq!(
        t.pieces().len(),
        7,
        "30 floats per row: 8 rows per 1 KiB piece, 50 rows"
    );
    let mut seed = 500;
    for kernel in kernels(&gpu) {
        for (ta, tb) in LAYOUTS {
            for case in [
                plain(37, 45, 29),
                plain(70, 9, 100),
                Case {
                    batch_a: 3,
                    batch_b: 1,
                    batch: 3,
                    m: 21,
                    n: 40,
                    k: 13,
                },
            ] {
                for spec in [
                    MatmulSpec::default(),
                    MatmulSpec::default().scale(0.5).accumulate(),
                ] {
                    let spec = MatmulSpec {
                        trans_a: ta,
                        trans_b: tb,
                        kernel,
                        ..spec
                    };
                    let dispatches = check(&gpu, &case, spec, seed);
                    assert!(dispatches > 1, "operands in pieces must split the work");
                    seed += 3;
                }
            }
        }
    }
}

#[test]
fn a_row_larger_than_the_binding_limit_is_a_clear_error() {
    let gpu = gpu_with(GpuOptions {
        max_binding_bytes: Some(64),
        ..Default::default()
    });
    let err = Tensor::zeros(&gpu, &[2, 100], DType::F32).err().unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("400 bytes") && msg.contains("wgtrain devices"),
        "{msg}"
    );
}

#[test]
fn grids_fold_past_the_dispatch_dimension_limit() {
    // With at most 16 workgroups per dimension, these need folding over y and z.
    let gpu = gpu_with(GpuOptions {
        max_workgroups_per_dim: Some(16),
        ..Default::default()
    });
    for kernel in kernels(&gpu) {
        for (ta, tb) in LAYOUTS {
            let spec = MatmulSpec {
                trans_a: ta,
                trans_b: tb,
                kernel,
                ..MatmulSpec::default()
            };
            check(&gpu, &plain(200, 300, 7), spec, 42);
            check(&gpu, &plain(600, 600, 3), spec, 44);
            check(&gpu, &plain(1100, 1100, 3), spec, 45);
            let batched = Case {
                batch_a: 9,
                batch_b: 9,
                batch: 9,
                m: 10,
                n: 70,
                k: 3,
            };
            check(&gpu, &batched, spec, 43);
        }
    }
}

#[test]
fn more_workgroups_than_one_dimension_allows_on_the_real_limit() {
    // 70 000 independent 1x1x2 products: one workgroup each, beyond 65 535 in one dimension.
    let gpu = gpu();
    let case = Case {
        batch_a: 70_000,
        batch_b: 70_000,
        batch: 70_000,
        m: 1,
        n: 1,
        k: 2,
    };
    check(
        &gpu,
        &case,
        MatmulSpec::nn().with_kernel(MatmulKernel::Rows8x4),
        77,
    );
}

#[test]
fn shape_errors_name_the_problem() {
    let gpu = gpu();
    let a = Tensor::zeros(&gpu, &[4, 5], DType::F32).unwrap();
    let b = Tensor::zeros(&gpu, &[6, 7], DType::F32).unwrap();
    let c = Tensor::zeros(&gpu, &[4, 7], DType::F32).unwrap();
    let msg = Matmul::new(&gpu, &a, &b, &c, MatmulSpec::nn())
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("inner dimensions differ"), "{msg}");
    let b = Tensor::zeros(&gpu, &[5, 7], DType::F32).unwrap();
    let c_wrong = Tensor::zeros(&gpu, &[4, 8], DType::F32).unwrap();
    let msg = Matmul::new(&gpu, &a, &b, &c_wrong, MatmulSpec::nn())
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("expected [.., 4, 7]"), "{msg}");
}

#[test]
fn the_subgroup_kernel_is_offered_exactly_where_the_adapter_has_subgroups() {
    let gpu = gpu();
    let has = gpu.device.features().contains(wgpu::Features::SUBGROUP)
        && gpu.adapter.subgroup_sizes.0 >= 8;
    let sg = MatmulKernel::RowsSubgroup16x8;
    assert_eq!(kernels(&gpu).contains(&sg), has, "{:?}", gpu.adapter);
    let a = Tensor::zeros(&gpu, &[4, 4], DType::F32).unwrap();
    let c = Tensor::zeros(&gpu, &[4, 4], DType::F32).unwrap();
    let pinned = Matmul::new(&gpu, &a, &a, &c, MatmulSpec::nn().with_kernel(sg));
    if has {
        pinned.expect("the adapter has subgroups");
    } else {
        let msg = pinned.err().expect("no subgroups: refused").to_string();
        assert!(msg.contains("needs subgroups of at least 8 lanes"), "{msg}");
        assert!(msg.contains("--kernel matmul="), "{msg}");
    }
}

/// One product with each SwiGLU epilogue against the reference: the product in f64, then
/// SwiGLU (or its backward) of it. The plain product's value is the epilogue's input.
/// Returns the dispatches the product took.
fn check_swiglu_epilogues(
    gpu: &Gpu,
    m: usize,
    n: usize,
    k: usize,
    spec: MatmulSpec,
    seed: u64,
) -> usize {
    let a_shape = if spec.trans_a { [k, m] } else { [m, k] };
    let b_shape = if spec.trans_b { [n, k] } else { [k, n] };
    let (a, b) = (random(m * k, seed), random(n * k, seed + 1));
    let c0 = random(m * n, seed + 2);
    // Gates over a wide range: silu's tails matter.
    let gate: Vec<f32> = random(m * n, seed + 3).iter().map(|v| 6.0 * v).collect();
    let up = random(m * n, seed + 4);
    let mut product = c0.clone();
    reference::matmul(&a, &a_shape, &b, &b_shape, &mut product, &[m, n], &spec);
    let upload = |shape: &[usize], v: &[f32]| Tensor::from_f32(gpu, shape, v).unwrap();
    let zeros = || Tensor::zeros(gpu, &[m, n], DType::F32).unwrap();
    let (ta, tb, tgate, tup) = (
        upload(&a_shape, &a),
        upload(&b_shape, &b),
        upload(&[m, n], &gate),
        upload(&[m, n], &up),
    );
    let what = format!("{:?} m{m} n{n} k{k} {spec:?}", spec.kernel);
    let (atol, rtol) = tol(k);

    // Forward: C is SwiGLU's u; act = silu(gate) * u.
    let (tc, tact) = (upload(&[m, n], &c0), zeros());
    let epilogue = Epilogue::SwiGlu {
        gate: &tgate,
        act: &tact,
    };
    Matmul::with_epilogue(gpu, &ta, &tb, &tc, spec, epilogue)
        .unwrap()
        .run(gpu);
    let got_u = tc.to_vec_f32(gpu).unwrap();
    assert_close(&got_u, &product, atol, rtol, &format!("{what}: u"));
    // silu(g) is at most |g| = 6 here.
    let act = reference::swiglu::swiglu(&gate, &product);
    let got_act = tact.to_vec_f32(gpu).unwrap();
    assert_close(&got_act, &act, 6.0 * atol, rtol, &format!("{what}: act"));

    // Backward: C is d_act, not stored; d_gate and d_up from it.
    let (tc, td_gate, td_up) = (upload(&[m, n], &c0), zeros(), zeros());
    let epilogue = Epilogue::SwiGluBackward {
        gate: &tgate,
        up: &tup,
        d_gate: &td_gate,
        d_up: &td_up,
    };
    let op = Matmul::with_epilogue(gpu, &ta, &tb, &tc, spec, epilogue).unwrap();
    op.run(gpu);
    let (d_gate, d_up) = reference::swiglu::swiglu_backward(&gate, &up, &product);
    let got = td_gate.to_vec_f32(gpu).unwrap();
    // |silu'(g)| < 1.1 and |up| < 1; |silu(g)| <= 6.
    assert_close(&got, &d_gate, 2.0 * atol, rtol, &format!("{what}: d_gate"));
    let got = td_up.to_vec_f32(gpu).unwrap();
    assert_close(&got, &d_up, 6.0 * atol, rtol, &format!("{what}: d_up"));
    op.dispatch_count()
}

#[test]
fn swiglu_epilogues_match_the_reference_on_every_kernel() {
    let gpu = gpu();
    let mut seed = 900;
    for kernel in kernels(&gpu) {
        for (ta, tb) in LAYOUTS {
            for (m, n, k) in [(1, 1, 1), (37, 45, 29), (70, 130, 64)] {
                for spec in [
                    MatmulSpec::default(),
                    MatmulSpec::default().scale(2.0).accumulate(),
                ] {
                    let spec = MatmulSpec {
                        trans_a: ta,
                        trans_b: tb,
                        kernel,
                        ..spec
                    };
                    check_swiglu_epilogues(&gpu, m, n, k, spec, seed);
                    seed += 5;
                }
            }
        }
    }
}

#[test]
fn swiglu_epilogues_run_once_when_operands_are_in_pieces() {
    // A and B in pieces (K split into slices accumulating in C), C in one: the epilogue must
    // see the whole sum, so it runs with the last slice only.
    let gpu = gpu_with(GpuOptions {
        max_binding_bytes: Some(1024),
        ..Default::default()
    });
    let mut seed = 1300;
    for kernel in kernels(&gpu) {
        for (ta, tb) in LAYOUTS {
            for spec in [MatmulSpec::default(), MatmulSpec::default().accumulate()] {
                let spec = MatmulSpec {
                    trans_a: ta,
                    trans_b: tb,
                    kernel,
                    ..spec
                };
                let dispatches = check_swiglu_epilogues(&gpu, 12, 20, 70, spec, seed);
                assert!(dispatches > 1, "operands in pieces must split the work");
                seed += 5;
            }
        }
    }
}

#[test]
fn epilogue_tensors_must_be_laid_out_as_c() {
    let gpu = gpu_with(GpuOptions {
        max_binding_bytes: Some(1024),
        ..Default::default()
    });
    let z = |shape: &[usize]| Tensor::zeros(&gpu, shape, DType::F32).unwrap();
    let (a, b, c) = (z(&[4, 5]), z(&[5, 7]), z(&[4, 7]));
    let (gate, wrong) = (z(&[4, 7]), z(&[7, 4]));
    let err = |c: &Tensor, act: &Tensor| {
        let epilogue = Epilogue::SwiGlu { gate: &gate, act };
        Matmul::with_epilogue(&gpu, &a, &b, c, MatmulSpec::nn(), epilogue)
            .err()
            .expect("refused")
            .to_string()
    };
    let msg = err(&c, &wrong);
    assert!(
        msg.contains("act is [7, 4]") && msg.contains("must match"),
        "{msg}"
    );
    // 300 rows of 1 float: two pieces at 1 KiB.
    let (a, b, c_split) = (z(&[300, 5]), z(&[5, 1]), z(&[300, 1]));
    assert_eq!(c_split.pieces().len(), 2);
    let (gate, act) = (z(&[300, 1]), z(&[300, 1]));
    let epilogue = Epilogue::SwiGlu {
        gate: &gate,
        act: &act,
    };
    let msg = Matmul::with_epilogue(&gpu, &a, &b, &c_split, MatmulSpec::nn(), epilogue)
        .err()
        .expect("refused")
        .to_string();
    assert!(msg.contains("one piece"), "{msg}");
}

/// `C = spec(A, B) + scale · mask ⊙ (left · right)` against the reference: the product in
/// f64 plus the low-rank product in f64, masked by the reference dropout mask. Returns the
/// dispatches the product took.
#[allow(clippy::too_many_arguments)]
fn check_low_rank(
    gpu: &Gpu,
    (m, n, k, r): (usize, usize, usize, usize),
    spec: MatmulSpec,
    right_transposed: bool,
    dropout: Option<f32>,
    swiglu: bool,
    seed: u64,
) -> usize {
    let a_shape = if spec.trans_a { [k, m] } else { [m, k] };
    let b_shape = if spec.trans_b { [n, k] } else { [k, n] };
    let right_shape = if right_transposed { [n, r] } else { [r, n] };
    let (a, b) = (random(m * k, seed), random(n * k, seed + 1));
    let (left, right) = (random(m * r, seed + 2), random(n * r, seed + 3));
    let c0 = random(m * n, seed + 4);
    let gate: Vec<f32> = random(m * n, seed + 5).iter().map(|v| 4.0 * v).collect();
    let mut want = c0.clone();
    reference::matmul(&a, &a_shape, &b, &b_shape, &mut want, &[m, n], &spec);
    let mut low = vec![0.0; m * n];
    let lr_spec = MatmulSpec {
        trans_b: right_transposed,
        ..MatmulSpec::nn()
    };
    reference::matmul(
        &left,
        &[m, r],
        &right,
        &right_shape,
        &mut low,
        &[m, n],
        &lr_spec,
    );
    let key = 4242;
    let mask = match dropout {
        Some(p) => wgtrain::reference::lora::dropout_mask(m * n, p, key, 9),
        None => vec![true; m * n],
    };
    let drop_scale = dropout.map_or(1.0, wgtrain::formulas::lora::dropout_scale);
    let scale = 1.5;
    for i in 0..m * n {
        if mask[i] {
            want[i] += scale * low[i] * drop_scale;
        }
    }
    let upload = |shape: &[usize], v: &[f32]| Tensor::from_f32(gpu, shape, v).unwrap();
    let (ta, tb, tc) = (
        upload(&a_shape, &a),
        upload(&b_shape, &b),
        upload(&[m, n], &c0),
    );
    let (tl, tr) = (upload(&[m, r], &left), upload(&right_shape, &right));
    let (tgate, tact) = (
        upload(&[m, n], &gate),
        Tensor::zeros(gpu, &[m, n], DType::F32).unwrap(),
    );
    let seed_buf = lora::Seed::new(gpu, key);
    let low_rank = LowRank {
        left: &tl,
        right: &tr,
        right_transposed,
        scale,
        dropout: dropout.map(|p| LowRankDropout {
            p,
            seed: &seed_buf,
            stream: 9,
        }),
    };
    let epilogue = if swiglu {
        Epilogue::SwiGlu {
            gate: &tgate,
            act: &tact,
        }
    } else {
        Epilogue::Plain
    };
    let op = Matmul::with_low_rank(gpu, &ta, &tb, &tc, spec, low_rank, epilogue).unwrap();
    op.run(gpu);
    let what = format!(
        "{:?} m{m} n{n} k{k} r{r} {spec:?} right_transposed {right_transposed} dropout \
         {dropout:?} swiglu {swiglu}",
        spec.kernel
    );
    let (atol, rtol) = tol(k + r);
    let got = tc.to_vec_f32(gpu).unwrap();
    assert_close(&got, &want, 2.0 * atol, rtol, &what);
    if swiglu {
        let act = reference::swiglu::swiglu(&gate, &want);
        let got = tact.to_vec_f32(gpu).unwrap();
        assert_close(&got, &act, 8.0 * atol, rtol, &format!("{what}: act"));
    }
    if let Some(p) = dropout {
        // The mask matters: some outputs must have been dropped, some kept.
        let dropped = mask.iter().filter(|k| !**k).count();
        assert!(
            p == 0.0 || m * n < 20 || (dropped > 0 && dropped < m * n),
            "{what}"
        );
    }
    op.dispatch_count()
}

#[test]
fn low_rank_terms_match_the_reference_on_every_kernel() {
    let gpu = gpu();
    let mut seed = 2000;
    for kernel in kernels(&gpu) {
        for (ta, tb) in LAYOUTS {
            for (dims, right_transposed, dropout, swiglu) in [
                ((1, 1, 1, 1), true, None, false),
                ((37, 45, 29, 4), true, None, true),
                ((70, 130, 64, 16), false, Some(0.25), false),
                ((33, 20, 8, 3), false, Some(0.5), true),
            ] {
                for spec in [MatmulSpec::default(), MatmulSpec::default().accumulate()] {
                    let spec = MatmulSpec {
                        trans_a: ta,
                        trans_b: tb,
                        kernel,
                        ..spec
                    };
                    check_low_rank(&gpu, dims, spec, right_transposed, dropout, swiglu, seed);
                    seed += 7;
                }
            }
        }
    }
}

#[test]
fn low_rank_terms_in_pieces_use_global_rows_and_columns() {
    // A, B and C in pieces: each dispatch covers a block of C, and the term (its left rows,
    // right columns and dropout mask) must be indexed by the block's place in C.
    let gpu = gpu_with(GpuOptions {
        max_binding_bytes: Some(1024),
        ..Default::default()
    });
    let mut seed = 2500;
    for kernel in kernels(&gpu) {
        for (ta, tb) in LAYOUTS {
            let spec = MatmulSpec {
                trans_a: ta,
                trans_b: tb,
                kernel,
                ..MatmulSpec::default()
            };
            // C [40, 6] is 960 bytes: one piece for the SwiGLU case; [60, 6] is in pieces.
            let dispatches =
                check_low_rank(&gpu, (60, 6, 70, 2), spec, false, Some(0.3), false, seed);
            assert!(dispatches > 1, "operands in pieces must split the work");
            check_low_rank(&gpu, (40, 6, 70, 2), spec, true, Some(0.3), true, seed + 1);
            seed += 7;
        }
    }
}

#[test]
fn low_rank_terms_refuse_what_they_cannot_do() {
    let gpu = gpu();
    let z = |shape: &[usize]| Tensor::zeros(&gpu, shape, DType::F32).unwrap();
    let (a, b, c) = (z(&[4, 5]), z(&[5, 7]), z(&[4, 7]));
    let (left, right, wrong) = (z(&[4, 2]), z(&[2, 7]), z(&[7, 3]));
    let term = |right| LowRank {
        left: &left,
        right,
        right_transposed: false,
        scale: 1.0,
        dropout: None,
    };
    let refuse = |lr, epilogue| {
        Matmul::with_low_rank(&gpu, &a, &b, &c, MatmulSpec::nn(), lr, epilogue)
            .err()
            .expect("refused")
            .to_string()
    };
    let msg = refuse(term(&wrong), Epilogue::Plain);
    assert!(msg.contains("do not fit C [4, 7]"), "{msg}");
    let (g, u, dg, du) = (z(&[4, 7]), z(&[4, 7]), z(&[4, 7]), z(&[4, 7]));
    let backward = Epilogue::SwiGluBackward {
        gate: &g,
        up: &u,
        d_gate: &dg,
        d_up: &du,
    };
    let msg = refuse(term(&right), backward);
    assert!(msg.contains("9 storage"), "{msg}");
    let (a3, c3) = (z(&[2, 4, 5]), z(&[2, 4, 7]));
    let msg = Matmul::with_low_rank(
        &gpu,
        &a3,
        &b,
        &c3,
        MatmulSpec::nn(),
        term(&right),
        Epilogue::Plain,
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(msg.contains("2-D product"), "{msg}");
}
