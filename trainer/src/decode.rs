//! Decoding one audio file of any supported format to mono f32 at its own
//! rate. WAV goes through the engine's hound reader (every PCM and float
//! layout hound knows); FLAC, MP3 and Ogg Vorbis go through symphonia.

use std::fs::File;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// File extensions (lower case, without the dot) that [`decode_mono`] reads.
pub const SUPPORTED_EXTENSIONS: [&str; 4] = ["wav", "flac", "mp3", "ogg"];

/// Why a file could not be decoded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The extension is not one of [`SUPPORTED_EXTENSIONS`].
    #[error("{path}: unsupported file type; convert it to .wav, .flac, .mp3 or .ogg (Vorbis)")]
    Unsupported {
        /// The file.
        path: PathBuf,
    },
    /// The file cannot be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The container or codec could not be read.
    #[error("{path}: not a readable audio file ({reason}); re-encode it as 16-bit PCM WAV or FLAC")]
    Format {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The file decoded to zero samples.
    #[error("{path}: contains no audio samples")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl DecodeError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Unsupported { path }
            | Self::Open { path, .. }
            | Self::Format { path, .. }
            | Self::Empty { path } => path,
        }
    }
}

/// A decoded file mixed down to one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct MonoAudio {
    /// The mean of all channels, in [-1, 1] for integer sources.
    pub samples: Vec<f32>,
    /// The file's sample rate in Hz.
    pub sample_rate: u32,
}

/// Whether `path` has one of the [`SUPPORTED_EXTENSIONS`] (case-insensitive).
pub fn is_supported(path: &Path) -> bool {
    extension(path).is_some_and(|e| SUPPORTED_EXTENSIONS.contains(&e.as_str()))
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// Decodes `path` and mixes it down to mono (the mean of its channels).
pub fn decode_mono(path: &Path) -> Result<MonoAudio, DecodeError> {
    let decoded = match extension(path).as_deref() {
        Some("wav") => decode_wav(path)?,
        Some("flac" | "mp3" | "ogg") => decode_symphonia(path)?,
        _ => {
            return Err(DecodeError::Unsupported {
                path: path.to_path_buf(),
            })
        }
    };
    if decoded.samples.is_empty() {
        return Err(DecodeError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(decoded)
}

fn decode_wav(path: &Path) -> Result<MonoAudio, DecodeError> {
    use reverie_engine::wav::WavError;
    let audio = reverie_engine::wav::read(path).map_err(|e| match e {
        WavError::Open { source, .. } => DecodeError::Open {
            path: path.to_path_buf(),
            source,
        },
        WavError::Format { reason, .. } => DecodeError::Format {
            path: path.to_path_buf(),
            reason,
        },
        WavError::Write { reason, .. } => DecodeError::Format {
            path: path.to_path_buf(),
            reason,
        },
    })?;
    Ok(MonoAudio {
        samples: audio.mono(),
        sample_rate: audio.spec.sample_rate,
    })
}

fn decode_symphonia(path: &Path) -> Result<MonoAudio, DecodeError> {
    let file = File::open(path).map_err(|source| DecodeError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let format_err = |reason: String| DecodeError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let mut hint = Hint::new();
    if let Some(ext) = extension(path) {
        hint.with_extension(&ext);
    }
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut reader = symphonia::default::get_probe()
        .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        .map_err(|e| format_err(e.to_string()))?;
    let track = reader
        .default_track(TrackType::Audio)
        .ok_or_else(|| format_err("no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| format_err("the audio track has no codec parameters".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| format_err(e.to_string()))?;

    let mut mono = Vec::new();
    let mut rate = None;
    let mut interleaved: Vec<f32> = Vec::new();
    let mut last_packet_error = None;
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // Some demuxers signal the end of a stream without an end marker
            // as an unexpected EOF; chained Ogg streams ask for a reset. Both
            // mean "no more of this track" for a training file.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(format_err(e.to_string())),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(b) => b,
            // A corrupt packet costs a few milliseconds of audio, not the
            // whole file; but a file where nothing decodes is reported below.
            Err(SymphoniaError::DecodeError(msg)) => {
                last_packet_error = Some(msg);
                continue;
            }
            Err(SymphoniaError::IoError(_)) => {
                last_packet_error = Some("I/O error inside a packet");
                continue;
            }
            Err(e) => return Err(format_err(e.to_string())),
        };
        let this_rate = buf.spec().rate();
        match rate {
            None => rate = Some(this_rate),
            Some(r) if r != this_rate => {
                return Err(format_err(format!(
                    "sample rate changes mid-stream ({r} Hz -> {this_rate} Hz)"
                )))
            }
            Some(_) => {}
        }
        let channels = buf.num_planes().max(1);
        buf.copy_to_vec_interleaved(&mut interleaved);
        let inv = 1.0 / channels as f32;
        mono.extend(
            interleaved
                .chunks_exact(channels)
                .map(|f| f.iter().sum::<f32>() * inv),
        );
    }
    match rate {
        Some(sample_rate) if !mono.is_empty() => Ok(MonoAudio {
            samples: mono,
            sample_rate,
        }),
        _ => match last_packet_error {
            Some(msg) => Err(format_err(format!("no packet decoded; last error: {msg}"))),
            None => Err(DecodeError::Empty {
                path: path.to_path_buf(),
            }),
        },
    }
}
