//! The predictor as a prior on the next sample: where the sound so far is
//! well predicted, the WaveNet's distribution is shaped by a Gaussian
//! around the backward-adaptive two-stage prediction ([`crate::predictor`]),
//! as LPCNet (Valin & Skoglund, ICASSP 2019) lets a linear predictor carry
//! the predictable part of the signal; here without retraining the network,
//! so a trained model gains it afterwards (`cargo xtask tone-prior`).
//!
//! The Gaussian's mean is the prediction, its variance the predictor's
//! recent squared error (never below the quantisation noise of the
//! predicted µ-law cell). It enters two ways, each scaled by the trust:
//! - **product**: a prior that is the Gaussian with share `max_trust`,
//!   else uniform, raised to `weight`, multiplies the network's
//!   distribution (its log, relative to uniform, is added to the logits);
//!   the uniform share bounds what a surprise (the next note) costs: no
//!   logit falls more than `weight * ln(1 / (1 - max_trust * trust))`;
//! - **mixture**: a share `mix` of the Gaussian itself is mixed into the
//!   result, so a periodic sound the network never learnt (the synthetic
//!   tone of models/README) costs little wherever the predictor foresees
//!   it; no class loses more than `ln(1 / (1 - mix * trust))` nats.
//!
//! The trust is the predictor's own record, its prediction gain (the
//! signal's power over its squared error): none up to 6 dB (noise, onsets),
//! full from 18 dB (a sustained tone), none in silence (below -60 dBFS),
//! where a Gaussian around a zero prediction would only hold the silence.
//!
//! Scoring ([`crate::likelihood`]) and generation read the same shaped
//! logits, so what a prior does to the sound is judged by the same
//! likelihood as the network alone. Allocation-free after
//! [`TonePrior::new`].

use serde::{Deserialize, Serialize};

use crate::mulaw::MuLaw;
use crate::predictor::{Predictor, PredictorConfig, PredictorError};

/// How strongly the prior shapes a model's distribution; stored with a
/// model that uses it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TonePriorConfig {
    /// The power the prior is raised to (its log is multiplied by it):
    /// 0 changes nothing, 1 is the product of the two distributions.
    pub weight: f32,
    /// The Gaussian's share of the prior on a fully periodic sound (below
    /// 1: the uniform rest keeps every class reachable).
    pub max_trust: f32,
    /// The share of the Gaussian itself mixed into the shaped distribution
    /// on a fully periodic sound (0: none), so a sound the network has
    /// never learnt, if the predictor foresees it, is never much less
    /// likely than the Gaussian makes it.
    #[serde(default)]
    pub mix: f32,
}

impl TonePriorConfig {
    /// Whether the numbers make a prior.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.weight.is_finite() && (0.0..=8.0).contains(&self.weight)) {
            return Err(format!(
                "the tone prior's weight must be 0 to 8 (got {})",
                self.weight
            ));
        }
        if !(self.max_trust.is_finite() && (0.0..=0.999).contains(&self.max_trust)) {
            return Err(format!(
                "the tone prior's trust must be 0 to 0.999 (got {})",
                self.max_trust
            ));
        }
        if !(self.mix.is_finite() && (0.0..=0.999).contains(&self.mix)) {
            return Err(format!(
                "the tone prior's mix must be 0 to 0.999 (got {})",
                self.mix
            ));
        }
        Ok(())
    }
}

/// How quickly the predictor's squared error is averaged: over about this
/// many samples (2 ms at 16 kHz), short enough to widen within a few
/// samples of an onset.
const ERROR_SAMPLES: f32 = 32.0;

/// How quickly the signal's power is averaged (16 ms at 16 kHz: longer
/// than the error's, so a low note's waveform does not make it flicker).
const POWER_SAMPLES: f32 = 256.0;

/// Below this power (-60 dBFS) the sound is silence: no prior.
const SILENCE_POWER: f32 = 1e-6;

/// The trust in the Gaussian, as a share of `max_trust`, for a prediction
/// gain (signal power over the prediction's squared error) of `gain_db`:
/// none up to 6 dB (noise, onsets), all from 18 dB (a sustained tone).
pub fn trust_share(gain_db: f32) -> f32 {
    ((gain_db - 6.0) / 12.0).clamp(0.0, 1.0)
}

/// The prior of one stream; see the [module](self).
#[derive(Debug, Clone)]
pub struct TonePrior {
    config: TonePriorConfig,
    predictor: Predictor,
    mulaw: MuLaw,
    /// The audio value and the cell width of each class.
    values: Vec<f32>,
    widths: Vec<f32>,
    /// The prediction of the next sample, made before it came.
    prediction: f32,
    /// Running means of the squared prediction error and of the signal.
    error: f32,
    power: f32,
    /// Scratch: each class's Gaussian mass.
    mass: Vec<f32>,
}

