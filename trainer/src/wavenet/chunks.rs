//! How the WaveNet trainer cuts its audio: chunks of each file in order,
//! µ-law encoded, fed with the receptive field before them.

use candle_core::{Device, Tensor};
use reverie_engine::mulaw::MuLaw;
use reverie_engine::prediction_inputs::PredictionInputs;
use reverie_engine::signal_coding::SignalCoding;

use super::data::{AudioFile, WavenetData};

/// A span of one file's samples to score: targets `start .. start + len`;
/// negative positions are silence before the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Index of the file in its list.
    pub file: usize,
    /// First target sample (may be negative for files shorter than a chunk).
    pub start: i64,
}

/// The chunks of a file of `n` samples, in order: consecutive spans of
/// `len`, the last aligned to the file's end; a file shorter than `len`
/// gives one span padded with silence before it.
pub fn file_chunks(file: usize, n: usize, len: usize) -> Vec<Chunk> {
    if n == 0 || len == 0 {
        return Vec::new();
    }
    let (n, len) = (n as i64, len as i64);
    let mut starts: Vec<i64> = (0..n / len).map(|k| k * len).collect();
    if n % len != 0 {
        starts.push(n - len);
    }
    starts.into_iter().map(|start| Chunk { file, start }).collect()
}

/// One set of files, µ-law encoded, with the prediction inputs of a model
/// that has them.
pub(crate) struct EncodedFiles {
    /// Each file's classes.
    pub(crate) classes: Vec<Vec<u32>>,
    /// Each file's prediction classes, one row per input, teacher-forced
    /// over the whole file from its first sample, as scoring the file does
    /// (see [`PredictionInputs::for_sequence`]); empty rows without inputs.
    pub(crate) predictions: Vec<Vec<Vec<u32>>>,
    /// Each file's target classes where they are not its classes (a
    /// residual target, see [`SignalCoding::target_class`]); empty otherwise.
    pub(crate) targets: Vec<Vec<u32>>,
    /// Each file's audio classes with the shift of the output classes'
    /// cells before each sample ([`SignalCoding::cell_shift`]), for a run
    /// with the signal loss: what it scores. Empty otherwise.
    pub(crate) cells: Vec<Vec<(u32, f32)>>,
}

/// A µ-law-encoded copy of the data, with the class of silence for padding.
pub(crate) struct Encoded {
    pub(crate) train: EncodedFiles,
    pub(crate) val: EncodedFiles,
    pub(crate) silence: u32,
}

impl Encoded {
    /// Each file coded as the model codes audio (`coding`, from silence at
    /// its start, as scoring does), with the prediction inputs and residual
    /// targets the model has, and the cells the signal loss scores when
    /// `cells`.
    pub(crate) fn new(
        data: &WavenetData,
        mulaw: MuLaw,
        coding: &mut SignalCoding,
        mut inputs: Option<PredictionInputs>,
        cells: bool,
    ) -> Self {
        let mut enc = |files: &[AudioFile]| {
            let mut out = EncodedFiles {
                classes: Vec::new(),
                predictions: Vec::new(),
                targets: Vec::new(),
                cells: Vec::new(),
            };
            for f in files {
                coding.reset();
                let classes: Vec<u32> = f.samples.iter().map(|&x| coding.input_class(x) as u32).collect();
                let predicted = inputs.as_mut().map(|p| p.for_sequence(&classes));
                let targets = match &predicted {
                    Some(p) if !coding.is_plain() => classes
                        .iter()
                        .zip(&p.before)
                        .map(|(&c, &p)| coding.target_class(c as usize, p) as u32)
                        .collect(),
                    _ => Vec::new(),
                };
                let mut scored = Vec::new();
                if cells {
                    // The scorer's order: the shift before each sample, then
                    // the sample's class fed.
                    coding.reset();
                    for (t, (&c, &x)) in classes.iter().zip(&f.samples).enumerate() {
                        let p = predicted.as_ref().map_or(0.0, |p| p.before[t]);
                        scored.push((mulaw.encode(x) as u32, coding.cell_shift(p) as f32));
                        coding.fed(c as usize);
                    }
                }
                out.cells.push(scored);
                out.predictions.push(predicted.map_or_else(Vec::new, |p| p.rows));
                out.targets.push(targets);
                out.classes.push(classes);
            }
            out
        };
        Self {
            train: enc(&data.train),
            val: enc(&data.val),
            silence: mulaw.encode(0.0) as u32,
        }
    }
}

/// The class at position `i` of `file`, silence outside it.
pub(crate) fn class_at(file: &[u32], i: i64, silence: u32) -> u32 {
    usize::try_from(i)
        .ok()
        .and_then(|i| file.get(i))
        .copied()
        .unwrap_or(silence)
}

