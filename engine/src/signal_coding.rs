//! How audio becomes a WaveNet's classes and back, with the model options
//! of issue 17 that change it (both from LPCNet, Valin & Skoglund, ICASSP
//! 2019):
//! - **pre-emphasis**: the network models `y = x - a x[t-1]`
//!   ([`crate::emphasis`]), so the µ-law quantisation noise, white in `y`,
//!   lands under the strong low harmonics once de-emphasis undoes the tilt;
//! - **residual target**: the network's output classes are those of the
//!   excitation `e = y - p`, the signal minus the predictor's prediction
//!   ([`crate::prediction_inputs`]), and the sample is `p + e`: the
//!   predictable part is the predictor's, the network models the rest.
//!
//! A residual beyond full scale (a prediction more than full scale off)
//! clips, as the signal itself would.
//!
//! With **DC-blocked feedback** (a model option), generation hears each
//! sample it draws high-passed ([`feedback_class`](SignalCoding::feedback_class)):
//! a backward-adaptive predictor continues whatever offset its history
//! holds and de-emphasis multiplies one by 6.7, so without the blocker an
//! offset wanders to full scale (models/README, sessions 16 and 17).
//! Recorded audio, which has none, is heard as it is.
//!
//! The network's *input* is always the class of `y` (with the prediction
//! classes beside it). Everything here is a function of classes and of the
//! prediction, the same numbers in training, the sampler and scoring; the
//! de-emphasis follows every input class, so generated audio continues
//! from whatever was fed, primed or generated.

use crate::emphasis::{DeEmphasis, PreEmphasis};
use crate::mulaw::MuLaw;
use crate::wavenet::WavenetConfig;

/// Where de-emphasised audio clips. De-emphasis can carry a noisy model
/// past full scale (its gain at low frequencies is 6.7); the audio clips
/// there, as a converter would, and the filter goes on from the clipped
/// value.
const FULL_SCALE: f64 = 1.0;

/// The DC blocker's pole: `1 - z^-1` over `1 - 0.995 z^-1`, 3 dB down at
/// about 13 Hz at 16 kHz, below the piano's lowest note (27.5 Hz).
const DC_POLE: f64 = 0.995;

/// A one-pole DC blocker's memory.
#[derive(Debug, Clone, Copy, Default)]
struct DcBlocker {
    input: f64,
    output: f64,
}

impl DcBlocker {
    /// The blocked value of the next sample.
    fn process(&mut self, x: f64) -> f64 {
        let y = x - self.input + DC_POLE * self.output;
        self.input = x;
        self.output = y;
        y
    }

    /// Goes on from a sample heard as it is (as if the blocker had let a
    /// signal without offset through unchanged).
    fn follow(&mut self, x: f64) {
        self.input = x;
        self.output = x;
    }
}

/// A model's signal coding, with the filter states of one stream.
#[derive(Debug, Clone)]
pub struct SignalCoding {
    mulaw: MuLaw,
    emphasis: bool,
    /// The emphasis coefficient in 128ths.
    coefficient: u8,
    residual: bool,
    /// The audio value of every class.
    decoded: Vec<f32>,
    /// Pre-emphasis of audio turned into input classes.
    pre: PreEmphasis,
    /// De-emphasis of the input classes fed: the audio they make.
    de: DeEmphasis,
    /// The last audio value `de` gave.
    audio: f64,
    /// With DC-blocked feedback, the blocker, and whether the next class
    /// fed is one it made.
    dc: Option<(DcBlocker, bool)>,
}

impl SignalCoding {
    /// The coding of `config`'s options, from silence.
    pub fn new(config: &WavenetConfig, mulaw: MuLaw) -> Self {
        Self {
            mulaw,
            emphasis: config.pre_emphasis,
            coefficient: config.emphasis_128ths,
            residual: config.residual_target,
            decoded: (0..mulaw.classes()).map(|k| mulaw.decode(k)).collect(),
            pre: PreEmphasis::new(config.emphasis_128ths),
            de: DeEmphasis::new(config.emphasis_128ths, FULL_SCALE),
            audio: 0.0,
            dc: config.dc_block.then(|| (DcBlocker::default(), false)),
        }
    }

    /// Whether the coding is plain µ-law (input and output classes are the
    /// audio's classes).
    pub fn is_plain(&self) -> bool {
        !self.emphasis && !self.residual
    }

