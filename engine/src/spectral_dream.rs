//! The spectral dream: a dream whose change is made of the input's own
//! material.
//!
//! The paper's dream moves every raw sample along the network's gradient,
//! so its change is broadband: hiss between the input's partials. Here the
//! change lives in the input's short-time spectrum instead. The stream is
//! cut into short frames (`frame` samples, a quarter of that apart); the
//! change is a spectrum `D` per frame, synthesised back to samples by
//! overlap-add. Each gradient step carries the network's gradient on the
//! samples back to the frames' spectra (the adjoint of synthesis) and
//! weights it by the input's own spectrum there (`|X|^p`, or projects it on
//! a real gain `D = G X`), so the change grows only where the input already
//! has energy, with the input's own spectral shape.
//!
//! The frames live on the stream, not on the one-second windows the
//! network listens to: a window's optimisation starts from the change the
//! previous window left on the frames they share, and the change is
//! synthesised by the frames' own short overlap-add. So nothing is
//! cross-faded at the window hop, and every frame gets the same number of
//! steps (frames that only one window reaches get double steps). Each step
//! also shifts the window by a few milliseconds at random (seeded), so no
//! step can exploit one alignment of the first layer's 10 ms stride.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustfft::num_complex::Complex32;

use crate::dreamer::{normalise, DreamError, DreamParams, Dreamer, Score, SILENCE};
use crate::stft::Stft;

/// How the network's gradient is carried into the input's spectrum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weighting {
    /// The change's spectrum moves by the gradient times `|X|^p`: `p = 2`
    /// is a complex gain on the input's spectrum, `p = 1` a gentler
    /// weighting, `p = 0` the raw gradient seen through frames.
    Power(f32),
    /// A real gain on the input's spectrum (`D = G X`, G real): the change
    /// keeps the input's phase, like a moving equaliser.
    RealGain,
}

/// The spectral dream's shape. The defaults are the measured best (see
/// the README's dream table); the others are kept for comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpectralSettings {
    /// Frame length at the model rate (a multiple of 4; the hop is a
    /// quarter of it and must divide the window's hop).
    pub frame: usize,
    /// How the gradient is weighted.
    pub weighting: Weighting,
    /// Normalise each step per frame (each frame's strongest change is the
    /// step) rather than per window.
    pub per_frame: bool,
    /// Per frame: the step is set by the largest relative update among
    /// this many frames either side, so neighbouring frames change alike.
    pub spread: usize,
    /// A step of `step` changes the spectrum by up to `gain x step` of the
    /// frame's (or window's) strongest bin.
    pub gain: f32,
    /// Largest random shift of the window per step, as a fraction of the
    /// network's first-layer stride.
    pub jitter: f32,
    /// Which windows change a frame, and how much each.
    pub sharing: Sharing,
}

/// How the windows that hold a frame share its changes. Every frame gets
/// the same total: two windows' worth of steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Every window that holds the frame, equally (double steps where only
    /// one does).
    Even,
    /// Only the window whose middle half holds the frame's centre, with
    /// double steps.
    Central,
    /// The windows that hold it, each weighted by a Hann window of the
    /// frame's place in it (the weights of the two sum to one).
    Tapered,
}

impl Default for SpectralSettings {
    /// The measured best (README, "Dream modes"): 62.5 ms frames, the
    /// gradient weighted by `|X|`, steps normalised per frame, each frame
    /// changed by the window whose middle holds it, shifts of up to half a
    /// stride.
    fn default() -> Self {
        Self {
            frame: 1_000,
            weighting: Weighting::Power(1.0),
            per_frame: true,
            spread: 0,
            gain: 4.0,
            jitter: 0.5,
            sharing: Sharing::Central,
        }
    }
}

