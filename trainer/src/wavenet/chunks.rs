//! How the WaveNet trainer cuts its audio: chunks of each file in order,
//! µ-law encoded, fed with the receptive field before them.

use candle_core::{Device, Tensor};
use reverie_engine::mulaw::MuLaw;

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

/// A µ-law-encoded copy of the data, with the class of silence for padding.
pub(crate) struct Encoded {
    pub(crate) train: Vec<Vec<u32>>,
    pub(crate) val: Vec<Vec<u32>>,
    pub(crate) silence: u32,
}

impl Encoded {
    pub(crate) fn new(data: &WavenetData, mulaw: MuLaw) -> Self {
        let enc = |files: &[AudioFile]| {
            files
                .iter()
                .map(|f| f.samples.iter().map(|&x| mulaw.encode(x) as u32).collect())
                .collect()
        };
        Self {
            train: enc(&data.train),
            val: enc(&data.val),
            silence: mulaw.encode(0.0) as u32,
        }
    }
}

/// The class at position `i` of `file`, silence outside it.
fn class_at(file: &[u32], i: i64, silence: u32) -> u32 {
    usize::try_from(i)
        .ok()
        .and_then(|i| file.get(i))
        .copied()
        .unwrap_or(silence)
}

/// Inputs `[B, field - 1 + len]` and targets `[B * len]` of a batch of chunks.
pub(crate) fn batch_tensors(
    chunks: &[Chunk],
    files: &[Vec<u32>],
    silence: u32,
    field: usize,
    len: usize,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let width = field - 1 + len;
    let mut inputs = Vec::with_capacity(chunks.len() * width);
    let mut targets = Vec::with_capacity(chunks.len() * len);
    for c in chunks {
        let file = &files[c.file];
        let first = c.start - (field as i64 - 1) - 1;
        inputs.extend((0..width as i64).map(|p| class_at(file, first + p, silence)));
        targets.extend((0..len as i64).map(|j| class_at(file, c.start + j, silence)));
    }
    Ok((
        Tensor::from_vec(inputs, (chunks.len(), width), device)?,
        Tensor::from_vec(targets, chunks.len() * len, device)?,
    ))
}

/// At most `k` of `items`, evenly spread (all of them when there are fewer).
pub(crate) fn spread<T: Copy>(items: &[T], k: usize) -> Vec<T> {
    if items.len() <= k {
        return items.to_vec();
    }
    (0..k).map(|i| items[i * items.len() / k]).collect()
}
