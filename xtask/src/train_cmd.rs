//! `cargo xtask train dreamer`: train the perception network on a dataset folder and write a
//! model file, keeping metrics, plots, confusion matrices and checkpoints
//! in a run folder. Ctrl-C finishes the current step, saves a checkpoint
//! and the model so far, and exits; `--resume` continues exactly.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use reverie_engine::perception::PerceptionConfig;
use reverie_trainer::metrics::EpochMetrics;
use reverie_trainer::optim::{OptimizerConfig, OptimizerKind};
use reverie_trainer::perception::{
    read_net_config, DataSource, FrontendInit, Perception, PerceptionCheckpoint, PerceptionTrainer, Progress,
    StepResult, TrainConfig, TrainData,
};
use reverie_trainer::run::{
    interrupt_flag, LrSchedule, Observer, RunOptions, RunOutcome, Schedule, CHECKPOINT_FILE,
};

use crate::progress::LossBar;
use crate::train_run::{
    command_line, create_parent_dir, file_stem_or, fresh_run_dir, note_ignored_on_resume, outcome_word,
    print_written, resumed_run_dir, resumed_source, warn_if_data_changed,
};

/// Optimiser choice on the command line.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum OptimizerArg {
    /// AdamW (decoupled weight decay).
    Adamw,
    /// RMSprop.
    Rmsprop,
}

/// Learning-rate schedule on the command line.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum ScheduleArg {
    /// Constant after warm-up.
    Constant,
    /// Cosine decay to zero over the run.
    Cosine,
}

/// First-layer initialisation on the command line.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum InitArg {
    /// Mel-spaced band-pass filters (cosine/sine pairs): learns faster than random ones.
    Bandpass,
    /// He-normal noise, like the other layers.
    Random,
}

/// Arguments of `cargo xtask train dreamer`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Dataset folder: DATA/<class>/*.wav|flac|mp3|ogg (e.g. from `cargo xtask
    /// dataset instruments`). Optional with --resume, which remembers it.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where to write the trained model file.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Passes over the training clips [default: 30]. With --resume, the new
    /// total, e.g. to extend a finished run (a cosine schedule stretches to
    /// the new end).
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Crops per step [default: 32].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Base learning rate [default: 0.001 for AdamW, 0.0003 for RMSprop].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Optimiser [default: adamw].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerArg>,
    /// Learning-rate schedule [default: cosine].
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleArg>,
    /// Seed of the weights, batches, crops and augmentation [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Maximum noise level added to training crops, relative to their peak
    /// (0 turns it off) [default: 0.02].
    #[arg(long)]
    pub noise: Option<f32>,
    /// Redraw training crops quieter than this fraction of their clip's RMS
    /// (gaps, reverb tails); 0 keeps all [default: 0].
    #[arg(long)]
    pub min_crop_level: Option<f32>,
    /// How the first layer's filters start [default: bandpass].
    #[arg(long, value_enum)]
    pub init: Option<InitArg>,
    /// Architecture as a JSON file (the `config` object of a model file);
    /// default: the paper's (192 filters of 50 ms every 10 ms, 6 layers).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Sample rate the data is resampled to and the model runs at.
    #[arg(long, default_value_t = 16_000)]
    pub rate: u32,
    /// Fraction of each class's files held out for validation.
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f32,
    /// Run folder for metrics.csv, loss.png, accuracy.png, confusion.txt and
    /// checkpoint.safetensors [default: runs/<name of --out>, or the
    /// checkpoint's folder with --resume].
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Save a checkpoint every N steps as well as after every epoch (0: only
    /// after epochs).
    #[arg(long, default_value_t = 200)]
    pub checkpoint_every: u64,
    /// Continue from a checkpoint (a run folder's checkpoint.safetensors).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stop after this many steps in all (e.g. to measure throughput), as if
    /// interrupted: the checkpoint and the model so far are saved.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Name stored in the model file [default: from --out].
    #[arg(long)]
    pub name: Option<String>,
    /// Train on the GPU when this build has CUDA support and one is present.
    #[arg(long)]
    pub gpu: bool,
}

