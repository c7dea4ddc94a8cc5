//! Training the perception network that the dreamer listens through.
//!
//! Each step takes a batch of random one-window crops of training clips,
//! each normalised the way the dreamer normalises its input (zero mean,
//! peak 1), runs the network with batch norm in training mode, and updates
//! the weights with AdamW or RMSprop. Batch norm's running statistics follow
//! the batch statistics by a momentum average and are saved with the model.
//!
//! Every random choice is drawn from a generator seeded by (run seed, what
//! it is for, epoch or step), never from a generator carried along, so a
//! run resumed from a checkpoint makes exactly the choices the uninterrupted
//! run would have made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reverie_engine::dreamer::normalise;
use reverie_engine::model_file::ModelFileError;
use reverie_engine::perception::{PerceptionConfig, PerceptionModel, PerceptionNet};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::dataset::{load_dataset, Dataset, DatasetConfig, DatasetError, SkippedFile};
use crate::filters::bandpass_kernels;
use crate::metrics::{confusion_report, metrics_csv, ConfusionMatrix, EpochMetrics};
use crate::optim::{OptimError, Optimizer, OptimizerConfig, OptimizerKind, Param};
use crate::plot::{Chart, PlotError, Series, PALETTE};
use crate::run_folder::{log_loss, write_loss_plot};

