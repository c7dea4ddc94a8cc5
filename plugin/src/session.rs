//! One activation of the plugin: the models loaded, the worker threads
//! started, the rings between them and the audio thread, the latency.
//! Built in `activate()` (never by `Default`, since hosts create instances
//! just to scan them); dropping it stops and joins the workers.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;

use reverie_engine::device;
use reverie_engine::dreamer::Dreamer;
use reverie_engine::streaming::{DeltaStream, DreamWindows, StreamConfig};
use rtrb::RingBuffer;

use crate::dream_worker::{self, DreamJob, DreamWorker, Request};
use crate::mixer::Mixer;
use crate::params::{ReverieParams, TargetNames};
use crate::status::Status;

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

/// A running activation.
pub struct Session {
    /// The audio thread's side.
    pub mixer: Mixer,
    /// Model requests to the dream worker.
    pub requests: Sender<Request>,
    /// Latency reported to the host, in samples.
    pub latency: usize,
    // Dropped last, after the rings' other ends: stops and joins the thread.
    _dream_worker: DreamWorker,
}

impl Session {
    /// Loads the models, starts the workers and allocates everything the
    /// audio thread will use.
    pub fn start(
        host: HostSetup,
        params: &Arc<ReverieParams>,
        targets: &TargetNames,
        status: &Arc<Status>,
    ) -> Result<Self, String> {
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
        };
        let menu = dream_worker::publish_targets(&model, targets);
        let windows = DreamWindows {
            params: dream_worker::settings(params, &menu),
            dreamer: Dreamer::new(model, compute.device.clone()),
            gate: true,
        };
        let stream =
            DeltaStream::new(config, windows).map_err(|e| format!("cannot run at {} Hz: {e}", host.rate))?;
        // One hop of headroom for the worker: any setting that dreams at
        // least in real time then never underruns.
        let headroom = (config.window / 2) * host.rate as usize / config.model_rate as usize;
        let latency = stream.latency() + headroom;
        let capacity = latency + host.rate as usize + host.max_block;
        let (capture, capture_rx) = RingBuffer::new(capacity);
        let (deltas_tx, deltas) = RingBuffer::new(capacity);
        let (requests, requests_rx) = channel();
        let worker = DreamWorker::spawn(DreamJob {
            stream,
            capture: capture_rx,
            deltas: deltas_tx,
            params: params.clone(),
            targets: targets.clone(),
            status: status.clone(),
            requests: requests_rx,
            host_rate: host.rate as f32,
        })
        .map_err(|e| format!("cannot start the dreaming thread: {e}"))?;
        status.latency_samples.store(latency as u32, Ordering::Relaxed);
        let mixer = Mixer::new(
            capture,
            deltas,
            host.channels,
            latency,
            headroom,
            host.rate as f32,
            host.offline,
        );
        Ok(Self {
            mixer,
            requests,
            latency,
            _dream_worker: worker,
        })
    }
}
