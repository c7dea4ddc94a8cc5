//! Optimisers whose state can be saved and restored.
//!
//! candle_nn's `AdamW` keeps its moments and step counter private, so a run
//! trained with it cannot be resumed exactly. [`AdamW`] here computes the
//! very same update (the tests check it step for step against candle_nn's)
//! and exposes its state; [`RmsProp`] is the optimiser of the WaveNet seed,
//! which candle does not have at all.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

/// Which update rule to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    AdamW,
    /// RMSprop: the step is the gradient divided by a running RMS of past
    /// gradients, optionally with momentum.
    RmsProp,
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptimizerKind::AdamW => write!(f, "adamw"),
            OptimizerKind::RmsProp => write!(f, "rmsprop"),
        }
    }
}

/// Hyper-parameters of either optimiser. The learning rate is not here: it
/// is passed to every step so a schedule can change it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// The update rule.
    pub kind: OptimizerKind,
    /// AdamW: decay of the first moment.
    pub beta1: f64,
    /// AdamW: decay of the second moment. RMSprop: decay of the mean square
    /// (PyTorch's `alpha`).
    pub beta2: f64,
    /// Added to the RMS in the denominator.
    pub eps: f64,
    /// AdamW: decoupled decay rate (multiplied by the learning rate).
    /// RMSprop: L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// RMSprop only: momentum of the scaled step (0 = none).
    pub momentum: f64,
    /// Learning-rate multipliers by parameter name (absent: 1), e.g. for
    /// the tensors a warm start adds to a trained network, which start at
    /// zero and would otherwise learn no faster than the trained ones move.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lr_scales: BTreeMap<String, f64>,
}

impl OptimizerConfig {
    /// Defaults for a kind: candle_nn's AdamW defaults, PyTorch's RMSprop
    /// defaults.
    pub fn new(kind: OptimizerKind) -> Self {
        match kind {
            OptimizerKind::AdamW => Self {
                kind,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
                momentum: 0.0,
                lr_scales: BTreeMap::new(),
            },
            OptimizerKind::RmsProp => Self {
                kind,
                beta1: 0.0,
                beta2: 0.99,
                eps: 1e-8,
                weight_decay: 0.0,
                momentum: 0.0,
                lr_scales: BTreeMap::new(),
            },
        }
    }
}

/// A trainable tensor with a stable name (used to save its optimiser state).
#[derive(Debug, Clone)]
pub struct Param {
    /// Name, unique within one optimiser, e.g. `conv0.weight`.
    pub name: String,
    /// The variable that is updated in place.
    pub var: Var,
    /// Whether weight decay applies (weights yes; biases and batch-norm
    /// scales no, as decaying them only fights the normalisation).
    pub decay: bool,
}

/// An optimiser's complete state: step counter and named buffers.
#[derive(Debug, Clone)]
pub struct OptimizerState {
    /// Steps taken so far.
    pub step: u64,
    /// Buffers named `<param>.<buffer>`.
    pub tensors: Vec<(String, Tensor)>,
}

/// Why an optimiser could not be built, stepped or restored.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// A buffer the optimiser needs is absent from the saved state.
    #[error("the saved optimiser state lacks `{0}`; the checkpoint is from another optimiser or model")]
    MissingState(String),
    /// A saved buffer's shape does not match its parameter.
    #[error("saved optimiser buffer `{name}` has shape {found:?}, the parameter has {expected:?}")]
    StateShape {
        /// Buffer name.
        name: String,
        /// Shape of the parameter.
        expected: Vec<usize>,
        /// Shape saved.
        found: Vec<usize>,
    },
    /// An error inside candle.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Per-parameter buffers: AdamW's first and second moments, or RMSprop's
/// mean square and momentum buffer.
#[derive(Debug)]
struct Slot {
    param: Param,
    a: Var,
    b: Var,
}

/// Names of the two buffers per parameter, by optimiser.
fn buffer_names(kind: OptimizerKind) -> [&'static str; 2] {
    match kind {
        OptimizerKind::AdamW => ["m", "v"],
        OptimizerKind::RmsProp => ["square_avg", "momentum"],
    }
}

/// AdamW or RMSprop over a list of parameters, with saveable state.
#[derive(Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    slots: Vec<Slot>,
    step: u64,
}

