//! The run core both training loops share: the [`Trainer`] around a
//! network, its optimiser, settings and progress; checkpoints; the one
//! error type; the learning-rate schedule; run options and outcome; the
//! Ctrl-C flag; the random streams; and the run folder's files. A
//! [`Task`] (the perception or the WaveNet trainer) supplies what differs:
//! its data, its step, what it validates and what it writes.
//!
//! Every random choice is drawn from a generator seeded by (run seed, what
//! it is for, epoch or step), never from a generator carried along, so a
//! run resumed from a checkpoint makes exactly the choices the uninterrupted
//! run would have made.

mod checkpoint;
mod error;
mod files;
mod schedule;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reverie_engine::model_file::{Layout, Model, Role, TrainingSummary};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use checkpoint::{Checkpoint, CheckpointFormat, CHECKPOINT_VERSION};
pub(crate) use error::io_err;
pub use error::TrainError;
pub(crate) use files::{csv_table, loss_chart, write_atomically, write_run_files};
pub use schedule::{LrSchedule, Schedule};

use crate::optim::{Optimizer, OptimizerConfig, Param};

/// The file name of the checkpoint inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// The settings of a run, as a [`Task`] keeps them.
pub trait RunConfig: Serialize + DeserializeOwned + Clone + Debug + PartialEq {
    /// Length and learning rate.
    fn schedule(&self) -> &Schedule;
    /// Optimiser and its hyper-parameters.
    fn optimizer(&self) -> &OptimizerConfig;
    /// Refuses inconsistent settings.
    fn validate(&self) -> Result<(), TrainError>;
}

/// Where a run stands, as a [`Task`] keeps it: the [`Counters`] every run
/// has, and the task's own.
pub trait RunProgress: Serialize + DeserializeOwned + Clone + Debug + Default {
    /// The counters every run keeps.
    fn counters(&self) -> &Counters;
}

/// The counters every run keeps. Checkpoints store them flattened into the
/// task's progress, so the state JSON stays one flat object that older
/// checkpoints already are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Optimiser steps taken.
    pub step: u64,
    /// Epochs completed.
    pub epoch: u64,
    /// Steps taken in the current epoch.
    pub batch_in_epoch: u64,
    /// Wall-clock seconds of the run (training, validation, samples), all
    /// sessions.
    pub seconds: f64,
    /// Seconds spent in training steps only (for throughput).
    pub train_seconds: f64,
    /// Training-loss curve: (step, mean loss over `log_every` steps).
    pub loss_log: Vec<(u64, f64)>,
    /// Loss sum and count not yet in `loss_log`.
    pub pending_loss: (f64, u64),
}

impl Counters {
    /// Counts step `step` of the run, which took `seconds` and had `loss`.
    /// Losses gather in `pending_loss` until `log_every` of them (one at
    /// least) are in; their mean is then the curve's point at `step`, so
    /// the plot stays readable however long the run.
    pub(crate) fn count_step(&mut self, step: u64, loss: f32, seconds: f64, log_every: u64) {
        self.step = step;
        self.batch_in_epoch += 1;
        self.train_seconds += seconds;
        self.seconds += seconds;
        let pending = &mut self.pending_loss;
        pending.0 += f64::from(loss);
        pending.1 += 1;
        if pending.1 >= log_every.max(1) {
            self.loss_log.push((step, pending.0 / pending.1 as f64));
            *pending = (0.0, 0);
        }
    }
}

/// What a kind of training run adds to the core: its network, settings,
/// progress and data (the first three as its checkpoints keep them), its
/// step, and what it records.
pub trait Task: CheckpointFormat<Config: RunConfig, Progress: RunProgress> {
    /// The training and validation data.
    type Data;
    /// What one step measured.
    type Step;
    /// One validation record (an epoch's metrics, a metrics row).
    type Row;
    /// What the trainer keeps besides the core (e.g. the data prepared for
    /// the network).
    type State;

