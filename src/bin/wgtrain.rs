//! `wgtrain`: the command-line front end.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use wgtrain::gpu::{list_adapters, Backend};
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
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter with the limits and features that matter for training.
    Devices {
        /// vulkan, metal, dx12, gl, webgpu or auto (all backends).
        #[arg(long, default_value = "auto")]
        backend: String,
    },
    /// Loss, logits and every parameter's gradient for one batch: compare with PyTorch pico.
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

fn run(cli: Cli) -> wgtrain::Result<()> {
    match cli.command {
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
            let gpu = Gpu::new_blocking(GpuOptions {
                backend: backend.parse()?,
                ..Default::default()
            })?;
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
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
