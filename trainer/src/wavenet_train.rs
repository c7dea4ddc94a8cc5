//! Training the autoregressive WaveNet of seed 004 on a folder of audio.
//!
//! **Data.** Every audio file under the data folder (any depth, any format
//! [`crate::decode`] reads) is decoded to mono, resampled to the model rate
//! and peak-normalised as a whole (so the dynamics inside a recording stay).
//! A seeded fraction of the files is held out for validation, by file as in
//! [`crate::dataset`]: neighbouring chunks of one recording are nearly the
//! same example.
//!
//! **Order.** As in the seed, chunks are never shuffled: an epoch visits the
//! training files in a seeded order (a new order every epoch) and each file's
//! chunks one after the other, start to end. A batch is the next
//! `batch_size` chunks of that sequence.
//!
//! **Loss.** The input is the µ-law class sequence and the target the same
//! sequence shifted by one sample: cross-entropy of the next sample's class,
//! in nats per sample. Each chunk of `chunk_len` targets is fed together
//! with the `receptive_field - 1` samples before it, and only the last
//! `chunk_len` outputs are scored, so every scored position sees a full
//! receptive field of real audio. Before a file's first sample the field is
//! digital silence (the class of 0.0), as if the recording started after a
//! pause; no position is scored on the network's internal zero padding.
//! Every sample of a file is a target exactly once per epoch (a final partial
//! chunk is aligned to the file's end and overlaps its predecessor).
//!
//! **Run folder.** `checkpoint.safetensors` (model + optimiser + progress),
//! `metrics.csv`, `loss.png`, and every `sample_every` steps a generated
//! sample `samples/step-NNNNNNNN.wav` beside a `.json` that records the
//! model, the training settings and what primed it (seed 004 kept such a
//! library of generated samples with the configuration that made each).
//!
//! As in [`crate::train`], every random choice comes from a generator seeded
//! by (run seed, purpose, index), so a resumed run continues exactly as the
//! uninterrupted one would have.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use rand::seq::SliceRandom;
use reverie_engine::model_file::{Layout, ModelFileError, RawModel, Role};
use reverie_engine::mulaw::MuLaw;
use reverie_engine::sampler::Sampler;
use reverie_engine::wav::WavError;
use reverie_engine::wavenet::{Padding, WavenetConfig, WavenetModel, WavenetNet};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{checkpoint_bytes, insert_optimizer, read_optimizer, read_state};
use crate::dataset::{split_files, SkippedFile};
use crate::decode;
use crate::mono_wav::write_mono_wav;
use crate::optim::{OptimError, Optimizer, OptimizerConfig, OptimizerKind, OptimizerState, Param};
use crate::parallel::run_jobs;
use crate::plot::PlotError;
use crate::render::{
    ensure_soundfont, Family, RenderConfig, RenderError, Renderer, FAMILIES, PIANO_MELODIES, SOLO_PIANO,
};
use crate::run_folder::{log_loss, write_atomically, write_loss_plot};
use crate::train::{rng_for, LrSchedule, RunOptions, RunOutcome};

/// The checkpoint file inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// The metrics table inside a run folder.
pub const METRICS_FILE: &str = "metrics.csv";
/// The loss plot inside a run folder.
pub const LOSS_PLOT_FILE: &str = "loss.png";
/// The folder of generated samples inside a run folder.
pub const SAMPLES_DIR: &str = "samples";
/// Version of the WaveNet checkpoint format.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Header of [`metrics_csv`].
pub const CSV_HEADER: &str = "step,epoch,train_nll,val_nll,val_bits,grad_norm,lr,seconds,samples_per_second";

/// Why WaveNet training could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum WavenetTrainError {
    /// The data folder is missing.
    #[error("the data folder {path} does not exist or is not a folder; point --data at a folder of .wav/.flac/.mp3/.ogg files (or add --render-piano N to render solo piano into it)")]
    DataMissing {
        /// The folder given.
        path: PathBuf,
    },
    /// The data folder holds no audio files.
    #[error("no .wav, .flac, .mp3 or .ogg files found in {path} (searched all subfolders); add some audio, or render solo piano with --render-piano N")]
    NoAudio {
        /// The folder given.
        path: PathBuf,
    },
    /// Audio files exist but none could be decoded.
    #[error("none of the {count} audio files in {path} could be read (first: {first}); fix or replace them")]
    Unreadable {
        /// The folder given.
        path: PathBuf,
        /// Files tried.
        count: usize,
        /// The first file's error.
        first: String,
    },
    /// There is nothing to train on.
    #[error("no training audio: every file was held out or too short")]
    NoTrainingData,
    /// The data is at another rate than the model.
    #[error("the data is at {data} Hz but the model runs at {model} Hz")]
    RateMismatch {
        /// Model rate.
        model: u32,
        /// Data rate.
        data: u32,
    },
    /// The settings are inconsistent.
    #[error("invalid WaveNet training settings: {0}")]
    BadConfig(String),
    /// The loss became NaN or infinite.
    #[error("training diverged at step {step} (the loss is {loss}); lower the learning rate (--lr) or the clipping norm (--clip) and start again, or resume from an earlier checkpoint")]
    Diverged {
        /// The step that produced it.
        step: u64,
        /// The loss value.
        loss: f32,
    },
    /// Reading or writing a checkpoint failed.
    #[error("cannot access checkpoint {path}: {source}")]
    CheckpointIo {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The checkpoint's model part is unreadable or not a WaveNet.
    #[error("bad WaveNet checkpoint {path}: {source}")]
    CheckpointModel {
        /// The file.
        path: PathBuf,
        /// What is wrong with the model part.
        #[source]
        source: ModelFileError,
    },
    /// A valid model file without training state.
    #[error("{path} is a model file, not a checkpoint: it holds no optimiser state or progress, so training cannot resume from it; pass the run folder's checkpoint.safetensors instead")]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
    },
    /// The checkpoint's training state is malformed, from another version
    /// or from another kind of network.
    #[error("bad WaveNet checkpoint {path}: {reason}")]
    BadCheckpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Resampling a file to the model rate failed.
    #[error("cannot resample {path} from {from} Hz to {to} Hz: {reason}")]
    Resample {
        /// The file.
        path: PathBuf,
        /// Its rate.
        from: u32,
        /// The model rate.
        to: u32,
        /// What the resampler said.
        reason: String,
    },
    /// A model-file problem.
    #[error(transparent)]
    Model(#[from] ModelFileError),
    /// An optimiser problem (e.g. a checkpoint from another architecture).
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// A plot could not be written.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// Rendering the piano dataset failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// A generated sample could not be written.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// A run file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An error inside candle.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

type Result<T, E = WavenetTrainError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WavenetTrainError + '_ {
    move |source| WavenetTrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------
// Data

/// How the training audio was loaded: enough to load the same files and the
/// same split again when a run is resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WavenetDataSource {
    /// The data folder, searched recursively.
    pub root: PathBuf,
    /// Rate the audio is resampled to, in Hz (the model rate).
    pub sample_rate: u32,
    /// Fraction of the files held out for validation, in `[0, 1)`.
    pub val_fraction: f32,
    /// Seed of the train/validation split.
    pub split_seed: u64,
    /// Each file is scaled so its peak is this (0 leaves levels alone).
    pub normalize_peak: f32,
}

