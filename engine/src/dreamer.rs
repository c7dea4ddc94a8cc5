//! Audio DeepDream (seed 000): gradient ascent on a window of raw audio
//! through a perception network, toward (or away from) a target inside it,
//! with the paper's three tricks: max-normalised gradient steps, an L1
//! sparsity cost and a continuity cost on the first layer's output.

use candle_core::{Device, Tensor, Var};

use crate::perception::{Activations, PerceptionModel};

/// Errors from dreaming.
#[derive(Debug, thiserror::Error)]
pub enum DreamError {
    /// A target that does not exist in the loaded model.
    #[error("bad dream target: {0}")]
    BadTarget(String),
    /// A window of the wrong length was given.
    #[error("the window has {found} samples, the model needs {expected}")]
    WindowLength {
        /// Model window length.
        expected: usize,
        /// Given length.
        found: usize,
    },
    /// A candle error (device, shapes).
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// What the other side of a class contrast is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Against {
    /// One other class.
    Class(usize),
    /// The mean of all other classes.
    Others,
}

/// What dreaming pushes on. Layers and classes are 0-based here; the text
/// form (see [`DreamTarget::parse`]) numbers layers from 1 and names classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DreamTarget {
    /// Mean activation of a layer.
    LayerMean {
        /// Layer index (0 = first layer).
        layer: usize,
    },
    /// Mean activation of one channel of a layer.
    Channel {
        /// Layer index.
        layer: usize,
        /// Channel index.
        channel: usize,
    },
    /// One class logit.
    Class {
        /// Class index.
        class: usize,
    },
    /// One class logit minus another, or minus the mean of the others.
    Contrast {
        /// The class to push up.
        class: usize,
        /// What to push it above.
        against: Against,
    },
}

impl Default for DreamTarget {
    fn default() -> Self {
        DreamTarget::LayerMean { layer: 2 }
    }
}

impl DreamTarget {
    /// Parses `layer:L`, `channel:L:C`, `class:NAME`, `contrast:A:B` or
    /// `contrast:A` (against all others). Layers count from 1 as in the
    /// paper; classes are given by name.
    pub fn parse(text: &str, model: &PerceptionModel) -> Result<Self, DreamError> {
        let parts: Vec<&str> = text.split(':').collect();
        let layer = |s: &str| -> Result<usize, DreamError> {
            let n: usize = s
                .parse()
                .map_err(|_| DreamError::BadTarget(format!("`{s}` is not a layer number")))?;
            if n == 0 || n > model.config.num_layers() {
                return Err(DreamError::BadTarget(format!(
                    "layer {n} does not exist; the model has layers 1 to {}",
                    model.config.num_layers()
                )));
            }
            Ok(n - 1)
        };
        let class = |s: &str| -> Result<usize, DreamError> {
            model.meta.class_names.iter().position(|c| c == s).ok_or_else(|| {
                DreamError::BadTarget(format!(
                    "no class `{s}`; the model's classes are: {}",
                    model.meta.class_names.join(", ")
                ))
            })
        };
        let target = match parts.as_slice() {
            ["layer", l] => DreamTarget::LayerMean { layer: layer(l)? },
            ["channel", l, c] => {
                let layer = layer(l)?;
                let channel: usize = c
                    .parse()
                    .map_err(|_| DreamError::BadTarget(format!("`{c}` is not a channel number")))?;
                DreamTarget::Channel { layer, channel }
            }
            ["class", c] => DreamTarget::Class { class: class(c)? },
            ["contrast", a] => DreamTarget::Contrast {
                class: class(a)?,
                against: Against::Others,
            },
            ["contrast", a, b] => DreamTarget::Contrast {
                class: class(a)?,
                against: Against::Class(class(b)?),
            },
            _ => {
                return Err(DreamError::BadTarget(format!(
                    "`{text}`: use layer:L, channel:L:C, class:NAME, contrast:A or contrast:A:B"
                )))
            }
        };
        target.check(model)?;
        Ok(target)
    }

    /// The targets a model offers in a menu (the plugin's target parameter):
    /// every layer's mean, every class, and every class against the others.
    pub fn menu(model: &PerceptionModel) -> Vec<DreamTarget> {
        let classes = model.num_classes();
        let layers = (0..model.config.num_layers()).map(|layer| DreamTarget::LayerMean { layer });
        let class = (0..classes).map(|class| DreamTarget::Class { class });
        let contrast = (0..classes)
            .filter(|_| classes > 1)
            .map(|class| DreamTarget::Contrast {
                class,
                against: Against::Others,
            });
        layers.chain(class).chain(contrast).collect()
    }

