//! The audio thread's side of the plugin: everything `process()` touches,
//! allocated before processing starts. No allocation, lock, wait or log in
//! here, except the deliberate wait for the workers when rendering offline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rtrb::{Consumer, Producer};

use crate::delay::DelayLine;
use crate::params::ReverieParams;
use crate::status::Status;
use crate::telemetry::ScopeFrame;

/// How long a worker's stream fades out (and back in) around an underrun.
const FADE_MS: f32 = 5.0;
/// Captured input is clipped to this (+24 dBFS) so no sum overflows.
const MAX_INPUT: f32 = 16.0;

/// One worker's two rings as the audio thread sees them: input goes out,
/// an equally long output stream comes back.
pub struct Link {
    input: Producer<f32>,
    output: Consumer<f32>,
    /// Output samples still to play as silence before the stream's first
    /// one is due: the worker's headroom.
    preroll: usize,
    headroom: usize,
    /// Output samples that arrived too late and must be dropped to stay aligned.
    debt: usize,
    /// A reset marker could not be sent yet (the input ring was full).
    marker_pending: bool,
    /// Reset markers sent but not yet echoed: output before the last echo
    /// belongs to an old stream and is discarded.
    markers_outstanding: u32,
    fade: f32,
    fade_step: f32,
    last: f32,
}

impl Link {
    /// Wraps the audio thread's ends of a worker's rings; the first
    /// `headroom` output samples are silence.
    pub fn new(input: Producer<f32>, output: Consumer<f32>, headroom: usize, host_rate: f32) -> Self {
        Self {
            input,
            output,
            preroll: headroom,
            headroom,
            debt: 0,
            marker_pending: false,
            markers_outstanding: 0,
            fade: 1.0,
            fade_step: 1.0 / (FADE_MS * 1e-3 * host_rate),
            last: 0.0,
        }
    }

    /// Sends one input sample. If the worker has fallen so far behind that
    /// its ring is full, the stream restarts (a reset marker), because a
    /// dropped input sample would misalign every later output.
    #[inline]
    fn send(&mut self, x: f32, underruns: &AtomicU64) {
        if self.marker_pending && !self.send_marker() {
            return;
        }
        if self.input.push(x).is_err() {
            underruns.fetch_add(1, Ordering::Relaxed);
            self.marker_pending = true;
        }
    }

    /// Starts a new stream: a reset marker, then silence for the worker's
    /// headroom. False (and still pending) while the input ring is full.
    fn send_marker(&mut self) -> bool {
        if self.input.push(f32::NAN).is_err() {
            self.marker_pending = true;
            return false;
        }
        self.marker_pending = false;
        self.markers_outstanding += 1;
        self.preroll = self.headroom;
        self.debt = 0;
        true
    }

    /// The output sample due now. Offline, waits for the worker (while it
    /// lives) so renders are complete and repeatable.
    #[inline]
    fn receive(&mut self, offline: bool, alive: &AtomicBool, underruns: &AtomicU64) -> f32 {
        let mut next = self.try_receive();
        if next.is_none() && offline && self.preroll == 0 && !self.marker_pending {
            while alive.load(Ordering::Acquire) {
                next = self.try_receive();
                if next.is_some() || self.preroll > 0 {
                    break;
                }
                std::thread::yield_now();
            }
        }
        match next {
            Some(v) => {
                self.fade = (self.fade + self.fade_step).min(1.0);
                self.last = v;
                v * self.fade
            }
            None if self.preroll > 0 => {
                self.preroll -= 1;
                0.0
            }
            None => {
                if self.fade == 1.0 {
                    underruns.fetch_add(1, Ordering::Relaxed);
                }
                if self.markers_outstanding == 0 && !self.marker_pending {
                    self.debt += 1;
                }
                // Ramp the last delivered value down rather than jump to zero.
                self.fade = (self.fade - self.fade_step).max(0.0);
                self.last * self.fade
            }
        }
    }