impl WavenetDataSource {
    /// 16 kHz-style defaults: a tenth of the files held out, every file
    /// peak-normalised to 0.95 (quiet renders would otherwise use few of the
    /// µ-law classes near full scale and sound quieter when generated).
    pub fn new(root: PathBuf, sample_rate: u32) -> Self {
        Self {
            root,
            sample_rate,
            val_fraction: 0.1,
            split_seed: 0,
            normalize_peak: 0.95,
        }
    }

    /// Loads the folder; see [`load_audio_folder`].
    pub fn load(&self) -> Result<WavenetData> {
        load_audio_folder(self)
    }
}

/// One recording at the model rate.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFile {
    /// Where it came from (a made-up name for in-memory data).
    pub path: PathBuf,
    /// Mono samples in [-1, 1].
    pub samples: Vec<f32>,
}

/// Training and validation recordings, whole, in a fixed order.
#[derive(Debug, Clone, PartialEq)]
pub struct WavenetData {
    /// Rate of every file, in Hz.
    pub sample_rate: u32,
    /// Training files, sorted by path.
    pub train: Vec<AudioFile>,
    /// Held-out files, sorted by path.
    pub val: Vec<AudioFile>,
    /// Files that could not be read, and why.
    pub skipped: Vec<SkippedFile>,
}

/// Counts that identify the data well enough to warn when a run is resumed
/// on different data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WavenetFingerprint {
    /// Training files.
    pub train_files: usize,
    /// Validation files.
    pub val_files: usize,
    /// Training samples in all.
    pub train_samples: u64,
}

impl WavenetData {
    /// Data from signals already at `sample_rate` (tests, synthetic data).
    pub fn from_signals(sample_rate: u32, train: Vec<Vec<f32>>, val: Vec<Vec<f32>>) -> Self {
        let named = |side: &str, v: Vec<Vec<f32>>| {
            v.into_iter()
                .enumerate()
                .map(|(i, samples)| AudioFile {
                    path: PathBuf::from(format!("<{side} {i}>")),
                    samples,
                })
                .collect()
        };
        Self {
            sample_rate,
            train: named("train", train),
            val: named("val", val),
            skipped: Vec::new(),
        }
    }

    /// The data's fingerprint.
    pub fn fingerprint(&self) -> WavenetFingerprint {
        WavenetFingerprint {
            train_files: self.train.len(),
            val_files: self.val.len(),
            train_samples: self.train.iter().map(|f| f.samples.len() as u64).sum(),
        }
    }

    /// Seconds of training and of validation audio.
    pub fn seconds(&self) -> (f64, f64) {
        let secs = |files: &[AudioFile]| {
            files.iter().map(|f| f.samples.len()).sum::<usize>() as f64 / f64::from(self.sample_rate.max(1))
        };
        (secs(&self.train), secs(&self.val))
    }
}

/// Every file under `dir` (recursively) with a supported audio extension,
/// sorted so the result does not depend on the file system's order.
pub fn find_audio_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(WavenetTrainError::DataMissing {
            path: dir.to_path_buf(),
        });
    }
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).map_err(io_err(&d))? {
            let path = entry.map_err(io_err(&d))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if decode::is_supported(&path) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Loads every audio file under `source.root`: decode, mix to mono,
/// resample, peak-normalise, split by file. Unreadable files are listed in
/// [`WavenetData::skipped`]; a missing folder, a folder without audio, or
/// one where nothing decodes is an error.
pub fn load_audio_folder(source: &WavenetDataSource) -> Result<WavenetData> {
    if source.sample_rate == 0 {
        return Err(WavenetTrainError::BadConfig(
            "the sample rate must be positive".into(),
        ));
    }
    if !(0.0..1.0).contains(&source.val_fraction) {
        return Err(WavenetTrainError::BadConfig(format!(
            "the validation fraction {} must be in [0, 1)",
            source.val_fraction
        )));
    }
    let paths = find_audio_files(&source.root)?;
    if paths.is_empty() {
        return Err(WavenetTrainError::NoAudio {
            path: source.root.clone(),
        });
    }
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for path in &paths {
        match load_file(path, source) {
            Ok(samples) => files.push(AudioFile {
                path: path.clone(),
                samples,
            }),
            Err(reason) => skipped.push(SkippedFile {
                path: path.clone(),
                reason,
            }),
        }
    }
    if files.is_empty() {
        return Err(WavenetTrainError::Unreadable {
            path: source.root.clone(),
            count: paths.len(),
            first: skipped.first().map(|s| s.reason.clone()).unwrap_or_default(),
        });
    }
    let held_out = split_files(files.len(), source.val_fraction, source.split_seed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, f) in files.into_iter().enumerate() {
        if held_out.contains(&i) {
            val.push(f);
        } else {
            train.push(f);
        }
    }
    Ok(WavenetData {
        sample_rate: source.sample_rate,
        train,
        val,
        skipped,
    })
}

fn load_file(path: &Path, source: &WavenetDataSource) -> Result<Vec<f32>, String> {
    let audio = decode::decode_mono(path).map_err(|e| e.to_string())?;
    let mut samples =
        reverie_engine::resample::resample_clip(&audio.samples, audio.sample_rate, source.sample_rate)
            .map_err(|e| {
                WavenetTrainError::Resample {
                    path: path.to_path_buf(),
                    from: audio.sample_rate,
                    to: source.sample_rate,
                    reason: e.to_string(),
                }
                .to_string()
            })?;
    let peak = samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if source.normalize_peak > 0.0 && peak > 1e-6 {
        let gain = source.normalize_peak / peak;
        samples.iter_mut().for_each(|v| *v *= gain);
    }
    Ok(samples)
}

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
) -> Result<usize> {
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
    // Before the SoundFont install and the folder: bad settings must leave
    // nothing behind.
    config.validate()?;
    let renderer = Renderer::load(&ensure_soundfont()?)?;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(clips.max(1));
    let render = |index: usize| -> Result<()> {
        let path = dir.join(format!("piano-{index:04}.wav"));
        let clip = renderer.render_family_clip(style.family(), family, index, &config)?;
        Ok(write_mono_wav(&path, clip, sample_rate)?)
    };
    run_jobs(clips, threads, render, progress)?;
    Ok(clips)
}

