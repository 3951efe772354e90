//! RMSNorm, SwiGLU and RoPE on the GPU, forward and backward, against the CPU reference
//! (whose backward passes are themselves checked by finite differences in
//! `reference_gradients.rs`). Shapes include odd sizes and rows longer than a workgroup.

mod common;

use common::{assert_close, gpu, random};
use wgtrain::gpu::{run_all, DType, Gpu};
use wgtrain::ops::{rmsnorm, rope, swiglu};
use wgtrain::{reference, Tensor};

fn upload(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_f32(gpu, shape, data).unwrap()
}

fn zeros(gpu: &Gpu, shape: &[usize]) -> Tensor {
    Tensor::zeros(gpu, shape, DType::F32).unwrap()
}

#[test]
fn rmsnorm_forward_and_backward_match_the_reference() {
    let gpu = gpu();
    let eps = 1e-6;
    for (rows, d) in [(1, 1), (3, 7), (5, 96), (4, 130), (2, 384)] {
        let x = random(rows * d, 1 + d as u64);
        let w = random(d, 2 + d as u64);
        let dy = random(rows * d, 3 + d as u64);
        let (tx, tw, tdy) = (
            upload(&gpu, &[rows, d], &x),
            upload(&gpu, &[d], &w),
            upload(&gpu, &[rows, d], &dy),
        );
        let dw0 = random(d, 4 + d as u64);
        let (ty, trstd, tdx, tdw) = (
            zeros(&gpu, &[rows, d]),
            zeros(&gpu, &[rows]),
            zeros(&gpu, &[rows, d]),
            upload(&gpu, &[d], &dw0),
        );
        let fwd = rmsnorm::forward(&gpu, &tx, &tw, eps, &ty, &trstd).unwrap();
        let [bi, bw] = rmsnorm::backward(&gpu, &tx, &tw, &trstd, &tdy, eps, &tdx, &tdw).unwrap();
        run_all(&gpu, &[fwd, bi, bw]);
        let what = format!("rmsnorm {rows}x{d}");
        assert_close(
            &ty.to_vec_f32(&gpu).unwrap(),
            &reference::rmsnorm::rmsnorm(&x, &w, eps),
            1e-5,
            1e-5,
            &what,
        );
        assert_close(
            &trstd.to_vec_f32(&gpu).unwrap(),
            &reference::rmsnorm::rmsnorm_rstd(&x, d, eps),
            1e-5,
            1e-5,
            &what,
        );
        let (dx, dw) = reference::rmsnorm::rmsnorm_backward(&x, &w, &dy, eps);
        assert_close(
            &tdx.to_vec_f32(&gpu).unwrap(),
            &dx,
            1e-5,
            1e-4,
            &format!("{what} dx"),
        );
        // dw accumulates onto what the buffer held.
        let dw: Vec<f32> = dw.iter().zip(&dw0).map(|(a, b)| a + b).collect();
        assert_close(
            &tdw.to_vec_f32(&gpu).unwrap(),
            &dw,
            1e-5,
            1e-4,
            &format!("{what} dw"),
        );
    }
}

