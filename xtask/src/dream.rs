//! `cargo xtask dream`: offline dreaming on a WAV file through the same
//! streaming pipeline the plugin runs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use reverie_engine::dreamer::{Direction, DreamParams, DreamTarget, Dreamer};
use reverie_engine::streaming::{DeltaStream, DreamWindows, StreamConfig};
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

/// Arguments of `cargo xtask dream`.
#[derive(clap::Args)]
pub struct DreamArgs {
    /// The WAV file to dream on.
    pub input: PathBuf,
    /// Where to write the result (same rate, channels and sample format).
    #[arg(short, long)]
    pub output: PathBuf,
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
    /// Seed for --from noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Dream from the input, or from noise or silence of the input's length.
    #[arg(long, value_enum, default_value_t = Start::Input)]
    pub from: Start,
    /// Use the GPU when this build has CUDA support and one is present.
    #[arg(long)]
    pub gpu: bool,
}

/// Runs the command.
pub fn run(args: &DreamArgs) -> anyhow::Result<()> {
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
    let audio = wav::read(&args.input)?;
    if audio.is_empty() {
        bail!("{} contains no audio", args.input.display());
    }
    let compute = device::select(args.gpu);
    eprintln!("compute device: {}", compute.description);
    let model = crate::models::perception(args.model.as_deref(), &compute.device)?;
    let target = DreamTarget::parse(&args.target, &model)?;
    let params = DreamParams {
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
    };
    let len = audio.len();
    let start: Vec<f32> = match args.from {
        Start::Input => audio.mono(),
        Start::Noise => normal_vec(&mut rand_chacha::ChaCha8Rng::seed_from_u64(args.seed), len, 0.1),
        Start::Silence => vec![0.0; len],
    };
    let dry: Vec<Vec<f32>> = match args.from {
        Start::Input => audio.channels.clone(),
        _ => vec![start.clone(); audio.channels.len()],
    };
    let config = StreamConfig {
        host_rate: audio.spec.sample_rate,
        model_rate: model.meta.sample_rate,
        window: model.config.window,
    };
    let model_name = model.meta.name.clone();
    let windows = DreamWindows {
        dreamer: Dreamer::new(model, compute.device.clone()),
        params,
        gate: args.from != Start::Silence,
        scores: None,
    };
    let mut stream = DeltaStream::new(config, windows).context("setting up the stream")?;
    let latency = stream.latency();
    eprintln!(
        "dreaming {:.1} s at {} Hz through \"{model_name}\", target {}, {} iterations per window",
        len as f64 / f64::from(config.host_rate),
        config.host_rate,
        target.label(&stream.processor().dreamer.model().meta.class_names),
        params.iterations
    );

    // Feed the start signal and then `latency` zeros, so the delta for the
    // last input sample comes out too; keep what lines up with the input.
    let total = len + latency;
    let mut feed = start;
    feed.resize(total, 0.0);
    let mut delta = vec![0.0f32; total];
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {percent}% (eta {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message("dreaming");
    let began = Instant::now();
    const BLOCK: usize = 4096;
    for (i, o) in feed.chunks(BLOCK).zip(delta.chunks_mut(BLOCK)) {
        stream.process(i, o)?;
        bar.inc(i.len() as u64);
    }
    bar.finish_and_clear();
    let seconds = began.elapsed().as_secs_f64();
    let delta = &delta[latency..];
    let channels: Vec<Vec<f32>> = dry
        .iter()
        .map(|c| c.iter().zip(delta).map(|(d, x)| d + args.strength * x).collect())
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
        "wrote {} ({} windows in {seconds:.1} s, {:.1}x real time, latency {latency} samples, peak {:.2}{})",
        args.output.display(),
        stream.windows_done(),
        len as f64 / f64::from(config.host_rate) / seconds.max(1e-9),
        peak,
        if peak > 1.0 && audio.spec.sample_format == hound::SampleFormat::Int {
            ", clipped to full scale"
        } else {
            ""
        }
    );
    Ok(())
}
