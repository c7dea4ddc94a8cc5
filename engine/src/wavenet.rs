//! The autoregressive WaveNet of seed 004, in candle for training: µ-law
//! classes are embedded, pass through stacks of dilated causal convolutions
//! (kernel 2) with gated residual blocks `tanh(W x) * sigmoid(V x)`, whose
//! skip outputs are summed and turned into a softmax over the next sample's
//! class by a small head (ReLU, 1x1, ReLU, 1x1).
//!
//! The output at time `t` is the distribution of the class at `t + 1`, and it
//! sees the inputs `t - receptive_field + 1 ..= t`, where the receptive field
//! is the sum of the dilations plus one.
//!
//! Activations are channels-last, `[batch * time, channels]`, and every
//! weight is stored `[in, out]`, so each 1x1 convolution is one plain matmul
//! and a dilated convolution is two (the current input and the input `d`
//! steps back, taken from a left-shifted slice). The same `[in, out]` layout
//! is what the real-time sampler ([`crate::sampler`]) streams through.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Result as CResult, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model_file::{ModelFileError, ModelKind, ModelMeta, RawModel, FORMAT_VERSION};
use crate::mulaw::MAX_CLASSES;
use crate::rng::normal_vec;

/// Largest dilation a model may use.
pub const MAX_DILATION: usize = 1 << 20;

/// Largest number of layers a model may have.
pub const MAX_LAYERS: usize = 1024;

/// Largest channel count of any kind.
pub const MAX_CHANNELS: usize = 4096;

/// Largest number of floats the sampler's activation queues may need
/// (`(receptive_field - 1) * residual_channels`, 1 GiB): a file must not be
/// able to make the loader exhaust memory.
pub const MAX_QUEUE_FLOATS: usize = 1 << 28;

/// The name of a freshly initialised model, before a training run names it.
pub const UNTRAINED_NAME: &str = "untrained WaveNet";

/// Architecture of a WaveNet. Stored in the model file together with its
/// receptive field, which is checked against the dilations on load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredConfig", into = "StoredConfig")]
pub struct WavenetConfig {
    /// Dilation of each layer, first layer first (e.g. 1, 2, 4, ..., 512
    /// twice; or the seed's fewer layers with dilations up to 16384).
    pub dilations: Vec<usize>,
    /// Channels of the residual stream between layers.
    pub residual_channels: usize,
    /// Channels of the gated activation inside each layer.
    pub dilation_channels: usize,
    /// Channels of the summed skip outputs and of the head's hidden layer.
    pub skip_channels: usize,
    /// µ-law classes of input and output (256 = 8 bits).
    pub classes: usize,
}

impl Default for WavenetConfig {
    /// About 20 layers (1..512 twice), 32 residual, 32 dilation and 128 skip
    /// channels, 256 classes: a receptive field of 2047 samples (128 ms at
    /// 16 kHz) and about 232k multiply-adds per generated sample.
    fn default() -> Self {
        Self {
            dilations: dilation_stacks(2, 512),
            residual_channels: 32,
            dilation_channels: 32,
            skip_channels: 128,
            classes: crate::mulaw::CLASSES,
        }
    }
}

/// `stacks` repetitions of the doubling sequence `1, 2, 4, ..., max`
/// (`max` is rounded down to a power of two; 0 gives no layers).
pub fn dilation_stacks(stacks: usize, max: usize) -> Vec<usize> {
    let doublings: Vec<usize> = std::iter::successors(Some(1usize), |d| d.checked_mul(2))
        .take_while(|&d| d <= max)
        .collect();
    (0..stacks).flat_map(|_| doublings.iter().copied()).collect()
}

impl WavenetConfig {
    /// Number of layers.
    pub fn num_layers(&self) -> usize {
        self.dilations.len()
    }

    /// Samples of input each output depends on: the sum of the dilations
    /// plus one (each kernel-2 layer reaches `d` samples further back).
    pub fn receptive_field(&self) -> usize {
        self.dilations
            .iter()
            .fold(1usize, |acc, &d| acc.saturating_add(d))
    }

    /// Whether layer `i` has a residual 1x1 convolution. The last layer's
    /// residual output would feed nothing, so it has none (and no weights
    /// that would never get a gradient).
    pub fn has_residual(&self, layer: usize) -> bool {
        layer + 1 < self.num_layers()
    }