/// A batch of chunks as tensors.
pub(crate) struct Batch {
    /// Input classes `[B, field - 1 + len]`.
    pub(crate) inputs: Tensor,
    /// The prediction classes beside them, one `[B, field - 1 + len]` per
    /// prediction input (silence before a file, where the predictor has
    /// heard nothing).
    pub(crate) predictions: Vec<Tensor>,
    /// Target classes `[B * len]`.
    pub(crate) targets: Tensor,
    /// With the signal loss: each scored sample's audio class and cell
    /// shift (see [`EncodedFiles::cells`]), `B * len` of them.
    pub(crate) cells: Option<Vec<(u32, f32)>>,
    /// Per row, the stretch scored by its power, and the weight of that
    /// score (empty: none).
    pub(crate) tails: Vec<Option<PowerTail>>,
    /// The weight of each power score in the batch's loss.
    pub(crate) power_weight: f32,
}

/// Noise on a batch's input classes (see `WavenetTrainConfig::input_noise`).
pub(crate) struct InputNoise<R> {
    /// Standard deviation in classes.
    pub(crate) std: f32,
    /// Where the draws come from.
    pub(crate) rng: R,
    /// The number of classes (the noisy classes stay inside them).
    pub(crate) classes: usize,
}

impl<R: rand::Rng> InputNoise<R> {
    /// Moves each class by a rounded normal draw, within the class range.
    fn apply(&mut self, inputs: &mut [u32]) {
        let top = self.classes as i64 - 1;
        let offsets = reverie_engine::normal_vec(&mut self.rng, inputs.len(), self.std);
        for (c, o) in inputs.iter_mut().zip(offsets) {
            *c = (i64::from(*c) + o.round() as i64).clamp(0, top) as u32;
        }
    }
}

/// One chunk's row of a batch, before it becomes tensors.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// Input classes, `field - 1 + len` of them.
    pub(crate) inputs: Vec<u32>,
    /// The prediction classes beside them, one row per prediction input.
    pub(crate) predictions: Vec<Vec<u32>>,
    /// The `len` target classes.
    pub(crate) targets: Vec<u32>,
    /// With the signal loss, each scored sample's audio class and cell
    /// shift; empty otherwise.
    pub(crate) cells: Vec<(u32, f32)>,
    /// A free-running row's stretch scored by its power instead of sample
    /// by sample (see [`PowerTail`]).
    pub(crate) tail: Option<PowerTail>,
}

/// The scored positions of a free-running row that follow the model's own
/// output, when the run scores them by their power: the mean over them of
/// the squared audio the model expects next, against the recording's mean
/// square there, in log terms (see `gradients::power_tail`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PowerTail {
    /// The first such position, counted from the row's first target.
    pub(crate) first: usize,
    /// From `first` on, where each output class's audio lands: its µ-law
    /// value moved by this much ([`SignalCoding::cell_shift`]).
    pub(crate) shifts: Vec<f32>,
    /// The recording's mean square over those positions.
    pub(crate) power: f32,
}

/// The row of chunk `c` of `files` as it was recorded (silence before a
/// file: its class, prediction classes of silence, unshifted cells),
/// with the scored samples' cells when `cells`.
pub(crate) fn file_row(
    c: Chunk,
    files: &EncodedFiles,
    silence: u32,
    (field, len): (usize, usize),
    cells: bool,
) -> Row {
    let width = field - 1 + len;
    let file = &files.classes[c.file];
    let first = c.start - (field as i64 - 1) - 1;
    let inputs = (0..width as i64)
        .map(|p| class_at(file, first + p, silence))
        .collect();
    let predictions = files.predictions[c.file]
        .iter()
        .map(|row| {
            (0..width as i64)
                .map(|p| class_at(row, first + p, silence))
                .collect()
        })
        .collect();
    let target_row = files
        .targets
        .get(c.file)
        .filter(|t| !t.is_empty())
        .unwrap_or(file);
    let targets = (0..len as i64)
        .map(|j| class_at(target_row, c.start + j, silence))
        .collect();
    let scored = if cells {
        let row = files.cells.get(c.file).map_or(&[][..], Vec::as_slice);
        (0..len as i64)
            .map(|j| cell_at(row, c.start + j, silence))
            .collect()
    } else {
        Vec::new()
    };
    Row {
        inputs,
        predictions,
        targets,
        cells: scored,
        tail: None,
    }
}

/// The scored cell at position `i` of a file's `cells`: silence, unshifted,
/// outside it.
pub(crate) fn cell_at(cells: &[(u32, f32)], i: i64, silence: u32) -> (u32, f32) {
    usize::try_from(i)
        .ok()
        .and_then(|i| cells.get(i))
        .copied()
        .unwrap_or((silence, 0.0))
}

