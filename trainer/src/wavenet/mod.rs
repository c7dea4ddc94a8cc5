//! Training the autoregressive WaveNet of seed 004 on a folder of audio.
//!
//! **Data** ([`data`]). Every audio file under the data folder (any depth,
//! any format [`crate::decode`] reads) is decoded to mono, resampled to the
//! model rate and peak-normalised as a whole (so the dynamics inside a
//! recording stay). A seeded fraction of the files is held out for
//! validation, by file as in [`crate::dataset`]: neighbouring chunks of one
//! recording are nearly the same example.
//!
//! **Order.** As in the seed, chunks are never shuffled: an epoch visits the
//! training files in a seeded order (a new order every epoch) and each file's
//! chunks one after the other, start to end. A batch is the next
//! `batch_size` chunks of that sequence.
//!
//! **Loss.** The input is the µ-law class sequence and the target the same
//! sequence shifted by one sample: cross-entropy of the next sample's class,
//! in nats per sample (or, for a model whose output classes are not the
//! audio's, the signal loss if the run asks for it: the audio's own µ-law
//! cell, see [`gradients::Target`]). Each chunk of `chunk_len` targets is fed together
//! with the `receptive_field - 1` samples before it, and only the last
//! `chunk_len` outputs are scored (the engine's forward pass with
//! [`Padding::Valid`]), so every scored position sees a full receptive
//! field of real audio. Before a file's first sample the field is digital
//! silence (the class of 0.0), as if the recording started after a pause;
//! no position is scored on the network's internal zero padding. Every
//! sample of a file is a target exactly once per epoch (a final partial
//! chunk is aligned to the file's end and overlaps its predecessor).
//! With free-running rows ([`free_run`]) the last stretch of some rows'
//! history is the model's own generated output, scored against the
//! recording all the same.
//! The gradients are computed by hand ([`gradients`]), the same arithmetic
//! as candle's autograd of that forward pass at several times its speed;
//! validation scores the forward pass itself.
//!
//! **Run folder.** `checkpoint.safetensors` (model + optimiser + progress),
//! `metrics.csv`, `loss.png`, and every `sample_every` steps a generated
//! sample `samples/step-NNNNNNNN.wav` beside a `.json` that records the
//! model, the training settings and what primed it.
//!
//! The run itself (checkpoints, options, schedule, random streams) is
//! [`crate::run`]'s.

mod chunks;
mod clip;
mod config;
mod data;
mod free_run;
mod gradients;
mod sample;

use std::path::Path;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::Rng;
use reverie_engine::mulaw::MuLaw;
use reverie_engine::prediction_inputs::PredictionInputs;
use reverie_engine::sampler::Sampler;
use reverie_engine::signal_coding::SignalCoding;
use reverie_engine::wavenet::{Padding, WavenetModel, WavenetNet};

pub use chunks::{file_chunks, Chunk};
pub use clip::{clip_grad_norm, grad_norm};
pub use config::{
    adam, read_wavenet_config, rmsprop, WavenetMetrics, WavenetProgress, WavenetStep, WavenetTrainConfig,
};
pub use data::{
    find_audio_files, load_audio_folder, AudioFile, WavenetData, WavenetDataSource, WavenetFingerprint,
};
pub use sample::SAMPLES_DIR;

use crate::run::{
    csv_table, loss_chart, write_run_files, Checkpoint, CheckpointFormat, Observer, RunOptions, RunOutcome,
    Started, Stream, Task, TrainError, Trainer,
};
use chunks::{batch_of_rows, batch_tensors, file_row, spread, Batch, Encoded, EncodedFiles, InputNoise, Row};
use free_run::FreeRunner;
use gradients::loss_and_gradients;

/// The metrics table inside a run folder.
pub const METRICS_FILE: &str = "metrics.csv";
/// The loss plot inside a run folder.
pub const LOSS_PLOT_FILE: &str = "loss.png";