/// Why training could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// There is nothing to train on.
    #[error("the training set is empty; the dataset needs at least one training clip")]
    NoTrainingData,
    /// The data's classes differ from the model's.
    #[error("the data has classes [{data}] but the model was made for [{model}]; train on the same class folders the checkpoint was trained on")]
    ClassMismatch {
        /// The model's class names.
        model: String,
        /// The data's class names.
        data: String,
    },
    /// The data is at another rate than the model.
    #[error("the data is at {data} Hz but the model runs at {model} Hz")]
    RateMismatch {
        /// Model rate.
        model: u32,
        /// Data rate.
        data: u32,
    },
    /// A clip names a class that does not exist.
    #[error("a clip has class index {class}, but there are only {classes} classes")]
    BadLabel {
        /// The index found.
        class: usize,
        /// The number of classes.
        classes: usize,
    },
    /// The settings are inconsistent.
    #[error("invalid training settings: {0}")]
    BadConfig(String),
    /// The loss became NaN or infinite.
    #[error("training diverged at step {step} (the loss is {loss}); lower the learning rate (--lr) and start again or resume from an earlier checkpoint")]
    Diverged {
        /// The step that produced it.
        step: u64,
        /// The loss value.
        loss: f32,
    },
    /// The dataset folder could not be loaded.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A model-file problem (reading a config, building the model).
    #[error(transparent)]
    Model(#[from] ModelFileError),
    /// A checkpoint problem.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// An optimiser problem.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// A plot could not be written.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// A run file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The Ctrl-C handler could not be installed.
    #[error("cannot install the Ctrl-C handler: {0}")]
    Signal(String),
    /// An error inside candle.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

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

    fn check(&self, model: &PerceptionModel) -> Result<(), TrainError> {
        if self.train.is_empty() {
            return Err(TrainError::NoTrainingData);
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

/// How the first layer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrontendInit {
    /// He-normal noise like every other layer.
    Random,
    /// Band-pass filters on a mel scale ([`bandpass_kernels`]).
    Bandpass,
}

/// How the learning rate changes over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The base rate throughout (after warm-up).
    Constant,
    /// Half a cosine from the base rate down to zero at the last step.
    Cosine,
}

impl LrSchedule {
    /// The learning rate of step `step` (counted from 0) of a run of
    /// `total_steps`: `base` after a linear warm-up over `warmup_steps`,
    /// shaped by the schedule.
    pub fn rate(self, base: f64, warmup_steps: u64, step: u64, total_steps: u64) -> f64 {
        let warm = if warmup_steps > 0 {
            ((step + 1) as f64 / warmup_steps as f64).min(1.0)
        } else {
            1.0
        };
        let decay = match self {
            LrSchedule::Constant => 1.0,
            LrSchedule::Cosine => {
                let t = (step as f64 / total_steps.max(1) as f64).min(1.0);
                0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        };
        base * warm * decay
    }
}

/// Everything that shapes a run. Saved in checkpoints; a resumed run uses
/// the saved values (only `epochs` may be raised).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training clips (one random crop per clip per pass).
    pub epochs: u64,
    /// Crops per step.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Steps of linear warm-up from near zero to the base rate.
    pub warmup_steps: u64,
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
            epochs: 30,
            batch_size: 32,
            lr: 1e-3,
            schedule: LrSchedule::Cosine,
            warmup_steps: 100,
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

impl TrainConfig {
    fn validate(&self) -> Result<(), TrainError> {
        let bad = |s: &str| Err(TrainError::BadConfig(s.to_string()));
        if self.batch_size == 0 {
            return bad("the batch size must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("the learning rate must be positive");
        }
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
    /// Optimiser steps taken.
    pub step: u64,
    /// Epochs completed.
    pub epoch: u64,
    /// Steps taken in the current epoch.
    pub batch_in_epoch: u64,
    /// Wall-clock seconds of training and validation, all sessions.
    pub seconds: f64,
    /// Seconds spent in training steps only (for throughput).
    pub train_seconds: f64,
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
    /// Training-loss curve: (step, mean loss over the last `log_every` steps).
    pub loss_log: Vec<(u64, f64)>,
    /// Loss sum and count not yet in `loss_log`.
    pub pending_loss: (f64, u64),
    /// The data the run was trained on.
    pub data: DataFingerprint,
    /// Where the data came from, when it was loaded from a folder, so a
    /// resumed run can load it again.
    pub source: Option<DataSource>,
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

/// Callbacks for progress display. Every method has an empty default.
pub trait Observer {
    /// The run starts (or resumes) at `progress`, with `total_steps` in all.
    fn started(&mut self, _progress: &Progress, _total_steps: u64) {}
    /// A step finished.
    fn step(&mut self, _result: &StepResult) {}
    /// Validation starts.
    fn evaluating(&mut self) {}
    /// An epoch finished and was validated.
    fn epoch(&mut self, _metrics: &EpochMetrics, _classes: &[String]) {}
    /// A checkpoint was written.
    fn checkpoint(&mut self, _path: &Path) {}
}

/// An observer that shows nothing.
pub struct Quiet;

impl Observer for Quiet {}

/// Where and how [`Trainer::run`] keeps its files and when it stops early.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The run folder for metrics.csv, confusion.txt, loss.png,
    /// accuracy.png and checkpoint.safetensors; `None` writes nothing.
    pub dir: Option<PathBuf>,
    /// Save a checkpoint every this many steps (0 = only at the end of each
    /// epoch and when stopping).
    pub checkpoint_every: u64,
    /// When set (e.g. by Ctrl-C), the run finishes its step, saves and stops.
    pub stop: Option<Arc<AtomicBool>>,
    /// Stop after this many steps in all, as if interrupted.
    pub max_steps: Option<u64>,
}

impl RunOptions {
    /// Whether a run that has taken `step` steps should stop now: the stop
    /// flag is set or the step limit is reached.
    pub fn stop_requested(&self, step: u64) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
            || self.max_steps.is_some_and(|m| step >= m)
    }
}

/// How [`Trainer::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// All epochs are done.
    Finished,
    /// Stopped early (stop flag or step limit); a checkpoint was saved if
    /// there is a run folder.
    Stopped,
}

/// The file name of the checkpoint inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// A model being trained, its optimiser and the run's progress.
#[derive(Debug)]
pub struct Trainer {
    model: PerceptionModel,
    optimizer: Optimizer,
    config: TrainConfig,
    progress: Progress,
    steps_per_epoch: u64,
}

impl Trainer {
    /// A new model for `data`: He-normal weights (deterministic for
    /// `seed`), the first layer as `init` says, and batch norm's running
    /// statistics calibrated on a batch of training crops.
    pub fn init_model(
        net_config: PerceptionConfig,
        data: &TrainData,
        seed: u64,
        init: FrontendInit,
        device: &Device,
    ) -> Result<PerceptionModel, TrainError> {
        if data.train.is_empty() {
            return Err(TrainError::NoTrainingData);
        }
        let window = net_config.window;
        let (filters, kernel) = (net_config.frontend_filters, net_config.frontend_kernel);
        let mut model =
            PerceptionModel::init(net_config, data.sample_rate, data.classes.clone(), seed, device)?;
        if init == FrontendInit::Bandpass {
            let flat: Vec<f32> = bandpass_kernels(filters, kernel, data.sample_rate).concat();
            model.net.convs[0] = Tensor::from_vec(flat, (filters, 1, kernel), device)?;
        }
        let mut rng = rng_for(seed, Stream::Calibration as u64, 0);
        let n = data.train.len().min(32);
        let picks: Vec<usize> = (0..n).map(|_| rng.random_range(0..data.train.len())).collect();
        let mut flat = Vec::with_capacity(n * window);
        for i in picks {
            flat.extend(random_crop(&data.train[i].samples, window, &mut rng));
        }
        model.calibrate_batch_norm(&Tensor::from_vec(flat, (n, window), device)?)?;
        Ok(model)
    }

    /// Starts training `model` on `data`.
    pub fn new(model: PerceptionModel, config: TrainConfig, data: &TrainData) -> Result<Self, TrainError> {
        config.validate()?;
        data.check(&model)?;
        let mut model = model;
        let params = make_trainable(&mut model.net)?;
        let optimizer = Optimizer::new(config.optimizer.clone(), params)?;
        let progress = Progress {
            data: data.fingerprint(),
            ..Progress::default()
        };
        Ok(Self {
            steps_per_epoch: steps_per_epoch(data.train.len(), config.batch_size),
            model,
            optimizer,
            config,
            progress,
        })
    }

    /// Continues a run from a checkpoint on `data`, which should be the data
    /// it was trained on (see [`Trainer::data_changed`]).
    pub fn from_checkpoint(checkpoint: Checkpoint, data: &TrainData) -> Result<Self, TrainError> {
        let Checkpoint {
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
    pub fn data_changed(&self, data: &TrainData) -> bool {
        self.progress.data != data.fingerprint()
    }

    /// The model as trained so far.
    pub fn model(&self) -> &PerceptionModel {
        &self.model
    }

    /// The run's configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Raises or lowers the number of epochs (e.g. to extend a resumed run).
    pub fn set_epochs(&mut self, epochs: u64) {
        self.config.epochs = epochs;
    }

    /// The run's progress.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Records where the data came from (saved with checkpoints).
    pub fn set_source(&mut self, source: DataSource) {
        self.progress.source = Some(source);
    }

    /// Steps in one epoch: every training clip once, the last batch filled
    /// up from the start of the epoch's order so all batches are full.
    pub fn steps_per_epoch(&self) -> u64 {
        self.steps_per_epoch
    }

    /// Steps in the whole run.
    pub fn total_steps(&self) -> u64 {
        self.steps_per_epoch * self.config.epochs
    }

    /// The learning rate of step `step` (counted from 0).
    pub fn learning_rate(&self, step: u64) -> f64 {
        let c = &self.config;
        c.schedule.rate(c.lr, c.warmup_steps, step, self.total_steps())
    }

    /// A snapshot of the run for [`Checkpoint::save`].
    pub fn checkpoint(&self) -> Result<Checkpoint, TrainError> {
        Ok(Checkpoint {
            model: snapshot(&self.model)?,
            optimizer: self.optimizer.state()?,
            config: self.config.clone(),
            progress: self.progress.clone(),
        })
    }

    /// One optimiser step on the next batch. If the current epoch's steps
    /// are all taken it first moves to the next epoch (without validating;
    /// [`Trainer::run`] validates at each epoch's end).
    pub fn step(&mut self, data: &TrainData) -> Result<StepResult, TrainError> {
        if self.progress.batch_in_epoch >= self.steps_per_epoch {
            self.next_epoch();
        }
        let started = Instant::now();
        let device = self.model.net.head_w.device().clone();
        let (x, labels) = self.batch(data, &device)?;
        let y = Tensor::from_slice(&labels, labels.len(), &device)?;

        let mut stats = Vec::new();
        let act = self
            .model
            .net
            .forward_train(&x, &mut |layer, mean, var| stats.push((layer, mean, var)))?;
        let loss = candle_nn::loss::cross_entropy(&act.logits, &y)?;
        let loss_value = loss.to_scalar::<f32>()?;
        let step = self.progress.step + 1;
        if !loss_value.is_finite() {
            return Err(TrainError::Diverged {
                step,
                loss: loss_value,
            });
        }
        let predicted = act.logits.argmax(1)?.to_vec1::<u32>()?;
        let correct = predicted.iter().zip(&labels).filter(|(p, t)| p == t).count();

        let lr = self.learning_rate(self.progress.step);
        let grads = loss.backward()?;
        self.optimizer.step(&grads, lr)?;
        self.update_running_stats(stats, &act.layers)?;

        let batch = labels.len() as u64;
        let seconds = started.elapsed().as_secs_f64();
        let p = &mut self.progress;
        p.step = step;
        p.batch_in_epoch += 1;
        p.clips_seen += batch;
        p.epoch_clips += batch;
        p.epoch_correct += correct as u64;
        p.epoch_loss_sum += f64::from(loss_value);
        p.epoch_seconds += seconds;
        p.train_seconds += seconds;
        p.seconds += seconds;
        log_loss(
            &mut p.loss_log,
            &mut p.pending_loss,
            step,
            loss_value,
            self.config.log_every,
        );
        Ok(StepResult {
            step,
            loss: loss_value,
            accuracy: correct as f32 / batch as f32,
            lr,
        })
    }

    /// Classifies the validation clips with batch norm in inference mode.
    /// `None` when there are no validation clips.
    pub fn evaluate(&self, data: &TrainData) -> Result<Option<Evaluation>, TrainError> {
        if data.val.is_empty() {
            return Ok(None);
        }
        let window = self.model.config.window;
        let k = self.config.val_windows;
        let device = self.model.net.head_w.device().clone();
        let classes = data.classes.len();
        let mut confusion = ConfusionMatrix::new(classes);
        let mut nll = 0.0;
        let mut windows_right = 0usize;
        // Whole clips per forward pass, so their windows can be averaged.
        let clips_per_pass = (self.config.batch_size.max(k) / k).max(1);
        for chunk in data.val.chunks(clips_per_pass) {
            let mut flat = Vec::with_capacity(chunk.len() * k * window);
            for e in chunk {
                for w in fixed_windows(&e.samples, window, k) {
                    flat.extend(w);
                }
            }
            let x = Tensor::from_vec(flat, (chunk.len() * k, window), &device)?;
            let logits = self.model.net.forward(&x)?.logits;
            let per_window = logits.argmax(1)?.to_vec1::<u32>()?;
            for (i, e) in chunk.iter().enumerate() {
                let own = &per_window[i * k..(i + 1) * k];
                windows_right += own.iter().filter(|&&p| p as usize == e.class).count();
            }
            let probs = candle_nn::ops::softmax(&logits, 1)?
                .reshape((chunk.len(), k, classes))?
                .mean(1)?
                .to_vec2::<f32>()?;
            for (e, p) in chunk.iter().zip(probs) {
                let predicted = argmax(&p);
                confusion.add(e.class, predicted);
                nll -= f64::from(p[e.class].max(1e-12)).ln();
            }
        }
        Ok(Some(Evaluation {
            loss: nll / data.val.len() as f64,
            accuracy: confusion.accuracy(),
            window_accuracy: windows_right as f64 / (data.val.len() * k) as f64,
            confusion,
        }))
    }

    /// Validates and records the epoch that has just been completed, then
    /// moves to the next one.
    pub fn finish_epoch(&mut self, data: &TrainData) -> Result<EpochMetrics, TrainError> {
        let started = Instant::now();
        let eval = self.evaluate(data)?;
        let lr = self.learning_rate(self.progress.step.saturating_sub(1));
        let p = &mut self.progress;
        p.seconds += started.elapsed().as_secs_f64();
        let clips = p.epoch_clips.max(1) as f64;
        let nan = f64::NAN;
        let metrics = EpochMetrics {
            epoch: p.epoch + 1,
            step: p.step,
            train_loss: p.epoch_loss_sum / p.batch_in_epoch.max(1) as f64,
            train_accuracy: p.epoch_correct as f64 / clips,
            val_loss: eval.as_ref().map_or(nan, |e| e.loss),
            val_accuracy: eval.as_ref().map_or(nan, |e| e.accuracy),
            val_window_accuracy: eval.as_ref().map_or(nan, |e| e.window_accuracy),
            lr,
            seconds: p.seconds,
            clips_per_second: p.epoch_clips as f64 / p.epoch_seconds.max(1e-9),
            confusion: eval.map_or_else(|| ConfusionMatrix::new(data.classes.len()), |e| e.confusion),
        };
        self.progress.history.push(metrics.clone());
        self.next_epoch();
        Ok(metrics)
    }

    /// Trains until all epochs are done or `opts` says to stop, validating
    /// after each epoch and keeping the run folder up to date.
    pub fn run(
        &mut self,
        data: &TrainData,
        opts: &RunOptions,
        observer: &mut dyn Observer,
    ) -> Result<RunOutcome, TrainError> {
        if let Some(dir) = &opts.dir {
            std::fs::create_dir_all(dir).map_err(|source| TrainError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        observer.started(&self.progress, self.total_steps());
        while self.progress.epoch < self.config.epochs {
            if opts.stop_requested(self.progress.step) {
                self.save_run(opts, data, observer)?;
                return Ok(RunOutcome::Stopped);
            }
            let result = self.step(data)?;
            observer.step(&result);
            if self.progress.batch_in_epoch >= self.steps_per_epoch {
                observer.evaluating();
                let metrics = self.finish_epoch(data)?;
                observer.epoch(&metrics, &data.classes);
                self.save_run(opts, data, observer)?;
            } else if opts.checkpoint_every > 0 && self.progress.step.is_multiple_of(opts.checkpoint_every) {
                self.save_run(opts, data, observer)?;
            }
        }
        Ok(RunOutcome::Finished)
    }

    /// The trained model, with the training summary filled in from the
    /// run's progress. `description` should say how it was made (command
    /// line, data, seed).
    pub fn finish(&self, description: String) -> Result<PerceptionModel, TrainError> {
        let mut model = snapshot(&self.model)?;
        let p = &self.progress;
        let mut metrics = BTreeMap::new();
        if let Some(last) = p.history.last() {
            let mut put = |k: &str, v: f64| {
                if v.is_finite() {
                    metrics.insert(k.to_string(), v);
                }
            };
            put("val_accuracy", last.val_accuracy);
            put("val_window_accuracy", last.val_window_accuracy);
            put("val_loss", last.val_loss);
            put("train_loss", last.train_loss);
            put("train_accuracy", last.train_accuracy);
            let best = p.history.iter().map(|m| m.val_accuracy).fold(f64::NAN, f64::max);
            put("best_val_accuracy", best);
        }
        metrics.insert("epochs".into(), p.epoch as f64);
        metrics.insert("clips_per_second".into(), self.clips_per_second());
        model.meta.training.description = description;
        model.meta.training.steps = p.step;
        model.meta.training.seconds = p.seconds;
        model.meta.training.metrics = metrics;
        Ok(model)
    }

    /// Training throughput over the whole run: crops per second of
    /// training steps (validation excluded).
    pub fn clips_per_second(&self) -> f64 {
        self.progress.clips_seen as f64 / self.progress.train_seconds.max(1e-9)
    }

    /// Writes the checkpoint and the run files, if there is a run folder.
    fn save_run(
        &self,
        opts: &RunOptions,
        data: &TrainData,
        observer: &mut dyn Observer,
    ) -> Result<(), TrainError> {
        let Some(dir) = &opts.dir else {
            return Ok(());
        };
        let path = dir.join(CHECKPOINT_FILE);
        self.checkpoint()?.save(&path)?;
        write_run_files(dir, &self.progress, &data.classes)?;
        observer.checkpoint(&path);
        Ok(())
    }

    fn next_epoch(&mut self) {
        let p = &mut self.progress;
        p.epoch += 1;
        p.batch_in_epoch = 0;
        p.epoch_loss_sum = 0.0;
        p.epoch_correct = 0;
        p.epoch_clips = 0;
        p.epoch_seconds = 0.0;
    }

    /// The crops and labels of the current step.
    fn batch(&self, data: &TrainData, device: &Device) -> Result<(Tensor, Vec<u32>), TrainError> {
        let n = data.train.len();
        let b = self.config.batch_size;
        let window = self.model.config.window;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng_for(
            self.config.seed,
            Stream::EpochOrder as u64,
            self.progress.epoch,
        ));
        let mut rng = rng_for(self.config.seed, Stream::Crops as u64, self.progress.step);
        let first = self.progress.batch_in_epoch as usize * b;
        let mut flat = Vec::with_capacity(b * window);
        let mut labels = Vec::with_capacity(b);
        for j in 0..b {
            let e = &data.train[order[(first + j) % n]];
            let mut crop = random_crop(&e.samples, window, &mut rng);
            if self.config.min_crop_level > 0.0 {
                let floor = self.config.min_crop_level * rms(&e.samples);
                for _ in 0..CROP_RETRIES {
                    if rms(&crop) >= floor {
                        break;
                    }
                    crop = random_crop(&e.samples, window, &mut rng);
                }
            }
            self.augment(&mut crop, &mut rng);
            flat.extend(normalise(&crop).0);
            labels.push(e.class as u32);
        }
        Ok((Tensor::from_vec(flat, (b, window), device)?, labels))
    }

    fn augment(&self, crop: &mut [f32], rng: &mut ChaCha8Rng) {
        // Draw every random number whether or not it is used, so turning
        // one augmentation off does not change the others' choices.
        let flip = rng.random_bool(0.5);
        let level: f32 = rng.random_range(0.0..=1.0) * self.config.noise;
        let noise_seed: u64 = rng.random();
        if self.config.flip_polarity && flip {
            crop.iter_mut().for_each(|v| *v = -*v);
        }
        if level > 0.0 {
            let peak = crop.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let noise = reverie_engine::normal_vec(
                &mut ChaCha8Rng::seed_from_u64(noise_seed),
                crop.len(),
                level * peak,
            );
            crop.iter_mut().zip(noise).for_each(|(v, n)| *v += n);
        }
    }

    /// Moves the running statistics toward the batch statistics. The batch
    /// variance is biased (divided by n); the running one estimates the
    /// population, so it is corrected by n / (n - 1).
    fn update_running_stats(
        &mut self,
        stats: Vec<(usize, Tensor, Tensor)>,
        layers: &[Tensor],
    ) -> Result<(), TrainError> {
        let m = self.config.bn_momentum;
        for (i, mean, var) in stats {
            let dims = layers[i].dims();
            let n = (dims[..dims.len() - 1].iter().product::<usize>()).max(2) as f64;
            let bn = &mut self.model.net.norms[i];
            bn.running_mean = ((&bn.running_mean * (1.0 - m))? + (mean * m)?)?;
            bn.running_var = ((&bn.running_var * (1.0 - m))? + (var * (m * n / (n - 1.0)))?)?;
        }
        Ok(())
    }
}

/// Writes metrics.csv, confusion.txt, loss.png and accuracy.png into `dir`.
pub fn write_run_files(dir: &Path, progress: &Progress, classes: &[String]) -> Result<(), TrainError> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| TrainError::Io { path, source })
    };
    write("metrics.csv", metrics_csv(&progress.history))?;
    write("confusion.txt", confusion_report(&progress.history, classes))?;

    let epochs = &progress.history;
    write_loss_plot(
        &dir.join("loss.png"),
        "loss (cross-entropy)",
        &progress.loss_log,
        epochs.iter().map(|m| (m.step as f64, m.val_loss)).collect(),
    )?;

    let accuracy = Chart {
        title: "accuracy".into(),
        x_label: "epoch".into(),
        width: 800,
        height: 450,
        y_range: Some((0.0, 1.0)),
    };
    let acc_series = [
        Series {
            label: "train".into(),
            colour: PALETTE[0],
            points: epochs
                .iter()
                .map(|m| (m.epoch as f64, m.train_accuracy))
                .collect(),
        },
        Series {
            label: "validation".into(),
            colour: PALETTE[1],
            points: epochs.iter().map(|m| (m.epoch as f64, m.val_accuracy)).collect(),
        },
        Series {
            label: "validation, 1 window".into(),
            colour: PALETTE[2],
            points: epochs
                .iter()
                .map(|m| (m.epoch as f64, m.val_window_accuracy))
                .collect(),
        },
    ];
    accuracy.render(&acc_series).save_png(&dir.join("accuracy.png"))?;
    Ok(())
}

/// Reads a perception architecture from a JSON file (the `config` object of
/// a model file's metadata has the same form).
pub fn read_net_config(path: &Path) -> Result<PerceptionConfig, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let config: PerceptionConfig =
        serde_json::from_str(&text).map_err(|e| TrainError::BadConfig(format!("{}: {e}", path.display())))?;
    config
        .validate()
        .map_err(|e| TrainError::BadConfig(format!("{}: {e}", path.display())))?;
    Ok(config)
}

/// A flag that turns true on the first Ctrl-C, so a run can finish its step
/// and save. A second Ctrl-C exits at once (status 130) for when saving
/// hangs. Only one handler can exist per process.
pub fn interrupt_flag() -> Result<Arc<AtomicBool>, TrainError> {
    let flag = Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting without saving");
            std::process::exit(130);
        }
        eprintln!(
            "\nCtrl-C: finishing this step, saving a checkpoint, then stopping (Ctrl-C again to quit now)"
        );
    })
    .map_err(|e| TrainError::Signal(e.to_string()))?;
    Ok(flag)
}

