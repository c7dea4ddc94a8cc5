//! `cargo xtask pitch`: how pitched some audio files are, as numbers, so a
//! WaveNet's generated samples can be compared with the music it learnt
//! from without listening to every one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use reverie_engine::pitch::{pitchedness, Pitchedness};
use reverie_trainer::MonoAudio;

/// Arguments of `cargo xtask pitch`.
#[derive(clap::Args, Debug)]
pub struct PitchArgs {
    /// Audio files (.wav/.flac/.mp3/.ogg), mixed to mono and measured at
    /// their own rate.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Runs `cargo xtask pitch`: one line per file, then the median.
pub fn run(args: &PitchArgs) -> anyhow::Result<()> {
    let mut all: Vec<Pitchedness> = Vec::new();
    for path in &args.files {
        let (_, p) = read_and_measure(path)?;
        println!(
            "{}: clarity {:.2}, flatness {:.3}, {} frames",
            path.display(),
            p.clarity,
            p.flatness,
            p.frames
        );
        all.push(p);
    }
    if all.len() > 1 {
        let median = |f: fn(&Pitchedness) -> f32| {
            let mut v: Vec<f32> = all.iter().map(f).collect();
            v.sort_by(f32::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "median of {} files: clarity {:.2}, flatness {:.3}",
            all.len(),
            median(|p| p.clarity),
            median(|p| p.flatness)
        );
    }
    println!(
        "(notes: clarity about 0.5 or more, flatness near 0; noise: clarity under 0.3, flatness about 0.2 or more)"
    );
    Ok(())
}

/// An audio file mixed to mono at its own rate, and its pitch measures.
pub fn read_and_measure(path: &Path) -> anyhow::Result<(MonoAudio, Pitchedness)> {
    if !path.is_file() {
        bail!("{} does not exist", path.display());
    }
    let audio = reverie_trainer::decode_mono(path).with_context(|| format!("reading {}", path.display()))?;
    let p = pitchedness(&audio.samples, audio.sample_rate);
    Ok((audio, p))
}
