//! The dreaming worker thread: owns the perception model, the compute
//! device and the streaming dreamer; talks to the audio thread only through
//! two SPSC rings and atomics.
//!
//! Ring protocol: the capture ring carries the (finite) mono input; a NaN in
//! it marks a reset, which the worker answers by resetting its stream and
//! putting a NaN into the delta ring, so the audio thread knows where the
//! new stream's deltas begin.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reverie_engine::dreamer::{Direction, DreamParams, DreamTarget, Dreamer};
use reverie_engine::perception::PerceptionModel;
use reverie_engine::streaming::{DeltaStream, DreamWindows};
use rtrb::{Consumer, Producer};

use crate::params::{ReverieParams, TargetNames};
use crate::status::Status;

/// Messages to the worker from the editor or state loading.
pub enum Request {
    /// Load this perception model (None: the embedded default).
    LoadPerception(Option<String>),
}

/// Everything the worker thread owns.
pub struct DreamJob {
    /// The streaming dreamer, built in `activate()`.
    pub stream: DeltaStream<DreamWindows>,
    /// Mono input from the audio thread.
    pub capture: Consumer<f32>,
    /// Dream deltas to the audio thread.
    pub deltas: Producer<f32>,
    /// Host parameters (read between windows).
    pub params: Arc<ReverieParams>,
    /// Names of the current model's targets.
    pub targets: TargetNames,
    /// Status for the editor and the audio thread.
    pub status: Arc<Status>,
    /// Model load requests.
    pub requests: Receiver<Request>,
    /// The audio rate, for the real-time factor.
    pub host_rate: f32,
}

/// A running dream worker; stopping and joining happen on drop.
pub struct DreamWorker {
    handle: Option<JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl DreamWorker {
    /// Starts the thread.
    pub fn spawn(job: DreamJob) -> std::io::Result<Self> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let status = job.status.clone();
        status.dream_alive.store(true, Ordering::Release);
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("reverie-dream".into())
            .spawn(move || {
                // A panic must never reach the audio thread: it just sees the
                // worker die and fades to dry.
                let result = std::panic::catch_unwind(AssertUnwindSafe(move || run(job, &flag)));
                if result.is_err() {
                    status.say("the dreaming worker stopped after an internal error; passing dry audio");
                }
                status.dream_alive.store(false, Ordering::Release);
            })?;
        Ok(Self {
            handle: Some(handle),
            stop,
        })
    }
}

impl Drop for DreamWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The current dream settings from the host parameters.
pub fn settings(params: &ReverieParams, menu: &[DreamTarget]) -> DreamParams {
    let index = (params.target.value().max(0) as usize).min(menu.len().saturating_sub(1));
    DreamParams {
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

const CHUNK: usize = 1024;

fn run(mut job: DreamJob, stop: &std::sync::atomic::AtomicBool) {
    let mut menu = publish_targets(job.stream.processor().dreamer.model(), &job.targets);
    let mut input = vec![0.0f32; CHUNK];
    let mut output = vec![0.0f32; CHUNK];
    let mut rtf = 0.0f32;
    while !stop.load(Ordering::Acquire) {
        match job.requests.try_recv() {
            Ok(Request::LoadPerception(path)) => load(&mut job, path, &mut menu),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
        }
        job.stream.processor_mut().params = settings(&job.params, &menu);
        let n = job.capture.slots().min(job.deltas.slots()).min(CHUNK);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let chunk = job.capture.read_chunk(n).expect("n slots are readable");
        let (a, b) = chunk.as_slices();
        input[..a.len()].copy_from_slice(a);
        input[a.len()..n].copy_from_slice(b);
        chunk.commit_all();
        let began = Instant::now();
        let mut written = 0;
        // Split at reset markers so each stream segment is processed whole.
        let mut start = 0;
        while start < n {
            let end = input[start..n]
                .iter()
                .position(|v| v.is_nan())
                .map_or(n, |p| start + p);
            if end > start {
                if let Err(e) = job
                    .stream
                    .process(&input[start..end], &mut output[written..written + end - start])
                {
                    job.status.say(format!("dreaming failed: {e}"));
                    output[written..written + end - start].fill(0.0);
                }
                written += end - start;
            }
            if end < n {
                job.stream.reset();
                output[written] = f32::NAN;
                written += 1;
            }
            start = end + 1;
        }
        let slot = job
            .deltas
            .write_chunk_uninit(written)
            .expect("slots were counted");
        slot.fill_from_iter(output[..written].iter().copied());
        let seconds = began.elapsed().as_secs_f32().max(1e-9);
        let instant = written as f32 / job.host_rate / seconds;
        rtf = if rtf == 0.0 {
            instant
        } else {
            0.95 * rtf + 0.05 * instant
        };
        job.status.dream_realtime_factor.store(rtf, Ordering::Relaxed);
        job.status
            .windows
            .store(job.stream.windows_done(), Ordering::Relaxed);
    }
}

fn load(job: &mut DreamJob, path: Option<String>, menu: &mut Vec<DreamTarget>) {
    let device = job.stream.processor().dreamer.device().clone();
    let (model, message) = crate::models::perception(path.as_deref(), &device);
    let current = job.stream.processor().dreamer.model();
    if model.meta.sample_rate != current.meta.sample_rate || model.config.window != current.config.window {
        job.status.say(format!(
            "{} uses {} Hz and {}-sample windows; the plugin switches to it when the host next \
             activates it (its latency changes)",
            model.meta.name, model.meta.sample_rate, model.config.window
        ));
        return;
    }
    *menu = publish_targets(&model, &job.targets);
    job.stream.processor_mut().dreamer = Dreamer::new(model, device);
    job.status.say(message);
}