    /// Multiply-adds the cached sampler spends per generated sample.
    pub fn macs_per_sample(&self) -> usize {
        let (r, d, s, c) = (
            self.residual_channels,
            self.dilation_channels,
            self.skip_channels,
            self.classes,
        );
        let layers = self.num_layers();
        let residuals = layers.saturating_sub(1);
        layers * (2 * r * 2 * d + d * s) + residuals * d * r + s * s + s * c
    }

    /// Checks the config for consistency and for sizes a loader can afford.
    pub fn validate(&self) -> Result<(), String> {
        if self.dilations.is_empty() {
            return Err("a WaveNet needs at least one layer".into());
        }
        if self.dilations.len() > MAX_LAYERS {
            return Err(format!(
                "{} layers are more than the supported {MAX_LAYERS}",
                self.dilations.len()
            ));
        }
        if let Some(d) = self.dilations.iter().find(|&&d| d == 0 || d > MAX_DILATION) {
            return Err(format!("dilation {d} is outside 1..={MAX_DILATION}"));
        }
        for (name, c) in [
            ("residual_channels", self.residual_channels),
            ("dilation_channels", self.dilation_channels),
            ("skip_channels", self.skip_channels),
        ] {
            if c == 0 || c > MAX_CHANNELS {
                return Err(format!("{name} is {c}, it must be in 1..={MAX_CHANNELS}"));
            }
        }
        if !(2..=MAX_CLASSES).contains(&self.classes) {
            return Err(format!(
                "classes is {}, it must be in 2..={MAX_CLASSES}",
                self.classes
            ));
        }
        let queue = (self.receptive_field() - 1).saturating_mul(self.residual_channels);
        if queue > MAX_QUEUE_FLOATS {
            return Err(format!(
                "receptive field {} with {} residual channels needs {queue} cached activations, more than the supported {MAX_QUEUE_FLOATS}",
                self.receptive_field(),
                self.residual_channels
            ));
        }
        Ok(())
    }

    /// Every tensor the architecture has, with its file name and shape, in
    /// a fixed order.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (r, d, s, c) = (
            self.residual_channels,
            self.dilation_channels,
            self.skip_channels,
            self.classes,
        );
        let mut out = vec![("embedding.weight".to_string(), vec![c, r])];
        for i in 0..self.num_layers() {
            out.push((format!("layer{i}.filter_gate.weight"), vec![2 * r, 2 * d]));
            out.push((format!("layer{i}.filter_gate.bias"), vec![2 * d]));
            if self.has_residual(i) {
                out.push((format!("layer{i}.residual.weight"), vec![d, r]));
                out.push((format!("layer{i}.residual.bias"), vec![r]));
            }
            out.push((format!("layer{i}.skip.weight"), vec![d, s]));
            out.push((format!("layer{i}.skip.bias"), vec![s]));
        }
        out.push(("head1.weight".into(), vec![s, s]));
        out.push(("head1.bias".into(), vec![s]));
        out.push(("head2.weight".into(), vec![s, c]));
        out.push(("head2.bias".into(), vec![c]));
        out
    }
}

/// The config as stored in a file: the fields plus the receptive field, so
/// a reader sees it without knowing the rule and a file whose stored value
/// disagrees with its dilations is caught as inconsistent.
#[derive(Clone, Serialize, Deserialize)]
struct StoredConfig {
    dilations: Vec<usize>,
    residual_channels: usize,
    dilation_channels: usize,
    skip_channels: usize,
    classes: usize,
    receptive_field: usize,
}

impl From<WavenetConfig> for StoredConfig {
    fn from(c: WavenetConfig) -> Self {
        let receptive_field = c.receptive_field();
        Self {
            dilations: c.dilations,
            residual_channels: c.residual_channels,
            dilation_channels: c.dilation_channels,
            skip_channels: c.skip_channels,
            classes: c.classes,
            receptive_field,
        }
    }
}

impl TryFrom<StoredConfig> for WavenetConfig {
    type Error = String;

    fn try_from(s: StoredConfig) -> Result<Self, String> {
        let config = WavenetConfig {
            dilations: s.dilations,
            residual_channels: s.residual_channels,
            dilation_channels: s.dilation_channels,
            skip_channels: s.skip_channels,
            classes: s.classes,
        };
        config.validate()?;
        if config.receptive_field() != s.receptive_field {
            return Err(format!(
                "the stored receptive field {} does not match the dilations, whose receptive field is {}",
                s.receptive_field,
                config.receptive_field()
            ));
        }
        Ok(config)
    }
}

