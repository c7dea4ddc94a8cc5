//! A short-time Fourier transform for changing a signal in its own
//! spectrum: analysis of frames, synthesis back to samples (weighted
//! overlap-add with a periodic Hann window at 75% overlap, which sums to a
//! constant, so analysis then synthesis gives the signal back), and the
//! adjoint of synthesis, which carries a gradient on the synthesised
//! samples back to the spectra they came from.

use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

/// Analysis and synthesis of frames of `len` samples every `hop = len / 4`.
pub struct Stft {
    len: usize,
    analysis: Vec<f32>,
    /// The Hann window divided by the overlap-add sum of its squares (3/2),
    /// so that analysis then synthesis is the identity.
    synthesis: Vec<f32>,
    forward: Arc<dyn Fft<f32>>,
    inverse: Arc<dyn Fft<f32>>,
    buf: Vec<Complex32>,
    scratch: Vec<Complex32>,
}

impl Stft {
    /// Frames of `len` samples (a multiple of 4).
    ///
    /// # Panics
    /// If `len` is not a positive multiple of 4.
    pub fn new(len: usize) -> Self {
        assert!(
            len >= 4 && len.is_multiple_of(4),
            "frame length {len} must be a multiple of 4"
        );
        let mut planner = FftPlanner::new();
        let forward = planner.plan_fft_forward(len);
        let inverse = planner.plan_fft_inverse(len);
        let scratch_len = forward
            .get_inplace_scratch_len()
            .max(inverse.get_inplace_scratch_len());
        let analysis = hann(len);
        let synthesis = analysis.iter().map(|w| w / 1.5).collect();
        Self {
            len,
            analysis,
            synthesis,
            forward,
            inverse,
            buf: vec![Complex32::default(); len],
            scratch: vec![Complex32::default(); scratch_len],
        }
    }

    /// Samples per frame.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a frame has samples.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Samples between frames.
    pub fn hop(&self) -> usize {
        self.len / 4
    }

    /// Spectrum bins per frame (`len / 2 + 1`).
    pub fn bins(&self) -> usize {
        self.len / 2 + 1
    }

    /// The spectrum of one frame (`frame.len() == len`) into `spectrum`.
    pub fn analyse(&mut self, frame: &[f32], spectrum: &mut [Complex32]) {
        for ((b, x), w) in self.buf.iter_mut().zip(frame).zip(&self.analysis) {
            *b = Complex32::new(x * w, 0.0);
        }
        self.forward
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        spectrum.copy_from_slice(&self.buf[..self.bins()]);
    }

    /// Adds one frame synthesised from `spectrum` (windowed, ready to be
    /// overlap-added) to `out` (`len` samples).
    pub fn synthesise_add(&mut self, spectrum: &[Complex32], out: &mut [f32]) {
        let (n, bins) = (self.len, self.bins());
        self.buf[..bins].copy_from_slice(spectrum);
        // A real signal's spectrum: DC and Nyquist are real, the upper half
        // mirrors the lower.
        self.buf[0].im = 0.0;
        self.buf[n / 2].im = 0.0;
        for k in 1..n / 2 {
            self.buf[n - k] = self.buf[k].conj();
        }
        self.inverse
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        let scale = 1.0 / n as f32;
        for ((o, b), w) in out.iter_mut().zip(&self.buf).zip(&self.synthesis) {
            *o += b.re * scale * w;
        }
    }

    /// The adjoint of [`synthesise_add`](Self::synthesise_add): given the
    /// gradient of a loss on the `len` samples one frame was added to,
    /// writes the gradient on that frame's spectrum (d/dRe + i d/dIm of
    /// each bin).
    pub fn synthesis_adjoint(&mut self, grad: &[f32], spectrum_grad: &mut [Complex32]) {
        let n = self.len;
        for ((b, g), w) in self.buf.iter_mut().zip(grad).zip(&self.synthesis) {
            *b = Complex32::new(g * w, 0.0);
        }
        self.forward
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        let scale = 1.0 / n as f32;
        for (k, (s, b)) in spectrum_grad.iter_mut().zip(&self.buf).enumerate() {
            // Every bin but DC and Nyquist stands for itself and its mirror.
            let twice = if k == 0 || k == n / 2 { 1.0 } else { 2.0 };
            *s = b * (scale * twice);
        }
    }
}

/// The periodic Hann window of `len` samples, `0.5 - 0.5 cos(2 pi n / len)`
/// computed in f64: the one window every framed analysis in the engine
/// uses (the dream's frames, the spectrograms, the measures).
pub fn hann(len: usize) -> Vec<f32> {
    (0..len)
        .map(|n| (0.5 - 0.5 * (std::f64::consts::TAU * n as f64 / len as f64).cos()) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32;
                (0.031 * t).sin() + 0.4 * (0.17 * t + 1.0).cos() + 0.1 * ((i * 7919 % 97) as f32 / 97.0 - 0.5)
            })
            .collect()
    }

    #[test]
    fn analysis_then_synthesis_gives_the_signal_back_where_frames_overlap_fully() {
        let mut stft = Stft::new(64);
        let x = signal(1024);
        let mut y = vec![0.0f32; x.len()];
        let mut spec = vec![Complex32::default(); stft.bins()];
        let mut start = 0;
        while start + 64 <= x.len() {
            stft.analyse(&x[start..start + 64], &mut spec);
            stft.synthesise_add(&spec, &mut y[start..start + 64]);
            start += stft.hop();
        }
        // Past the first and before the last 3 hops every sample is covered
        // by four frames.
        let worst = (48..1024 - 64)
            .map(|i| (y[i] - x[i]).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "reconstruction error {worst}");
    }

    /// <grad, synthesis(spectrum)> = <adjoint(grad), spectrum> as real inner
    /// products (Re and Im parts as separate coordinates), checked against
    /// finite differences on every coordinate of a random spectrum.
    #[test]
    fn the_adjoint_is_the_gradient_of_synthesis() {
        let mut stft = Stft::new(32);
        let bins = stft.bins();
        let spec: Vec<Complex32> = (0..bins)
            .map(|k| {
                Complex32::new(
                    (k as f32 * 0.7).sin(),
                    if k == 0 || k == 16 {
                        0.0
                    } else {
                        (k as f32 * 1.3).cos()
                    },
                )
            })
            .collect();
        let grad = signal(32);
        let loss = |stft: &mut Stft, s: &[Complex32]| {
            let mut out = vec![0.0f32; 32];
            stft.synthesise_add(s, &mut out);
            out.iter().zip(&grad).map(|(a, b)| f64::from(a * b)).sum::<f64>()
        };
        let mut adj = vec![Complex32::default(); bins];
        stft.synthesis_adjoint(&grad, &mut adj);
        let eps = 1e-2f32;
        for k in 0..bins {
            for imaginary in [false, true] {
                if imaginary && (k == 0 || k == 16) {
                    continue;
                }
                let mut up = spec.clone();
                let mut down = spec.clone();
                let d = if imaginary {
                    Complex32::new(0.0, eps)
                } else {
                    Complex32::new(eps, 0.0)
                };
                up[k] += d;
                down[k] -= d;
                let numeric = (loss(&mut stft, &up) - loss(&mut stft, &down)) / (2.0 * f64::from(eps));
                let analytic = f64::from(if imaginary { adj[k].im } else { adj[k].re });
                assert!(
                    (numeric - analytic).abs() < 1e-3,
                    "bin {k} {}: {numeric} vs {analytic}",
                    if imaginary { "im" } else { "re" }
                );
            }
        }
    }
}
