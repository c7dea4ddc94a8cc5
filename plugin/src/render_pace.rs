//! Whether the host is rendering faster than real time, so that a block
//! must be completed by waiting for the workers (a bounce) rather than
//! played on time (a live stream).
//!
//! Hosts say so in different ways, or not at all: CLAP's render extension
//! and VST3's `setupProcessing` reach the plugin at activation
//! ([`BufferConfig::process_mode`](nice_plug::prelude::BufferConfig)), VST3
//! hosts such as Ardour mark each `process()` call instead (see
//! [`crate::vst3_entry`]), and some hosts just call `process()` as fast as
//! they can. [`RenderPace`] catches the last kind from the pace of the
//! calls: the wall clock is read once per block, outside the sample loop.

use std::time::{Duration, Instant};

/// How far the audio handed to the host may run ahead of the wall clock
/// before the host counts as rendering faster than real time. A real-time
/// host is never more than its buffering ahead (a few blocks; REAPER's
/// anticipative processing renders up to 0.2 s ahead by default), while an
/// offline render gains that much within a fraction of a second.
const FAST_LEAD_SECONDS: f64 = 0.25;

/// Blocks of buffering a real-time host may be ahead by, on top of
/// [`FAST_LEAD_SECONDS`], for hosts with very large blocks.
const HOST_BUFFERS: f64 = 2.0;

/// The wall clock is counted this much faster than the audio clock, so an
/// audio interface whose clock runs a little fast never accumulates a lead
/// in a long live session.
const CLOCK_SLACK: f64 = 0.01;

/// Tracks how far the host's own demand for audio runs ahead of the wall
/// clock. Time the plugin itself spent waiting for its workers is not the
/// host's pace and is left out, so a bounce that the workers slow down
/// still counts as one.
#[derive(Debug, Clone)]
pub struct RenderPace {
    rate: f64,
    /// Seconds of audio handed out ahead of the wall clock.
    lead: f64,
    /// When the previous block started.
    last: Option<Instant>,
    /// How long the previous block waited for the workers.
    waited: Duration,
}

impl RenderPace {
    /// A pace tracker for a stream at `rate` Hz.
    pub fn new(rate: f32) -> Self {
        Self {
            rate: f64::from(rate.max(1.0)),
            lead: 0.0,
            last: None,
            waited: Duration::ZERO,
        }
    }

    /// Counts a block of `frames` starting at `now` and says whether the
    /// host is rendering faster than real time.
    pub fn start_block(&mut self, now: Instant, frames: usize) -> bool {
        if let Some(last) = self.last {
            let gap = now.saturating_duration_since(last).saturating_sub(self.waited);
            self.lead = (self.lead - gap.as_secs_f64() * (1.0 + CLOCK_SLACK)).max(0.0);
        }
        self.last = Some(now);
        self.waited = Duration::ZERO;
        let block = frames as f64 / self.rate;
        self.lead += block;
        self.lead > FAST_LEAD_SECONDS + HOST_BUFFERS * block + block
    }

    /// Records how long the block just processed waited for the workers.
    pub fn waited(&mut self, wait: Duration) {
        self.waited += wait;
    }

    /// Forgets the history (the host stopped and restarts the stream).
    pub fn reset(&mut self) {
        self.lead = 0.0;
        self.last = None;
        self.waited = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: f32 = 48_000.0;

    /// Feeds blocks of `frames` at the wall-clock times `at` (seconds from
    /// the start) and returns the index of the first block that counted as
    /// fast.
    fn first_fast(frames: usize, at: impl IntoIterator<Item = f64>) -> Option<usize> {
        let t0 = Instant::now();
        let mut pace = RenderPace::new(RATE);
        at.into_iter()
            .position(|t| pace.start_block(t0 + Duration::from_secs_f64(t), frames))
    }

    /// Deterministic jitter in [-1, 1).
    fn jitter(i: usize) -> f64 {
        let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
        x as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    #[test]
    fn a_live_stream_never_counts_as_fast() {
        let block = 256.0 / f64::from(RATE);
        // Ten minutes of regular callbacks, of callbacks each up to 45% of
        // a block early or late (an interface clocks them, so the jitter
        // does not add up), of blocks delivered two at a time (a
        // double-buffered host), and of an interface clock 0.5% fast.
        let blocks = (600.0 / block) as usize;
        let regular = (0..blocks).map(|i| i as f64 * block);
        assert_eq!(first_fast(256, regular), None);
        let jittery = (0..blocks).map(|i| (i as f64 + 0.45 * jitter(i)).max(0.0) * block);
        assert_eq!(first_fast(256, jittery), None);
        let pairs = (0..blocks).map(|i| (i / 2 * 2) as f64 * block);
        assert_eq!(first_fast(256, pairs), None);
        let fast_clock = (0..blocks).map(|i| i as f64 * block / 1.005);
        assert_eq!(first_fast(256, fast_clock), None);
        // A host that renders 0.2 s ahead (REAPER's anticipative default).
        let ahead = (0..blocks).map(|i| (i as f64 * block - 0.2).max(0.0));
        assert_eq!(first_fast(256, ahead), None);
    }

    #[test]
    fn a_bounce_counts_as_fast_well_within_the_workers_headroom() {
        let block = 512.0 / f64::from(RATE);
        // 100x, 4x and 1.5x real time: fast once the lead passes the
        // threshold, long before the 0.5 s of headroom the workers have.
        for speed in [100.0, 4.0, 1.5] {
            let at = (0..100_000).map(|i| i as f64 * block / speed);
            let first = first_fast(512, at).expect("detected") as f64 * block;
            let lead = first * (1.0 - 1.0 / speed);
            assert!(
                lead < FAST_LEAD_SECONDS + 4.0 * block + 0.01,
                "{speed}x: fast only after {first} s of audio"
            );
        }
    }

    #[test]
    fn waiting_for_the_workers_does_not_slow_the_hosts_pace() {
        // An offline host (no gap of its own) whose blocks each wait twice
        // their length for the workers: still fast, every block after the
        // first few.
        let t0 = Instant::now();
        let mut pace = RenderPace::new(RATE);
        let block = Duration::from_secs_f64(512.0 / f64::from(RATE));
        let mut now = t0;
        let mut fast = Vec::new();
        for _ in 0..1_000 {
            fast.push(pace.start_block(now, 512));
            let wait = block * 2;
            pace.waited(wait);
            now += wait + Duration::from_micros(20);
        }
        let first = fast.iter().position(|&f| f).expect("detected");
        assert!(first < 40, "first fast block {first}");
        assert!(fast[first..].iter().all(|&f| f));
    }

    #[test]
    fn a_pause_or_a_reset_starts_over() {
        let t0 = Instant::now();
        let mut pace = RenderPace::new(RATE);
        let mut t = t0;
        let mut fast = false;
        for _ in 0..200 {
            fast = pace.start_block(t, 512);
            t += Duration::from_micros(10);
        }
        assert!(fast);
        // Ten seconds without a call: the host is live again.
        t += Duration::from_secs(10);
        assert!(!pace.start_block(t, 512));
        for _ in 0..200 {
            pace.start_block(t, 512);
            t += Duration::from_micros(10);
        }
        pace.reset();
        assert!(!pace.start_block(t, 512));
    }
}
