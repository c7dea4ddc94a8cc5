//! Tone-aware sampling, as LPCNet (Valin & Skoglund, ICASSP 2019) samples
//! its excitation: where the sound so far is periodic, the distribution is
//! sharpened (probabilities raised to a power from 1 to 2, the same as
//! dividing the temperature by it), and a small floor is subtracted from
//! the probabilities, so the long tail of unlikely classes (the hiss over
//! a note) is never drawn. Unlike LPCNet, the floor too scales with the
//! periodicity (none in silence, at onsets or in noise): an unconditional
//! model's next note begins in that tail. Periodicity comes from the generated audio
//! itself: the gain of the backward-adaptive pitch predictor
//! ([`crate::predictor`]) fitted to it, which is near 0 in silence, at
//! onsets and in noise, and near 1 on a sustained tone.

use rand::Rng;

use crate::predictor::{Predictor, PredictorConfig, PredictorError};
use crate::sampler::{sample_class_above_floor, Sampler};

/// Of each probability this much (of the total) is taken away before a
/// draw on a fully periodic sound: LPCNet's constant.
pub const FLOOR: f32 = 0.002;

/// The power the probabilities are raised to for a pitch gain `g`:
/// LPCNet's `1 + max(0, 1.5 g - 0.5)`, so 1 up to a gain of 1/3 and 2 at 1.
pub fn sharpening(gain: f32) -> f32 {
    1.0 + (1.5 * gain - 0.5).clamp(0.0, 1.0)
}

/// Draws classes from a WaveNet's logits the tone-aware way; see the
/// [module](self). Allocation-free after [`new`](Self::new).
#[derive(Debug, Clone)]
pub struct ToneAwareSampler {
    predictor: Predictor,
    probs: Vec<f32>,
}

impl ToneAwareSampler {
    /// For a model at `rate` Hz with `classes` output classes, starting
    /// from silence.
    pub fn new(rate: u32, classes: usize) -> Result<Self, PredictorError> {
        Ok(Self {
            predictor: Predictor::new(PredictorConfig::for_rate(rate))?,
            probs: vec![0.0; classes],
        })
    }

    /// The power the next draw raises the probabilities to.
    pub fn power(&self) -> f32 {
        sharpening(self.predictor.pitch().1)
    }

    /// Draws the next class from `logits` at `temperature` (0: the most
    /// likely class), sharpened and floored. Then [`push`](Self::push) the
    /// sample it decodes to.
    pub fn draw<R: Rng>(&mut self, logits: &[f32], temperature: f32, rng: &mut R) -> usize {
        let power = self.power();
        // The floor too only where the sound is tonal: in silence and at
        // an onset the next note's first samples are in the tail.
        let floor = FLOOR * (power - 1.0);
        sample_class_above_floor(logits, temperature / power, floor, &mut self.probs, rng)
    }

    /// The sampler's next sample, drawn the tone-aware way and heard.
    pub fn sample_next<R: Rng>(&mut self, sampler: &mut Sampler, temperature: f32, rng: &mut R) -> f32 {
        let sample = sampler.sample_next_with(|logits| self.draw(logits, temperature, rng));
        self.push(sample);
        sample
    }

    /// Feeds the sample that was generated (or heard), so the next draw
    /// knows how periodic the sound is.
    pub fn push(&mut self, sample: f32) {
        self.predictor.push(sample);
    }

    /// Back to silence.
    pub fn reset(&mut self) {
        self.predictor.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A distribution with one clear peak and a long flat tail.
    fn peaked() -> Vec<f32> {
        (0..256)
            .map(|i| {
                if (120..=124).contains(&i) {
                    6.0 - (i as f32 - 122.0).abs()
                } else {
                    0.0
                }
            })
            .collect()
    }

    fn draws(sampler: &mut ToneAwareSampler, logits: &[f32], n: usize) -> Vec<usize> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        (0..n).map(|_| sampler.draw(logits, 1.0, &mut rng)).collect()
    }

    #[test]
    fn sharpening_follows_the_pitch_gain() {
        assert_eq!(sharpening(0.0), 1.0);
        assert_eq!(sharpening(1.0 / 3.0), 1.0);
        assert!((sharpening(0.8) - 1.7).abs() < 1e-6);
        assert_eq!(sharpening(1.0), 2.0);
        assert_eq!(sharpening(5.0), 2.0);
    }

    #[test]
    fn on_a_tone_the_tail_is_cut_and_the_peak_sharpened_and_nowhere_else() {
        let logits = peaked();
        let tail = |d: &[usize]| d.iter().filter(|c| !(120..=124).contains(*c)).count();
        let spread = |d: &[usize]| d.iter().filter(|&&c| c != 122).count() as f32 / d.len() as f32;
        // Silence so far: the model's own distribution, tail and all (251
        // classes of 1/1059 each: about 24% of draws).
        let mut s = ToneAwareSampler::new(16_000, 256).unwrap();
        assert_eq!(s.power(), 1.0);
        let silent = draws(&mut s, &logits, 20_000);
        let share = tail(&silent) as f32 / silent.len() as f32;
        assert!((share - 251.0 / 1059.0).abs() < 0.02, "tail share {share}");

        // A sustained tone so far: the pitch gain is high, the tail is
        // never drawn and the peak's neighbours less often.
        for i in 0..4_000 {
            s.push(0.3 * (std::f32::consts::TAU * 200.0 * i as f32 / 16_000.0).sin());
        }
        assert!(s.power() > 1.8, "power {}", s.power());
        let toned = draws(&mut s, &logits, 20_000);
        assert_eq!(tail(&toned), 0, "a tail class was drawn on a tone");
        assert!(
            spread(&toned) < 0.6 * spread(&silent),
            "{} vs {}",
            spread(&toned),
            spread(&silent)
        );

        // White noise so far: back to (nearly) the model's distribution.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        for _ in 0..4_000 {
            s.push(rng.random_range(-0.3f32..0.3));
        }
        assert!(s.power() < 1.2, "power {}", s.power());
        s.reset();
        assert_eq!(s.power(), 1.0);
    }

    #[test]
    fn zero_temperature_takes_the_most_likely_class() {
        let mut s = ToneAwareSampler::new(16_000, 256).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        assert_eq!(s.draw(&peaked(), 0.0, &mut rng), 122);
        assert_eq!(s.draw(&peaked(), f32::NAN, &mut rng), 122);
    }
}
