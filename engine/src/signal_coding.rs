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
        self.audio as f32
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
}
