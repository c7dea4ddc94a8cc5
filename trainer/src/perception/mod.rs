//! Training the perception network that the dreamer listens through.
//!
//! Each step takes a batch of random one-window crops of training clips,
//! each normalised the way the dreamer normalises its input (zero mean,
//! peak 1), runs the network with batch norm in training mode, and updates
//! the weights with AdamW or RMSprop. Batch norm's running statistics follow
//! the batch statistics by a momentum average and are saved with the model.
//! After every epoch the validation clips are classified and the run folder
//! gets `metrics.csv`, `confusion.txt`, `loss.png` and `accuracy.png`.
//!
//! The run itself (checkpoints, options, schedule, random streams) is
//! [`crate::run`]'s.

mod config;
mod crops;
mod data;

use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::Rng;
use reverie_engine::model_file::Model;
use reverie_engine::perception::{PerceptionConfig, PerceptionModel, PerceptionNet};

pub use config::{read_net_config, Evaluation, FrontendInit, Progress, StepResult, TrainConfig};
pub use data::{DataFingerprint, DataSource, Example, TrainData};

use crate::filters::bandpass_kernels;
use crate::metrics::{confusion_report, metrics_csv, ConfusionMatrix, EpochMetrics};
use crate::plot::{Chart, Series, PALETTE};
use crate::run::{
    loss_chart, write_run_files, Checkpoint, CheckpointFormat, Observer, RunOptions, RunOutcome, Started,
    Stream, Task, TrainError, Trainer,
};
use crops::{fixed_windows, random_crop, training_crop};

/// The perception trainer's [`Task`]: a classifier of one-window crops.
#[derive(Debug)]
pub enum Perception {}

/// A perception network being trained.
pub type PerceptionTrainer = Trainer<Perception>;

/// A snapshot of a perception training run.
pub type PerceptionCheckpoint = Checkpoint<Perception>;

/// What to change when the loss diverges.
const DIVERGED: &str = "lower the learning rate (--lr) and start again or resume from an earlier checkpoint";

impl CheckpointFormat for Perception {
    const NAME: &'static str = "perception";
    const NETWORK: Option<&'static str> = None;
    type Net = PerceptionNet;
    type Config = TrainConfig;
    type Progress = Progress;
}

impl Task for Perception {
    type Data = TrainData;
    type Step = StepResult;
    type Row = EpochMetrics;
    type State = ();

    fn start(
        model: &PerceptionModel,
        config: &TrainConfig,
        data: &TrainData,
    ) -> Result<Started<Self>, TrainError> {
        data.check(model)?;
        // Every training clip once per epoch, the last batch filled up from
        // the start of the epoch's order so all batches are full.
        let steps_per_epoch = (data.train.len().div_ceil(config.batch_size.max(1)) as u64).max(1);
        Ok(Started {
            state: (),
            steps_per_epoch,
            progress: Progress {
                data: data.fingerprint(),
                ..Progress::default()
            },
        })
    }

    fn step(trainer: &mut PerceptionTrainer, data: &TrainData) -> Result<StepResult, TrainError> {
        trainer.step(data)
    }

    fn after_step(
        trainer: &mut PerceptionTrainer,
        data: &TrainData,
        opts: &RunOptions,
        observer: &mut dyn Observer<Self>,
    ) -> Result<(), TrainError> {
        if trainer.progress.counters.batch_in_epoch >= trainer.steps_per_epoch {
            observer.evaluating();
            let metrics = trainer.finish_epoch(data)?;
            observer.metrics(&metrics, &data.classes);
            trainer.save_run(data, opts, observer)
        } else if RunOptions::due(opts.checkpoint_every, trainer.progress.counters.step) {
            trainer.save_run(data, opts, observer)
        } else {
            Ok(())
        }
    }

