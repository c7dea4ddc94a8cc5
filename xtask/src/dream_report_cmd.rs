//! `cargo xtask dream-report`: what a dream does to audio, in the measures
//! of `engine::dream_measures`, with the target's score before and after
//! and the dreaming speed; optionally every mode side by side and checked
//! against the targets the spectral mode is held to.

use std::path::PathBuf;

use anyhow::{bail, Context};
use reverie_engine::device;
use reverie_engine::dream_measures::{measure, DeltaMeasures};
use reverie_engine::dreamer::{DreamMode, DreamTarget, Dreamer};
use reverie_engine::resample::resample_clip;
use reverie_engine::spectral_dream::{Sharing, SpectralSettings, Weighting};
use reverie_engine::wav::{self, Audio};

use crate::dream::{dream_signal, params_from, DreamOptions};

/// Arguments of `cargo xtask dream-report`.
#[derive(clap::Args)]
pub struct DreamReportArgs {
    /// WAV files to dream on (mixed to mono).
    pub inputs: Vec<PathBuf>,
    /// Also write the test suite (arpeggios, a piano melody, a drum loop, a
    /// sustained chord, wind noise) into this folder and measure it.
    #[arg(long)]
    pub suite: Option<PathBuf>,
    /// Only write the test suite into this folder (to measure some of it).
    #[arg(long, conflicts_with = "suite")]
    pub write_suite: Option<PathBuf>,
    /// Comma-separated targets to measure (default: --target).
    #[arg(long, value_delimiter = ',')]
    pub targets: Vec<String>,
    /// Measure every mode, and check the spectral mode against the targets
    /// (flatness, spectrum, pumping, copy, level, score against raw).
    #[arg(long)]
    pub compare: bool,
    /// Write each dreamed file and its delta into this folder (for
    /// `cargo xtask spectrogram`).
    #[arg(long)]
    pub write: Option<PathBuf>,
    /// The dream's settings.
    #[command(flatten)]
    pub dream: DreamOptions,
    /// Spectral mode's shape, for comparing variants (default: the built-in one).
    #[command(flatten)]
    pub spectral: SpectralArgs,
}

/// The spectral mode's shape (see `engine::spectral_dream`).
#[derive(clap::Args)]
pub struct SpectralArgs {
    /// Frame length at the model rate (samples, a multiple of 4).
    #[arg(long)]
    pub frame: Option<usize>,
    /// Weighting of the gradient by the input's spectrum: a power p (|X|^p), or `gain` (a real gain).
    #[arg(long)]
    pub weighting: Option<String>,
    /// Normalise steps per window instead of per frame.
    #[arg(long)]
    pub per_window: bool,
    /// Frames either side that share a frame's step size.
    #[arg(long)]
    pub spread: Option<usize>,
    /// A step changes the spectrum by up to gain x step of the strongest bin.
    #[arg(long)]
    pub gain: Option<f32>,
    /// Largest random shift per step, in first-layer strides.
    #[arg(long)]
    pub jitter: Option<f32>,
    /// How windows share a frame's changes: even, central or tapered.
    #[arg(long)]
    pub sharing: Option<String>,
}

impl SpectralArgs {
    fn settings(&self) -> anyhow::Result<SpectralSettings> {
        let d = SpectralSettings::default();
        let weighting = match self.weighting.as_deref() {
            None => d.weighting,
            Some("gain") => Weighting::RealGain,
            Some(p) => Weighting::Power(
                p.parse()
                    .map_err(|_| anyhow::anyhow!("--weighting: a power or `gain`, not {p}"))?,
            ),
        };
        Ok(SpectralSettings {
            frame: self.frame.unwrap_or(d.frame),
            weighting,
            per_frame: !self.per_window,
            spread: self.spread.unwrap_or(d.spread),
            gain: self.gain.unwrap_or(d.gain),
            jitter: self.jitter.unwrap_or(d.jitter),
            sharing: match self.sharing.as_deref() {
                None => d.sharing,
                Some("even") => Sharing::Even,
                Some("central") => Sharing::Central,
                Some("tapered") => Sharing::Tapered,
                Some(o) => bail!("--sharing: even, central or tapered, not {o}"),
            },
        })
    }
}

/// One measured dream.
struct Row {
    file: String,
    target: String,
    mode: DreamMode,
    measures: DeltaMeasures,
    before: f32,
    after: f32,
    speed: f64,
}

impl Row {
    fn raise(&self) -> f32 {
        self.after - self.before
    }
}

/// What the spectral mode must do, against the raw dream of the same input
/// and target at the same settings. Returns the targets it misses.
fn misses(spectral: &Row, raw: &Row) -> Vec<String> {
    let m = &spectral.measures;
    let mut missed = Vec::new();
    if m.delta_flatness > m.input_flatness + 0.05 {
        missed.push(format!(
            "flatness {:.3} > input {:.3} + 0.05",
            m.delta_flatness, m.input_flatness
        ));
    }
    if m.in_input_spectrum < 0.8 {
        missed.push(format!(
            "{:.0}% in the input's spectrum < 80%",
            100.0 * m.in_input_spectrum
        ));
    }
    if m.hop_modulation > 0.05 {
        missed.push(format!("hop modulation {:.1}% > 5%", 100.0 * m.hop_modulation));
    }
    if m.correlation.abs() > 0.9 {
        missed.push(format!("|correlation| {:.2} > 0.9", m.correlation));
    }
    if m.level_db < -35.0 {
        missed.push(format!("level {:.1} dB < -35 dB", m.level_db));
    }
    if spectral.raise() < 0.8 * raw.raise() {
        missed.push(format!(
            "score raised {:.3}, < 80% of raw's {:.3}",
            spectral.raise(),
            raw.raise()
        ));
    }
    missed
}