    /// Back to silence.
    pub fn reset(&mut self) {
        self.pre = PreEmphasis::new(self.coefficient);
        self.de = DeEmphasis::new(self.coefficient, FULL_SCALE);
        self.audio = 0.0;
        if let Some(dc) = &mut self.dc {
            *dc = (DcBlocker::default(), false);
        }
    }

    /// The input class of the next audio sample (pre-emphasised first, if
    /// the model is). Advances the pre-emphasis only: feeding the class
    /// ([`fed`](Self::fed)) advances the rest.
    pub fn input_class(&mut self, x: f32) -> usize {
        if self.emphasis {
            self.mulaw.encode(self.pre.process(x) as f32)
        } else {
            self.mulaw.encode(x)
        }
    }

    /// Notes an input class fed to the network; returns the audio it makes.
    pub fn fed(&mut self, class: usize) -> f32 {
        let value = f64::from(self.value(class));
        self.audio = if self.emphasis {
            self.de.process(value)
        } else {
            value
        };
        if let Some((blocker, made)) = &mut self.dc {
            if !std::mem::take(made) {
                blocker.follow(self.audio);
            }
        }
        self.audio as f32
    }

    /// The input class generation feeds back for a drawn input class: the
    /// class itself, or with DC-blocked feedback the class of the drawn
    /// audio high-passed (the next [`fed`](Self::fed) must be of it).
    pub fn feedback_class(&mut self, class: usize) -> usize {
        if self.dc.is_none() {
            return class;
        }
        let value = f64::from(self.value(class));
        let drawn = if self.emphasis { self.de.peek(value) } else { value };
        let Some((blocker, made)) = &mut self.dc else {
            return class;
        };
        let heard = blocker.process(drawn);
        *made = true;
        let coded = if self.emphasis {
            heard - self.de.peek(0.0)
        } else {
            heard
        };
        self.mulaw.encode(coded as f32)
    }

    /// The audio the last input class made.
    pub fn audio(&self) -> f32 {
        self.audio as f32
    }

    /// The class the network is trained to output for the input class
    /// that came, given the prediction `p` made before it.
    pub fn target_class(&self, input_class: usize, p: f32) -> usize {
        if self.residual {
            self.mulaw.encode(self.value(input_class) - p)
        } else {
            input_class
        }
    }

    /// The input class a drawn output class `target` makes, given the
    /// prediction `p`.
    pub fn input_from_target(&self, target: usize, p: f32) -> usize {
        if self.residual {
            self.mulaw.encode(p + self.value(target))
        } else {
            target.min(self.decoded.len() - 1)
        }
    }