    /// A finished run was saved after its last epoch; a stopped one saves
    /// where it stands.
    fn wrap_up(
        trainer: &mut PerceptionTrainer,
        data: &TrainData,
        opts: &RunOptions,
        observer: &mut dyn Observer<Self>,
        outcome: RunOutcome,
    ) -> Result<(), TrainError> {
        match outcome {
            RunOutcome::Stopped => trainer.save_run(data, opts, observer),
            RunOutcome::Finished => Ok(()),
        }
    }

    fn summary(trainer: &PerceptionTrainer) -> Vec<(&'static str, f64)> {
        let p = &trainer.progress;
        let mut metrics = Vec::new();
        if let Some(last) = p.history.last() {
            let best = p.history.iter().map(|m| m.val_accuracy).fold(f64::NAN, f64::max);
            metrics.extend([
                ("val_accuracy", last.val_accuracy),
                ("val_window_accuracy", last.val_window_accuracy),
                ("val_loss", last.val_loss),
                ("train_loss", last.train_loss),
                ("train_accuracy", last.train_accuracy),
                ("best_val_accuracy", best),
            ]);
        }
        metrics.push(("epochs", p.counters.epoch as f64));
        metrics.push(("clips_per_second", trainer.clips_per_second()));
        metrics
    }

    /// metrics.csv, confusion.txt, loss.png and accuracy.png.
    fn write_run_files(trainer: &PerceptionTrainer, dir: &Path, data: &TrainData) -> Result<(), TrainError> {
        let progress = &trainer.progress;
        let epochs = &progress.history;
        let accuracy = Chart {
            title: "accuracy".into(),
            x_label: "epoch".into(),
            y_label: "fraction classified correctly".into(),
            width: 800,
            height: 450,
            y_range: Some((0.0, 1.0)),
        };
        let by_epoch = |f: fn(&EpochMetrics) -> f64| epochs.iter().map(|m| (m.epoch as f64, f(m))).collect();
        let accuracy_series = vec![
            Series {
                label: "train".into(),
                colour: PALETTE[0],
                points: by_epoch(|m| m.train_accuracy),
            },
            Series {
                label: "validation".into(),
                colour: PALETTE[1],
                points: by_epoch(|m| m.val_accuracy),
            },
            Series {
                label: "validation, 1 window".into(),
                colour: PALETTE[2],
                points: by_epoch(|m| m.val_window_accuracy),
            },
        ];
        let loss = loss_chart(
            "loss (cross-entropy)",
            "cross-entropy (nats)",
            &progress.counters.loss_log,
            epochs.iter().map(|m| (m.step as f64, m.val_loss)).collect(),
        );
        write_run_files(
            dir,
            &[
                ("metrics.csv", metrics_csv(epochs)),
                ("confusion.txt", confusion_report(epochs, &data.classes)),
            ],
            &[("loss.png", loss), ("accuracy.png", (accuracy, accuracy_series))],
        )
    }
}

