//! `cargo xtask dataset`: render labelled training data.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use reverie_trainer::render::{self, RenderConfig, Renderer, FAMILIES};

/// Which dataset to make.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum DatasetKind {
    /// Instrument families (piano, mallets, organ, guitar, bass, strings,
    /// brass, winds, synth, drums) rendered from the General MIDI SoundFont
    /// of Debian's fluid-soundfont-gm, installed on first use when root.
    Instruments,
}

/// Arguments of `cargo xtask dataset`.
#[derive(clap::Args, Debug)]
pub struct DatasetArgs {
    /// The dataset to make.
    #[arg(value_enum)]
    pub kind: DatasetKind,
    /// Output folder; clips go to OUT/<class>/<n>.wav (mono, 16-bit, at --rate).
    #[arg(long)]
    pub out: PathBuf,
    /// Clips per class.
    #[arg(long, default_value_t = RenderConfig::default().clips_per_class)]
    pub clips: usize,
    /// Seed: the same seed writes byte-identical files.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Length of each clip in seconds.
    #[arg(long, default_value_t = RenderConfig::default().clip_seconds)]
    pub seconds: f32,
    /// Sample rate of the clips in Hz.
    #[arg(long, default_value_t = RenderConfig::default().sample_rate)]
    pub rate: u32,
}

/// Runs `cargo xtask dataset`.
pub fn run(args: DatasetArgs) -> anyhow::Result<()> {
    match args.kind {
        DatasetKind::Instruments => instruments(&args),
    }
}

fn instruments(args: &DatasetArgs) -> anyhow::Result<()> {
    let config = RenderConfig {
        sample_rate: args.rate,
        clip_seconds: args.seconds,
        clips_per_class: args.clips,
        seed: args.seed,
        ..RenderConfig::default()
    };
    let font = render::ensure_soundfont()?;
    let started = Instant::now();
    let renderer = Renderer::load(&font)?;
    let total = (FAMILIES.len() * args.clips) as u64;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{spinner} rendering [{bar:40}] {pos}/{len} clips, {elapsed} elapsed, ETA {eta}",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    let summary = renderer
        .render_dataset(&args.out, &config, &|| bar.inc(1))
        .with_context(|| format!("rendering the instrument dataset into {}", args.out.display()))?;
    bar.finish_and_clear();
    println!(
        "wrote {} clips ({:.0} s of audio, {:.1} MB) in {} classes to {} in {:.1} s: {}",
        summary.files,
        summary.audio_seconds,
        summary.bytes as f64 / 1e6,
        summary.classes.len(),
        args.out.display(),
        started.elapsed().as_secs_f64(),
        summary.classes.join(", "),
    );
    Ok(())
}