    /// Checks `data` against the model and settings and prepares a run on
    /// it: the task's state, steps per epoch and the starting progress.
    fn start(
        model: &Model<Self::Net>,
        config: &Self::Config,
        data: &Self::Data,
    ) -> Result<Started<Self>, TrainError>;

    /// One optimiser step.
    fn step(trainer: &mut Trainer<Self>, data: &Self::Data) -> Result<Self::Step, TrainError>;

    /// What follows a step in [`Trainer::run`]: validation, samples and
    /// checkpoints when they are due.
    fn after_step(
        trainer: &mut Trainer<Self>,
        data: &Self::Data,
        opts: &RunOptions,
        observer: &mut dyn Observer<Self>,
    ) -> Result<(), TrainError>;

    /// What a run does when it ends (`outcome`): e.g. a last validation
    /// and a save.
    fn wrap_up(
        trainer: &mut Trainer<Self>,
        data: &Self::Data,
        opts: &RunOptions,
        observer: &mut dyn Observer<Self>,
        outcome: RunOutcome,
    ) -> Result<(), TrainError>;

    /// The metrics of the training summary (non-finite ones are left out).
    fn summary(trainer: &Trainer<Self>) -> Vec<(&'static str, f64)>;

    /// Writes the run folder's files other than the checkpoint.
    fn write_run_files(trainer: &Trainer<Self>, dir: &Path, data: &Self::Data) -> Result<(), TrainError>;
}

/// What [`Task::start`] prepares.
pub struct Started<T: Task> {
    /// The task's own state.
    pub state: T::State,
    /// Steps in one epoch.
    pub steps_per_epoch: u64,
    /// The progress of a fresh run (e.g. with the data's fingerprint).
    pub progress: T::Progress,
}

/// Progress callbacks; every method has an empty default.
pub trait Observer<T: Task> {
    /// The run starts (or resumes) at `progress`, with `total_steps` in all.
    fn started(&mut self, _progress: &T::Progress, _total_steps: u64) {}
    /// A step finished.
    fn step(&mut self, _step: &T::Step) {}
    /// Validation starts.
    fn evaluating(&mut self) {}
    /// A validation record was made; `classes` names a classifier's
    /// classes (none for a WaveNet).
    fn metrics(&mut self, _row: &T::Row, _classes: &[String]) {}
    /// A generated sample was written.
    fn sample(&mut self, _wav: &Path) {}
    /// A checkpoint was written.
    fn checkpoint(&mut self, _path: &Path) {}
}

/// An observer that shows nothing.
pub struct Quiet;

impl<T: Task> Observer<T> for Quiet {}

/// Where and how [`Trainer::run`] keeps its files and when it stops early.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The run folder (checkpoint, metrics, plots); `None` writes nothing.
    pub dir: Option<PathBuf>,
    /// Save a checkpoint every this many steps (0: only when the task
    /// saves anyway, e.g. after each epoch, and when stopping).
    pub checkpoint_every: u64,
    /// When set (e.g. by Ctrl-C), the run finishes its step, saves and stops.
    pub stop: Option<Arc<AtomicBool>>,
    /// Stop after this many steps in all, as if interrupted.
    pub max_steps: Option<u64>,
    /// Also write the model so far here at every checkpoint, so a killed run
    /// still leaves a recent model behind.
    pub model_out: Option<PathBuf>,
    /// How the model was made (command line, data), for its metadata.
    pub description: String,
}