impl PerceptionTrainer {
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
            return Err(TrainError::NoTrainingData(data::NO_CLIPS));
        }
        let window = net_config.window;
        let (filters, kernel) = (net_config.frontend_filters, net_config.frontend_kernel);
        let mut model =
            Model::<PerceptionNet>::init(net_config, data.sample_rate, data.classes.clone(), seed, device)?;
        if init == FrontendInit::Bandpass {
            let flat: Vec<f32> = bandpass_kernels(filters, kernel, data.sample_rate).concat();
            model.net.convs[0] = Tensor::from_vec(flat, (filters, 1, kernel), device)?;
        }
        let mut rng = Stream::Calibration.rng(seed, 0);
        let n = data.train.len().min(32);
        let picks: Vec<usize> = (0..n).map(|_| rng.random_range(0..data.train.len())).collect();
        let mut flat = Vec::with_capacity(n * window);
        for i in picks {
            flat.extend(random_crop(&data.train[i].samples, window, &mut rng));
        }
        model.calibrate_batch_norm(&Tensor::from_vec(flat, (n, window), device)?)?;
        Ok(model)
    }

    /// Whether `data` differs from the data the run started on.
    pub fn data_changed(&self, data: &TrainData) -> bool {
        self.progress.data != data.fingerprint()
    }

    /// Raises or lowers the number of epochs (e.g. to extend a resumed run).
    pub fn set_epochs(&mut self, epochs: u64) {
        self.config.schedule.epochs = epochs;
    }

    /// Records where the data came from (saved with checkpoints).
    pub fn set_source(&mut self, source: DataSource) {
        self.progress.source = Some(source);
    }

    /// Training throughput over the whole run: crops per second of
    /// training steps (validation excluded).
    pub fn clips_per_second(&self) -> f64 {
        self.progress.clips_seen as f64 / self.progress.counters.train_seconds.max(1e-9)
    }

    /// One optimiser step on the next batch. If the current epoch's steps
    /// are all taken it first moves to the next epoch (without validating;
    /// [`Trainer::run`] validates at each epoch's end).
    pub fn step(&mut self, data: &TrainData) -> Result<StepResult, TrainError> {
        if self.progress.counters.batch_in_epoch >= self.steps_per_epoch {
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
        let loss_value = self.checked_loss(loss.to_scalar::<f32>()?, DIVERGED)?;
        let predicted = act.logits.argmax(1)?.to_vec1::<u32>()?;
        let correct = predicted.iter().zip(&labels).filter(|(p, t)| p == t).count();

        let grads = loss.backward()?;
        let lr = self.apply(&grads)?;
        self.update_running_stats(stats, &act.layers)?;

        let batch = labels.len() as u64;
        let seconds = started.elapsed().as_secs_f64();
        let step = self.progress.counters.step + 1;
        let p = &mut self.progress;
        p.counters
            .count_step(step, loss_value, seconds, self.config.log_every);
        p.clips_seen += batch;
        p.epoch_clips += batch;
        p.epoch_correct += correct as u64;
        p.epoch_loss_sum += f64::from(loss_value);
        p.epoch_seconds += seconds;
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
        let lr = self.learning_rate(self.progress.counters.step.saturating_sub(1));
        let p = &mut self.progress;
        p.counters.seconds += started.elapsed().as_secs_f64();
        let clips = p.epoch_clips.max(1) as f64;
        let nan = f64::NAN;
        let metrics = EpochMetrics {
            epoch: p.counters.epoch + 1,
            step: p.counters.step,
            train_loss: p.epoch_loss_sum / p.counters.batch_in_epoch.max(1) as f64,
            train_accuracy: p.epoch_correct as f64 / clips,
            val_loss: eval.as_ref().map_or(nan, |e| e.loss),
            val_accuracy: eval.as_ref().map_or(nan, |e| e.accuracy),
            val_window_accuracy: eval.as_ref().map_or(nan, |e| e.window_accuracy),
            lr,
            seconds: p.counters.seconds,
            clips_per_second: p.epoch_clips as f64 / p.epoch_seconds.max(1e-9),
            confusion: eval.map_or_else(|| ConfusionMatrix::new(data.classes.len()), |e| e.confusion),
        };
        self.progress.history.push(metrics.clone());
        self.next_epoch();
        Ok(metrics)
    }

    fn next_epoch(&mut self) {
        let p = &mut self.progress;
        p.counters.epoch += 1;
        p.counters.batch_in_epoch = 0;
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
        order.shuffle(&mut Stream::EpochOrder.rng(self.config.seed, self.progress.counters.epoch));
        let mut rng = Stream::Crops.rng(self.config.seed, self.progress.counters.step);
        let first = self.progress.counters.batch_in_epoch as usize * b;
        let mut flat = Vec::with_capacity(b * window);
        let mut labels = Vec::with_capacity(b);
        for j in 0..b {
            let e = &data.train[order[(first + j) % n]];
            flat.extend(training_crop(&e.samples, window, &self.config, &mut rng));
            labels.push(e.class as u32);
        }
        Ok((Tensor::from_vec(flat, (b, window), device)?, labels))
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

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |best, (i, &x)| if x > best.1 { (i, x) } else { best },
        )
        .0
}
