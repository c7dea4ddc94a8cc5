//! `cargo xtask dream`: offline dreaming on a WAV file through the same
//! streaming pipeline the plugin runs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use rand::SeedableRng;
use reverie_engine::dreamer::{Direction, DreamMode, DreamParams, DreamTarget, Dreamer};
use reverie_engine::spectral_dream::SpectralSettings;
use reverie_engine::streaming::{DreamWindows, ModelStream, StreamConfig};
use reverie_engine::wav::{self, Audio};
use reverie_engine::{device, normal_vec};

/// Where dreaming starts from.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Start {
    /// The input file itself.
    Input,
    /// Seeded white noise as long as the input.
    Noise,
    /// Silence as long as the input.
    Silence,
}

/// The dream modes, as the command line names them.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The change lives in the input's own short-time spectrum.
    Spectral,
    /// The paper's raw-gradient dream on the samples.
    Raw,
}

impl From<Mode> for DreamMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Spectral => DreamMode::Spectral,
            Mode::Raw => DreamMode::Raw,
        }
    }
}

/// Arguments of `cargo xtask dream`.
#[derive(clap::Args)]
pub struct DreamArgs {
    /// The WAV file to dream on.
    pub input: PathBuf,
    /// Where to write the result (same rate, channels and sample format).
    #[arg(short, long)]
    pub output: PathBuf,
    /// The dream's settings.
    #[command(flatten)]
    pub dream: DreamOptions,
    /// Dream from the input, or from noise or silence of the input's length.
    #[arg(long, value_enum, default_value_t = Start::Input)]
    pub from: Start,
}

/// The dream's settings, shared by `dream` and `dream-report`.
#[derive(clap::Args, Clone)]
pub struct DreamOptions {
    /// Perception model file (default: the embedded default model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// layer:L (1 = first), channel:L:C, class:NAME, contrast:A or contrast:A:B.
    #[arg(long, default_value = "layer:3")]
    pub target: String,
    /// Dream away from the target (subtractive) instead of toward it.
    #[arg(long)]
    pub away: bool,
    /// How much of the dream to add: output = dry + strength x delta.
    #[arg(long, default_value_t = 1.0)]
    pub strength: f32,
    /// Gradient steps per one-second window.
    #[arg(long, default_value_t = DreamParams::default().iterations)]
    pub iterations: usize,
    /// Largest change per step, relative to each window's peak.
    #[arg(long, default_value_t = DreamParams::default().step)]
    pub step: f32,
    /// Weight of the first layer's L1 (sparsity) cost.
    #[arg(long, default_value_t = DreamParams::default().sparsity)]
    pub sparsity: f32,
    /// Weight of the first layer's continuity cost.
    #[arg(long, default_value_t = DreamParams::default().continuity)]
    pub continuity: f32,
    /// Seed for --from noise and for the spectral mode's random shifts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How the change is made: `spectral` (in the input's own spectrum) or
    /// `raw` (the paper's gradient steps on the samples).
    #[arg(long, value_enum, default_value_t = Mode::Spectral)]
    pub mode: Mode,
    /// Use the GPU when this build has CUDA support and one is present.
    #[arg(long)]
    pub gpu: bool,
}

/// A whole signal dreamed through the streaming pipeline.
pub struct DreamedSignal {
    /// The change, aligned with the input (same length).
    pub delta: Vec<f32>,
    /// Windows dreamed.
    pub windows: u64,
    /// Wall-clock seconds the dreaming took.
    pub seconds: f64,
    /// The stream's latency in samples.
    pub latency: usize,
}

/// Dreams `signal` (mono, at `rate` Hz) through `dreamer` with the plugin's
/// streaming pipeline: feeds it, then `latency` zeros so the change for the
/// last sample comes out too, and keeps what lines up with the input.
pub fn dream_signal(
    dreamer: Dreamer,
    params: DreamParams,
    signal: &[f32],
    rate: u32,
    gate: bool,
    message: &str,
    spectral: SpectralSettings,
) -> anyhow::Result<DreamedSignal> {
    let config = StreamConfig {
        host_rate: rate,
        model_rate: dreamer.model().meta.sample_rate,
        window: dreamer.window(),
        hop: dreamer.window() / 2,
    };
    let mut windows = DreamWindows::new(dreamer, params).with_spectral(spectral);
    windows.gate = gate;
    let mut stream = ModelStream::new(config, windows).context("setting up the stream")?;
    let latency = stream.latency();
    let total = signal.len() + latency;
    let mut feed = signal.to_vec();
    feed.resize(total, 0.0);
    let mut delta = vec![0.0f32; total];
    let bar = crate::progress::styled_bar(total as u64, "{msg} [{bar:40}] {percent}% (eta {eta})");
    bar.set_message(message.to_string());
    let began = Instant::now();
    const BLOCK: usize = 4096;
    for (i, o) in feed.chunks(BLOCK).zip(delta.chunks_mut(BLOCK)) {
        stream.process(i, o)?;
        bar.inc(i.len() as u64);
    }
    bar.finish_and_clear();
    Ok(DreamedSignal {
        delta: delta.split_off(latency),
        windows: stream.windows_done(),
        seconds: began.elapsed().as_secs_f64(),
        latency,
    })
}

