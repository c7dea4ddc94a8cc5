//! Reverie's trainer: labelled datasets from folders of audio, a renderer
//! that makes a labelled instrument dataset from a General MIDI SoundFont,
//! and the training loops that produce the engine's model files: the run
//! core both share ([`run`]), the perception trainer ([`perception`]) and
//! the WaveNet trainer ([`wavenet`]).
//!
//! Data flows one way: this crate writes model files that
//! [`reverie_engine`] loads; the engine never depends on the trainer.

#![warn(missing_docs)]

pub mod dataset;
pub mod decode;
pub mod filters;
pub mod metrics;
pub mod mono_wav;
pub mod optim;
mod parallel;
pub mod perception;
pub mod plot;
pub mod render;
pub mod run;
pub mod spectrogram_png;
pub mod wavenet;

pub use dataset::{load_dataset, Clip, Dataset, DatasetConfig, DatasetError, SkippedFile, SourceFile, Split};
pub use decode::{decode_mono, DecodeError, MonoAudio};
pub use render::{find_soundfont, RenderConfig, RenderError, RenderSummary, Renderer, FAMILIES};
