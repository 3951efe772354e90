//! Cross-entropy (with the mean reduction), the embedding and the elementwise sums on the GPU,
//! against the CPU reference. Vocabulary-sized tensors are bound in pieces, as pico's are on
//! adapters with a 128 MiB binding limit.

mod common;

use common::{assert_close, gpu, gpu_with, random};
use wgtrain::gpu::{run_all, DType, Gpu};
use wgtrain::ops::embedding::EmbeddingBackward;
use wgtrain::ops::{cross_entropy, elementwise, embedding, reduce};
use wgtrain::{reference, GpuOptions, Tensor};

fn upload(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_f32(gpu, shape, data).unwrap()
}

fn zeros(gpu: &Gpu, shape: &[usize]) -> Tensor {
    Tensor::zeros(gpu, shape, DType::F32).unwrap()
}

/// A GPU whose binding limit holds `rows` rows of `row_len` floats (pieces of that many rows).
fn gpu_with_rows_per_piece(rows: usize, row_len: usize) -> Gpu {
    gpu_with(GpuOptions {
        max_binding_bytes: Some((rows * row_len * 4) as u64),
        ..Default::default()
    })
}

fn labels_for(rows: usize, vocab: usize, seed: u64) -> Vec<u32> {
    // The first and last class always appear.
    (0..rows)
        .map(|r| match r {
            0 => 0,
            1 => vocab as u32 - 1,
            _ => ((random(1, seed + r as u64)[0] + 1.0) * 0.5 * vocab as f32) as u32 % vocab as u32,
        })
        .collect()
}

/// Logits scaled by `mag` and shifted by `offset`: with either one large, exp() of a raw logit
/// overflows f32, so these check the max subtraction.
fn logits_for(rows: usize, vocab: usize, mag: f32, offset: f32, seed: u64) -> Vec<f32> {
    random(rows * vocab, seed)
        .iter()
        .map(|v| offset + v * mag)
        .collect()
}

