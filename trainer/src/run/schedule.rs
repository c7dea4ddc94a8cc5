//! How long a run is and how its learning rate moves.

use serde::{Deserialize, Serialize};

use super::error::TrainError;

/// How the learning rate changes over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The base rate throughout (after warm-up).
    Constant,
    /// Half a cosine from the base rate down to zero at the last step.
    Cosine,
}

impl LrSchedule {
    /// The learning rate of step `step` (counted from 0) of a run of
    /// `total_steps`: `base` after a linear warm-up over `warmup_steps`,
    /// shaped by the schedule.
    pub fn rate(self, base: f64, warmup_steps: u64, step: u64, total_steps: u64) -> f64 {
        let warm = if warmup_steps > 0 {
            ((step + 1) as f64 / warmup_steps as f64).min(1.0)
        } else {
            1.0
        };
        let decay = match self {
            LrSchedule::Constant => 1.0,
            LrSchedule::Cosine => {
                let t = (step as f64 / total_steps.max(1) as f64).min(1.0);
                0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        };
        base * warm * decay
    }
}

/// The settings every run has: its length and its learning rate. Stored in
/// checkpoints beside (flattened into) each trainer's own settings, so the
/// JSON keeps one flat object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Passes over the training data.
    pub epochs: u64,
    /// Base learning rate.
    pub lr: f64,
    /// How the learning rate changes over the run.
    #[serde(rename = "schedule")]
    pub shape: LrSchedule,
    /// Steps of linear warm-up from near zero to the base rate.
    pub warmup_steps: u64,
}

impl Schedule {
    /// The learning rate of step `step` (counted from 0) of a run of
    /// `total_steps`.
    pub fn rate(&self, step: u64, total_steps: u64) -> f64 {
        self.shape.rate(self.lr, self.warmup_steps, step, total_steps)
    }

    /// Refuses a learning rate no run can use.
    pub fn validate(&self) -> Result<(), TrainError> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(TrainError::BadConfig("the learning rate must be positive".into()));
        }
        Ok(())
    }
}