// ---------------------------------------------------------------------------
// Configuration and progress

/// Everything that shapes a run. Saved in checkpoints; a resumed run keeps
/// the values that change the weights and may change the others (epochs,
/// intervals, sample settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WavenetTrainConfig {
    /// Passes over the training audio.
    pub epochs: u64,
    /// Chunks per step.
    pub batch_size: usize,
    /// Scored samples per chunk (each chunk also reads the receptive field
    /// before it).
    pub chunk_len: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Steps of linear warm-up to the base rate (RMSprop's first steps are
    /// large: its mean square starts at zero and has no bias correction).
    pub warmup_steps: u64,
    /// Optimiser and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Largest global gradient norm; larger gradients are scaled down to it
    /// (0 = no clipping).
    pub clip_norm: f64,
    /// Seed of the weights, the file order and the generated samples.
    pub seed: u64,
    /// Steps per point of the training-loss curve.
    pub log_every: u64,
    /// Validate and add a row to metrics.csv every this many steps (0: only
    /// when the run ends or stops).
    pub eval_every: u64,
    /// Validate on at most this many chunks, evenly spread over the held-out
    /// files (the same ones every time).
    pub val_chunks: usize,
    /// Write a generated sample every this many steps (0 = never).
    pub sample_every: u64,
    /// Length of each generated sample in seconds.
    pub sample_seconds: f32,
    /// Sampling temperature of the generated samples.
    pub sample_temperature: f32,
}

impl Default for WavenetTrainConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 4,
            chunk_len: 8000,
            lr: 1e-3,
            schedule: LrSchedule::Constant,
            warmup_steps: 200,
            optimizer: rmsprop(),
            clip_norm: 1.0,
            seed: 0,
            log_every: 10,
            eval_every: 500,
            val_chunks: 16,
            sample_every: 1000,
            sample_seconds: 2.0,
            sample_temperature: 1.0,
        }
    }
}

/// RMSprop as seed 004 trained with it (PyTorch's defaults: decay 0.99, no
/// momentum, no weight decay).
pub fn rmsprop() -> OptimizerConfig {
    OptimizerConfig::new(OptimizerKind::RmsProp)
}

/// Plain Adam: [`OptimizerKind::AdamW`] without weight decay.
pub fn adam() -> OptimizerConfig {
    OptimizerConfig {
        weight_decay: 0.0,
        ..OptimizerConfig::new(OptimizerKind::AdamW)
    }
}

impl WavenetTrainConfig {
    /// Checks the settings for consistency.
    pub fn validate(&self) -> Result<()> {
        let bad = |s: &str| Err(WavenetTrainError::BadConfig(s.to_string()));
        if self.batch_size == 0 {
            return bad("the batch size must be at least 1");
        }
        if self.chunk_len == 0 {
            return bad("the chunk length must be at least 1 sample");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("the learning rate must be positive");
        }
        if !(self.clip_norm >= 0.0 && self.clip_norm.is_finite()) {
            return bad("the clipping norm must be at least 0 (0 turns clipping off)");
        }
        if !(self.sample_seconds >= 0.0 && self.sample_seconds.is_finite()) {
            return bad("the sample length must be at least 0 s");
        }
        if !(self.sample_temperature >= 0.0 && self.sample_temperature.is_finite()) {
            return bad("the sampling temperature must be at least 0");
        }
        Ok(())
    }
}

/// One row of metrics.csv: a validation point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WavenetMetrics {
    /// Optimiser steps taken.
    pub step: u64,
    /// Epochs, fractional (2.5 = half-way through the third).
    pub epoch: f64,
    /// Mean training loss since the previous row, in nats per sample.
    pub train_nll: f64,
    /// Validation negative log-likelihood in nats per sample (NaN without
    /// held-out files).
    pub val_nll: f64,
    /// Mean global gradient norm (before clipping) since the previous row.
    pub grad_norm: f64,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Wall-clock seconds so far, all sessions.
    pub seconds: f64,
    /// Training throughput since the previous row: scored samples per second
    /// of training steps.
    pub samples_per_second: f64,
}

/// Where a run stands. Saved in checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WavenetProgress {
    /// Optimiser steps taken.
    pub step: u64,
    /// Epochs completed.
    pub epoch: u64,
    /// Steps taken in the current epoch.
    pub batch_in_epoch: u64,
    /// Wall-clock seconds of training, validation and sampling, all sessions.
    pub seconds: f64,
    /// Seconds spent in training steps only.
    pub train_seconds: f64,
    /// Scored samples trained on.
    pub samples_seen: u64,
    /// Training-loss curve: (step, mean loss over `log_every` steps).
    pub loss_log: Vec<(u64, f64)>,
    /// Loss sum and count not yet in `loss_log`.
    pub pending_loss: (f64, u64),
    /// Rows of metrics.csv.
    pub history: Vec<WavenetMetrics>,
    /// Since the last row: loss sum, gradient-norm sum, steps, scored
    /// samples and training seconds.
    pub since_row: (f64, f64, u64, u64, f64),
    /// The data the run started on.
    pub data: WavenetFingerprint,
    /// Where the data came from, so a resumed run can load it again.
    pub source: Option<WavenetDataSource>,
}

