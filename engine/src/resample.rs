//! Fixed-chunk resampling between the host rate and the model rate, with a
//! known, constant delay (rubato's synchronous FFT resampler).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Why a resampler could not be made or run.
#[derive(Debug, thiserror::Error)]
#[error("resampler: {0}")]
pub struct ResampleError(pub String);

/// Resamples a mono stream in fixed chunks: exactly [`chunk_in`](Self::chunk_in)
/// samples in, exactly [`chunk_out`](Self::chunk_out) out, delayed by
/// [`delay`](Self::delay) output samples. Equal rates pass straight through.
pub struct ChunkResampler {
    inner: Option<Fft<f32>>,
    chunk_in: usize,
    chunk_out: usize,
    delay: usize,
}

impl ChunkResampler {
    /// A resampler from `from` Hz to `to` Hz with chunks near `chunk_hint`
    /// input samples (the exact size depends on the rates' ratio).
    pub fn new(from: u32, to: u32, chunk_hint: usize) -> Result<Self, ResampleError> {
        if from == 0 || to == 0 {
            return Err(ResampleError(format!("invalid rates {from} -> {to}")));
        }
        if from == to {
            return Ok(Self {
                inner: None,
                chunk_in: 1,
                chunk_out: 1,
                delay: 0,
            });
        }
        let fft = Fft::<f32>::new(
            from as usize,
            to as usize,
            even_chunk(from, to, chunk_hint),
            1,
            FixedSync::Both,
        )
        .map_err(|e| ResampleError(e.to_string()))?;
        Ok(Self {
            chunk_in: fft.input_frames_next(),
            chunk_out: fft.output_frames_next(),
            delay: fft.output_delay(),
            inner: Some(fft),
        })
    }

    /// Input samples per chunk.
    pub fn chunk_in(&self) -> usize {
        self.chunk_in
    }

    /// Output samples per chunk.
    pub fn chunk_out(&self) -> usize {
        self.chunk_out
    }

    /// Delay in output samples.
    pub fn delay(&self) -> usize {
        self.delay
    }

    /// Resamples one chunk: `input.len() == chunk_in`, `output.len() == chunk_out`.
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) -> Result<(), ResampleError> {
        let Some(fft) = &mut self.inner else {
            output.copy_from_slice(input);
            return Ok(());
        };
        let inp = InterleavedSlice::new(input, 1, self.chunk_in).map_err(|e| ResampleError(e.to_string()))?;
        let mut out =
            InterleavedSlice::new_mut(output, 1, self.chunk_out).map_err(|e| ResampleError(e.to_string()))?;
        fft.process_into_buffer(&inp, &mut out, None)
            .map_err(|e| ResampleError(e.to_string()))?;
        Ok(())
    }

    /// Forgets all history.
    pub fn reset(&mut self) {
        if let Some(fft) = &mut self.inner {
            fft.reset();
        }
    }
}

/// Resamples a whole clip in memory (offline work: datasets, files), with
/// the resampler's delay removed so the output lines up with the input.
pub fn resample_clip(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ResampleError> {
    if from == to {
        return Ok(input.to_vec());
    }
    if from == 0 || to == 0 {
        return Err(ResampleError(format!("invalid rates {from} -> {to}")));
    }
    let mut fft = Fft::<f32>::new(
        from as usize,
        to as usize,
        even_chunk(from, to, 1024),
        1,
        FixedSync::Both,
    )
    .map_err(|e| ResampleError(e.to_string()))?;
    let inp = InterleavedSlice::new(input, 1, input.len()).map_err(|e| ResampleError(e.to_string()))?;
    let needed = fft.process_all_needed_output_len(input.len());
    let mut out = vec![0.0f32; needed];
    let mut adapter =
        InterleavedSlice::new_mut(&mut out, 1, needed).map_err(|e| ResampleError(e.to_string()))?;
    let (_, produced) = fft
        .process_all_into_buffer(&inp, &mut adapter, input.len(), None)
        .map_err(|e| ResampleError(e.to_string()))?;
    out.truncate(produced);
    Ok(out)
}

/// A chunk size near `hint` whose FFT sizes are even on both sides. The
/// FFT resampler delays by half its block; with an odd block that half falls
/// between samples and the output would be shifted by half a sample.
fn even_chunk(from: u32, to: u32, hint: usize) -> usize {
    let g = gcd(u64::from(from), u64::from(to)) as usize;
    let (min_in, min_out) = (from as usize / g, to as usize / g);
    let mut blocks = hint.div_ceil(min_in).max(1);
    if !(blocks * min_in).is_multiple_of(2) || !(blocks * min_out).is_multiple_of(2) {
        blocks += 1;
    }
    blocks * min_in
}

/// Greatest common divisor.
pub(crate) fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
