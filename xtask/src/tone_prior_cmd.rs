//! `cargo xtask tone-prior`: stores a tone prior ([`reverie_engine::tone_prior`])
//! in a WaveNet model file, or takes it out, so that scoring, `generate`
//! and the plugin's Generate and Continue modes use it. The network's
//! weights are copied unchanged.

use std::path::PathBuf;

use anyhow::{bail, Context};
use candle_core::Device;
use reverie_engine::tone_prior::TonePriorConfig;
use reverie_engine::wavenet::WavenetModel;

/// Arguments of `cargo xtask tone-prior`.
#[derive(clap::Args, Debug)]
pub struct TonePriorCmdArgs {
    /// The WaveNet model file to start from.
    #[arg(long)]
    pub model: PathBuf,
    /// Where to write the model with the prior (may be --model itself).
    #[arg(long, short)]
    pub out: PathBuf,
    /// The prior's power (0 to 8; 1: the product of the network's
    /// distribution and the prior).
    #[arg(long, required_unless_present = "remove", value_name = "WEIGHT")]
    pub tone_prior: Option<f32>,
    /// The prior's share for its Gaussian on a fully periodic sound.
    #[arg(long, default_value_t = 0.9, value_name = "SHARE")]
    pub tone_trust: f32,
    /// The share of the Gaussian mixed into the shaped distribution on a
    /// fully periodic sound.
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    pub tone_mix: f32,
    /// Take the model's tone prior out instead.
    #[arg(long, conflicts_with = "tone_prior")]
    pub remove: bool,
}

/// Runs `cargo xtask tone-prior`.
pub fn run(args: &TonePriorCmdArgs) -> anyhow::Result<()> {
    if !args.model.is_file() {
        bail!("the model file {} does not exist", args.model.display());
    }
    let mut model = WavenetModel::load(&args.model, &Device::Cpu)
        .with_context(|| format!("loading the WaveNet {}", args.model.display()))?;
    model.config.tone_prior = args.tone_prior.map(|weight| TonePriorConfig {
        weight,
        max_trust: args.tone_trust,
        mix: args.tone_mix,
    });
    if let Err(why) = model.config.validate() {
        bail!("{why}");
    }
    model
        .save(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {} (options: {}); score it with `cargo xtask nll --model {} FILES`",
        args.out.display(),
        model.config.options_text(),
        args.out.display()
    );
    Ok(())
}