/// The tensors of a batch of chunks of `files` as recorded (see
/// [`file_row`]), with `noise` on the inputs and the scored samples' cells
/// for the signal loss when `cells`.
pub(crate) fn batch_tensors<R: rand::Rng>(
    chunks: &[Chunk],
    files: &EncodedFiles,
    silence: u32,
    (field, len): (usize, usize),
    (noise, cells): (Option<&mut InputNoise<R>>, bool),
    device: &Device,
) -> candle_core::Result<Batch> {
    let rows: Vec<Row> = chunks
        .iter()
        .map(|&c| file_row(c, files, silence, (field, len), cells))
        .collect();
    batch_of_rows(rows, noise, cells, device)
}

/// The tensors of `rows` (all of one width and length), with `noise` on the
/// inputs (not on the targets, nor on the prediction inputs, which the
/// predictor computed from the audio before the noise), and the cells when
/// `cells`.
pub(crate) fn batch_of_rows<R: rand::Rng>(
    rows: Vec<Row>,
    noise: Option<&mut InputNoise<R>>,
    cells: bool,
    device: &Device,
) -> candle_core::Result<Batch> {
    let mut tails = Vec::new();
    let b = rows.len();
    let width = rows.first().map_or(0, |r| r.inputs.len());
    let count = rows.first().map_or(0, |r| r.predictions.len());
    let mut inputs = Vec::with_capacity(b * width);
    let mut predictions = vec![Vec::with_capacity(b * width); count];
    let mut targets = Vec::new();
    let mut scored = cells.then(Vec::new);
    for row in rows {
        inputs.extend(row.inputs);
        for (out, p) in predictions.iter_mut().zip(row.predictions) {
            out.extend(p);
        }
        targets.extend(row.targets);
        if let Some(out) = scored.as_mut() {
            out.extend(row.cells);
        }
        tails.push(row.tail);
    }
    if tails.iter().all(Option::is_none) {
        tails.clear();
    }
    if let Some(noise) = noise {
        noise.apply(&mut inputs);
    }
    let len = targets.len() / b.max(1);
    Ok(Batch {
        inputs: Tensor::from_vec(inputs, (b, width), device)?,
        predictions: predictions
            .into_iter()
            .map(|p| Tensor::from_vec(p, (b, width), device))
            .collect::<candle_core::Result<_>>()?,
        targets: Tensor::from_vec(targets, b * len, device)?,
        cells: scored,
        tails,
        power_weight: 0.0,
    })
}

/// At most `k` of `items`, evenly spread (all of them when there are fewer).
pub(crate) fn spread<T: Copy>(items: &[T], k: usize) -> Vec<T> {
    if items.len() <= k {
        return items.to_vec();
    }
    (0..k).map(|i| items[i * items.len() / k]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn files() -> EncodedFiles {
        let classes: Vec<u32> = (0..3_000).map(|i| (i % 64) as u32).collect();
        EncodedFiles {
            predictions: vec![vec![classes.iter().map(|c| 63 - c).collect()]],
            classes: vec![classes],
            targets: vec![Vec::new()],
            cells: vec![Vec::new()],
        }
    }

    fn values(t: &Tensor) -> Vec<u32> {
        t.flatten_all().unwrap().to_vec1::<u32>().unwrap()
    }

    #[test]
    fn input_noise_moves_only_the_inputs_by_about_its_deviation() {
        let files = files();
        let chunks = file_chunks(0, 3_000, 500);
        let shape = (17, 500);
        let clean =
            batch_tensors::<rand_chacha::ChaCha8Rng>(&chunks, &files, 32, shape, (None, false), &Device::Cpu)
                .unwrap();
        let mut noise = InputNoise {
            std: 0.5,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(1),
            classes: 64,
        };
        let noisy = batch_tensors(
            &chunks,
            &files,
            32,
            shape,
            (Some(&mut noise), false),
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(values(&noisy.targets), values(&clean.targets));
        assert_eq!(values(&noisy.predictions[0]), values(&clean.predictions[0]));
        let (a, b) = (values(&clean.inputs), values(&noisy.inputs));
        assert!(b.iter().all(|&c| c < 64));
        let moved: Vec<i64> = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| i64::from(y) - i64::from(x))
            .collect();
        // A normal draw of deviation 0.5 rounds away from 0 with
        // probability 2 (1 - Phi(1)) = 0.317; the class range clips a few.
        let share = moved.iter().filter(|&&m| m != 0).count() as f64 / moved.len() as f64;
        assert!((0.28..0.34).contains(&share), "{share}");
        assert!(moved.iter().all(|m| m.abs() <= 3));
        let mean = moved.iter().sum::<i64>() as f64 / moved.len() as f64;
        assert!(mean.abs() < 0.02, "{mean}");
    }
}
