//! What a worker thread does, as the ring protocol ([`crate::ring`]) and
//! the thread ([`crate::worker`]) see it: the job's contract, the flags it
//! shares, its pace, and how long it may sleep.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use atomic_float::AtomicF32;

/// How far ahead of the audio thread a worker is, as it starts a chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slack {
    /// Output samples handed back that the audio thread has not taken
    /// yet: it runs dry after this many samples unless more come.
    pub queued_output: usize,
}

/// What a worker does to the stream.
pub trait Job: Send + 'static {
    /// Called before each chunk: pick up parameter and model changes;
    /// `slack` says how soon the next output is due.
    fn prepare(&mut self, slack: Slack);
    /// Turns `input` into exactly as many `output` samples.
    fn process(&mut self, input: &[f32], output: &mut [f32]);
    /// Forgets the stream's history.
    fn reset(&mut self);
    /// How long to sleep when no input is waiting, with `slack` seconds of
    /// output queued for the audio thread (see [`idle_wait`]).
    fn idle_wait(&self, slack: f64) -> Duration {
        idle_wait(slack, false)
    }
}

/// The longest a live worker sleeps when it has nothing to do.
pub const MAX_IDLE_WAIT: Duration = Duration::from_millis(25);

/// A rendering worker's sleep when it has nothing to do: its audio thread
/// waits for it.
pub const RENDER_WAIT: Duration = Duration::from_micros(50);

/// How long a worker sleeps with nothing to do: a quarter of the `slack`
/// (seconds of output queued for the audio thread), between 1 ms and
/// [`MAX_IDLE_WAIT`], so that it wakes long before its output runs out but
/// seldom, since wake-ups are most of what an idle instance costs; while
/// the host renders, [`RENDER_WAIT`].
pub fn idle_wait(slack: f64, rendering: bool) -> Duration {
    if rendering {
        return RENDER_WAIT;
    }
    Duration::from_secs_f64((slack / 4.0).clamp(0.001, MAX_IDLE_WAIT.as_secs_f64()))
}

/// Flags a worker shares with the audio thread and the editor.
#[derive(Default)]
pub struct WorkerFlags {
    /// Whether the thread is running (false after a panic or a stop).
    pub alive: AtomicBool,
    /// Seconds of audio processed per wall-clock second (smoothed).
    pub realtime_factor: AtomicF32,
}

/// Audio seconds handled per second of work, over the last few seconds of
/// audio. Both sums decay together: most chunks only buffer input and cost
/// microseconds while the one that completes a window costs the dreaming,
/// so averaging per-chunk ratios would overstate the pace by orders of
/// magnitude.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pace {
    audio: f64,
    busy: f64,
}

impl Pace {
    /// Seconds of audio the average reaches back, roughly.
    const MEMORY_SECONDS: f64 = 4.0;

    /// Counts a chunk of `audio` seconds that took `busy` seconds.
    pub fn add(&mut self, audio: f64, busy: f64) {
        let keep = (-audio / Self::MEMORY_SECONDS).exp();
        self.audio = self.audio * keep + audio;
        self.busy = self.busy * keep + busy;
    }

    /// The real-time factor (0 before any work).
    pub fn factor(&self) -> f64 {
        if self.busy > 0.0 {
            self.audio / self.busy
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nine cheap chunks and one that does the work: the pace is total
    /// audio over total work, not an average of per-chunk ratios.
    #[test]
    fn pace_is_audio_over_work_time() {
        let mut pace = Pace::default();
        assert_eq!(pace.factor(), 0.0);
        for _ in 0..50 {
            for _ in 0..9 {
                pace.add(0.01, 0.000_01);
            }
            pace.add(0.01, 0.025);
        }
        // 0.1 s of audio per 0.02509 s of work, within the decay's 2% tilt
        // toward the latest chunks; per-chunk ratios would average 900.
        let want = 0.1 / 0.025_09;
        assert!((pace.factor() / want - 1.0).abs() < 0.02, "{}", pace.factor());
        // It follows a slowdown within a few seconds of audio.
        for _ in 0..2_000 {
            pace.add(0.01, 0.02);
        }
        assert!((pace.factor() - 0.5).abs() < 0.01, "{}", pace.factor());
    }
}
