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
//!
//! One forward pass ([`WavenetNet::forward`]) serves training and the
//! tests: with [`Padding::Valid`] it computes only the outputs that see a
//! full receptive field of the input (what training scores), with
//! [`Padding::Causal`] every output, zero padding before the start.

use candle_core::{DType, Device, Result as CResult, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model_file::{parse_config, Layout, Model, ModelFileError, ModelKind, ModelMeta, Network, Role};
use crate::mulaw::MAX_CLASSES;
use crate::predictor::PredictorConfig;
use crate::rng::normal_vec;
use crate::tone_prior::TonePriorConfig;

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
    /// Prediction inputs ([`crate::prediction_inputs`], issue 17): the
    /// backward-adaptive predictor's classes for the next sample, embedded
    /// and added to the input sample's embedding. `None` (every file
    /// before the option, which stores nothing for it): the plain WaveNet.
    pub predictor: Option<PredictorConfig>,
    /// Whether the network models the pre-emphasised signal
    /// ([`crate::signal_coding`]).
    pub pre_emphasis: bool,
    /// The pre-emphasis coefficient in 128ths (the filter `1 - k/128
    /// z^-1`), below 128. LPCNet's 0.85 ([`crate::emphasis::LPCNET_128THS`],
    /// every file before the choice, which stores nothing for it) lifts
    /// sampled noise by 16.5 dB toward 0 Hz against the highs; 64 (0.5) by
    /// 6 dB. Unused without pre-emphasis.
    pub emphasis_128ths: u8,
    /// Whether the output classes are the excitation's (the signal minus
    /// the both-stage prediction), which needs a predictor
    /// ([`crate::signal_coding`]).
    pub residual_target: bool,
    /// Whether generation samples the tone-aware way
    /// ([`crate::tone_sampling`]: sharper on a sustained tone, with a
    /// floor; as at onsets and in silence). Changes nothing in training.
    pub tone_aware: bool,
    /// The predictor as a prior on the next sample
    /// ([`crate::tone_prior`]), in scoring and generation alike; `None`:
    /// the network's distribution alone.
    pub tone_prior: Option<TonePriorConfig>,
    /// Whether generation hears its own output through a DC blocker
    /// ([`crate::signal_coding`]): each drawn sample is high-passed (about
    /// 13 Hz at 16 kHz) before the network and the predictor hear it, so
    /// no offset can build up in the loop. Recorded audio is heard as it
    /// is: training and scoring are unchanged.
    pub dc_block: bool,
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
            predictor: None,
            pre_emphasis: false,
            emphasis_128ths: crate::emphasis::LPCNET_128THS,
            residual_target: false,
            tone_aware: false,
            tone_prior: None,
            dc_block: false,
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

    /// The model options of issue 17 it has, in words ("none" for the
    /// plain WaveNet), for the editor and the command line.
    pub fn options_text(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(p) = &self.predictor {
            let stages = if p.long_term {
                "short-term and pitch"
            } else {
                "short-term"
            };
            parts.push(if p.expansion < 1.0 {
                format!(
                    "prediction inputs ({stages}, bandwidth expansion {})",
                    p.expansion
                )
            } else {
                format!("prediction inputs ({stages})")
            });
        }
        if self.pre_emphasis {
            parts.push(if self.emphasis_128ths == crate::emphasis::LPCNET_128THS {
                "pre-emphasis".into()
            } else {
                format!(
                    "pre-emphasis {}",
                    crate::emphasis::coefficient(self.emphasis_128ths)
                )
            });
        }
        if self.residual_target {
            parts.push("residual target".into());
        }
        if self.tone_aware {
            parts.push("tone-aware sampling".into());
        }
        if let Some(t) = &self.tone_prior {
            parts.push(format!(
                "tone prior (weight {}, trust {}, mix {})",
                t.weight, t.max_trust, t.mix
            ));
        }
        if self.dc_block {
            parts.push("DC-blocked feedback".into());
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }

    /// Number of prediction inputs (0 without a predictor).
    pub fn prediction_inputs(&self) -> usize {
        self.predictor
            .as_ref()
            .map_or(0, crate::prediction_inputs::input_count)
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
        if let Some(p) = &self.predictor {
            p.validate().map_err(|e| e.to_string())?;
        }
        if self.residual_target && self.predictor.is_none() {
            return Err("a residual target needs a predictor".into());
        }
        if !(1..128).contains(&self.emphasis_128ths) {
            return Err(format!(
                "emphasis_128ths is {}, it must be in 1..=127 (the coefficient in 128ths)",
                self.emphasis_128ths
            ));
        }
        if let Some(t) = &self.tone_prior {
            t.validate()?;
            if self.pre_emphasis || self.residual_target {
                return Err(
                    "the tone prior works on plain µ-law classes, without pre-emphasis or a residual target"
                        .into(),
                );
            }
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

    /// The shape of every tensor the architecture has.
    pub fn shapes(&self) -> WavenetNet<Vec<usize>> {
        let (r, d, s, c) = (
            self.residual_channels,
            self.dilation_channels,
            self.skip_channels,
            self.classes,
        );
        let layers = self
            .dilations
            .iter()
            .enumerate()
            .map(|(i, &dilation)| WavenetLayer {
                dilation,
                filter_gate_w: vec![2 * r, 2 * d],
                filter_gate_b: vec![2 * d],
                residual: self.has_residual(i).then(|| (vec![d, r], vec![r])),
                skip_w: vec![d, s],
                skip_b: vec![s],
            })
            .collect();
        WavenetNet {
            embedding: vec![c, r],
            prediction_embeddings: vec![vec![c, r]; self.prediction_inputs()],
            layers,
            head1_w: vec![s, s],
            head1_b: vec![s],
            head2_w: vec![s, c],
            head2_b: vec![c],
        }
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
    // Absent in files without it, and not written then: those files keep
    // the config they always had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    predictor: Option<PredictorConfig>,
    #[serde(default, skip_serializing_if = "is_false")]
    pre_emphasis: bool,
    #[serde(default = "lpcnet_emphasis", skip_serializing_if = "is_lpcnet_emphasis")]
    emphasis_128ths: u8,
    #[serde(default, skip_serializing_if = "is_false")]
    residual_target: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    tone_aware: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tone_prior: Option<TonePriorConfig>,
    #[serde(default, skip_serializing_if = "is_false")]
    dc_block: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

fn lpcnet_emphasis() -> u8 {
    crate::emphasis::LPCNET_128THS
}

fn is_lpcnet_emphasis(k: &u8) -> bool {
    *k == crate::emphasis::LPCNET_128THS
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
            predictor: c.predictor,
            pre_emphasis: c.pre_emphasis,
            emphasis_128ths: c.emphasis_128ths,
            residual_target: c.residual_target,
            tone_aware: c.tone_aware,
            tone_prior: c.tone_prior,
            dc_block: c.dc_block,
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
            predictor: s.predictor,
            pre_emphasis: s.pre_emphasis,
            emphasis_128ths: s.emphasis_128ths,
            residual_target: s.residual_target,
            tone_aware: s.tone_aware,
            tone_prior: s.tone_prior,
            dc_block: s.dc_block,
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

/// One gated residual layer's tensors (all `[in, out]`), or whatever stands
/// in their places (see [`Layout`]).
#[derive(Debug, Clone)]
pub struct WavenetLayer<T = Tensor> {
    /// How many samples back the second tap of the convolution looks.
    pub dilation: usize,
    /// Dilated convolution, `[2 * residual, 2 * dilation_channels]`: rows
    /// `0..residual` multiply the input `dilation` steps back, the other rows
    /// the current input; columns `0..dilation_channels` are the filter
    /// (tanh), the rest the gate (sigmoid).
    pub filter_gate_w: T,
    /// Bias of the dilated convolution, `[2 * dilation_channels]`.
    pub filter_gate_b: T,
    /// Residual 1x1 convolution `[dilation_channels, residual]` and its bias
    /// `[residual]`; `None` in the last layer.
    pub residual: Option<(T, T)>,
    /// Skip 1x1 convolution, `[dilation_channels, skip]`.
    pub skip_w: T,
    /// Skip bias, `[skip]`.
    pub skip_b: T,
}

/// The network's tensors (`T` = [`Tensor`]), or whatever stands in their
/// places (see [`Layout`]). Fields are public so the trainer can swap in
/// trainable variables.
#[derive(Debug, Clone)]
pub struct WavenetNet<T = Tensor> {
    /// Input embedding, `[classes, residual]`.
    pub embedding: T,
    /// One embedding per prediction input, `[classes, residual]` each:
    /// short-term first, then both stages (see
    /// [`crate::prediction_inputs`]); none in the plain WaveNet.
    pub prediction_embeddings: Vec<T>,
    /// The gated residual layers, first first.
    pub layers: Vec<WavenetLayer<T>>,
    /// Head hidden 1x1 convolution, `[skip, skip]`.
    pub head1_w: T,
    /// Head hidden bias, `[skip]`.
    pub head1_b: T,
    /// Head output 1x1 convolution, `[skip, classes]`.
    pub head2_w: T,
    /// Head output bias, `[classes]`.
    pub head2_b: T,
}

/// The file names of the prediction inputs' embeddings, in order.
const PREDICTION_EMBEDDING_NAMES: [&str; crate::prediction_inputs::MAX_INPUTS] = [
    "prediction_embedding.short_term.weight",
    "prediction_embedding.both_stages.weight",
];

/// What the forward pass assumes about the time before its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Nothing came before: each layer's input is zero there (causal zero
    /// padding, as in the sampler after a reset). One output per input
    /// position.
    Causal,
    /// The input's first `receptive_field - 1` samples are context only:
    /// outputs only where a full receptive field of input is seen, `time -
    /// receptive_field + 1` of them, each layer skipping the outputs that
    /// would need padding (nothing later depends on them).
    Valid,
}

impl<T> Layout for WavenetNet<T> {
    type Elem = T;
    type With<U> = WavenetNet<U>;

    /// Layer by layer (residual, filter-gate and skip convolutions), then
    /// the embedding and the head: the order in which initialisation draws
    /// its random weights.
    fn try_map<'a, U, E>(
        &'a self,
        mut f: impl FnMut(&str, Role, &'a T) -> Result<U, E>,
    ) -> Result<WavenetNet<U>, E> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let name = |part: &str| format!("layer{i}.{part}");
            let residual = match &l.residual {
                Some((w, b)) => Some((
                    f(&name("residual.weight"), Role::Weight, w)?,
                    f(&name("residual.bias"), Role::Bias, b)?,
                )),
                None => None,
            };
            layers.push(WavenetLayer {
                dilation: l.dilation,
                filter_gate_w: f(&name("filter_gate.weight"), Role::Weight, &l.filter_gate_w)?,
                filter_gate_b: f(&name("filter_gate.bias"), Role::Bias, &l.filter_gate_b)?,
                residual,
                skip_w: f(&name("skip.weight"), Role::Weight, &l.skip_w)?,
                skip_b: f(&name("skip.bias"), Role::Bias, &l.skip_b)?,
            });
        }
        let embedding = f("embedding.weight", Role::Embedding, &self.embedding)?;
        let prediction_embeddings = self
            .prediction_embeddings
            .iter()
            .zip(PREDICTION_EMBEDDING_NAMES)
            .map(|(e, name)| f(name, Role::Embedding, e))
            .collect::<Result<_, E>>()?;
        Ok(WavenetNet {
            embedding,
            prediction_embeddings,
            layers,
            head1_w: f("head1.weight", Role::Weight, &self.head1_w)?,
            head1_b: f("head1.bias", Role::Bias, &self.head1_b)?,
            head2_w: f("head2.weight", Role::Weight, &self.head2_w)?,
            head2_b: f("head2.bias", Role::Bias, &self.head2_b)?,
        })
    }
}

impl Network for WavenetNet {
    const KIND: ModelKind = ModelKind::Wavenet;
    type Config = WavenetConfig;
    type Shapes = WavenetNet<Vec<usize>>;

    /// Deserialising runs [`WavenetConfig::validate`] and checks the stored
    /// receptive field.
    fn config(meta: &ModelMeta) -> Result<WavenetConfig, ModelFileError> {
        parse_config(meta)
    }

    fn shapes(config: &WavenetConfig, _meta: &ModelMeta) -> WavenetNet<Vec<usize>> {
        config.shapes()
    }
}

impl WavenetNet {
    /// Samples of input each output depends on: the sum of the dilations
    /// plus one.
    pub fn receptive_field(&self) -> usize {
        1 + self.layers.iter().map(|l| l.dilation).sum::<usize>()
    }

    /// The forward pass. `classes` is `[batch, time]` of class indices (u32
    /// or i64); returns logits `[batch, outputs, classes]`, where each output
    /// predicts the class after its position: all `time` positions with
    /// [`Padding::Causal`], the last `time - receptive_field + 1` with
    /// [`Padding::Valid`] (an error when the input is shorter).
    ///
    /// Arranged for training: the two taps of a dilated convolution are one
    /// product with the stacked `[past; current]` input, and the skip
    /// outputs are computed only where they are output, for all layers in
    /// one product with their weights stacked, as the sampler does.
    pub fn forward(&self, classes: &Tensor, padding: Padding) -> CResult<Tensor> {
        self.forward_with_predictions(classes, &[], padding)
    }

    /// [`forward`](Self::forward) for a network with prediction inputs:
    /// `predictions` holds one `[batch, time]` tensor of classes per input,
    /// each position's the prediction of the sample after it (what
    /// [`crate::prediction_inputs::PredictionInputs::for_sequence`] gives).
    /// An error when their number is not the network's.
    pub fn forward_with_predictions(
        &self,
        classes: &Tensor,
        predictions: &[Tensor],
        padding: Padding,
    ) -> CResult<Tensor> {
        let (batch, time) = classes.dims2()?;
        if predictions.len() != self.prediction_embeddings.len() {
            candle_core::bail!(
                "the network has {} prediction inputs, {} were given",
                self.prediction_embeddings.len(),
                predictions.len()
            );
        }
        let field = self.receptive_field();
        let out_len = match padding {
            Padding::Causal => time,
            Padding::Valid if time >= field => time - field + 1,
            Padding::Valid => {
                candle_core::bail!("{time} input samples are fewer than the receptive field ({field})")
            }
        };
        let r = self.embedding.dim(1)?;
        let mut h = self.embedding.index_select(&classes.flatten_all()?, 0)?;
        for (e, p) in self.prediction_embeddings.iter().zip(predictions) {
            h = (h + e.index_select(&p.flatten_all()?, 0)?)?;
        }
        let mut h = h.reshape((batch, time, r))?;
        let mut acts = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            // Causal: the input `dilation` steps back is zero before the
            // start. Valid: the first `dilation` outputs would need it, and
            // are dropped.
            let (past, now) = match padding {
                Padding::Causal => (
                    h.pad_with_zeros(1, layer.dilation, 0)?.narrow(1, 0, time)?,
                    h.clone(),
                ),
                Padding::Valid => {
                    let t = h.dim(1)? - layer.dilation;
                    (h.narrow(1, 0, t)?, h.narrow(1, layer.dilation, t)?)
                }
            };
            let t = now.dim(1)?;
            let z = Tensor::cat(&[&past, &now], 2)?
                .reshape((batch * t, 2 * r))?
                .matmul(&layer.filter_gate_w)?
                .broadcast_add(&layer.filter_gate_b)?;
            let d = z.dim(1)? / 2;
            let a = (z.narrow(1, 0, d)?.tanh()? * candle_nn::ops::sigmoid(&z.narrow(1, d, d)?)?)?;
            let a3 = a.reshape((batch, t, d))?;
            acts.push(a3.narrow(1, t - out_len, out_len)?);
            if let Some((w, b)) = &layer.residual {
                h = (now + a.matmul(w)?.broadcast_add(b)?.reshape((batch, t, r))?)?;
            }
        }
        if acts.is_empty() {
            candle_core::bail!("a WaveNet without layers");
        }
        let skip_w = Tensor::cat(&self.layers.iter().map(|l| &l.skip_w).collect::<Vec<_>>(), 0)?;
        let skip_b = Tensor::stack(&self.layers.iter().map(|l| &l.skip_b).collect::<Vec<_>>(), 0)?.sum(0)?;
        let stacked = Tensor::cat(&acts, 2)?;
        let width = stacked.dim(2)?;
        let skip = stacked
            .reshape((batch * out_len, width))?
            .matmul(&skip_w)?
            .broadcast_add(&skip_b)?;
        let hidden = skip
            .relu()?
            .matmul(&self.head1_w)?
            .broadcast_add(&self.head1_b)?
            .relu()?;
        let logits = hidden.matmul(&self.head2_w)?.broadcast_add(&self.head2_b)?;
        let c = logits.dim(1)?;
        logits.reshape((batch, out_len, c))
    }
}

/// A WaveNet together with its metadata (no class names: the classes are
/// µ-law levels).
pub type WavenetModel = Model<WavenetNet>;

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
        let net = config.shapes().try_map(|name, role, shape| -> CResult<Tensor> {
            // Weights are `[in, out]`: the fan-in is the first dimension.
            let std = match role {
                Role::Embedding => 1.0,
                Role::Weight if name == "head1.weight" => (2.0 / shape[0] as f32).sqrt(),
                Role::Weight => (1.0 / shape[0] as f32).sqrt(),
                _ => return Tensor::zeros(shape.as_slice(), DType::F32, device),
            };
            let n = shape.iter().product();
            Tensor::from_vec(normal_vec(&mut rng, n, std), shape.as_slice(), device)
        })?;
        Model::new(config, net, UNTRAINED_NAME, sample_rate, Vec::new())
    }

    /// A network for `config` that starts from a trained model's weights
    /// (for comparing model options from one start, issue 17): every tensor
    /// of `from` is copied, and the prediction embeddings it lacks start at
    /// zero, so until training moves them the new network computes exactly
    /// what `from` does. The layers, channels and classes must be the
    /// same; the options (predictor, coding, sampling) may differ.
    pub fn warm_start(from: &WavenetModel, config: WavenetConfig) -> Result<Self, ModelFileError> {
        config.validate().map_err(ModelFileError::InvalidConfig)?;
        let c = &from.config;
        if (
            &c.dilations,
            c.residual_channels,
            c.dilation_channels,
            c.skip_channels,
            c.classes,
        ) != (
            &config.dilations,
            config.residual_channels,
            config.dilation_channels,
            config.skip_channels,
            config.classes,
        ) {
            return Err(ModelFileError::InvalidConfig(format!(
                "a warm start needs the trained model's layers: dilations {:?}, {}/{}/{} channels, {} classes",
                c.dilations, c.residual_channels, c.dilation_channels, c.skip_channels, c.classes
            )));
        }
        let trained: std::collections::HashMap<String, &Tensor> = from
            .net
            .named()
            .into_iter()
            .map(|(name, _, t)| (name, t))
            .collect();
        let device = from.net.embedding.device();
        // The layers are the trained model's, so every tensor it has has
        // this shape, and all it can lack are prediction embeddings.
        let net = config
            .shapes()
            .try_map(|name, _, shape| match trained.get(name) {
                Some(t) => Ok((*t).clone()),
                None => Tensor::zeros(shape.as_slice(), DType::F32, device),
            })?;
        Model::new(config, net, &from.meta.name, from.meta.sample_rate, Vec::new())
    }

    /// Samples of context each prediction sees.
    pub fn receptive_field(&self) -> usize {
        self.config.receptive_field()
    }
}
