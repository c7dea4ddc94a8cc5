//! Checkpoints: everything needed to continue a run exactly where it
//! stopped.
//!
//! A checkpoint is a Reverie model file (the same safetensors container,
//! the same `reverie` metadata, the same tensor names) with two additions:
//! the optimiser's buffers as tensors named `optim.<param>.<buffer>`, and a
//! second metadata entry, `reverie_checkpoint`, holding the training
//! configuration and progress as JSON. The engine ignores both, so a
//! checkpoint can also be loaded and dreamed through as it is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use reverie_engine::model_file::{ModelFileError, RawModel};
use reverie_engine::perception::PerceptionModel;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::optim::OptimizerState;
use crate::run_folder::write_atomically;
use crate::train::{Progress, TrainConfig};

/// The checkpoint format version this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Metadata key of the model description; the engine's model files use it.
const MODEL_KEY: &str = "reverie";
/// Metadata key of the training state.
const STATE_KEY: &str = "reverie_checkpoint";
/// Prefix of the optimiser's tensors.
const OPTIM_PREFIX: &str = "optim.";

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error("cannot access checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The model part of the file is unreadable.
    #[error("bad checkpoint {path}: {source}")]
    Model {
        /// The file.
        path: PathBuf,
        /// What is wrong with the model part.
        #[source]
        source: ModelFileError,
    },
    /// A valid model file without training state.
    #[error("{path} is a model file, not a checkpoint: it holds no optimiser state or progress, so training cannot resume from it; pass the checkpoint.safetensors from the run folder instead")]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
    },
    /// The training state is malformed or from an unknown version.
    #[error("bad checkpoint {path}: {reason}")]
    BadState {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Building tensors failed.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// The JSON stored under [`STATE_KEY`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateJson {
    version: u32,
    config: TrainConfig,
    optimizer_step: u64,
    progress: Progress,
}

/// A snapshot of a training run.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The model, batch-norm running statistics included.
    pub model: PerceptionModel,
    /// The optimiser's step counter and buffers.
    pub optimizer: OptimizerState,
    /// The training configuration.
    pub config: TrainConfig,
    /// Counters, history and anything else needed to continue.
    pub progress: Progress,
}

impl Checkpoint {
    /// Serialises the checkpoint.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        let bad = |reason: String| CheckpointError::BadState {
            path: PathBuf::new(),
            reason,
        };
        let model_err = |source| CheckpointError::Model {
            path: PathBuf::new(),
            source,
        };
        let mut raw = self.model.to_raw().map_err(model_err)?;
        insert_optimizer(&mut raw, &self.optimizer).map_err(model_err)?;
        let state = StateJson {
            version: CHECKPOINT_VERSION,
            config: self.config.clone(),
            optimizer_step: self.optimizer.step,
            progress: self.progress.clone(),
        };
        checkpoint_bytes(&raw, &state).map_err(bad)
    }

    /// Parses a checkpoint; `path` is only used in error messages.
    pub fn from_bytes(bytes: &[u8], path: &Path, device: &Device) -> Result<Self, CheckpointError> {
        let path = path.to_path_buf();
        let raw = RawModel::from_bytes(bytes).map_err(|source| CheckpointError::Model {
            path: path.clone(),
            source,
        })?;
        let model = PerceptionModel::from_raw(&raw, device).map_err(|source| CheckpointError::Model {
            path: path.clone(),
            source,
        })?;
        // RawModel has already checked that the header parses.
        let bad = |reason: String| CheckpointError::BadState {
            path: path.clone(),
            reason,
        };
        let not_a_checkpoint = || CheckpointError::NotACheckpoint { path: path.clone() };
        let value = read_state(bytes, CHECKPOINT_VERSION, not_a_checkpoint, bad)?;
        let state: StateJson = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
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
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bytes = self.to_bytes().map_err(|e| with_path(e, path))?;
        write_atomically(path, &bytes).map_err(io)
    }

    /// Reads a checkpoint from disk.
    pub fn load(path: &Path, device: &Device) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path, device)
    }
}

/// Fills in the path of errors raised before it was known.
fn with_path(e: CheckpointError, path: &Path) -> CheckpointError {
    match e {
        CheckpointError::Model { source, .. } => CheckpointError::Model {
            path: path.to_path_buf(),
            source,
        },
        CheckpointError::BadState { reason, .. } => CheckpointError::BadState {
            path: path.to_path_buf(),
            reason,
        },
        other => other,
    }
}

// The container below is shared with the WaveNet trainer's checkpoints,
// which keep the same layout around another model type.

/// Adds the optimiser's buffers to a model's tensors, named
/// `optim.<param>.<buffer>`.
pub(crate) fn insert_optimizer(raw: &mut RawModel, optimizer: &OptimizerState) -> Result<(), ModelFileError> {
    for (name, t) in &optimizer.tensors {
        raw.insert(&format!("{OPTIM_PREFIX}{name}"), t)?;
    }
    Ok(())
}

/// The optimiser's buffers stored in `raw` (sorted by name), with its step
/// counter.
pub(crate) fn read_optimizer(
    raw: &RawModel,
    step: u64,
    device: &Device,
) -> candle_core::Result<OptimizerState> {
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

/// A checkpoint file's bytes: `raw` as a model file, with `state` as JSON
/// under [`STATE_KEY`] beside the model's own metadata. (RawModel's writer
/// has no room for a second metadata entry.) The error says what failed.
pub(crate) fn checkpoint_bytes(raw: &RawModel, state: &impl Serialize) -> Result<Vec<u8>, String> {
    let metadata = HashMap::from([
        (
            MODEL_KEY.to_string(),
            serde_json::to_string(&raw.meta).map_err(|e| e.to_string())?,
        ),
        (
            STATE_KEY.to_string(),
            serde_json::to_string(state).map_err(|e| e.to_string())?,
        ),
    ]);
    let mut names: Vec<&String> = raw.tensors.keys().collect();
    names.sort();
    let bytes: Vec<(&String, &Vec<usize>, Vec<u8>)> = names
        .into_iter()
        .map(|n| {
            let (shape, data) = &raw.tensors[n];
            (n, shape, data.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, shape, data)| {
            TensorView::new(Dtype::F32, shape.to_vec(), data)
                .map(|v| (n.as_str(), v))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())
}

/// The training state of a checkpoint file's bytes, as JSON whose format
/// `version` is the one this build reads. Errors are the caller's: `missing`
/// for a plain model file, `bad` (with the reason) for a malformed state or
/// one of another version.
pub(crate) fn read_state<E>(
    bytes: &[u8],
    version: u32,
    missing: impl FnOnce() -> E,
    bad: impl Fn(String) -> E,
) -> Result<serde_json::Value, E> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or_else(missing)?;
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let found = value.get("version").and_then(|v| v.as_u64());
    if found != Some(u64::from(version)) {
        return Err(bad(format!(
            "checkpoint format version {found:?} is not supported (this build reads version {version})"
        )));
    }
    Ok(value)
}