/// Runs the command.
pub fn run(args: &DreamReportArgs) -> anyhow::Result<()> {
    crate::dream::check_numbers(&args.dream)?;
    let mut files: Vec<(String, Vec<f32>, u32)> = Vec::new();
    if let Some(dir) = args.suite.as_ref().or(args.write_suite.as_ref()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, signal) in crate::suite::suite() {
            let path = dir.join(format!("{name}.wav"));
            wav::write(&path, &mono_audio(signal.clone(), crate::suite::RATE))?;
            files.push((name.to_string(), signal, crate::suite::RATE));
        }
        eprintln!("wrote the suite into {}", dir.display());
        if args.write_suite.is_some() {
            return Ok(());
        }
    }
    for path in &args.inputs {
        let audio = wav::read(path)?;
        if audio.is_empty() {
            bail!("{} contains no audio", path.display());
        }
        let name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        files.push((name, audio.mono(), audio.spec.sample_rate));
    }
    if files.is_empty() {
        bail!("nothing to measure: give WAV files, or --suite DIR to write and measure the test suite");
    }
    if let Some(dir) = &args.write {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let spectral = args.spectral.settings()?;
    let compute = device::select(args.dream.gpu);
    let model = crate::models::perception(args.dream.model.as_deref(), &compute.device)?;
    let hop_seconds = model.config.window as f32 / 2.0 / model.meta.sample_rate as f32;
    let targets = if args.targets.is_empty() {
        vec![args.dream.target.clone()]
    } else {
        args.targets.clone()
    };
    let targets: Vec<(String, DreamTarget)> = targets
        .iter()
        .map(|t| DreamTarget::parse(t, &model).map(|p| (t.clone(), p)))
        .collect::<Result<_, _>>()?;
    let modes: Vec<DreamMode> = if args.compare {
        DreamMode::ALL.to_vec()
    } else {
        vec![args.dream.mode.into()]
    };
    let mut rows = Vec::new();
    for (file, signal, rate) in &files {
        for (target_text, target) in &targets {
            for &mode in &modes {
                let params = reverie_engine::dreamer::DreamParams {
                    mode,
                    ..params_from(&args.dream, *target)
                };
                let dreamer = Dreamer::new(model.clone(), compute.device.clone());
                let message = format!("{file}, {target_text}, {}", mode.name());
                let dreamed = dream_signal(dreamer, params, signal, *rate, true, &message, spectral)?;
                let delta: Vec<f32> = dreamed.delta.iter().map(|d| d * args.dream.strength).collect();
                let output: Vec<f32> = signal.iter().zip(&delta).map(|(x, d)| x + d).collect();
                // The score of what comes out, for both modes alike: the
                // target over the output's windows against the input's.
                let scorer = Dreamer::new(model.clone(), compute.device.clone());
                let to_model = |x: &[f32]| resample_clip(x, *rate, model.meta.sample_rate);
                let (before, after) = scorer
                    .mean_target_change(&to_model(signal)?, &to_model(&output)?, target)?
                    .unwrap_or((0.0, 0.0));
                if let Some(dir) = &args.write {
                    let stem = format!("{file}.{}.{}", target_text.replace(':', "-"), mode.name());
                    wav::write(&dir.join(format!("{stem}.wav")), &mono_audio(output, *rate))?;
                    wav::write(
                        &dir.join(format!("{stem}.delta.wav")),
                        &mono_audio(delta.clone(), *rate),
                    )?;
                }
                rows.push(Row {
                    file: file.clone(),
                    target: target_text.clone(),
                    mode,
                    measures: measure(signal, &delta, *rate, hop_seconds),
                    before,
                    after,
                    speed: signal.len() as f64 / f64::from(*rate) / dreamed.seconds.max(1e-9),
                });
            }
        }
    }
    print_rows(&rows);
    if args.compare {
        let mut all_met = true;
        for spectral in rows.iter().filter(|r| r.mode == DreamMode::Spectral) {
            let raw = rows
                .iter()
                .find(|r| r.mode == DreamMode::Raw && r.file == spectral.file && r.target == spectral.target)
                .expect("every mode was measured");
            let missed = misses(spectral, raw);
            if missed.is_empty() {
                println!(
                    "{} {}: spectral meets every target",
                    spectral.file, spectral.target
                );
            } else {
                all_met = false;
                println!(
                    "{} {}: spectral misses: {}",
                    spectral.file,
                    spectral.target,
                    missed.join("; ")
                );
            }
        }
        if all_met {
            println!("all targets met");
        }
    }
    Ok(())
}

fn mono_audio(signal: Vec<f32>, rate: u32) -> Audio {
    Audio {
        channels: vec![signal],
        spec: hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        },
    }
}

fn print_rows(rows: &[Row]) {
    println!(
        "| input | target | mode | delta level | flatness input / delta | in input's spectrum | hop modulation | correlation | score before -> after | speed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let m = &r.measures;
        println!(
            "| {} | {} | {} | {:.1} dB | {:.3} / {:.3} | {:.0}% | {:.1}% | {:.2} | {:.3} -> {:.3} ({:+.3}) | {:.1}x |",
            r.file,
            r.target,
            r.mode.name(),
            m.level_db,
            m.input_flatness,
            m.delta_flatness,
            100.0 * m.in_input_spectrum,
            100.0 * m.hop_modulation,
            m.correlation,
            r.before,
            r.after,
            r.raise(),
            r.speed
        );
    }
}