impl RunOptions {
    /// Whether a run that has taken `step` steps should stop now: the stop
    /// flag is set or the step limit is reached.
    pub fn stop_requested(&self, step: u64) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
            || self.max_steps.is_some_and(|m| step >= m)
    }

    /// Whether `every` (a step interval, 0 = never) is due at `step`.
    pub(crate) fn due(every: u64, step: u64) -> bool {
        every > 0 && step.is_multiple_of(every)
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

/// What a derived random generator is for; its number is part of the
/// generator's seed, so every purpose of every trainer draws numbers of its
/// own. The numbers are those runs were made with: changing one changes
/// every run that uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Perception: the order of the clips in an epoch.
    EpochOrder = 1,
    /// Perception: crops and augmentation of a step.
    Crops = 2,
    /// Perception: the crops batch norm is calibrated on.
    Calibration = 3,
    /// WaveNet: the order of the files in an epoch.
    FileOrder = 11,
    /// WaveNet: the draws of a generated sample.
    Sample = 12,
    /// WaveNet: the noise on a step's inputs.
    InputNoise = 13,
    /// WaveNet: the draws and takeover points of a step's free-running rows.
    FreeRun = 14,
}

impl Stream {
    /// The stream's number, as recorded beside generated samples.
    pub(crate) fn number(self) -> u64 {
        self as u64
    }

    /// A generator for (seed, this purpose, index), independent of every
    /// other.
    pub(crate) fn rng(self, seed: u64, index: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream((self.number() << 56) ^ index);
        rng
    }
}

/// A model being trained, its optimiser, the run's settings and progress,
/// and what its [`Task`] keeps besides.
pub struct Trainer<T: Task> {
    pub(crate) model: Model<T::Net>,
    pub(crate) vars: Vec<Var>,
    pub(crate) optimizer: Optimizer,
    pub(crate) config: T::Config,
    pub(crate) progress: T::Progress,
    pub(crate) steps_per_epoch: u64,
    pub(crate) state: T::State,
}

impl<T: Task> Debug for Trainer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("task", &T::NAME)
            .field("config", &self.config)
            .field("step", &self.progress.counters().step)
            .finish_non_exhaustive()
    }
}

impl<T: Task> Trainer<T> {
    /// Starts training `model` on `data`: every trainable tensor becomes a
    /// variable (a copy, so nothing outside the trainer changes when they
    /// are updated); running statistics stay plain tensors.
    pub fn new(model: Model<T::Net>, config: T::Config, data: &T::Data) -> Result<Self, TrainError> {
        config.validate()?;
        let started = T::start(&model, &config, data)?;
        let mut model = model;
        let mut params = Vec::new();
        model.net = model.net.try_map(|name, role, t| -> Result<Tensor, TrainError> {
            if !role.trainable() {
                return Ok(t.clone());
            }
            let var = Var::from_tensor(&t.copy()?.detach())?;
            params.push(Param {
                name: name.to_string(),
                var: var.clone(),
                // Decay (if any) only on weights: biases, batch-norm scales
                // and embeddings are offsets, normalisations and lookups,
                // and decaying them only fights what they do.
                decay: role == Role::Weight,
            });
            Ok(var.as_tensor().clone())
        })?;
        let vars = params.iter().map(|p| p.var.clone()).collect();
        let optimizer = Optimizer::new(config.optimizer().clone(), params)?;
        Ok(Self {
            model,
            vars,
            optimizer,
            config,
            progress: started.progress,
            steps_per_epoch: started.steps_per_epoch,
            state: started.state,
        })
    }