/// The dream settings the options ask for.
pub fn params_from(args: &DreamOptions, target: DreamTarget) -> DreamParams {
    DreamParams {
        mode: args.mode.into(),
        target,
        direction: if args.away {
            Direction::Away
        } else {
            Direction::Toward
        },
        iterations: args.iterations,
        step: args.step,
        sparsity: args.sparsity,
        continuity: args.continuity,
        seed: args.seed,
    }
}

/// Checks that the numeric options are usable.
pub fn check_numbers(args: &DreamOptions) -> anyhow::Result<()> {
    for (name, v) in [
        ("strength", args.strength),
        ("step", args.step),
        ("sparsity", args.sparsity),
        ("continuity", args.continuity),
    ] {
        if !v.is_finite() {
            bail!("--{name} must be a finite number");
        }
    }
    Ok(())
}

/// Runs the command.
pub fn run(args: &DreamArgs) -> anyhow::Result<()> {
    let options = &args.dream;
    check_numbers(options)?;
    let audio = wav::read(&args.input)?;
    if audio.is_empty() {
        bail!("{} contains no audio", args.input.display());
    }
    let compute = device::select(options.gpu);
    eprintln!("compute device: {}", compute.description);
    let model = crate::models::perception(options.model.as_deref(), &compute.device)?;
    let target = DreamTarget::parse(&options.target, &model)?;
    let mut params = params_from(options, target);
    if args.from == Start::Silence && params.mode == DreamMode::Spectral {
        // Silence has no spectrum for the change to live in.
        eprintln!(
            "dreaming from silence: the spectral mode needs a spectrum to work in, so the raw mode dreams"
        );
        params.mode = DreamMode::Raw;
    }
    let len = audio.len();
    let rate = audio.spec.sample_rate;
    let start: Vec<f32> = match args.from {
        Start::Input => audio.mono(),
        Start::Noise => normal_vec(
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(options.seed),
            len,
            0.1,
        ),
        Start::Silence => vec![0.0; len],
    };
    let dry: Vec<Vec<f32>> = match args.from {
        Start::Input => audio.channels.clone(),
        _ => vec![start.clone(); audio.channels.len()],
    };
    eprintln!(
        "dreaming {:.1} s at {rate} Hz through \"{}\", target {}, {} mode, {} iterations per window",
        len as f64 / f64::from(rate),
        model.meta.name,
        target.label(&model.meta.class_names),
        params.mode.name(),
        params.iterations
    );
    let dreamer = Dreamer::new(model, compute.device.clone());
    let dreamed = dream_signal(
        dreamer,
        params,
        &start,
        rate,
        args.from != Start::Silence,
        "dreaming",
        SpectralSettings::default(),
    )?;
    let channels: Vec<Vec<f32>> = dry
        .iter()
        .map(|c| {
            c.iter()
                .zip(&dreamed.delta)
                .map(|(d, x)| d + options.strength * x)
                .collect()
        })
        .collect();
    if channels.iter().flatten().any(|v| !v.is_finite()) {
        bail!("dreaming produced non-finite samples; try a smaller --step");
    }
    let peak = channels.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
    wav::write(
        &args.output,
        &Audio {
            channels,
            spec: audio.spec,
        },
    )?;
    eprintln!(
        "wrote {} ({} windows in {:.1} s, {:.1}x real time, latency {} samples, peak {:.2}{})",
        args.output.display(),
        dreamed.windows,
        dreamed.seconds,
        len as f64 / f64::from(rate) / dreamed.seconds.max(1e-9),
        dreamed.latency,
        peak,
        if peak > 1.0 && audio.spec.sample_format == hound::SampleFormat::Int {
            ", clipped to full scale"
        } else {
            ""
        }
    );
    Ok(())
}
