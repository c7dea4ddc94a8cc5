//! Checkpoints: everything needed to continue a run exactly where it
//! stopped.
//!
//! A checkpoint is a Reverie model file (the same safetensors container,
//! the same `reverie` metadata, the same tensor names) with two additions:
//! the optimiser's buffers as tensors named `optim.<param>.<buffer>`, and a
//! second metadata entry, `reverie_checkpoint`, holding the training
//! settings and progress as JSON. The engine ignores both, so a checkpoint
//! can also be loaded, dreamed through or generated with as it is.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use reverie_engine::model_file::{Model, RawModel};
use serde::{Deserialize, Serialize};

use reverie_engine::model_file::Network;
use serde::de::DeserializeOwned;

use super::error::TrainError;
use super::files::write_atomically;
use crate::optim::OptimizerState;

/// The checkpoint format version this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Metadata key of the training state.
const STATE_KEY: &str = "reverie_checkpoint";
/// Prefix of the optimiser's tensors.
const OPTIM_PREFIX: &str = "optim.";

/// What a kind of training run keeps in its checkpoints: its network, its
/// settings and its progress (see [`super::Task`], which builds on it).
pub trait CheckpointFormat: Sized {
    /// What messages call the network ("WaveNet").
    const NAME: &'static str;
    /// The `network` entry of the checkpoint state, if this kind of run
    /// writes one (the WaveNet trainer does; the perception trainer never
    /// did).
    const NETWORK: Option<&'static str>;
    /// The network trained.
    type Net: Network;
    /// The run's settings.
    type Config: Serialize + DeserializeOwned + Clone + std::fmt::Debug;
    /// Where the run stands.
    type Progress: Serialize + DeserializeOwned + Clone + std::fmt::Debug;
}

/// The JSON stored under [`STATE_KEY`].
#[derive(Serialize, Deserialize)]
struct StateJson<C, P> {
    version: u32,
    /// Which trainer wrote it, for the kinds of run that say (see
    /// [`CheckpointFormat::NETWORK`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    network: Option<String>,
    config: C,
    optimizer_step: u64,
    progress: P,
}

/// A snapshot of a training run of kind `T`.
#[derive(Debug, Clone)]
pub struct Checkpoint<T: CheckpointFormat> {
    /// The model (batch-norm running statistics included, where it has them).
    pub model: Model<T::Net>,
    /// The optimiser's step counter and buffers.
    pub optimizer: OptimizerState,
    /// The run's settings.
    pub config: T::Config,
    /// Counters, history and anything else needed to continue.
    pub progress: T::Progress,
}

impl<T: CheckpointFormat> Checkpoint<T> {
    /// Serialises the checkpoint.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TrainError> {
        let mut raw = self.model.to_raw()?;
        for (name, t) in &self.optimizer.tensors {
            raw.insert(&format!("{OPTIM_PREFIX}{name}"), t)?;
        }
        let state = StateJson {
            version: CHECKPOINT_VERSION,
            network: T::NETWORK.map(str::to_string),
            config: &self.config,
            optimizer_step: self.optimizer.step,
            progress: &self.progress,
        };
        let json = serde_json::to_string(&state).map_err(|e| TrainError::BadCheckpoint {
            path: PathBuf::new(),
            reason: e.to_string(),
        })?;
        raw.extra_metadata.insert(STATE_KEY.into(), json);
        Ok(raw.to_bytes()?)
    }

    /// Parses a checkpoint; `path` is only used in error messages.
    pub fn from_bytes(bytes: &[u8], path: &Path, device: &Device) -> Result<Self, TrainError> {
        let path = path.to_path_buf();
        let model_err = |source| TrainError::CheckpointModel {
            path: path.clone(),
            source,
        };
        let raw = RawModel::from_bytes(bytes).map_err(model_err)?;
        let model = Model::from_raw(&raw, device).map_err(model_err)?;
        let bad = |reason: String| TrainError::BadCheckpoint {
            path: path.clone(),
            reason,
        };
        let json = raw
            .extra_metadata
            .get(STATE_KEY)
            .ok_or_else(|| TrainError::NotACheckpoint { path: path.clone() })?;
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let found = value.get("version").and_then(|v| v.as_u64());
        if found != Some(u64::from(CHECKPOINT_VERSION)) {
            return Err(bad(format!(
                "checkpoint format version {found:?} is not supported (this build reads version {CHECKPOINT_VERSION})"
            )));
        }
        if let Some(network) = T::NETWORK {
            if value.get("network").and_then(|v| v.as_str()) != Some(network) {
                return Err(bad(format!(
                    "it is not a {} checkpoint (it was written by another trainer)",
                    T::NAME
                )));
            }
        }
        let state: StateJson<T::Config, T::Progress> =
            serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            model,
            optimizer: read_optimizer(&raw, state.optimizer_step, device)?,
            config: state.config,
            progress: state.progress,
        })
    }

    /// Writes the checkpoint atomically: to a temporary file first, then
    /// renamed over `path`, so an interrupted write never destroys the
    /// previous checkpoint.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let bytes = self.to_bytes().map_err(|e| match e {
            TrainError::BadCheckpoint { reason, .. } => TrainError::BadCheckpoint {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })?;
        write_atomically(path, &bytes).map_err(|source| TrainError::CheckpointIo {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a checkpoint from disk.
    pub fn load(path: &Path, device: &Device) -> Result<Self, TrainError> {
        let bytes = std::fs::read(path).map_err(|source| TrainError::CheckpointIo {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path, device)
    }
}

/// The optimiser's buffers stored in `raw` (sorted by name), with its step
/// counter.
fn read_optimizer(raw: &RawModel, step: u64, device: &Device) -> candle_core::Result<OptimizerState> {
    let mut tensors = Vec::new();
    for (name, (shape, data)) in &raw.tensors {
        if let Some(short) = name.strip_prefix(OPTIM_PREFIX) {
            tensors.push((
                short.to_string(),
                Tensor::from_slice(data, shape.as_slice(), device)?,
            ));
        }
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(OptimizerState { step, tensors })
}