/// One gated residual layer's tensors (all `[in, out]`).
#[derive(Debug, Clone)]
pub struct WavenetLayer {
    /// How many samples back the second tap of the convolution looks.
    pub dilation: usize,
    /// Dilated convolution, `[2 * residual, 2 * dilation_channels]`: rows
    /// `0..residual` multiply the input `dilation` steps back, the other rows
    /// the current input; columns `0..dilation_channels` are the filter
    /// (tanh), the rest the gate (sigmoid).
    pub filter_gate_w: Tensor,
    /// Bias of the dilated convolution, `[2 * dilation_channels]`.
    pub filter_gate_b: Tensor,
    /// Residual 1x1 convolution `[dilation_channels, residual]` and its bias
    /// `[residual]`; `None` in the last layer.
    pub residual: Option<(Tensor, Tensor)>,
    /// Skip 1x1 convolution, `[dilation_channels, skip]`.
    pub skip_w: Tensor,
    /// Skip bias, `[skip]`.
    pub skip_b: Tensor,
}

/// The network's tensors. Fields are public so the trainer can swap in
/// trainable variables (see also [`WavenetNet::map_tensors`]).
#[derive(Debug, Clone)]
pub struct WavenetNet {
    /// Input embedding, `[classes, residual]`.
    pub embedding: Tensor,
    /// The gated residual layers, first first.
    pub layers: Vec<WavenetLayer>,
    /// Head hidden 1x1 convolution, `[skip, skip]`.
    pub head1_w: Tensor,
    /// Head hidden bias, `[skip]`.
    pub head1_b: Tensor,
    /// Head output 1x1 convolution, `[skip, classes]`.
    pub head2_w: Tensor,
    /// Head output bias, `[classes]`.
    pub head2_b: Tensor,
}

impl WavenetNet {
    /// Full-sequence forward pass. `classes` is `[batch, time]` of class
    /// indices (u32 or i64); returns logits `[batch, time, classes]`, where
    /// position `t` predicts the class at `t + 1`. Nothing before a
    /// sequence's first sample is seen: each layer's input is zero there
    /// (causal zero padding), exactly as in the sampler after a reset.
    pub fn forward(&self, classes: &Tensor) -> CResult<Tensor> {
        let (batch, time) = classes.dims2()?;
        let rows = batch * time;
        let mut h = self.embedding.index_select(&classes.flatten_all()?, 0)?;
        let mut skip: Option<Tensor> = None;
        for layer in &self.layers {
            let (two_r, two_d) = layer.filter_gate_w.dims2()?;
            let (r, d) = (two_r / 2, two_d / 2);
            let w_past = layer.filter_gate_w.narrow(0, 0, r)?;
            let w_now = layer.filter_gate_w.narrow(0, r, r)?;
            let mut z = h.matmul(&w_now)?.broadcast_add(&layer.filter_gate_b)?;
            // The past tap only exists where t >= dilation; elsewhere the
            // causal zero padding contributes nothing, so compute it on the
            // valid slice and pad the product rather than the input.
            if layer.dilation < time {
                let valid = time - layer.dilation;
                let past = h
                    .reshape((batch, time, r))?
                    .narrow(1, 0, valid)?
                    .reshape((batch * valid, r))?
                    .matmul(&w_past)?
                    .reshape((batch, valid, two_d))?
                    .pad_with_zeros(1, layer.dilation, 0)?
                    .reshape((rows, two_d))?;
                z = (z + past)?;
            }
            let filter = z.narrow(1, 0, d)?.tanh()?;
            let gate = candle_nn::ops::sigmoid(&z.narrow(1, d, d)?)?;
            let a = (filter * gate)?;
            let s = a.matmul(&layer.skip_w)?.broadcast_add(&layer.skip_b)?;
            skip = Some(match skip {
                Some(acc) => (acc + s)?,
                None => s,
            });
            if let Some((w, b)) = &layer.residual {
                h = (h + a.matmul(w)?.broadcast_add(b)?)?;
            }
        }
        let skip = skip.ok_or_else(|| candle_core::Error::Msg("a WaveNet without layers".into()))?;
        let hidden = skip
            .relu()?
            .matmul(&self.head1_w)?
            .broadcast_add(&self.head1_b)?
            .relu()?;
        let logits = hidden.matmul(&self.head2_w)?.broadcast_add(&self.head2_b)?;
        let classes_out = logits.dim(1)?;
        logits.reshape((batch, time, classes_out))
    }

