//! How pitched a sound is, as numbers: used to tell whether a WaveNet
//! generates notes or noise without having to listen to every sample.

use rustfft::num_complex::Complex32;
use rustfft::FftPlanner;

/// Frames quieter than this RMS (-60 dBFS) are left out.
const QUIET: f32 = 1e-3;

/// The pitch measures of a sound, medians over its non-silent frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pitchedness {
    /// Height of the normalised autocorrelation's highest peak at a lag of
    /// 1 to 20 ms (pitches of 50 Hz to 1 kHz), looking only past its first
    /// fall below zero (a smooth, low-passed sound stays correlated over
    /// short lags without having any pitch): near 1 for a steady note, near
    /// 0 for noise of any colour.
    pub clarity: f32,
    /// Spectral flatness (geometric over arithmetic mean of the power
    /// spectrum, after the pre-emphasis): near 0 for a few harmonics, about
    /// 0.3 for white noise.
    pub flatness: f32,
    /// Non-silent 64 ms frames measured.
    pub frames: usize,
}

/// Measures `x` (mono, at `rate` Hz) in 64 ms Hann-windowed frames.
pub fn pitchedness(x: &[f32], rate: u32) -> Pitchedness {
    let len = ((0.064 * rate as f32) as usize).next_power_of_two().max(64);
    let window = crate::stft::hann(len);
    let (min_lag, max_lag) = ((rate / 1000).max(1) as usize, ((rate / 50) as usize).min(len - 1));
    // Autocorrelation through the power spectrum of the frame zero-padded
    // to twice its length (so the circular correlation is the linear one).
    let fft = FftPlanner::<f32>::new().plan_fft_forward(2 * len);
    let ifft = FftPlanner::<f32>::new().plan_fft_inverse(2 * len);
    let mut buf = vec![Complex32::default(); 2 * len];
    let (mut clarity, mut flatness) = (Vec::new(), Vec::new());
    let mut frame = vec![0.0f32; len];
    for raw in x.chunks_exact(len) {
        // Without its offset: a constant (a WaveNet stuck on one value) is
        // silence to the ear, and its autocorrelation would read as a
        // perfectly steady pitch.
        let mean = raw.iter().sum::<f32>() / len as f32;
        frame.iter_mut().zip(raw).for_each(|(f, v)| *f = v - mean);
        let rms = (frame.iter().map(|v| v * v).sum::<f32>() / len as f32).sqrt();
        // NaN compares false: a broken frame is skipped like a quiet one.
        if rms.is_nan() || rms < QUIET {
            continue;
        }
        buf.fill(Complex32::default());
        // Pre-emphasis (a first difference) whitens the steep low-frequency
        // slope of smooth noise, which would otherwise look periodic over
        // a few milliseconds; a note's periodicity survives it.
        let mut previous = frame[0];
        for ((b, &v), w) in buf.iter_mut().zip(&frame).zip(&window) {
            b.re = (v - 0.97 * previous) * w;
            previous = v;
        }
        fft.process(&mut buf);
        let power: Vec<f32> = buf[..=len].iter().map(|c| c.norm_sqr() + 1e-20).collect();
        let mean = power.iter().sum::<f32>() / power.len() as f32;
        let log_mean = power.iter().map(|p| p.ln()).sum::<f32>() / power.len() as f32;
        flatness.push(log_mean.exp() / mean);
        for (b, p) in buf.iter_mut().zip(power.iter().chain(power[1..len].iter().rev())) {
            *b = Complex32::new(*p, 0.0);
        }
        ifft.process(&mut buf);
        let zero = buf[0].re;
        let peak = buf[min_lag..=max_lag]
            .iter()
            .map(|c| c.re / zero)
            .fold(0.0f32, f32::max);
        clarity.push(peak);
    }
    Pitchedness {
        frames: clarity.len(),
        clarity: median(&mut clarity),
        flatness: median(&mut flatness),
    }
}

fn median(v: &mut [f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_note_is_clear_and_noise_is_not() {
        let rate = 16_000;
        let note: Vec<f32> = (0..rate as usize)
            .map(|i| {
                let t = i as f32 / rate as f32;
                (1..6)
                    .map(|h| 0.3 / h as f32 * (std::f32::consts::TAU * 220.0 * h as f32 * t).sin())
                    .sum()
            })
            .collect();
        let p = pitchedness(&note, rate);
        assert!(p.clarity > 0.85 && p.flatness < 0.01, "{p:?}");
        assert_eq!(p.frames, 15);

        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let noise = crate::rng::normal_vec(&mut rng, rate as usize, 0.2);
        let n = pitchedness(&noise, rate);
        assert!(n.clarity < 0.3 && n.flatness > 0.2, "{n:?}");

        // Low-passed (brown) noise is smooth but has no pitch.
        let mut level = 0.0f32;
        let brown: Vec<f32> = noise
            .iter()
            .map(|w| {
                level = 0.995 * level + w;
                level * 0.05
            })
            .collect();
        let b = pitchedness(&brown, rate);
        assert!(b.clarity < 0.3, "{b:?}");

        let silence = pitchedness(&vec![0.0; rate as usize], rate);
        assert_eq!((silence.frames, silence.clarity), (0, 0.0));

        // A constant is silence too, and an offset does not hide a note.
        let stuck = pitchedness(&vec![-0.1; rate as usize], rate);
        assert_eq!((stuck.frames, stuck.clarity), (0, 0.0));
        let offset: Vec<f32> = note.iter().map(|v| v + 0.2).collect();
        assert_eq!(pitchedness(&offset, rate).frames, 15);
        assert!((pitchedness(&offset, rate).clarity - p.clarity).abs() < 0.02);
    }
}
