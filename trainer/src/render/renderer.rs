//! Rendering clips: the settings, the SoundFont loaded once, a clip of a
//! family, a whole labelled dataset.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rustysynth::{SoundFont, Synthesizer, SynthesizerSettings};

use super::colour::{colour, peak};
use super::error::RenderError;
use super::families::{Family, FAMILIES};
use super::phrases::{phrase, Phrase};
use crate::mono_wav::write_mono_wav;
use crate::parallel::run_jobs;

/// What to render.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderConfig {
    /// Output rate in Hz. The synthesiser runs at this rate when it can
    /// (16 kHz and up) and is resampled otherwise.
    pub sample_rate: u32,
    /// Length of each clip in seconds.
    pub clip_seconds: f32,
    /// Clips per family.
    pub clips_per_class: usize,
    /// Seed: the same seed gives byte-identical files.
    pub seed: u64,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// Colour every clip with a random room (the synthesiser's reverb and
    /// chorus, an added reverb), tone, noise floor and peak level, so a
    /// classifier learns the instrument rather than the recording. Off, a
    /// clip is the dry instrument peaking at [`DRY_PEAK`]: what a WaveNet
    /// learns from, since every bit of reverb and noise it has to model is
    /// unpredictable detail it would otherwise spend its capacity on.
    pub colour: bool,
}

/// Peak level of a clip rendered without colouring (-3 dBFS).
pub const DRY_PEAK: f32 = 0.708;

impl Default for RenderConfig {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            clip_seconds: 4.0,
            clips_per_class: 200,
            seed: 0,
            threads: 0,
            colour: true,
        }
    }
}

impl RenderConfig {
    /// Refuses settings no clip can be rendered with (rate, length, count).
    pub(crate) fn validate(&self) -> Result<(), RenderError> {
        let bad = |s: String| Err(RenderError::BadConfig(s));
        if !(8_000..=192_000).contains(&self.sample_rate) {
            return bad(format!(
                "sample rate {} Hz is outside 8000..=192000",
                self.sample_rate
            ));
        }
        if !(0.1..=600.0).contains(&self.clip_seconds) {
            return bad(format!(
                "clip length {} s is outside 0.1..=600 s",
                self.clip_seconds
            ));
        }
        if self.clips_per_class == 0 {
            return bad("clips per class must be at least 1".into());
        }
        Ok(())
    }

    pub(crate) fn clip_len(&self) -> usize {
        (f64::from(self.clip_seconds) * f64::from(self.sample_rate)).round() as usize
    }
}

/// What a dataset render produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderSummary {
    /// The class folders written, in order.
    pub classes: Vec<String>,
    /// WAV files written.
    pub files: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Seconds of audio rendered.
    pub audio_seconds: f64,
}

/// A loaded SoundFont, ready to render clips from any thread.
pub struct Renderer {
    font: Arc<SoundFont>,
}

