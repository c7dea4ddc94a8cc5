//! The raw-audio perception network of Audio DeepDream (seed 000): a strided
//! first layer of ~50 ms filters with a ~10 ms hop, batch norm after every
//! convolution, overlapping max pooling, global average pooling and a
//! classification head. All sizes live in [`PerceptionConfig`], which is
//! stored in the model file.

use candle_core::{Device, Result as CResult, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::layers::{conv_valid, max_pool_3_2, strided_frontend, BatchNorm};
use crate::model_file::{parse_config, Layout, Model, ModelFileError, ModelKind, ModelMeta, Network, Role};
use crate::rng::normal_vec;

/// Architecture of a perception network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerceptionConfig {
    /// Samples per analysis window at the model rate.
    pub window: usize,
    /// Filters in the strided first layer.
    pub frontend_filters: usize,
    /// First-layer filter length in samples (a whole number of strides).
    pub frontend_kernel: usize,
    /// First-layer hop in samples.
    pub frontend_stride: usize,
    /// Output channels of each later convolution layer.
    pub channels: Vec<usize>,
    /// Kernel size of the later layers.
    pub kernel: usize,
    /// Whether overlapping max pooling follows each layer (first layer first).
    pub pool: Vec<bool>,
    /// Batch-norm variance floor.
    pub bn_eps: f64,
}

impl Default for PerceptionConfig {
    /// The paper's shape at 16 kHz: 50 ms filters every 10 ms, 192 of them,
    /// then five more layers, one-second windows.
    fn default() -> Self {
        Self {
            window: 16_000,
            frontend_filters: 192,
            frontend_kernel: 800,
            frontend_stride: 160,
            channels: vec![128, 128, 128, 128, 128],
            kernel: 3,
            pool: vec![true, true, true, false, false, false],
            bn_eps: 1e-5,
        }
    }
}

impl PerceptionConfig {
    /// Number of convolution layers, the first one included.
    pub fn num_layers(&self) -> usize {
        1 + self.channels.len()
    }

    /// Output channels of layer `i` (0 = the strided first layer).
    pub fn layer_channels(&self, i: usize) -> usize {
        if i == 0 {
            self.frontend_filters
        } else {
            self.channels[i - 1]
        }
    }

    /// Frames each layer outputs (before its pooling) for an input of
    /// `samples` samples, or why that input is too short.
    pub fn frames_per_layer(&self, samples: usize) -> std::result::Result<Vec<usize>, String> {
        let blocks = samples / self.frontend_stride.max(1);
        let m = self.frontend_kernel / self.frontend_stride.max(1);
        if blocks < m {
            return Err(format!(
                "{samples} samples are shorter than one {}-sample frame",
                self.frontend_kernel
            ));
        }
        let mut frames = blocks - m + 1;
        let mut out = Vec::with_capacity(self.num_layers());
        for layer in 0..self.num_layers() {
            if layer > 0 {
                if frames < self.kernel {
                    return Err(format!(
                        "layer {} gets {frames} frames, fewer than its kernel",
                        layer + 1
                    ));
                }
                frames = frames - self.kernel + 1;
            }
            out.push(frames);
            if self.pool[layer] {
                if frames < 4 {
                    return Err(format!(
                        "layer {} has {frames} frames, too few to pool",
                        layer + 1
                    ));
                }
                frames = (frames - 2) / 2;
            }
        }
        Ok(out)
    }

    /// Samples of input that one frame of the last layer's output hears
    /// (the global pooling after it then spans the whole window).
    pub fn receptive_field(&self) -> usize {
        let mut field = self.frontend_kernel;
        let mut jump = self.frontend_stride;
        let last = self.num_layers() - 1;
        for layer in 0..=last {
            if layer > 0 {
                field += self.kernel.saturating_sub(1) * jump;
            }
            if layer < last && self.pool.get(layer).copied().unwrap_or(false) {
                // Max pooling over 3 frames, hop 2.
                field += 2 * jump;
                jump *= 2;
            }
        }
        field
    }

