//! `cargo xtask init-model`: an untrained perception model. Dreaming through
//! a random network is a texture effect of its own; until a trained default
//! model ships it is also what the demo uses.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use reverie_engine::normal_vec;
use reverie_engine::perception::{PerceptionConfig, PerceptionModel};
use reverie_engine::wavenet::{WavenetConfig, WavenetModel};

/// Which kind of model to write.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A perception network to dream through.
    Perception,
    /// A WaveNet to generate with.
    Wavenet,
}

/// Arguments of `cargo xtask init-model`.
#[derive(clap::Args)]
pub struct InitModelArgs {
    /// Which kind of model.
    #[arg(long, value_enum, default_value_t = Kind::Perception)]
    pub kind: Kind,
    /// Where to write the model file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Comma-separated class names of the (untrained) head.
    #[arg(long, default_value = "a,b")]
    pub classes: String,
}

/// Builds the model: the default architecture with He-normal weights and
/// batch norm calibrated on noise so every layer's activations are scaled.
pub fn build(seed: u64, classes: &str) -> anyhow::Result<PerceptionModel> {
    let names: Vec<String> = classes
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let config = PerceptionConfig::default();
    let window = config.window;
    let mut model = PerceptionModel::init(config, 16_000, names, seed, &Device::Cpu)?;
    let batch = 8;
    let noise = normal_vec(
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
        batch * window,
        0.3,
    );
    model.calibrate_batch_norm(&Tensor::from_vec(noise, (batch, window), &Device::Cpu)?)?;
    model.meta.name = format!("untrained (random weights, seed {seed})");
    model.meta.training.description = format!(
        "not trained: He-normal random weights, batch norm calibrated on noise; \
         made by `cargo xtask init-model --seed {seed}`"
    );
    Ok(model)
}

/// An untrained WaveNet of the default size.
pub fn build_wavenet(seed: u64) -> anyhow::Result<WavenetModel> {
    let mut model = WavenetModel::init(WavenetConfig::default(), 16_000, seed, &Device::Cpu)?;
    model.meta.name = format!("untrained WaveNet (random weights, seed {seed})");
    model.meta.training.description =
        format!("not trained: random weights; made by `cargo xtask init-model --kind wavenet --seed {seed}`");
    Ok(model)
}

/// Runs the command.
pub fn run(args: &InitModelArgs) -> anyhow::Result<()> {
    match args.kind {
        Kind::Perception => build(args.seed, &args.classes)?.save(&args.output)?,
        Kind::Wavenet => build_wavenet(args.seed)?.save(&args.output)?,
    }
    eprintln!("wrote {}", args.output.display());
    Ok(())
}
