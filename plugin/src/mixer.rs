//! The audio thread's side of the plugin: everything `process()` touches,
//! allocated before processing starts. No allocation, lock, wait or log in
//! here, except the deliberate wait for the worker when rendering offline.

use std::sync::atomic::Ordering;

use rtrb::{Consumer, Producer};

use crate::delay::DelayLine;
use crate::params::ReverieParams;
use crate::status::Status;

/// How long the delta fades to dry (and back) around an underrun.
const FADE_MS: f32 = 5.0;

/// Mixes the dry signal with what the workers deliver.
pub struct Mixer {
    capture: Producer<f32>,
    deltas: Consumer<f32>,
    dry: Vec<DelayLine>,
    /// Delta samples still to output as silence before the stream's first
    /// one is due: the worker's headroom.
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

impl Mixer {
    /// A mixer for `channels` channels whose dry path is delayed by `latency`
    /// samples; the first `headroom` delta samples are silence.
    pub fn new(
        capture: Producer<f32>,
        deltas: Consumer<f32>,
        channels: usize,
        latency: usize,
        headroom: usize,
        host_rate: f32,
        offline: bool,
    ) -> Self {
        Self {
            capture,
            deltas,
            dry: (0..channels).map(|_| DelayLine::new(latency)).collect(),
            preroll: headroom,
            headroom,
            debt: 0,
            awaiting_marker: false,
            fade: 1.0,
            fade_step: 1.0 / (FADE_MS * 1e-3 * host_rate),
            last_delta: 0.0,
            offline,
        }
    }

    /// Processes one block in place; `channels` are the host's buffers.
    /// This is the whole signal path, top to bottom.
    pub fn process(&mut self, channels: &mut [&mut [f32]], params: &ReverieParams, status: &Status) {
        let frames = channels.first().map_or(0, |c| c.len());
        let count = channels.len().max(1) as f32;
        for i in 0..frames {
            // 1. Input, made safe: nothing non-finite reaches a model.
            let mut mono = 0.0;
            for c in channels.iter_mut() {
                if !c[i].is_finite() {
                    c[i] = 0.0;
                }
                mono += c[i];
            }
            // 2. To the dream worker. A full ring means it stalled; the
            //    underrun handling in step 3 deals with the consequence.
            let _ = self.capture.push(mono / count);
            // 3. The dream delta for the input `latency` samples ago.
            let delta = self.next_delta(status);
            // 4. Mix: dry delayed by the latency + strength x delta, then gain.
            let strength = params.strength.smoothed.next();
            let gain = params.output_gain.smoothed.next();
            for (c, dry) in channels.iter_mut().zip(self.dry.iter_mut()) {
                let out = (dry.process(c[i]) + strength * delta) * gain;
                c[i] = if out.is_finite() { out } else { 0.0 };
            }
        }
    }

    /// The dream delta due now.
    #[inline]
    fn next_delta(&mut self, status: &Status) -> f32 {
        if self.awaiting_marker {
            self.skip_to_marker();
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
        let ready = !self.awaiting_marker && self.debt == 0;
        let mut next = if ready { self.deltas.pop().ok() } else { None };
        if next.is_none() && self.offline {
            next = self.wait_for_worker(status);
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
                // Ramp the last delivered value down rather than jump to dry.
                self.fade = (self.fade - self.fade_step).max(0.0);
                self.last_delta * self.fade
            }
        }
    }

    fn skip_to_marker(&mut self) {
        while let Ok(v) = self.deltas.pop() {
            if v.is_nan() {
                self.awaiting_marker = false;
                return;
            }
        }
    }

    /// Rendering offline: wait for the worker so a bounce is complete and
    /// identical run to run. Gives up only if the worker has died.
    fn wait_for_worker(&mut self, status: &Status) -> Option<f32> {
        while status.dream_alive.load(Ordering::Acquire) {
            if self.awaiting_marker {
                self.skip_to_marker();
            } else {
                while self.debt > 0 && self.deltas.pop().is_ok() {
                    self.debt -= 1;
                }
                if self.debt == 0 {
                    if let Ok(v) = self.deltas.pop() {
                        return Some(v);
                    }
                }
            }
            std::thread::yield_now();
        }
        None
    }

    /// Clears all history and restarts the workers' streams.
    pub fn reset(&mut self) {
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
