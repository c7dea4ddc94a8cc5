//! The default models shipped in `models/` and embedded in every build, so
//! dreaming works out of the box. `models/README.md` says how each was made.

use candle_core::Device;

use crate::model_file::ModelFileError;
use crate::perception::PerceptionModel;

/// The default perception model's file, as shipped.
pub const PERCEPTION_BYTES: &[u8] = include_bytes!("../../models/perception.safetensors");

/// Loads the embedded default perception model onto `device`.
pub fn perception(device: &Device) -> Result<PerceptionModel, ModelFileError> {
    PerceptionModel::from_bytes(PERCEPTION_BYTES, device)
}

/// The default WaveNet's file, as shipped.
pub const WAVENET_BYTES: &[u8] = include_bytes!("../../models/wavenet.safetensors");

/// Loads the embedded default WaveNet as a real-time sampler.
pub fn wavenet() -> Result<crate::sampler::Sampler, ModelFileError> {
    crate::sampler::Sampler::from_bytes(WAVENET_BYTES)
}
