//! The perception trainer's settings, progress and what its steps and
//! validations report.

use std::path::Path;

use reverie_engine::perception::PerceptionConfig;
use serde::{Deserialize, Serialize};

use super::data::{DataFingerprint, DataSource};
use crate::metrics::{ConfusionMatrix, EpochMetrics};
use crate::optim::{OptimizerConfig, OptimizerKind};
use crate::run::{io_err, Counters, LrSchedule, RunConfig, RunProgress, Schedule, TrainError};

/// How the first layer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrontendInit {
    /// He-normal noise like every other layer.
    Random,
    /// Band-pass filters on a mel scale ([`crate::filters::bandpass_kernels`]).
    Bandpass,
}

/// Everything that shapes a run. Saved in checkpoints; a resumed run uses
/// the saved values (only the epochs may be raised).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training clips (one random crop per clip per pass),
    /// base learning rate, its schedule and warm-up.
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Crops per step.
    pub batch_size: usize,
    /// Optimiser and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Weight of the newest batch in batch norm's running statistics.
    pub bn_momentum: f64,
    /// Seed of every random choice (weights, batches, crops, noise).
    pub seed: u64,
    /// Augmentation: white noise at a random level up to this fraction of
    /// the crop's peak, added before normalising (0 = off). Gain alone would
    /// be undone by the normalisation; relative to noise it is not.
    pub noise: f32,
    /// Augmentation: invert the polarity of half the crops (the sound is
    /// the same to a listener, so the network should not care).
    pub flip_polarity: bool,
    /// Validation windows per clip, evenly spread; their class
    /// probabilities are averaged.
    pub val_windows: usize,
    /// Steps per point of the training-loss curve.
    pub log_every: u64,
    /// A crop whose RMS is below this fraction of its clip's RMS is drawn
    /// again (a few times at most): once normalised, a gap or a reverb tail
    /// says little about the instrument. 0 keeps every crop.
    pub min_crop_level: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            schedule: Schedule {
                epochs: 30,
                lr: 1e-3,
                shape: LrSchedule::Cosine,
                warmup_steps: 100,
            },
            batch_size: 32,
            optimizer: OptimizerConfig::new(OptimizerKind::AdamW),
            bn_momentum: 0.1,
            seed: 0,
            noise: 0.02,
            flip_polarity: true,
            val_windows: 3,
            log_every: 10,
            min_crop_level: 0.0,
        }
    }
}

impl RunConfig for TrainConfig {
    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn optimizer(&self) -> &OptimizerConfig {
        &self.optimizer
    }

    fn validate(&self) -> Result<(), TrainError> {
        let bad = |s: &str| Err(TrainError::BadConfig(s.to_string()));
        if self.batch_size == 0 {
            return bad("the batch size must be at least 1");
        }
        self.schedule.validate()?;
        if !(0.0..=1.0).contains(&self.bn_momentum) {
            return bad("the batch-norm momentum must be in [0, 1]");
        }
        if !(self.min_crop_level >= 0.0 && self.min_crop_level.is_finite()) {
            return bad("the minimum crop level must be at least 0");
        }
        if !(self.noise >= 0.0 && self.noise.is_finite()) {
            return bad("the noise level must be at least 0");
        }
        if self.val_windows == 0 {
            return bad("at least one validation window per clip is needed");
        }
        Ok(())
    }
}

/// Where a run stands: counters, the metrics so far and the partial sums
/// of the current epoch. Saved in checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Progress {
    /// Steps, epochs, seconds and the training-loss curve.
    #[serde(flatten)]
    pub counters: Counters,
    /// Crops trained on.
    pub clips_seen: u64,
    /// Sum of the current epoch's step losses.
    pub epoch_loss_sum: f64,
    /// Correct predictions in the current epoch's batches.
    pub epoch_correct: u64,
    /// Crops in the current epoch so far.
    pub epoch_clips: u64,
    /// Training-step seconds in the current epoch.
    pub epoch_seconds: f64,
    /// Metrics of every completed epoch.
    pub history: Vec<EpochMetrics>,
    /// The data the run was trained on.
    pub data: DataFingerprint,
    /// Where the data came from, when it was loaded from a folder, so a
    /// resumed run can load it again.
    pub source: Option<DataSource>,
}

impl RunProgress for Progress {
    fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// What one training step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepResult {
    /// The step's number (1 for the first step of a run).
    pub step: u64,
    /// Mean cross-entropy of the batch.
    pub loss: f32,
    /// Fraction of the batch classified correctly.
    pub accuracy: f32,
    /// Learning rate used.
    pub lr: f64,
}

/// Validation results.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean negative log of the (window-averaged) probability of the true class.
    pub loss: f64,
    /// Fraction of clips classified correctly (window-averaged probabilities).
    pub accuracy: f64,
    /// Fraction of single windows classified correctly: what the network
    /// gets right from one window, as the dreamer sees it.
    pub window_accuracy: f64,
    /// Per-class counts (clip level).
    pub confusion: ConfusionMatrix,
}

/// Reads a perception architecture from a JSON file (the `config` object of
/// a model file's metadata has the same form).
pub fn read_net_config(path: &Path) -> Result<PerceptionConfig, TrainError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let config: PerceptionConfig =
        serde_json::from_str(&text).map_err(|e| TrainError::BadConfig(format!("{}: {e}", path.display())))?;
    config
        .validate()
        .map_err(|e| TrainError::BadConfig(format!("{}: {e}", path.display())))?;
    Ok(config)
}