/// Header of [`metrics_csv`].
pub const CSV_HEADER: &str = "step,epoch,train_nll,val_nll,val_bits,grad_norm,lr,seconds,samples_per_second";

/// Why there is nothing to train on, when no training file has samples.
const NO_AUDIO: &str = "no training audio: every file was held out or too short";

/// What to change when the loss diverges.
const DIVERGED: &str = "lower the learning rate (--lr) or the clipping norm (--clip) and start again, or resume from an earlier checkpoint";

/// The WaveNet trainer's [`Task`].
#[derive(Debug, Clone, Copy)]
pub enum Wavenet {}

/// A WaveNet being trained.
pub type WavenetTrainer = Trainer<Wavenet>;

/// A snapshot of a WaveNet training run; its state says `"network":
/// "wavenet"`.
pub type WavenetCheckpoint = Checkpoint<Wavenet>;

/// What the WaveNet trainer keeps besides the run core.
pub struct WavenetState {
    /// The data, µ-law encoded.
    encoded: Encoded,
    /// Chunks of the training files, per file.
    train_chunks: Vec<Vec<Chunk>>,
    /// The validation chunks, fixed for the run.
    val_chunks: Vec<Chunk>,
    /// The current epoch's chunk order, built on first use.
    plan: Option<(u64, Vec<Chunk>)>,
}

impl CheckpointFormat for Wavenet {
    const NAME: &'static str = "WaveNet";
    const NETWORK: Option<&'static str> = Some("wavenet");
    type Net = WavenetNet;
    type Config = WavenetTrainConfig;
    type Progress = WavenetProgress;
}

impl Task for Wavenet {
    type Data = WavenetData;
    type Step = WavenetStep;
    type Row = WavenetMetrics;
    type State = WavenetState;

    fn start(
        model: &WavenetModel,
        config: &WavenetTrainConfig,
        data: &WavenetData,
    ) -> Result<Started<Self>, TrainError> {
        if data.train.iter().all(|f| f.samples.is_empty()) {
            return Err(TrainError::NoTrainingData(NO_AUDIO));
        }
        if data.sample_rate != model.meta.sample_rate {
            return Err(TrainError::RateMismatch {
                model: model.meta.sample_rate,
                data: data.sample_rate,
            });
        }
        let mulaw = MuLaw::new(model.config.classes)
            .ok_or_else(|| TrainError::BadConfig("the model's class count is invalid".into()))?;
        if config.signal_loss {
            signal_loss_applies(model)?;
        }
        if config.free_run_rows > 0 && model.config.pre_emphasis && !config.signal_loss {
            return Err(TrainError::BadConfig(
                "free-running rows of a pre-emphasis model need --signal-loss: after the model's own \
                 history only the recording's audio cells say what came next"
                    .into(),
            ));
        }
        let chunks = |files: &[AudioFile]| -> Vec<Vec<Chunk>> {
            files
                .iter()
                .enumerate()
                .map(|(i, f)| file_chunks(i, f.samples.len(), config.chunk_len))
                .collect()
        };
        let train_chunks = chunks(&data.train);
        let total: usize = train_chunks.iter().map(Vec::len).sum();
        let all_val: Vec<Chunk> = chunks(&data.val).into_iter().flatten().collect();
        Ok(Started {
            state: WavenetState {
                encoded: Encoded::new(
                    data,
                    mulaw,
                    &mut SignalCoding::new(&model.config, mulaw),
                    PredictionInputs::of_model(&model.config, mulaw)
                        .map_err(|e| TrainError::BadConfig(e.to_string()))?,
                    config.signal_loss,
                ),
                train_chunks,
                val_chunks: spread(&all_val, config.val_chunks),
                plan: None,
            },
            steps_per_epoch: (total.div_ceil(config.batch_size) as u64).max(1),
            progress: WavenetProgress {
                data: data.fingerprint(),
                ..WavenetProgress::default()
            },
        })
    }