    /// Checks the config for consistency.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.frontend_stride == 0 || !self.frontend_kernel.is_multiple_of(self.frontend_stride) {
            return Err(format!(
                "frontend_kernel {} must be a positive multiple of frontend_stride {}",
                self.frontend_kernel, self.frontend_stride
            ));
        }
        if self.frontend_filters == 0 || self.channels.contains(&0) || self.kernel == 0 {
            return Err("layer sizes must be positive".into());
        }
        if self.pool.len() != self.num_layers() {
            return Err(format!(
                "pool has {} entries for {} layers",
                self.pool.len(),
                self.num_layers()
            ));
        }
        if !(self.bn_eps > 0.0 && self.bn_eps.is_finite()) {
            return Err("bn_eps must be positive".into());
        }
        self.frames_per_layer(self.window).map(|_| ())
    }

    /// The shape of every tensor of a network with `classes` classes.
    pub fn shapes(&self, classes: usize) -> PerceptionNet<Vec<usize>> {
        let layers = self.num_layers();
        let convs = (0..layers)
            .map(|i| {
                let (inputs, kernel) = if i == 0 {
                    (1, self.frontend_kernel)
                } else {
                    (self.layer_channels(i - 1), self.kernel)
                };
                vec![self.layer_channels(i), inputs, kernel]
            })
            .collect();
        let norms = (0..layers)
            .map(|i| {
                let c = vec![self.layer_channels(i)];
                BatchNorm {
                    gamma: c.clone(),
                    beta: c.clone(),
                    running_mean: c.clone(),
                    running_var: c,
                    eps: self.bn_eps,
                }
            })
            .collect();
        let last = self.layer_channels(layers - 1);
        PerceptionNet {
            stride: self.frontend_stride,
            convs,
            norms,
            pool: self.pool.clone(),
            head_w: vec![classes, last],
            head_b: vec![classes],
        }
    }
}

/// What one forward pass exposes to dreaming and training.
#[derive(Debug, Clone)]
pub struct Activations {
    /// Each layer's output after batch norm and ReLU, before pooling,
    /// `[batch, frames, channels]`; `layers[0]` is the first layer.
    pub layers: Vec<Tensor>,
    /// Class logits, `[batch, classes]`.
    pub logits: Tensor,
}

/// The network's tensors (`T` = [`Tensor`]), or whatever stands in their
/// places (see [`Layout`]). Fields are public so the trainer can swap in
/// trainable variables.
#[derive(Debug, Clone)]
pub struct PerceptionNet<T = Tensor> {
    /// Hop of the first layer in samples.
    pub stride: usize,
    /// Convolution kernels, `[out, in, kernel]`; `convs[0]` is the first layer.
    pub convs: Vec<T>,
    /// Batch norm after each convolution.
    pub norms: Vec<BatchNorm<T>>,
    /// Pooling flags per layer.
    pub pool: Vec<bool>,
    /// Head weight `[classes, channels]`.
    pub head_w: T,
    /// Head bias `[classes]`.
    pub head_b: T,
}

impl<T> Layout for PerceptionNet<T> {
    type Elem = T;
    type With<U> = PerceptionNet<U>;

    /// Layer by layer, the convolution then its batch norm; the head last.
    fn try_map<'a, U, E>(
        &'a self,
        mut f: impl FnMut(&str, Role, &'a T) -> Result<U, E>,
    ) -> Result<PerceptionNet<U>, E> {
        let mut convs = Vec::with_capacity(self.convs.len());
        let mut norms = Vec::with_capacity(self.norms.len());
        for (i, (conv, bn)) in self.convs.iter().zip(&self.norms).enumerate() {
            convs.push(f(&format!("conv{i}.weight"), Role::Weight, conv)?);
            let name = |part: &str| format!("bn{i}.{part}");
            norms.push(BatchNorm {
                gamma: f(&name("weight"), Role::NormScale, &bn.gamma)?,
                beta: f(&name("bias"), Role::NormShift, &bn.beta)?,
                running_mean: f(&name("running_mean"), Role::RunningMean, &bn.running_mean)?,
                running_var: f(&name("running_var"), Role::RunningVar, &bn.running_var)?,
                eps: bn.eps,
            });
        }
        Ok(PerceptionNet {
            stride: self.stride,
            convs,
            norms,
            pool: self.pool.clone(),
            head_w: f("head.weight", Role::Weight, &self.head_w)?,
            head_b: f("head.bias", Role::Bias, &self.head_b)?,
        })
    }
}

impl Network for PerceptionNet {
    const KIND: ModelKind = ModelKind::Perception;
    type Config = PerceptionConfig;
    type Shapes = PerceptionNet<Vec<usize>>;

    fn config(meta: &ModelMeta) -> Result<PerceptionConfig, ModelFileError> {
        let config: PerceptionConfig = parse_config(meta)?;
        config.validate().map_err(ModelFileError::InvalidConfig)?;
        if meta.class_names.is_empty() {
            return Err(ModelFileError::InvalidConfig("the model lists no classes".into()));
        }
        Ok(config)
    }

