//! The test material the dream is measured on (`cargo xtask dream-report
//! --suite DIR`): the demo's plucked arpeggios and four more synthesised
//! sounds of different kinds, 6 s each at 44.1 kHz mono. Synthesised rather
//! than rendered from a SoundFont so that the measures can be reproduced on
//! any machine.

use std::f32::consts::TAU;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sample rate of the suite.
pub const RATE: u32 = 44_100;
const SECONDS: f32 = 6.0;

/// The suite: names and signals.
pub fn suite() -> Vec<(&'static str, Vec<f32>)> {
    vec![
        ("arpeggios", crate::demo::example().mono()),
        ("piano-melody", piano_melody()),
        ("drum-loop", drum_loop()),
        ("sustained-chord", sustained_chord()),
        ("wind-noise", wind_noise()),
    ]
}

fn len() -> usize {
    (RATE as f32 * SECONDS) as usize
}

fn hz(midi: f32) -> f32 {
    440.0 * 2f32.powf((midi - 69.0) / 12.0)
}

/// Scales a signal to a peak of 0.5.
fn normalised(mut x: Vec<f32>) -> Vec<f32> {
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak > 0.0 {
        for v in &mut x {
            *v *= 0.5 / peak;
        }
    }
    x
}

/// A single-line melody of struck, slightly inharmonic piano-like tones.
fn piano_melody() -> Vec<f32> {
    let mut x = vec![0.0f32; len()];
    let melody = [
        60.0, 64.0, 67.0, 72.0, 71.0, 67.0, 64.0, 65.0, 69.0, 67.0, 64.0, 62.0, 60.0, 62.0, 64.0, 60.0,
    ];
    let note = (RATE as f32 * 0.375) as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (i, &m) in melody.iter().enumerate() {
        let start = i * note;
        let f0 = hz(m);
        let velocity = rng.random_range(0.7f32..1.0);
        for n in 0..(RATE as usize * 2).min(x.len().saturating_sub(start)) {
            let t = n as f32 / RATE as f32;
            let mut v = 0.0;
            for k in 1..=12 {
                let k = k as f32;
                // Stiff strings: partials stretched above the harmonics.
                let f = k * f0 * (1.0 + 0.0004 * k * k).sqrt();
                if f > 10_000.0 {
                    break;
                }
                v += (TAU * f * t).sin() * (-t * (1.2 + 0.5 * k)).exp() / k.powf(1.2);
            }
            let attack = 1.0 - (-t * 600.0).exp();
            x[start + n] += velocity * attack * v;
        }
    }
    normalised(x)
}

/// Kick, snare and hi-hats at 100 BPM (not 120, whose beat would be the
/// dream's 2 Hz window hop and hide pumping at it).
fn drum_loop() -> Vec<f32> {
    let mut x = vec![0.0f32; len()];
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let eighth = (RATE as f32 * 0.3) as usize;
    let mut noise = || rng.random_range(-1.0f32..1.0);
    let steps = x.len() / eighth;
    for step in 0..steps {
        let start = step * eighth;
        let end = x.len();
        // Hi-hat every eighth: bright noise, 30 ms.
        let mut last = 0.0;
        for n in 0..(RATE as usize / 10).min(end - start) {
            let t = n as f32 / RATE as f32;
            let white = noise();
            let bright = white - last;
            last = white;
            x[start + n] += 0.15 * bright * (-t / 0.03).exp();
        }
        if step % 4 == 0 {
            // Kick: a sine falling from 120 to 45 Hz.
            let mut phase = 0.0f32;
            for n in 0..(RATE as usize / 2).min(end - start) {
                let t = n as f32 / RATE as f32;
                phase += TAU * (45.0 + 75.0 * (-t / 0.04).exp()) / RATE as f32;
                x[start + n] += 0.9 * phase.sin() * (-t / 0.25).exp();
            }
        }
        if step % 4 == 2 {
            // Snare: a 185 Hz body and a noise rattle.
            let mut low = 0.0f32;
            for n in 0..(RATE as usize / 3).min(end - start) {
                let t = n as f32 / RATE as f32;
                let white = noise();
                low += 0.3 * (white - low);
                let rattle = white - low;
                x[start + n] += (0.4 * (TAU * 185.0 * t).sin() * (-t / 0.06).exp()
                    + 0.35 * rattle * (-t / 0.15).exp())
                    * (1.0 - (-t * 2000.0).exp());
            }
        }
    }
    normalised(x)
}

/// A string-like C major seventh, bowed: slow attack, vibrato, held.
fn sustained_chord() -> Vec<f32> {
    let n = len();
    let notes = [48.0, 52.0, 55.0, 59.0];
    let x = (0..n)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            let attack = (t / 0.4).min(1.0);
            let release = ((SECONDS - t) / 0.3).clamp(0.0, 1.0);
            notes
                .iter()
                .enumerate()
                .map(|(j, &m)| {
                    let f0 = hz(m);
                    let vibrato = 1.0 + 0.003 * (TAU * (5.0 + 0.3 * j as f32) * t).sin();
                    (1..=16)
                        .map(|k| {
                            let k = k as f32;
                            (TAU * k * f0 * vibrato * t + j as f32).sin() / k
                        })
                        .sum::<f32>()
                })
                .sum::<f32>()
                * attack
                * release
        })
        .collect();
    normalised(x)
}

/// Wind: noise through a resonance that sweeps between 300 Hz and 2 kHz,
/// in slow gusts.
fn wind_noise() -> Vec<f32> {
    let n = len();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (mut y1, mut y2) = (0.0f32, 0.0f32);
    let x = (0..n)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            let centre = 300.0 * (2_000.0f32 / 300.0).powf(0.5 + 0.5 * (TAU * 0.17 * t).sin());
            let r = 0.995f32;
            let w = TAU * centre / RATE as f32;
            // A two-pole resonator.
            let y = rng.random_range(-1.0f32..1.0) * (1.0 - r) + 2.0 * r * w.cos() * y1 - r * r * y2;
            y2 = y1;
            y1 = y;
            let gust = 0.55 + 0.45 * (TAU * 0.23 * t).sin() * (TAU * 0.07 * t + 1.0).sin();
            y * gust
        })
        .collect();
    normalised(x)
}