/// Runs `cargo xtask train dreamer`: the perception network the dreamer
/// listens through, a classifier of one-second windows of raw audio.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let compute = reverie_engine::device::select(args.gpu);
    let device = compute.device.clone();
    let loading = Instant::now();

    let (mut trainer, data, run_dir) = match &args.resume {
        Some(path) => resume(args, path, &device)?,
        None => start(args, &device)?,
    };
    eprintln!(
        "data: {} classes ({}), {} training clips, {} validation clips, loaded in {:.1} s",
        data.classes.len(),
        data.classes.join(", "),
        data.train.len(),
        data.val.len(),
        loading.elapsed().as_secs_f64()
    );
    if data.val.is_empty() {
        eprintln!("warning: no validation clips (each class needs 2+ files and --val-fraction > 0); accuracy cannot be measured");
    }
    let c = trainer.config();
    eprintln!(
        "training on {}: {} epochs of {} steps, batch {}, {} lr {} ({:?}), seed {}; run folder {}",
        compute.description,
        c.schedule.epochs,
        trainer.steps_per_epoch(),
        c.batch_size,
        c.optimizer.kind,
        c.schedule.lr,
        c.schedule.shape,
        c.seed,
        run_dir.display()
    );

    let stop = interrupt_flag()?;
    let opts = RunOptions {
        dir: Some(run_dir.clone()),
        checkpoint_every: args.checkpoint_every,
        stop: Some(stop),
        max_steps: args.max_steps,
        ..RunOptions::default()
    };
    let mut observer = LossBar::new();
    let outcome = trainer.run(&data, &opts, &mut observer)?;
    observer.bar.finish_and_clear();

    let p = trainer.progress();
    let mut description = format!(
        "{} (seed {}) on {} ({} training / {} validation clips): {} epochs, batch {}, {} lr {}",
        command_line(),
        trainer.config().seed,
        p.source
            .as_ref()
            .map_or_else(|| "?".into(), |s| s.root.display().to_string()),
        data.train.len(),
        data.val.len(),
        p.counters.epoch,
        trainer.config().batch_size,
        trainer.config().optimizer.kind,
        trainer.config().schedule.lr,
    );
    if outcome == RunOutcome::Stopped {
        description.push_str(&format!(
            "; stopped early at step {} of {}",
            p.counters.step,
            trainer.total_steps()
        ));
    }
    let mut model = trainer.finish(description)?;
    model.meta.name = args
        .name
        .clone()
        .unwrap_or_else(|| file_stem_or(&args.out, "dreamer"));
    create_parent_dir(&args.out)?;
    model
        .save(&args.out)
        .with_context(|| format!("writing the model to {}", args.out.display()))?;

    let m = &model.meta.training.metrics;
    let percent = |k: &str| {
        m.get(k)
            .map_or_else(|| "n/a".into(), |v| format!("{:.1}%", 100.0 * v))
    };
    println!(
        "{} after {} steps in {:.0} s: validation accuracy {} (best {}, single windows {}); throughput {:.1} clips/s",
        outcome_word(outcome),
        model.meta.training.steps,
        model.meta.training.seconds,
        percent("val_accuracy"),
        percent("best_val_accuracy"),
        percent("val_window_accuracy"),
        m.get("clips_per_second").copied().unwrap_or(0.0),
    );
    print_written(outcome, &args.out, &run_dir, "dreamer", CHECKPOINT_FILE);
    Ok(())
}

/// A fresh run: load the data, build the model and the trainer.
fn start(
    args: &TrainArgs,
    device: &candle_core::Device,
) -> anyhow::Result<(PerceptionTrainer, TrainData, PathBuf)> {
    let Some(root) = &args.data else {
        bail!("--data DIR is needed (a folder of DIR/<class>/*.wav); make one with `cargo xtask dataset instruments --out DIR`");
    };
    if !root.is_dir() {
        bail!(
            "the data folder {} does not exist; make one with `cargo xtask dataset instruments --out {}`",
            root.display(),
            root.display()
        );
    }
    let net_config = match &args.config {
        Some(path) => read_net_config(path)?,
        None => PerceptionConfig::default(),
    };
    // The split does not follow --seed: runs with different seeds should
    // be measured on the same validation files.
    let source = DataSource {
        val_fraction: args.val_fraction,
        ..DataSource::new(
            std::fs::canonicalize(root).unwrap_or_else(|_| root.clone()),
            args.rate,
        )
    };
    let data = load(&source)?;
    let kind = match args.optimizer.unwrap_or(OptimizerArg::Adamw) {
        OptimizerArg::Adamw => OptimizerKind::AdamW,
        OptimizerArg::Rmsprop => OptimizerKind::RmsProp,
    };
    let defaults = TrainConfig::default();
    let config = TrainConfig {
        schedule: Schedule {
            epochs: args.epochs.unwrap_or(defaults.schedule.epochs),
            lr: args.lr.unwrap_or(match kind {
                OptimizerKind::AdamW => 1e-3,
                OptimizerKind::RmsProp => 3e-4,
            }),
            shape: match args.schedule.unwrap_or(ScheduleArg::Cosine) {
                ScheduleArg::Constant => LrSchedule::Constant,
                ScheduleArg::Cosine => LrSchedule::Cosine,
            },
            ..defaults.schedule.clone()
        },
        batch_size: args.batch.unwrap_or(defaults.batch_size),
        optimizer: OptimizerConfig::new(kind),
        seed: args.seed.unwrap_or(defaults.seed),
        noise: args.noise.unwrap_or(defaults.noise),
        min_crop_level: args.min_crop_level.unwrap_or(defaults.min_crop_level),
        ..defaults
    };
    let init = match args.init.unwrap_or(InitArg::Bandpass) {
        InitArg::Bandpass => FrontendInit::Bandpass,
        InitArg::Random => FrontendInit::Random,
    };
    let model = PerceptionTrainer::init_model(net_config, &data, config.seed, init, device)?;
    let mut trainer = PerceptionTrainer::new(model, config, &data)?;
    trainer.set_source(source);
    let run_dir = fresh_run_dir(args.run_dir.as_ref(), &args.out, "dreamer");
    Ok((trainer, data, run_dir))
}

