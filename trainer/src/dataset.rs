//! Labelled datasets from folders: `ROOT/<class>/*.{wav,flac,mp3,ogg}`.
//!
//! Each file is decoded, mixed to mono, resampled to the model rate and cut
//! into fixed-length overlapping clips (seed 001: 10 s clips overlapping by
//! 1 s). Each clip is made zero-mean and divided by its peak, as in seed 000.
//! Train and validation are split by source file, never by clip: overlapping
//! clips of one recording are nearly the same example, and letting them fall
//! on both sides would make validation measure memory, not generalisation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::decode;

/// How to cut and split a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetConfig {
    /// The model's sample rate in Hz; every file is resampled to it.
    pub sample_rate: u32,
    /// Clip length in seconds.
    pub clip_seconds: f32,
    /// Overlap between consecutive clips of one file, in seconds
    /// (`0 <= overlap < clip`).
    pub overlap_seconds: f32,
    /// Fraction of each class's files held out for validation, in `[0, 1)`.
    pub val_fraction: f32,
    /// Seed of the shuffle that picks the validation files.
    pub seed: u64,
}

impl Default for DatasetConfig {
    /// Seed 001's choice: 10 s clips overlapping by 1 s, at 16 kHz, with a
    /// fifth of the files held out.
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            clip_seconds: 10.0,
            overlap_seconds: 1.0,
            val_fraction: 0.2,
            seed: 0,
        }
    }
}

impl DatasetConfig {
    /// Clip length in samples at the model rate.
    pub fn clip_len(&self) -> usize {
        (f64::from(self.clip_seconds) * f64::from(self.sample_rate)).round() as usize
    }

    /// Distance in samples between the starts of consecutive clips.
    pub fn hop_len(&self) -> usize {
        let overlap = (f64::from(self.overlap_seconds) * f64::from(self.sample_rate)).round() as usize;
        self.clip_len().saturating_sub(overlap)
    }

    fn validate(&self) -> Result<(), DatasetError> {
        let bad = |what: String| Err(DatasetError::BadConfig(what));
        if self.sample_rate == 0 {
            return bad("sample_rate must be positive".into());
        }
        if !(self.clip_seconds.is_finite() && self.clip_len() > 0) {
            return bad(format!(
                "clip length {} s is shorter than one sample",
                self.clip_seconds
            ));
        }
        if !(self.overlap_seconds >= 0.0 && self.hop_len() > 0) {
            return bad(format!(
                "overlap {} s must be at least 0 and shorter than the clip ({} s)",
                self.overlap_seconds, self.clip_seconds
            ));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return bad(format!("val_fraction {} must be in [0, 1)", self.val_fraction));
        }
        Ok(())
    }
}

/// Which side of the split a source file is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Used for training.
    Train,
    /// Held out for validation.
    Val,
}

/// One readable source file of the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFile {
    /// Where it is.
    pub path: PathBuf,
    /// Index into [`Dataset::classes`].
    pub class: usize,
    /// Its side of the split; all its clips are on that side.
    pub split: Split,
    /// Its length at the model rate, in samples.
    pub samples: usize,
}

/// One normalised clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// Index into [`Dataset::classes`].
    pub class: usize,
    /// Index into [`Dataset::files`].
    pub file: usize,
    /// Where the clip starts in its file, in samples at the model rate.
    pub offset: usize,
    /// [`DatasetConfig::clip_len`] samples, zero-mean, peak 1 unless silent.
    pub samples: Vec<f32>,
    /// The peak the clip was divided by (its original level).
    pub scale: f32,
}

/// A file that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// Why it was left out.
    pub reason: String,
}