    /// Continues a run from a checkpoint on `data`, which should be the data
    /// it was trained on.
    pub fn from_checkpoint(checkpoint: Checkpoint<T>, data: &T::Data) -> Result<Self, TrainError> {
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

    /// The model as trained so far (its trainable tensors are variables).
    pub fn model(&self) -> &Model<T::Net> {
        &self.model
    }

    /// The trainable variables, in the network's tensor order.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The run's settings.
    pub fn config(&self) -> &T::Config {
        &self.config
    }

    /// The run's progress.
    pub fn progress(&self) -> &T::Progress {
        &self.progress
    }

    /// Steps in one epoch.
    pub fn steps_per_epoch(&self) -> u64 {
        self.steps_per_epoch
    }

    /// Steps in the whole run.
    pub fn total_steps(&self) -> u64 {
        self.steps_per_epoch.saturating_mul(self.config.schedule().epochs)
    }

    /// The learning rate of step `step` (counted from 0).
    pub fn learning_rate(&self, step: u64) -> f64 {
        self.config.schedule().rate(step, self.total_steps())
    }

    /// A snapshot of the run (plain tensors, unaffected by later steps).
    pub fn checkpoint(&self) -> Result<Checkpoint<T>, TrainError> {
        Ok(Checkpoint {
            model: self.snapshot()?,
            optimizer: self.optimizer.state()?,
            config: self.config.clone(),
            progress: self.progress.clone(),
        })
    }

    /// The trained model, with the training summary filled in from the
    /// run's progress. `description` should say how it was made (command
    /// line, data, seed).
    pub fn finish(&self, description: String) -> Result<Model<T::Net>, TrainError> {
        let mut model = self.snapshot()?;
        let metrics: BTreeMap<String, f64> = T::summary(self)
            .into_iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        model.meta.training = TrainingSummary {
            description,
            steps: self.progress.counters().step,
            seconds: self.progress.counters().seconds,
            metrics,
        };
        Ok(model)
    }

    /// Trains until all epochs are done or `opts` says to stop, validating,
    /// checkpointing (and whatever else the task does) as it goes.
    pub fn run(
        &mut self,
        data: &T::Data,
        opts: &RunOptions,
        observer: &mut dyn Observer<T>,
    ) -> Result<RunOutcome, TrainError> {
        if let Some(dir) = &opts.dir {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        observer.started(&self.progress, self.total_steps());
        let mut outcome = RunOutcome::Finished;
        while self.progress.counters().epoch < self.config.schedule().epochs {
            if opts.stop_requested(self.progress.counters().step) {
                outcome = RunOutcome::Stopped;
                break;
            }
            let step = T::step(self, data)?;
            observer.step(&step);
            T::after_step(self, data, opts, observer)?;
        }
        T::wrap_up(self, data, opts, observer, outcome)?;
        Ok(outcome)
    }

    /// Writes the checkpoint and the run files (if there is a run folder)
    /// and the model so far (if asked for).
    pub(crate) fn save_run(
        &self,
        data: &T::Data,
        opts: &RunOptions,
        observer: &mut dyn Observer<T>,
    ) -> Result<(), TrainError> {
        if let Some(dir) = &opts.dir {
            let path = dir.join(CHECKPOINT_FILE);
            self.checkpoint()?.save(&path)?;
            T::write_run_files(self, dir, data)?;
            observer.checkpoint(&path);
        }
        if let Some(out) = &opts.model_out {
            let bytes = self.finish(opts.description.clone())?.to_raw()?.to_bytes()?;
            write_atomically(out, &bytes).map_err(io_err(out))?;
        }
        Ok(())
    }

    /// The next step's loss `value`, or [`TrainError::Diverged`] (with the
    /// task's `advice`) when it is not finite.
    pub(crate) fn checked_loss(&self, value: f32, advice: &'static str) -> Result<f32, TrainError> {
        if !value.is_finite() {
            return Err(TrainError::Diverged {
                step: self.progress.counters().step + 1,
                loss: value,
                advice,
            });
        }
        Ok(value)
    }

    /// Updates the weights by `grads` at the next step's scheduled learning
    /// rate, which it returns.
    pub(crate) fn apply(&mut self, grads: &GradStore) -> Result<f64, TrainError> {
        let lr = self.learning_rate(self.progress.counters().step);
        self.optimizer.step(grads, lr)?;
        Ok(lr)
    }

    /// A copy of the model with plain tensors, unaffected by later steps.
    pub(crate) fn snapshot(&self) -> Result<Model<T::Net>, TrainError> {
        let mut out = self.model.clone();
        out.net = self
            .model
            .net
            .try_map(|_, _, t| -> candle_core::Result<Tensor> { Ok(t.copy()?.detach()) })?;
        Ok(out)
    }
}