    fn try_receive(&mut self) -> Option<f32> {
        // Input was lost: what is in the ring no longer lines up.
        if self.marker_pending {
            return None;
        }
        while self.markers_outstanding > 0 {
            match self.output.pop() {
                Ok(v) if v.is_nan() => self.markers_outstanding -= 1,
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        if self.preroll > 0 {
            return None;
        }
        while self.debt > 0 && self.output.pop().is_ok() {
            self.debt -= 1;
        }
        if self.debt > 0 {
            return None;
        }
        self.output.pop().ok()
    }

    fn reset(&mut self) {
        self.fade = 1.0;
        self.last = 0.0;
        if !self.send_marker() {
            // The marker goes out with the next sample that fits; until
            // then nothing that comes back belongs to the new stream.
            self.preroll = self.headroom;
            self.debt = 0;
        }
    }
}

/// Mixes the dry signal with what the workers deliver.
pub struct Mixer {
    dream: Link,
    wavenet: Link,
    dry: Vec<DelayLine>,
    offline: bool,
}

impl Mixer {
    /// A mixer for `dry.len()` channels.
    pub fn new(dream: Link, wavenet: Link, dry: Vec<DelayLine>, offline: bool) -> Self {
        Self {
            dream,
            wavenet,
            dry,
            offline,
        }
    }

    /// Processes one block in place; `channels` are the host's buffers.
    /// This is the whole signal path, top to bottom. With `scope` (the
    /// editor is open) every output frame is also sent to the editor.
    pub fn process(
        &mut self,
        channels: &mut [&mut [f32]],
        params: &ReverieParams,
        status: &Status,
        mut scope: Option<&mut Producer<ScopeFrame>>,
    ) {
        let frames = channels.first().map_or(0, |c| c.len());
        let count = channels.len().max(1) as f32;
        for i in 0..frames {
            // 1. Input, made safe: nothing non-finite or absurd reaches a model.
            let mut mono = 0.0;
            for c in channels.iter_mut() {
                if !c[i].is_finite() {
                    c[i] = 0.0;
                }
                mono += c[i].clamp(-MAX_INPUT, MAX_INPUT);
            }
            let mono = mono / count;
            // 2. To the workers: the dreamer and the WaveNet.
            self.dream.send(mono, &status.underruns);
            self.wavenet.send(mono, &status.underruns);
            // 3. What they return: the dream delta for the input `latency`
            //    samples ago, and the WaveNet's latest audio.
            let delta = self
                .dream
                .receive(self.offline, &status.dream.alive, &status.underruns);
            let generated = self
                .wavenet
                .receive(self.offline, &status.wavenet.alive, &status.underruns);
            // 4. Mix: dry delayed by the latency + strength x delta
            //    + WaveNet level x generated, then output gain.
            let strength = params.strength.smoothed.next();
            let level = params.wavenet_level.smoothed.next();
            let gain = params.output_gain.smoothed.next();
            let wet = strength * delta + level * generated;
            let (mut dry_sum, mut out_sum) = (0.0, 0.0);
            for (c, dry) in channels.iter_mut().zip(self.dry.iter_mut()) {
                let d = dry.process(c[i]);
                let out = (d + wet) * gain;
                c[i] = if out.is_finite() { out } else { 0.0 };
                dry_sum += d;
                out_sum += c[i];
            }
            // 5. For the editor's pictures: what went in and what came out.
            if let Some(scope) = scope.as_deref_mut() {
                let _ = scope.push([dry_sum / count, out_sum / count]);
            }
        }
    }

    /// Clears all history and restarts the workers' streams.
    pub fn reset(&mut self) {
        for d in &mut self.dry {
            d.reset();
        }
        self.dream.reset();
        self.wavenet.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two resets before the worker answers either: only the newest
    /// stream's output may come through, after the headroom, and never a
    /// marker.
    #[test]
    fn output_of_superseded_streams_never_plays() {
        let (tx, mut worker_in) = rtrb::RingBuffer::new(64);
        let (mut worker_out, rx) = rtrb::RingBuffer::new(64);
        let mut link = Link::new(tx, rx, 4, 48_000.0);
        let underruns = AtomicU64::new(0);
        let alive = AtomicBool::new(true);
        for _ in 0..3 {
            link.send(1.0, &underruns);
        }
        link.reset();
        link.send(2.0, &underruns);
        link.reset();
        for _ in 0..10 {
            link.send(3.0, &underruns);
        }
        // The worker: echoes markers, scales samples.
        while let Ok(v) = worker_in.pop() {
            worker_out.push(v * 10.0).unwrap();
        }
        let got: Vec<f32> = (0..14).map(|_| link.receive(false, &alive, &underruns)).collect();
        let mut want = vec![0.0; 4];
        want.extend([30.0; 10]);
        assert_eq!(got, want);
        assert_eq!(underruns.load(Ordering::Relaxed), 0);
    }
}