/// What one training step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WavenetStep {
    /// The step's number (1 for the first step of a run).
    pub step: u64,
    /// Mean cross-entropy of the batch, nats per sample.
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Scored samples in the batch.
    pub samples: usize,
}

/// Progress callbacks; every method has an empty default.
pub trait WavenetObserver {
    /// The run starts or resumes at `progress`, with `total_steps` in all.
    fn started(&mut self, _progress: &WavenetProgress, _total_steps: u64) {}
    /// A step finished.
    fn step(&mut self, _step: &WavenetStep) {}
    /// Validation starts.
    fn evaluating(&mut self) {}
    /// A metrics row was recorded.
    fn metrics(&mut self, _row: &WavenetMetrics) {}
    /// A generated sample was written.
    fn sample(&mut self, _wav: &Path) {}
    /// A checkpoint was written.
    fn checkpoint(&mut self, _path: &Path) {}
}

/// An observer that shows nothing.
pub struct QuietWavenet;

impl WavenetObserver for QuietWavenet {}

/// Where a run keeps its files and when it stops; see also [`RunOptions`].
#[derive(Debug, Clone, Default)]
pub struct WavenetRunOptions {
    /// Run folder, checkpoint interval, stop flag and step limit.
    pub run: RunOptions,
    /// Also write the model so far here at every checkpoint, so a killed run
    /// still leaves a recent model behind (named as [`WavenetTrainer::set_name`]
    /// named it).
    pub model_out: Option<PathBuf>,
    /// How the model was made (command line, data), for its metadata.
    pub description: String,
}

// ---------------------------------------------------------------------------
// Checkpoints

/// The JSON stored under the checkpoint metadata key. Perception
/// checkpoints use the same key; `network` tells the two apart.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateJson {
    version: u32,
    network: String,
    config: WavenetTrainConfig,
    optimizer_step: u64,
    progress: WavenetProgress,
}

/// A snapshot of a WaveNet training run: a model file (loadable by the
/// engine as it is) plus the optimiser's buffers as `optim.*` tensors and
/// the run's settings and progress as JSON, in the same layout as
/// [`crate::checkpoint`]'s perception checkpoints.
#[derive(Debug, Clone)]
pub struct WavenetCheckpoint {
    /// The model.
    pub model: WavenetModel,
    /// The optimiser's step counter and buffers.
    pub optimizer: OptimizerState,
    /// The run's settings.
    pub config: WavenetTrainConfig,
    /// The run's progress.
    pub progress: WavenetProgress,
}

impl WavenetCheckpoint {
    /// Serialises the checkpoint.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let bad = |reason: String| WavenetTrainError::BadCheckpoint {
            path: PathBuf::new(),
            reason,
        };
        let mut raw = self.model.to_raw()?;
        insert_optimizer(&mut raw, &self.optimizer)?;
        let state = StateJson {
            version: CHECKPOINT_VERSION,
            network: "wavenet".into(),
            config: self.config.clone(),
            optimizer_step: self.optimizer.step,
            progress: self.progress.clone(),
        };
        checkpoint_bytes(&raw, &state).map_err(bad)
    }

    /// Parses a checkpoint; `path` is only used in messages.
    pub fn from_bytes(bytes: &[u8], path: &Path, device: &Device) -> Result<Self> {
        let path = path.to_path_buf();
        let model_err = |source| WavenetTrainError::CheckpointModel {
            path: path.clone(),
            source,
        };
        let raw = RawModel::from_bytes(bytes).map_err(model_err)?;
        let model = WavenetModel::from_raw(&raw, device).map_err(model_err)?;
        let bad = |reason: String| WavenetTrainError::BadCheckpoint {
            path: path.clone(),
            reason,
        };
        let not_a_checkpoint = || WavenetTrainError::NotACheckpoint { path: path.clone() };
        let value = read_state(bytes, CHECKPOINT_VERSION, not_a_checkpoint, bad)?;
        if value.get("network").and_then(|v| v.as_str()) != Some("wavenet") {
            return Err(bad(
                "it is not a WaveNet checkpoint (it was written by another trainer)".into(),
            ));
        }
        let state: StateJson = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            model,
            optimizer: read_optimizer(&raw, state.optimizer_step, device)?,
            config: state.config,
            progress: state.progress,
        })
    }

    /// Writes the checkpoint atomically (temporary file, then rename), so
    /// an interrupted write never destroys the previous one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes().map_err(|e| match e {
            WavenetTrainError::BadCheckpoint { reason, .. } => WavenetTrainError::BadCheckpoint {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })?;
        write_atomically(path, &bytes).map_err(|source| WavenetTrainError::CheckpointIo {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a checkpoint from disk.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| WavenetTrainError::CheckpointIo {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path, device)
    }
}

// ---------------------------------------------------------------------------
// Gradient clipping

/// The global L2 norm of the gradients of `vars` (those without a gradient
/// count as zero).
pub fn grad_norm(grads: &GradStore, vars: &[Var]) -> candle_core::Result<f64> {
    let mut sum = 0.0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sum += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    Ok(sum.sqrt())
}

/// Scales the gradients of `vars` so their global norm is at most
/// `max_norm` (0 or less: unchanged). Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> candle_core::Result<f64> {
    let norm = grad_norm(grads, vars)?;
    if max_norm > 0.0 && norm > max_norm {
        // The tiny margin keeps the clipped norm at or below the bound even
        // after f32 rounding of the scaled values.
        let scale = max_norm / norm * (1.0 - 1e-6);
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(norm)
}

// ---------------------------------------------------------------------------
// Chunks

/// A span of one file's samples to score: targets `start .. start + len`;
/// negative positions are silence before the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Index of the file in its list.
    pub file: usize,
    /// First target sample (may be negative for files shorter than a chunk).
    pub start: i64,
}

/// The chunks of a file of `n` samples, in order: consecutive spans of
/// `len`, the last aligned to the file's end; a file shorter than `len`
/// gives one span padded with silence before it.
pub fn file_chunks(file: usize, n: usize, len: usize) -> Vec<Chunk> {
    if n == 0 || len == 0 {
        return Vec::new();
    }
    let (n, len) = (n as i64, len as i64);
    let mut starts: Vec<i64> = (0..n / len).map(|k| k * len).collect();
    if n % len != 0 {
        starts.push(n - len);
    }
    starts.into_iter().map(|start| Chunk { file, start }).collect()
}

