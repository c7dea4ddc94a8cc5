//! Pre-emphasis before µ-law and de-emphasis after, as LPCNet (Valin &
//! Skoglund, ICASSP 2019) does: `y[t] = x[t] - a x[t-1]` tilts the spectrum
//! up (with LPCNet's `a` = 0.85: -16 dB at 100 Hz, +5 dB at 7 kHz, at 16
//! kHz), so the µ-law quantisation noise, white in `y`, lands under the
//! strong low harmonics once `x[t] = y[t] + a x[t-1]` undoes the tilt. The
//! same tilt lifts whatever noise the model samples toward the bass (by
//! `1 / (1 - a)` at 0 Hz, 16.5 dB at 0.85), so a model may choose a
//! gentler one ([`crate::wavenet::WavenetConfig::emphasis_128ths`]).
//!
//! The pair inverts exactly, bit for bit, so a model trained on emphasised
//! audio is scored and sampled on the same numbers: the coefficient is a
//! whole number of 128ths (0.85 is 109/128), samples are first put on the
//! 24-bit PCM grid (multiples of 2^-24, at most
//! [`crate::streaming::MAX_INPUT`]), and the arithmetic is in f64. Then
//! every `y` is an integer multiple of 2^-31 below 2^36 of them, which f64
//! holds exactly, and so is every sum de-emphasis forms.

use crate::streaming::MAX_INPUT;

/// LPCNet's coefficient, 0.85, in 128ths: every emphasised model before
/// the choice.
pub const LPCNET_128THS: u8 = 109;
/// The grid samples are put on before emphasis (24-bit PCM).
pub const GRID: f64 = 1.0 / 16_777_216.0;

/// The coefficient `k / 128` as the filters use it; `k` below 128 (a
/// coefficient of 1 or more would be no longer invertible in bounds).
pub fn coefficient(k: u8) -> f64 {
    f64::from(k.min(127)) / 128.0
}

/// `x` on the 24-bit grid, clamped; non-finite input is silence, and zero
/// has one sign.
pub fn on_grid(x: f32) -> f64 {
    if !x.is_finite() {
        return 0.0;
    }
    let clamped = f64::from(x.clamp(-MAX_INPUT, MAX_INPUT));
    // `+ 0.0` makes -0 the +0 that de-emphasis gives back.
    (clamped / GRID).round() * GRID + 0.0
}

/// The pre-emphasis filter `1 - a z^-1`, one sample at a time.
#[derive(Debug, Clone)]
pub struct PreEmphasis {
    previous: f64,
    a: f64,
}

impl PreEmphasis {
    /// Starting from silence, with the coefficient `k / 128`.
    pub fn new(k: u8) -> Self {
        Self {
            previous: 0.0,
            a: coefficient(k),
        }
    }

    /// The emphasised value of the next sample.
    pub fn process(&mut self, x: f32) -> f64 {
        let x = on_grid(x);
        let y = x - self.a * self.previous;
        self.previous = x;
        y
    }
}

/// The de-emphasis filter `1 / (1 - a z^-1)`, one sample at a time, its
/// output clamped to a limit (the filter goes on from the clamped value).
#[derive(Debug, Clone)]
pub struct DeEmphasis {
    previous: f64,
    a: f64,
    limit: f64,
}

impl DeEmphasis {
    /// Starting from silence, with the coefficient `k / 128`, clamped to
    /// `±limit` (1: full scale, where a generated signal clips as a
    /// converter would; [`MAX_INPUT`]: the engine's largest input).
    pub fn new(k: u8, limit: f64) -> Self {
        Self {
            previous: 0.0,
            a: coefficient(k),
            limit,
        }
    }

    /// The audio sample whose emphasised value is `y`.
    pub fn process(&mut self, y: f64) -> f64 {
        let x = self.peek(y);
        self.previous = x;
        x
    }

