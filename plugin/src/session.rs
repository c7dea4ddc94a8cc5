//! One activation of the plugin: the models loaded, the worker threads
//! started, the rings between them and the audio thread, the latency.
//! Built in `activate()` (never by `Default`, since hosts create instances
//! just to scan them); dropping it stops and joins the workers.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use reverie_engine::device;
use reverie_engine::dreamer::Dreamer;
use reverie_engine::streaming::{DreamWindows, ModelStream, StreamConfig, StreamError};
use rtrb::RingBuffer;

use crate::delay::DelayLine;
use crate::dream_worker::{self, DreamJob};
use crate::mixer::Mixer;
use crate::params::{ReverieParams, TargetNames};
use crate::ring::Link;
use crate::sampler_worker::SamplerJob;
use crate::status::Status;
use crate::telemetry::ScoreSlot;
use crate::worker::Worker;

/// What an activation needs to know about the host.
#[derive(Debug, Clone, Copy)]
pub struct HostSetup {
    /// Sample rate in Hz.
    pub rate: u32,
    /// Output channels.
    pub channels: usize,
    /// Largest block the host will send.
    pub max_block: usize,
    /// Whether the host renders offline (process() may then wait).
    pub offline: bool,
}

/// Why an activation could not start (the host is told activation failed;
/// the message goes to the editor's status).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A model's stream cannot run at the host's rate.
    #[error("cannot run the {what} at {rate} Hz: {source}")]
    Stream {
        /// "dream" or "WaveNet".
        what: &'static str,
        /// The host's rate.
        rate: u32,
        /// Why.
        #[source]
        source: StreamError,
    },
    /// A worker thread could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// The system's answer.
        #[source]
        source: std::io::Error,
    },
}

/// A running activation.
pub struct Session {
    /// The audio thread's side.
    pub mixer: Mixer,
    /// Latency reported to the host, in samples.
    pub latency: usize,
    // Dropped after the mixer (and its ring ends): stop and join the threads.
    _dream: Worker,
    _wavenet: Worker,
}

impl Session {
    /// Loads the models, starts the workers and allocates everything the
    /// audio thread will use.
    pub fn start(
        host: HostSetup,
        params: &Arc<ReverieParams>,
        targets: &TargetNames,
        status: &Arc<Status>,
        scores: &ScoreSlot,
    ) -> Result<Self, SessionError> {
        let compute = device::select(true);
        if let Ok(mut d) = status.device.write() {
            d.clone_from(&compute.description);
        }
        let path = params.perception_model.read().ok().and_then(|p| p.clone());
        let (model, message) = crate::models::perception(path.as_deref(), &compute.device);
        status.say(message);
        let config = StreamConfig {
            host_rate: host.rate,
            model_rate: model.meta.sample_rate,
            window: model.config.window,
            hop: model.config.window / 2,
        };
        let menu = dream_worker::publish_targets(&model, targets);
        let windows = DreamWindows::new(
            Dreamer::new(model, compute.device.clone()),
            dream_worker::settings(params, &menu),
        );
        let stream = ModelStream::new(config, windows).map_err(|source| SessionError::Stream {
            what: "dream",
            rate: host.rate,
            source,
        })?;
        // One hop of headroom for the dream worker: any setting that dreams
        // at least in real time then never underruns.
        let headroom = config.hop * host.rate as usize / config.model_rate as usize;
        let latency = stream.latency() + headroom;
        let capacity = latency + host.rate as usize + host.max_block;

        let (dream_in, dream_rx) = RingBuffer::new(capacity);
        let (dream_tx, dream_out) = RingBuffer::new(capacity);
        let dream_job = DreamJob {
            stream,
            params: params.clone(),
            targets: targets.clone(),
            status: status.clone(),
            model_path: path,
            menu,
            scores: scores.clone(),
            scores_out: scores.lock().ok().and_then(|mut slot| slot.take()),
            host_rate: host.rate as f32,
        };
        let dream = Worker::spawn(
            "reverie-dream",
            dream_job,
            dream_rx,
            dream_tx,
            status.dream.clone(),
            host.rate as f32,
        )
        .map_err(|source| SessionError::Thread {
            what: "dreaming",
            source,
        })?;

        let wn_path = params.wavenet_model.read().ok().and_then(|p| p.clone());
        let (sampler, _) = crate::models::wavenet(wn_path.as_deref());
        let sampler_job = SamplerJob::new(sampler, wn_path, host.rate, params.clone(), status.clone())
            .map_err(|source| SessionError::Stream {
                what: "WaveNet",
                rate: host.rate,
                source,
            })?;
        // The generated audio is not aligned to anything; 50 ms of headroom
        // absorbs the sampler thread's scheduling jitter.
        let wn_headroom = host.rate as usize / 20;
        let (wn_in, wn_rx) = RingBuffer::new(capacity);
        let (wn_tx, wn_out) = RingBuffer::new(capacity);
        let wavenet = Worker::spawn(
            "reverie-wavenet",
            sampler_job,
            wn_rx,
            wn_tx,
            status.wavenet.clone(),
            host.rate as f32,
        )
        .map_err(|source| SessionError::Thread {
            what: "WaveNet",
            source,
        })?;

        status.latency_samples.store(latency as u32, Ordering::Relaxed);
        status.host_rate.store(host.rate, Ordering::Relaxed);
        let dry = (0..host.channels).map(|_| DelayLine::new(latency)).collect();
        let mixer = Mixer::new(
            Link::new(dream_in, dream_out, headroom, host.rate as f32),
            Link::new(wn_in, wn_out, wn_headroom, host.rate as f32),
            dry,
            host.offline,
            host.rate as f32,
        );
        Ok(Self {
            mixer,
            latency,
            _dream: dream,
            _wavenet: wavenet,
        })
    }
}
