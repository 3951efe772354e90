//! `wgtrain`: the command-line front end.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use wgtrain::gpu::{list_adapters, Backend};

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
            let chosen = pollster::block_on(wgtrain::Gpu::new(wgtrain::GpuOptions {
                backend,
                ..Default::default()
            }))?;
            println!("default for --backend {backend}: {}", chosen.adapter.name);
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