/// What a derived random generator is for; part of its seed.
#[derive(Clone, Copy)]
enum Stream {
    EpochOrder = 1,
    Crops = 2,
    Calibration = 3,
}

/// A generator for (seed, purpose, index), independent of every other.
/// `stream` is a purpose's number; the two trainers number theirs apart.
pub(crate) fn rng_for(seed: u64, stream: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((stream << 56) ^ index);
    rng
}

fn steps_per_epoch(clips: usize, batch: usize) -> u64 {
    (clips.div_ceil(batch.max(1)) as u64).max(1)
}

/// How often a too-quiet crop is drawn again before it is kept anyway.
const CROP_RETRIES: usize = 3;

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>() / x.len().max(1) as f64).sqrt() as f32
}

/// A random `window`-sample crop; shorter clips are zero-padded at a random
/// place instead.
fn random_crop(samples: &[f32], window: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    if samples.len() >= window {
        let start = rng.random_range(0..=samples.len() - window);
        samples[start..start + window].to_vec()
    } else {
        let mut out = vec![0.0; window];
        let start = rng.random_range(0..=window - samples.len());
        out[start..start + samples.len()].copy_from_slice(samples);
        out
    }
}

/// `k` normalised windows spread evenly over the clip (one centred window
/// when `k` is 1), zero-padded when the clip is short.
fn fixed_windows(samples: &[f32], window: usize, k: usize) -> Vec<Vec<f32>> {
    let span = samples.len().saturating_sub(window);
    (0..k)
        .map(|i| {
            let start = if k == 1 { span / 2 } else { span * i / (k - 1) };
            let mut w = vec![0.0; window];
            let end = (start + window).min(samples.len());
            w[..end - start].copy_from_slice(&samples[start..end]);
            normalise(&w).0
        })
        .collect()
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |best, (i, &x)| if x > best.1 { (i, x) } else { best },
        )
        .0
}