/// A µ-law-encoded copy of the data, with the class of silence for padding.
struct Encoded {
    train: Vec<Vec<u32>>,
    val: Vec<Vec<u32>>,
    silence: u32,
}

impl Encoded {
    fn new(data: &WavenetData, mulaw: MuLaw) -> Self {
        let enc = |files: &[AudioFile]| {
            files
                .iter()
                .map(|f| f.samples.iter().map(|&x| mulaw.encode(x) as u32).collect())
                .collect()
        };
        Self {
            train: enc(&data.train),
            val: enc(&data.val),
            silence: mulaw.encode(0.0) as u32,
        }
    }
}

/// The class at position `i` of `file`, silence outside it.
fn class_at(file: &[u32], i: i64, silence: u32) -> u32 {
    usize::try_from(i)
        .ok()
        .and_then(|i| file.get(i))
        .copied()
        .unwrap_or(silence)
}

/// Inputs `[B, field - 1 + len]` and targets `[B * len]` of a batch of chunks.
fn batch_tensors(
    chunks: &[Chunk],
    files: &[Vec<u32>],
    silence: u32,
    field: usize,
    len: usize,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let width = field - 1 + len;
    let mut inputs = Vec::with_capacity(chunks.len() * width);
    let mut targets = Vec::with_capacity(chunks.len() * len);
    for c in chunks {
        let file = &files[c.file];
        let first = c.start - (field as i64 - 1) - 1;
        inputs.extend((0..width as i64).map(|p| class_at(file, first + p, silence)));
        targets.extend((0..len as i64).map(|j| class_at(file, c.start + j, silence)));
    }
    Ok((
        Tensor::from_vec(inputs, (chunks.len(), width), device)?,
        Tensor::from_vec(targets, chunks.len() * len, device)?,
    ))
}

// ---------------------------------------------------------------------------
// The trainer

/// What a derived random generator is for; part of its seed.
#[derive(Clone, Copy)]
enum Stream {
    FileOrder = 11,
    Sample = 12,
}

/// A WaveNet being trained, its optimiser and the run's progress.
pub struct WavenetTrainer {
    model: WavenetModel,
    vars: Vec<Var>,
    optimizer: Optimizer,
    config: WavenetTrainConfig,
    progress: WavenetProgress,
    encoded: Encoded,
    /// Chunks of the training files, per file.
    train_chunks: Vec<Vec<Chunk>>,
    /// The validation chunks, fixed for the run.
    val_chunks: Vec<Chunk>,
    /// The current epoch's chunk order, built on first use.
    plan: Option<(u64, Vec<Chunk>)>,
    steps_per_epoch: u64,
}

impl std::fmt::Debug for WavenetTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavenetTrainer")
            .field("config", &self.config)
            .field("step", &self.progress.step)
            .finish_non_exhaustive()
    }
}

impl WavenetTrainer {
    /// Starts training `model` on `data`.
    pub fn new(model: WavenetModel, config: WavenetTrainConfig, data: &WavenetData) -> Result<Self> {
        config.validate()?;
        if data.train.iter().all(|f| f.samples.is_empty()) {
            return Err(WavenetTrainError::NoTrainingData);
        }
        if data.sample_rate != model.meta.sample_rate {
            return Err(WavenetTrainError::RateMismatch {
                model: model.meta.sample_rate,
                data: data.sample_rate,
            });
        }
        let mut model = model;
        let mut params = Vec::new();
        model.net = model
            .net
            .try_map(|name, role, t| -> candle_core::Result<Tensor> {
                let var = Var::from_tensor(&t.copy()?.detach())?;
                // Decay (if any) only on matrices: biases and the embedding
                // table are offsets and lookups, not gains.
                let decay = role == Role::Weight;
                params.push(Param {
                    name: name.to_string(),
                    var: var.clone(),
                    decay,
                });
                Ok(var.as_tensor().clone())
            })?;
        let vars = params.iter().map(|p| p.var.clone()).collect();
        let optimizer = Optimizer::new(config.optimizer.clone(), params)?;
        let mulaw = MuLaw::new(model.config.classes)
            .ok_or_else(|| WavenetTrainError::BadConfig("the model's class count is invalid".into()))?;
        let encoded = Encoded::new(data, mulaw);
        let train_chunks: Vec<Vec<Chunk>> = data
            .train
            .iter()
            .enumerate()
            .map(|(i, f)| file_chunks(i, f.samples.len(), config.chunk_len))
            .collect();
        let total: usize = train_chunks.iter().map(Vec::len).sum();
        let all_val: Vec<Chunk> = data
            .val
            .iter()
            .enumerate()
            .flat_map(|(i, f)| file_chunks(i, f.samples.len(), config.chunk_len))
            .collect();
        let val_chunks = spread(&all_val, config.val_chunks);
        let steps_per_epoch = (total.div_ceil(config.batch_size) as u64).max(1);
        let progress = WavenetProgress {
            data: data.fingerprint(),
            ..WavenetProgress::default()
        };
        Ok(Self {
            model,
            vars,
            optimizer,
            config,
            progress,
            encoded,
            train_chunks,
            val_chunks,
            plan: None,
            steps_per_epoch,
        })
    }

    /// Continues a run from a checkpoint on `data` (which should be the
    /// data it was trained on; see [`WavenetTrainer::data_changed`]).
    pub fn from_checkpoint(checkpoint: WavenetCheckpoint, data: &WavenetData) -> Result<Self> {
        let WavenetCheckpoint {
            model,
            optimizer,
            config,
            progress,
        } = checkpoint;
        let mut trainer = Self::new(model, config, data)?;
        trainer.optimizer.load_state(&optimizer)?;
        trainer.progress = progress;
        Ok(trainer)
    }

    /// Whether `data` differs from the data the run started on.
    pub fn data_changed(&self, data: &WavenetData) -> bool {
        self.progress.data != data.fingerprint()
    }

    /// Names the model; checkpoints keep the name, so a resumed run does too.
    pub fn set_name(&mut self, name: String) {
        self.model.meta.name = name;
    }

