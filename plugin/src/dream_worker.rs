//! The dreaming job: owns the perception model, the compute device and the
//! streaming dreamer; picks up parameter changes between chunks and model
//! changes (from the editor or a loaded project state) between windows.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use reverie_engine::dreamer::{Direction, DreamMode, DreamParams, DreamTarget, Dreamer};
use reverie_engine::perception::PerceptionModel;
use reverie_engine::streaming::{DeltaStream, DreamWindows};
use rtrb::Producer;

use crate::params::{ReverieParams, TargetNames};
use crate::status::Status;
use crate::telemetry::{ScorePoint, ScoreSlot};
use crate::worker::Job;

/// Everything the dreaming thread owns.
pub struct DreamJob {
    /// The streaming dreamer, built in `activate()`.
    pub stream: DeltaStream<DreamWindows>,
    /// Host parameters.
    pub params: Arc<ReverieParams>,
    /// Names of the current model's targets.
    pub targets: TargetNames,
    /// Status for the editor.
    pub status: Arc<Status>,
    /// The model path the running model came from.
    pub model_path: Option<String>,
    /// The current model's targets, in parameter order.
    pub menu: Vec<DreamTarget>,
    /// Where the score ring's writing end goes back when the job ends.
    pub scores: ScoreSlot,
    /// The score ring's writing end, while this job has it.
    pub scores_out: Option<Producer<ScorePoint>>,
}

/// The current dream settings from the host parameters.
pub fn settings(params: &ReverieParams, menu: &[DreamTarget]) -> DreamParams {
    let index = (params.target.value().max(0) as usize).min(menu.len().saturating_sub(1));
    DreamParams {
        mode: match params.mode.value() {
            crate::params::Mode::Spectral => DreamMode::Spectral,
            crate::params::Mode::Raw => DreamMode::Raw,
        },
        target: menu.get(index).copied().unwrap_or_default(),
        direction: if params.away.value() {
            Direction::Away
        } else {
            Direction::Toward
        },
        iterations: params.iterations.value().max(0) as usize,
        step: params.step.value(),
        sparsity: params.sparsity.value(),
        continuity: params.continuity.value(),
        seed: 0,
    }
}

/// Publishes a model's target names for the target parameter and editor.
pub fn publish_targets(model: &PerceptionModel, targets: &TargetNames) -> Vec<DreamTarget> {
    let menu = DreamTarget::menu(model);
    if let Ok(mut names) = targets.write() {
        *names = menu.iter().map(|t| t.label(&model.meta.class_names)).collect();
    }
    menu
}

impl DreamJob {
    fn switch_model(&mut self, path: Option<String>) {
        let device = self.stream.processor().dreamer.device().clone();
        let (model, message) = crate::models::perception(path.as_deref(), &device);
        self.model_path = path;
        let current = self.stream.processor().dreamer.model();
        if model.meta.sample_rate != current.meta.sample_rate || model.config.window != current.config.window
        {
            // A different rate or window changes the latency, which only an
            // activation may do.
            self.status.say(format!(
                "{} uses {} Hz and {}-sample windows; it takes over when the host next activates the \
                 plugin (its latency differs)",
                model.meta.name, model.meta.sample_rate, model.config.window
            ));
            return;
        }
        self.menu = publish_targets(&model, &self.targets);
        self.stream.processor_mut().dreamer = Dreamer::new(model, device);
        self.status.say(message);
    }
}

impl Drop for DreamJob {
    fn drop(&mut self) {
        if let (Some(out), Ok(mut slot)) = (self.scores_out.take(), self.scores.lock()) {
            *slot = Some(out);
        }
    }
}

impl Job for DreamJob {
    fn prepare(&mut self) {
        let wanted = self.params.perception_model.read().ok().and_then(|p| p.clone());
        if wanted != self.model_path {
            self.switch_model(wanted);
        }
        let processor = self.stream.processor_mut();
        processor.params = settings(&self.params, &self.menu);
        // Scoring costs a forward pass per window: only for an open editor.
        let scoring = self.status.editor_open.load(Ordering::Relaxed) && self.scores_out.is_some();
        if scoring != processor.scores.is_some() {
            processor.scores = scoring.then(Vec::new);
        }
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) {
        if let Err(e) = self.stream.process(input, output) {
            self.status.say(format!("dreaming failed: {e}"));
        }
        self.status
            .windows
            .store(self.stream.windows_done(), Ordering::Relaxed);
        let target = self.params.target.value().max(0) as u32;
        if let (Some(scores), Some(out)) = (&mut self.stream.processor_mut().scores, &mut self.scores_out) {
            for s in scores.drain(..) {
                let _ = out.push(ScorePoint {
                    target,
                    before: s.before,
                    after: s.after,
                });
            }
        }
    }

    fn reset(&mut self) {
        self.stream.reset();
    }
}