    /// Every tensor with its file name, for saving; names and order as in
    /// [`WavenetConfig::tensor_shapes`].
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("embedding.weight".to_string(), self.embedding.clone())];
        for (i, l) in self.layers.iter().enumerate() {
            out.push((format!("layer{i}.filter_gate.weight"), l.filter_gate_w.clone()));
            out.push((format!("layer{i}.filter_gate.bias"), l.filter_gate_b.clone()));
            if let Some((w, b)) = &l.residual {
                out.push((format!("layer{i}.residual.weight"), w.clone()));
                out.push((format!("layer{i}.residual.bias"), b.clone()));
            }
            out.push((format!("layer{i}.skip.weight"), l.skip_w.clone()));
            out.push((format!("layer{i}.skip.bias"), l.skip_b.clone()));
        }
        out.push(("head1.weight".into(), self.head1_w.clone()));
        out.push(("head1.bias".into(), self.head1_b.clone()));
        out.push(("head2.weight".into(), self.head2_w.clone()));
        out.push(("head2.bias".into(), self.head2_b.clone()));
        out
    }

    /// A copy of the network with every tensor replaced by `f(name, tensor)`;
    /// e.g. to turn the weights into `Var`s for training, or to move them to
    /// another device.
    pub fn map_tensors(&self, mut f: impl FnMut(&str, &Tensor) -> CResult<Tensor>) -> CResult<Self> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let residual = match &l.residual {
                Some((w, b)) => Some((
                    f(&format!("layer{i}.residual.weight"), w)?,
                    f(&format!("layer{i}.residual.bias"), b)?,
                )),
                None => None,
            };
            layers.push(WavenetLayer {
                dilation: l.dilation,
                filter_gate_w: f(&format!("layer{i}.filter_gate.weight"), &l.filter_gate_w)?,
                filter_gate_b: f(&format!("layer{i}.filter_gate.bias"), &l.filter_gate_b)?,
                residual,
                skip_w: f(&format!("layer{i}.skip.weight"), &l.skip_w)?,
                skip_b: f(&format!("layer{i}.skip.bias"), &l.skip_b)?,
            });
        }
        Ok(Self {
            embedding: f("embedding.weight", &self.embedding)?,
            layers,
            head1_w: f("head1.weight", &self.head1_w)?,
            head1_b: f("head1.bias", &self.head1_b)?,
            head2_w: f("head2.weight", &self.head2_w)?,
            head2_b: f("head2.bias", &self.head2_b)?,
        })
    }

    /// Builds the network from tensors looked up by file name; `get` must
    /// return a tensor of the given shape or an error.
    fn assemble(
        config: &WavenetConfig,
        mut get: impl FnMut(&str, &[usize]) -> Result<Tensor, ModelFileError>,
    ) -> Result<Self, ModelFileError> {
        let (r, d, s, c) = (
            config.residual_channels,
            config.dilation_channels,
            config.skip_channels,
            config.classes,
        );
        let mut layers = Vec::with_capacity(config.num_layers());
        for (i, &dilation) in config.dilations.iter().enumerate() {
            let residual = if config.has_residual(i) {
                Some((
                    get(&format!("layer{i}.residual.weight"), &[d, r])?,
                    get(&format!("layer{i}.residual.bias"), &[r])?,
                ))
            } else {
                None
            };
            layers.push(WavenetLayer {
                dilation,
                filter_gate_w: get(&format!("layer{i}.filter_gate.weight"), &[2 * r, 2 * d])?,
                filter_gate_b: get(&format!("layer{i}.filter_gate.bias"), &[2 * d])?,
                residual,
                skip_w: get(&format!("layer{i}.skip.weight"), &[d, s])?,
                skip_b: get(&format!("layer{i}.skip.bias"), &[s])?,
            });
        }
        Ok(Self {
            embedding: get("embedding.weight", &[c, r])?,
            layers,
            head1_w: get("head1.weight", &[s, s])?,
            head1_b: get("head1.bias", &[s])?,
            head2_w: get("head2.weight", &[s, c])?,
            head2_b: get("head2.bias", &[c])?,
        })
    }
}