    fn shapes(config: &PerceptionConfig, meta: &ModelMeta) -> PerceptionNet<Vec<usize>> {
        config.shapes(meta.class_names.len())
    }
}

impl PerceptionNet {
    /// Inference forward pass on `[batch, samples]` of normalised audio.
    pub fn forward(&self, x: &Tensor) -> CResult<Activations> {
        self.run(x, |bn, h| bn.forward_eval(h))
    }

    /// Training forward pass: batch norm uses batch statistics, which are
    /// handed to `stats(layer, mean, var)` for the running averages.
    pub fn forward_train(
        &self,
        x: &Tensor,
        stats: &mut dyn FnMut(usize, Tensor, Tensor),
    ) -> CResult<Activations> {
        let mut batch_stats = Vec::new();
        let act = self.run(x, |bn, h| {
            let (y, m, v) = bn.forward_train(h)?;
            batch_stats.push((m, v));
            Ok(y)
        })?;
        for (i, (m, v)) in batch_stats.into_iter().enumerate() {
            stats(i, m, v);
        }
        Ok(act)
    }

    fn run(
        &self,
        x: &Tensor,
        mut norm: impl FnMut(&BatchNorm, &Tensor) -> CResult<Tensor>,
    ) -> CResult<Activations> {
        let mut layers = Vec::with_capacity(self.convs.len());
        let mut h = strided_frontend(x, &self.convs[0], self.stride)?;
        for (i, conv) in self.convs.iter().enumerate() {
            if i > 0 {
                h = conv_valid(&h, conv)?;
            }
            let a = norm(&self.norms[i], &h)?.relu()?;
            h = if self.pool[i] {
                max_pool_3_2(&a)?
            } else {
                a.clone()
            };
            layers.push(a);
        }
        let pooled = h.mean(1)?;
        let logits = pooled.matmul(&self.head_w.t()?)?.broadcast_add(&self.head_b)?;
        Ok(Activations { layers, logits })
    }
}

/// A perception network together with its metadata.
pub type PerceptionModel = Model<PerceptionNet>;

impl PerceptionModel {
    /// A freshly initialised (untrained) network: He-normal convolutions,
    /// identity batch norm. Deterministic for a seed.
    pub fn init(
        config: PerceptionConfig,
        sample_rate: u32,
        class_names: Vec<String>,
        seed: u64,
        device: &Device,
    ) -> std::result::Result<Self, ModelFileError> {
        config.validate().map_err(ModelFileError::InvalidConfig)?;
        if class_names.is_empty() {
            return Err(ModelFileError::InvalidConfig(
                "a perception model needs at least one class".into(),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let net = config
            .shapes(class_names.len())
            .try_map(|name, role, shape| -> CResult<Tensor> {
                let ones = || Tensor::ones(shape.as_slice(), candle_core::DType::F32, device);
                let zeros = || Tensor::zeros(shape.as_slice(), candle_core::DType::F32, device);
                match role {
                    Role::Weight => {
                        // He scaling for the convolutions, whose outputs go
                        // through ReLU; the head feeds the softmax.
                        let gain = if name == "head.weight" { 1.0 } else { 2.0 };
                        let fan_in: usize = shape[1..].iter().product();
                        let n = shape.iter().product();
                        let std = (gain / fan_in as f32).sqrt();
                        Tensor::from_vec(normal_vec(&mut rng, n, std), shape.as_slice(), device)
                    }
                    // Batch norm starts as the identity.
                    Role::NormScale | Role::RunningVar => ones(),
                    _ => zeros(),
                }
            })?;
        Model::new(
            config,
            net,
            "untrained perception network",
            sample_rate,
            class_names,
        )
    }

    /// Sets every batch norm's running statistics to those of `x`
    /// (`[batch, samples]`, normalised), layer by layer, so an untrained
    /// network has well-scaled activations.
    pub fn calibrate_batch_norm(&mut self, x: &Tensor) -> CResult<()> {
        let mut stats = Vec::new();
        self.net.forward_train(x, &mut |_, m, v| stats.push((m, v)))?;
        for (bn, (m, v)) in self.net.norms.iter_mut().zip(stats) {
            bn.running_mean = m;
            bn.running_var = v;
        }
        Ok(())
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.meta.class_names.len()
    }
}
