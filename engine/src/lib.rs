//! Reverie's engine: the networks, the dreaming, the streaming pipeline and
//! the model files. It knows nothing of plugins or GUIs; the plugin, the
//! trainer and the command line all drive it.
//!
//! Data flows one way: trainer → model file ([`model_file`]) → engine → plugin.

#![warn(missing_docs)]

pub mod defaults;
pub mod device;
pub mod dream_measures;
pub mod dreamer;
pub mod effort;
pub mod emphasis;
pub mod filters;
pub mod generator;
pub mod kernels;
pub mod layers;
pub mod likelihood;
pub mod model_file;
pub mod mulaw;
pub mod notes;
pub mod perception;
pub mod pitch;
pub mod prediction_inputs;
pub mod predictor;
pub mod resample;
mod rng;
pub mod sampler;
pub mod signal_coding;
pub mod spectral_dream;
pub mod spectrogram;
pub mod stft;
pub mod streaming;
pub mod tone_prior;
pub mod tone_sampling;
pub mod wav;
pub mod wavenet;

pub use rng::normal_vec;