impl Optimizer {
    /// An optimiser with zeroed buffers for `params`.
    pub fn new(config: OptimizerConfig, params: Vec<Param>) -> Result<Self, OptimError> {
        let slots = params
            .into_iter()
            .map(|param| {
                let zeros = || Var::zeros(param.var.shape(), param.var.dtype(), param.var.device());
                Ok(Slot {
                    a: zeros()?,
                    b: zeros()?,
                    param,
                })
            })
            .collect::<Result<Vec<_>, candle_core::Error>>()?;
        Ok(Self {
            config,
            slots,
            step: 0,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Applies one update with learning rate `lr` using `grads`; parameters
    /// without a gradient are left alone (their buffers too).
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<(), OptimError> {
        self.step += 1;
        for slot in &self.slots {
            let Some(g) = grads.get(slot.param.var.as_tensor()) else {
                continue;
            };
            let lr = lr
                * self
                    .config
                    .lr_scales
                    .get(&slot.param.name)
                    .copied()
                    .unwrap_or(1.0);
            match self.config.kind {
                OptimizerKind::AdamW => adamw_update(&self.config, slot, g, lr, self.step)?,
                OptimizerKind::RmsProp => rmsprop_update(&self.config, slot, g, lr)?,
            }
        }
        Ok(())
    }

    /// A copy of the complete state. The buffers are copied, not shared, so
    /// the snapshot stays as it is while the optimiser steps on.
    pub fn state(&self) -> Result<OptimizerState, OptimError> {
        let [na, nb] = buffer_names(self.config.kind);
        let mut tensors = Vec::with_capacity(2 * self.slots.len());
        for slot in &self.slots {
            tensors.push((
                format!("{}.{na}", slot.param.name),
                slot.a.as_detached_tensor().copy()?,
            ));
            tensors.push((
                format!("{}.{nb}", slot.param.name),
                slot.b.as_detached_tensor().copy()?,
            ));
        }
        Ok(OptimizerState {
            step: self.step,
            tensors,
        })
    }

    /// Restores a state saved by [`Optimizer::state`] for the same
    /// parameters and kind.
    pub fn load_state(&mut self, state: &OptimizerState) -> Result<(), OptimError> {
        let [na, nb] = buffer_names(self.config.kind);
        let find = |name: String| {
            state
                .tensors
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t)
                .ok_or(OptimError::MissingState(name))
        };
        // Check everything before touching anything, so a bad state leaves
        // the optimiser as it was.
        let mut updates = Vec::new();
        for slot in &self.slots {
            for (buffer, var) in [(na, &slot.a), (nb, &slot.b)] {
                let name = format!("{}.{buffer}", slot.param.name);
                let saved = find(name.clone())?;
                if saved.dims() != var.dims() {
                    return Err(OptimError::StateShape {
                        name,
                        expected: var.dims().to_vec(),
                        found: saved.dims().to_vec(),
                    });
                }
                updates.push((var, saved.to_device(var.device())?.to_dtype(var.dtype())?));
            }
        }
        for (var, value) in updates {
            var.set(&value)?;
        }
        self.step = state.step;
        Ok(())
    }
}

fn adamw_update(c: &OptimizerConfig, slot: &Slot, g: &Tensor, lr: f64, step: u64) -> candle_core::Result<()> {
    let theta = &slot.param.var;
    let (m, v) = (&slot.a, &slot.b);
    // Same arithmetic, in the same order, as candle_nn::AdamW, so runs can be
    // compared with it.
    let t = step.min(i32::MAX as u64) as i32;
    let scale_m = 1.0 / (1.0 - c.beta1.powi(t));
    let scale_v = 1.0 / (1.0 - c.beta2.powi(t));
    let next_m = ((m.as_tensor() * c.beta1)? + (g * (1.0 - c.beta1))?)?;
    let next_v = ((v.as_tensor() * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
    let m_hat = (&next_m * scale_m)?;
    let v_hat = (&next_v * scale_v)?;
    let decay = if slot.param.decay {
        lr * c.weight_decay
    } else {
        0.0
    };
    let next_theta = (theta.as_tensor() * (1.0 - decay))?;
    let adjusted = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
    let next_theta = (next_theta - (adjusted * lr)?)?;
    m.set(&next_m)?;
    v.set(&next_v)?;
    theta.set(&next_theta)
}

fn rmsprop_update(c: &OptimizerConfig, slot: &Slot, g: &Tensor, lr: f64) -> candle_core::Result<()> {
    let theta = &slot.param.var;
    let (square_avg, buf) = (&slot.a, &slot.b);
    let g = if slot.param.decay && c.weight_decay != 0.0 {
        (g + (theta.as_tensor() * c.weight_decay)?)?
    } else {
        g.clone()
    };
    let alpha = c.beta2;
    let next_sq = ((square_avg.as_tensor() * alpha)? + (g.sqr()? * (1.0 - alpha))?)?;
    let scaled = (&g / (next_sq.sqrt()? + c.eps)?)?;
    let step = if c.momentum > 0.0 {
        let next_buf = ((buf.as_tensor() * c.momentum)? + scaled)?;
        buf.set(&next_buf)?;
        next_buf
    } else {
        scaled
    };
    let next_theta = (theta.as_tensor() - (step * lr)?)?;
    square_avg.set(&next_sq)?;
    theta.set(&next_theta)
}
