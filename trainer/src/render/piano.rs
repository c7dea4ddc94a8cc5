//! Dry solo piano for the WaveNet: the same phrases the instrument
//! dataset's piano clips play, without the room and level colouring.

use std::path::Path;

use super::error::RenderError;
use super::families::{Family, FAMILIES, PIANO_MELODIES, SOLO_PIANO};
use super::renderer::{RenderConfig, Renderer};
use super::soundfont::find_soundfont;
use crate::mono_wav::write_mono_wav;
use crate::parallel::run_jobs;

/// What rendered solo piano plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PianoStyle {
    /// Melodies, chords and ostinatos over the whole keyboard, on both
    /// acoustic grands ([`SOLO_PIANO`]).
    Phrases,
    /// Single-line melodies from C4 to D5 on one grand ([`PIANO_MELODIES`]).
    Melodies,
}

impl PianoStyle {
    /// The instrument family that renders this style.
    pub fn family(self) -> &'static Family {
        match self {
            PianoStyle::Phrases => &SOLO_PIANO,
            PianoStyle::Melodies => &PIANO_MELODIES,
        }
    }
}

/// Renders `clips` solo piano clips of `seconds` each in `style` with helper
/// [`Renderer`], dry (no reverb, chorus, noise floor or level changes: see
/// [`RenderConfig::colour`]) into `dir/piano-NNNN.wav` (16-bit mono at
/// `sample_rate`). Deterministic for a seed. `progress` is called after
/// each clip, from worker threads.
pub fn render_piano(
    dir: &Path,
    style: PianoStyle,
    clips: usize,
    seconds: f32,
    sample_rate: u32,
    seed: u64,
    progress: &(dyn Fn() + Sync),
) -> Result<usize, RenderError> {
    // The piano family's random stream, so clip n's phrase is the one the
    // perception dataset's piano clip n would play.
    let family = FAMILIES.iter().position(|f| f.name == "piano").unwrap_or(0);
    let config = RenderConfig {
        sample_rate,
        clip_seconds: seconds,
        clips_per_class: clips.max(1),
        seed,
        threads: 0,
        colour: false,
    };
    // Before the folder: bad settings must leave nothing behind.
    config.validate()?;
    let renderer = Renderer::load(&find_soundfont()?)?;
    let write_err = |path: &Path, e: &dyn std::fmt::Display| RenderError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| write_err(dir, &e))?;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(clips.max(1));
    let render = |index: usize| -> Result<(), RenderError> {
        let path = dir.join(format!("piano-{index:04}.wav"));
        let clip = renderer.render_family_clip(style.family(), family, index, &config)?;
        write_mono_wav(&path, clip, sample_rate).map_err(|e| write_err(&path, &e))
    };
    run_jobs(clips, threads, render, progress)?;
    Ok(clips)
}