    fn step(trainer: &mut WavenetTrainer, _data: &WavenetData) -> Result<WavenetStep, TrainError> {
        trainer.step()
    }

    /// Validation rows (with the table and plot brought up to date, not
    /// only at checkpoints), generated samples and checkpoints, as due.
    fn after_step(
        trainer: &mut WavenetTrainer,
        data: &WavenetData,
        opts: &RunOptions,
        observer: &mut dyn Observer<Self>,
    ) -> Result<(), TrainError> {
        let step = trainer.progress.counters.step;
        if RunOptions::due(trainer.config.eval_every, step) {
            observer.evaluating();
            let row = trainer.record_metrics()?;
            observer.metrics(&row, &[]);
            if let Some(dir) = &opts.dir {
                Self::write_run_files(trainer, dir, data)?;
            }
        }
        if let Some(dir) = &opts.dir {
            if RunOptions::due(trainer.config.sample_every, step) {
                let wav = trainer.write_sample(data, dir)?;
                observer.sample(&wav);
            }
        }
        if RunOptions::due(opts.checkpoint_every, step) {
            trainer.save_run(data, opts, observer)?;
        }
        Ok(())
    }

    /// However the run ends: the final metrics row (unless one was just
    /// recorded) and a save.
    fn wrap_up(
        trainer: &mut WavenetTrainer,
        data: &WavenetData,
        opts: &RunOptions,
        observer: &mut dyn Observer<Self>,
        _outcome: RunOutcome,
    ) -> Result<(), TrainError> {
        let recorded = trainer.progress.history.last().map(|m| m.step);
        if recorded != Some(trainer.progress.counters.step) && trainer.progress.since_row.2 > 0 {
            observer.evaluating();
            let row = trainer.record_metrics()?;
            observer.metrics(&row, &[]);
        }
        trainer.save_run(data, opts, observer)
    }

    /// Steps, seconds, the last validation NLL in nats and bits per sample,
    /// throughput.
    fn summary(trainer: &WavenetTrainer) -> Vec<(&'static str, f64)> {
        let p = &trainer.progress;
        let mut metrics = Vec::new();
        if let Some(last) = p.history.last() {
            metrics.extend([
                ("val_nll", last.val_nll),
                ("val_bits_per_sample", last.val_nll / std::f64::consts::LN_2),
                ("train_nll", last.train_nll),
            ]);
        }
        metrics.push((
            "epochs",
            p.counters.epoch as f64 + p.counters.batch_in_epoch as f64 / trainer.steps_per_epoch as f64,
        ));
        metrics.push(("samples_per_second", trainer.samples_per_second()));
        // How it was trained, beside how well: the option is in the file.
        metrics.push(("input_noise_classes", f64::from(trainer.config.input_noise)));
        if trainer.config.signal_loss {
            metrics.push(("signal_loss", 1.0));
        }
        if trainer.config.free_run_rows > 0 {
            metrics.push(("free_run_rows", trainer.config.free_run_rows as f64));
            metrics.push(("free_run_span", trainer.config.free_run_span as f64));
            metrics.push(("free_run_power", f64::from(trainer.config.free_run_power)));
        }
        metrics
    }

    /// metrics.csv and loss.png (training curve and validation NLL, in nats
    /// per sample).
    fn write_run_files(trainer: &WavenetTrainer, dir: &Path, _data: &WavenetData) -> Result<(), TrainError> {
        let progress = &trainer.progress;
        let loss = loss_chart(
            "WaveNet loss (nats per sample)",
            "negative log-likelihood (nats per sample)",
            &progress.counters.loss_log,
            progress
                .history
                .iter()
                .map(|m| (m.step as f64, m.val_nll))
                .collect(),
        );
        write_run_files(
            dir,
            &[(METRICS_FILE, metrics_csv(&progress.history))],
            &[(LOSS_PLOT_FILE, loss)],
        )
    }
}

