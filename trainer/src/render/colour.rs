//! Colouring a rendered clip like a recording: room, tone and level, so a
//! classifier learns the instrument rather than the recording.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A random room (a small Schroeder reverb), tone (gentle low- and
/// high-pass), noise floor and peak level, each applied only sometimes.
pub(super) fn colour(audio: &mut [f32], rate: u32, rng: &mut ChaCha8Rng) {
    let rate = rate as f32;
    if rng.random_bool(0.5) {
        let rt60 = rng.random_range(0.3..2.0);
        let size = rng.random_range(0.6..1.3);
        let wet = rng.random_range(0.05..0.35);
        reverb(audio, rate, rt60, size, wet);
    }
    if rng.random_bool(0.4) {
        let cutoff = rng.random_range(1500.0..(0.45 * rate).max(1600.0));
        one_pole(audio, rate, cutoff, false);
    }
    if rng.random_bool(0.4) {
        let cutoff = rng.random_range(30.0..250.0);
        one_pole(audio, rate, cutoff, true);
    }
    let p = peak(audio);
    if p > 0.0 {
        let target = 10f32.powf(rng.random_range(-24.0..-1.0) / 20.0);
        let g = target / p;
        audio.iter_mut().for_each(|v| *v *= g);
        if rng.random_bool(0.3) {
            let floor = target * 10f32.powf(rng.random_range(-60.0..-40.0) / 20.0);
            audio
                .iter_mut()
                .for_each(|v| *v += floor * rng.random_range(-1.0..1.0f32));
        }
    }
}

/// Four parallel feedback combs into two allpasses (Schroeder's design),
/// mixed with the dry signal.
fn reverb(audio: &mut [f32], rate: f32, rt60: f32, size: f32, wet: f32) {
    let delay = |ms: f32| ((ms * size * rate / 1000.0) as usize).max(1);
    let combs: Vec<(usize, f32)> = [29.7f32, 37.1, 41.1, 43.7]
        .iter()
        .map(|&ms| {
            let d = delay(ms);
            // Gain for a 60 dB decay in rt60 seconds.
            (d, 10f32.powf(-3.0 * d as f32 / (rt60 * rate)))
        })
        .collect();
    let mut bufs: Vec<Vec<f32>> = combs.iter().map(|&(d, _)| vec![0.0; d]).collect();
    let mut pos = vec![0usize; combs.len()];
    let mut out: Vec<f32> = audio
        .iter()
        .map(|&x| {
            let mut sum = 0.0;
            for (k, &(d, g)) in combs.iter().enumerate() {
                let y = bufs[k][pos[k]];
                bufs[k][pos[k]] = x + g * y;
                pos[k] = (pos[k] + 1) % d;
                sum += y;
            }
            sum * 0.25
        })
        .collect();
    for ms in [5.0f32, 1.7] {
        let d = delay(ms);
        let g = 0.7;
        let mut buf = vec![0.0f32; d];
        let mut p = 0;
        for v in out.iter_mut() {
            let delayed = buf[p];
            let w = *v + g * delayed;
            buf[p] = w;
            *v = delayed - g * w;
            p = (p + 1) % d;
        }
    }
    for (a, r) in audio.iter_mut().zip(out.drain(..)) {
        *a = (1.0 - wet) * *a + wet * r;
    }
}

/// A one-pole low-pass, or the complementary high-pass.
fn one_pole(audio: &mut [f32], rate: f32, cutoff: f32, high: bool) {
    let a = (-2.0 * std::f32::consts::PI * cutoff / rate).exp();
    let mut y = 0.0f32;
    for v in audio.iter_mut() {
        y = (1.0 - a) * *v + a * y;
        *v = if high { *v - y } else { y };
    }
}

/// The largest magnitude of `x`.
pub(super) fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}