    /// Checks that the target exists in `model`.
    pub fn check(&self, model: &PerceptionModel) -> Result<(), DreamError> {
        let layers = model.config.num_layers();
        let classes = model.num_classes();
        let bad = |m: String| Err(DreamError::BadTarget(m));
        match *self {
            DreamTarget::LayerMean { layer } if layer >= layers => {
                bad(format!("layer {} of {layers}", layer + 1))
            }
            DreamTarget::Channel { layer, .. } if layer >= layers => {
                bad(format!("layer {} of {layers}", layer + 1))
            }
            DreamTarget::Channel { layer, channel } if channel >= model.config.layer_channels(layer) => {
                bad(format!(
                    "channel {channel}: layer {} has channels 0 to {}",
                    layer + 1,
                    model.config.layer_channels(layer) - 1
                ))
            }
            DreamTarget::Class { class } if class >= classes => bad(format!("class {class} of {classes}")),
            DreamTarget::Contrast { class, against } => {
                if class >= classes || matches!(against, Against::Class(b) if b >= classes) {
                    return bad(format!("contrast class out of range (the model has {classes})"));
                }
                if classes < 2 || against == Against::Class(class) {
                    return bad("a contrast needs two different classes".into());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A short label using the model's class names, e.g. `class:piano`.
    pub fn label(&self, class_names: &[String]) -> String {
        let name = |i: usize| class_names.get(i).cloned().unwrap_or_else(|| i.to_string());
        match *self {
            DreamTarget::LayerMean { layer } => format!("layer:{}", layer + 1),
            DreamTarget::Channel { layer, channel } => format!("channel:{}:{channel}", layer + 1),
            DreamTarget::Class { class } => format!("class:{}", name(class)),
            DreamTarget::Contrast {
                class,
                against: Against::Others,
            } => format!("contrast:{}", name(class)),
            DreamTarget::Contrast {
                class,
                against: Against::Class(b),
            } => {
                format!("contrast:{}:{}", name(class), name(b))
            }
        }
    }

    /// The target's value for a batch of activations, averaged over the batch.
    fn value(&self, act: &Activations) -> candle_core::Result<Tensor> {
        match *self {
            DreamTarget::LayerMean { layer } => act.layers[layer].mean_all(),
            DreamTarget::Channel { layer, channel } => act.layers[layer].narrow(2, channel, 1)?.mean_all(),
            DreamTarget::Class { class } => act.logits.narrow(1, class, 1)?.mean_all(),
            DreamTarget::Contrast { class, against } => {
                let a = act.logits.narrow(1, class, 1)?;
                let b = match against {
                    Against::Class(b) => act.logits.narrow(1, b, 1)?,
                    Against::Others => {
                        let n = act.logits.dim(1)? as f64;
                        ((act.logits.sum_keepdim(1)? - &a)? / (n - 1.0))?
                    }
                };
                (a - b)?.mean_all()
            }
        }
    }
}

/// Additive (toward the target) or subtractive (away from it) dreaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Gradient ascent on the target.
    #[default]
    Toward,
    /// Gradient descent on the target.
    Away,
}

/// How a dream's change is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DreamMode {
    /// The change lives in the input's own short-time spectrum: the
    /// network's gradient is carried into the input's spectrum, weighted by
    /// it, and the change is synthesised from there (see
    /// [`crate::spectral_dream`]). Quiet where the input is quiet, no hiss
    /// between its partials, no pumping at the window hop.
    #[default]
    Spectral,
    /// The paper's dream: max-normalised gradient steps on the raw samples
    /// of each window, the windows overlap-added. Every sample may change,
    /// so the change is mostly broadband noise.
    Raw,
}

impl DreamMode {
    /// Every mode, in menu order.
    pub const ALL: [DreamMode; 2] = [DreamMode::Spectral, DreamMode::Raw];

    /// The mode's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DreamMode::Spectral => "spectral",
            DreamMode::Raw => "raw",
        }
    }
}

/// Settings of one dream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DreamParams {
    /// How the change is made.
    pub mode: DreamMode,
    /// What to push on.
    pub target: DreamTarget,
    /// Toward or away from it.
    pub direction: Direction,
    /// Gradient steps per window.
    pub iterations: usize,
    /// Largest per-sample change of one step, in units of the window's peak.
    pub step: f32,
    /// Weight of the L1 cost on the first layer's output.
    pub sparsity: f32,
    /// Weight of the squared difference of neighbouring first-layer frames.
    pub continuity: f32,
    /// Seeds the small random shifts of the window between steps
    /// (spectral mode), so the same seed dreams the same.
    pub seed: u64,
}

impl Default for DreamParams {
    fn default() -> Self {
        Self {
            mode: DreamMode::default(),
            target: DreamTarget::default(),
            direction: Direction::Toward,
            iterations: 4,
            step: 0.02,
            sparsity: 0.05,
            continuity: 0.05,
            seed: 0,
        }
    }
}