impl TonePrior {
    /// The prior for a model at `rate` Hz with the classes of `mulaw`,
    /// from silence.
    pub fn new(config: TonePriorConfig, rate: u32, mulaw: MuLaw) -> Result<Self, PredictorError> {
        let classes = mulaw.classes();
        Ok(Self {
            config,
            mulaw,
            predictor: Predictor::new(PredictorConfig::for_rate(rate))?,
            values: (0..classes).map(|c| mulaw.decode(c)).collect(),
            widths: (0..classes)
                .map(|c| {
                    let (a, b) = mulaw.cell(c);
                    b - a
                })
                .collect(),
            prediction: 0.0,
            error: 0.0,
            power: 0.0,
            mass: vec![0.0; classes],
        })
    }

    /// Back to silence.
    pub fn reset(&mut self) {
        self.predictor.reset();
        self.prediction = 0.0;
        self.error = 0.0;
        self.power = 0.0;
    }

    /// Feeds the audio value that came (heard or generated).
    pub fn push(&mut self, sample: f32) {
        let e = sample - self.prediction;
        self.error += (e * e - self.error) / ERROR_SAMPLES;
        self.power += (sample * sample - self.power) / POWER_SAMPLES;
        self.predictor.push(sample);
        self.prediction = self.predictor.predict();
    }

    /// How far the prior is trusted for the next sample, from 0 (silence,
    /// onsets, noise) to 1 (a sustained, well predicted tone).
    pub fn trust(&self) -> f32 {
        if self.power < SILENCE_POWER {
            return 0.0;
        }
        let gain_db = 10.0 * (self.power / self.error.max(1e-12)).log10();
        trust_share(gain_db)
    }

    /// The next sample's prediction, and the Gaussian's standard deviation.
    pub fn gaussian(&self) -> (f32, f32) {
        (self.prediction, self.error.sqrt())
    }

