//! Reverie's model file: a safetensors file whose header metadata carries a
//! JSON description of the model (format version, kind, architecture,
//! sample rate, class names, how it was trained).
//!
//! Every way a file can be wrong maps to its own [`ModelFileError`] variant so
//! the plugin and the command line can say what is wrong and what to do; no
//! input, however malformed, may panic.
//!
//! Each network says once which tensors it has ([`Layout::try_map`], a walk
//! over them in a fixed order, with their file names and [`Role`]s) and
//! what its file's metadata holds ([`Network`]); reading, writing and
//! checking a file ([`Model`]) is written once for every kind, and the
//! trainer and the real-time sampler take their tensors through the same
//! walk.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt::Debug;
use std::path::Path;

use candle_core::{Device, Tensor};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, TensorView};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The model file format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The key under which the JSON metadata lives in the safetensors header.
const META_KEY: &str = "reverie";

/// What a model file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// A raw-audio perception (classification) network to dream through.
    Perception,
    /// An autoregressive WaveNet that generates audio.
    Wavenet,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelKind::Perception => write!(f, "perception"),
            ModelKind::Wavenet => write!(f, "wavenet"),
        }
    }
}

/// How a model was trained, shown to users beside the model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainingSummary {
    /// Free text: the command line, the dataset, anything a user should know.
    pub description: String,
    /// Optimiser steps taken.
    pub steps: u64,
    /// Wall-clock seconds spent training.
    pub seconds: f64,
    /// Final metrics (e.g. `val_accuracy`, `val_nll`).
    pub metrics: BTreeMap<String, f64>,
}

/// The JSON metadata stored with every model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// File format version; see [`FORMAT_VERSION`].
    pub format_version: u32,
    /// What kind of network the tensors belong to.
    pub kind: ModelKind,
    /// A human-readable name.
    pub name: String,
    /// The audio rate the network was trained at, in Hz.
    pub sample_rate: u32,
    /// Class names, in logit order (empty for generative models).
    #[serde(default)]
    pub class_names: Vec<String>,
    /// The architecture, as the kind's own config struct serialises it.
    pub config: serde_json::Value,
    /// How the model was made.
    #[serde(default)]
    pub training: TrainingSummary,
}