/// The quantities dreaming trades off, measured on one input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measures {
    /// The target's value.
    pub target: f32,
    /// Mean absolute first-layer output.
    pub sparsity: f32,
    /// Mean squared difference of neighbouring first-layer frames.
    pub continuity: f32,
}

/// The target's value on one window before and after dreaming on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// On the input window.
    pub before: f32,
    /// On the dreamed window.
    pub after: f32,
}

/// Dreams through one perception model on one device.
pub struct Dreamer {
    model: PerceptionModel,
    device: Device,
}

impl Dreamer {
    /// Wraps a model that already lives on `device`.
    pub fn new(model: PerceptionModel, device: Device) -> Self {
        Self { model, device }
    }

    /// The model dreamed through.
    pub fn model(&self) -> &PerceptionModel {
        &self.model
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Samples per window at the model rate.
    pub fn window(&self) -> usize {
        self.model.config.window
    }

    fn input(&self, x: &[f32]) -> Result<Tensor, DreamError> {
        if x.len() != self.window() {
            return Err(DreamError::WindowLength {
                expected: self.window(),
                found: x.len(),
            });
        }
        Ok(Tensor::from_slice(x, (1, x.len()), &self.device)?)
    }

    fn terms(&self, x: &Tensor, target: &DreamTarget) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let act = self.model.net.forward(x)?;
        let first = &act.layers[0];
        let frames = first.dim(1)?;
        let sparsity = first.abs()?.mean_all()?;
        let continuity = if frames > 1 {
            (first.narrow(1, 1, frames - 1)? - first.narrow(1, 0, frames - 1)?)?
                .sqr()?
                .mean_all()?
        } else {
            sparsity.zeros_like()?
        };
        Ok((target.value(&act)?, sparsity, continuity))
    }

    /// The dream's loss on a normalised window (a tensor on the device):
    /// minus the target toward it (plus it away from it), plus the
    /// weighted sparsity and continuity costs; and the target's value.
    fn loss(&self, x: &Tensor, params: &DreamParams) -> candle_core::Result<(Tensor, Tensor)> {
        let sign = match params.direction {
            Direction::Toward => 1.0,
            Direction::Away => -1.0,
        };
        let (t, s, c) = self.terms(x, &params.target)?;
        let loss = ((&t * -sign)? + (s * f64::from(params.sparsity))? + (c * f64::from(params.continuity))?)?;
        Ok((loss, t))
    }

