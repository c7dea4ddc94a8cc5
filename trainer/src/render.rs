//! Rendering a labelled instrument dataset from a General MIDI SoundFont.
//!
//! Each clip is a short generated phrase (a melody, chords or a rhythm, in a
//! random key, register, tempo and dynamic) played by one program of one
//! instrument family through rustysynth, then coloured by a random room,
//! tone and level so that the families are told apart by timbre rather than
//! by loudness or reverb. Every clip draws its randomness from its own
//! generator, seeded by (seed, family, index): the output is the same for a
//! seed whatever the number of threads or clips.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rustysynth::{SoundFont, Synthesizer, SynthesizerSettings};

use crate::mono_wav::write_mono_wav;
use crate::parallel::run_jobs;

/// Where Debian's `fluid-soundfont-gm` package puts its SoundFont.
pub const SOUNDFONT_PATH: &str = "/usr/share/sounds/sf2/FluidR3_GM.sf2";
/// The Debian package that provides [`SOUNDFONT_PATH`].
pub const SOUNDFONT_PACKAGE: &str = "fluid-soundfont-gm";
/// Environment variable naming another General MIDI SoundFont to use.
pub const SOUNDFONT_ENV: &str = "REVERIE_SOUNDFONT";

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No SoundFont could be found or installed.
    #[error("the General MIDI SoundFont {path} is missing ({reason}); install it as root with `apt-get update && apt-get install -y {SOUNDFONT_PACKAGE}` (Debian/Ubuntu), or set {SOUNDFONT_ENV} to the path of any General MIDI .sf2 file")]
    SoundFontMissing {
        /// The path looked for.
        path: PathBuf,
        /// What was tried and how it failed.
        reason: String,
    },
    /// The SoundFont exists but could not be parsed.
    #[error("cannot read SoundFont {path}: {reason}; reinstall it (`apt-get install --reinstall {SOUNDFONT_PACKAGE}`) or point {SOUNDFONT_ENV} at a valid .sf2 file")]
    SoundFont {
        /// The file.
        path: PathBuf,
        /// What rustysynth said.
        reason: String,
    },
    /// The synthesiser refused its settings.
    #[error("synthesiser: {0}")]
    Synth(String),
    /// The render settings are inconsistent.
    #[error("invalid render settings: {0}")]
    BadConfig(String),
    /// The output could not be written.
    #[error(
        "cannot write {path}: {reason}; check that the output folder is writable and the disk has space"
    )]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The OS or encoder error.
        reason: String,
    },
    /// Resampling to the requested rate failed.
    #[error("resampling the rendered audio: {0}")]
    Resample(String),
}

/// Finds the General MIDI SoundFont, installing it if it is missing and we
/// may: `$REVERIE_SOUNDFONT` if set (never installed), else
/// [`SOUNDFONT_PATH`], running `apt-get update` and `apt-get install -y
/// fluid-soundfont-gm` when that file is missing, we are root and apt-get
/// exists. Otherwise the error says how to install it.
pub fn ensure_soundfont() -> Result<PathBuf, RenderError> {
    find_or_install(std::env::var_os(SOUNDFONT_ENV))
}

fn find_or_install(custom: Option<std::ffi::OsString>) -> Result<PathBuf, RenderError> {
    if let Some(custom) = custom {
        let path = PathBuf::from(custom);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(RenderError::SoundFontMissing {
                path,
                reason: format!("{SOUNDFONT_ENV} names no file"),
            })
        };
    }
    let path = PathBuf::from(SOUNDFONT_PATH);
    // Tests run in parallel threads; two apt-get runs at once would fight
    // over dpkg's lock, so installs are serialised.
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if path.is_file() {
        return Ok(path);
    }
    let missing = |reason: String| RenderError::SoundFontMissing {
        path: path.clone(),
        reason,
    };
    if !is_root() {
        return Err(missing(
            "not running as root, so it was not installed automatically".into(),
        ));
    }
    eprintln!("{SOUNDFONT_PATH} is missing; installing {SOUNDFONT_PACKAGE} with apt-get");
    let apt = |args: &[&str]| -> Result<(), RenderError> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| missing(format!("cannot run apt-get: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(missing(format!("`apt-get {}` failed ({status})", args.join(" "))))
        }
    };
    apt(&["update"])?;
    apt(&["install", "-y", SOUNDFONT_PACKAGE])?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(missing(format!(
            "{SOUNDFONT_PACKAGE} installed but the file is not there"
        )))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// One instrument family: a class of the rendered dataset.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The class (folder) name.
    pub name: &'static str,
    /// General MIDI programs with the MIDI key range each sounds natural
    /// in: `(program, lowest key, highest key)`. For drums, the programs are
    /// drum kits in bank 128 and the range is unused.
    pub voices: &'static [(u8, u8, u8)],
    /// Whether this family plays on the percussion channel.
    pub percussion: bool,
    /// Relative weights of melody, chords and rhythm phrases.
    style_weights: [u32; 3],
    /// Whether notes are usually held (bowed, blown, organ) rather than
    /// struck and left to decay.
    sustained: bool,
}

