//! Reverie: a VST3/CLAP plugin in which a neural network dreams on the
//! track's audio. This crate is thin: the engine does the work, on worker
//! threads; the audio thread mixes what they deliver.
//!
//! Signal path of [`Reverie::process`]: input (non-finite samples replaced)
//! -> mono capture ring -> dream worker -> delta ring -> output =
//! dry delayed by the reported latency + strength x delta, then output gain.

mod delay;
mod dream_worker;
mod models;
pub mod params;
pub mod status;

use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, RwLock};

use nice_plug::prelude::*;
use reverie_engine::device;
use reverie_engine::dreamer::Dreamer;
use reverie_engine::streaming::{DeltaStream, DreamWindows, StreamConfig};
use rtrb::{Consumer, Producer, RingBuffer};

use crate::delay::DelayLine;
use crate::dream_worker::{DreamJob, DreamWorker, Request};
pub use crate::params::{ReverieParams, WavenetMode};
pub use crate::status::Status;

/// How long the delta fades to dry (and back) around an underrun.
const FADE_MS: f32 = 5.0;

/// The plugin instance.
pub struct Reverie {
    params: Arc<ReverieParams>,
    status: Arc<Status>,
    targets: params::TargetNames,
    requests: Arc<Mutex<Option<Sender<Request>>>>,
    /// Everything `process()` touches, allocated in `activate()`.
    audio: Option<AudioState>,
    /// Declared after `audio` so the rings are gone before the thread is joined.
    dream_worker: Option<DreamWorker>,
}

/// The audio thread's preallocated state.
struct AudioState {
    capture: Producer<f32>,
    deltas: Consumer<f32>,
    dry: Vec<DelayLine>,
    /// Stream samples still to skip before the first delta is due: the
    /// worker's headroom.
    preroll: usize,
    headroom: usize,
    /// Delta samples that arrived too late and must be dropped to stay aligned.
    debt: usize,
    /// Discarding stale deltas until the worker acknowledges a reset.
    awaiting_marker: bool,
    fade: f32,
    fade_step: f32,
    last_delta: f32,
    offline: bool,
}

impl Default for Reverie {
    /// Cheap: hosts create instances just to scan them, so no model is
    /// loaded and no thread started until `activate()`.
    fn default() -> Self {
        let targets: params::TargetNames = Arc::new(RwLock::new(Vec::new()));
        Self {
            params: Arc::new(ReverieParams::new(targets.clone())),
            status: Arc::new(Status::default()),
            targets,
            requests: Arc::new(Mutex::new(None)),
            audio: None,
            dream_worker: None,
        }
    }
}

impl Reverie {
    /// Shared status (for the editor and tests).
    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// A handle the editor uses to load models.
    pub fn model_loader(&self) -> ModelLoader {
        ModelLoader { params: self.params.clone(), requests: self.requests.clone() }
    }

    fn stop_workers(&mut self) {
        self.audio = None;
        if let Ok(mut r) = self.requests.lock() {
            *r = None;
        }
        self.dream_worker = None;
    }
}

/// Loads models from the editor or any other non-audio thread: the path is
/// persisted with the project and the running worker switches between
/// windows (or the next activation picks it up).
#[derive(Clone)]
pub struct ModelLoader {
    params: Arc<ReverieParams>,
    requests: Arc<Mutex<Option<Sender<Request>>>>,
}

impl ModelLoader {
    /// Loads the perception model at `path`, or the embedded default for `None`.
    pub fn load_perception(&self, path: Option<String>) {
        if let Ok(mut p) = self.params.perception_model.write() {
            p.clone_from(&path);
        }
        if let Some(tx) = self.requests.lock().ok().and_then(|r| r.clone()) {
            let _ = tx.send(Request::LoadPerception(path));
        }
    }
}

impl AudioState {
    /// The dream delta due now (for the input `latency` samples ago).
    #[inline]
    fn next_delta(&mut self, status: &Status) -> f32 {
        if self.awaiting_marker {
            while let Ok(v) = self.deltas.pop() {
                if v.is_nan() {
                    self.awaiting_marker = false;
                    break;
                }
            }
        }
        if self.preroll > 0 {
            self.preroll -= 1;
            return 0.0;
        }
        if !self.awaiting_marker {
            while self.debt > 0 && self.deltas.pop().is_ok() {
                self.debt -= 1;
            }
        }
        let mut next = if self.awaiting_marker || self.debt > 0 { None } else { self.deltas.pop().ok() };
        if next.is_none() && self.offline {
            // Rendering offline: wait for the worker so the bounce is
            // complete and identical run to run.
            while status.dream_alive.load(Ordering::Acquire) {
                if self.awaiting_marker {
                    if let Ok(v) = self.deltas.pop() {
                        self.awaiting_marker = !v.is_nan();
                    }
                } else if let Ok(v) = self.deltas.pop() {
                    next = Some(v);
                    break;
                }
                std::hint::spin_loop();
                std::thread::yield_now();
            }
        }
        match next {
            Some(d) => {
                self.fade = (self.fade + self.fade_step).min(1.0);
                self.last_delta = d;
                d * self.fade
            }
            None => {
                if self.fade == 1.0 {
                    status.underruns.fetch_add(1, Ordering::Relaxed);
                }
                if !self.awaiting_marker {
                    self.debt += 1;
                }
                // Ramp the last delivered value down instead of jumping to dry.
                self.fade = (self.fade - self.fade_step).max(0.0);
                self.last_delta * self.fade
            }
        }
    }

    fn reset(&mut self) {
        for d in &mut self.dry {
            d.reset();
        }
        // A NaN tells the worker to restart its stream; until it echoes the
        // NaN back, whatever is in the delta ring belongs to the old stream.
        let _ = self.capture.push(f32::NAN);
        self.awaiting_marker = true;
        self.preroll = self.headroom;
        self.debt = 0;
        self.fade = 1.0;
        self.last_delta = 0.0;
    }
}