/// Swaps the network's learned tensors for trainable variables (copies, so
/// nothing outside the trainer changes when they are updated) and lists
/// them with their names. Running statistics stay plain tensors.
fn make_trainable(net: &mut PerceptionNet) -> Result<Vec<Param>, TrainError> {
    let mut params = Vec::new();
    let mut var = |name: String, t: &mut Tensor, decay: bool| -> Result<(), TrainError> {
        let v = Var::from_tensor(&t.copy()?.detach())?;
        *t = v.as_tensor().clone();
        params.push(Param { name, var: v, decay });
        Ok(())
    };
    for (i, conv) in net.convs.iter_mut().enumerate() {
        var(format!("conv{i}.weight"), conv, true)?;
    }
    for (i, bn) in net.norms.iter_mut().enumerate() {
        var(format!("bn{i}.weight"), &mut bn.gamma, false)?;
        var(format!("bn{i}.bias"), &mut bn.beta, false)?;
    }
    var("head.weight".into(), &mut net.head_w, true)?;
    var("head.bias".into(), &mut net.head_b, false)?;
    Ok(params)
}

/// A copy of the model with plain (non-trainable) tensors, unaffected by
/// later steps.
fn snapshot(model: &PerceptionModel) -> Result<PerceptionModel, TrainError> {
    let mut out = model.clone();
    let copy = |t: &mut Tensor| -> Result<(), TrainError> {
        *t = t.copy()?.detach();
        Ok(())
    };
    for conv in &mut out.net.convs {
        copy(conv)?;
    }
    for bn in &mut out.net.norms {
        copy(&mut bn.gamma)?;
        copy(&mut bn.beta)?;
        copy(&mut bn.running_mean)?;
        copy(&mut bn.running_var)?;
    }
    copy(&mut out.net.head_w)?;
    copy(&mut out.net.head_b)?;
    Ok(out)
}