/// Acoustic grand pianos only: the homogeneous solo piano the WaveNet
/// learns from (seed 004: WaveNets learn one instrument where a mixture
/// fails). The "piano" family of [`FAMILIES`] also has electric pianos,
/// harpsichord and clavinet.
pub const SOLO_PIANO: Family = Family {
    name: "piano",
    voices: &[(0, 33, 96), (1, 33, 96)],
    percussion: false,
    style_weights: [3, 4, 2],
    sustained: false,
};

/// One acoustic grand playing single-line melodies in the octave and a
/// bit above middle C (C4 to D5): a small vocabulary of notes, each heard
/// over and over, which a WaveNet learns to play in the few hours a CPU
/// can give it (the wide [`SOLO_PIANO`] needs days of a GPU).
pub const PIANO_MELODIES: Family = Family {
    name: "piano",
    voices: &[(0, 60, 74)],
    percussion: false,
    style_weights: [1, 0, 0],
    sustained: false,
};

/// The rendered families, in class order.
pub const FAMILIES: [Family; 10] = [
    Family {
        name: "piano",
        voices: &[
            (0, 33, 96),
            (1, 33, 96),
            (2, 33, 96),
            (3, 40, 90),
            (4, 36, 90),
            (5, 36, 90),
            (6, 41, 89),
            (7, 40, 84),
        ],
        percussion: false,
        style_weights: [3, 4, 2],
        sustained: false,
    },
    Family {
        name: "mallets",
        voices: &[
            (8, 60, 96),
            (9, 72, 100),
            (10, 60, 96),
            (11, 53, 89),
            (12, 48, 84),
            (13, 65, 96),
            (14, 60, 77),
            (15, 55, 84),
        ],
        percussion: false,
        style_weights: [4, 2, 3],
        sustained: false,
    },
    Family {
        name: "organ",
        voices: &[
            (16, 36, 84),
            (17, 36, 84),
            (18, 36, 84),
            (19, 36, 84),
            (20, 48, 84),
            (21, 48, 84),
            (22, 60, 84),
            (23, 48, 84),
        ],
        percussion: false,
        style_weights: [2, 5, 1],
        sustained: true,
    },
    Family {
        name: "guitar",
        voices: &[
            (24, 40, 79),
            (25, 40, 79),
            (26, 40, 79),
            (27, 40, 79),
            (28, 40, 72),
            (29, 40, 79),
            (30, 40, 79),
            (31, 52, 84),
        ],
        percussion: false,
        style_weights: [3, 4, 3],
        sustained: false,
    },
    Family {
        name: "bass",
        voices: &[
            (32, 28, 55),
            (33, 28, 55),
            (34, 28, 55),
            (35, 28, 55),
            (36, 28, 55),
            (37, 28, 55),
            (38, 28, 60),
            (39, 28, 60),
        ],
        percussion: false,
        style_weights: [6, 0, 4],
        sustained: false,
    },
    Family {
        name: "strings",
        voices: &[
            (40, 55, 96),
            (41, 48, 84),
            (42, 36, 72),
            (43, 28, 55),
            (44, 40, 84),
            (45, 36, 84),
            (46, 36, 91),
            (48, 36, 96),
            (49, 36, 96),
            (50, 36, 96),
            (51, 36, 96),
        ],
        percussion: false,
        style_weights: [4, 4, 1],
        sustained: true,
    },
    Family {
        name: "brass",
        voices: &[
            (56, 55, 82),
            (57, 40, 72),
            (58, 28, 55),
            (59, 55, 82),
            (60, 41, 77),
            (61, 40, 84),
            (62, 36, 84),
            (63, 36, 84),
        ],
        percussion: false,
        style_weights: [4, 3, 2],
        sustained: true,
    },
    Family {
        name: "winds",
        voices: &[
            (64, 56, 87),
            (65, 49, 81),
            (66, 44, 76),
            (67, 36, 69),
            (68, 58, 91),
            (69, 52, 81),
            (70, 34, 72),
            (71, 50, 91),
            (72, 74, 102),
            (73, 60, 96),
            (74, 60, 96),
            (75, 60, 96),
            (76, 60, 96),
            (77, 60, 84),
            (78, 60, 96),
            (79, 60, 96),
        ],
        percussion: false,
        style_weights: [7, 1, 2],
        sustained: true,
    },
    Family {
        name: "synth",
        voices: &[
            (80, 48, 96),
            (81, 36, 96),
            (82, 48, 96),
            (83, 48, 96),
            (84, 40, 84),
            (85, 48, 96),
            (86, 48, 84),
            (87, 28, 60),
            (88, 36, 84),
            (89, 36, 84),
            (90, 36, 84),
            (91, 36, 84),
            (92, 36, 84),
            (93, 36, 84),
            (94, 36, 84),
            (95, 36, 84),
        ],
        percussion: false,
        style_weights: [3, 3, 3],
        sustained: true,
    },
    Family {
        name: "drums",
        voices: &[
            (0, 0, 0),
            (8, 0, 0),
            (16, 0, 0),
            (24, 0, 0),
            (25, 0, 0),
            (32, 0, 0),
            (40, 0, 0),
            (48, 0, 0),
        ],
        percussion: true,
        style_weights: [0, 0, 1],
        sustained: false,
    },
];

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

    fn clip_len(&self) -> usize {
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
    /// Loads a SoundFont (e.g. the path from [`ensure_soundfont`]).
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
fn clip_seed(seed: u64, family: usize, index: usize, attempt: u64) -> u64 {
    let mut z = seed
        ^ (family as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
        ^ attempt.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

// ---------------------------------------------------------------------------
// Phrases

/// A MIDI message at a time in seconds.
#[derive(Debug, Clone, Copy)]
struct Event {
    time: f64,
    command: i32,
    data1: i32,
    data2: i32,
}

struct Phrase {
    channel: i32,
    /// Sorted by time; equal times keep their order (set-up before notes).
    events: Vec<Event>,
}

const NOTE_ON: i32 = 0x90;
const NOTE_OFF: i32 = 0x80;
const CONTROL: i32 = 0xB0;
const PROGRAM: i32 = 0xC0;

/// Scales as semitone offsets; several colours so melodies are not all major.
const SCALES: [&[i32]; 6] = [
    &[0, 2, 4, 5, 7, 9, 11], // major
    &[0, 2, 3, 5, 7, 8, 10], // natural minor
    &[0, 2, 3, 5, 7, 9, 10], // dorian
    &[0, 2, 4, 7, 9],        // major pentatonic
    &[0, 3, 5, 6, 7, 10],    // blues
    &[0, 2, 3, 5, 7, 8, 11], // harmonic minor
];

/// The musical choices shared by all notes of one phrase.
struct Context {
    beat: f64,
    end: f64,
    low: i32,
    high: i32,
    root: i32,
    scale: &'static [i32],
    velocity: f64,
    /// Velocity change over the phrase (crescendo > 0).
    swell: f64,
    /// Fraction of a note's slot it sounds for (staccato .. legato).
    legato: f64,
    /// Longest note slot in beats: struck and plucked sounds die away, so
    /// long slots would leave silence.
    longest: f64,
}

impl Context {
    /// The MIDI key of scale degree `d` (any integer; 0 = the root in the
    /// lowest octave of the register).
    fn key(&self, d: i32) -> i32 {
        let n = self.scale.len() as i32;
        let octave = d.div_euclid(n);
        self.root + 12 * octave + self.scale[d.rem_euclid(n) as usize]
    }

    /// The degree range whose keys lie in the register.
    fn degrees(&self) -> (i32, i32) {
        let n = self.scale.len() as i32;
        let lo = (-n..).find(|&d| self.key(d) >= self.low).unwrap_or(0);
        let hi = (lo..lo + 12 * n)
            .take_while(|&d| self.key(d) <= self.high)
            .last()
            .unwrap_or(lo);
        (lo, hi)
    }

    /// How long a note whose slot is `slot` seconds sounds: the phrase's
    /// legato, but never leaving more than a quarter second of silence
    /// before the next slot.
    fn hold(&self, slot: f64) -> f64 {
        (slot * self.legato).max(slot - 0.25)
    }

    fn velocity_at(&self, t: f64, rng: &mut ChaCha8Rng, accent: f64) -> i32 {
        let v = self.velocity + self.swell * (t / self.end) + accent + rng.random_range(-8.0..8.0);
        v.round().clamp(15.0, 127.0) as i32
    }
}

fn phrase(fam: &Family, rng: &mut ChaCha8Rng, seconds: f64) -> Phrase {
    let (program, low, high) = fam.voices[rng.random_range(0..fam.voices.len())];
    let channel = if fam.percussion { 9 } else { 0 };
    let mut events = Vec::new();
    let mut cc = |controller: i32, value: i32| {
        events.push(Event {
            time: 0.0,
            command: CONTROL,
            data1: controller,
            data2: value,
        });
    };
    cc(7, rng.random_range(85..=127)); // channel volume
    cc(11, rng.random_range(90..=127)); // expression
    cc(91, rng.random_range(0..=110)); // reverb send
    cc(
        93,
        if rng.random_bool(0.4) {
            rng.random_range(0..=80)
        } else {
            0
        },
    ); // chorus send
    if fam.sustained && rng.random_bool(0.4) {
        cc(1, rng.random_range(10..=60)); // vibrato
    }
    events.push(Event {
        time: 0.0,
        command: PROGRAM,
        data1: i32::from(program),
        data2: 0,
    });

    // A register of an octave and a half or so inside the voice's range, so
    // clips of one family spread over low, middle and high parts.
    let (low, high) = (i32::from(low), i32::from(high));
    let span = rng.random_range(14..=24).min(high - low);
    let reg_low = rng.random_range(low..=high - span);
    let bpm: f64 = rng.random_range(60.0..170.0);
    let velocity = rng.random_range(45.0..115.0);
    let ctx = Context {
        beat: 60.0 / bpm,
        end: seconds,
        low: reg_low,
        high: reg_low + span,
        root: reg_low - (reg_low % 12) + rng.random_range(0..12),
        scale: SCALES[rng.random_range(0..SCALES.len())],
        velocity,
        swell: rng.random_range(-25.0..25.0),
        legato: if fam.sustained {
            rng.random_range(0.75..1.0)
        } else {
            rng.random_range(0.35..1.0)
        },
        longest: if fam.sustained { 4.0 } else { 1.0 },
    };
    // Start a little after zero so onsets do not always sit on the first
    // sample of the clip.
    let start = rng.random_range(0.0..0.25f64.min(seconds * 0.1));

    let mut notes = Vec::new();
    if fam.percussion {
        drums(&ctx, rng, start, &mut notes);
    } else {
        let total: u32 = fam.style_weights.iter().sum();
        let mut pick = rng.random_range(0..total);
        let style = fam.style_weights.iter().position(|&w| {
            let hit = pick < w;
            pick = pick.saturating_sub(w);
            hit
        });
        match style {
            Some(0) => melody(&ctx, rng, start, &mut notes),
            Some(1) => chords(&ctx, rng, start, fam.name == "guitar", &mut notes),
            _ => ostinato(&ctx, rng, start, &mut notes),
        }
    }
    for n in notes {
        events.push(Event {
            time: n.start,
            command: NOTE_ON,
            data1: n.key,
            data2: n.velocity,
        });
        events.push(Event {
            time: n.start + n.length.max(0.02),
            command: NOTE_OFF,
            data1: n.key,
            data2: 0,
        });
    }
    events.sort_by(|a, b| a.time.total_cmp(&b.time));
    Phrase { channel, events }
}

struct Note {
    start: f64,
    length: f64,
    key: i32,
    velocity: i32,
}

/// A random walk over the scale: mostly steps, sometimes leaps, with varied
/// note values and the odd rest.
fn melody(ctx: &Context, rng: &mut ChaCha8Rng, start: f64, notes: &mut Vec<Note>) {
    const VALUES: [f64; 7] = [0.25, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0];
    let (lo, hi) = ctx.degrees();
    let mut degree = rng.random_range(lo..=hi);
    let mut t = start;
    while t < ctx.end {
        let slot = VALUES[rng.random_range(0..VALUES.len())].min(ctx.longest) * ctx.beat;
        // Short rests only, and never before the first note: a clip that
        // opens with a second of silence teaches nothing about its class.
        if t > start && rng.random_bool(0.1) {
            t += slot.min(ctx.beat);
            continue;
        }
        let on_beat = ((t - start) / ctx.beat).fract() < 0.05;
        let velocity = ctx.velocity_at(t, rng, if on_beat { 8.0 } else { 0.0 });
        notes.push(Note {
            start: t,
            length: ctx.hold(slot),
            key: ctx.key(degree),
            velocity,
        });
        let step = if rng.random_bool(0.2) {
            rng.random_range(3..=5)
        } else {
            rng.random_range(1..=2)
        };
        degree += if rng.random_bool(0.5) { step } else { -step };
        // Reflect at the register's edges so the line stays in range
        // without piling up on the boundary.
        if degree > hi {
            degree = (2 * hi - degree).max(lo);
        }
        if degree < lo {
            degree = (2 * lo - degree).min(hi);
        }
        t += slot;
    }
}

/// Diatonic triads and sevenths, held, arpeggiated or (for guitar) strummed.
fn chords(ctx: &Context, rng: &mut ChaCha8Rng, start: f64, strum: bool, notes: &mut Vec<Note>) {
    let (lo, hi) = ctx.degrees();
    let n = ctx.scale.len() as i32;
    let bar = (rng.random_range(1..=4) as f64).min(2.0 * ctx.longest) * ctx.beat;
    let arpeggio = rng.random_bool(0.35);
    let sub = if rng.random_bool(0.5) { 0.5 } else { 0.25 } * ctx.beat;
    let seventh = rng.random_bool(0.3);
    let mut t = start;
    while t < ctx.end {
        let base = lo + rng.random_range(0..n.min(hi - lo + 1).max(1));
        let mut keys: Vec<i32> = [0, 2, 4]
            .iter()
            .chain(if seventh { &[6][..] } else { &[][..] })
            .map(|i| ctx.key(base + i))
            .collect();
        keys.retain(|&k| k <= ctx.high + 7);
        if keys.is_empty() {
            keys.push(ctx.key(base));
        }
        if arpeggio {
            let mut s = t;
            let mut i = 0;
            while s < t + bar && s < ctx.end {
                let key = keys[i % keys.len()];
                notes.push(Note {
                    start: s,
                    length: sub * ctx.legato.max(0.6),
                    key,
                    velocity: ctx.velocity_at(s, rng, 0.0),
                });
                s += sub;
                i += 1;
            }
        } else {
            let hits = if !strum || rng.random_bool(0.5) {
                1
            } else {
                rng.random_range(2..=4)
            };
            let hit_len = bar / f64::from(hits);
            for h in 0..hits {
                let at = t + f64::from(h) * hit_len;
                let down = h % 2 == 0;
                let spread = if strum {
                    rng.random_range(0.008..0.03)
                } else {
                    rng.random_range(0.0..0.006)
                };
                let accent = if h == 0 { 6.0 } else { 0.0 };
                let velocity = ctx.velocity_at(at, rng, accent);
                for (j, &key) in keys.iter().enumerate() {
                    let order = if down { j } else { keys.len() - 1 - j };
                    let s = at + spread * order as f64;
                    let v = (velocity + rng.random_range(-5..=5)).clamp(15, 127);
                    notes.push(Note {
                        start: s,
                        length: ctx.hold(hit_len),
                        key,
                        velocity: v,
                    });
                }
            }
        }
        t += bar;
    }
}

/// A repeating one-bar pattern over a few pitches (root, fifth, octave):
/// riffs, pedal tones, pulses.
fn ostinato(ctx: &Context, rng: &mut ChaCha8Rng, start: f64, notes: &mut Vec<Note>) {
    let (lo, hi) = ctx.degrees();
    let n = ctx.scale.len() as i32;
    let root = rng.random_range(lo..=hi.max(lo));
    let pool: Vec<i32> = [0, 4, n, 2].iter().map(|d| (root + d).min(hi)).collect();
    let steps = 16;
    let step = ctx.beat / 4.0;
    let density = rng.random_range(0.25..0.7);
    let pattern: Vec<Option<(i32, f64)>> = (0..steps)
        .map(|i| {
            let strong = i % 4 == 0;
            (i == 0 || strong && rng.random_bool(0.8) || rng.random_bool(density)).then(|| {
                (
                    pool[rng.random_range(0..pool.len().min(3))],
                    if i % 8 == 0 { 10.0 } else { 0.0 },
                )
            })
        })
        .collect();
    let mut t = start;
    let mut i = 0;
    while t < ctx.end {
        if let Some((degree, accent)) = pattern[i % steps] {
            let gap = (1..steps)
                .find(|k| pattern[(i + k) % steps].is_some())
                .unwrap_or(steps);
            let length = ctx.hold(gap as f64 * step);
            notes.push(Note {
                start: t,
                length,
                key: ctx.key(degree),
                velocity: ctx.velocity_at(t, rng, accent),
            });
        }
        t += step;
        i += 1;
    }
}

/// Drum-kit grooves (kick, snare, hats or ride, fills, crashes) or hand
/// percussion, with swing and a little timing looseness.
fn drums(ctx: &Context, rng: &mut ChaCha8Rng, start: f64, notes: &mut Vec<Note>) {
    const TOMS: [i32; 6] = [41, 43, 45, 47, 48, 50];
    const HAND: [i32; 10] = [60, 61, 62, 63, 64, 54, 56, 69, 70, 75];
    let step = ctx.beat / 4.0;
    let swing = if rng.random_bool(0.3) {
        rng.random_range(0.1..0.3) * step
    } else {
        0.0
    };
    let hand = rng.random_bool(0.25);
    let cymbal = if rng.random_bool(0.7) {
        42
    } else if rng.random_bool(0.5) {
        51
    } else {
        46
    };
    let hat_every = if rng.random_bool(0.5) { 2 } else { 1 };
    let kick_extra = rng.random_range(0.05..0.35);
    let hand_pattern: Vec<Option<i32>> = (0..16)
        .map(|i| (i == 0 || rng.random_bool(0.5)).then(|| HAND[rng.random_range(0..HAND.len())]))
        .collect();
    let fill_bar = rng.random_range(1..4);
    let mut t = start;
    let mut i = 0usize;
    while t < ctx.end {
        let s = i % 16;
        let bar = i / 16;
        let at = t + if s % 2 == 1 { swing } else { 0.0 } + rng.random_range(-0.004..0.004);
        let mut hit = |key: i32, accent: f64, rng: &mut ChaCha8Rng| {
            notes.push(Note {
                start: at.max(0.0),
                length: 0.1,
                key,
                velocity: ctx.velocity_at(t, rng, accent),
            });
        };
        if hand {
            if let Some(key) = hand_pattern[s] {
                hit(key, if s.is_multiple_of(4) { 10.0 } else { 0.0 }, rng);
            }
        } else if bar % 4 == fill_bar && s >= 12 {
            hit(TOMS[(s - 12 + bar) % TOMS.len()], 5.0, rng);
        } else {
            if s == 0 && bar.is_multiple_of(4) && rng.random_bool(0.4) {
                hit(49, 10.0, rng);
            }
            if s.is_multiple_of(8) || rng.random_bool(kick_extra * f64::from(u8::from(s.is_multiple_of(2)))) {
                hit(if rng.random_bool(0.5) { 36 } else { 35 }, 10.0, rng);
            }
            if s == 4 || s == 12 {
                hit(if rng.random_bool(0.8) { 38 } else { 40 }, 12.0, rng);
            } else if rng.random_bool(0.08) {
                hit(38, -30.0, rng);
            }
            if s.is_multiple_of(hat_every) {
                hit(cymbal, if s.is_multiple_of(4) { 0.0 } else { -15.0 }, rng);
            }
        }
        t += step;
        i += 1;
    }
}

// ---------------------------------------------------------------------------
// Colouring: room, tone, level

/// A random room (a small Schroeder reverb), tone (gentle low- and
/// high-pass), noise floor and peak level, each applied only sometimes.
fn colour(audio: &mut [f32], rate: u32, rng: &mut ChaCha8Rng) {
    let rate = rate as f32;
    if rng.random_bool(0.5) {
        let rt60 = rng.random_range(0.3..2.0);
        let size = rng.random_range(0.6..1.3);
        let wet = rng.random_range(0.05..0.35);
        reverb(audio, rate, rt60, size, wet);
    }
    if rng.random_bool(0.4) {
        let cutoff = rng.random_range(1500.0..(0.45 * rate).max(1600.0));
        one_pole(audio, rate, cutoff, false);
    }
    if rng.random_bool(0.4) {
        let cutoff = rng.random_range(30.0..250.0);
        one_pole(audio, rate, cutoff, true);
    }
    let p = peak(audio);
    if p > 0.0 {
        let target = 10f32.powf(rng.random_range(-24.0..-1.0) / 20.0);
        let g = target / p;
        audio.iter_mut().for_each(|v| *v *= g);
        if rng.random_bool(0.3) {
            let floor = target * 10f32.powf(rng.random_range(-60.0..-40.0) / 20.0);
            audio
                .iter_mut()
                .for_each(|v| *v += floor * rng.random_range(-1.0..1.0f32));
        }
    }
}

/// Four parallel feedback combs into two allpasses (Schroeder's design),
/// mixed with the dry signal.
fn reverb(audio: &mut [f32], rate: f32, rt60: f32, size: f32, wet: f32) {
    let delay = |ms: f32| ((ms * size * rate / 1000.0) as usize).max(1);
    let combs: Vec<(usize, f32)> = [29.7f32, 37.1, 41.1, 43.7]
        .iter()
        .map(|&ms| {
            let d = delay(ms);
            // Gain for a 60 dB decay in rt60 seconds.
            (d, 10f32.powf(-3.0 * d as f32 / (rt60 * rate)))
        })
        .collect();
    let mut bufs: Vec<Vec<f32>> = combs.iter().map(|&(d, _)| vec![0.0; d]).collect();
    let mut pos = vec![0usize; combs.len()];
    let mut out: Vec<f32> = audio
        .iter()
        .map(|&x| {
            let mut sum = 0.0;
            for (k, &(d, g)) in combs.iter().enumerate() {
                let y = bufs[k][pos[k]];
                bufs[k][pos[k]] = x + g * y;
                pos[k] = (pos[k] + 1) % d;
                sum += y;
            }
            sum * 0.25
        })
        .collect();
    for ms in [5.0f32, 1.7] {
        let d = delay(ms);
        let g = 0.7;
        let mut buf = vec![0.0f32; d];
        let mut p = 0;
        for v in out.iter_mut() {
            let delayed = buf[p];
            let w = *v + g * delayed;
            buf[p] = w;
            *v = delayed - g * w;
            p = (p + 1) % d;
        }
    }
    for (a, r) in audio.iter_mut().zip(out.drain(..)) {
        *a = (1.0 - wet) * *a + wet * r;
    }
}

/// A one-pole low-pass, or the complementary high-pass.
fn one_pole(audio: &mut [f32], rate: f32, cutoff: f32, high: bool) {
    let a = (-2.0 * std::f32::consts::PI * cutoff / rate).exp();
    let mut y = 0.0f32;
    for v in audio.iter_mut() {
        y = (1.0 - a) * *v + a * y;
        *v = if high { *v - y } else { y };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_custom_soundfont_says_how_to_get_one() {
        let err = find_or_install(Some("/no/such/font.sf2".into())).unwrap_err();
        assert!(
            matches!(&err, RenderError::SoundFontMissing { path, .. } if path == Path::new("/no/such/font.sf2"))
        );
        let message = err.to_string();
        assert!(
            message.contains("apt-get install -y fluid-soundfont-gm"),
            "{message}"
        );
        assert!(message.contains(SOUNDFONT_ENV), "{message}");
    }

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

    #[test]
    fn phrases_stay_in_range_and_start_early() {
        for (f, fam) in FAMILIES.iter().enumerate() {
            for i in 0..20 {
                let mut rng = ChaCha8Rng::seed_from_u64(clip_seed(0, f, i, 0));
                let p = phrase(fam, &mut rng, 2.0);
                let ons: Vec<&Event> = p.events.iter().filter(|e| e.command == NOTE_ON).collect();
                assert!(!ons.is_empty(), "{} {i}: no notes", fam.name);
                assert!(
                    ons[0].time < 0.25,
                    "{} {i}: first note at {}",
                    fam.name,
                    ons[0].time
                );
                assert!(p.events.windows(2).all(|w| w[0].time <= w[1].time));
                for e in &ons {
                    assert!((1..=127).contains(&e.data2), "velocity {}", e.data2);
                    if !fam.percussion {
                        let lo = fam.voices.iter().map(|v| i32::from(v.1)).min().unwrap();
                        let hi = fam.voices.iter().map(|v| i32::from(v.2)).max().unwrap();
                        // Chord tones may stack a fifth above the register.
                        assert!((lo..=hi + 7).contains(&e.data1), "{}: key {}", fam.name, e.data1);
                    }
                }
            }
        }
    }
}