/// A loaded, clipped and split dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Class names (the folder names), sorted; a clip's `class` indexes this.
    pub classes: Vec<String>,
    /// The model rate all clips are at.
    pub sample_rate: u32,
    /// Samples per clip.
    pub clip_len: usize,
    /// Every readable source file, by class then path.
    pub files: Vec<SourceFile>,
    /// Clips of the training files.
    pub train: Vec<Clip>,
    /// Clips of the validation files.
    pub val: Vec<Clip>,
    /// Files that were not used, with the reason (unreadable, not audio, ...).
    pub skipped: Vec<SkippedFile>,
}

impl Dataset {
    /// Training and validation clip counts per class, in class order.
    pub fn clips_per_class(&self) -> Vec<(usize, usize)> {
        let mut counts = vec![(0, 0); self.classes.len()];
        self.train.iter().for_each(|c| counts[c.class].0 += 1);
        self.val.iter().for_each(|c| counts[c.class].1 += 1);
        counts
    }

    /// A human-readable summary: clips per class and every skipped file
    /// with its reason, for commands to print before training.
    pub fn report(&self) -> String {
        let mut out = format!(
            "{} classes, {} files, {} training and {} validation clips of {:.2} s at {} Hz\n",
            self.classes.len(),
            self.files.len(),
            self.train.len(),
            self.val.len(),
            self.clip_len as f64 / f64::from(self.sample_rate),
            self.sample_rate
        );
        for (name, (train, val)) in self.classes.iter().zip(self.clips_per_class()) {
            out += &format!("  {name}: {train} train, {val} val\n");
        }
        if !self.skipped.is_empty() {
            out += &format!("skipped {} files:\n", self.skipped.len());
            for s in &self.skipped {
                out += &format!("  {}: {}\n", s.path.display(), s.reason);
            }
        }
        out
    }
}

/// Why a dataset could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The root folder does not exist or is not a folder.
    #[error("dataset folder {path} does not exist or is not a folder; expected ROOT/<class>/*.wav|flac|mp3|ogg (render one with `cargo xtask dataset instruments --out {path}`)")]
    RootMissing {
        /// The root given.
        path: PathBuf,
    },
    /// The root has no class subfolders.
    #[error("dataset folder {path} has no class subfolders; expected one folder per class, e.g. {path}/piano/*.wav and {path}/organ/*.wav")]
    NoClasses {
        /// The root given.
        path: PathBuf,
    },
    /// A class folder holds no file with a supported extension.
    #[error("class folder {path} (class `{class}`) has no .wav, .flac, .mp3 or .ogg files; add some or remove the folder")]
    EmptyClass {
        /// The class name.
        class: String,
        /// The class folder.
        path: PathBuf,
    },
    /// A class folder has audio files, but none could be decoded.
    #[error("none of the {count} audio files of class `{class}` ({path}) could be read (first: {first}); fix or replace them")]
    UnreadableClass {
        /// The class name.
        class: String,
        /// The class folder.
        path: PathBuf,
        /// How many files were tried.
        count: usize,
        /// The first file's error.
        first: String,
    },
    /// A folder could not be listed.
    #[error("cannot list {path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is inconsistent.
    #[error("invalid dataset settings: {0}")]
    BadConfig(String),
}