/// Forward (loss per row, lse, mean) and backward on the GPU vs the reference.
fn check_cross_entropy(gpu: &Gpu, rows: usize, vocab: usize, mag: f32, offset: f32, pieces: usize) {
    let what = format!("cross-entropy {rows}x{vocab} logits {offset} + {mag} * U(-1, 1)");
    let x = logits_for(rows, vocab, mag, offset, 40 + vocab as u64);
    let labels = labels_for(rows, vocab, 41);
    let logits = upload(gpu, &[rows, vocab], &x);
    assert_eq!(logits.pieces().len(), pieces, "{what}: pieces");
    let tl = Tensor::from_u32(gpu, &[rows], &labels).unwrap();
    let (loss, lse, mean) = (zeros(gpu, &[rows]), zeros(gpu, &[rows]), zeros(gpu, &[1]));
    let fwd = cross_entropy::forward(gpu, &logits, &tl, &loss, &lse).unwrap();
    assert_eq!(fwd.len(), pieces, "{what}: one dispatch per piece");
    let m = reduce::mean(gpu, &loss, &mean).unwrap();
    let bwd = cross_entropy::backward(gpu, &logits, &tl, &lse, 1.0 / rows as f32).unwrap();
    assert_eq!(bwd.len(), pieces, "{what}: one backward dispatch per piece");

    run_all(gpu, &fwd);
    run_all(gpu, &[m]);
    let got_loss = loss.to_vec_f32(gpu).unwrap();
    let got_lse = lse.to_vec_f32(gpu).unwrap();
    let got_mean = mean.to_vec_f32(gpu).unwrap();
    // Fixed-order reductions: a second run gives the same bits.
    run_all(gpu, &fwd);
    assert_eq!(
        bits(&loss.to_vec_f32(gpu).unwrap()),
        bits(&got_loss),
        "{what}: rerun"
    );

    // f32 resolves lse to a few ulps of its magnitude (max |logit| + ln V).
    let big = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let lse_err = 8.0 * f32::EPSILON * (big + (vocab as f32).ln() + 1.0);
    let mut want_lse = Vec::new();
    let mut want_loss = Vec::new();
    for (r, row) in x.chunks(vocab).enumerate() {
        let (l, _) =
            reference::cross_entropy::cross_entropy(row, &labels[r..r + 1], vocab).unwrap();
        want_loss.push(l);
        let mx = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
        let s: f64 = row.iter().map(|&v| (v as f64 - mx).exp()).sum();
        want_lse.push((mx + s.ln()) as f32);
    }
    assert_close(&got_lse, &want_lse, lse_err, 1e-6, &format!("{what} lse"));
    assert_close(
        &got_loss,
        &want_loss,
        lse_err,
        1e-6,
        &format!("{what} loss"),
    );
    let (want_mean, want_grad) =
        reference::cross_entropy::cross_entropy(&x, &labels, vocab).unwrap();
    assert_close(
        &got_mean,
        &[want_mean],
        lse_err,
        1e-5,
        &format!("{what} mean"),
    );

    run_all(gpu, &bwd);
    let grad = logits.to_vec_f32(gpu).unwrap();
    // softmax = exp(x - lse) inherits lse's error as a relative error; at the label, where
    // the gradient (p - 1) / rows can be near zero, that error is absolute.
    let rtol = lse_err + 2e-5;
    for (i, (g, w)) in grad.iter().zip(&want_grad).enumerate() {
        let at_label = labels[i / vocab] as usize == i % vocab;
        let atol = if at_label {
            lse_err / rows as f32
        } else {
            1e-12
        };
        let tol = atol + rtol * w.abs();
        assert!(
            (g - w).abs() <= tol && g.is_finite(),
            "{what} grad: element {i} (row {}, col {}): got {g}, want {w} (tolerance {tol})",
            i / vocab,
            i % vocab
        );
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn cross_entropy_matches_the_reference_on_logits_in_pieces() {
    // (vocab, rows, rows per piece): pieces of 3 rows for V = 7 (9 rows), ragged 4 + 4 + 2
    // for V = 97, and pico's vocabulary 2 + 1. V = 1 cannot be split: its [N, 1] logits are
    // no larger than the [N] per-row tensors, which must stay whole.
    for (vocab, rows, per_piece, pieces) in [(7, 9, 3, 3), (97, 10, 4, 3), (50304, 3, 2, 2)] {
        let gpu = gpu_with_rows_per_piece(per_piece, vocab);
        for (mag, offset) in [(1.0, 0.0), (1000.0, 0.0), (4.0, 30000.0)] {
            check_cross_entropy(&gpu, rows, vocab, mag, offset, pieces);
        }
    }
    let gpu = gpu();
    for (mag, offset) in [(1.0, 0.0), (1000.0, -500.0)] {
        check_cross_entropy(&gpu, 4, 1, mag, offset, 1);
    }
}

#[test]
fn cross_entropy_clamps_labels_past_the_vocabulary() {
    // The host rejects such labels; the kernel must still stay in bounds, and treats them as
    // the last class.
    let gpu = gpu();
    let (rows, vocab) = (2, 7);
    let x = random(rows * vocab, 50);
    let logits = upload(&gpu, &[rows, vocab], &x);
    let labels = Tensor::from_u32(&gpu, &[rows], &[7, u32::MAX]).unwrap();
    let (loss, lse) = (zeros(&gpu, &[rows]), zeros(&gpu, &[rows]));
    let mut ds = cross_entropy::forward(&gpu, &logits, &labels, &loss, &lse).unwrap();
    ds.extend(cross_entropy::backward(&gpu, &logits, &labels, &lse, 0.5).unwrap());
    run_all(&gpu, &ds);
    let last = vec![vocab as u32 - 1; rows];
    let (want_mean, want_grad) = reference::cross_entropy::cross_entropy(&x, &last, vocab).unwrap();
    let got = loss.to_vec_f32(&gpu).unwrap();
    assert_close(
        &[(got[0] + got[1]) / 2.0],
        &[want_mean],
        1e-5,
        1e-5,
        "clamped loss",
    );
    assert_close(
        &logits.to_vec_f32(&gpu).unwrap(),
        &want_grad,
        1e-6,
        1e-5,
        "clamped grad",
    );
}

#[test]
fn cross_entropy_rejects_mismatched_shapes() {
    let gpu = gpu();
    let logits = zeros(&gpu, &[4, 7]);
    let labels = Tensor::from_u32(&gpu, &[3], &[0, 1, 2]).unwrap();
    let (loss, lse) = (zeros(&gpu, &[4]), zeros(&gpu, &[4]));
    let msg = cross_entropy::forward(&gpu, &logits, &labels, &loss, &lse)
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("labels has 3 elements for 4 rows"), "{msg}");
    let float_labels = zeros(&gpu, &[4]);
    let msg = cross_entropy::backward(&gpu, &logits, &float_labels, &lse, 1.0)
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("labels must be u32"), "{msg}");
}