    /// The gradient of the dream's loss with respect to a normalised window
    /// given as samples, and the target's value there. Gradient descent on
    /// the loss is the dream.
    pub fn loss_gradient(&self, x: &[f32], params: &DreamParams) -> Result<(Vec<f32>, f32), DreamError> {
        params.target.check(&self.model)?;
        let var = Var::from_tensor(&self.input(x)?)?;
        let (loss, t) = self.loss(var.as_tensor(), params)?;
        let grads = loss.backward()?;
        let target = t.to_scalar::<f32>()?;
        let g = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all()?.to_vec1()?,
            None => vec![0.0; x.len()],
        };
        Ok((g, target))
    }

    /// The target's value on a normalised window.
    pub fn target_value(&self, x: &[f32], target: &DreamTarget) -> Result<f32, DreamError> {
        target.check(&self.model)?;
        let act = self.model.net.forward(&self.input(x)?)?;
        Ok(target.value(&act)?.to_scalar()?)
    }

    /// The target's mean value over the windows of an input and of its
    /// dreamed output (both at the model rate), the pair of windows at each
    /// place scaled alike: made zero-mean and divided by the input window's
    /// peak, as the dream saw them, so that a change that makes the audio
    /// louder is not scored as a quieter input. Windows an eighth of a
    /// window apart, so the means do not depend on where a dream's own
    /// windows fell; silent input windows are left out. `None` if no window
    /// is loud enough.
    pub fn mean_target_change(
        &self,
        input: &[f32],
        output: &[f32],
        target: &DreamTarget,
    ) -> Result<Option<(f32, f32)>, DreamError> {
        let window = self.window();
        let hop = (window / 8).max(1);
        let (mut before, mut after, mut count) = (0.0f64, 0.0f64, 0usize);
        let mut start = 0;
        while start + window <= input.len().min(output.len()) {
            let x = &input[start..start + window];
            let y = &output[start..start + window];
            let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / window as f64;
            let (_, peak) = normalise(x);
            if peak >= SILENCE {
                let scaled = |s: &[f32]| -> Vec<f32> {
                    s.iter()
                        .map(|&v| ((f64::from(v) - mean) / f64::from(peak)) as f32)
                        .collect()
                };
                before += f64::from(self.target_value(&scaled(x), target)?);
                after += f64::from(self.target_value(&scaled(y), target)?);
                count += 1;
            }
            start += hop;
        }
        Ok((count > 0).then(|| ((before / count as f64) as f32, (after / count as f64) as f32)))
    }

    /// Measures target, sparsity and continuity on a normalised window.
    pub fn measure(&self, x: &[f32], target: &DreamTarget) -> Result<Measures, DreamError> {
        target.check(&self.model)?;
        let (t, s, c) = self.terms(&self.input(x)?, target)?;
        Ok(Measures {
            target: t.to_scalar()?,
            sparsity: s.to_scalar()?,
            continuity: c.to_scalar()?,
        })
    }

    /// Runs `params.iterations` gradient steps on a normalised window and
    /// returns the dreamed window.
    pub fn dream(&self, x: &[f32], params: &DreamParams) -> Result<Vec<f32>, DreamError> {
        self.dream_scored(x, params, false).map(|(d, _)| d)
    }

    /// Like [`Dreamer::dream`]; with `score` set it also returns the
    /// target's value before and after (one extra forward pass, for
    /// pictures of what the dream does).
    pub fn dream_scored(
        &self,
        x: &[f32],
        params: &DreamParams,
        score: bool,
    ) -> Result<(Vec<f32>, Option<Score>), DreamError> {
        params.target.check(&self.model)?;
        let mut before = None;
        let var = Var::from_tensor(&self.input(x)?)?;
        for _ in 0..params.iterations {
            let (loss, t) = self.loss(var.as_tensor(), params)?;
            if score && before.is_none() {
                before = Some(t.to_scalar::<f32>()?);
            }
            let grads = loss.backward()?;
            let Some(g) = grads.get(var.as_tensor()) else {
                break;
            };
            let peak: f32 = g.abs()?.max_all()?.to_scalar()?;
            // A flat objective has nowhere to go; dividing by zero would
            // turn the window into NaNs.
            if !(peak > 0.0 && peak.is_finite()) {
                break;
            }
            let next = (var.as_tensor() - (g * f64::from(params.step / peak))?)?;
            var.set(&next)?;
        }
        let scored = if score {
            let after = params.target.value(&self.model.net.forward(var.as_tensor())?)?;
            let after = after.to_scalar::<f32>()?;
            Some(Score {
                before: before.unwrap_or(after),
                after,
            })
        } else {
            None
        };
        Ok((var.as_tensor().flatten_all()?.to_vec1()?, scored))
    }

    /// Dreams on a raw window in audio units and returns the change (delta)
    /// in audio units. The window is made zero-mean and scaled by its peak,
    /// as the paper does. A window whose peak is below `silence` comes back
    /// as a zero delta when `gate` is set (silence in, silence out);
    /// otherwise it is dreamed unscaled, as when dreaming from silence.
    pub fn dream_delta(&self, raw: &[f32], params: &DreamParams, gate: bool) -> Result<Vec<f32>, DreamError> {
        self.dream_delta_scored(raw, params, gate, false).map(|(d, _)| d)
    }

    /// [`Dreamer::dream_delta`], optionally with the target's score before
    /// and after (none for a window that was not dreamed).
    pub fn dream_delta_scored(
        &self,
        raw: &[f32],
        params: &DreamParams,
        gate: bool,
        score: bool,
    ) -> Result<(Vec<f32>, Option<Score>), DreamError> {
        if raw.len() != self.window() {
            return Err(DreamError::WindowLength {
                expected: self.window(),
                found: raw.len(),
            });
        }
        let (normalised, scale) = normalise(raw);
        if params.iterations == 0 || (gate && scale < SILENCE) {
            return Ok((vec![0.0; raw.len()], None));
        }
        let scale = if scale < SILENCE { 1.0 } else { scale };
        let (dreamed, scored) = self.dream_scored(&normalised, params, score)?;
        let delta = dreamed
            .iter()
            .zip(&normalised)
            .map(|(d, n)| (d - n) * scale)
            .collect();
        Ok((delta, scored))
    }
}

/// Peak level (about -120 dBFS) below which a window counts as silent.
pub const SILENCE: f32 = 1e-6;

/// Zero-mean, peak-scaled copy of `raw` and the scale used. A silent window
/// comes back zero-mean but unscaled, with its (tiny) peak as the scale.
pub fn normalise(raw: &[f32]) -> (Vec<f32>, f32) {
    let mean = raw.iter().map(|&v| f64::from(v)).sum::<f64>() / raw.len().max(1) as f64;
    let centred: Vec<f32> = raw.iter().map(|&v| (f64::from(v) - mean) as f32).collect();
    let peak = centred.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak < SILENCE {
        return (centred, peak);
    }
    (centred.iter().map(|v| v / peak).collect(), peak)
}