    /// Writes `logits` shaped by the prior into `out` (as long as
    /// `logits`): the product's log-prior added, then the Gaussian mixed
    /// in (the result then holds log-probabilities).
    pub fn shape(&mut self, logits: &[f32], out: &mut [f32]) {
        let trust = self.trust();
        let TonePriorConfig {
            weight,
            max_trust,
            mix,
        } = self.config;
        out.copy_from_slice(logits);
        if trust <= 0.0 || (weight == 0.0 && mix == 0.0) {
            return;
        }
        let p = self.prediction;
        let n = logits.len().min(self.values.len());
        // Each class's mass is its cell's width times the density at its
        // value; the variance is at least the quantisation noise of the
        // predicted sample's cell (width^2 / 12), so a perfect prediction
        // cannot make a spike narrower than the classes.
        let cell = self.widths[self.mulaw.encode(p).min(n - 1)];
        let var = self.error + cell * cell / 12.0;
        let inv_var = 1.0 / var;
        // Beyond 6 standard deviations a class's mass is below 1e-7 of the
        // peak's: the uniform part alone. Only the classes inside are
        // computed (the classes' values rise with the class), so a
        // sustained tone, whose prediction is good, costs a few classes.
        let reach = 6.0 * var.sqrt();
        let first = self.mulaw.encode(p - reach).min(n - 1);
        let last = self.mulaw.encode(p + reach).min(n - 1);
        let mut total = 0.0f32;
        for c in first..=last {
            let d = self.values[c] - p;
            let m = self.widths[c] * (-0.5 * d * d * inv_var).exp();
            self.mass[c] = m;
            total += m;
        }
        if total <= 0.0 {
            return;
        }
        let inv_total = 1.0 / total;
        if weight > 0.0 {
            let share = max_trust * trust;
            let uniform = 1.0 - share;
            let scale = share * n as f32 * inv_total;
            let outside = weight * uniform.ln();
            out[..n].iter_mut().for_each(|o| *o += outside);
            for c in first..=last {
                out[c] = logits[c] + weight * (uniform + scale * self.mass[c]).ln();
            }
        }
        let m = mix * trust;
        if m > 0.0 {
            let max = out[..n].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lse = max + out[..n].iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
            // Outside the Gaussian's reach its mass adds nothing.
            let keep = (1.0 - m).ln() - lse;
            out[..first].iter_mut().for_each(|o| *o += keep);
            out[last + 1..n].iter_mut().for_each(|o| *o += keep);
            for (o, &mass) in out[first..=last].iter_mut().zip(&self.mass[first..=last]) {
                *o = ((1.0 - m) * (*o - lse).exp() + m * mass * inv_total).ln();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::likelihood::nll_of;

    const RATE: u32 = 16_000;

    fn prior(weight: f32, mix: f32) -> TonePrior {
        let config = TonePriorConfig {
            weight,
            max_trust: 0.9,
            mix,
        };
        TonePrior::new(config, RATE, MuLaw::default()).unwrap()
    }

    fn tone(i: usize) -> f32 {
        let t = i as f32 / RATE as f32;
        0.3 * (std::f32::consts::TAU * 200.0 * t).sin() + 0.1 * (std::f32::consts::TAU * 400.0 * t).sin()
    }

    /// Logits of a vague model: a broad bump around class 128.
    fn vague() -> Vec<f32> {
        (0..256).map(|c| -((c as f32 - 128.0) / 40.0).powi(2)).collect()
    }

    #[test]
    fn in_silence_and_noise_the_network_stands() {
        let logits = vague();
        let mut out = vec![0.0; 256];
        let mut p = prior(1.0, 0.2);
        assert_eq!(p.trust(), 0.0);
        p.shape(&logits, &mut out);
        assert_eq!(out, logits);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
        for _ in 0..4_000 {
            p.push(rand::Rng::random_range(&mut rng, -0.3f32..0.3));
        }
        assert!(p.trust() < 0.2, "trust {} on noise", p.trust());
    }

    /// Mean nats per sample of the second half of a 4000-sample tone under
    /// `p`'s shaping of `logits`; `check(trust, logits, shaped)` at every
    /// sample.
    fn tone_nll(p: &mut TonePrior, logits: &[f32], mut check: impl FnMut(f32, &[f32])) -> f32 {
        let mulaw = MuLaw::default();
        let mut out = vec![0.0; logits.len()];
        let mut sum = 0.0;
        for i in 0..4_000 {
            if i >= 2_000 {
                p.shape(logits, &mut out);
                sum += nll_of(&out, mulaw.encode(tone(i)));
                check(p.trust(), &out);
            }
            p.push(tone(i));
        }
        sum / 2_000.0
    }

    #[test]
    fn on_a_tone_the_next_sample_gets_far_likelier_and_no_class_falls_far() {
        let logits = vague();
        let without = tone_nll(&mut prior(0.0, 0.0), &logits, |_, out| assert_eq!(out, logits));
        // The product: no logit falls more than the uniform share allows.
        let mut product = prior(1.0, 0.0);
        let with = tone_nll(&mut product, &logits, |trust, out| {
            let bound = (1.0f32 / (1.0 - 0.9 * trust)).ln() + 1e-4;
            for (o, l) in out.iter().zip(&logits) {
                assert!(l - o <= bound, "a logit fell {} (bound {bound})", l - o);
            }
        });
        assert!(product.trust() > 0.8, "trust {} on a tone", product.trust());
        assert!(
            with < 0.5 * without,
            "nats per sample with the prior {with}, without {without}"
        );
        assert!(with < 2.5, "with the prior {with} nats");
        // The mixture: no class's probability falls below (1 - mix x trust)
        // of the network's.
        let mix = tone_nll(&mut prior(0.0, 0.3), &logits, |trust, out| {
            let bound = (1.0f32 / (1.0 - 0.3 * trust)).ln() + 1e-4;
            for c in 0..logits.len() {
                let rise = nll_of(out, c) - nll_of(&logits, c);
                assert!(rise <= bound, "class {c} lost {rise} nats (bound {bound})");
            }
        });
        assert!(
            mix < 0.5 * without,
            "nats per sample mixed {mix}, without {without}"
        );
        product.reset();
        assert_eq!(product.trust(), 0.0);
        assert_eq!(product.gaussian(), (0.0, 0.0));
    }

    #[test]
    fn bad_numbers_are_refused() {
        let good = TonePriorConfig {
            weight: 1.0,
            max_trust: 0.9,
            mix: 0.1,
        };
        assert!(good.validate().is_ok());
        for (weight, max_trust, mix) in [
            (-1.0, 0.5, 0.0),
            (9.0, 0.5, 0.0),
            (f32::NAN, 0.5, 0.0),
            (1.0, 1.0, 0.0),
            (1.0, -0.1, 0.0),
            (1.0, 0.5, 1.0),
            (1.0, 0.5, f32::INFINITY),
        ] {
            let bad = TonePriorConfig {
                weight,
                max_trust,
                mix,
            };
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
