//! The WaveNet trainer's settings, progress and what its steps and
//! validations report; the architecture read from a file.

use std::path::Path;

use reverie_engine::wavenet::WavenetConfig;
use serde::{Deserialize, Serialize};

use super::data::{WavenetDataSource, WavenetFingerprint};
use crate::optim::{OptimizerConfig, OptimizerKind};
use crate::run::{io_err, Counters, LrSchedule, RunConfig, RunProgress, Schedule, TrainError};

/// Everything that shapes a run. Saved in checkpoints; a resumed run keeps
/// the values that change the weights and may change the others (epochs,
/// intervals, sample settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WavenetTrainConfig {
    /// Passes over the training audio, base learning rate, its schedule and
    /// warm-up (RMSprop's first steps are large: its mean square starts at
    /// zero and has no bias correction).
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Chunks per step.
    pub batch_size: usize,
    /// Scored samples per chunk (each chunk also reads the receptive field
    /// before it).
    pub chunk_len: usize,
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
    /// Noise added to the training inputs against exposure bias, as FFTNet
    /// (Jin et al., ICASSP 2018) does: each input class moves by a normal
    /// draw of this standard deviation in classes, rounded (0: none; about
    /// 0.5 is half a µ-law class). Targets and validation stay clean. Runs
    /// from before it read 0, and without it none is written, so their
    /// checkpoints keep their format.
    #[serde(default, skip_serializing_if = "is_zero_f32")]
    pub input_noise: f32,
    /// Score a model whose output classes are not the audio's (a residual
    /// target, pre-emphasis) by the audio's own µ-law cells, as `cargo
    /// xtask nll` does, instead of by the cross-entropy of its output
    /// class (see `gradients::Target::Cell`); validation then reports the
    /// same measure. Written only when on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signal_loss: bool,
    /// How many rows of each training batch have a history the model
    /// generated itself, scored against the recording's samples (see
    /// `free_run`; 0: none, teacher forcing only). Written only when on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub free_run_rows: usize,
    /// The longest stretch of its own output a free-running row ends with:
    /// each such row draws its stretch from 1 to this many samples, so its
    /// last targets follow from 1 to that many of the model's samples (a
    /// stretch longer than a chunk starts before it) and the rest the
    /// recording. Short stretches keep the model's history near enough to
    /// the recording that its next samples still say where it should have
    /// gone. Written only when on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub free_run_span: usize,
    /// Score the targets after the model's own output by their power (the
    /// mean square of the audio the model expects next against the
    /// recording's, in log terms, see `gradients::power_tail`) with this
    /// weight per row, instead of sample by sample (0). Written only when on.
    #[serde(default, skip_serializing_if = "is_zero_f32")]
    pub free_run_power: f32,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_zero_f32(v: &f32) -> bool {
    *v == 0.0
}

impl Default for WavenetTrainConfig {
    fn default() -> Self {
        Self {
            schedule: Schedule {
                epochs: 100,
                lr: 1e-3,
                shape: LrSchedule::Constant,
                warmup_steps: 200,
            },
            batch_size: 4,
            chunk_len: 8000,
            optimizer: rmsprop(),
            clip_norm: 1.0,
            seed: 0,
            log_every: 10,
            eval_every: 500,
            val_chunks: 16,
            sample_every: 1000,
            sample_seconds: 2.0,
            sample_temperature: 1.0,
            input_noise: 0.0,
            signal_loss: false,
            free_run_rows: 0,
            free_run_span: 0,
            free_run_power: 0.0,
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

impl RunConfig for WavenetTrainConfig {
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
        if self.chunk_len == 0 {
            return bad("the chunk length must be at least 1 sample");
        }
        self.schedule.validate()?;
        if !(self.clip_norm >= 0.0 && self.clip_norm.is_finite()) {
            return bad("the clipping norm must be at least 0 (0 turns clipping off)");
        }
        if !(self.sample_seconds >= 0.0 && self.sample_seconds.is_finite()) {
            return bad("the sample length must be at least 0 s");
        }
        if !(self.sample_temperature >= 0.0 && self.sample_temperature.is_finite()) {
            return bad("the sampling temperature must be at least 0");
        }
        if !(0.0..=64.0).contains(&self.input_noise) {
            return bad("the input noise must be from 0 to 64 classes (0 turns it off; about 0.5 is usual)");
        }
        if self.free_run_rows > self.batch_size {
            return bad("the free-running rows (--free-run) cannot be more than the batch's rows (--batch)");
        }
        if !(self.free_run_power >= 0.0 && self.free_run_power.is_finite()) {
            return bad("the free-running rows' power weight (--free-run-power) must be at least 0");
        }
        if self.free_run_power > 0.0 && self.free_run_rows == 0 {
            return bad(
                "--free-run-power scores free-running rows: add --free-run ROWS --free-run-span SAMPLES",
            );
        }
        if (self.free_run_span > 0) != (self.free_run_rows > 0) {
            return bad(
                "free-running rows need both --free-run ROWS and --free-run-span SAMPLES, at least 1 each",
            );
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
    /// Steps, epochs, seconds and the training-loss curve.
    #[serde(flatten)]
    pub counters: Counters,
    /// Scored samples trained on.
    pub samples_seen: u64,
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

impl RunProgress for WavenetProgress {
    fn counters(&self) -> &Counters {
        &self.counters
    }
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

/// The WaveNet architecture from a JSON file: the `config` object of a
/// WaveNet model file, where `receptive_field` may be left out (it is
/// computed from the dilations, and checked against them when present).
pub fn read_wavenet_config(path: &Path) -> Result<WavenetConfig, TrainError> {
    let bad = |e: String| TrainError::BadConfig(format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    // The model file's own reader, so a file here means what it means
    // there, every option included; only the receptive field, which a
    // model file must state, may be left to the dilations.
    if let Some(fields) = value.as_object_mut() {
        if !fields.contains_key("receptive_field") {
            if let Some(dilations) = fields
                .get("dilations")
                .and_then(|d| serde_json::from_value::<Vec<usize>>(d.clone()).ok())
            {
                let field = WavenetConfig {
                    dilations,
                    ..WavenetConfig::default()
                }
                .receptive_field();
                fields.insert("receptive_field".into(), field.into());
            }
        }
    }
    serde_json::from_value(value).map_err(|e| bad(e.to_string()))
}
