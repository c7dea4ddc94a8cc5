//! `cargo xtask tone-prior`: stores a tone prior ([`reverie_engine::tone_prior`])
//! in a WaveNet model file, or takes it out, so that scoring, `generate`
//! and the plugin's Generate and Continue modes use it. The network's
//! weights are copied unchanged.

use std::path::PathBuf;

use anyhow::{bail, Context};
use candle_core::Device;
use reverie_engine::wavenet::WavenetModel;

/// Arguments of `cargo xtask tone-prior`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["tone_prior", "remove"])))]
pub struct TonePriorCmdArgs {
    /// The WaveNet model file to start from.
    #[arg(long)]
    pub model: PathBuf,
    /// Where to write the model with the prior (may be --model itself).
    #[arg(long, short)]
    pub out: PathBuf,
    #[command(flatten)]
    pub prior: crate::generate_cmd::TonePriorArgs,
    /// Take the model's tone prior out instead.
    #[arg(long)]
    pub remove: bool,
}

/// Runs `cargo xtask tone-prior`.
pub fn run(args: &TonePriorCmdArgs) -> anyhow::Result<()> {
    if !args.model.is_file() {
        bail!("the model file {} does not exist", args.model.display());
    }
    let mut model = WavenetModel::load(&args.model, &Device::Cpu)
        .with_context(|| format!("loading the WaveNet {}", args.model.display()))?;
    model.config.tone_prior = args.prior.config();
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
