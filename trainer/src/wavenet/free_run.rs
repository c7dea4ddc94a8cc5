//! Rows of a batch whose history the model wrote itself, scored against
//! what the recording really played next.
//!
//! Teacher forcing only ever shows the network recorded history, so
//! nothing teaches it what to do once its own output has strayed from
//! anything recorded; a residual-target model then runs away to full
//! scale (models/README, session 16). Here, as in scheduled sampling
//! (Bengio et al., NeurIPS 2015) run all the way to free generation, a
//! row's history from some point on is what the engine's sampler
//! generates there, primed with the recording before it and drawing as
//! generation does; the targets stay the recording's samples. A history
//! that has grown louder or wandered off is then followed by the quieter,
//! centred samples that really came: the pull back the loss lacked.
//! Measured (models/README, session 17), scored sample by sample that
//! mostly teaches wider distributions, hiss, since after even a few ms of
//! its own output the recording's next sample is far out of the model's
//! reach; scored by their power ([`PowerTail`]) the stretches teach the
//! level instead.

use rand::Rng;
use reverie_engine::mulaw::MuLaw;
use reverie_engine::prediction_inputs::PredictionInputs;
use reverie_engine::sampler::Sampler;
use reverie_engine::signal_coding::SignalCoding;
use reverie_engine::wavenet::WavenetConfig;

use super::chunks::{cell_at, class_at, Chunk, EncodedFiles, PowerTail, Row};

/// What a free-running row needs besides its chunk: the sampler of the
/// current weights, and the model's coding and predictor to recompute the
/// row's prediction inputs and cell shifts over the history it made.
pub(crate) struct FreeRunner {
    sampler: Sampler,
    coding: SignalCoding,
    inputs: Option<PredictionInputs>,
    mulaw: MuLaw,
    /// Recorded samples the sampler hears before it takes over (at least):
    /// its receptive field and four predictor windows, so both the
    /// network's queues and the backward-adaptive predictor have settled.
    prime: usize,
    silence: u32,
}

impl FreeRunner {
    /// A runner for `sampler`, a model of `config` coded with `mulaw`.
    pub(crate) fn new(sampler: Sampler, config: &WavenetConfig, mulaw: MuLaw) -> Self {
        let inputs = PredictionInputs::of_model(config, mulaw).ok().flatten();
        let window = config.predictor.map_or(0, |p| p.window);
        Self {
            prime: sampler.receptive_field() + 4 * window,
            sampler,
            coding: SignalCoding::new(config, mulaw),
            inputs,
            mulaw,
            silence: mulaw.encode(0.0) as u32,
        }
    }