/// The change may be at most this many times as loud as the input, block
/// by block. It bites only where a frame's change reaches into a quiet
/// stretch of the input, as before an onset: within the music the change
/// is well under the input.
pub const ENVELOPE_CAP: f32 = 2.0;
/// Blocks of this many model samples (8 ms at 16 kHz) measure the levels;
/// the input's is the loudest of a block and its neighbours, so one cycle
/// of a bass note does not gate its own change.
const ENVELOPE_BLOCK: usize = 128;

/// Scales `change` down, block by block, wherever it is louder than
/// [`ENVELOPE_CAP`] times `input` (gains interpolated between block
/// centres, so no step is heard); `gains` is scratch space.
fn hold_under_envelope(change: &mut [f32], input: &[f32], gains: &mut Vec<f32>) {
    let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt();
    let blocks = change.len().div_ceil(ENVELOPE_BLOCK);
    let level = |x: &[f32], b: usize| rms(&x[b * ENVELOPE_BLOCK..((b + 1) * ENVELOPE_BLOCK).min(x.len())]);
    gains.clear();
    for b in 0..blocks {
        let near = (b.saturating_sub(1)..(b + 2).min(blocks)).map(|n| level(input, n));
        let input_level = near.fold(0.0f32, f32::max);
        let change_level = level(change, b);
        gains.push(if change_level > ENVELOPE_CAP * input_level {
            ENVELOPE_CAP * input_level / change_level
        } else {
            1.0
        });
    }
    if gains.iter().all(|&g| g == 1.0) {
        return;
    }
    let half = ENVELOPE_BLOCK as f32 / 2.0;
    for (i, v) in change.iter_mut().enumerate() {
        // Position in units of blocks, measured from the first centre.
        let at = (i as f32 - half) / ENVELOPE_BLOCK as f32;
        let b = (at.floor().max(0.0) as usize).min(blocks - 1);
        let next = (b + 1).min(blocks - 1);
        let t = (at - b as f32).clamp(0.0, 1.0);
        *v *= gains[b] + (gains[next] - gains[b]) * t;
    }
}

/// One analysis frame of the stream and the change made to it.
struct Frame {
    /// Absolute position of its first sample in the model-rate stream.
    start: u64,
    /// The input's spectrum.
    x: Vec<Complex32>,
    /// The change's spectrum.
    d: Vec<Complex32>,
    /// Steps are scaled so that every frame gets the same total (see
    /// [`Sharing`]): 2 over the number of windows that reach it.
    scale: f32,
}

/// The streaming state of the spectral dream: the frames the current
/// window reaches, and scratch space.
pub struct SpectralDream {
    settings: SpectralSettings,
    stft: Stft,
    window: usize,
    hop: usize,
    frames: VecDeque<Frame>,
    /// Index of the next window in the stream.
    index: u64,
    samples: Vec<f32>,
    frame_buf: Vec<f32>,
    grad_frame: Vec<Complex32>,
    updates: Vec<Vec<Complex32>>,
    relative: Vec<f32>,
    gains: Vec<f32>,
}

