//! `cargo xtask dataset`: render training data (labelled instruments for
//! the perception network, dry solo piano for a WaveNet).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use reverie_trainer::render::{render_piano, PianoStyle, RenderConfig, Renderer, FAMILIES};

use crate::progress::styled_bar;
use crate::system_packages::ensure_soundfont;

/// Which dataset to make.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum DatasetKind {
    /// Instrument families (piano, mallets, organ, guitar, bass, strings,
    /// brass, winds, synth, drums) rendered from the General MIDI SoundFont
    /// of Debian's fluid-soundfont-gm, installed on first use when root
    /// (unless $REVERIE_SOUNDFONT names another).
    Instruments,
    /// Dry solo acoustic grand piano (no labels), what `train wavenet`
    /// learns from; the same clips as its `--render-piano`.
    Piano,
}

/// What rendered piano plays (`--style`, and `train wavenet --piano-style`).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PianoStyleArg {
    /// Melodies, chords and ostinatos over the whole keyboard, two grands.
    Phrases,
    /// Single-line melodies from C4 to D5 on one grand: few notes, each
    /// heard often, so a CPU's hours of training suffice to learn them.
    Melodies,
}

/// Arguments of `cargo xtask dataset`.
#[derive(clap::Args, Debug)]
pub struct DatasetArgs {
    /// The dataset to make.
    #[arg(value_enum)]
    pub kind: DatasetKind,
    /// Output folder; clips go to OUT/<class>/<n>.wav (instruments) or
    /// OUT/piano-<n>.wav (piano), mono, 16-bit, at --rate.
    #[arg(long)]
    pub out: PathBuf,
    /// Clips per class (instruments) or in all (piano).
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
    /// What the piano plays (piano only) [default: phrases].
    #[arg(long, value_enum)]
    pub style: Option<PianoStyleArg>,
}

/// Runs `cargo xtask dataset`.
pub fn run(args: DatasetArgs) -> anyhow::Result<()> {
    match args.kind {
        DatasetKind::Instruments if args.style.is_some() => {
            bail!("--style is for `dataset piano`; the instruments dataset mixes its own styles")
        }
        DatasetKind::Instruments => instruments(&args),
        DatasetKind::Piano => render_piano_clips(
            &args.out,
            args.style.unwrap_or(PianoStyleArg::Phrases),
            args.clips,
            args.seconds,
            args.rate,
            args.seed,
        ),
    }
}

/// Renders `clips` dry piano clips into `root` as piano-NNNN.wav with a
/// progress bar (`dataset piano` and `train wavenet --render-piano`).
pub fn render_piano_clips(
    root: &Path,
    style: PianoStyleArg,
    clips: usize,
    seconds: f32,
    rate: u32,
    seed: u64,
) -> anyhow::Result<()> {
    if clips == 0 {
        bail!("rendering piano needs at least 1 clip");
    }
    ensure_soundfont("rendering piano")?;
    let bar = styled_bar(
        clips as u64,
        "{spinner} rendering piano [{bar:40}] {pos}/{len} clips, ETA {eta}",
    );
    let started = Instant::now();
    let style = match style {
        PianoStyleArg::Phrases => PianoStyle::Phrases,
        PianoStyleArg::Melodies => PianoStyle::Melodies,
    };
    render_piano(root, style, clips, seconds, rate, seed, &|| bar.inc(1))
        .with_context(|| format!("rendering solo piano into {}", root.display()))?;
    bar.finish_and_clear();
    eprintln!(
        "rendered {clips} piano clips of {seconds} s into {} in {:.1} s",
        root.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn instruments(args: &DatasetArgs) -> anyhow::Result<()> {
    let config = RenderConfig {
        sample_rate: args.rate,
        clip_seconds: args.seconds,
        clips_per_class: args.clips,
        seed: args.seed,
        ..RenderConfig::default()
    };
    let font = ensure_soundfont("rendering the instrument dataset")?;
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