    /// The row of chunk `c` of `files` whose last `own` inputs are the
    /// model's (from `own` samples before the last target, never before the
    /// file's second sample): the sampler, primed with the recording before
    /// that point, generates at temperature 1 with `rng` (tone-aware if the
    /// model is), so the last `own` targets follow that much of its own
    /// output and the others the recording alone. The prediction inputs
    /// and the cell shifts are those of the history the row holds, computed
    /// from silence at the first primed sample, as the sampler's own are;
    /// the targets and scored audio classes are the recording's. `cells`
    /// as for [`super::chunks::file_row`]; with `power`, the targets after
    /// the model's own output are scored by their power instead
    /// ([`PowerTail`]).
    pub(crate) fn row<R: Rng>(
        &mut self,
        c: Chunk,
        files: &EncodedFiles,
        (field, len): (usize, usize),
        (own, cells, power): (usize, bool, bool),
        rng: &mut R,
    ) -> Row {
        let silence = self.silence;
        let file = &files.classes[c.file];
        let end = c.start + len as i64 - 1;
        let takeover = (end - own as i64).max(1);
        // From the row's first input at least, so that every input and
        // target is in the history.
        let from = (takeover - self.prime as i64).min(c.start - field as i64).max(0);

        // The history: recorded up to the takeover, generated after it.
        let recorded: Vec<usize> = (from..takeover.min(end))
            .map(|i| class_at(file, i, silence) as usize)
            .collect();
        self.sampler.reset();
        self.sampler.prime_classes(&recorded);
        let mut history: Vec<u32> = recorded.iter().map(|&k| k as u32).collect();
        for _ in takeover..end {
            self.sampler.sample_next(1.0, rng);
            history.push(self.sampler.last_input_class() as u32);
        }

        // Prediction inputs, targets and cells over that history.
        let count = self.inputs.as_ref().map_or(0, PredictionInputs::count);
        let mut predicted: Vec<Vec<u32>> = vec![Vec::with_capacity(history.len()); count];
        let mut targets = Vec::with_capacity(len);
        let mut scored = Vec::with_capacity(if cells { len } else { 0 });
        if let Some(p) = &mut self.inputs {
            p.reset();
        }
        self.coding.reset();
        let audio_cells = files.cells.get(c.file).map_or(&[][..], Vec::as_slice);
        // The first target that follows at least one sample of the model's.
        let own_from = c.start.max(takeover + 1).min(end + 1);
        let mut tail = power.then(|| PowerTail {
            first: (own_from - c.start) as usize,
            shifts: Vec::new(),
            power: 0.0,
        });
        // The recording's summed square over the tail, its mean at the end.
        let mut square = 0.0f64;
        for i in from..=end {
            let p = self.inputs.as_ref().map_or(0.0, PredictionInputs::prediction);
            if i >= c.start {
                let real = class_at(file, i, silence) as usize;
                targets.push(self.coding.target_class(real, p) as u32);
                let audio = cell_at(audio_cells, i, silence).0;
                let shift = self.coding.cell_shift(p) as f32;
                if cells {
                    scored.push((audio, shift));
                }
                if let Some(t) = tail.as_mut().filter(|_| i >= own_from) {
                    t.shifts.push(shift);
                    // The audio's own class: the cell's with the signal
                    // loss, else the input class (refused with pre-emphasis).
                    let x = f64::from(self.mulaw.decode(if cells { audio as usize } else { real }));
                    square += x * x;
                }
            }
            if i < end {
                let k = history[(i - from) as usize];
                if let Some(inputs) = &mut self.inputs {
                    inputs.push(k as usize);
                    for (row, &q) in predicted.iter_mut().zip(inputs.classes()) {
                        row.push(q as u32);
                    }
                }
                self.coding.fed(k as usize);
            }
        }

        let first = c.start - field as i64;
        let at = |row: &[u32], pos: i64| {
            if pos < from {
                silence
            } else {
                row[(pos - from) as usize]
            }
        };
        let positions = first..first + (field - 1 + len) as i64;
        Row {
            inputs: positions.clone().map(|pos| at(&history, pos)).collect(),
            predictions: predicted
                .iter()
                .map(|row| positions.clone().map(|pos| at(row, pos)).collect())
                .collect(),
            targets,
            cells: scored,
            tail: tail.map(|mut t| {
                t.power = (square / t.shifts.len().max(1) as f64) as f32;
                t
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use reverie_engine::predictor::PredictorConfig;
    use reverie_engine::wavenet::WavenetModel;

    use super::*;
    use crate::wavenet::chunks::{file_row, Encoded};
    use crate::wavenet::data::WavenetData;
    use crate::wavenet::gradients::{row_loss, Target};

    const RATE: u32 = 8_000;

    /// A random residual-target, pre-emphasis model on the pitch predictor,
    /// and two tones coded for it with the signal loss's cells.
    fn setup() -> (WavenetModel, Encoded, MuLaw) {
        let config = WavenetConfig {
            dilations: vec![1, 2, 4, 8, 16],
            residual_channels: 6,
            dilation_channels: 6,
            skip_channels: 8,
            classes: 64,
            predictor: Some(PredictorConfig::for_rate(RATE)),
            pre_emphasis: true,
            residual_target: true,
            ..WavenetConfig::default()
        };
        let model = WavenetModel::init(config.clone(), RATE, 5, &Device::Cpu).unwrap();
        let tone = |f: f32| -> Vec<f32> {
            (0..3_000)
                .map(|n| {
                    let w = std::f32::consts::TAU * f * n as f32 / RATE as f32;
                    0.5 * w.sin() + 0.2 * (2.0 * w).sin()
                })
                .collect()
        };
        let data = WavenetData::from_signals(RATE, vec![tone(220.0), tone(330.0)], Vec::new());
        let mulaw = MuLaw::new(64).unwrap();
        let encoded = Encoded::new(
            &data,
            mulaw,
            &mut SignalCoding::new(&config, mulaw),
            PredictionInputs::of_model(&config, mulaw).unwrap(),
            true,
        );
        (model, encoded, mulaw)
    }

    fn runner(model: &WavenetModel, mulaw: MuLaw) -> FreeRunner {
        FreeRunner::new(Sampler::from_model(model).unwrap(), &model.config, mulaw)
    }

    /// With none of the model's own history, primed from the file's start,
    /// a row is the recorded row exactly, its prediction classes, targets
    /// and cell shifts included.
    #[test]
    fn a_row_without_its_own_history_is_the_recorded_row() {
        let (model, encoded, mulaw) = setup();
        let field = model.receptive_field();
        let mut runner = runner(&model, mulaw);
        assert!(runner.prime > 700, "primes {} samples", runner.prime);
        let files = &encoded.train;
        for (start, len) in [(1, 1), (40, 30), (600, 100)] {
            let c = Chunk { file: 1, start };
            let recorded = file_row(c, files, encoded.silence, (field, len), true);
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let row = runner.row(c, files, (field, len), (0, true, false), &mut rng);
            assert_eq!(row, recorded, "chunk at {start}");
        }
    }

    /// After the takeover the row's history is what the engine's sampler
    /// generates from the recording before it with the same draws, and
    /// each target's cell is where the sampler itself scores the
    /// recording's next sample (`Sampler::signal_nll`): the targets are
    /// the recording, the shifts the model's own history.
    #[test]
    fn after_the_takeover_the_history_is_the_samplers_and_the_targets_the_recordings() {
        let (model, encoded, mulaw) = setup();
        let field = model.receptive_field();
        let files = &encoded.train;
        // The model takes over 20 samples before the chunk.
        let (start, len, own) = (2_000i64, 60usize, 80usize);
        let c = Chunk { file: 0, start };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut runner = runner(&model, mulaw);
        let row = runner.row(c, files, (field, len), (own, true, false), &mut rng);
        assert_eq!(row.inputs.len(), field - 1 + len);
        assert_eq!(row.predictions.len(), 2);
        assert_eq!(row.cells.len(), len);

        // The sampler by hand: primed with the recording's `prime` samples
        // before the takeover, then drawing.
        let takeover = (start + len as i64 - 1 - own as i64) as usize;
        let from = takeover - runner.prime;
        assert!(from > 0 && takeover > start as usize - field);
        let mut history: Vec<u32> = files.classes[0][from..takeover].to_vec();
        let mut sampler = Sampler::from_model(&model).unwrap();
        sampler.prime_classes(&history.iter().map(|&k| k as usize).collect::<Vec<_>>());
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let end = start + len as i64 - 1;
        let mut checked = 0;
        for i in takeover as i64..=end {
            if i >= start {
                let j = (i - start) as usize;
                let (audio, shift) = row.cells[j];
                assert_eq!(
                    audio, files.cells[0][i as usize].0,
                    "target {i} is the recording's"
                );
                let x = mulaw.decode(audio as usize);
                let mut logits = sampler.distribution().to_vec();
                let target = Target::Cell {
                    mulaw,
                    class: audio as usize,
                    shift: f64::from(shift),
                };
                let trainer = row_loss(&mut logits, target, 1.0, &mut Vec::new());
                let engine = f64::from(sampler.signal_nll(x));
                assert!(
                    (trainer - engine).abs() < 1e-3,
                    "target {i}: the row's cell scores {trainer}, the sampler {engine}"
                );
                checked += 1;
            }
            if i < end {
                sampler.sample_next(1.0, &mut rng);
                history.push(sampler.last_input_class() as u32);
            }
        }
        assert_eq!(checked, len);
        let first = start as usize - field - from;
        assert_eq!(row.inputs, history[first..first + field - 1 + len]);
        let generated = &history[takeover - from..];
        let same = generated
            .iter()
            .zip(&files.classes[0][takeover..])
            .filter(|(a, b)| a == b)
            .count();
        assert!(
            same < generated.len() / 2,
            "an untrained model should not play the tone back ({same} of {} the same)",
            generated.len()
        );
    }

    /// Scored by its power, a row's stretch starts at the first target
    /// after a sample of the model's, with the cells' shifts and the
    /// recording's mean square there; the targets before it stay scored
    /// one by one, and the row is otherwise the same.
    #[test]
    fn the_power_tail_covers_the_targets_after_the_models_own_output() {
        let (model, encoded, mulaw) = setup();
        let field = model.receptive_field();
        let files = &encoded.train;
        let (start, len, own) = (2_000i64, 60usize, 25usize);
        let c = Chunk { file: 1, start };
        let mut runner = runner(&model, mulaw);
        let plain = runner.row(
            c,
            files,
            (field, len),
            (own, true, false),
            &mut ChaCha8Rng::seed_from_u64(3),
        );
        let scored = runner.row(
            c,
            files,
            (field, len),
            (own, true, true),
            &mut ChaCha8Rng::seed_from_u64(3),
        );
        assert_eq!(plain.tail, None);
        let tail = scored.tail.clone().expect("a power tail");
        assert_eq!(tail.first, len - own);
        assert_eq!(tail.shifts.len(), own);
        let shifts: Vec<f32> = scored.cells[len - own..].iter().map(|&(_, s)| s).collect();
        assert_eq!(tail.shifts, shifts);
        let square: f64 = files.cells[1][(start as usize + len - own)..start as usize + len]
            .iter()
            .map(|&(k, _)| f64::from(mulaw.decode(k as usize)).powi(2))
            .sum::<f64>()
            / own as f64;
        assert!((f64::from(tail.power) - square).abs() < 1e-6 * square.max(1e-3));
        assert!(tail.power > 0.01, "the tone's mean square {}", tail.power);
        assert_eq!(Row { tail: None, ..scored }, plain);
    }
}
