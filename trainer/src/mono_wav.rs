//! Writing rendered and generated audio: 16-bit mono WAV files.

use std::path::Path;

use reverie_engine::wav::{Audio, WavError};

/// Writes `samples` (clipped to full scale) as a 16-bit mono WAV file at
/// `sample_rate`: the format of rendered datasets and generated samples.
pub fn write_mono_wav(path: &Path, samples: Vec<f32>, sample_rate: u32) -> Result<(), WavError> {
    let audio = Audio {
        channels: vec![samples],
        spec: hound::WavSpec {
            channels: 1,
            sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        },
    };
    reverie_engine::wav::write(path, &audio)
}
