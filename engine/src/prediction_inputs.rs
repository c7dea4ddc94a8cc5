//! The backward-adaptive predictor ([`crate::predictor`]) as inputs of the
//! WaveNet, as LPCNet (Valin & Skoglund, ICASSP 2019) gives its network the
//! linear prediction `p_t` of the sample it is about to model: after each
//! input sample the predictor, fitted to the decoded samples so far,
//! predicts the next one; the prediction's µ-law class is embedded and
//! added to the input sample's embedding. One class per stage: the
//! short-term prediction, and, with the pitch stage, the prediction of
//! both stages.
//!
//! The predictor sees the decoded µ-law values of the classes, which is all
//! generation knows, so training (teacher-forced over whole files, from
//! their first sample), the cached sampler and scoring feed it the same
//! numbers in the same order and get the same inputs bit for bit.

use crate::mulaw::MuLaw;
use crate::predictor::{Predictor, PredictorConfig, PredictorError};
use crate::wavenet::WavenetConfig;

/// The most prediction inputs a network has (short-term, and both stages).
pub const MAX_INPUTS: usize = 2;

/// The number of prediction inputs a predictor gives: one, or two with the
/// pitch stage.
pub fn input_count(config: &PredictorConfig) -> usize {
    if config.long_term {
        2
    } else {
        1
    }
}

/// What [`PredictionInputs::for_sequence`] gives.
#[derive(Debug, Clone, PartialEq)]
pub struct SequencePredictions {
    /// Per input, per position: the prediction class after it.
    pub rows: Vec<Vec<u32>>,
    /// Per position: the prediction of its sample, made before it.
    pub before: Vec<f32>,
}

/// The running predictor and the classes of its current predictions. Built
/// once; [`push`](Self::push) and [`reset`](Self::reset) never allocate.
#[derive(Debug, Clone)]
pub struct PredictionInputs {
    predictor: Predictor,
    mulaw: MuLaw,
    /// The audio value of every class.
    decoded: Vec<f32>,
    current: [usize; MAX_INPUTS],
    /// The both-stage prediction itself.
    value: f32,
    count: usize,
}

impl PredictionInputs {
    /// Inputs from `config`'s predictor on `mulaw`'s classes, with silent
    /// history.
    pub fn new(config: PredictorConfig, mulaw: MuLaw) -> Result<Self, PredictorError> {
        let mut inputs = Self {
            predictor: Predictor::new(config)?,
            mulaw,
            decoded: (0..mulaw.classes()).map(|k| mulaw.decode(k)).collect(),
            current: [0; MAX_INPUTS],
            value: 0.0,
            count: input_count(&config),
        };
        inputs.reset();
        Ok(inputs)
    }

    /// The inputs `config`'s model has (none without a predictor).
    pub fn of_model(config: &WavenetConfig, mulaw: MuLaw) -> Result<Option<Self>, PredictorError> {
        config.predictor.map(|p| Self::new(p, mulaw)).transpose()
    }

    /// How many classes [`classes`](Self::classes) gives.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Back to silent history (whose prediction is silence).
    pub fn reset(&mut self) {
        self.predictor.reset();
        self.update();
    }

    /// Appends an input class (clamped to the class range); the classes
    /// then predict the sample after it.
    pub fn push(&mut self, class: usize) {
        let value = self.decoded[class.min(self.decoded.len() - 1)];
        self.predictor.push(value);
        self.update();
    }

    /// The classes of the next sample's predictions, one per input.
    pub fn classes(&self) -> &[usize] {
        &self.current[..self.count]
    }

    /// The next sample's prediction by both stages (the short-term one
    /// without the pitch stage), as audio.
    pub fn prediction(&self) -> f32 {
        self.value
    }

    /// For every position of `classes`, from silent history: the
    /// prediction classes after it (as [`classes`](Self::classes) gives
    /// them after pushing it), one row per input, as long as `classes`, and
    /// the prediction of the class made before it. What training feeds the
    /// network beside a file's classes, and what its residual targets
    /// ([`crate::signal_coding`]) subtract.
    pub fn for_sequence(&mut self, classes: &[u32]) -> SequencePredictions {
        self.reset();
        let mut rows = vec![Vec::with_capacity(classes.len()); self.count];
        let mut before = Vec::with_capacity(classes.len());
        for &c in classes {
            before.push(self.prediction());
            self.push(c as usize);
            for (row, &p) in rows.iter_mut().zip(self.classes()) {
                row.push(p as u32);
            }
        }
        SequencePredictions { rows, before }
    }

    fn update(&mut self) {
        let (short_term, both) = self.predictor.predict_stages();
        self.value = both;
        self.current = [self.mulaw.encode(short_term), self.mulaw.encode(both)];
        if self.count == 1 {
            self.current[1] = self.current[0];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize) -> Vec<u32> {
        let q = MuLaw::new(256).unwrap();
        (0..n)
            .map(|i| q.encode(0.4 * (i as f32 * std::f32::consts::TAU / 37.0).sin()) as u32)
            .collect()
    }

    #[test]
    fn the_inputs_are_the_predictors_classes_of_the_decoded_history() {
        let q = MuLaw::new(256).unwrap();
        let config = PredictorConfig::for_rate(16_000);
        let mut inputs = PredictionInputs::new(config, q).unwrap();
        assert_eq!(inputs.count(), 2);
        // Silent history predicts silence.
        assert_eq!(inputs.classes(), &[q.encode(0.0); 2]);
        let seq = tone(2_000);
        let SequencePredictions { rows, before } = inputs.for_sequence(&seq);
        assert_eq!(rows.len(), 2);
        // The same predictor, fed the decoded classes by hand.
        let mut p = Predictor::new(config).unwrap();
        let mut differ = 0;
        for (i, &c) in seq.iter().enumerate() {
            assert_eq!(before[i], p.predict(), "the prediction before sample {i}");
            p.push(q.decode(c as usize));
            let (s, b) = p.predict_stages();
            assert_eq!(rows[0][i] as usize, q.encode(s), "short-term, sample {i}");
            assert_eq!(rows[1][i] as usize, q.encode(b), "both stages, sample {i}");
            differ += usize::from(rows[0][i] != rows[1][i]);
        }
        // The pitch stage changes the prediction of a periodic sound.
        assert!(differ > 100, "{differ}");
        // And the prediction is worth having: mostly within a few classes
        // of the sample it predicts, once the first fit is in.
        let near = (1_000..1_999)
            .filter(|&i| (rows[1][i] as i64 - seq[i + 1] as i64).abs() <= 3)
            .count();
        assert!(near > 900, "{near} of 999");
        // Streaming gives the same as the sequence, and reset starts over.
        inputs.reset();
        for (i, &c) in seq.iter().enumerate().take(500) {
            inputs.push(c as usize);
            assert_eq!(inputs.classes(), &[rows[0][i] as usize, rows[1][i] as usize]);
        }
    }

    #[test]
    fn without_the_pitch_stage_there_is_one_input() {
        let q = MuLaw::new(256).unwrap();
        let config = PredictorConfig {
            long_term: false,
            ..PredictorConfig::for_rate(16_000)
        };
        let mut inputs = PredictionInputs::new(config, q).unwrap();
        assert_eq!(inputs.count(), 1);
        let rows = inputs.for_sequence(&tone(300)).rows;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].len(), 300);
        assert_eq!(inputs.classes().len(), 1);
    }
}