    /// What [`process`](Self::process) would give for `y`, without taking
    /// it in.
    pub fn peek(&self, y: f64) -> f64 {
        // A broken value must not ring on through the filter's memory.
        let y = if y.is_finite() { y } else { 0.0 };
        (y + self.a * self.previous).clamp(-self.limit, self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn round_trip(x: &[f32], k: u8) -> (Vec<f64>, Vec<f64>) {
        let (mut pre, mut de) = (PreEmphasis::new(k), DeEmphasis::new(k, f64::from(MAX_INPUT)));
        let back = x.iter().map(|&v| de.process(pre.process(v))).collect();
        (x.iter().map(|&v| on_grid(v)).collect(), back)
    }

    #[test]
    fn de_emphasis_inverts_pre_emphasis_bit_for_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut x: Vec<f32> = (0..50_000).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        // The corners: full scale and beyond, the clamp, the smallest step,
        // values below it, sign flips between extremes, NaN and infinity.
        x.extend([
            16.0,
            -16.0,
            16.0,
            1e9,
            -1e9,
            5.9604645e-8,
            -5.9604645e-8,
            1e-12,
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            f32::NAN,
            f32::INFINITY,
            1.0,
            -1.0,
            0.999_999_9,
            15.999_999,
        ]);
        // Loud low tones, where the filter's memory matters most.
        x.extend((0..5_000).map(|i| 15.0 * (i as f32 * 0.001).sin()));
        // LPCNet's coefficient, a gentler one, the gentlest, the steepest.
        for k in [LPCNET_128THS, 64, 1, 127] {
            let (grid, back) = round_trip(&x, k);
            for (i, (g, b)) in grid.iter().zip(&back).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    b.to_bits(),
                    "coefficient {k}/128, sample {i}: {} became {b} (grid {g})",
                    x[i]
                );
            }
        }
        // Everything on the grid that a 16-bit or 24-bit file holds comes
        // back as itself.
        for k in [-32_768i32, -1, 1, 12_345, 32_767] {
            let v = k as f32 / 32_768.0;
            assert_eq!(on_grid(v), f64::from(v));
        }
    }

    /// Gain of the pre-emphasis on a steady sine of `f` Hz at 16 kHz, dB.
    fn gain_db(f: f32, k: u8) -> f64 {
        let mut pre = PreEmphasis::new(k);
        let x: Vec<f32> = (0..16_000)
            .map(|i| 0.5 * (std::f32::consts::TAU * f * i as f32 / 16_000.0).sin())
            .collect();
        let y: Vec<f64> = x.iter().map(|&v| pre.process(v)).collect();
        let power = |v: &[f64]| v[1_000..].iter().map(|a| a * a).sum::<f64>();
        let input: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        10.0 * (power(&y) / power(&input)).log10()
    }

    #[test]
    fn pre_emphasis_tilts_the_spectrum_up() {
        // |1 - a e^{-jw}|: at 0.85, -16.3 dB at 100 Hz, +5.2 dB at 7 kHz.
        for k in [LPCNET_128THS, 64] {
            let a = coefficient(k);
            let expect = |f: f64| {
                let w = std::f64::consts::TAU * f / 16_000.0;
                10.0 * (1.0 - 2.0 * a * w.cos() + a * a).log10()
            };
            for f in [100.0, 1_000.0, 4_000.0, 7_000.0] {
                let measured = gain_db(f, k);
                assert!(
                    (measured - expect(f64::from(f))).abs() < 0.1,
                    "{k}/128, {f} Hz: {measured} dB"
                );
            }
        }
        assert!(gain_db(100.0, LPCNET_128THS) < -15.0 && gain_db(7_000.0, LPCNET_128THS) > 4.5);
        // Half: -6 dB at 100 Hz, +3.4 dB at 7 kHz, a 9.5 dB tilt for 21.5.
        assert!((gain_db(100.0, 64) + 6.0).abs() < 0.2, "{}", gain_db(100.0, 64));
    }
}
