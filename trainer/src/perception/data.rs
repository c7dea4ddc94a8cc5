//! Labelled clips for the perception trainer: what a dataset folder loads
//! into, and the counts that recognise it again when a run is resumed.

use std::path::PathBuf;

use reverie_engine::perception::PerceptionModel;
use serde::{Deserialize, Serialize};

use crate::dataset::{load_dataset, Dataset, DatasetConfig, SkippedFile};
use crate::run::TrainError;

/// Why there is nothing to train on, when there are no training clips.
pub(crate) const NO_CLIPS: &str = "the training set is empty; the dataset needs at least one training clip";

/// One labelled clip of normalised mono audio at the model rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The samples; any length (crops shorter than a window are padded).
    pub samples: Vec<f32>,
    /// Index into [`TrainData::classes`].
    pub class: usize,
}

/// Labelled training and validation clips.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainData {
    /// Class names, in logit order.
    pub classes: Vec<String>,
    /// Rate of every clip, in Hz.
    pub sample_rate: u32,
    /// Training clips.
    pub train: Vec<Example>,
    /// Validation clips (from other files than the training clips).
    pub val: Vec<Example>,
}

/// How a [`TrainData`] was loaded from a dataset folder: enough to load the
/// same clips and the same train/validation split again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    /// The dataset folder, `ROOT/<class>/*.wav|flac|mp3|ogg`.
    pub root: PathBuf,
    /// Rate the audio is resampled to, in Hz.
    pub sample_rate: u32,
    /// Clip length in seconds.
    pub clip_seconds: f32,
    /// Overlap of consecutive clips in seconds.
    pub overlap_seconds: f32,
    /// Fraction of each class's files held out for validation.
    pub val_fraction: f32,
    /// Seed of the train/validation split.
    pub split_seed: u64,
}

impl DataSource {
    /// 4 s clips overlapping by 1 s (so every one-second window of a long
    /// file lies inside some clip), with a fifth of the files held out.
    /// Shorter than seed 001's 10 s because the dataset pads short files to
    /// a whole clip: a folder of thousands of 4 s renders would otherwise
    /// take 2.5 times its size in memory while loading.
    pub fn new(root: PathBuf, sample_rate: u32) -> Self {
        Self {
            root,
            sample_rate,
            clip_seconds: 4.0,
            overlap_seconds: 1.0,
            val_fraction: 0.2,
            split_seed: 0,
        }
    }

    /// Loads the folder; also returns the files that were skipped, and why.
    pub fn load(&self) -> Result<(TrainData, Vec<SkippedFile>), TrainError> {
        let config = DatasetConfig {
            sample_rate: self.sample_rate,
            clip_seconds: self.clip_seconds,
            overlap_seconds: self.overlap_seconds,
            val_fraction: self.val_fraction,
            seed: self.split_seed,
        };
        let mut ds = load_dataset(&self.root, &config)?;
        let skipped = std::mem::take(&mut ds.skipped);
        Ok((TrainData::from_dataset(ds), skipped))
    }
}

/// A summary of a [`TrainData`], stored in checkpoints to notice when a run
/// is resumed on different data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFingerprint {
    /// Training clips.
    pub train_clips: usize,
    /// Validation clips.
    pub val_clips: usize,
    /// Training samples in all.
    pub train_samples: u64,
}

impl TrainData {
    /// Takes a loaded dataset's clips. Zero padding that the dataset added
    /// after the end of a short file is cut off again (down to one second
    /// at least), so random crops fall on sound rather than silence.
    pub fn from_dataset(ds: Dataset) -> Self {
        let keep_at_least = ds.sample_rate as usize;
        let take = |clips: Vec<crate::dataset::Clip>| {
            clips
                .into_iter()
                .map(|c| {
                    let file_len = ds.files.get(c.file).map_or(usize::MAX, |f| f.samples);
                    let real = file_len.saturating_sub(c.offset).max(keep_at_least);
                    let mut samples = c.samples;
                    samples.truncate(real);
                    // Give the padding's memory back: a dataset of short
                    // files would otherwise keep it all.
                    samples.shrink_to_fit();
                    Example {
                        samples,
                        class: c.class,
                    }
                })
                .collect::<Vec<_>>()
        };
        let train = take(ds.train);
        let val = take(ds.val);
        Self {
            classes: ds.classes,
            sample_rate: ds.sample_rate,
            train,
            val,
        }
    }

    /// Counts that identify the data well enough to warn about a change.
    pub fn fingerprint(&self) -> DataFingerprint {
        DataFingerprint {
            train_clips: self.train.len(),
            val_clips: self.val.len(),
            train_samples: self.train.iter().map(|e| e.samples.len() as u64).sum(),
        }
    }

    /// Checks that the data fits `model`: training clips, the model's
    /// classes and rate, labels in range.
    pub(crate) fn check(&self, model: &PerceptionModel) -> Result<(), TrainError> {
        if self.train.is_empty() {
            return Err(TrainError::NoTrainingData(NO_CLIPS));
        }
        if self.classes != model.meta.class_names {
            return Err(TrainError::ClassMismatch {
                model: model.meta.class_names.join(", "),
                data: self.classes.join(", "),
            });
        }
        if self.sample_rate != model.meta.sample_rate {
            return Err(TrainError::RateMismatch {
                model: model.meta.sample_rate,
                data: self.sample_rate,
            });
        }
        if let Some(e) = self
            .train
            .iter()
            .chain(&self.val)
            .find(|e| e.class >= self.classes.len())
        {
            return Err(TrainError::BadLabel {
                class: e.class,
                classes: self.classes.len(),
            });
        }
        Ok(())
    }
}
