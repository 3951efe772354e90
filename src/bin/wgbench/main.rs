//! `wgbench`: the benchmark suite. Every figure is printed beside a baseline measured in the
//! same run on the same machine, so ratios hold even where absolute times are noise.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use wgtrain::bench::shapes::{self, MatmulCase, Product};
use wgtrain::formulas::kernels::KernelPins;
use wgtrain::gpu::Backend;
use wgtrain::ops::matmul_tune::ProductShape;
use wgtrain::ops::{Matmul, MatmulSpec};
use wgtrain::{Gpu, GpuOptions, Tensor};

#[cfg(feature = "mpi")]
mod allreduce;
mod attention;
mod demo;
mod step;
mod suite;
mod svd;

#[derive(Parser)]
#[command(name = "wgbench", version, about = "wgtrain benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Pin kernel variants for the benchmarks that run the model (step, demo, svd), e.g.
    /// `matmul=rows_16x8,attention=tiled,lora=fused`; `wgbench matmul` and `attention` run
    /// every variant.
    #[arg(long, global = true, value_name = "OP=VARIANT,...")]
    kernel: Option<String>,
}

/// The command line's kernel pins, for every device a benchmark opens.
static PINS: std::sync::OnceLock<KernelPins> = std::sync::OnceLock::new();

