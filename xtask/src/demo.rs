//! `cargo xtask demo`: synthesises a short musical example and dreams on it,
//! so a fresh checkout makes sound with one command.

use std::path::PathBuf;

use hound::{SampleFormat, WavSpec};
use reverie_engine::dreamer::DreamParams;
use reverie_engine::wav::{self, Audio};

use crate::dream::{DreamArgs, DreamOptions, Mode, Start};

/// Arguments of `cargo xtask demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Folder for the example and the result.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
}

/// A few seconds of plucked arpeggios over a bass line, 44.1 kHz stereo.
pub fn example() -> Audio {
    let rate = 44_100u32;
    let len = rate as usize * 6;
    let mut left = vec![0.0f32; len];
    let mut right = vec![0.0f32; len];
    // A minor / F / C / G, one chord per 1.5 s, eighth-note arpeggios.
    let chords: [[f32; 3]; 4] = [
        [57.0, 60.0, 64.0],
        [53.0, 57.0, 60.0],
        [48.0, 52.0, 55.0],
        [55.0, 59.0, 62.0],
    ];
    let hz = |midi: f32| 440.0 * 2f32.powf((midi - 69.0) / 12.0);
    let mut pluck = |start: usize, midi: f32, gain: f32, pan: f32, decay: f32| {
        let f = hz(midi);
        for i in 0..(rate as usize * 2).min(len.saturating_sub(start)) {
            let t = i as f32 / rate as f32;
            let env = (-t * decay).exp() * (1.0 - (-t * 400.0).exp());
            let tone: f32 = (1..=5)
                .map(|h| (std::f32::consts::TAU * f * h as f32 * t).sin() / (h * h) as f32)
                .sum();
            let v = gain * env * tone;
            left[start + i] += v * (1.0 - pan);
            right[start + i] += v * pan;
        }
    };
    let eighth = rate as usize * 3 / 16;
    for (c, chord) in chords.iter().enumerate() {
        let bar = c * rate as usize * 3 / 2;
        pluck(bar, chord[0] - 12.0, 0.35, 0.5, 2.0);
        for step in 0..8 {
            let note = chord[step % 3] + if step >= 4 { 12.0 } else { 0.0 };
            pluck(bar + step * eighth, note, 0.18, 0.3 + 0.05 * step as f32, 5.0);
        }
    }
    let peak = left.iter().chain(&right).fold(0.0f32, |m, v| m.max(v.abs()));
    for v in left.iter_mut().chain(right.iter_mut()) {
        *v *= 0.5 / peak;
    }
    Audio {
        channels: vec![left, right],
        spec: WavSpec {
            channels: 2,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        },
    }
}

/// Runs the command.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let input = args.out.join("example.wav");
    wav::write(&input, &example())?;
    eprintln!("wrote {}", input.display());
    let output = args.out.join("dreamed.wav");
    // Plucked strings dreamed toward brass at the default settings: the
    // default model's classes make the change easy to hear.
    crate::dream::run(&DreamArgs {
        input,
        output,
        dream: DreamOptions {
            model: None,
            target: "class:brass".into(),
            away: false,
            strength: 1.0,
            iterations: DreamParams::default().iterations,
            step: DreamParams::default().step,
            sparsity: DreamParams::default().sparsity,
            continuity: DreamParams::default().continuity,
            seed: 0,
            mode: Mode::Spectral,
            gpu: false,
        },
        from: Start::Input,
    })
}
