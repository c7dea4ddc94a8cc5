//! `cargo xtask spectrogram`: audio files as spectrograms stacked in one
//! PNG, each labelled with its name and pitch measures, e.g. a WaveNet's
//! training data above what it generates.

use std::path::PathBuf;

use anyhow::{bail, Context};
use reverie_trainer::spectrogram_png::{spectrogram_picture, Strip};

use crate::pitch_cmd::read_and_measure;

/// Arguments of `cargo xtask spectrogram`.
#[derive(clap::Args, Debug)]
pub struct SpectrogramArgs {
    /// Audio files (.wav/.flac/.mp3/.ogg), drawn top to bottom in this order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output PNG.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Seconds drawn from the start of each file [default: the longest
    /// file, at most 20].
    #[arg(long)]
    pub seconds: Option<f32>,
}

/// Runs `cargo xtask spectrogram`.
pub fn run(args: &SpectrogramArgs) -> anyhow::Result<()> {
    if let Some(s) = args.seconds {
        if !(s.is_finite() && s > 0.0 && s <= 600.0) {
            bail!("--seconds must be more than 0 and at most 600 (got {s})");
        }
    }
    let mut sounds = Vec::new();
    for path in &args.files {
        let (audio, p) = read_and_measure(path)?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        // The picture's flatness is the dream report's, in the band hiss is
        // heard in: what the eye sees between the partials.
        let flatness = reverie_engine::dream_measures::flatness(&audio.samples, audio.sample_rate);
        let mut label = format!(
            "{name}  clarity {:.2}  flatness 50 Hz-7 kHz {flatness:.3}",
            p.clarity
        );
        // A picture cannot show clipping: the title says it.
        let notes = reverie_engine::notes::measure_notes(&audio.samples, audio.sample_rate)
            .with_context(|| format!("measuring {}", path.display()))?;
        if notes.clips() {
            label.push_str(&format!("  {:.0}% at full scale", 100.0 * notes.clipped));
        }
        sounds.push((label, audio));
    }
    let longest = sounds
        .iter()
        .map(|(_, a)| a.samples.len() as f32 / a.sample_rate as f32)
        .fold(0.0f32, f32::max);
    let seconds = args.seconds.unwrap_or(longest.min(20.0));
    let strips: Vec<Strip<'_>> = sounds
        .iter()
        .map(|(label, audio)| Strip {
            label: label.clone(),
            samples: &audio.samples,
            rate: audio.sample_rate,
        })
        .collect();
    let image = spectrogram_picture(&strips, seconds)?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    image.save_png(&args.out)?;
    println!(
        "wrote {} ({} x {} px, {seconds:.1} s of {} files, 30 Hz at the bottom of each strip)",
        args.out.display(),
        image.width,
        image.height,
        strips.len()
    );
    Ok(())
}