/// Everything that can be wrong with a model file.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// The file could not be read from disk.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes end before the safetensors header says they should.
    #[error(
        "the model file is truncated ({0}); it was probably not copied completely, copy or download it again"
    )]
    Truncated(String),
    /// The bytes are not a safetensors file at all.
    #[error("not a safetensors model file ({0}); choose a .safetensors file written by `cargo xtask train`")]
    NotSafetensors(String),
    /// A safetensors file without Reverie's metadata.
    #[error("the safetensors file has no Reverie metadata; it was not written by Reverie's trainer")]
    MissingMetadata,
    /// Reverie's metadata is not valid JSON of the expected shape.
    #[error("the model metadata is invalid: {0}")]
    BadMetadata(String),
    /// A model of another kind was given.
    #[error("this is a {found} model, but a {expected} model is needed here")]
    WrongKind {
        /// The kind the caller needs.
        expected: ModelKind,
        /// The kind the file holds.
        found: ModelKind,
    },
    /// A format version this build does not understand.
    #[error("model file format version {found} is not supported (this build reads version {supported}); update Reverie or re-export the model")]
    UnsupportedVersion {
        /// The file's version.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The architecture config is inconsistent.
    #[error("the model's architecture config is invalid: {0}")]
    InvalidConfig(String),
    /// A tensor the architecture needs is not in the file.
    #[error("the model file lacks tensor `{0}`")]
    MissingTensor(String),
    /// A tensor has the wrong shape for the architecture.
    #[error("tensor `{name}` has shape {found:?}, the architecture needs {expected:?}")]
    WrongShape {
        /// Tensor name.
        name: String,
        /// Shape the config implies.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a type other than f32.
    #[error("tensor `{name}` is stored as {dtype}, only F32 is supported")]
    WrongDtype {
        /// Tensor name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// A tensor holds NaN or infinite values (e.g. a diverged training run).
    #[error("tensor `{0}` contains NaN or infinite values; the model is broken (did training diverge?)")]
    NonFinite(String),
    /// An error inside candle while building tensors.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// A model file's metadata and its raw f32 tensors, before any
/// kind-specific validation.
#[derive(Debug, Clone)]
pub struct RawModel {
    /// The metadata.
    pub meta: ModelMeta,
    /// Tensors by name: shape and row-major data.
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    /// Other header metadata entries by key, kept as they are (e.g. a
    /// training checkpoint's state); the engine reads none of them.
    pub extra_metadata: BTreeMap<String, String>,
}

impl RawModel {
    /// Parses and checks the container: safetensors structure, metadata,
    /// format version, f32 dtype and finiteness of every tensor.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelFileError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| classify(e, bytes.len()))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| classify(e, bytes.len()))?;
        let mut extra_metadata: BTreeMap<String, String> = header
            .metadata()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let json = extra_metadata
            .remove(META_KEY)
            .ok_or(ModelFileError::MissingMetadata)?;
        // Read the version first so a future format gets the right message
        // even when the rest of its metadata no longer parses.
        let value: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| ModelFileError::BadMetadata(e.to_string()))?;
        let version = value
            .get("format_version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| ModelFileError::BadMetadata("no format_version".into()))?;
        if version != u64::from(FORMAT_VERSION) {
            return Err(ModelFileError::UnsupportedVersion {
                found: version.min(u64::from(u32::MAX)) as u32,
                supported: FORMAT_VERSION,
            });
        }
        let meta: ModelMeta =
            serde_json::from_value(value).map_err(|e| ModelFileError::BadMetadata(e.to_string()))?;
        if meta.sample_rate == 0 {
            return Err(ModelFileError::BadMetadata("sample_rate is 0".into()));
        }
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(ModelFileError::WrongDtype {
                    name,
                    dtype: format!("{:?}", view.dtype()),
                });
            }
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if data.iter().any(|v| !v.is_finite()) {
                return Err(ModelFileError::NonFinite(name));
            }
            tensors.insert(name, (view.shape().to_vec(), data));
        }
        Ok(Self {
            meta,
            tensors,
            extra_metadata,
        })
    }

    /// Reads and parses a file from disk.
    pub fn read(path: &Path) -> Result<Self, ModelFileError> {
        let bytes = std::fs::read(path).map_err(|source| ModelFileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    /// The architecture of a file of `N`'s kind, checked (see
    /// [`Network::config`]).
    pub fn config<N: Network>(&self) -> Result<N::Config, ModelFileError> {
        self.expect_kind(N::KIND)?;
        N::config(&self.meta)
    }

    /// Checks the kind against what the caller needs.
    pub fn expect_kind(&self, kind: ModelKind) -> Result<(), ModelFileError> {
        if self.meta.kind != kind {
            return Err(ModelFileError::WrongKind {
                expected: kind,
                found: self.meta.kind,
            });
        }
        Ok(())
    }

    /// The data of the tensor `name`, which must have exactly `shape` and
    /// values its `role` allows (a variance is never negative).
    pub fn data(&self, name: &str, role: Role, shape: &[usize]) -> Result<&[f32], ModelFileError> {
        let (found, data) = self
            .tensors
            .get(name)
            .ok_or_else(|| ModelFileError::MissingTensor(name.to_string()))?;
        if found.as_slice() != shape || data.len() != shape.iter().product::<usize>() {
            return Err(ModelFileError::WrongShape {
                name: name.to_string(),
                expected: shape.to_vec(),
                found: found.clone(),
            });
        }
        if role == Role::RunningVar && data.iter().any(|v| *v < 0.0) {
            return Err(ModelFileError::InvalidConfig(format!(
                "{name} has negative entries"
            )));
        }
        Ok(data)
    }

    /// [`RawModel::data`] as a candle tensor on `device`.
    pub fn tensor(
        &self,
        name: &str,
        role: Role,
        shape: &[usize],
        device: &Device,
    ) -> Result<Tensor, ModelFileError> {
        Ok(Tensor::from_slice(self.data(name, role, shape)?, shape, device)?)
    }

    /// Serialises metadata (the model's and every extra entry) and tensors
    /// into safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelFileError> {
        let json =
            serde_json::to_string(&self.meta).map_err(|e| ModelFileError::BadMetadata(e.to_string()))?;
        let mut names: Vec<&String> = self.tensors.keys().collect();
        names.sort();
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = names
            .into_iter()
            .map(|n| {
                let (shape, data) = &self.tensors[n];
                let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (n.clone(), shape.clone(), raw)
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(n, shape, raw)| {
                TensorView::new(Dtype::F32, shape.clone(), raw)
                    .map(|v| (n.as_str(), v))
                    .map_err(|e| ModelFileError::NotSafetensors(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut info: HashMap<String, String> = self
            .extra_metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        info.insert(META_KEY.to_string(), json);
        safetensors::serialize(views, Some(info)).map_err(|e| ModelFileError::NotSafetensors(e.to_string()))
    }

    /// Writes the model to disk.
    pub fn write(&self, path: &Path) -> Result<(), ModelFileError> {
        let bytes = self.to_bytes()?;
        std::fs::write(path, bytes).map_err(|source| ModelFileError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Copies a candle tensor into the raw map.
    pub fn insert(&mut self, name: &str, tensor: &Tensor) -> Result<(), ModelFileError> {
        let data = tensor.flatten_all()?.to_vec1::<f32>()?;
        self.tensors
            .insert(name.to_string(), (tensor.dims().to_vec(), data));
        Ok(())
    }
}

fn classify(e: SafeTensorError, len: usize) -> ModelFileError {
    match e {
        SafeTensorError::HeaderTooSmall
        | SafeTensorError::MetadataIncompleteBuffer
        | SafeTensorError::InvalidHeaderLength => {
            ModelFileError::Truncated(format!("{e} in a file of {len} bytes"))
        }
        other => ModelFileError::NotSafetensors(other.to_string()),
    }
}

/// What a tensor does in its network. Loaders check values by it, and
/// initialisers and trainers decide by it rather than by spelling names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A table of input embeddings, looked up rather than multiplied.
    Embedding,
    /// A kernel or matrix that multiplies the activations.
    Weight,
    /// An offset added after a weight.
    Bias,
    /// Batch norm's learned scale.
    NormScale,
    /// Batch norm's learned shift.
    NormShift,
    /// Batch norm's running mean.
    RunningMean,
    /// Batch norm's running variance (never negative).
    RunningVar,
}

impl Role {
    /// Whether gradient descent trains it; running statistics follow the
    /// batches instead.
    pub fn trainable(self) -> bool {
        !matches!(self, Role::RunningMean | Role::RunningVar)
    }
}

/// A network's arrangement of tensors, whatever stands in each tensor's
/// place: candle tensors, their shapes, or raw data from a file.
pub trait Layout: Sized {
    /// What stands in each tensor's place.
    type Elem;
    /// The same arrangement with `U` in each tensor's place.
    type With<U>: Layout<Elem = U>;

    /// The one walk over the network's tensors: the same arrangement with
    /// `f(file name, role, tensor)` in each place, visited in a fixed order
    /// (the first error stops the walk). Every consumer goes through it, so
    /// each name is spelled in one place.
    fn try_map<'a, U, E>(
        &'a self,
        f: impl FnMut(&str, Role, &'a Self::Elem) -> Result<U, E>,
    ) -> Result<Self::With<U>, E>;

    /// [`try_map`](Self::try_map) with an `f` that cannot fail.
    fn map<'a, U>(&'a self, mut f: impl FnMut(&str, Role, &'a Self::Elem) -> U) -> Self::With<U> {
        match self.try_map(|name, role, t| Ok::<U, Infallible>(f(name, role, t))) {
            Ok(mapped) => mapped,
            Err(never) => match never {},
        }
    }

    /// Every tensor with its file name and role, in the walk's order.
    fn named(&self) -> Vec<(String, Role, &Self::Elem)> {
        let mut out = Vec::new();
        self.map(|name, role, t| out.push((name.to_string(), role, t)));
        out
    }
}

/// A kind of network stored in model files: its kind, its architecture and
/// the shape of every tensor that architecture has.
pub trait Network: Layout<Elem = Tensor, With<Tensor> = Self> + Debug + Clone {
    /// The kind its files declare.
    const KIND: ModelKind;
    /// The architecture, stored as the metadata's `config`.
    type Config: Clone + Debug + PartialEq + Serialize + DeserializeOwned;
    /// Every tensor's shape, arranged as the network.
    type Shapes: Layout<Elem = Vec<usize>, With<Tensor> = Self>;

    /// The architecture in `meta`, checked on its own and against the rest
    /// of the metadata (e.g. the class names).
    fn config(meta: &ModelMeta) -> Result<Self::Config, ModelFileError>;

    /// The shape of every tensor of `config`'s network described by `meta`.
    fn shapes(config: &Self::Config, meta: &ModelMeta) -> Self::Shapes;
}

/// A network together with its metadata: what a model file holds.
#[derive(Debug, Clone)]
pub struct Model<N: Network> {
    /// Name, kind, rate, classes, training summary.
    pub meta: ModelMeta,
    /// Architecture.
    pub config: N::Config,
    /// Tensors.
    pub net: N,
}

impl<N: Network> Model<N> {
    /// A model of `net` with fresh metadata (no training summary yet).
    pub fn new(
        config: N::Config,
        net: N,
        name: &str,
        sample_rate: u32,
        class_names: Vec<String>,
    ) -> Result<Self, ModelFileError> {
        let meta = ModelMeta {
            format_version: FORMAT_VERSION,
            kind: N::KIND,
            name: name.into(),
            sample_rate,
            class_names,
            config: config_json(&config)?,
            training: TrainingSummary::default(),
        };
        Ok(Self { meta, config, net })
    }

    /// Validates kind, config and every tensor (shape and values).
    pub fn from_raw(raw: &RawModel, device: &Device) -> Result<Self, ModelFileError> {
        let config = raw.config::<N>()?;
        let net = N::shapes(&config, &raw.meta)
            .try_map(|name, role, shape| raw.tensor(name, role, shape, device))?;
        Ok(Self {
            meta: raw.meta.clone(),
            config,
            net,
        })
    }

    /// Loads and validates a model from file bytes.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self, ModelFileError> {
        Self::from_raw(&RawModel::from_bytes(bytes)?, device)
    }

    /// Loads and validates a model from disk.
    pub fn load(path: &Path, device: &Device) -> Result<Self, ModelFileError> {
        Self::from_raw(&RawModel::read(path)?, device)
    }

    /// The model as a raw container, ready to write.
    pub fn to_raw(&self) -> Result<RawModel, ModelFileError> {
        let mut raw = RawModel {
            meta: self.meta.clone(),
            tensors: HashMap::new(),
            extra_metadata: BTreeMap::new(),
        };
        raw.meta.config = config_json(&self.config)?;
        for (name, _, t) in self.net.named() {
            raw.insert(&name, t)?;
        }
        Ok(raw)
    }

    /// Writes the model file.
    pub fn save(&self, path: &Path) -> Result<(), ModelFileError> {
        self.to_raw()?.write(path)
    }
}

/// A config as the metadata's JSON.
fn config_json(config: &impl Serialize) -> Result<serde_json::Value, ModelFileError> {
    serde_json::to_value(config).map_err(|e| ModelFileError::BadMetadata(e.to_string()))
}

/// The architecture of a file's metadata as `C`, whose deserialisation (or
/// `validate`) explains what is wrong.
pub(crate) fn parse_config<C: DeserializeOwned>(meta: &ModelMeta) -> Result<C, ModelFileError> {
    serde_json::from_value(meta.config.clone()).map_err(|e| ModelFileError::InvalidConfig(e.to_string()))
}