/// Loads `root/<class>/*` with `config`: decodes, resamples, clips,
/// normalises and splits by file. Unreadable or non-audio files are listed
/// in [`Dataset::skipped`] and left out; an empty root or class is an error.
pub fn load_dataset(root: &Path, config: &DatasetConfig) -> Result<Dataset, DatasetError> {
    config.validate()?;
    let layout = scan(root)?;
    let mut skipped = layout.skipped;
    let clip_len = config.clip_len();
    let hop = config.hop_len();

    let mut files = Vec::new();
    let mut signals = Vec::new();
    for (class, (name, dir, paths)) in layout.classes.iter().enumerate() {
        let mut readable = Vec::new();
        let mut first_error = None;
        for path in paths {
            let decoded = decode::decode_mono(path)
                .map_err(|e| e.to_string())
                .and_then(|audio| {
                    reverie_engine::resample::resample_clip(
                        &audio.samples,
                        audio.sample_rate,
                        config.sample_rate,
                    )
                    .map_err(|e| {
                        format!(
                            "cannot resample {} from {} Hz to {} Hz: {e}",
                            path.display(),
                            audio.sample_rate,
                            config.sample_rate
                        )
                    })
                });
            match decoded {
                Ok(signal) => readable.push((path.clone(), signal)),
                Err(reason) => {
                    first_error.get_or_insert_with(|| reason.clone());
                    skipped.push(SkippedFile {
                        path: path.clone(),
                        reason,
                    });
                }
            }
        }
        if readable.is_empty() {
            return Err(DatasetError::UnreadableClass {
                class: name.clone(),
                path: dir.clone(),
                count: paths.len(),
                first: first_error.unwrap_or_default(),
            });
        }
        let val = split_files(
            readable.len(),
            config.val_fraction,
            config.seed ^ class_salt(class),
        );
        for (i, (path, signal)) in readable.into_iter().enumerate() {
            let split = if val.contains(&i) {
                Split::Val
            } else {
                Split::Train
            };
            files.push(SourceFile {
                path,
                class,
                split,
                samples: signal.len(),
            });
            signals.push(signal);
        }
    }

    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (index, (file, signal)) in files.iter().zip(&signals).enumerate() {
        let side = match file.split {
            Split::Train => &mut train,
            Split::Val => &mut val,
        };
        for (offset, raw) in clip_signal(signal, clip_len, hop) {
            let (samples, scale) = reverie_engine::dreamer::normalise(&raw);
            side.push(Clip {
                class: file.class,
                file: index,
                offset,
                samples,
                scale,
            });
        }
    }

    Ok(Dataset {
        classes: layout.classes.into_iter().map(|(name, _, _)| name).collect(),
        sample_rate: config.sample_rate,
        clip_len,
        files,
        train,
        val,
        skipped,
    })
}

/// Cuts `signal` into clips of `clip_len` samples starting every `hop`
/// samples, returning each clip's start and samples. Only whole clips are
/// kept (the tail after the last one is dropped, as seed 001 did), except
/// that a signal shorter than one clip gives one clip padded with zeros, so
/// short recordings still count.
pub fn clip_signal(signal: &[f32], clip_len: usize, hop: usize) -> Vec<(usize, Vec<f32>)> {
    assert!(clip_len > 0 && hop > 0, "clip_len and hop must be positive");
    if signal.is_empty() {
        return Vec::new();
    }
    if signal.len() < clip_len {
        let mut padded = signal.to_vec();
        padded.resize(clip_len, 0.0);
        return vec![(0, padded)];
    }
    (0..=(signal.len() - clip_len) / hop)
        .map(|k| (k * hop, signal[k * hop..k * hop + clip_len].to_vec()))
        .collect()
}

/// Chooses which of `count` files go to validation: a seeded shuffle, then
/// the first `round(count * val_fraction)`. At least one file stays for
/// training, and a class with two or more files and a positive fraction
/// always gets at least one validation file, so every class is measured.
/// The returned indices are sorted.
pub fn split_files(count: usize, val_fraction: f32, seed: u64) -> BTreeSet<usize> {
    if count < 2 || val_fraction <= 0.0 {
        return BTreeSet::new();
    }
    let wanted = (count as f64 * f64::from(val_fraction)).round() as usize;
    let n_val = wanted.clamp(1, count - 1);
    let mut order: Vec<usize> = (0..count).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    order.into_iter().take(n_val).collect()
}

