//! `cargo xtask nll`: how well a WaveNet predicts some audio files, in
//! nats per sample, and where the loss is: onsets, loud or quiet passages,
//! silence. A model's own audio is as clean as its predictions of sustained
//! notes are sharp, so this says why generated notes sound clean or hissy
//! without listening.

use std::path::PathBuf;

use anyhow::bail;
use reverie_engine::likelihood::Scorer;
use reverie_engine::mulaw::MuLaw;
use reverie_engine::prediction_inputs::PredictionInputs;
use reverie_engine::signal_coding::SignalCoding;
use reverie_engine::wavenet::WavenetConfig;

use crate::generate_cmd::{load_audio_at, load_sampler};
use crate::progress::styled_bar;

/// Arguments of `cargo xtask nll`.
#[derive(clap::Args, Debug)]
pub struct NllArgs {
    /// WaveNet model file; default: the WaveNet embedded in this build.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Audio files (.wav/.flac/.mp3/.ogg), mixed to mono and resampled to
    /// the model rate.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub prior: crate::generate_cmd::TonePriorArgs,
}

/// Where a sample sits in the music, judged from the audio around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// The next 16 ms are at least 12 dB louder than the last 16 ms and
    /// above -40 dBFS: a note starts, which no model can foresee exactly.
    Onset,
    /// The last 16 ms are above -20 dBFS.
    Loud,
    /// -40 to -20 dBFS.
    Moderate,
    /// -60 to -40 dBFS: tails of notes.
    Quiet,
    /// Below -60 dBFS.
    Silence,
}

impl Level {
    const ALL: [Level; 5] = [
        Level::Onset,
        Level::Loud,
        Level::Moderate,
        Level::Quiet,
        Level::Silence,
    ];

    fn label(self) -> &'static str {
        match self {
            Level::Onset => "onsets   (next 16 ms 12 dB louder)",
            Level::Loud => "loud     (above -20 dBFS)",
            Level::Moderate => "moderate (-40 to -20 dBFS)",
            Level::Quiet => "quiet    (-60 to -40 dBFS)",
            Level::Silence => "silence  (below -60 dBFS)",
        }
    }

    /// The level from the RMS of the window before a sample and of the
    /// window starting at it.
    pub fn of(before: f64, after: f64) -> Level {
        // 12 dB is a factor of 4 in amplitude; -40 dBFS is 0.01.
        if after >= 4.0 * before && after >= 0.01 {
            Level::Onset
        } else if before >= 0.1 {
            Level::Loud
        } else if before >= 0.01 {
            Level::Moderate
        } else if before >= 0.001 {
            Level::Quiet
        } else {
            Level::Silence
        }
    }
}

/// Sum of NLL and count of samples, per level, and for a model with a
/// predictor the power of the coded signal and of the predictor's error.
#[derive(Default)]
struct Tally {
    nll: [f64; 5],
    count: [usize; 5],
    signal: [f64; 5],
    error: [f64; 5],
}

impl Tally {
    fn add(&mut self, level: Level, nll: f32, (signal, error): (f64, f64)) {
        let i = level as usize;
        self.nll[i] += f64::from(nll);
        self.count[i] += 1;
        self.signal[i] += signal;
        self.error[i] += error;
    }

    fn total(&self) -> (f64, usize) {
        (self.nll.iter().sum(), self.count.iter().sum())
    }
}

