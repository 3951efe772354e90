//! One GPU op against its CPU reference: RMSNorm, forward and backward, on random inputs.
//!
//! Every op in `wgtrain::ops` has a plain-Rust twin in `wgtrain::reference` that accumulates
//! in f64; this is how the tests check the WGSL kernels, and how to check a new one. The
//! example prints the largest absolute difference of each output and exits non-zero when one
//! is above `TOLERANCE`.
//!
//! ```sh
//! cargo run --release --example op_vs_reference [-- ROWS D]   # default 64 rows of 96
//! ```

use std::process::ExitCode;
use wgtrain::gpu::{run_all, DType};
use wgtrain::model::init::Rng;
use wgtrain::ops::rmsnorm;
use wgtrain::reference::rmsnorm::{rmsnorm, rmsnorm_backward, rmsnorm_rstd};
use wgtrain::{Error, Gpu, GpuOptions, Result, Tensor};

/// f32 on the GPU against f64 on the CPU, for values of order 1.
const TOLERANCE: f32 = 1e-4;
/// pico's RMSNorm epsilon.
const EPS: f32 = 1e-6;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The optional argument `i` as a positive size, else `default`.
fn size_arg(i: usize, default: usize) -> Result<usize> {
    match std::env::args().nth(i) {
        None => Ok(default),
        Some(s) => {
            s.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                Error::Invalid(format!("argument {i}: '{s}' is not a positive size"))
            })
        }
    }
}

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| (2.0 * rng.uniform() - 1.0) as f32).collect()
}

fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f32::max)
}

/// Returns whether every output is within the tolerance.
fn run() -> Result<bool> {
    let (rows, d) = (size_arg(1, 64)?, size_arg(2, 96)?);
    let gpu = Gpu::new_blocking(GpuOptions::default())?;
    println!("adapter: {} ({})", gpu.adapter.name, gpu.adapter.backend);

    let mut rng = Rng::new(42);
    let (x, w, dy) = (
        random(&mut rng, rows * d),
        random(&mut rng, d),
        random(&mut rng, rows * d),
    );

    // Inputs go up once; outputs are zero-filled tensors the kernels write into.
    let x_gpu = Tensor::from_f32(&gpu, &[rows, d], &x)?;
    let w_gpu = Tensor::from_f32(&gpu, &[d], &w)?;
    let dy_gpu = Tensor::from_f32(&gpu, &[rows, d], &dy)?;
    let zeros = |shape: &[usize]| Tensor::zeros(&gpu, shape, DType::F32);
    let (y_gpu, rstd_gpu) = (zeros(&[rows, d])?, zeros(&[rows])?);
    let (dx_gpu, dw_gpu) = (zeros(&[rows, d])?, zeros(&[d])?);

    // An op prepares its dispatches once (shape checks, bind groups); running them is just
    // recording them into a command encoder. The backward reuses the forward's saved rstd.
    let forward = rmsnorm::forward(&gpu, &x_gpu, &w_gpu, EPS, &y_gpu, &rstd_gpu)?;
    let [dx_pass, dw_pass] = rmsnorm::backward(
        &gpu, &x_gpu, &w_gpu, &rstd_gpu, &dy_gpu, EPS, &dx_gpu, &dw_gpu,
    )?;
    run_all(&gpu, &[forward, dx_pass, dw_pass]);

    let (dx, dw) = rmsnorm_backward(&x, &w, &dy, EPS);
    let checks = [
        ("y", y_gpu.to_vec_f32(&gpu)?, rmsnorm(&x, &w, EPS)),
        ("rstd", rstd_gpu.to_vec_f32(&gpu)?, rmsnorm_rstd(&x, d, EPS)),
        ("dx", dx_gpu.to_vec_f32(&gpu)?, dx),
        ("dw", dw_gpu.to_vec_f32(&gpu)?, dw),
    ];
    println!("RMSNorm of {rows} rows of {d}, GPU vs CPU reference (tolerance {TOLERANCE:e}):");
    let mut all_ok = true;
    for (name, got, want) in &checks {
        let err = max_abs_diff(got, want);
        let ok = err <= TOLERANCE && got.iter().all(|v| v.is_finite());
        all_ok &= ok;
        println!(
            "  {name:<5} max abs error {err:.3e}  {}",
            if ok { "ok" } else { "TOO LARGE" }
        );
    }
    Ok(all_ok)
}
