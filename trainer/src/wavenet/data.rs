//! The WaveNet trainer's audio: every file under a folder, decoded,
//! resampled to the model rate, peak-normalised and split by file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::{split_files, SkippedFile};
use crate::decode;
use crate::run::{io_err, TrainError};

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
    pub fn load(&self) -> Result<WavenetData, TrainError> {
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
pub fn find_audio_files(dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    if !dir.is_dir() {
        return Err(TrainError::DataMissing {
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
pub fn load_audio_folder(source: &WavenetDataSource) -> Result<WavenetData, TrainError> {
    if source.sample_rate == 0 {
        return Err(TrainError::BadConfig("the sample rate must be positive".into()));
    }
    if !(0.0..1.0).contains(&source.val_fraction) {
        return Err(TrainError::BadConfig(format!(
            "the validation fraction {} must be in [0, 1)",
            source.val_fraction
        )));
    }
    let paths = find_audio_files(&source.root)?;
    if paths.is_empty() {
        return Err(TrainError::NoAudio {
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
        return Err(TrainError::Unreadable {
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
                TrainError::Resample {
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
