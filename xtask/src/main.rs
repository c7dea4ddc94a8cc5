//! `cargo xtask`: Reverie's command line.

mod bench_report;
mod bundle;
mod cuda_toolchain;
mod dataset_cmd;
mod demo;
mod dream;
mod dream_report_cmd;
mod filters_cmd;
mod generate_cmd;
mod init_model;
mod models;
mod nll_cmd;
mod pitch_cmd;
mod progress;
mod spectrogram_cmd;
mod suite;
mod system_packages;
mod tone_prior_cmd;
mod train_cmd;
mod train_run;
mod train_wavenet_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Reverie: dream on audio with neural networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run; the size of the largest arguments struct does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Dream on a WAV file (Audio DeepDream) and write the result.
    Dream(dream::DreamArgs),
    /// Measure what a dream does to audio: level, flatness, spectrum, pumping, score, speed.
    DreamReport(dream_report_cmd::DreamReportArgs),
    /// Render a labelled training dataset (e.g. `dataset instruments --out DIR`).
    Dataset(dataset_cmd::DatasetArgs),
    /// Train a network: `train dreamer` (perception) or `train wavenet`.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Draw the first-layer filters' spectra of a perception model as a PNG.
    Filters(filters_cmd::FiltersArgs),
    /// Generate audio with a WaveNet (default: the embedded one).
    Generate(generate_cmd::GenerateArgs),
    /// How pitched audio files are (notes or noise): pitch clarity and spectral flatness.
    Pitch(pitch_cmd::PitchArgs),
    /// How well a WaveNet predicts audio files (nats per sample), and where: onsets, loud, quiet, silence.
    Nll(nll_cmd::NllArgs),
    /// Store a tone prior (the predictor as a prior on the next sample) in a WaveNet model file.
    TonePrior(tone_prior_cmd::TonePriorCmdArgs),
    /// Draw audio files as spectrograms stacked in one PNG, labelled with their pitch measures.
    Spectrogram(spectrogram_cmd::SpectrogramArgs),
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

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum TrainCommand {
    /// The perception network the dreamer listens through (a classifier).
    Dreamer(train_cmd::TrainArgs),
    /// The autoregressive WaveNet the plugin generates with.
    Wavenet(train_wavenet_cmd::TrainWavenetArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Dream(args) => dream::run(&args),
        Command::DreamReport(args) => dream_report_cmd::run(&args),
        Command::Dataset(args) => dataset_cmd::run(args),
        Command::Demo(args) => demo::run(&args),
        Command::Train(TrainCommand::Dreamer(args)) => train_cmd::run(&args),
        Command::Train(TrainCommand::Wavenet(args)) => train_wavenet_cmd::run(&args),
        Command::Filters(args) => filters_cmd::run(&args),
        Command::Generate(args) => generate_cmd::run(&args),
        Command::Pitch(args) => pitch_cmd::run(&args),
        Command::Nll(args) => nll_cmd::run(&args),
        Command::TonePrior(args) => tone_prior_cmd::run(&args),
        Command::Spectrogram(args) => spectrogram_cmd::run(&args),
        Command::InitModel(args) => init_model::run(&args),
        Command::BenchReport(args) => bench_report::run(&args),
        Command::Bundle(args) => bundle::bundle(&args),
        Command::Install(args) => bundle::install(&args),
        Command::CudaToolchain(args) => cuda_toolchain::run(&args),
    }
}
