//! What the workers and the audio thread report, for the editor and tests.
//! Atomics only on the audio thread's side; strings are written and read by
//! non-real-time threads.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8};
use std::sync::{Arc, RwLock};

use crate::job::WorkerFlags;

/// Shared status of one plugin instance.
#[derive(Default)]
pub struct Status {
    /// Dream-delta samples the audio thread needed but the worker had not
    /// delivered (each stretch faded toward dry); also counts input the
    /// worker could not take.
    pub underruns: AtomicU64,
    /// The dreaming thread.
    pub dream: Arc<WorkerFlags>,
    /// The WaveNet thread.
    pub wavenet: Arc<WorkerFlags>,
    /// Windows dreamed since activation.
    pub windows: AtomicU64,
    /// Gradient steps the last window got (the Iterations parameter asks;
    /// live playback may get fewer to keep up).
    pub dream_steps: AtomicU32,
    /// Windows given fewer steps than asked since activation (skipped ones
    /// included).
    pub cut_windows: AtomicU64,
    /// Windows not dreamed at all since activation, to keep up.
    pub skipped_windows: AtomicU64,
    /// The WaveNet's state (see `SamplerState`).
    pub wavenet_state: AtomicU8,
    /// The latency reported to the host, in samples.
    pub latency_samples: AtomicU32,
    /// The host's sample rate of the running activation (0 before one).
    pub host_rate: AtomicU32,
    /// Whether the last block was rendered completely (the host renders
    /// offline or faster than real time, and the audio thread waits for
    /// the workers) rather than on time.
    pub rendering: AtomicBool,
    /// Whether the editor is open: the workers feed its pictures only then.
    pub editor_open: AtomicBool,
    /// The compute device the dream worker uses.
    pub device: RwLock<String>,
    /// The last message about models (loaded, fell back, error), for the user.
    pub model_message: RwLock<String>,
}

/// Appends one JSON line of what an activation did to `path` (see
/// [`crate::STATS_ENV`]). Called when an activation ends, never on the
/// audio thread.
pub fn append_stats(
    path: &std::path::Path,
    status: &Status,
    params: &crate::params::ReverieParams,
    latency: usize,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let line = format!(
        "{{\"rate\":{},\"latency\":{},\"windows\":{},\"underruns\":{},\"steps_asked\":{},\"steps_last\":{},\"cut_windows\":{},\"skipped_windows\":{}}}\n",
        status.host_rate.load(Relaxed),
        latency,
        status.windows.load(Relaxed),
        status.underruns.load(Relaxed),
        params.iterations.value(),
        status.dream_steps.load(Relaxed),
        status.cut_windows.load(Relaxed),
        status.skipped_windows.load(Relaxed),
    );
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(line.as_bytes())
}

impl Status {
    /// Replaces the model message (never called from the audio thread).
    pub fn say(&self, message: impl Into<String>) {
        if let Ok(mut m) = self.model_message.write() {
            *m = message.into();
        }
    }
}
