//! `cargo xtask generate`: let a WaveNet dream up audio, sample by sample,
//! with the engine's cached real-time sampler, optionally continuing a
//! recording (`--prime`), and write it as a WAV file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reverie_engine::sampler::{Kernels, Sampler};
use reverie_engine::tone_sampling::ToneAwareSampler;
use reverie_trainer::mono_wav::write_mono_wav;

use crate::progress::styled_bar;

/// Arguments of `cargo xtask generate`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// WaveNet model file (from `cargo xtask train wavenet`); default: the
    /// WaveNet embedded in this build.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Seconds of audio to generate.
    #[arg(long, default_value_t = 4.0)]
    pub seconds: f64,
    /// Audio to continue (any .wav/.flac/.mp3/.ogg): the model is primed with
    /// its last receptive field, resampled to the model rate. Without it the
    /// model starts from silence.
    #[arg(long)]
    pub prime: Option<PathBuf>,
    /// Also write the priming audio before the generated audio.
    #[arg(long, requires = "prime")]
    pub keep_prime: bool,
    /// Sampling temperature: 1 samples the model's distribution, lower is
    /// more conservative, 0 always takes the most likely sample.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Tone-aware sampling (LPCNet's): sharper where the audio so far is
    /// periodic, and never from the distribution's long tail. Models
    /// trained with --tone-aware always sample so.
    #[arg(long)]
    pub tone_aware: bool,
    #[command(flatten)]
    pub prior: TonePriorArgs,
    /// Generate on the fastest kernels this CPU has, as the plugin does
    /// (8-bit weights and activations with AVX-512 VNNI, else bfloat16
    /// weights with AVX-512, else 8-bit with AVX2); default: the model's
    /// exact f32 weights.
    #[arg(long)]
    pub fast: bool,
    /// Seed of the random sampling: the same seed gives the same audio.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output WAV file (mono, 16-bit).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Sample rate of the output in Hz; default: the model's own rate.
    #[arg(long)]
    pub rate: Option<u32>,
}

/// A tone prior to try on a model (`--tone-prior`), shared by the commands
/// that generate and score.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct TonePriorArgs {
    /// Shape the model's distribution with the predictor as a prior on the
    /// next sample, raised to this power (0 to 8; 1: the product of the
    /// two), in place of the model's own tone prior if it has one.
    #[arg(long, value_name = "WEIGHT")]
    pub tone_prior: Option<f32>,
    /// With --tone-prior: the prior's share for its Gaussian on a fully
    /// periodic sound (0 to 0.999; the rest is uniform).
    #[arg(long, default_value_t = 0.9, requires = "tone_prior", value_name = "SHARE")]
    pub tone_trust: f32,
    /// With --tone-prior: the share of the Gaussian mixed into the shaped
    /// distribution on a fully periodic sound (0 to 0.999).
    #[arg(long, default_value_t = 0.0, requires = "tone_prior", value_name = "SHARE")]
    pub tone_mix: f32,
}

impl TonePriorArgs {
    /// The prior asked for (`None` without --tone-prior).
    pub fn config(&self) -> Option<reverie_engine::tone_prior::TonePriorConfig> {
        self.tone_prior
            .map(|weight| reverie_engine::tone_prior::TonePriorConfig {
                weight,
                max_trust: self.tone_trust,
                mix: self.tone_mix,
            })
    }

    /// Puts the prior asked for on `sampler` (nothing without --tone-prior).
    pub fn apply(&self, sampler: &mut Sampler) -> anyhow::Result<()> {
        if let Some(prior) = self.config() {
            sampler
                .set_tone_prior(Some(prior))
                .context("--tone-prior/--tone-trust/--tone-mix")?;
        }
        Ok(())
    }
}

/// Samples generated between progress-bar updates (a tenth of a second at
/// 16 kHz): often enough to move smoothly, rarely enough to cost nothing.
const BLOCK: usize = 1600;

/// Runs `cargo xtask generate`.
pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    check_args(args)?;
    let mut sampler = load_sampler(args.model.as_deref())?;
    args.prior.apply(&mut sampler)?;
    let model_rate = sampler.sample_rate();
    let out_rate = args.rate.unwrap_or(model_rate);

    let prime = match &args.prime {
        Some(path) => Some(load_audio_at(path, model_rate, "priming file")?),
        None => None,
    };
    if let Some(p) = &prime {
        let field = sampler.receptive_field().min(p.len());
        eprintln!(
            "primed with the last {field} samples ({:.0} ms) of the priming audio",
            1000.0 * field as f64 / f64::from(model_rate)
        );
        sampler.prime(p);
    }

    let n = (args.seconds * f64::from(model_rate)).round() as usize;
    if args.fast {
        sampler.use_kernels(Kernels::fastest());
    }
    eprintln!(
        "model options: {}; kernels: {:?}",
        sampler.config().options_text(),
        sampler.kernels()
    );

    let mut tone = if args.tone_aware && !sampler.is_tone_aware() {
        let mut tone = ToneAwareSampler::new(model_rate, sampler.mulaw().classes())?;
        prime.iter().flatten().for_each(|&x| tone.push(x));
        Some(tone)
    } else {
        None
    };
    let audio = generate(&mut sampler, tone.as_mut(), n, args.temperature, args.seed);
    let pitch = reverie_engine::pitch::pitchedness(&audio, model_rate);
    eprintln!(
        "pitch clarity {:.2}, spectral flatness {:.3} over {} frames (notes: clarity about 0.5 or more, \
         flatness near 0; noise: clarity under 0.3, flatness about 0.2 or more)",
        pitch.clarity, pitch.flatness, pitch.frames
    );
    let mut audio = match (&prime, args.keep_prime) {
        (Some(p), true) => [p.as_slice(), &audio].concat(),
        _ => audio,
    };
    if out_rate != model_rate {
        audio = reverie_engine::resample::resample_clip(&audio, model_rate, out_rate)
            .with_context(|| format!("resampling from {model_rate} Hz to {out_rate} Hz"))?;
    }
    audio.iter_mut().for_each(|v| *v = v.clamp(-1.0, 1.0));
    write_wav(args, audio, out_rate)
}