#[test]
fn mean_reduces_any_length() {
    let gpu = gpu();
    for n in [1, 2, 255, 257, 100_000] {
        let x: Vec<f32> = random(n, 60 + n as u64).iter().map(|v| v + 0.25).collect();
        let (tx, out) = (upload(&gpu, &[n], &x), zeros(&gpu, &[1]));
        run_all(&gpu, &[reduce::mean(&gpu, &tx, &out).unwrap()]);
        let want = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        assert_close(
            &out.to_vec_f32(&gpu).unwrap(),
            &[want as f32],
            1e-6,
            1e-6,
            &format!("mean of {n}"),
        );
    }
    let empty = zeros(&gpu, &[0]);
    assert!(reduce::mean(&gpu, &empty, &zeros(&gpu, &[1])).is_err());
    assert!(reduce::mean(&gpu, &zeros(&gpu, &[3]), &zeros(&gpu, &[2])).is_err());
}

/// Forward and two accumulating backward steps against the reference.
fn check_embedding(gpu: &Gpu, vocab: usize, d: usize, steps: [&[u32]; 2], pieces: usize) {
    let what = format!("embedding V={vocab} d={d}");
    let n = steps[0].len();
    let table = random(vocab * d, 70 + d as u64);
    let t_table = upload(gpu, &[vocab, d], &table);
    assert_eq!(t_table.pieces().len(), pieces, "{what}: pieces");
    let t_ids = Tensor::from_u32(gpu, &[n], steps[0]).unwrap();
    let out = zeros(gpu, &[n, d]);
    let fwd = embedding::forward(gpu, &t_table, &t_ids, &out).unwrap();
    assert_eq!(fwd.len(), pieces, "{what}: one forward dispatch per piece");
    run_all(gpu, &fwd);
    assert_close(
        &out.to_vec_f32(gpu).unwrap(),
        &reference::embedding::embedding(&table, steps[0], d).unwrap(),
        0.0,
        0.0,
        &what,
    );

    // The gradient accumulates into what d_table already holds.
    let mut want = random(vocab * d, 71 + d as u64);
    let d_table = upload(gpu, &[vocab, d], &want);
    let d_out = zeros(gpu, &[n, d]);
    let bwd = EmbeddingBackward::new(gpu, &d_out, &d_table).unwrap();
    assert_eq!(bwd.dispatches().len(), pieces);
    for (step, ids) in steps.iter().enumerate() {
        let g = random(n * d, 72 + step as u64);
        d_out.write(gpu, bytemuck::cast_slice(&g)).unwrap();
        bwd.set_ids(gpu, ids).unwrap();
        run_all(gpu, bwd.dispatches());
        let delta = reference::embedding::embedding_backward(&g, ids, vocab, d).unwrap();
        for (w, dv) in want.iter_mut().zip(delta) {
            *w += dv;
        }
        let got = d_table.to_vec_f32(gpu).unwrap();
        assert_close(
            &got,
            &want,
            1e-5,
            1e-5,
            &format!("{what} backward step {step}"),
        );
        // Rows of ids not seen in any step so far keep their exact initial value.
        let seen: Vec<u32> = steps[..=step]
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect();
        let init = random(vocab * d, 71 + d as u64);
        for v in (0..vocab).filter(|v| !seen.contains(&(*v as u32))) {
            assert_eq!(
                bits(&got[v * d..][..d]),
                bits(&init[v * d..][..d]),
                "{what}: untouched row {v}"
            );
        }
    }
}

#[test]
fn embedding_matches_the_reference_with_the_table_in_pieces() {
    // 16 rows of 20 floats per piece: the table [50, 20] is 16 + 16 + 16 + 2 rows.
    let gpu = gpu_with_rows_per_piece(16, 20);
    let a: &[u32] = &[0, 49, 17, 17, 3, 33, 48, 0, 17, 32, 15, 16, 31];
    let b: &[u32] = &[16, 16, 16, 16, 2, 2, 49, 49, 30, 31, 32, 33, 34];
    check_embedding(&gpu, 50, 20, [a, b], 4);
}