/// The fused forms are the separate ops' f32 arithmetic in one dispatch: bitwise equal to
/// `add` then `rmsnorm` (and to the reference within rounding), and `dx +=` equal to the
/// backward's dx followed by `accumulate`.
#[test]
fn fused_residual_add_and_norm_equal_the_separate_ops() {
    use wgtrain::ops::elementwise;
    let gpu = gpu();
    let eps = 1e-6;
    for (rows, d) in [(1, 1), (3, 7), (4, 130), (2, 384)] {
        let (a, b, w) = (
            random(rows * d, 21 + d as u64),
            random(rows * d, 22 + d as u64),
            random(d, 23 + d as u64),
        );
        let (ta, tb, tw) = (
            upload(&gpu, &[rows, d], &a),
            upload(&gpu, &[rows, d], &b),
            upload(&gpu, &[d], &w),
        );
        let z = || zeros(&gpu, &[rows, d]);
        let (h1, y1, h2, y2) = (z(), z(), z(), z());
        let (r1, r2) = (zeros(&gpu, &[rows]), zeros(&gpu, &[rows]));
        let fused = rmsnorm::add_forward(&gpu, &ta, &tb, &tw, eps, &h1, &y1, &r1).unwrap();
        let add = elementwise::add(&gpu, &ta, &tb, &h2).unwrap();
        let norm = rmsnorm::forward(&gpu, &h2, &tw, eps, &y2, &r2).unwrap();
        run_all(&gpu, &[fused, add, norm]);
        let what = format!("add + rmsnorm {rows}x{d}");
        let read = |t: &Tensor| t.to_vec_f32(&gpu).unwrap();
        assert_eq!(read(&h1), read(&h2), "{what}: h");
        assert_eq!(read(&y1), read(&y2), "{what}: y");
        assert_eq!(read(&r1), read(&r2), "{what}: rstd");
        let sum: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let want = reference::rmsnorm::rmsnorm(&sum, &w, eps);
        assert_close(&read(&y1), &want, 1e-5, 1e-5, &what);

        // Backward into a residual gradient that already holds something.
        let (dy, g0) = (
            random(rows * d, 24 + d as u64),
            random(rows * d, 25 + d as u64),
        );
        let tdy = upload(&gpu, &[rows, d], &dy);
        let (acc, sep, tmp) = (
            upload(&gpu, &[rows, d], &g0),
            upload(&gpu, &[rows, d], &g0),
            z(),
        );
        let (dw1, dw2) = (zeros(&gpu, &[d]), zeros(&gpu, &[d]));
        let fused =
            rmsnorm::backward_accumulating(&gpu, &h1, &tw, &r1, &tdy, eps, &acc, &dw1).unwrap();
        let plain = rmsnorm::backward(&gpu, &h1, &tw, &r1, &tdy, eps, &tmp, &dw2).unwrap();
        let add = elementwise::accumulate(&gpu, &sep, &tmp).unwrap();
        let mut all: Vec<_> = fused.into_iter().chain(plain).collect();
        all.push(add);
        run_all(&gpu, &all);
        assert_eq!(read(&acc), read(&sep), "{what}: dx accumulated");
        assert_eq!(read(&dw1), read(&dw2), "{what}: dw");
        let (dx, _) = reference::rmsnorm::rmsnorm_backward(&sum, &w, &dy, eps);
        let want: Vec<f32> = dx.iter().zip(&g0).map(|(x, g)| x + g).collect();
        assert_close(&read(&acc), &want, 1e-5, 1e-4, &format!("{what}: dx"));
    }
}

#[test]
fn rmsnorm_rejects_a_weight_of_the_wrong_length() {
    let gpu = gpu();
    let (x, w, y, r) = (
        zeros(&gpu, &[2, 8]),
        zeros(&gpu, &[7]),
        zeros(&gpu, &[2, 8]),
        zeros(&gpu, &[2]),
    );
    let msg = rmsnorm::forward(&gpu, &x, &w, 1e-6, &y, &r)
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("weight is [7], expected [8]"), "{msg}");
}

#[test]
fn swiglu_forward_and_backward_match_the_reference() {
    let gpu = gpu();
    for n in [1, 7, 257, 3 * 384] {
        // Wide range: silu's tails matter.
        let g: Vec<f32> = random(n, 10 + n as u64).iter().map(|v| v * 12.0).collect();
        let u = random(n, 11 + n as u64);
        let dh = random(n, 12 + n as u64);
        let (tg, tu, tdh) = (
            upload(&gpu, &[n], &g),
            upload(&gpu, &[n], &u),
            upload(&gpu, &[n], &dh),
        );
        let (th, tdg, tdu) = (zeros(&gpu, &[n]), zeros(&gpu, &[n]), zeros(&gpu, &[n]));
        let f = swiglu::forward(&gpu, &tg, &tu, &th).unwrap();
        let b = swiglu::backward(&gpu, &tg, &tu, &tdh, &tdg, &tdu).unwrap();
        run_all(&gpu, &[f, b]);
        let what = format!("swiglu n={n}");
        assert_close(
            &th.to_vec_f32(&gpu).unwrap(),
            &reference::swiglu::swiglu(&g, &u),
            1e-5,
            1e-5,
            &what,
        );
        let (dg, du) = reference::swiglu::swiglu_backward(&g, &u, &dh);
        assert_close(
            &tdg.to_vec_f32(&gpu).unwrap(),
            &dg,
            1e-5,
            1e-5,
            &format!("{what} dg"),
        );
        assert_close(
            &tdu.to_vec_f32(&gpu).unwrap(),
            &du,
            1e-5,
            1e-5,
            &format!("{what} du"),
        );
    }
}