    /// The model as trained so far (its tensors are the trainable variables).
    pub fn model(&self) -> &WavenetModel {
        &self.model
    }

    /// The trainable variables, in the model's tensor order.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The run's settings.
    pub fn config(&self) -> &WavenetTrainConfig {
        &self.config
    }

    /// Changes the settings that do not change the weights: epochs, the
    /// logging, validation and sampling intervals and the sample settings.
    /// The others keep their values.
    pub fn set_schedule(&mut self, change: impl FnOnce(&mut WavenetTrainConfig)) {
        let mut c = self.config.clone();
        change(&mut c);
        self.config.epochs = c.epochs;
        self.config.log_every = c.log_every;
        self.config.eval_every = c.eval_every;
        self.config.sample_every = c.sample_every;
        self.config.sample_seconds = c.sample_seconds;
        self.config.sample_temperature = c.sample_temperature;
    }

    /// Sets a new base learning rate from the next step on, e.g. a lower one
    /// for a final phase of a resumed run once the loss has levelled off.
    /// The optimiser keeps its state; the run then no longer repeats the
    /// original one exactly, which is why only an explicit flag does this.
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(WavenetTrainError::BadConfig(format!(
                "the learning rate must be positive (got {lr})"
            )));
        }
        self.config.lr = lr;
        Ok(())
    }

    /// The run's progress.
    pub fn progress(&self) -> &WavenetProgress {
        &self.progress
    }

    /// Records where the data came from (saved with checkpoints).
    pub fn set_source(&mut self, source: WavenetDataSource) {
        self.progress.source = Some(source);
    }

    /// Steps in one epoch.
    pub fn steps_per_epoch(&self) -> u64 {
        self.steps_per_epoch
    }

    /// Steps in the whole run.
    pub fn total_steps(&self) -> u64 {
        self.steps_per_epoch.saturating_mul(self.config.epochs)
    }

    /// The validation chunks (at most `val_chunks`).
    pub fn val_chunk_count(&self) -> usize {
        self.val_chunks.len()
    }

    /// The learning rate of step `step` (counted from 0).
    pub fn learning_rate(&self, step: u64) -> f64 {
        let c = &self.config;
        c.schedule.rate(c.lr, c.warmup_steps, step, self.total_steps())
    }

    /// A snapshot of the run (plain tensors, unaffected by later steps).
    pub fn checkpoint(&self) -> Result<WavenetCheckpoint> {
        Ok(WavenetCheckpoint {
            model: self.snapshot()?,
            optimizer: self.optimizer.state()?,
            config: self.config.clone(),
            progress: self.progress.clone(),
        })
    }

    /// One optimiser step on the next batch of the epoch's chunk order.
    pub fn step(&mut self) -> Result<WavenetStep> {
        let started = Instant::now();
        if self.progress.batch_in_epoch >= self.steps_per_epoch {
            // Only after resuming on less data than the run started on.
            self.progress.epoch += 1;
            self.progress.batch_in_epoch = 0;
        }
        let chunks = self.next_batch();
        let device = self.model.net.embedding.device().clone();
        let field = self.model.receptive_field();
        let len = self.config.chunk_len;
        let (x, y) = batch_tensors(
            &chunks,
            &self.encoded.train,
            self.encoded.silence,
            field,
            len,
            &device,
        )?;
        let loss = scored_loss(&self.model.net, &x, &y, len)?;
        let loss_value = loss.to_scalar::<f32>()?;
        let step = self.progress.step + 1;
        if !loss_value.is_finite() {
            return Err(WavenetTrainError::Diverged {
                step,
                loss: loss_value,
            });
        }
        let mut grads = loss.backward()?;
        let norm = clip_grad_norm(&mut grads, &self.vars, self.config.clip_norm)?;
        let lr = self.learning_rate(self.progress.step);
        self.optimizer.step(&grads, lr)?;

        let samples = chunks.len() * len;
        let seconds = started.elapsed().as_secs_f64();
        let p = &mut self.progress;
        p.step = step;
        p.batch_in_epoch += 1;
        p.samples_seen += samples as u64;
        p.train_seconds += seconds;
        p.seconds += seconds;
        log_loss(
            &mut p.loss_log,
            &mut p.pending_loss,
            step,
            loss_value,
            self.config.log_every,
        );
        let r = &mut p.since_row;
        r.0 += f64::from(loss_value);
        r.1 += norm;
        r.2 += 1;
        r.3 += samples as u64;
        r.4 += seconds;
        if p.batch_in_epoch >= self.steps_per_epoch {
            p.epoch += 1;
            p.batch_in_epoch = 0;
        }
        Ok(WavenetStep {
            step,
            loss: loss_value,
            grad_norm: norm,
            lr,
            samples,
        })
    }

    /// Validation negative log-likelihood in nats per sample over the
    /// validation chunks; `None` without held-out audio.
    pub fn evaluate(&self) -> Result<Option<f64>> {
        if self.val_chunks.is_empty() {
            return Ok(None);
        }
        let device = self.model.net.embedding.device().clone();
        let field = self.model.receptive_field();
        let len = self.config.chunk_len;
        // Plain copies of the weights: no gradient graph is kept alive.
        let net = self.snapshot()?.net;
        let (mut sum, mut count) = (0.0f64, 0usize);
        for batch in self.val_chunks.chunks(self.config.batch_size) {
            let (x, y) = batch_tensors(
                batch,
                &self.encoded.val,
                self.encoded.silence,
                field,
                len,
                &device,
            )?;
            let loss = scored_loss(&net, &x, &y, len)?.to_scalar::<f32>()?;
            sum += f64::from(loss) * (batch.len() * len) as f64;
            count += batch.len() * len;
        }
        Ok(Some(sum / count.max(1) as f64))
    }

    /// Validates and appends a row to the metrics history.
    pub fn record_metrics(&mut self) -> Result<WavenetMetrics> {
        let started = Instant::now();
        let val = self.evaluate()?.unwrap_or(f64::NAN);
        let lr = self.learning_rate(self.progress.step.saturating_sub(1));
        let p = &mut self.progress;
        p.seconds += started.elapsed().as_secs_f64();
        let (loss, norm, steps, samples, secs) = p.since_row;
        let per = |v: f64| if steps > 0 { v / steps as f64 } else { f64::NAN };
        let row = WavenetMetrics {
            step: p.step,
            epoch: p.epoch as f64 + p.batch_in_epoch as f64 / self.steps_per_epoch as f64,
            train_nll: per(loss),
            val_nll: val,
            grad_norm: per(norm),
            lr,
            seconds: p.seconds,
            samples_per_second: if secs > 0.0 {
                samples as f64 / secs
            } else {
                f64::NAN
            },
        };
        p.since_row = (0.0, 0.0, 0, 0, 0.0);
        p.history.push(row.clone());
        Ok(row)
    }

    /// Generates `sample_seconds` of audio with the engine's sampler, primed
    /// with the last receptive field of a held-out clip (a training clip if
    /// nothing is held out), and writes `dir/samples/step-NNNNNNNN.wav` with
    /// a `.json` beside it describing how it was made. Returns the WAV path.
    pub fn write_sample(&mut self, data: &WavenetData, dir: &Path) -> Result<PathBuf> {
        let started = Instant::now();
        let folder = dir.join(SAMPLES_DIR);
        std::fs::create_dir_all(&folder).map_err(io_err(&folder))?;
        let step = self.progress.step;
        let rate = self.model.meta.sample_rate;
        let snapshot = self.snapshot()?;
        let mut sampler = Sampler::from_model(&snapshot)?;
        let (pool, side) = if data.val.is_empty() {
            (&data.train, "train")
        } else {
            (&data.val, "validation")
        };
        // Each sample primes from the next file, so the library covers the
        // held-out set rather than one clip.
        let every = self.config.sample_every.max(1);
        let prime = pool.get(((step / every) as usize) % pool.len().max(1));
        let prime_end = prime.map_or(0, |f| f.samples.len().min(rate as usize));
        if let Some(f) = prime {
            sampler.prime(&f.samples[..prime_end]);
        }
        let n = (f64::from(self.config.sample_seconds) * f64::from(rate)).round() as usize;
        let mut rng = rng_for(self.config.seed, Stream::Sample as u64, step);
        let audio = sampler.generate(n, self.config.sample_temperature, &mut rng);
        // Whether it plays notes or noise, in numbers, for the run's record.
        let pitch = reverie_engine::pitch::pitchedness(&audio, rate);
        let stem = format!("step-{step:08}");
        let wav = folder.join(format!("{stem}.wav"));
        write_mono_wav(&wav, audio, rate)?;
        let field = self.model.receptive_field();
        let info = serde_json::json!({
            "wav": format!("{stem}.wav"),
            "step": step,
            "epoch": self.progress.epoch,
            "training_seconds": self.progress.seconds,
            "last_val_nll": self.progress.history.last().map(|m| m.val_nll).filter(|v| v.is_finite()),
            "sample_rate": rate,
            "seconds": self.config.sample_seconds,
            "temperature": self.config.sample_temperature,
            "rng": { "seed": self.config.seed, "stream": Stream::Sample as u64, "index": step },
            "prime": prime.map(|f| serde_json::json!({
                "set": side,
                "file": f.path.display().to_string(),
                "samples": [prime_end.saturating_sub(field), prime_end],
            })),
            "pitch": {
                "clarity": pitch.clarity,
                "flatness": pitch.flatness,
                "frames": pitch.frames,
            },
            "model": snapshot.config,
            "receptive_field": field,
            "training": self.config,
        });
        let json = folder.join(format!("{stem}.json"));
        let text = serde_json::to_string_pretty(&info).map_err(|e| WavenetTrainError::Io {
            path: json.clone(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&json, text).map_err(io_err(&json))?;
        self.progress.seconds += started.elapsed().as_secs_f64();
        Ok(wav)
    }

    /// Trains until every epoch is done or `opts` says to stop, validating,
    /// sampling and checkpointing at the configured intervals. On a stop
    /// (flag or step limit) it validates, saves and returns
    /// [`RunOutcome::Stopped`].
    pub fn run(
        &mut self,
        data: &WavenetData,
        opts: &WavenetRunOptions,
        observer: &mut dyn WavenetObserver,
    ) -> Result<RunOutcome> {
        if let Some(dir) = &opts.run.dir {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        observer.started(&self.progress, self.total_steps());
        let due = |every: u64, step: u64| every > 0 && step.is_multiple_of(every);
        while self.progress.epoch < self.config.epochs {
            if opts.run.stop_requested(self.progress.step) {
                self.wrap_up(opts, observer)?;
                return Ok(RunOutcome::Stopped);
            }
            let r = self.step()?;
            observer.step(&r);
            let step = self.progress.step;
            if due(self.config.eval_every, step) {
                observer.evaluating();
                let row = self.record_metrics()?;
                observer.metrics(&row);
                // The table and plot follow every row, not only checkpoints.
                if let Some(dir) = &opts.run.dir {
                    write_wavenet_run_files(dir, &self.progress)?;
                }
            }
            if let Some(dir) = &opts.run.dir {
                if due(self.config.sample_every, step) {
                    let wav = self.write_sample(data, dir)?;
                    observer.sample(&wav);
                }
            }
            if due(opts.run.checkpoint_every, step) {
                self.save_run(opts, observer)?;
            }
        }
        self.wrap_up(opts, observer)?;
        Ok(RunOutcome::Finished)
    }

    /// The final metrics row (unless one was just recorded) and a save.
    fn wrap_up(&mut self, opts: &WavenetRunOptions, observer: &mut dyn WavenetObserver) -> Result<()> {
        let recorded = self.progress.history.last().map(|m| m.step);
        if recorded != Some(self.progress.step) && self.progress.since_row.2 > 0 {
            observer.evaluating();
            let row = self.record_metrics()?;
            observer.metrics(&row);
        }
        self.save_run(opts, observer)
    }

    /// Writes the checkpoint, metrics.csv, loss.png and the model so far.
    fn save_run(&self, opts: &WavenetRunOptions, observer: &mut dyn WavenetObserver) -> Result<()> {
        if let Some(dir) = &opts.run.dir {
            let path = dir.join(CHECKPOINT_FILE);
            self.checkpoint()?.save(&path)?;
            write_wavenet_run_files(dir, &self.progress)?;
            observer.checkpoint(&path);
        }
        if let Some(out) = &opts.model_out {
            let model = self.finish(opts.description.clone())?;
            let bytes = model.to_raw()?.to_bytes()?;
            write_atomically(out, &bytes).map_err(io_err(out))?;
        }
        Ok(())
    }

    /// The trained model with its training summary filled in (steps,
    /// seconds, last validation NLL in nats and bits per sample, throughput).
    pub fn finish(&self, description: String) -> Result<WavenetModel> {
        let mut model = self.snapshot()?;
        let p = &self.progress;
        let mut metrics = BTreeMap::new();
        let mut put = |k: &str, v: f64| {
            if v.is_finite() {
                metrics.insert(k.to_string(), v);
            }
        };
        if let Some(last) = p.history.last() {
            put("val_nll", last.val_nll);
            put("val_bits_per_sample", last.val_nll / std::f64::consts::LN_2);
            put("train_nll", last.train_nll);
        }
        put(
            "epochs",
            p.epoch as f64 + p.batch_in_epoch as f64 / self.steps_per_epoch as f64,
        );
        put("samples_per_second", self.samples_per_second());
        model.meta.training.description = description;
        model.meta.training.steps = p.step;
        model.meta.training.seconds = p.seconds;
        model.meta.training.metrics = metrics;
        Ok(model)
    }

    /// Scored samples per second of training steps, over the whole run.
    pub fn samples_per_second(&self) -> f64 {
        self.progress.samples_seen as f64 / self.progress.train_seconds.max(1e-9)
    }

    /// The next batch of the current epoch's order.
    fn next_batch(&mut self) -> Vec<Chunk> {
        let epoch = self.progress.epoch;
        if self.plan.as_ref().map(|(e, _)| *e) != Some(epoch) {
            self.plan = Some((epoch, self.epoch_order(epoch)));
        }
        let order = self.plan.as_ref().map(|(_, o)| o.as_slice()).unwrap_or_default();
        let b = self.config.batch_size;
        let first = (self.progress.batch_in_epoch as usize * b).min(order.len());
        order[first..(first + b).min(order.len())].to_vec()
    }

    /// Files in a seeded order, each file's chunks start to end.
    fn epoch_order(&self, epoch: u64) -> Vec<Chunk> {
        let mut files: Vec<usize> = (0..self.train_chunks.len()).collect();
        files.shuffle(&mut rng_for(self.config.seed, Stream::FileOrder as u64, epoch));
        files
            .into_iter()
            .flat_map(|f| self.train_chunks[f].iter().copied())
            .collect()
    }

    /// A copy of the model with plain tensors.
    fn snapshot(&self) -> Result<WavenetModel> {
        let mut out = self.model.clone();
        out.net = self
            .model
            .net
            .try_map(|_, _, t| -> candle_core::Result<Tensor> { Ok(t.copy()?.detach()) })?;
        Ok(out)
    }
}

/// Mean cross-entropy (nats) of the last `len` positions of every row: the
/// ones the valid forward pass computes.
fn scored_loss(net: &WavenetNet, x: &Tensor, y: &Tensor, len: usize) -> candle_core::Result<Tensor> {
    let logits = net.forward(x, Padding::Valid)?;
    let (b, t, classes) = logits.dims3()?;
    debug_assert_eq!(t, len);
    candle_nn::loss::cross_entropy(&logits.reshape((b * t, classes))?, y)
}

/// At most `k` of `items`, evenly spread (all of them when there are fewer).
fn spread<T: Copy>(items: &[T], k: usize) -> Vec<T> {
    if items.len() <= k {
        return items.to_vec();
    }
    (0..k).map(|i| items[i * items.len() / k]).collect()
}

// ---------------------------------------------------------------------------
// Run files

/// The metrics history as CSV, header included (NaN cells left empty). A
/// local writer: [`crate::metrics::metrics_csv`] is the perception table.
pub fn metrics_csv(history: &[WavenetMetrics]) -> String {
    let cell = |v: f64, prec: usize| {
        if v.is_finite() {
            format!("{v:.prec$}")
        } else {
            String::new()
        }
    };
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for m in history {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{:.4e},{:.2},{}",
            m.step,
            cell(m.epoch, 4),
            cell(m.train_nll, 6),
            cell(m.val_nll, 6),
            cell(m.val_nll / std::f64::consts::LN_2, 6),
            cell(m.grad_norm, 4),
            m.lr,
            m.seconds,
            cell(m.samples_per_second, 1),
        );
    }
    out
}

/// Writes metrics.csv and loss.png (training curve and validation NLL, in
/// nats per sample) into `dir`.
pub fn write_wavenet_run_files(dir: &Path, progress: &WavenetProgress) -> Result<()> {
    let csv = dir.join(METRICS_FILE);
    std::fs::write(&csv, metrics_csv(&progress.history)).map_err(io_err(&csv))?;
    write_loss_plot(
        &dir.join(LOSS_PLOT_FILE),
        "WaveNet loss (nats per sample)",
        &progress.loss_log,
        progress
            .history
            .iter()
            .map(|m| (m.step as f64, m.val_nll))
            .collect(),
    )?;
    Ok(())
}

/// The WaveNet architecture from a JSON file: the `config` object of a
/// WaveNet model file, where `receptive_field` may be left out (it is
/// computed from the dilations, and checked against them when present).
pub fn read_wavenet_config(path: &Path) -> Result<WavenetConfig> {
    #[derive(Deserialize)]
    struct Arch {
        dilations: Vec<usize>,
        residual_channels: usize,
        dilation_channels: usize,
        skip_channels: usize,
        classes: usize,
        receptive_field: Option<usize>,
    }
    let bad = |e: String| WavenetTrainError::BadConfig(format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let a: Arch = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let config = WavenetConfig {
        dilations: a.dilations,
        residual_channels: a.residual_channels,
        dilation_channels: a.dilation_channels,
        skip_channels: a.skip_channels,
        classes: a.classes,
    };
    config.validate().map_err(bad)?;
    if let Some(rf) = a.receptive_field.filter(|&rf| rf != config.receptive_field()) {
        return Err(bad(format!(
            "receptive_field {rf} does not match the dilations, whose receptive field is {}",
            config.receptive_field()
        )));
    }
    Ok(config)
}
