//! What the workers and the audio thread report, for the editor and tests.
//! Atomics only on the audio thread's side; strings are written and read by
//! non-real-time threads.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::RwLock;

use atomic_float::AtomicF32;

/// Shared status of one plugin instance.
#[derive(Default)]
pub struct Status {
    /// Dream-delta samples the audio thread needed but the worker had not
    /// delivered (each one faded toward dry).
    pub underruns: AtomicU64,
    /// Seconds of audio dreamed per wall-clock second (smoothed).
    pub dream_realtime_factor: AtomicF32,
    /// Whether the dream worker is running (false after a panic or stop).
    pub dream_alive: AtomicBool,
    /// Windows dreamed since activation.
    pub windows: AtomicU64,
    /// The latency reported to the host, in samples.
    pub latency_samples: AtomicU32,
    /// The compute device the dream worker uses.
    pub device: RwLock<String>,
    /// The last message about models (loaded, fell back, error), for the user.
    pub model_message: RwLock<String>,
}

impl Status {
    /// Replaces the model message (never called from the audio thread).
    pub fn say(&self, message: impl Into<String>) {
        if let Ok(mut m) = self.model_message.write() {
            *m = message.into();
        }
    }
}