fn check_args(args: &GenerateArgs) -> anyhow::Result<()> {
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 3600.0) {
        bail!(
            "--seconds must be more than 0 and at most 3600 (got {})",
            args.seconds
        );
    }
    if !(args.temperature.is_finite() && args.temperature >= 0.0) {
        bail!("--temperature must be 0 or more (got {})", args.temperature);
    }
    if let Some(rate) = args.rate {
        if !(1000..=384_000).contains(&rate) {
            bail!("--rate must be between 1000 and 384000 Hz (got {rate})");
        }
    }
    Ok(())
}

/// The WaveNet in `model`, or the built-in one; says which on stderr.
pub fn load_sampler(model: Option<&Path>) -> anyhow::Result<Sampler> {
    let sampler = match model {
        Some(path) => {
            if !path.is_file() {
                bail!(
                    "the model file {} does not exist; train one with `cargo xtask train wavenet --data DIR --out {}` or leave out --model to use the built-in WaveNet",
                    path.display(),
                    path.display()
                );
            }
            Sampler::load(path).with_context(|| format!("loading the WaveNet {}", path.display()))?
        }
        None => reverie_engine::defaults::wavenet().context("loading the built-in WaveNet")?,
    };
    let meta = sampler.meta();
    eprintln!(
        "model: {} ({} layers, receptive field {} samples = {:.0} ms at {} Hz, {} steps of training)",
        meta.name,
        sampler.config().num_layers(),
        sampler.receptive_field(),
        1000.0 * sampler.receptive_field() as f64 / f64::from(sampler.sample_rate()),
        sampler.sample_rate(),
        meta.training.steps
    );
    Ok(sampler)
}

/// An audio file (the `what` of the messages), decoded, mixed to mono and
/// resampled to `rate`, the model's rate.
pub fn load_audio_at(path: &Path, rate: u32, what: &str) -> anyhow::Result<Vec<f32>> {
    if !path.is_file() {
        bail!("the {what} {} does not exist", path.display());
    }
    let audio = reverie_trainer::decode_mono(path)?;
    let samples = reverie_engine::resample::resample_clip(&audio.samples, audio.sample_rate, rate)
        .with_context(|| format!("resampling {} to {rate} Hz", path.display()))?;
    if samples.is_empty() {
        bail!("the {what} {} holds no audio", path.display());
    }
    Ok(samples)
}

/// `n` samples in blocks, with a progress bar.
fn generate(
    sampler: &mut Sampler,
    mut tone: Option<&mut ToneAwareSampler>,
    n: usize,
    temperature: f32,
    seed: u64,
) -> Vec<f32> {
    let rate = f64::from(sampler.sample_rate());
    let bar = styled_bar(
        n as u64,
        "{spinner} generating [{bar:40}] {msg} {percent}%, ETA {eta}",
    );
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = vec![0.0f32; n];
    let started = Instant::now();
    for block in out.chunks_mut(BLOCK) {
        match tone.as_deref_mut() {
            Some(tone) => block
                .iter_mut()
                .for_each(|v| *v = tone.sample_next(sampler, temperature, &mut rng)),
            None => sampler.generate_into(block, temperature, &mut rng),
        }
        bar.inc(block.len() as u64);
        let done = bar.position() as f64 / rate;
        bar.set_message(format!(
            "{done:.1} s, {:.1}x real time",
            done / started.elapsed().as_secs_f64().max(1e-9)
        ));
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "generated {:.1} s in {secs:.1} s ({:.1}x real time)",
        n as f64 / rate,
        n as f64 / rate / secs.max(1e-9)
    );
    out
}

fn write_wav(args: &GenerateArgs, audio: Vec<f32>, rate: u32) -> anyhow::Result<()> {
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let seconds = audio.len() as f64 / f64::from(rate);
    write_mono_wav(&args.out, audio, rate)?;
    println!("wrote {} ({seconds:.2} s at {rate} Hz)", args.out.display());
    Ok(())
}
