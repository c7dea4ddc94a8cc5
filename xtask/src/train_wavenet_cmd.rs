//! `cargo xtask train wavenet`: train the generative WaveNet (seed 004) on a
//! folder of audio and write a model file, keeping metrics, a loss plot,
//! checkpoints and a library of generated samples in a run folder. Ctrl-C
//! finishes the current step, validates, saves a checkpoint and the model
//! so far, and exits; `--resume` continues exactly.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use reverie_engine::model_file::Layout;
use reverie_engine::predictor::PredictorConfig;
use reverie_engine::wavenet::{WavenetConfig, WavenetModel, UNTRAINED_NAME};
use reverie_trainer::run::{
    interrupt_flag, LrSchedule, Observer, RunOptions, RunOutcome, Schedule, CHECKPOINT_FILE,
};
use reverie_trainer::wavenet::{
    adam, find_audio_files, read_wavenet_config, rmsprop, Wavenet, WavenetCheckpoint, WavenetData,
    WavenetDataSource, WavenetMetrics, WavenetProgress, WavenetStep, WavenetTrainConfig, WavenetTrainer,
};

use crate::dataset_cmd::{render_piano_clips, PianoStyleArg};
use crate::progress::LossBar;
use crate::train_run::{
    command_line, create_parent_dir, file_stem_or, fresh_run_dir, note_ignored_on_resume, outcome_word,
    print_written, resumed_run_dir, resumed_source, warn_if_data_changed,
};

/// Optimiser choice on the command line.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum WavenetOptimizerArg {
    /// RMSprop, as seed 004 trained with.
    Rmsprop,
    /// Adam (no weight decay).
    Adam,
}

/// Learning-rate schedule on the command line.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum WavenetScheduleArg {
    /// Constant after warm-up.
    Constant,
    /// Cosine decay to zero at the last epoch.
    Cosine,
}

/// `--predictor`: which prediction inputs a new model has.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PredictorArg {
    /// None: the plain WaveNet.
    None,
    /// The short-term (LPC) prediction.
    ShortTerm,
    /// The short-term prediction and the prediction with the pitch stage.
    Both,
}

impl PredictorArg {
    /// The predictor of a model at `rate` Hz.
    fn config(self, rate: u32) -> Option<PredictorConfig> {
        let default = PredictorConfig::for_rate(rate);
        match self {
            PredictorArg::None => None,
            PredictorArg::ShortTerm => Some(PredictorConfig {
                long_term: false,
                ..default
            }),
            PredictorArg::Both => Some(default),
        }
    }
}

