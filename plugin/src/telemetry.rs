//! What the editor draws, on its way from the audio and dreaming threads:
//! lock-free SPSC rings, fed only while the editor is open. A full ring
//! (editor closed or slow) just drops what does not fit; the audio thread
//! never waits and the editor never locks.

use std::sync::{Arc, Mutex};

use rtrb::{Consumer, Producer, RingBuffer};

/// One output frame as the audio thread hears it, mixed to mono: the dry
/// input (delayed by the latency, so it lines up) and the plugin's output.
pub type ScopeFrame = [f32; 2];

/// Frames the scope ring holds: 0.7 s at 48 kHz, many editor frames.
pub const SCOPE_CAPACITY: usize = 1 << 15;

/// Dreamed windows the score ring holds.
pub const SCORE_CAPACITY: usize = 256;

/// The dream target's value on one window, before and after dreaming.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScorePoint {
    /// Index of the target (the target parameter's value) it was measured for.
    pub target: u32,
    /// On the input.
    pub before: f32,
    /// On the dreamed window.
    pub after: f32,
}

/// Where the score producer waits between activations: each session's
/// dreaming job takes it and puts it back when it ends. Only those two
/// non-real-time threads ever lock it.
pub type ScoreSlot = Arc<Mutex<Option<Producer<ScorePoint>>>>;

/// The writing ends, kept by the plugin instance.
pub struct Feeds {
    /// Written by the audio thread while the editor is open.
    pub scope: Producer<ScopeFrame>,
    /// Lent to the dreaming job of each activation.
    pub scores: ScoreSlot,
}

/// The reading ends, owned by the editor.
pub struct Taps {
    /// What the audio thread played.
    pub scope: Consumer<ScopeFrame>,
    /// Scores of dreamed windows.
    pub scores: Consumer<ScorePoint>,
}

/// A connected pair of ends.
pub fn connect() -> (Feeds, Taps) {
    let (scope_tx, scope_rx) = RingBuffer::new(SCOPE_CAPACITY);
    let (score_tx, score_rx) = RingBuffer::new(SCORE_CAPACITY);
    (
        Feeds {
            scope: scope_tx,
            scores: Arc::new(Mutex::new(Some(score_tx))),
        },
        Taps {
            scope: scope_rx,
            scores: score_rx,
        },
    )
}
