//! Shared helpers for the integration tests: the GPU they run on, seeded data, comparisons,
//! and running the `wgtrain` command line.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::process::{Child, Command, Output, Stdio};
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

/// One book of the shared corpus (Alice's Adventures in Wonderland): small real text for runs.
pub fn alice() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/corpus/train/gutenberg_pg11_Alices_Adventures_in_Wonderland.txt")
}

/// A committed fixture directory under `tests/fixtures/` (made by tests/reference/*.py).
pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The checkpoint in fixture directory `name`, loaded.
pub fn fixture_checkpoint(name: &str) -> wgtrain::model::checkpoint::Checkpoint {
    wgtrain::model::checkpoint::load(&fixture(name)).unwrap()
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

/// A `wgtrain` command line, run as a user would run it: the binary cargo built for the tests.
pub struct Cli(Command);

/// `wgtrain` with `args`; add more with [`Cli::arg`] and friends, then run it.
pub fn wgtrain<I, S>(args: I) -> Cli
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(env!("CARGO_BIN_EXE_wgtrain"));
    command.args(args);
    Cli(command)
}

/// What a finished `wgtrain` run printed, and whether it exited with success.
pub struct CliOutput {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Cli {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cli {
        self.0.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cli
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.0.args(args);
        self
    }

    /// `--backend NAME` for the backend the tests run on (see [`backend`]).
    pub fn test_backend(self) -> Cli {
        self.args(["--backend", backend().name()])
    }

    /// Run in `dir`.
    pub fn current_dir(mut self, dir: &std::path::Path) -> Cli {
        self.0.current_dir(dir);
        self
    }

    /// Set environment variables for this run only.
    pub fn envs(mut self, vars: &[(&str, &str)]) -> Cli {
        self.0.envs(vars.iter().copied());
        self
    }

    /// Run to the end, capturing stdout and stderr.
    pub fn run(mut self) -> CliOutput {
        self.0.output().expect("wgtrain runs").into()
    }

    /// Run to the end and assert it succeeded (the failure shows what it printed); its stdout.
    pub fn run_ok(self) -> String {
        self.run().assert_ok()
    }

    /// Start it with stdout and stderr piped, for a test that acts while it runs; finish with
    /// `CliOutput::from(child.wait_with_output().unwrap())`.
    pub fn spawn(mut self) -> Child {
        self.0
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wgtrain starts")
    }
}

impl From<Output> for CliOutput {
    fn from(out: Output) -> CliOutput {
        CliOutput {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl CliOutput {
    /// Assert the run succeeded (the failure shows its stdout and stderr); its stdout.
    pub fn assert_ok(self) -> String {
        assert!(self.ok, "wgtrain failed:\n{}{}", self.stdout, self.stderr);
        self.stdout
    }

    /// Assert the run failed with an error, not a panic; its stderr (the message).
    pub fn assert_failed(self) -> String {
        assert!(
            !self.ok,
            "wgtrain should have failed:\n{}{}",
            self.stdout, self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "wgtrain panicked:\n{}",
            self.stderr
        );
        self.stderr
    }
}