impl Renderer {
    /// Loads a SoundFont (e.g. the path from [`find_soundfont`]).
    pub fn load(path: &Path) -> Result<Self, RenderError> {
        let file = File::open(path).map_err(|e| RenderError::SoundFontMissing {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let font = SoundFont::new(&mut BufReader::new(file)).map_err(|e| RenderError::SoundFont {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self { font: Arc::new(font) })
    }

    /// Renders clip `index` of family `family` (an index into [`FAMILIES`]):
    /// mono, `config.clip_seconds` long at `config.sample_rate`, peak
    /// between about -24 and -1 dBFS, never silent.
    pub fn render_clip(
        &self,
        family: usize,
        index: usize,
        config: &RenderConfig,
    ) -> Result<Vec<f32>, RenderError> {
        let fam = FAMILIES.get(family).ok_or_else(|| {
            RenderError::BadConfig(format!("family {family} does not exist (0..{})", FAMILIES.len()))
        })?;
        self.render_family_clip(fam, family, index, config)
    }

    /// Renders clip `index` of any family; `stream` keeps the random draws
    /// of different families apart (a family's index in [`FAMILIES`]).
    pub fn render_family_clip(
        &self,
        fam: &Family,
        stream: usize,
        index: usize,
        config: &RenderConfig,
    ) -> Result<Vec<f32>, RenderError> {
        config.validate()?;
        let synth_rate = config.sample_rate.max(16_000);
        let synth_len = (f64::from(config.clip_seconds) * f64::from(synth_rate)).round() as usize;
        // A rare draw (a program with no sample in the chosen register, a
        // very quiet patch) can come out silent; redraw with the next
        // sub-seed rather than write a silent example.
        for attempt in 0..8u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(clip_seed(config.seed, stream, index, attempt));
            let phrase = phrase(fam, &mut rng, f64::from(config.clip_seconds));
            let mut audio = self.play(&phrase, synth_rate, synth_len, config.colour)?;
            if synth_rate != config.sample_rate {
                audio = reverie_engine::resample::resample_clip(&audio, synth_rate, config.sample_rate)
                    .map_err(|e| RenderError::Resample(e.0))?;
                audio.resize(config.clip_len(), 0.0);
            }
            let p = peak(&audio);
            if p > 1e-4 {
                if config.colour {
                    colour(&mut audio, config.sample_rate, &mut rng);
                } else {
                    audio.iter_mut().for_each(|v| *v *= DRY_PEAK / p);
                }
                return Ok(audio);
            }
        }
        Err(RenderError::Synth(format!(
            "clip {index} of {} stayed silent after 8 attempts",
            fam.name
        )))
    }

    /// Renders `config.clips_per_class` clips of every family into
    /// `out/<family>/<n>.wav` (16-bit mono), replacing clips of an earlier
    /// render there. Calls `progress` after each clip, from worker threads.
    pub fn render_dataset(
        &self,
        out: &Path,
        config: &RenderConfig,
        progress: &(dyn Fn() + Sync),
    ) -> Result<RenderSummary, RenderError> {
        config.validate()?;
        let write_err = |path: &Path, e: &dyn std::fmt::Display| RenderError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        for fam in &FAMILIES {
            let dir = out.join(fam.name);
            std::fs::create_dir_all(&dir).map_err(|e| write_err(&dir, &e))?;
            remove_old_clips(&dir).map_err(|e| write_err(&dir, &e))?;
        }
        let jobs = FAMILIES.len() * config.clips_per_class;
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
        .min(jobs);
        let bytes = AtomicUsize::new(0);
        let digits = (config.clips_per_class - 1).to_string().len().max(4);
        let render = |job: usize| {
            let (family, index) = (job / config.clips_per_class, job % config.clips_per_class);
            let path = out
                .join(FAMILIES[family].name)
                .join(format!("{index:0digits$}.wav"));
            let clip = self.render_clip(family, index, config)?;
            write_mono_wav(&path, clip, config.sample_rate).map_err(|e| write_err(&path, &e))?;
            let len = std::fs::metadata(&path).map_err(|e| write_err(&path, &e))?.len();
            bytes.fetch_add(len as usize, Ordering::Relaxed);
            Ok(())
        };
        run_jobs(jobs, threads, render, progress)?;
        Ok(RenderSummary {
            classes: FAMILIES.iter().map(|f| f.name.to_string()).collect(),
            files: jobs,
            bytes: bytes.into_inner() as u64,
            audio_seconds: jobs as f64 * config.clip_len() as f64 / f64::from(config.sample_rate),
        })
    }

    /// Plays a phrase through a fresh synthesiser (so no state carries over
    /// from another clip) and mixes it to mono.
    fn play(&self, phrase: &Phrase, rate: u32, len: usize, effects: bool) -> Result<Vec<f32>, RenderError> {
        let mut settings = SynthesizerSettings::new(rate as i32);
        settings.enable_reverb_and_chorus = effects;
        let mut synth =
            Synthesizer::new(&self.font, &settings).map_err(|e| RenderError::Synth(e.to_string()))?;
        let (mut left, mut right) = (vec![0.0f32; len], vec![0.0f32; len]);
        let mut pos = 0;
        for ev in &phrase.events {
            let at = ((ev.time.max(0.0) * f64::from(rate)) as usize).min(len);
            if at > pos {
                synth.render(&mut left[pos..at], &mut right[pos..at]);
                pos = at;
            }
            if pos >= len {
                break;
            }
            synth.process_midi_message(phrase.channel, ev.command, ev.data1, ev.data2);
        }
        if pos < len {
            synth.render(&mut left[pos..], &mut right[pos..]);
        }
        Ok(left.iter().zip(&right).map(|(l, r)| 0.5 * (l + r)).collect())
    }
}

/// Deletes `<digits>.wav` files (this renderer's naming) so a smaller
/// render into the same folder does not leave stale clips behind.
fn remove_old_clips(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let ours = path.extension().is_some_and(|e| e == "wav")
            && path
                .file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        if ours {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Mixes the seed and the clip's coordinates so every clip gets its own,
/// well separated stream (SplitMix64's finaliser).
pub(crate) fn clip_seed(seed: u64, family: usize, index: usize, attempt: u64) -> u64 {
    let mut z = seed
        ^ (family as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
        ^ attempt.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_seeds_differ_by_every_coordinate() {
        let base = clip_seed(1, 2, 3, 0);
        assert_eq!(base, clip_seed(1, 2, 3, 0));
        for other in [
            clip_seed(2, 2, 3, 0),
            clip_seed(1, 3, 3, 0),
            clip_seed(1, 2, 4, 0),
            clip_seed(1, 2, 3, 1),
        ] {
            assert_ne!(base, other);
        }
        // Swapping family and index must not collide.
        assert_ne!(clip_seed(0, 1, 2, 0), clip_seed(0, 2, 1, 0));
    }
}