impl WavenetTrainer {
    /// Whether `data` differs from the data the run started on.
    pub fn data_changed(&self, data: &WavenetData) -> bool {
        self.progress.data != data.fingerprint()
    }

    /// Names the model; checkpoints keep the name, so a resumed run does too.
    pub fn set_name(&mut self, name: String) {
        self.model.meta.name = name;
    }

    /// Changes the settings that do not change the weights: epochs, the
    /// logging, validation and sampling intervals and the sample settings.
    /// The others keep their values.
    pub fn set_schedule(&mut self, change: impl FnOnce(&mut WavenetTrainConfig)) {
        let mut c = self.config.clone();
        change(&mut c);
        self.config.schedule.epochs = c.schedule.epochs;
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
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<(), TrainError> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(TrainError::BadConfig(format!(
                "the learning rate must be positive (got {lr})"
            )));
        }
        self.config.schedule.lr = lr;
        Ok(())
    }

    /// Records where the data came from (saved with checkpoints).
    pub fn set_source(&mut self, source: WavenetDataSource) {
        self.progress.source = Some(source);
    }

    /// The validation chunks (at most `val_chunks`).
    pub fn val_chunk_count(&self) -> usize {
        self.state.val_chunks.len()
    }

    /// One optimiser step on the next batch of the epoch's chunk order.
    pub fn step(&mut self) -> Result<WavenetStep, TrainError> {
        let started = Instant::now();
        if self.progress.counters.batch_in_epoch >= self.steps_per_epoch {
            // Only after resuming on less data than the run started on.
            self.progress.counters.epoch += 1;
            self.progress.counters.batch_in_epoch = 0;
        }
        let chunks = self.next_batch();
        let len = self.config.chunk_len;
        let batch = self.training_batch(&chunks)?;
        let (loss, mut grads) = loss_and_gradients(&self.model.net, &self.vars, &batch, len)?;
        let loss_value = self.checked_loss(loss, DIVERGED)?;
        let norm = clip_grad_norm(&mut grads, &self.vars, self.config.clip_norm)?;
        let lr = self.apply(&grads)?;

        let samples = chunks.len() * len;
        let seconds = started.elapsed().as_secs_f64();
        let step = self.progress.counters.step + 1;
        let p = &mut self.progress;
        p.counters
            .count_step(step, loss_value, seconds, self.config.log_every);
        p.samples_seen += samples as u64;
        let r = &mut p.since_row;
        r.0 += f64::from(loss_value);
        r.1 += norm;
        r.2 += 1;
        r.3 += samples as u64;
        r.4 += seconds;
        if p.counters.batch_in_epoch >= self.steps_per_epoch {
            p.counters.epoch += 1;
            p.counters.batch_in_epoch = 0;
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
    pub fn evaluate(&self) -> Result<Option<f64>, TrainError> {
        if self.state.val_chunks.is_empty() {
            return Ok(None);
        }
        let len = self.config.chunk_len;
        // Plain copies of the weights: no gradient graph is kept alive.
        let net = self.snapshot()?.net;
        let (mut sum, mut count) = (0.0f64, 0usize);
        for batch in self.state.val_chunks.chunks(self.config.batch_size) {
            let tensors = self.tensors(batch, &self.state.encoded.val, None)?;
            sum += scored_loss(&net, &tensors, len)?;
            count += batch.len() * len;
        }
        Ok(Some(sum / count.max(1) as f64))
    }

    /// Validates and appends a row to the metrics history.
    pub fn record_metrics(&mut self) -> Result<WavenetMetrics, TrainError> {
        let started = Instant::now();
        let val = self.evaluate()?.unwrap_or(f64::NAN);
        let lr = self.learning_rate(self.progress.counters.step.saturating_sub(1));
        let p = &mut self.progress;
        p.counters.seconds += started.elapsed().as_secs_f64();
        let (loss, norm, steps, samples, secs) = p.since_row;
        let per = |v: f64| if steps > 0 { v / steps as f64 } else { f64::NAN };
        let row = WavenetMetrics {
            step: p.counters.step,
            epoch: p.counters.epoch as f64 + p.counters.batch_in_epoch as f64 / self.steps_per_epoch as f64,
            train_nll: per(loss),
            val_nll: val,
            grad_norm: per(norm),
            lr,
            seconds: p.counters.seconds,
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

    /// Scored samples per second of training steps, over the whole run.
    pub fn samples_per_second(&self) -> f64 {
        self.progress.samples_seen as f64 / self.progress.counters.train_seconds.max(1e-9)
    }

    /// Generates `sample_seconds` of audio with the engine's sampler, primed
    /// with the last receptive field of a held-out clip (a training clip if
    /// nothing is held out), and writes `dir/samples/step-NNNNNNNN.wav` with
    /// a `.json` beside it describing how it was made. Returns the WAV path.
    pub fn write_sample(&mut self, data: &WavenetData, dir: &Path) -> Result<std::path::PathBuf, TrainError> {
        let started = Instant::now();
        let wav = sample::write_sample(&self.snapshot()?, &self.config, &self.progress, data, dir)?;
        self.progress.counters.seconds += started.elapsed().as_secs_f64();
        Ok(wav)
    }

    /// The tensors of `chunks` of the encoded `files` (see
    /// [`batch_tensors`]), with the configured input noise for `step` (a
    /// training step's number), none for validation.
    fn tensors(
        &self,
        chunks: &[Chunk],
        files: &EncodedFiles,
        step: Option<u64>,
    ) -> candle_core::Result<Batch> {
        batch_tensors(
            chunks,
            files,
            self.state.encoded.silence,
            (self.model.receptive_field(), self.config.chunk_len),
            (self.input_noise(step).as_mut(), self.config.signal_loss),
            self.model.net.embedding.device(),
        )
    }

    /// The configured input noise for training step `step`; none for
    /// validation (`None`) or when off.
    fn input_noise(&self, step: Option<u64>) -> Option<InputNoise<rand_chacha::ChaCha8Rng>> {
        step.filter(|_| self.config.input_noise > 0.0)
            .map(|step| InputNoise {
                std: self.config.input_noise,
                rng: Stream::InputNoise.rng(self.config.seed, step),
                classes: self.model.config.classes,
            })
    }

    /// The next training step's batch of `chunks`: the first
    /// `free_run_rows` ending in a stretch of the model's own output
    /// ([`free_run`], from the current weights), the rest as recorded.
    fn training_batch(&self, chunks: &[Chunk]) -> Result<Batch, TrainError> {
        let step = self.progress.counters.step;
        let files = &self.state.encoded.train;
        let shape = (self.model.receptive_field(), self.config.chunk_len);
        let signal = self.config.signal_loss;
        let free = self.config.free_run_rows.min(chunks.len());
        let mut rows: Vec<Row> = Vec::with_capacity(chunks.len());
        if free > 0 {
            let snapshot = self.snapshot()?;
            let mulaw = MuLaw::new(snapshot.config.classes)
                .ok_or_else(|| TrainError::BadConfig("the model's class count is invalid".into()))?;
            let mut runner = FreeRunner::new(Sampler::from_model(&snapshot)?, &snapshot.config, mulaw);
            let mut rng = Stream::FreeRun.rng(self.config.seed, step);
            let power = self.config.free_run_power > 0.0;
            for &c in &chunks[..free] {
                let own = rng.random_range(1..=self.config.free_run_span);
                rows.push(runner.row(c, files, shape, (own, signal, power), &mut rng));
            }
        }
        rows.extend(
            chunks[free..]
                .iter()
                .map(|&c| file_row(c, files, self.state.encoded.silence, shape, signal)),
        );
        let device = self.model.net.embedding.device();
        let mut batch = batch_of_rows(rows, self.input_noise(Some(step)).as_mut(), signal, device)?;
        batch.power_weight = self.config.free_run_power;
        Ok(batch)
    }

    /// The next batch of the current epoch's order.
    fn next_batch(&mut self) -> Vec<Chunk> {
        let epoch = self.progress.counters.epoch;
        if self.state.plan.as_ref().map(|(e, _)| *e) != Some(epoch) {
            self.state.plan = Some((epoch, self.epoch_order(epoch)));
        }
        let order = self
            .state
            .plan
            .as_ref()
            .map(|(_, o)| o.as_slice())
            .unwrap_or_default();
        let b = self.config.batch_size;
        let first = (self.progress.counters.batch_in_epoch as usize * b).min(order.len());
        order[first..(first + b).min(order.len())].to_vec()
    }

    /// Files in a seeded order, each file's chunks start to end.
    fn epoch_order(&self, epoch: u64) -> Vec<Chunk> {
        let mut files: Vec<usize> = (0..self.state.train_chunks.len()).collect();
        files.shuffle(&mut Stream::FileOrder.rng(self.config.seed, epoch));
        files
            .into_iter()
            .flat_map(|f| self.state.train_chunks[f].iter().copied())
            .collect()
    }
}

/// Summed loss (nats) of the last `len` positions of every row, the ones
/// the valid forward pass computes: candle's cross-entropy, or with the
/// signal loss the trainer's own per-row loss ([`gradients::row_loss`]) of
/// candle's logits.
fn scored_loss(net: &WavenetNet, batch: &Batch, len: usize) -> candle_core::Result<f64> {
    let Some(cells) = &batch.cells else {
        let mean = cross_entropy(net, batch, len)?.to_scalar::<f32>()?;
        return Ok(f64::from(mean) * batch.targets.elem_count() as f64);
    };
    let logits = scored_logits(net, batch, len)?;
    let classes = logits.dim(1)?;
    let mulaw = MuLaw::new(classes).ok_or_else(|| candle_core::Error::Msg(format!("{classes} classes")))?;
    let mut shares = Vec::new();
    Ok(logits
        .to_vec2::<f32>()?
        .iter_mut()
        .zip(cells)
        .map(|(row, &(class, shift))| {
            let target = gradients::Target::Cell {
                mulaw,
                class: class as usize,
                shift: f64::from(shift),
            };
            gradients::row_loss(row, target, 1.0, &mut shares)
        })
        .sum())
}

/// The logits of the scored positions, `[B * len, classes]`.
fn scored_logits(net: &WavenetNet, batch: &Batch, len: usize) -> candle_core::Result<candle_core::Tensor> {
    let logits = net.forward_with_predictions(&batch.inputs, &batch.predictions, Padding::Valid)?;
    let (b, t, classes) = logits.dims3()?;
    debug_assert_eq!(t, len);
    logits.reshape((b * t, classes))
}

/// Mean cross-entropy of the scored positions' target classes, as a
/// tensor autograd can differentiate.
fn cross_entropy(net: &WavenetNet, batch: &Batch, len: usize) -> candle_core::Result<candle_core::Tensor> {
    candle_nn::loss::cross_entropy(&scored_logits(net, batch, len)?, &batch.targets)
}

/// An error unless `model` codes its output classes otherwise than as the
/// audio's, the only models the signal loss changes.
fn signal_loss_applies(model: &WavenetModel) -> Result<(), TrainError> {
    if model.config.residual_target || model.config.pre_emphasis {
        Ok(())
    } else {
        Err(TrainError::BadConfig(
            "the signal loss needs a model with a residual target or pre-emphasis: a plain model's \
             cross-entropy already scores the audio's own classes (leave --signal-loss out)"
                .into(),
        ))
    }
}

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
    csv_table(
        CSV_HEADER,
        history.iter().map(|m| {
            format!(
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
            )
        }),
    )
}