/// Runs `cargo xtask nll`: one line per file, the mean over all of them,
/// then the loss by level.
pub fn run(args: &NllArgs) -> anyhow::Result<()> {
    let mut sampler = load_sampler(args.model.as_deref())?;
    args.prior.apply(&mut sampler)?;
    let rate = sampler.sample_rate();
    let mulaw = sampler.mulaw();
    let config = sampler.config().clone();
    let audio = args
        .files
        .iter()
        .map(|path| {
            let x = load_audio_at(path, rate, "audio file")?;
            if x.len() < 2 {
                bail!(
                    "{} is too short to score: it needs at least 2 samples at {rate} Hz",
                    path.display()
                );
            }
            Ok(x)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let window = (rate as usize * 16 / 1000).max(1);
    let bar = styled_bar(
        audio.iter().map(|x| x.len() as u64).sum(),
        "{spinner} scoring [{bar:40}] {percent}%, ETA {eta}",
    );
    let mut all = Tally::default();
    let mut lines = Vec::new();
    for (path, x) in args.files.iter().zip(&audio) {
        let mut nll = Vec::with_capacity(x.len());
        let mut scorer = Scorer::new(&mut sampler);
        // Each sample's 8-bit µ-law class, however the model codes the
        // signal (pre-emphasis, residual target): comparable across models.
        for piece in x.chunks(rate as usize) {
            scorer.push_audio(piece, &mut nll);
            bar.inc(piece.len() as u64);
        }
        let mut file = Tally::default();
        let rms = WindowRms::new(x);
        let errors = prediction_errors(&config, mulaw, x)?;
        for (i, &v) in nll.iter().enumerate() {
            // nll[i] scores sample i + 1.
            let t = i + 1;
            let level = Level::of(
                rms.of(t.saturating_sub(window), t),
                rms.of(t, (t + window).min(x.len())),
            );
            let e = errors.as_ref().map_or((0.0, 0.0), |e| e[t]);
            file.add(level, v, e);
            all.add(level, v, e);
        }
        lines.push(file_line(&path.display().to_string(), &file));
    }
    bar.finish_and_clear();

    for line in lines {
        println!("{line}");
    }
    if args.files.len() > 1 {
        println!("{}", file_line(&format!("all {} files", args.files.len()), &all));
    }
    let (total, samples) = all.total();
    println!("by level (RMS of the 16 ms before each sample):");
    for level in Level::ALL {
        let i = level as usize;
        let share = 100.0 * all.count[i] as f64 / samples as f64;
        if all.count[i] == 0 {
            println!("  {:34} {share:5.1}% of samples", level.label());
            continue;
        }
        let loss = if total > 0.0 {
            format!("{:5.1}%", 100.0 * all.nll[i] / total)
        } else {
            "    -".into()
        };
        let gain = if config.predictor.is_some() {
            format!("  predictor {:5.1} dB", gain_db(all.signal[i], all.error[i]))
        } else {
            String::new()
        };
        println!(
            "  {:34} {share:5.1}% of samples  {:5.2} nats  {loss} of the loss{gain}",
            level.label(),
            all.nll[i] / all.count[i] as f64
        );
    }
    if config.predictor.is_some() {
        println!(
            "(predictor: the model's own predictor's gain, signal over prediction error, on the audio as the model codes it)"
        );
    }
    println!(
        "(0 nats: every sample foreseen exactly; ln {} = {:.2} nats: a blind guess among the {} µ-law classes)",
        mulaw.classes(),
        (mulaw.classes() as f64).ln(),
        mulaw.classes()
    );
    Ok(())
}

fn file_line(name: &str, t: &Tally) -> String {
    let (nll, n) = t.total();
    let mean = nll / n as f64;
    format!(
        "{name}: {mean:.3} nats ({:.3} bits) per sample over {n} samples",
        mean / std::f64::consts::LN_2
    )
}

/// For a model with a predictor, each sample's coded value squared and the
/// predictor's error squared: the predictor the model runs, teacher-forced
/// from the file's first sample as scoring is, on the signal as the model
/// codes it (pre-emphasised, for such a model).
fn prediction_errors(
    config: &WavenetConfig,
    mulaw: MuLaw,
    x: &[f32],
) -> anyhow::Result<Option<Vec<(f64, f64)>>> {
    let Some(mut inputs) = PredictionInputs::of_model(config, mulaw)? else {
        return Ok(None);
    };
    let mut coding = SignalCoding::new(config, mulaw);
    let classes: Vec<u32> = x.iter().map(|&v| coding.input_class(v) as u32).collect();
    let before = inputs.for_sequence(&classes).before;
    Ok(Some(
        classes
            .iter()
            .zip(before)
            .map(|(&c, p)| {
                let v = f64::from(mulaw.decode(c as usize));
                (v * v, (v - f64::from(p)).powi(2))
            })
            .collect(),
    ))
}

/// Signal over error power in dB (0 for no signal).
fn gain_db(signal: f64, error: f64) -> f64 {
    if signal <= 0.0 {
        0.0
    } else {
        10.0 * (signal / error.max(1e-30)).log10()
    }
}

/// RMS of any window of a signal in O(1), from running sums of squares.
struct WindowRms(Vec<f64>);

impl WindowRms {
    fn new(x: &[f32]) -> Self {
        let mut sums = Vec::with_capacity(x.len() + 1);
        let mut acc = 0.0f64;
        sums.push(acc);
        for &v in x {
            acc += f64::from(v) * f64::from(v);
            sums.push(acc);
        }
        Self(sums)
    }

    /// RMS of `x[from..to]` (0 for an empty window).
    fn of(&self, from: usize, to: usize) -> f64 {
        if to <= from {
            return 0.0;
        }
        ((self.0[to] - self.0[from]).max(0.0) / (to - from) as f64).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_decibel_bounds() {
        assert_eq!(Level::of(0.5, 0.5), Level::Loud);
        assert_eq!(Level::of(0.05, 0.06), Level::Moderate);
        assert_eq!(Level::of(0.005, 0.005), Level::Quiet);
        assert_eq!(Level::of(0.0, 0.0), Level::Silence);
        assert_eq!(Level::of(0.0, 0.02), Level::Onset, "a note out of silence");
        assert_eq!(Level::of(0.0, 0.005), Level::Silence, "too quiet to be an onset");
        assert_eq!(Level::of(0.1, 0.39), Level::Loud, "under 12 dB louder");
        assert_eq!(Level::of(0.1, 0.41), Level::Onset);
    }

    #[test]
    fn the_predictor_foresees_a_tone_and_not_noise() {
        use reverie_engine::predictor::PredictorConfig;
        let config = WavenetConfig {
            predictor: Some(PredictorConfig::for_rate(16_000)),
            ..WavenetConfig::default()
        };
        let mulaw = MuLaw::default();
        let gain = |x: &[f32]| {
            let e = prediction_errors(&config, mulaw, x).unwrap().unwrap();
            assert_eq!(e.len(), x.len());
            // After the first 0.1 s, once the predictor has heard enough.
            let (s, r) = e[1_600..]
                .iter()
                .fold((0.0, 0.0), |(s, r), &(a, b)| (s + a, r + b));
            gain_db(s, r)
        };
        let tone: Vec<f32> = (0..16_000)
            .map(|t| {
                let w = std::f32::consts::TAU * 220.0 * t as f32 / 16_000.0;
                0.4 * w.sin() + 0.2 * (3.0 * w).sin()
            })
            .collect();
        let mut state = 1u32;
        let noise: Vec<f32> = (0..16_000)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        let (tone_gain, noise_gain) = (gain(&tone), gain(&noise));
        // The µ-law steps near 0.4 (about 0.6%) bound what any predictor
        // of the decoded classes can reach: some 30 dB.
        assert!(tone_gain > 20.0, "{tone_gain}");
        assert!(noise_gain.abs() < 1.0, "{noise_gain}");
        assert!(prediction_errors(&WavenetConfig::default(), mulaw, &tone)
            .unwrap()
            .is_none());
    }

    #[test]
    fn window_rms_matches_a_direct_sum() {
        let x: Vec<f32> = (0..1000).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
        let w = WindowRms::new(&x);
        for (from, to) in [(0, 1000), (10, 11), (300, 556), (999, 1000)] {
            let direct =
                (x[from..to].iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / (to - from) as f64).sqrt();
            assert!((w.of(from, to) - direct).abs() < 1e-9);
        }
        assert_eq!(w.of(5, 5), 0.0);
    }
}