    /// `-ln` of the probability that the next audio sample falls in the
    /// µ-law cell of `x`, under `logits` over this coding's output classes
    /// (given the prediction `p`): comparable across codings. Each output
    /// class's probability is spread evenly over its cell, shifted to
    /// where it lands in the audio (by `p` for a residual target, by the
    /// de-emphasis filter's memory for pre-emphasis), and the mass inside
    /// `x`'s cell is summed. A shifted grid of cells covers every audio
    /// class, so none is out of reach; for the plain coding the cells are
    /// the audio's own and this is the cross-entropy of the logits.
    pub fn signal_nll(&self, logits: &[f32], x: f32, p: f32) -> f32 {
        let k = self.mulaw.encode(x);
        if self.is_plain() {
            return crate::likelihood::nll_of(logits, k);
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let weight = |j: usize| f64::from((logits[j] - max).exp());
        let total: f64 = (0..logits.len()).map(weight).sum();
        let mut mass = 0.0f64;
        self.mulaw
            .overlapping_cells(k, self.cell_shift(p), |j, share| mass += weight(j) * share);
        // Underflow only: a floor keeps the sum finite.
        -((mass / total).max(1e-30).ln()) as f32
    }

    /// How far the output classes' cells move on their way to the audio,
    /// given the prediction `p` (see [`signal_nll`](Self::signal_nll)): by
    /// `p` for a residual target, by the de-emphasis filter's memory for
    /// pre-emphasis, 0 for the plain coding. The trainer's signal loss
    /// reads the same shift.
    pub fn cell_shift(&self, p: f32) -> f64 {
        let mut shift = 0.0f64;
        if self.residual {
            shift += f64::from(p);
        }
        if self.emphasis {
            shift += self.de.peek(0.0);
        }
        shift
    }

    fn value(&self, class: usize) -> f32 {
        self.decoded[class.min(self.decoded.len() - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coding(emphasis: bool, residual: bool) -> SignalCoding {
        let config = WavenetConfig {
            pre_emphasis: emphasis,
            residual_target: residual,
            ..WavenetConfig::default()
        };
        SignalCoding::new(&config, MuLaw::new(256).unwrap())
    }

    fn tone(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.5 * (i as f32 * 0.07).sin() + 0.1 * (i as f32 * 0.9).sin())
            .collect()
    }

    #[test]
    fn plain_coding_is_mulaw() {
        let q = MuLaw::new(256).unwrap();
        let mut c = coding(false, false);
        assert!(c.is_plain());
        for x in tone(500) {
            let k = c.input_class(x);
            assert_eq!(k, q.encode(x));
            assert_eq!(c.target_class(k, 0.3), k);
            assert_eq!(c.input_from_target(k, 0.3), k);
            assert_eq!(c.fed(k), q.decode(k));
        }
    }

    #[test]
    fn emphasised_classes_come_back_as_the_audio() {
        let q = MuLaw::new(256).unwrap();
        let mut c = coding(true, false);
        let audio = tone(2_000);
        let mut worst = 0.0f32;
        for &x in &audio {
            let k = c.input_class(x);
            let back = c.fed(k);
            worst = worst.max((back - x).abs());
        }
        // The quantisation error of y, filtered by 1 / (1 - 0.85 z^-1): a
        // few of the µ-law's loud steps (0.03 each near 0.6), not more.
        assert!(worst < 0.1, "{worst}");
        // And it is not the plain coding: the emphasised classes differ.
        let mut plain = coding(false, false);
        let mut emph = coding(true, false);
        let differ = audio
            .iter()
            .filter(|&&x| plain.input_class(x) != emph.input_class(x))
            .count();
        assert!(differ > 1_000, "{differ}");
        let _ = q;
    }

    #[test]
    fn residual_targets_give_back_their_input_classes() {
        let q = MuLaw::new(256).unwrap();
        let c = coding(false, true);
        let (mut exact, mut n) = (0, 0);
        for (i, x) in tone(3_000).into_iter().enumerate() {
            let k = q.encode(x);
            // Predictions near the sample, as a good predictor's are, and
            // some far off (a residual beyond full scale would clip).
            let p = if i % 10 == 0 {
                -0.5 * x
            } else {
                x + 0.01 * ((i % 7) as f32 - 3.0)
            };
            let target = c.target_class(k, p);
            let back = c.input_from_target(target, p);
            assert!(
                (back as i64 - k as i64).abs() <= 1,
                "{x} {p}: {k} -> {target} -> {back}"
            );
            exact += usize::from(back == k);
            n += 1;
            // The residual is small where the prediction is good: its class
            // sits near the middle, where µ-law is finest.
            if i % 10 != 0 {
                assert!((target as i64 - 128).abs() < 60, "{target}");
            }
        }
        assert!(exact * 100 >= 97 * n, "{exact} of {n}");
    }

    /// A drawn sample fed back through the DC blocker: an offset drawn
    /// over and over dies away in what the network hears (time constant
    /// 200 samples), where without the blocker it stays; recorded classes
    /// fed go through unchanged.
    #[test]
    fn dc_blocked_feedback_lets_no_offset_through() {
        let q = MuLaw::new(256).unwrap();
        for emphasis in [false, true] {
            let config = WavenetConfig {
                pre_emphasis: emphasis,
                dc_block: true,
                ..WavenetConfig::default()
            };
            let mut blocked = SignalCoding::new(&config, q);
            let mut recorded = SignalCoding::new(&config, q);
            for x in tone(500) {
                let k = recorded.input_class(x);
                let _ = blocked.input_class(x);
                assert_eq!(blocked.fed(k), recorded.fed(k));
            }
            // Draw the class of a steady 0.3 (after pre-emphasis, the
            // class whose audio is 0.3 given the filter's memory) over and
            // over: the audio the last one makes.
            let steady = |c: &mut SignalCoding| {
                let mut heard = 0.0f32;
                for _ in 0..2_000 {
                    let drawn = if emphasis {
                        q.encode((0.3 - c.de.peek(0.0)) as f32)
                    } else {
                        q.encode(0.3)
                    };
                    let fed = c.feedback_class(drawn);
                    heard = c.fed(fed);
                }
                heard
            };
            let heard = steady(&mut blocked);
            assert!(heard.abs() < 0.01, "emphasis {emphasis}: still {heard}");
            let kept = steady(&mut coding(emphasis, false));
            assert!(
                (kept - 0.3).abs() < 0.02,
                "emphasis {emphasis}: without the blocker {kept}"
            );
        }
    }
}
