//! Test signals and comparisons shared by the host tests.

/// Deterministic white noise in [-amp, amp).
pub fn noise(len: usize, seed: u64, amp: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}

/// A sine of `freq` Hz at `rate` Hz.
pub fn sine(len: usize, freq: f64, rate: f64, amp: f32) -> Vec<f32> {
    (0..len)
        .map(|i| (std::f64::consts::TAU * freq * i as f64 / rate).sin() as f32 * amp)
        .collect()
}

/// Noise plus a sine: music-like enough for the dream to act on.
pub fn program(len: usize, rate: f64, seed: u64) -> Vec<f32> {
    let n = noise(len, seed, 0.3);
    let s = sine(len, 220.0, rate, 0.4);
    n.iter().zip(&s).map(|(a, b)| a + b).collect()
}

/// What the plugin feeds its dry path and models: non-finite samples are 0.
pub fn sanitized(x: f32) -> f32 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// `signal` delayed by `latency` samples, sanitised.
pub fn delayed(signal: &[f32], latency: usize) -> Vec<f32> {
    (0..signal.len())
        .map(|t| {
            if t < latency {
                0.0
            } else {
                sanitized(signal[t - latency])
            }
        })
        .collect()
}

/// The first index where two signals differ in any bit.
pub fn first_difference(a: &[f32], b: &[f32]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits())
}