#[test]
fn embedding_matches_the_reference_with_rows_wider_than_a_workgroup() {
    let gpu = gpu();
    let a: Vec<u32> = (0..40).map(|i| (i * i + 3) % 11).collect();
    let b: Vec<u32> = vec![5; 40];
    check_embedding(&gpu, 11, 300, [&a, &b], 1);
}

#[test]
fn embedding_rejects_ids_outside_the_vocabulary() {
    let gpu = gpu();
    let (d_out, d_table) = (zeros(&gpu, &[5, 3]), zeros(&gpu, &[50, 3]));
    let bwd = EmbeddingBackward::new(&gpu, &d_out, &d_table).unwrap();
    let msg = bwd
        .set_ids(&gpu, &[1, 2, 3, 50, 4])
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("token id 50 at position 3")
            && msg.contains("vocabulary size 50")
            && msg.contains("tokenizer"),
        "{msg}"
    );
    let msg = bwd.set_ids(&gpu, &[1, 2]).err().unwrap().to_string();
    assert!(msg.contains("2 ids given for 5 tokens"), "{msg}");

    // The forward kernel clamps such an id to the last row rather than reading past the table.
    let table = random(50 * 3, 80);
    let t_table = upload(&gpu, &[50, 3], &table);
    let ids = Tensor::from_u32(&gpu, &[2], &[50, 7]).unwrap();
    let out = zeros(&gpu, &[2, 3]);
    run_all(
        &gpu,
        &embedding::forward(&gpu, &t_table, &ids, &out).unwrap(),
    );
    let got = out.to_vec_f32(&gpu).unwrap();
    assert_eq!(&got[..3], &table[49 * 3..]);
    assert_eq!(&got[3..], &table[7 * 3..8 * 3]);
}

#[test]
fn add_and_accumulate_match_the_reference() {
    let gpu = gpu();
    for shape in [vec![1], vec![7], vec![257], vec![3, 333]] {
        let n: usize = shape.iter().product();
        let a = random(n, 90 + n as u64);
        let b = random(n, 91 + n as u64);
        let (ta, tb, out) = (
            upload(&gpu, &shape, &a),
            upload(&gpu, &shape, &b),
            zeros(&gpu, &shape),
        );
        let want = reference::residual::add(&a, &b);
        run_all(&gpu, &[elementwise::add(&gpu, &ta, &tb, &out).unwrap()]);
        assert_close(
            &out.to_vec_f32(&gpu).unwrap(),
            &want,
            0.0,
            0.0,
            &format!("add {shape:?}"),
        );
        // a + a: the same tensor may be bound as both inputs.
        run_all(&gpu, &[elementwise::add(&gpu, &ta, &ta, &out).unwrap()]);
        assert_close(
            &out.to_vec_f32(&gpu).unwrap(),
            &reference::residual::add(&a, &a),
            0.0,
            0.0,
            &format!("add {shape:?} to itself"),
        );
        // acc += b, twice.
        run_all(&gpu, &[elementwise::accumulate(&gpu, &ta, &tb).unwrap()]);
        run_all(&gpu, &[elementwise::accumulate(&gpu, &ta, &tb).unwrap()]);
        let twice = reference::residual::add(&want, &b);
        assert_close(
            &ta.to_vec_f32(&gpu).unwrap(),
            &twice,
            0.0,
            0.0,
            &format!("accumulate {shape:?}"),
        );
    }
}

#[test]
fn add_and_accumulate_reject_bad_operands() {
    let gpu = gpu();
    let (a, b, c) = (zeros(&gpu, &[4]), zeros(&gpu, &[4]), zeros(&gpu, &[5]));
    let msg = elementwise::add(&gpu, &a, &c, &b)
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("a is [4] but b is [5]"), "{msg}");
    let msg = elementwise::add(&gpu, &a, &b, &a)
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("out must not be the same tensor as a"),
        "{msg}"
    );
    let msg = elementwise::accumulate(&gpu, &a, &a)
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("acc must not be the same tensor as x"),
        "{msg}"
    );
    let msg = elementwise::accumulate(&gpu, &a, &c)
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("acc is [4] but x is [5]"), "{msg}");
}
