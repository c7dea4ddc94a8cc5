//! The dreaming job: owns the perception model, the compute device and the
//! streaming dreamer; picks up parameter changes between chunks and model
//! changes (from the editor or a loaded project state) between windows.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use reverie_engine::dreamer::{Direction, DreamMode, DreamParams, DreamTarget, Dreamer};
use reverie_engine::perception::PerceptionModel;
use reverie_engine::streaming::{DreamWindows, ModelStream};
use rtrb::Producer;

use crate::job::{Job, Slack};
use crate::params::{ReverieParams, TargetNames};
use crate::status::Status;
use crate::telemetry::{ScorePoint, ScoreSlot};

/// Everything the dreaming thread owns.
pub struct DreamJob {
    /// The streaming dreamer, built in `activate()`.
    pub stream: ModelStream<DreamWindows>,
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
    /// The host's sample rate.
    pub host_rate: f32,
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

/// When the next output is due, in seconds, if the stream must keep up:
/// live playback, as the audio thread last said. A render (the audio
/// thread waits for the worker) gets every step, and stays bit-identical.
pub fn deadline(status: &Status, slack: Slack, host_rate: f32) -> Option<f64> {
    (!status.rendering.load(Ordering::Relaxed)).then(|| slack.queued_output as f64 / f64::from(host_rate))
}

impl Job for DreamJob {
    fn prepare(&mut self, slack: Slack) {
        let wanted = self.params.perception_model.read().ok().and_then(|p| p.clone());
        if wanted != self.model_path {
            self.switch_model(wanted);
        }
        self.stream
            .set_deadline(deadline(&self.status, slack, self.host_rate));
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
        let windows = self.stream.windows_done();
        if self.status.windows.swap(windows, Ordering::Relaxed) == 0 && windows > 0 {
            // One line per activation: a musician reading the host's log (or
            // a test of a headless host) learns the dream is running, and on what.
            let device = self.status.device.read().map(|d| d.clone()).unwrap_or_default();
            nice_plug::nice_log!("Reverie is dreaming on {device}: first window done");
        }
        let effort = self.stream.effort();
        let asked = self.stream.processor().params.iterations;
        let used = if self.status.rendering.load(Ordering::Relaxed) {
            asked
        } else {
            effort.last().min(asked)
        };
        self.status.dream_steps.store(used as u32, Ordering::Relaxed);
        let (reduced, skipped) = effort.cut_windows();
        self.status
            .cut_windows
            .store(reduced + skipped, Ordering::Relaxed);
        self.status.skipped_windows.store(skipped, Ordering::Relaxed);
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

    fn idle_wait(&self, slack: f64) -> std::time::Duration {
        crate::job::idle_wait(slack, self.status.rendering.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::time::{Duration, Instant};

    use reverie_engine::dreamer::DreamError;
    use reverie_engine::streaming::{StreamConfig, WindowProcessor};

    use super::*;
    use crate::job::WorkerFlags;
    use crate::ring::Link;
    use crate::worker::Worker;

    /// A stand-in for the dreamer that costs `per_step` of CPU per step
    /// (busy, as dreaming is) and changes every sample by 1.
    struct Slowed {
        per_step: Duration,
        asked: usize,
        limit: Option<usize>,
    }

    impl WindowProcessor for Slowed {
        fn process(&mut self, _window: &[f32], out: &mut [f32]) -> Result<(), DreamError> {
            let steps = self.limit.take().unwrap_or(self.asked).min(self.asked);
            let until = Instant::now() + self.per_step * steps as u32;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            out.fill(1.0);
            Ok(())
        }

        fn asked_steps(&self) -> usize {
            self.asked
        }

        fn limit_next(&mut self, steps: usize) {
            self.limit = Some(steps);
        }
    }

    /// The dream job's deadline handling around the stand-in.
    struct Paced {
        stream: ModelStream<Slowed>,
        status: Arc<Status>,
        adapt: bool,
    }

    impl Job for Paced {
        fn prepare(&mut self, slack: Slack) {
            if self.adapt {
                self.stream
                    .set_deadline(deadline(&self.status, slack, RATE as f32));
            }
        }
        fn process(&mut self, input: &[f32], output: &mut [f32]) {
            self.stream
                .process(input, output)
                .expect("the stand-in never fails");
        }
        fn reset(&mut self) {
            self.stream.reset();
        }
    }

    const RATE: u32 = 16_000;

    /// Plays `seconds` of live audio (blocks of 10 ms, on the clock) through
    /// a worker dreaming with the stand-in; returns the underruns and the
    /// output.
    fn play_live(adapt: bool, seconds: f64) -> (u64, Vec<f32>, usize) {
        let config = StreamConfig {
            host_rate: RATE,
            model_rate: RATE,
            window: 1_600,
            hop: 800,
        };
        // 16 steps of 10 ms: 160 ms of work per 50 ms hop.
        let slowed = Slowed {
            per_step: Duration::from_millis(10),
            asked: 16,
            limit: None,
        };
        let stream = ModelStream::new(config, slowed).expect("a stream");
        let latency = stream.latency() + 800;
        let capacity = latency + RATE as usize;
        let (tx, worker_in) = rtrb::RingBuffer::new(capacity);
        let (worker_out, rx) = rtrb::RingBuffer::new(capacity);
        let status = Arc::new(Status::default());
        let flags = Arc::new(WorkerFlags::default());
        let job = Paced {
            stream,
            status: status.clone(),
            adapt,
        };
        let _worker = Worker::spawn(
            "test-paced",
            job,
            worker_in,
            worker_out,
            flags.clone(),
            RATE as f32,
        )
        .expect("spawns");
        let mut link = Link::new(tx, rx, 800, RATE as f32);
        let underruns = AtomicU64::new(0);
        let block = 160;
        let blocks = (seconds * f64::from(RATE)) as usize / block;
        let start = Instant::now();
        let mut out = Vec::with_capacity(blocks * block);
        for b in 0..blocks {
            for _ in 0..block {
                link.send(0.25, &underruns);
                out.push(link.receive(false, &flags.alive, &underruns));
            }
            // The audio clock: the next block is due 10 ms after this one.
            let due = start + Duration::from_secs_f64(((b + 1) * block) as f64 / f64::from(RATE));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        (underruns.load(Ordering::Relaxed), out, latency)
    }

    /// Asked for more steps than the machine can do in real time, today's
    /// fixed setting underruns (the dream fades to dry); the deadline-aware
    /// worker gives each window the steps that fit, and the dream never
    /// stops. (Played on the clock: real-time pace is the subject.)
    #[test]
    fn a_worker_asked_for_too_much_keeps_up_with_fewer_steps() {
        let (fixed, _, _) = play_live(false, 3.0);
        assert!(fixed > 0, "the fixed setting should fall behind");
        let (adaptive, out, latency) = play_live(true, 3.0);
        assert_eq!(adaptive, 0, "the adaptive worker fell behind");
        let dreamed = out[latency + 1_600..].iter().filter(|&&v| v == 1.0).count();
        assert_eq!(
            dreamed,
            out.len() - latency - 1_600,
            "the dream stopped somewhere"
        );
    }
}