#[derive(Subcommand)]
enum Command {
    /// Every entry (matmul variants, attention, linear + cross-entropy, AdamW, LoRA, the
    /// merge-and-reset, training steps, evaluation, metrics, the demo session) on one adapter,
    /// with the CPU's GEMM and PyTorch measured in the same run; writes a JSON record.
    Suite {
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Every entry at its smallest size (seconds; what CI runs).
        #[arg(long)]
        quick: bool,
        /// Where to write the run's JSON record (for `wgbench report`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The Python that runs the PyTorch baseline (needs torch and numpy); default
        /// `$WGBENCH_PYTHON`, else `python3`.
        #[arg(long)]
        python: Option<String>,
        /// Do not run the PyTorch baseline.
        #[arg(long)]
        no_pytorch: bool,
        /// Only these families, comma-separated (e.g. `matmul,training step`).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Merge suite records (from several machines and backends) into one table per family
    /// and charts (SVG and PNG) in DIR; with --benchmarks, regenerate that file's tables.
    Report {
        /// The records (`wgbench suite --out` files).
        records: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// A Markdown file whose generated block (between the wgbench report markers) is
        /// replaced by the tables, e.g. BENCHMARKS.md.
        #[arg(long)]
        benchmarks: Option<PathBuf>,
    },
    /// GFLOP/s of every matmul variant and the autotune's pick vs a BLAS-class CPU GEMM.
    Matmul {
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Rows (batch x sequence) for the pico-shaped products.
        #[arg(long, default_value_t = 512)]
        tokens: usize,
        /// Largest square size to run (256, 512, ... up to this).
        #[arg(long, default_value_t = 2048)]
        max_square: usize,
        /// Timed repetitions per shape (after one warm-up).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// GFLOP/s of every attention variant (tiled, rows), forward and backward, at pico's head
    /// shapes (tiny: 12/4 heads x 8, small: 12/4 x 32).
    Attention {
        #[arg(long, default_value = "auto")]
        backend: String,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Sequence lengths, comma-separated.
        #[arg(long, default_value = "128,512", value_delimiter = ',')]
        seqs: Vec<usize>,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// Time the on-device SVD (+ metrics) on pico's matrix shapes against a CPU SVD
    /// (nalgebra, f64) in the same run.
    Svd {
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Largest preset whose shapes are measured: tiny, small, medium, large.
        #[arg(long, default_value = "small")]
        up_to: String,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// Time a training micro-step (forward + backward) of a pico-decoder.
    Step {
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Model preset: tiny, small, medium, large.
        #[arg(long, default_value = "tiny")]
        config: String,
        #[arg(long, default_value_t = 4)]
        batch: usize,
        #[arg(long, default_value_t = 128)]
        seq: usize,
        /// Timed steps (after one warm-up).
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Also time pico-relora's step (LoRA r 16 on every linear) beside the plain one.
        #[arg(long)]
        relora: bool,
        /// Also time the plain step with the logits computed this many token rows at a time
        /// (the chunked head, which projects each chunk again in the backward) beside
        /// the default plan, with both plans' memory.
        #[arg(long)]
        logits_rows: Option<usize>,
    },
    /// Steps/s of the browser demo's training session run natively (compare with the page's
    /// figure in a browser on the same machine).
    Demo {
        #[arg(long, default_value = "auto")]
        backend: String,
        #[arg(long, default_value_t = 64)]
        d_model: usize,
        #[arg(long, default_value_t = 2)]
        layers: usize,
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long, default_value_t = 64)]
        seq: usize,
        /// Timed optimizer steps (after one warm-up step).
        #[arg(long, default_value_t = 30)]
        steps: u32,
        /// Also run the ReLoRA session (r 8, reset every 100).
        #[arg(long)]
        relora: bool,
    },
    /// The data-parallel gradient exchange (fixed-tree all-gather) on pico's gradient sizes
    /// against MPI_Allreduce in the same run: `mpirun -np N wgbench allreduce` (needs the
    /// `mpi` feature).
    #[cfg(feature = "mpi")]
    Allreduce {
        /// Presets whose gradients are exchanged, comma-separated.
        #[arg(long, default_value = "tiny,small")]
        presets: String,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
}

/// The cases `wgbench matmul` runs: squares up to `max_square`, then the forward product of
/// every pico layer over `tokens` rows (the suite's table; `wgbench suite` also runs the
/// backward products).
fn matmul_cases(tokens: usize, max_square: usize) -> Vec<MatmulCase> {
    let mut v: Vec<MatmulCase> = shapes::matmul_cases(shapes::Size::Full)
        .into_iter()
        .filter(|c| c.product == Product::Square && c.shape.m <= max_square)
        .collect();
    for (preset, layer, inp, out) in shapes::PICO_LAYERS {
        v.extend(
            shapes::layer_products(&format!("{preset} {layer}"), tokens, inp, out)
                .into_iter()
                .filter(|c| c.product == Product::Forward),
        );
    }
    v
}

use wgtrain::bench::workloads::{random, xorshift};

/// The GPU of `backend` (a name, or `auto`).
fn open_gpu(backend: &str) -> wgtrain::Result<Gpu> {
    Gpu::new_blocking(GpuOptions {
        backend: backend.parse::<Backend>()?,
        kernels: PINS.get().copied().unwrap_or_default(),
        ..Default::default()
    })
}

/// Every benchmark's first line: the adapter it ran on.
fn print_adapter(gpu: &Gpu) {
    println!(
        "adapter: {} ({}, {}, {})",
        gpu.adapter.name, gpu.adapter.backend, gpu.adapter.device_type, gpu.adapter.driver_info
    );
    let pins = gpu.kernels();
    println!(
        "kernels: matmul {}, attention {}, lora {}",
        pins.matmul,
        wgtrain::ops::attention::kernel_for(gpu, 8),
        if pins.lora.fused() {
            "fused"
        } else {
            "separate"
        }
    );
}

fn time_gpu(gpu: &Gpu, repeats: usize, record: &dyn Fn(&mut wgpu::ComputePass<'_>)) -> f64 {
    let run = |n: usize| {
        let mut enc = gpu.encoder();
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            for _ in 0..n {
                record(&mut pass);
            }
        }
        gpu.submit(enc);
        gpu.finish_blocking().expect("GPU error during benchmark");
    };
    run(1);
    let t0 = Instant::now();
    run(repeats);
    t0.elapsed().as_secs_f64() / repeats as f64
}

/// `C = op(A) op(B)` on the CPU (matrixmultiply's threaded sgemm), A and B stored as the
/// GPU's operands are (`[K, M]` when `trans_a`, `[N, K]` when `trans_b`); strides express
/// the transposes.
fn cpu_gemm(s: &ProductShape, a: &[f32], b: &[f32], c: &mut [f32]) {
    let (rsa, csa) = if s.trans_a {
        (1, s.m as isize)
    } else {
        (s.k as isize, 1)
    };
    let (rsb, csb) = if s.trans_b {
        (1, s.k as isize)
    } else {
        (s.n as isize, 1)
    };
    unsafe {
        matrixmultiply::sgemm(
            s.m,
            s.k,
            s.n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            s.n as isize,
            1,
        );
    }
}

fn bench_matmul(
    backend: &str,
    tokens: usize,
    max_square: usize,
    repeats: usize,
) -> wgtrain::Result<()> {
    let gpu = open_gpu(backend)?;
    print_adapter(&gpu);
    println!(
        "CPU baseline: matrixmultiply sgemm, {} threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if let Some(path) = gpu.tuning().path() {
        println!("autotune choices: {}", path.display());
    }
    println!();
    let variants = wgtrain::ops::matmul::available_kernels(&gpu);
    let names: Vec<String> = variants.iter().map(|v| format!("{v} GFLOP/s")).collect();
    println!(
        "| shape (M x K x N) | {} | auto picks | CPU GEMM GFLOP/s | auto / CPU |",
        names.join(" | ")
    );
    println!("|---|{}---|---|---|", "---|".repeat(variants.len()));
    for case in matmul_cases(tokens, max_square) {
        let s = case.shape;
        let flops = s.flops();
        let a = random(s.m * s.k, 1);
        let b = random(s.k * s.n, 2);
        let b_shape = if s.trans_b { [s.n, s.k] } else { [s.k, s.n] };
        let ta = Tensor::from_f32(&gpu, &[s.m, s.k], &a)?;
        let tb = Tensor::from_f32(&gpu, &b_shape, &b)?;
        let tc = Tensor::zeros(&gpu, &[s.m, s.n], wgtrain::gpu::DType::F32)?;
        let spec = MatmulSpec {
            trans_b: s.trans_b,
            ..MatmulSpec::default()
        };
        let mut rates = Vec::new();
        for &kernel in &variants {
            let mm = Matmul::new(&gpu, &ta, &tb, &tc, spec.with_kernel(kernel))?;
            rates.push(flops / time_gpu(&gpu, repeats, &|pass| mm.record(pass)) / 1e9);
        }
        let picked = wgtrain::ops::matmul::choose_kernel(&gpu, s);
        let auto = rates[variants.iter().position(|&v| v == picked).unwrap_or(0)];
        let mut c = vec![0f32; s.m * s.n];
        cpu_gemm(&s, &a, &b, &mut c);
        let t0 = Instant::now();
        for _ in 0..repeats {
            cpu_gemm(&s, &a, &b, &mut c);
        }
        let cpu = flops / (t0.elapsed().as_secs_f64() / repeats as f64) / 1e9;
        let cells: Vec<String> = rates.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "| {} | {} | {picked} | {cpu:.2} | {:.3}x |",
            case.label(),
            cells.join(" | "),
            auto / cpu
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,wgpu_hal=off"),
    )
    .init();
    let cli = Cli::parse();
    match cli.kernel.as_deref().map(str::parse::<KernelPins>) {
        Some(Err(e)) => {
            eprintln!("error: --kernel: {e}");
            return ExitCode::FAILURE;
        }
        Some(Ok(p)) => {
            let _ = PINS.set(p);
        }
        None => {}
    }
    let result = match cli.command {
        Command::Suite {
            backend,
            quick,
            out,
            python,
            no_pytorch,
            only,
        } => suite::run(suite::SuiteArgs {
            backend,
            quick,
            out,
            python: (!no_pytorch).then(|| {
                python
                    .or_else(|| std::env::var("WGBENCH_PYTHON").ok())
                    .unwrap_or_else(|| "python3".into())
            }),
            only,
        }),
        Command::Report {
            records,
            out,
            benchmarks,
        } => wgtrain::bench::report::load(&records).and_then(|r| {
            let md = wgtrain::bench::report::write(&r, &out, benchmarks.as_deref())?;
            println!("{md}");
            println!("report written to {}", out.join("report.md").display());
            Ok(())
        }),
        Command::Matmul {
            backend,
            tokens,
            max_square,
            repeats,
        } => bench_matmul(&backend, tokens, max_square, repeats),
        Command::Attention {
            backend,
            batch,
            seqs,
            repeats,
        } => attention::bench_attention(&backend, batch, &seqs, repeats),
        Command::Svd {
            backend,
            up_to,
            repeats,
        } => svd::bench_svd(&backend, &up_to, repeats),
        Command::Step {
            backend,
            config,
            batch,
            seq,
            steps,
            relora,
            logits_rows,
        } => step::bench_step(
            &backend,
            &config,
            step::StepShape { batch, seq, steps },
            relora,
            logits_rows,
        ),
        #[cfg(feature = "mpi")]
        Command::Allreduce { presets, repeats } => allreduce::bench_allreduce(&presets, repeats),
        Command::Demo {
            backend,
            d_model,
            layers,
            batch,
            seq,
            steps,
            relora,
        } => {
            let options = wgtrain::demo::DemoOptions {
                d_model,
                n_layers: layers,
                batch,
                seq,
                ..Default::default()
            };
            demo::bench_demo(&backend, options, steps, relora)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