/// Decorrelates the per-class shuffles so two classes with the same number
/// of files do not hold out the same positions.
fn class_salt(class: usize) -> u64 {
    (class as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

struct Layout {
    /// (name, folder, sorted audio files) per class, sorted by name.
    classes: Vec<(String, PathBuf, Vec<PathBuf>)>,
    skipped: Vec<SkippedFile>,
}

/// Lists the class folders and their audio files, sorted so the result does
/// not depend on the order the file system returns entries in.
fn scan(root: &Path) -> Result<Layout, DatasetError> {
    if !root.is_dir() {
        return Err(DatasetError::RootMissing {
            path: root.to_path_buf(),
        });
    }
    let mut skipped = Vec::new();
    let mut class_dirs = Vec::new();
    for path in list(root)? {
        if path.is_dir() {
            class_dirs.push(path);
        } else if decode::is_supported(&path) {
            skipped.push(SkippedFile {
                path,
                reason:
                    "audio directly in the dataset folder has no class; move it into a <class>/ subfolder"
                        .into(),
            });
        }
    }
    if class_dirs.is_empty() {
        return Err(DatasetError::NoClasses {
            path: root.to_path_buf(),
        });
    }
    let mut classes = Vec::new();
    for dir in class_dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut audio = Vec::new();
        for path in list(&dir)? {
            if path.is_dir() {
                skipped.push(SkippedFile {
                    path,
                    reason: "nested folders are not read; put the class's files directly in its folder"
                        .into(),
                });
            } else if decode::is_supported(&path) {
                audio.push(path);
            } else {
                skipped.push(SkippedFile {
                    path,
                    reason: "not a .wav, .flac, .mp3 or .ogg file".into(),
                });
            }
        }
        if audio.is_empty() {
            return Err(DatasetError::EmptyClass {
                class: name,
                path: dir,
            });
        }
        classes.push((name, dir, audio));
    }
    Ok(Layout { classes, skipped })
}

/// The entries of `dir`, sorted, without hidden ones (`.DS_Store`, editor
/// files), which are never data.
fn list(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let io = |source| DatasetError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_counts_at_the_boundaries() {
        let x: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let starts = |len: usize, clip, hop| {
            clip_signal(&x[..len], clip, hop)
                .iter()
                .map(|c| c.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(starts(0, 10, 5), Vec::<usize>::new());
        assert_eq!(starts(10, 10, 5), [0]);
        assert_eq!(starts(14, 10, 5), [0]);
        assert_eq!(starts(15, 10, 5), [0, 5]);
        assert_eq!(starts(100, 10, 10), (0..10).map(|k| k * 10).collect::<Vec<_>>());
        let clips = clip_signal(&x[..23], 10, 7);
        assert_eq!(clips.len(), 2);
        assert_eq!(clips[1].1, (7..17).map(|i| i as f32).collect::<Vec<_>>());
        let short = clip_signal(&x[1..4], 6, 2);
        assert_eq!(short, vec![(0, vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0])]);
    }

    #[test]
    fn split_sizes() {
        assert!(
            split_files(1, 0.5, 0).is_empty(),
            "a single file stays for training"
        );
        assert!(split_files(10, 0.0, 0).is_empty());
        assert_eq!(split_files(2, 0.1, 0).len(), 1, "at least one held out");
        assert_eq!(split_files(3, 0.99, 0).len(), 2, "at least one kept");
        assert_eq!(split_files(20, 0.25, 0).len(), 5);
        assert!(split_files(20, 0.25, 9).iter().all(|&i| i < 20));
        assert_eq!(split_files(20, 0.25, 9), split_files(20, 0.25, 9));
    }

    #[test]
    fn config_lengths() {
        let c = DatasetConfig::default();
        assert_eq!((c.clip_len(), c.hop_len()), (160_000, 144_000));
        assert!(c.validate().is_ok());
        for bad in [
            DatasetConfig {
                clip_seconds: 0.0,
                ..c.clone()
            },
            DatasetConfig {
                overlap_seconds: 10.0,
                ..c.clone()
            },
            DatasetConfig {
                overlap_seconds: -1.0,
                ..c.clone()
            },
            DatasetConfig {
                val_fraction: 1.0,
                ..c.clone()
            },
            DatasetConfig {
                sample_rate: 0,
                ..c.clone()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(DatasetError::BadConfig(_))),
                "{bad:?}"
            );
        }
    }
}