/// A resumed run: the checkpoint's settings, its data source unless --data
/// overrides it, and more epochs if asked for.
fn resume(
    args: &TrainArgs,
    path: &Path,
    device: &candle_core::Device,
) -> anyhow::Result<(PerceptionTrainer, TrainData, PathBuf)> {
    let checkpoint = PerceptionCheckpoint::load(path, device)?;
    note_ignored_on_resume(&[
        ("--batch", args.batch.is_some()),
        ("--lr", args.lr.is_some()),
        ("--optimizer", args.optimizer.is_some()),
        ("--schedule", args.schedule.is_some()),
        ("--seed", args.seed.is_some()),
        ("--noise", args.noise.is_some()),
        ("--config", args.config.is_some()),
        ("--init", args.init.is_some()),
        ("--min-crop-level", args.min_crop_level.is_some()),
    ]);
    let rate = checkpoint.model.meta.sample_rate;
    let source = resumed_source(
        checkpoint.progress.source.as_ref(),
        args.data.as_ref(),
        |root| DataSource::new(root, rate),
        |s| &mut s.root,
    )?;
    let data = load(&source)?;
    let mut trainer = PerceptionTrainer::from_checkpoint(checkpoint, &data)?;
    warn_if_data_changed(trainer.data_changed(&data), "data", &source.root);
    trainer.set_source(source);
    if let Some(epochs) = args.epochs {
        trainer.set_epochs(epochs);
    }
    let p = trainer.progress();
    eprintln!(
        "resuming from {} at step {} (epoch {} of {})",
        path.display(),
        p.counters.step,
        p.counters.epoch,
        trainer.config().schedule.epochs
    );
    let run_dir = resumed_run_dir(args.run_dir.as_ref(), path);
    Ok((trainer, data, run_dir))
}

fn load(source: &DataSource) -> anyhow::Result<TrainData> {
    eprintln!("loading {} ...", source.root.display());
    let (data, skipped) = source
        .load()
        .with_context(|| format!("loading the dataset {}", source.root.display()))?;
    if !skipped.is_empty() {
        eprintln!(
            "skipped {} files, e.g. {}: {}",
            skipped.len(),
            skipped[0].path.display(),
            skipped[0].reason
        );
    }
    Ok(data)
}

/// Shows a progress bar with the loss, and each epoch's metrics and
/// confusion matrix above it.
impl Observer<Perception> for LossBar {
    fn started(&mut self, progress: &Progress, total_steps: u64) {
        self.start(
            "{spinner} [{bar:30}] step {pos}/{len} {msg} {per_sec} steps, ETA {eta}",
            total_steps,
            progress.counters.step,
        );
    }

    fn step(&mut self, r: &StepResult) {
        let s = self.smooth(r.loss, 0.1);
        self.bar.set_position(r.step);
        self.bar.set_message(format!("loss {s:.3} lr {:.1e}", r.lr));
    }

    fn evaluating(&mut self) {
        self.validating();
    }

    fn metrics(&mut self, m: &EpochMetrics, classes: &[String]) {
        self.say(format!(
            "epoch {:>3} (step {}): train loss {:.3} acc {:.1}% | val loss {:.3} acc {:.1}% (single windows {:.1}%) | {:.1} clips/s",
            m.epoch,
            m.step,
            m.train_loss,
            100.0 * m.train_accuracy,
            m.val_loss,
            100.0 * m.val_accuracy,
            100.0 * m.val_window_accuracy,
            m.clips_per_second
        ));
        if m.confusion.total() > 0 {
            self.say(m.confusion.to_table(classes));
        }
    }
}