#[test]
fn rope_forward_and_backward_match_the_reference() {
    let gpu = gpu();
    let theta = 10000.0;
    for (b, t, h, hd) in [(1, 1, 1, 2), (2, 7, 3, 4), (1, 33, 12, 8), (2, 5, 4, 32)] {
        let n = b * t * h * hd;
        let x = random(n, 20 + n as u64);
        let shape = [b, t, h, hd];
        let table = upload(&gpu, &[t, hd], &rope::table(t, hd, theta as f64));
        let (tx, ty, tdx) = (
            upload(&gpu, &shape, &x),
            zeros(&gpu, &shape),
            zeros(&gpu, &shape),
        );
        let f = rope::apply(&gpu, &tx, &table, &ty, false).unwrap();
        let bwd = rope::apply(&gpu, &tx, &table, &tdx, true).unwrap();
        run_all(&gpu, &[f, bwd]);
        let what = format!("rope {shape:?}");
        assert_close(
            &ty.to_vec_f32(&gpu).unwrap(),
            &reference::rope::rope(&x, t, h, hd, theta),
            1e-5,
            1e-5,
            &what,
        );
        assert_close(
            &tdx.to_vec_f32(&gpu).unwrap(),
            &reference::rope::rope_backward(&x, t, h, hd, theta),
            1e-5,
            1e-5,
            &format!("{what} backward"),
        );
    }
}

#[test]
fn rope_of_two_tensors_in_one_dispatch_matches_rope_of_each() {
    let gpu = gpu();
    let theta = 10000.0;
    // (batch, positions, heads of the first, heads of the second, head_dim): q and k with
    // grouped-query attention's fewer key heads, and a case with more lanes than one group.
    for (b, t, h, h2, hd) in [(1, 1, 1, 1, 2), (2, 7, 3, 1, 4), (2, 33, 12, 4, 8)] {
        let shapes = [[b, t, h, hd], [b, t, h2, hd]];
        let xs: Vec<Vec<f32>> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| random(s.iter().product(), 70 + i as u64))
            .collect();
        let table = upload(&gpu, &[t, hd], &rope::table(t, hd, theta as f64));
        let tx: Vec<Tensor> = (0..2).map(|i| upload(&gpu, &shapes[i], &xs[i])).collect();
        for backward in [false, true] {
            let two: Vec<Tensor> = (0..2).map(|i| zeros(&gpu, &shapes[i])).collect();
            let each: Vec<Tensor> = (0..2).map(|i| zeros(&gpu, &shapes[i])).collect();
            let fused =
                rope::apply_two(&gpu, [&tx[0], &tx[1]], &table, [&two[0], &two[1]], backward)
                    .unwrap();
            let mut all = vec![fused];
            all.extend(
                (0..2).map(|i| rope::apply(&gpu, &tx[i], &table, &each[i], backward).unwrap()),
            );
            run_all(&gpu, &all);
            for i in 0..2 {
                let what = format!(
                    "rope of two, tensor {i} {:?} backward {backward}",
                    shapes[i]
                );
                let got = two[i].to_vec_f32(&gpu).unwrap();
                assert_eq!(
                    got,
                    each[i].to_vec_f32(&gpu).unwrap(),
                    "{what}: as rope alone"
                );
                let (hi, x) = (shapes[i][2], &xs[i]);
                let want = if backward {
                    reference::rope::rope_backward(x, t, hi, hd, theta)
                } else {
                    reference::rope::rope(x, t, hi, hd, theta)
                };
                assert_close(&got, &want, 1e-5, 1e-5, &what);
            }
        }
    }
    // Different positions: refused with both shapes named.
    let (a, c) = (zeros(&gpu, &[1, 4, 2, 4]), zeros(&gpu, &[1, 5, 2, 4]));
    let (ya, yc) = (zeros(&gpu, &[1, 4, 2, 4]), zeros(&gpu, &[1, 5, 2, 4]));
    let table = upload(&gpu, &[5, 4], &rope::table(5, 4, theta as f64));
    let msg = rope::apply_two(&gpu, [&a, &c], &table, [&ya, &yc], false)
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("same batch, positions and head_dim"), "{msg}");
}