/// A WaveNet together with its metadata.
#[derive(Debug, Clone)]
pub struct WavenetModel {
    /// Name, rate, training summary (no class names: the classes are µ-law
    /// levels).
    pub meta: ModelMeta,
    /// Architecture.
    pub config: WavenetConfig,
    /// Tensors.
    pub net: WavenetNet,
}

impl WavenetModel {
    /// A freshly initialised (untrained) network, deterministic for a seed:
    /// unit-normal embedding, fan-in scaled normal weights (He scaling before
    /// ReLUs), zero biases.
    pub fn init(
        config: WavenetConfig,
        sample_rate: u32,
        seed: u64,
        device: &Device,
    ) -> Result<Self, ModelFileError> {
        config.validate().map_err(ModelFileError::InvalidConfig)?;
        if sample_rate == 0 {
            return Err(ModelFileError::InvalidConfig("sample_rate is 0".into()));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (r, d, s) = (
            config.residual_channels,
            config.dilation_channels,
            config.skip_channels,
        );
        let net = WavenetNet::assemble(&config, |name, shape| {
            let n: usize = shape.iter().product();
            let t = if name.ends_with(".bias") {
                Tensor::zeros(shape, DType::F32, device)?
            } else {
                let std = match name {
                    "embedding.weight" => 1.0,
                    "head1.weight" => (2.0 / s as f32).sqrt(),
                    "head2.weight" => (1.0 / s as f32).sqrt(),
                    n if n.ends_with("filter_gate.weight") => (1.0 / (2 * r) as f32).sqrt(),
                    _ => (1.0 / d as f32).sqrt(),
                };
                Tensor::from_vec(normal_vec(&mut rng, n, std), shape, device)?
            };
            Ok(t)
        })?;
        let meta = ModelMeta {
            format_version: FORMAT_VERSION,
            kind: ModelKind::Wavenet,
            name: UNTRAINED_NAME.into(),
            sample_rate,
            class_names: Vec::new(),
            config: serde_json::to_value(&config).map_err(|e| ModelFileError::BadMetadata(e.to_string()))?,
            training: Default::default(),
        };
        Ok(Self { meta, config, net })
    }

    /// Samples of context each prediction sees.
    pub fn receptive_field(&self) -> usize {
        self.config.receptive_field()
    }

    /// Loads and validates a WaveNet from file bytes.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self, ModelFileError> {
        Self::from_raw(&RawModel::from_bytes(bytes)?, device)
    }

    /// Loads and validates a WaveNet from disk.
    pub fn load(path: &Path, device: &Device) -> Result<Self, ModelFileError> {
        Self::from_raw(&RawModel::read(path)?, device)
    }

    /// Validates kind, config (including the stored receptive field) and
    /// every tensor's shape.
    pub fn from_raw(raw: &RawModel, device: &Device) -> Result<Self, ModelFileError> {
        let config = config_from_raw(raw)?;
        let net = WavenetNet::assemble(&config, |name, shape| raw.tensor(name, shape, device))?;
        Ok(Self {
            meta: raw.meta.clone(),
            config,
            net,
        })
    }

    /// The model as a raw container, ready to write.
    pub fn to_raw(&self) -> Result<RawModel, ModelFileError> {
        let mut raw = RawModel {
            meta: self.meta.clone(),
            tensors: HashMap::new(),
        };
        raw.meta.config =
            serde_json::to_value(&self.config).map_err(|e| ModelFileError::BadMetadata(e.to_string()))?;
        for (name, t) in self.net.named_tensors() {
            raw.insert(&name, &t)?;
        }
        Ok(raw)
    }

    /// Writes the model file.
    pub fn save(&self, path: &Path) -> Result<(), ModelFileError> {
        self.to_raw()?.write(path)
    }
}

/// Checks that a raw model is a WaveNet with a valid config, and returns
/// the config. Tensor shapes are checked when the tensors are taken.
pub(crate) fn config_from_raw(raw: &RawModel) -> Result<WavenetConfig, ModelFileError> {
    raw.expect_kind(ModelKind::Wavenet)?;
    // Deserialising runs validate() and the receptive-field check.
    serde_json::from_value(raw.meta.config.clone()).map_err(|e| ModelFileError::InvalidConfig(e.to_string()))
}

/// The data of a raw tensor of exactly the given shape, without candle.
pub(crate) fn raw_data<'a>(
    raw: &'a RawModel,
    name: &str,
    shape: &[usize],
) -> Result<&'a [f32], ModelFileError> {
    let (found, data) = raw
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
    Ok(data)
}