/// Applies one predictor flag: `set` changes the model's predictor (which
/// the flag needs, with its pitch stage when `pitch`), and the result must
/// still make a predictor.
fn predictor_flag(
    net: &mut WavenetConfig,
    flag: &str,
    pitch: bool,
    set: impl FnOnce(&mut PredictorConfig),
) -> anyhow::Result<()> {
    let Some(p) = net.predictor.as_mut().filter(|p| p.long_term || !pitch) else {
        let needed = if pitch { "both" } else { "both (or short-term)" };
        bail!("{flag} shapes the predictor: add --predictor {needed}");
    };
    set(p);
    p.validate().map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

/// The pre-emphasis coefficient `a` in 128ths, where the filters are exact.
fn emphasis_128ths(a: f32) -> anyhow::Result<u8> {
    let k = (a * 128.0).round();
    if !(1.0..=127.0).contains(&k) {
        bail!("--emphasis {a}: the coefficient must be above 0 and below 1 (it is kept in 128ths, 1/128 to 127/128)");
    }
    Ok(k as u8)
}

/// `LOW-HIGH` in Hz, `0 < LOW < HIGH`.
fn parse_pitch_range(text: &str) -> Result<(f32, f32), String> {
    let bad = || format!("{text:?} is not a pitch range: write LOW-HIGH in Hz, e.g. 200-700");
    let (low, high) = text.split_once('-').ok_or_else(bad)?;
    let (low, high): (f32, f32) = (
        low.trim().parse().map_err(|_| bad())?,
        high.trim().parse().map_err(|_| bad())?,
    );
    if !(low > 0.0 && low < high && high.is_finite()) {
        return Err(bad());
    }
    Ok((low, high))
}

/// The pitch lags (shortest, longest) in samples at `rate` Hz for pitches
/// from `low` to `high` Hz.
fn pitch_lags(rate: u32, low: f32, high: f32) -> (usize, usize) {
    let lag = |hz: f32| ((rate as f32 / hz).round() as usize).max(1);
    (lag(high), lag(low))
}

/// Arguments of `cargo xtask train wavenet`.
#[derive(clap::Args, Debug)]
pub struct TrainWavenetArgs {
    /// Folder of audio (*.wav, *.flac, *.mp3, *.ogg, searched recursively).
    /// Optional with --resume, which remembers it.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where to write the trained model file.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Continue from a checkpoint (a run folder's checkpoint.safetensors).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Start a fresh run (new optimiser, step 0) from a trained model's
    /// weights instead of random ones, e.g. the built-in WaveNet, to compare
    /// model options from one start: its architecture unless --config
    /// (the layers must match), the option flags added to its options, the
    /// prediction embeddings it lacks starting at zero (so the run starts
    /// exactly where that model is).
    #[arg(long, value_name = "MODEL", conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,
    /// With --init-from: the tensors the trained model lacks (the
    /// prediction embeddings, starting at zero) learn at this many times
    /// the learning rate, so they grow as fast as the trained weights are
    /// allowed to move [default: 1].
    #[arg(long, value_name = "X", requires = "init_from")]
    pub new_lr_scale: Option<f64>,
    /// First render this many solo piano phrases into --data when it holds
    /// no audio yet (General MIDI SoundFont; deterministic for --seed).
    #[arg(long, value_name = "N")]
    pub render_piano: Option<usize>,
    /// Length of each rendered piano phrase in seconds.
    #[arg(long, default_value_t = 4.0)]
    pub piano_seconds: f32,
    /// What the rendered piano plays.
    #[arg(long, value_enum, default_value_t = PianoStyleArg::Phrases)]
    pub piano_style: PianoStyleArg,
    /// Architecture as a JSON file (the `config` object of a WaveNet model
    /// file; receptive_field may be left out). Default: 1..512 twice, 32
    /// residual and dilation channels, 128 skip channels, 256 classes.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Prediction inputs (LPCNet's p_t, from a backward-adaptive predictor
    /// as in ITU G.728; see engine/src/prediction_inputs.rs): the
    /// predictor's next-sample prediction embedded beside each input, from
    /// its short-term stage, or from both stages (short-term and pitch).
    /// Default for this rate: order 16, 30 ms windows refitted every
    /// 2.5 ms, pitch 2-20 ms. Overrides the --config file's `predictor`.
    #[arg(long, value_enum)]
    pub predictor: Option<PredictorArg>,
    /// Bandwidth expansion of the predictor's short-term stage (G.728's
    /// 253/256 = 0.9883): coefficient k scaled by GAMMA^k, so a predictor
    /// refitted to generated audio cannot sharpen a resonance into a
    /// whistle. Above 0, at most 1 [default: 1, none]. Needs --predictor.
    #[arg(long, value_name = "GAMMA")]
    pub bandwidth_expansion: Option<f32>,
    /// The pitches the predictor's pitch stage searches, in Hz, e.g.
    /// 200-700 for melodies from G3 to F5 [default: 50-500]. Needs
    /// --predictor both.
    #[arg(long, value_name = "LOW-HIGH", value_parser = parse_pitch_range)]
    pub pitch_range: Option<(f32, f32)>,
    /// Loss filter of the predictor's pitch stage (a Karplus-Strong string's):
    /// the period back is taken through the taps (A, 1 - 2A, A), so each
    /// period repeats the highs weaker. 0 to 0.25 [default: 0, none].
    /// Needs --predictor both.
    #[arg(long, value_name = "A")]
    pub pitch_lowpass: Option<f32>,
    /// Model the pre-emphasised signal (LPCNet's 1 - 0.85 z^-1 before
    /// µ-law, de-emphasis after: the quantisation noise moves under the
    /// low harmonics).
    #[arg(long)]
    pub pre_emphasis: bool,
    /// The pre-emphasis coefficient, stored in 128ths: LPCNet's 0.85 lifts
    /// the noise a model samples by 16.5 dB toward 0 Hz, 0.5 by 6 dB.
    /// Above 0, below 1 [default: 0.85]. Needs --pre-emphasis.
    #[arg(long, value_name = "A")]
    pub emphasis: Option<f32>,
    /// Output the excitation's classes (the signal minus the both-stage
    /// prediction, LPCNet's residual): needs --predictor.
    #[arg(long)]
    pub residual_target: bool,
    /// Generate the tone-aware way (LPCNet's sharpening and floor, scaled
    /// by the pitch predictor's gain): stored with the model, changes
    /// nothing in training.
    #[arg(long)]
    pub tone_aware: bool,
    /// Generate hearing its own output through a DC blocker (about 13 Hz
    /// at 16 kHz), so no offset builds up in the loop: stored with the
    /// model; recordings are heard as they are, so training and scoring do
    /// not change, but free-running rows (--free-run) generate with it.
    #[arg(long)]
    pub dc_block: bool,
    /// Noise on the training inputs against exposure bias (FFTNet): the
    /// standard deviation in µ-law classes of a rounded normal draw added
    /// to each input class, e.g. 0.5 [default: 0, none].
    #[arg(long, value_name = "CLASSES")]
    pub input_noise: Option<f32>,
    /// Train a residual-target or pre-emphasis model on the audio's own
    /// µ-law cells (the measure `cargo xtask nll` reports) instead of the
    /// cross-entropy of its output class; validation reports the same. With
    /// --resume, switches it on from there.
    #[arg(long)]
    pub signal_loss: bool,
    /// End this many rows of every batch with a stretch of the model's own
    /// output (primed with the recording, drawn as generation draws),
    /// scored against what the recording played next: training on its own
    /// output, against the runaway of teacher forcing alone. Needs
    /// --free-run-span [default: 0].
    #[arg(long, value_name = "ROWS")]
    pub free_run: Option<usize>,
    /// The longest such stretch: each free-running row draws its own from 1
    /// to this many samples, e.g. 800 (50 ms at 16 kHz).
    #[arg(long, value_name = "SAMPLES")]
    pub free_run_span: Option<usize>,
    /// Score the free-running stretch by its power (the mean square the
    /// model expects next against the recording's, in log terms) with this
    /// weight per row, instead of sample by sample [default: 0: sample by
    /// sample].
    #[arg(long, value_name = "WEIGHT")]
    pub free_run_power: Option<f32>,
    /// Passes over the training audio [default: 100]. With --resume, the
    /// new total.
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Chunks per step [default: 4].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Scored samples per chunk; each chunk also reads the receptive field
    /// before it [default: 8000].
    #[arg(long)]
    pub chunk: Option<usize>,
    /// Optimiser [default: rmsprop].
    #[arg(long, value_enum)]
    pub optimizer: Option<WavenetOptimizerArg>,
    /// Learning rate [default: 0.001]. With --resume, a new base rate from
    /// the next step on (e.g. lower, once the loss has levelled off).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule [default: constant].
    #[arg(long, value_enum)]
    pub schedule: Option<WavenetScheduleArg>,
    /// Steps of linear learning-rate warm-up [default: 200].
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Clip the global gradient norm to this (0: no clipping) [default: 1].
    #[arg(long)]
    pub clip: Option<f64>,
    /// Seed of the weights, the file order and the generated samples
    /// [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Sample rate the audio is resampled to and the model runs at.
    #[arg(long, default_value_t = 16_000)]
    pub rate: u32,
    /// Fraction of the files held out for validation.
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f32,
    /// Peak each file is normalised to (0: keep the levels).
    #[arg(long, default_value_t = 0.95)]
    pub normalize_peak: f32,
    /// Run folder for metrics.csv, loss.png, samples/ and
    /// checkpoint.safetensors [default: runs/<name of --out>, or the
    /// checkpoint's folder with --resume].
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Save a checkpoint (and the model so far, to --out) every N steps.
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: u64,
    /// Validate and add a row to metrics.csv every N steps (0: only at the
    /// end) [default: 500].
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Validate on at most this many chunks of the held-out files.
    #[arg(long)]
    pub val_chunks: Option<usize>,
    /// Write a generated sample (WAV + JSON) into the run folder's samples/
    /// every N steps (0: never) [default: 1000].
    #[arg(long)]
    pub sample_every: Option<u64>,
    /// Seconds of each generated sample [default: 2].
    #[arg(long)]
    pub sample_seconds: Option<f32>,
    /// Sampling temperature of the generated samples [default: 1].
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Stop after this many steps in all, as if interrupted (checkpoint and
    /// model are saved); e.g. to measure throughput.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Name stored in the model file [default: from --out].
    #[arg(long)]
    pub name: Option<String>,
    /// Train on the GPU when this build has CUDA support and one is present.
    #[arg(long)]
    pub gpu: bool,
}

/// Runs `cargo xtask train wavenet`.
pub fn run(args: &TrainWavenetArgs) -> anyhow::Result<()> {
    let compute = reverie_engine::device::select(args.gpu);
    let (mut trainer, data, run_dir) = match &args.resume {
        Some(path) => resume(args, path, &compute.device)?,
        None => start(args, &compute.device)?,
    };
    apply_schedule_flags(args, &mut trainer);
    describe(&trainer, &data, &compute.description, &run_dir);

    // A resumed run keeps the name its first run gave (stored in the
    // checkpoint) unless --name renames it.
    let resumed_name = match (&args.resume, trainer.model().meta.name.as_str()) {
        (Some(_), name) if !name.is_empty() && name != UNTRAINED_NAME => Some(name.to_string()),
        _ => None,
    };
    let name = args
        .name
        .clone()
        .or(resumed_name)
        .unwrap_or_else(|| file_stem_or(&args.out, "wavenet"));
    trainer.set_name(name);
    create_parent_dir(&args.out)?;
    let opts = RunOptions {
        dir: Some(run_dir.clone()),
        checkpoint_every: args.checkpoint_every,
        stop: Some(interrupt_flag()?),
        max_steps: args.max_steps,
        model_out: Some(args.out.clone()),
        description: description(&trainer, &data),
    };
    let mut bar = Bar::new();
    let outcome = trainer.run(&data, &opts, &mut bar)?;
    bar.loss.bar.finish_and_clear();

    // The run has already written the model to --out (atomically, with the
    // final checkpoint); this copy is only for the report.
    let model = trainer.finish(opts.description)?;
    report(&trainer, outcome, &model, args, &run_dir);
    Ok(())
}

/// A fresh run: render piano if asked, load the data, build the model.
fn start(
    args: &TrainWavenetArgs,
    device: &candle_core::Device,
) -> anyhow::Result<(WavenetTrainer, WavenetData, PathBuf)> {
    let Some(root) = &args.data else {
        bail!("--data DIR is needed (a folder of .wav/.flac/.mp3/.ogg files); add --render-piano N to render solo piano into it first");
    };
    if let Some(clips) = args.render_piano {
        render_if_empty(root, clips, args)?;
    }
    let source = WavenetDataSource {
        val_fraction: args.val_fraction,
        normalize_peak: args.normalize_peak,
        ..WavenetDataSource::new(
            std::fs::canonicalize(root).unwrap_or_else(|_| root.clone()),
            args.rate,
        )
    };
    let data = load(&source)?;
    let from = match &args.init_from {
        Some(path) => Some(
            WavenetModel::load(path, device)
                .with_context(|| format!("--init-from {}: not a usable WaveNet model", path.display()))?,
        ),
        None => None,
    };
    let mut net = match (&args.config, &from) {
        (Some(path), _) => read_wavenet_config(path)?,
        (None, Some(from)) => from.config.clone(),
        (None, None) => WavenetConfig::default(),
    };
    if let Some(p) = args.predictor {
        net.predictor = p.config(args.rate);
    }
    if let Some(gamma) = args.bandwidth_expansion {
        predictor_flag(&mut net, &format!("--bandwidth-expansion {gamma}"), false, |p| {
            p.expansion = gamma
        })?;
    }
    if let Some((low, high)) = args.pitch_range {
        predictor_flag(&mut net, &format!("--pitch-range {low}-{high}"), true, |p| {
            (p.min_lag, p.max_lag) = pitch_lags(args.rate, low, high)
        })?;
    }
    if let Some(a) = args.pitch_lowpass {
        predictor_flag(&mut net, &format!("--pitch-lowpass {a}"), true, |p| {
            p.pitch_lowpass = a
        })?;
    }
    net.pre_emphasis |= args.pre_emphasis;
    if let Some(a) = args.emphasis {
        if !net.pre_emphasis {
            bail!("--emphasis {a} sets the pre-emphasis coefficient: add --pre-emphasis");
        }
        net.emphasis_128ths = emphasis_128ths(a)?;
    }
    net.residual_target |= args.residual_target;
    net.tone_aware |= args.tone_aware;
    net.dc_block |= args.dc_block;
    if net.residual_target && net.predictor.is_none() {
        bail!("--residual-target models the signal minus the predictor's prediction: add --predictor both (or short-term)");
    }
    let mut config = train_config(args);
    let model = match &from {
        Some(from) if from.meta.sample_rate != args.rate => bail!(
            "--init-from's model runs at {} Hz: add --rate {}",
            from.meta.sample_rate,
            from.meta.sample_rate
        ),
        Some(from) => WavenetModel::warm_start(from, net)
            .context("--init-from: its layers differ from this run's architecture (leave --config out to take its own)")?,
        None => WavenetModel::init(net, args.rate, config.seed, device)?,
    };
    if let (Some(from), Some(scale)) = (&from, args.new_lr_scale) {
        let trained: Vec<String> = from.net.named().into_iter().map(|(name, ..)| name).collect();
        for (name, ..) in model.net.named() {
            if !trained.contains(&name) {
                config.optimizer.lr_scales.insert(name, scale);
            }
        }
        let added: Vec<&str> = config.optimizer.lr_scales.keys().map(String::as_str).collect();
        eprintln!("learning at {scale} times the rate: {}", added.join(", "));
    }
    let mut trainer = WavenetTrainer::new(model, config, &data)?;
    trainer.set_source(source);
    let run_dir = fresh_run_dir(args.run_dir.as_ref(), &args.out, "wavenet");
    Ok((trainer, data, run_dir))
}

/// The training settings from the flags and the defaults.
fn train_config(args: &TrainWavenetArgs) -> WavenetTrainConfig {
    let d = WavenetTrainConfig::default();
    WavenetTrainConfig {
        schedule: Schedule {
            epochs: args.epochs.unwrap_or(d.schedule.epochs),
            lr: args.lr.unwrap_or(d.schedule.lr),
            shape: match args.schedule {
                Some(WavenetScheduleArg::Cosine) => LrSchedule::Cosine,
                Some(WavenetScheduleArg::Constant) => LrSchedule::Constant,
                None => d.schedule.shape,
            },
            warmup_steps: args.warmup.unwrap_or(d.schedule.warmup_steps),
        },
        batch_size: args.batch.unwrap_or(d.batch_size),
        chunk_len: args.chunk.unwrap_or(d.chunk_len),
        optimizer: match args.optimizer {
            Some(WavenetOptimizerArg::Adam) => adam(),
            Some(WavenetOptimizerArg::Rmsprop) | None => rmsprop(),
        },
        clip_norm: args.clip.unwrap_or(d.clip_norm),
        seed: args.seed.unwrap_or(d.seed),
        val_chunks: args.val_chunks.unwrap_or(d.val_chunks),
        input_noise: args.input_noise.unwrap_or(d.input_noise),
        signal_loss: args.signal_loss,
        free_run_rows: args.free_run.unwrap_or(d.free_run_rows),
        free_run_span: args.free_run_span.unwrap_or(d.free_run_span),
        free_run_power: args.free_run_power.unwrap_or(d.free_run_power),
        ..d
    }
}

/// The flags a resumed run may change too (they do not change the weights).
fn apply_schedule_flags(args: &TrainWavenetArgs, trainer: &mut WavenetTrainer) {
    // A fresh run's config already holds the defaults, a resumed one the
    // checkpoint's values: either way a flag overrides.
    trainer.set_schedule(|c| {
        c.schedule.epochs = args.epochs.unwrap_or(c.schedule.epochs);
        c.eval_every = args.eval_every.unwrap_or(c.eval_every);
        c.sample_every = args.sample_every.unwrap_or(c.sample_every);
        c.sample_seconds = args.sample_seconds.unwrap_or(c.sample_seconds);
        c.sample_temperature = args.temperature.unwrap_or(c.sample_temperature);
    });
}

/// A resumed run: the checkpoint's settings, its data unless --data
/// overrides the folder.
fn resume(
    args: &TrainWavenetArgs,
    path: &Path,
    device: &candle_core::Device,
) -> anyhow::Result<(WavenetTrainer, WavenetData, PathBuf)> {
    if !path.is_file() {
        bail!(
            "the checkpoint {} does not exist; pass the checkpoint.safetensors of a run folder",
            path.display()
        );
    }
    let mut checkpoint = WavenetCheckpoint::load(path, device)?;
    note_ignored_on_resume(&[
        ("--batch", args.batch.is_some()),
        ("--chunk", args.chunk.is_some()),
        ("--optimizer", args.optimizer.is_some()),
        ("--schedule", args.schedule.is_some()),
        ("--warmup", args.warmup.is_some()),
        ("--clip", args.clip.is_some()),
        ("--seed", args.seed.is_some()),
        ("--config", args.config.is_some()),
        ("--predictor", args.predictor.is_some()),
        ("--bandwidth-expansion", args.bandwidth_expansion.is_some()),
        ("--pitch-range", args.pitch_range.is_some()),
        ("--pitch-lowpass", args.pitch_lowpass.is_some()),
        ("--pre-emphasis", args.pre_emphasis),
        ("--emphasis", args.emphasis.is_some()),
        ("--residual-target", args.residual_target),
        ("--tone-aware", args.tone_aware),
        ("--dc-block", args.dc_block),
        ("--input-noise", args.input_noise.is_some()),
        ("--free-run", args.free_run.is_some()),
        ("--free-run-span", args.free_run_span.is_some()),
        ("--free-run-power", args.free_run_power.is_some()),
        ("--val-chunks", args.val_chunks.is_some()),
        ("--render-piano", args.render_piano.is_some()),
    ]);
    let rate = checkpoint.model.meta.sample_rate;
    let source = resumed_source(
        checkpoint.progress.source.as_ref(),
        args.data.as_ref(),
        |root| WavenetDataSource::new(root, rate),
        |s| &mut s.root,
    )?;
    let data = load(&source)?;
    // Before the trainer is built: it codes the data for the loss it runs.
    let switch_on = args.signal_loss && !checkpoint.config.signal_loss;
    checkpoint.config.signal_loss |= args.signal_loss;
    let trainer = WavenetTrainer::from_checkpoint(checkpoint, &data);
    let mut trainer = if switch_on {
        trainer.context("--signal-loss")?
    } else {
        trainer?
    };
    if switch_on {
        eprintln!(
            "note: --signal-loss scores the audio's own µ-law cells from here on; validation rows from here on are that measure"
        );
    }
    if let Some(lr) = args.lr {
        trainer.set_learning_rate(lr)?;
        eprintln!(
            "note: --lr {lr} replaces the checkpoint's learning rate from here on (the optimiser keeps its state)"
        );
    }
    warn_if_data_changed(trainer.data_changed(&data), "audio", &source.root);
    trainer.set_source(source);
    eprintln!(
        "resuming from {} at step {} (epoch {})",
        path.display(),
        trainer.progress().counters.step,
        trainer.progress().counters.epoch
    );
    let run_dir = resumed_run_dir(args.run_dir.as_ref(), path);
    Ok((trainer, data, run_dir))
}

/// Renders solo piano into `root` unless it already holds audio.
fn render_if_empty(root: &Path, clips: usize, args: &TrainWavenetArgs) -> anyhow::Result<()> {
    if root.is_dir() && !find_audio_files(root)?.is_empty() {
        eprintln!(
            "note: {} already holds audio; not rendering piano (empty it to render again)",
            root.display()
        );
        return Ok(());
    }
    render_piano_clips(
        root,
        args.piano_style,
        clips,
        args.piano_seconds,
        args.rate,
        args.seed.unwrap_or(0),
    )
}

fn load(source: &WavenetDataSource) -> anyhow::Result<WavenetData> {
    eprintln!("loading {} ...", source.root.display());
    let started = Instant::now();
    let data = source
        .load()
        .with_context(|| format!("loading the audio in {}", source.root.display()))?;
    if let Some(s) = data.skipped.first() {
        eprintln!(
            "skipped {} unreadable files, e.g. {}: {}",
            data.skipped.len(),
            s.path.display(),
            s.reason
        );
    }
    let (train, val) = data.seconds();
    eprintln!(
        "data: {} training files ({train:.0} s), {} validation files ({val:.0} s) at {} Hz, loaded in {:.1} s",
        data.train.len(),
        data.val.len(),
        data.sample_rate,
        started.elapsed().as_secs_f64()
    );
    if data.val.is_empty() {
        eprintln!("warning: no validation files (it takes 2+ files and --val-fraction > 0); validation NLL cannot be measured and samples are primed from training audio");
    }
    Ok(data)
}

fn describe(trainer: &WavenetTrainer, data: &WavenetData, device: &str, run_dir: &Path) {
    let m = trainer.model();
    let c = trainer.config();
    let params: usize = m.net.named().iter().map(|(_, _, t)| t.elem_count()).sum();
    eprintln!(
        "model: {} layers (dilations up to {}), {}/{}/{} residual/dilation/skip channels, {} classes, receptive field {} samples ({:.0} ms), {params} parameters",
        m.config.num_layers(),
        m.config.dilations.iter().max().copied().unwrap_or(0),
        m.config.residual_channels,
        m.config.dilation_channels,
        m.config.skip_channels,
        m.config.classes,
        m.receptive_field(),
        1000.0 * m.receptive_field() as f64 / f64::from(data.sample_rate)
    );
    eprintln!(
        "training on {device}: {} epochs of {} steps, batch {} x {} samples, {} lr {} ({:?}, warm-up {}), clip {}, seed {}; run folder {}",
        c.schedule.epochs,
        trainer.steps_per_epoch(),
        c.batch_size,
        c.chunk_len,
        c.optimizer.kind,
        c.schedule.lr,
        c.schedule.shape,
        c.schedule.warmup_steps,
        c.clip_norm,
        c.seed,
        run_dir.display()
    );
}

fn description(trainer: &WavenetTrainer, data: &WavenetData) -> String {
    let c = trainer.config();
    let root = trainer
        .progress()
        .source
        .as_ref()
        .map_or_else(|| "?".into(), |s| s.root.display().to_string());
    let (train, val) = data.seconds();
    format!(
        "{} on {root} ({train:.0} s training / {val:.0} s validation audio): {} lr {}, batch {} x {}, clip {}, seed {}",
        command_line(),
        c.optimizer.kind,
        c.schedule.lr,
        c.batch_size,
        c.chunk_len,
        c.clip_norm,
        c.seed
    )
}

fn report(
    trainer: &WavenetTrainer,
    outcome: RunOutcome,
    model: &WavenetModel,
    args: &TrainWavenetArgs,
    run_dir: &Path,
) {
    let m = &model.meta.training.metrics;
    let nll = m.get("val_nll").map_or_else(
        || "n/a".into(),
        |v| format!("{v:.4} nats ({:.4} bits) per sample", v / std::f64::consts::LN_2),
    );
    println!(
        "{} after {} steps in {:.0} s: validation NLL {nll}; throughput {:.0} samples/s",
        outcome_word(outcome),
        model.meta.training.steps,
        model.meta.training.seconds,
        trainer.samples_per_second()
    );
    print_written(outcome, &args.out, run_dir, "wavenet", CHECKPOINT_FILE);
}

/// Steps between progress lines when there is no terminal to draw a bar on
/// (e.g. a background run writing to a log file).
const LOG_EVERY: u64 = 20;

/// A progress bar with the smoothed loss, and validation results above it;
/// without a terminal, a progress line every [`LOG_EVERY`] steps instead.
struct Bar {
    loss: LossBar,
    /// Since the last progress line: when it was printed, samples trained.
    since_line: (Instant, usize),
}

impl Bar {
    fn new() -> Self {
        Self {
            loss: LossBar::new(),
            since_line: (Instant::now(), 0),
        }
    }
}

impl Observer<Wavenet> for Bar {
    fn started(&mut self, progress: &WavenetProgress, total_steps: u64) {
        self.loss.start(
            "{spinner} [{bar:30}] step {pos}/{len} {msg}, ETA {eta}",
            total_steps,
            progress.counters.step,
        );
        self.since_line = (Instant::now(), 0);
    }

    fn step(&mut self, r: &WavenetStep) {
        let s = self.loss.smooth(r.loss, 0.05);
        let bar = &self.loss.bar;
        bar.set_position(r.step);
        let status = format!("loss {s:.3} nats, |g| {:.2}, lr {:.1e}", r.grad_norm, r.lr);
        self.since_line.1 += r.samples;
        if bar.is_hidden() && r.step.is_multiple_of(LOG_EVERY) {
            let secs = self.since_line.0.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "step {} / {}: {status}, {:.0} samples/s",
                r.step,
                bar.length().unwrap_or(0),
                self.since_line.1 as f64 / secs
            );
            self.since_line = (Instant::now(), 0);
        }
        bar.set_message(status);
    }

    fn evaluating(&mut self) {
        self.loss.validating();
    }

    fn metrics(&mut self, m: &WavenetMetrics, _classes: &[String]) {
        self.loss.say(format!(
            "step {:>7} (epoch {:.2}): train {:.4} | validation {:.4} nats ({:.3} bits) per sample | |g| {:.3} | {:.0} samples/s",
            m.step,
            m.epoch,
            m.train_nll,
            m.val_nll,
            m.val_nll / std::f64::consts::LN_2,
            m.grad_norm,
            m.samples_per_second
        ));
    }

    fn sample(&mut self, wav: &Path) {
        self.loss.say(format!("generated {}", wav.display()));
    }

    fn checkpoint(&mut self, path: &Path) {
        if self.loss.bar.is_hidden() {
            eprintln!("checkpoint {}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pitch_range_becomes_the_lags_of_its_periods() {
        assert_eq!(parse_pitch_range("200-700"), Ok((200.0, 700.0)));
        assert_eq!(parse_pitch_range(" 62.5 - 500 "), Ok((62.5, 500.0)));
        // 700 Hz: 22.9 samples at 16 kHz; 200 Hz: 80.
        assert_eq!(pitch_lags(16_000, 200.0, 700.0), (23, 80));
        // The default predictor's range gives its default lags back.
        let default = PredictorConfig::for_rate(16_000);
        assert_eq!(
            pitch_lags(16_000, 50.0, 500.0),
            (default.min_lag, default.max_lag)
        );
        for bad in ["700-200", "0-500", "200", "a-b", "200-inf", "-5-100"] {
            let err = parse_pitch_range(bad).unwrap_err();
            assert!(err.contains("LOW-HIGH"), "{bad}: {err}");
        }
    }

    #[test]
    fn an_emphasis_coefficient_is_kept_in_128ths() {
        assert_eq!(emphasis_128ths(0.85).unwrap(), 109);
        assert_eq!(emphasis_128ths(0.5).unwrap(), 64);
        assert_eq!(emphasis_128ths(0.992).unwrap(), 127);
        for bad in [0.0, 0.001, 1.0, 1.5, -0.3, f32::NAN] {
            let err = emphasis_128ths(bad).unwrap_err().to_string();
            assert!(
                err.contains("--emphasis") && err.contains("below 1"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_predictor_flag_needs_its_stage_and_a_valid_value() {
        let mut plain = WavenetConfig::default();
        let err = predictor_flag(&mut plain, "--pitch-lowpass 0.03", true, |p| {
            p.pitch_lowpass = 0.03
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--pitch-lowpass 0.03") && err.contains("--predictor both"),
            "{err}"
        );
        let mut short = WavenetConfig {
            predictor: PredictorArg::ShortTerm.config(16_000),
            ..WavenetConfig::default()
        };
        assert!(predictor_flag(&mut short, "--pitch-range", true, |_| ()).is_err());
        predictor_flag(&mut short, "--bandwidth-expansion 0.99", false, |p| {
            p.expansion = 0.99
        })
        .unwrap();
        assert_eq!(short.predictor.map(|p| p.expansion), Some(0.99));
        let err = predictor_flag(&mut short, "--bandwidth-expansion 2", false, |p| {
            p.expansion = 2.0
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--bandwidth-expansion 2") && err.contains("at most 1"),
            "{err}"
        );
    }
}