impl SpectralDream {
    /// The state for windows of `window` samples (even, at least 8), half a
    /// window apart.
    pub fn new(window: usize, settings: SpectralSettings) -> Self {
        let hop = window / 2;
        // A model with short or odd windows gets the longest frame that
        // fits: no longer than the hop, its own hop dividing the window's.
        let frame = (1..=settings.frame.min(hop) / 4)
            .rev()
            .map(|q| 4 * q)
            .find(|f| hop.is_multiple_of(f / 4))
            .expect("a frame of 4 always fits");
        let settings = SpectralSettings { frame, ..settings };
        let stft = Stft::new(frame);
        let frames_per_window = (window - settings.frame) / stft.hop() + 1;
        Self {
            settings,
            window,
            hop,
            frames: VecDeque::with_capacity(frames_per_window + 4),
            index: 0,
            samples: vec![0.0; window],
            frame_buf: vec![0.0; settings.frame],
            grad_frame: vec![Complex32::default(); stft.bins()],
            updates: vec![vec![Complex32::default(); stft.bins()]; frames_per_window],
            relative: Vec::with_capacity(frames_per_window),
            gains: Vec::with_capacity(window / ENVELOPE_BLOCK + 2),
            stft,
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> SpectralSettings {
        self.settings
    }

    /// Forgets the stream, as at construction.
    pub fn reset(&mut self) {
        self.frames.clear();
        self.index = 0;
    }

    /// Moves on by one window of silence when every frame holds silence
    /// (the stream only calls it then): the next window starts afresh, at
    /// the next window's place, with the same random shifts it would have.
    pub fn skip_window(&mut self) {
        self.frames.clear();
        self.index += 1;
    }

    /// How much window `index` changes the frame starting at `start`
    /// (0: not at all), as a multiple of one step.
    fn share(&self, index: u64) -> impl Fn(u64) -> f32 + use<> {
        let (sharing, frame, window, hop) = (
            self.settings.sharing,
            self.settings.frame as u64,
            self.window as u64,
            self.hop as u64,
        );
        let origin = index * hop;
        move |start| {
            let centre = start + frame / 2;
            match sharing {
                Sharing::Central => {
                    if centre.saturating_sub(window / 4) / hop == index {
                        2.0
                    } else {
                        0.0
                    }
                }
                Sharing::Even | Sharing::Tapered if start < origin || start + frame > origin + window => 0.0,
                Sharing::Even => 1.0,
                Sharing::Tapered => {
                    // The first window of the stream has no left neighbour:
                    // it takes the whole of its first half.
                    if index == 0 && centre < hop {
                        return 2.0;
                    }
                    let phase = std::f64::consts::PI * (centre - origin) as f64 / window as f64;
                    (2.0 * phase.sin().powi(2)) as f32
                }
            }
        }
    }

    /// How many windows change a frame starting at `start`.
    fn visits(&self, start: u64) -> u64 {
        let (w, h, f) = (self.window as u64, self.hop as u64, self.settings.frame as u64);
        let last = start / h;
        let first = (start + f).saturating_sub(w).div_ceil(h);
        last + 1 - first.min(last + 1)
    }

    /// Dreams the next window of the stream (`raw`, in audio units, half a
    /// window after the previous one) and writes the finished change for
    /// its first half into `out` (`window / 2` samples). With `score`, also
    /// returns the target's value on the window before and after.
    pub fn process(
        &mut self,
        dreamer: &Dreamer,
        raw: &[f32],
        params: &DreamParams,
        gate: bool,
        score: bool,
        out: &mut [f32],
    ) -> Result<Option<Score>, DreamError> {
        if raw.len() != self.window {
            return Err(DreamError::WindowLength {
                expected: self.window,
                found: raw.len(),
            });
        }
        let origin = self.index * self.hop as u64;
        self.take_frames(raw, origin);
        let (normalised, peak) = normalise(raw);
        let dream = params.iterations > 0 && !(gate && peak < SILENCE);
        let peak = if peak < SILENCE { 1.0 } else { peak };
        let mut result = Ok(None);
        if dream {
            result = self.optimise(dreamer, raw, &normalised, peak, origin, params, score);
        }
        self.synthesise(origin, raw);
        out.copy_from_slice(&self.samples[..self.hop]);
        self.index += 1;
        result
    }

    /// Drops the frames the window no longer overlaps and analyses the
    /// ones it reaches for the first time.
    fn take_frames(&mut self, raw: &[f32], origin: u64) {
        let (frame, fhop) = (self.settings.frame as u64, self.stft.hop() as u64);
        while self.frames.front().is_some_and(|f| f.start + frame <= origin) {
            self.frames.pop_front();
        }
        let mut next = self.frames.back().map_or(origin, |f| f.start + fhop);
        while next + frame <= origin + self.window as u64 {
            let at = (next - origin) as usize;
            let mut x = vec![Complex32::default(); self.stft.bins()];
            self.stft.analyse(&raw[at..at + frame as usize], &mut x);
            let scale = match self.settings.sharing {
                Sharing::Even => 2.0 / self.visits(next).max(1) as f32,
                Sharing::Central | Sharing::Tapered => 1.0,
            };
            self.frames.push_back(Frame {
                start: next,
                d: vec![Complex32::default(); x.len()],
                x,
                scale,
            });
            next += fhop;
        }
    }

    /// The change over the window, in audio units, into `self.samples`:
    /// the frames overlap-added, then held under the input's own level
    /// (see [`ENVELOPE_CAP`]), so a frame's change cannot sound before the
    /// onset it belongs to, where the input is still quiet.
    fn synthesise(&mut self, origin: u64, raw: &[f32]) {
        let frame = self.settings.frame;
        self.samples.fill(0.0);
        for f in &self.frames {
            self.frame_buf.fill(0.0);
            self.stft.synthesise_add(&f.d, &mut self.frame_buf);
            // Frames from before the window reach into its start.
            let (skip, at) = if f.start < origin {
                ((origin - f.start) as usize, 0)
            } else {
                (0, (f.start - origin) as usize)
            };
            for (s, v) in self.samples[at..].iter_mut().zip(&self.frame_buf[skip..frame]) {
                *s += v;
            }
        }
        hold_under_envelope(&mut self.samples, raw, &mut self.gains);
    }

    #[allow(clippy::too_many_arguments)]
    fn optimise(
        &mut self,
        dreamer: &Dreamer,
        raw: &[f32],
        normalised: &[f32],
        peak: f32,
        origin: u64,
        params: &DreamParams,
        score: bool,
    ) -> Result<Option<Score>, DreamError> {
        let before = if score {
            Some(dreamer.target_value(normalised, &params.target)?)
        } else {
            None
        };
        let mut rng =
            ChaCha8Rng::seed_from_u64(params.seed ^ (self.index.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let stride = dreamer.model().config.frontend_stride as f32;
        let jitter = (self.settings.jitter * stride).round() as i64;
        let frame = self.settings.frame;
        let mut view = vec![0.0f32; self.window];
        let share = self.share(self.index);
        let changes = |start: u64| share(start) > 0.0;
        for _ in 0..params.iterations {
            self.synthesise(origin, raw);
            // The window as the network hears it, shifted by `shift`.
            let shift = if jitter > 0 {
                rng.random_range(-jitter..=jitter)
            } else {
                0
            };
            for (i, v) in view.iter_mut().enumerate() {
                let from = i as i64 - shift;
                *v = if (0..self.window as i64).contains(&from) {
                    normalised[from as usize] + self.samples[from as usize] / peak
                } else {
                    0.0
                };
            }
            let (shifted_grad, _) = dreamer.loss_gradient(&view, params)?;
            // Back to the window's own time: grad[i] = shifted_grad[i + shift].
            for (i, g) in self.samples.iter_mut().enumerate() {
                let at = i as i64 + shift;
                *g = if (0..self.window as i64).contains(&at) {
                    shifted_grad[at as usize]
                } else {
                    0.0
                };
            }
            // Each frame the window owns: the gradient on its spectrum,
            // weighted by the input's spectrum.
            let mut window_peak = 0.0f32;
            for (active, f) in self.frames.iter().filter(|f| changes(f.start)).enumerate() {
                let at = (f.start - origin) as usize;
                self.stft
                    .synthesis_adjoint(&self.samples[at..at + frame], &mut self.grad_frame);
                let update = &mut self.updates[active];
                let mut frame_peak = 0.0f32;
                for ((u, g), x) in update.iter_mut().zip(&self.grad_frame).zip(&f.x) {
                    // Descent on the loss.
                    *u = match self.settings.weighting {
                        Weighting::Power(p) => -g * x.norm().powf(p),
                        Weighting::RealGain => -x * (x.conj() * g).re,
                    };
                    frame_peak = frame_peak.max(u.norm());
                }
                window_peak = window_peak.max(frame_peak);
            }
            if !(window_peak > 0.0 && window_peak.is_finite()) {
                break;
            }
            let window_ref = self
                .frames
                .iter()
                .filter(|f| changes(f.start))
                .flat_map(|f| f.x.iter().map(|x| x.norm()))
                .fold(0.0f32, f32::max);
            // Per frame: how large the update is against the frame's own
            // strongest bin; each frame is then normalised by the largest
            // such ratio among its neighbours, so the change's level
            // follows the input's without jumping from frame to frame.
            self.relative.clear();
            for (f, update) in self.frames.iter().filter(|f| changes(f.start)).zip(&self.updates) {
                let peak = update.iter().map(|u| u.norm()).fold(0.0f32, f32::max);
                let reference = f.x.iter().map(|x| x.norm()).fold(0.0f32, f32::max);
                self.relative
                    .push(if reference > 0.0 { peak / reference } else { 0.0 });
            }
            let spread = self.settings.spread;
            let step = params.step * self.settings.gain;
            for (i, (f, update)) in self
                .frames
                .iter_mut()
                .filter(|f| changes(f.start))
                .zip(&self.updates)
                .enumerate()
            {
                let norm = if self.settings.per_frame {
                    let near =
                        &self.relative[i.saturating_sub(spread)..(i + spread + 1).min(self.relative.len())];
                    near.iter().fold(0.0f32, |m, &r| m.max(r))
                } else {
                    window_peak / window_ref.max(f32::MIN_POSITIVE)
                };
                if !(norm > 0.0 && norm.is_finite()) {
                    continue;
                }
                let k = step * f.scale * share(f.start) / norm;
                for (d, u) in f.d.iter_mut().zip(update) {
                    *d += u * k;
                }
            }
        }
        if let Some(before) = before {
            self.synthesise(origin, raw);
            for (v, (n, d)) in view.iter_mut().zip(normalised.iter().zip(&self.samples)) {
                *v = n + d / peak;
            }
            let after = dreamer.target_value(&view, &params.target)?;
            return Ok(Some(Score { before, after }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Before an onset (input silent) the change is held down to nothing;
    /// where the input sounds, a change under the cap is left exactly as
    /// it is; the held part fades, without a step.
    #[test]
    fn the_change_is_held_under_the_inputs_level() {
        let n = 4_096;
        let onset = 2_048;
        let input: Vec<f32> = (0..n)
            .map(|i| if i >= onset { (i as f32 * 0.05).sin() } else { 0.0 })
            .collect();
        let original: Vec<f32> = (0..n).map(|i| 0.3 * (i as f32 * 0.11).sin()).collect();
        let mut change = original.clone();
        let mut gains = Vec::new();
        hold_under_envelope(&mut change, &input, &mut gains);
        let block = ENVELOPE_BLOCK;
        assert!(
            change[..onset - 2 * block].iter().all(|&v| v == 0.0),
            "pre-echo kept"
        );
        assert_eq!(&change[onset + 2 * block..], &original[onset + 2 * block..]);
        let steps = change
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0f32, f32::max);
        assert!(steps < 0.05, "a jump of {steps}");
        // Under the cap everywhere: nothing changes at all.
        let mut quiet: Vec<f32> = original.iter().map(|v| v * 0.1).collect();
        let loud: Vec<f32> = (0..n).map(|i| (i as f32 * 0.05).sin()).collect();
        let before = quiet.clone();
        hold_under_envelope(&mut quiet, &loud, &mut gains);
        assert_eq!(quiet, before);
    }

    #[test]
    fn every_frame_is_reached_by_one_or_two_windows() {
        let s = SpectralDream::new(16_000, SpectralSettings::default());
        // Frames 250 apart; windows of 16000 every 8000.
        assert_eq!(s.visits(0), 1);
        assert_eq!(s.visits(7_000), 1);
        assert_eq!(s.visits(8_000), 2);
        assert_eq!(s.visits(15_000), 2);
        assert_eq!(s.visits(15_250), 1, "reaches past the first window's end");
        assert_eq!(s.visits(16_000), 2);
    }
}
