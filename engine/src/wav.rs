//! Reading and writing WAV files in every format hound handles, as f32
//! channels, keeping the original format for writing back.

use std::path::Path;

use hound::{SampleFormat, WavSpec};

/// Errors reading or writing audio files.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// The file does not exist or cannot be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// Path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a WAV hound can read.
    #[error(
        "{path} is not a readable WAV file ({reason}); convert it to 16/24/32-bit PCM or 32-bit float WAV"
    )]
    Format {
        /// Path.
        path: String,
        /// What hound said.
        reason: String,
    },
    /// Writing failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// Path.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Decoded audio: one `Vec` per channel, and the file's format.
#[derive(Debug, Clone)]
pub struct Audio {
    /// Samples per channel, in [-1, 1] for integer formats.
    pub channels: Vec<Vec<f32>>,
    /// The original format (rate, channel count, bits, int/float).
    pub spec: WavSpec,
}

impl Audio {
    /// Frames per channel.
    pub fn len(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// Whether there are no frames.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The mean of all channels.
    pub fn mono(&self) -> Vec<f32> {
        let n = self.channels.len().max(1) as f32;
        (0..self.len())
            .map(|i| self.channels.iter().map(|c| c[i]).sum::<f32>() / n)
            .collect()
    }
}

/// Reads a WAV file.
pub fn read(path: &Path) -> Result<Audio, WavError> {
    let p = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| WavError::Open {
        path: p.clone(),
        source,
    })?;
    let format = |e: hound::Error| WavError::Format {
        path: p.clone(),
        reason: e.to_string(),
    };
    let mut reader = hound::WavReader::new(std::io::BufReader::new(file)).map_err(format)?;
    let spec = reader.spec();
    let ch = usize::from(spec.channels);
    if ch == 0 {
        return Err(WavError::Format {
            path: p,
            reason: "zero channels".into(),
        });
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(format)?,
        SampleFormat::Int => {
            let full = (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 / full))
                .collect::<Result<_, _>>()
                .map_err(format)?
        }
    };
    let frames = interleaved.len() / ch;
    let channels = (0..ch)
        .map(|c| (0..frames).map(|i| interleaved[i * ch + c]).collect())
        .collect();
    Ok(Audio { channels, spec })
}

/// Writes audio in `audio.spec`'s format; integer formats are clipped to
/// full scale.
pub fn write(path: &Path, audio: &Audio) -> Result<(), WavError> {
    let p = path.display().to_string();
    let err = |e: hound::Error| WavError::Write {
        path: p.clone(),
        reason: e.to_string(),
    };
    let mut writer = hound::WavWriter::create(path, audio.spec).map_err(err)?;
    for i in 0..audio.len() {
        for c in &audio.channels {
            let v = c[i];
            match audio.spec.sample_format {
                SampleFormat::Float => writer.write_sample(v).map_err(err)?,
                SampleFormat::Int => {
                    let full = (1i64 << (audio.spec.bits_per_sample - 1)) as f32;
                    let q = (v * full).round().clamp(-full, full - 1.0) as i32;
                    writer.write_sample(q).map_err(err)?
                }
            }
        }
    }
    writer.finalize().map_err(err)
}
