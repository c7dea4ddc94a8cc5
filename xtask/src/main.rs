//! `cargo xtask`: Reverie's command line.

mod bench_report;
mod bundle;
mod cuda_toolchain;
mod dataset_cmd;
mod demo;
mod dream;
mod init_model;
mod models;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Reverie: dream on audio with neural networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Dream on a WAV file (Audio DeepDream) and write the result.
    Dream(dream::DreamArgs),
    /// Render a labelled training dataset (e.g. `dataset instruments --out DIR`).
    Dataset(dataset_cmd::DatasetArgs),
    /// Synthesise a short example and dream on it: the quickest way to hear Reverie.
    Demo(demo::DemoArgs),
    /// Write a randomly initialised (untrained) perception model file.
    InitModel(init_model::InitModelArgs),
    /// Build the plugin bundles (e.g. `bundle reverie --release`) into target/bundled/.
    Bundle(bundle::BundleArgs),
    /// Bundle Reverie and copy it to ~/.clap and ~/.vst3.
    Install(bundle::InstallArgs),
    /// Print the medians of the last `cargo bench` run.
    BenchReport(bench_report::BenchReportArgs),
    /// Install a CUDA 13 build toolchain from PyPI for `--features cuda` (see docs/cuda.md).
    CudaToolchain(cuda_toolchain::CudaToolchainArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Dream(args) => dream::run(&args),
        Command::Dataset(args) => dataset_cmd::run(args),
        Command::Demo(args) => demo::run(&args),
        Command::InitModel(args) => init_model::run(&args),
        Command::BenchReport(args) => bench_report::run(&args),
        Command::Bundle(args) => bundle::bundle(&args),
        Command::Install(args) => bundle::install(&args),
        Command::CudaToolchain(args) => cuda_toolchain::run(&args),
    }
}