impl Plugin for Reverie {
    const NAME: &'static str = "Reverie";
    const VENDOR: &'static str = "Reverie developers";
    const URL: &'static str = "https://example.invalid/reverie";
    const EMAIL: &'static str = "reverie@example.invalid";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(2),
            main_output_channels: NonZeroU32::new(2),
            ..AudioIOLayout::const_default()
        },
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(1),
            main_output_channels: NonZeroU32::new(1),
            ..AudioIOLayout::const_default()
        },
    ];
    const SAMPLE_ACCURATE_AUTOMATION: bool = true;

    type Editor = ();
    type SysExMessage = ();
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn activate(
        &mut self,
        layout: &AudioIOLayout,
        config: &BufferConfig,
        context: &mut impl ActivateContext<Self>,
    ) -> bool {
        self.stop_workers();
        let host_rate = config.sample_rate.round() as u32;
        let channels = layout.main_output_channels.map_or(0, NonZeroU32::get) as usize;
        let compute = device::select(true);
        if let Ok(mut d) = self.status.device.write() {
            d.clone_from(&compute.description);
        }
        let path = self.params.perception_model.read().ok().and_then(|p| p.clone());
        let (model, message) = models::perception(path.as_deref(), &compute.device);
        self.status.say(message);
        let stream_config =
            StreamConfig { host_rate, model_rate: model.meta.sample_rate, window: model.config.window };
        let menu = dream_worker::publish_targets(&model, &self.targets);
        let windows = DreamWindows {
            params: dream_worker::settings(&self.params, &menu),
            dreamer: Dreamer::new(model, compute.device.clone()),
            gate: true,
        };
        let stream = match DeltaStream::new(stream_config, windows) {
            Ok(s) => s,
            Err(e) => {
                self.status.say(format!("cannot run at {host_rate} Hz: {e}"));
                return false;
            }
        };
        // The worker gets one hop of headroom: any setting that dreams at
        // least in real time then never underruns.
        let headroom = (stream_config.window / 2) * host_rate as usize / stream_config.model_rate as usize;
        let latency = stream.latency() + headroom;
        let capacity = latency + host_rate as usize + config.max_buffer_size as usize;
        let (capture, capture_rx) = RingBuffer::new(capacity);
        let (deltas_tx, deltas) = RingBuffer::new(capacity);
        let (requests, requests_rx) = channel();
        let job = DreamJob {
            stream,
            capture: capture_rx,
            deltas: deltas_tx,
            params: self.params.clone(),
            targets: self.targets.clone(),
            status: self.status.clone(),
            requests: requests_rx,
            host_rate: host_rate as f32,
        };
        match DreamWorker::spawn(job) {
            Ok(w) => self.dream_worker = Some(w),
            Err(e) => {
                self.status.say(format!("cannot start the dreaming thread: {e}"));
                return false;
            }
        }
        if let Ok(mut r) = self.requests.lock() {
            *r = Some(requests);
        }
        self.audio = Some(AudioState {
            capture,
            deltas,
            dry: (0..channels).map(|_| DelayLine::new(latency)).collect(),
            preroll: headroom,
            headroom,
            debt: 0,
            awaiting_marker: false,
            fade: 1.0,
            fade_step: 1.0 / (FADE_MS * 1e-3 * host_rate as f32),
            last_delta: 0.0,
            offline: config.process_mode == ProcessMode::Offline,
        });
        self.status.latency_samples.store(latency as u32, Ordering::Relaxed);
        context.set_latency_samples(latency as u32);
        true
    }

    fn reset(&mut self) {
        if let Some(audio) = &mut self.audio {
            audio.reset();
        }
    }

    fn deactivate(&mut self) {
        self.stop_workers();
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        _context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        let Some(audio) = self.audio.as_mut() else {
            return ProcessStatus::Normal;
        };
        let params = &self.params;
        for mut frame in buffer.iter_samples() {
            // 1. Input, made safe: nothing non-finite reaches a model.
            let channels = frame.len().max(1) as f32;
            let mut mono = 0.0;
            for s in frame.iter_mut() {
                if !s.is_finite() {
                    *s = 0.0;
                }
                mono += *s;
            }
            // 2. To the dream worker (a full ring means it stalled: the
            //    underrun handling below covers the consequence).
            let _ = audio.capture.push(mono / channels);
            // 3. The dream delta for the sample `latency` ago.
            let delta = audio.next_delta(&self.status);
            // 4. Mix: dry delayed by the latency + strength x delta, then gain.
            let strength = params.strength.smoothed.next();
            let gain = params.output_gain.smoothed.next();
            for (s, dry) in frame.iter_mut().zip(audio.dry.iter_mut()) {
                let out = (dry.process(*s) + strength * delta) * gain;
                *s = if out.is_finite() { out } else { 0.0 };
            }
        }
        ProcessStatus::Normal
    }
}

impl Drop for Reverie {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

impl ClapPlugin for Reverie {
    const CLAP_ID: &'static str = "org.reverie.dream";
    const CLAP_DESCRIPTION: Option<&'static str> = Some("A neural network dreams on your track");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] =
        &[ClapFeature::AudioEffect, ClapFeature::Stereo, ClapFeature::Mono, ClapFeature::Distortion];
}

impl Vst3Plugin for Reverie {
    const VST3_CLASS_ID: [u8; 16] = *b"ReverieDreamFx01";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] = &[Vst3SubCategory::Fx, Vst3SubCategory::Distortion];
}

nice_export_clap!(Reverie);
nice_export_vst3!(Reverie);
