//! Shared helpers for the integration tests: the GPU they run on, seeded data, comparisons.
#![allow(dead_code)]

use wgtrain::{Backend, Gpu, GpuOptions};

/// The backend tests run on: `WGTRAIN_TEST_BACKEND`, or whatever `auto` finds (lavapipe in CI).
pub fn backend() -> Backend {
    std::env::var("WGTRAIN_TEST_BACKEND")
        .ok()
        .map(|b| b.parse().expect("WGTRAIN_TEST_BACKEND"))
        .unwrap_or(Backend::Auto)
}

pub fn gpu() -> Gpu {
    gpu_with(GpuOptions::default())
}

pub fn gpu_with(options: GpuOptions) -> Gpu {
    Gpu::new_blocking(GpuOptions {
        backend: backend(),
        ..options
    })
    .expect("tests need a GPU adapter; on Linux install mesa-vulkan-drivers (lavapipe)")
}

/// Deterministic uniform values in [-1, 1).
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Assert |got - want| <= atol + rtol * |want| elementwise, naming the first offender.
pub fn assert_close(got: &[f32], want: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = atol + rtol * w.abs();
        assert!(
            (g - w).abs() <= tol && g.is_finite(),
            "{what}: element {i}: got {g}, want {w} (tolerance {tol})"
        );
    }
}

/// A fresh (removed if present) path in the temp dir, unique per test process.
pub fn temp_path(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Copy the files of checkpoint directory `src` into `dst` (created), e.g. to resume a run
/// from another run's checkpoint.
pub fn copy_checkpoint(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).unwrap();
    for f in std::fs::read_dir(src).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dst.join(f.file_name())).unwrap();
    }
}
