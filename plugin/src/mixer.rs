//! The audio thread's side of the plugin: everything `process()` touches,
//! allocated before processing starts. No allocation, lock, wait or log in
//! here, except the deliberate wait for the workers when the host renders
//! faster than real time.

use std::sync::atomic::Ordering;
use std::time::Instant;

use reverie_engine::streaming::MAX_INPUT;
use rtrb::Producer;

use crate::delay::DelayLine;
use crate::params::ReverieParams;
use crate::render_pace::RenderPace;
use crate::ring::Link;
use crate::status::Status;
use crate::telemetry::ScopeFrame;

/// What the host says about the block being processed.
#[derive(Debug, Clone, Copy)]
pub struct BlockClock {
    /// The wall clock at the start of the block (read once per block).
    pub now: Instant,
    /// Whether the host marked this very call offline (`Some(true)`) or
    /// live (`Some(false)`); `None` where it marks only activations.
    pub offline: Option<bool>,
}

/// Mixes the dry signal with what the workers deliver.
pub struct Mixer {
    dream: Link,
    wavenet: Link,
    dry: Vec<DelayLine>,
    /// Whether the host activated the plugin for offline rendering.
    offline: bool,
    pace: RenderPace,
}

impl Mixer {
    /// A mixer for `dry.len()` channels at `host_rate`; `offline` is the
    /// render mode the host activated it in.
    pub fn new(dream: Link, wavenet: Link, dry: Vec<DelayLine>, offline: bool, host_rate: f32) -> Self {
        Self {
            dream,
            wavenet,
            dry,
            offline,
            pace: RenderPace::new(host_rate),
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
        clock: BlockClock,
    ) {
        let frames = channels.first().map_or(0, |c| c.len());
        let count = channels.len().max(1) as f32;
        // 0. A render (the host says so, per call or at activation, or it
        //    asks for audio faster than real time) waits for the workers;
        //    a live stream never does.
        let fast = self.pace.start_block(clock.now, frames);
        let complete = clock.offline.unwrap_or(self.offline) || fast;
        status.rendering.store(complete, Ordering::Relaxed);
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
                .receive(complete, &status.dream.alive, &status.underruns);
            let generated = self
                .wavenet
                .receive(complete, &status.wavenet.alive, &status.underruns);
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
        let waited = std::mem::take(&mut self.dream.waited) + std::mem::take(&mut self.wavenet.waited);
        self.pace.waited(waited);
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
    use std::sync::{Arc, RwLock};
    use std::time::Duration;

    use super::*;

    /// A mono mixer whose workers never answer (their rings are kept but
    /// never served), with `headroom` samples of preroll.
    fn silent_workers(headroom: usize) -> (Mixer, Vec<rtrb::Consumer<f32>>, Vec<rtrb::Producer<f32>>) {
        let mut keep_in = Vec::new();
        let mut keep_out = Vec::new();
        let mut link = || {
            let (tx, worker_in) = rtrb::RingBuffer::new(1 << 16);
            let (worker_out, rx) = rtrb::RingBuffer::new(1 << 16);
            keep_in.push(worker_in);
            keep_out.push(worker_out);
            Link::new(tx, rx, headroom, 48_000.0)
        };
        let (dream, wavenet) = (link(), link());
        let mixer = Mixer::new(dream, wavenet, vec![DelayLine::new(0)], false, 48_000.0);
        (mixer, keep_in, keep_out)
    }

    /// A live host (blocks at the pace of the clock) is never made to wait,
    /// even when the workers deliver nothing: the block plays and the
    /// missing samples are counted.
    #[test]
    fn a_live_stream_is_never_made_to_wait() {
        let (mut mixer, _in, _out) = silent_workers(64);
        let params = ReverieParams::new(Arc::new(RwLock::new(Vec::new())));
        let status = Status::default();
        status.dream.alive.store(true, Ordering::Relaxed);
        status.wavenet.alive.store(true, Ordering::Relaxed);
        let block = Duration::from_secs_f64(256.0 / 48_000.0);
        let mut now = Instant::now();
        for b in 0..400 {
            let mut x = vec![0.25f32; 256];
            mixer.process(
                &mut [&mut x],
                &params,
                &status,
                None,
                BlockClock { now, offline: None },
            );
            assert!(
                !status.rendering.load(Ordering::Relaxed),
                "block {b} taken for a render"
            );
            assert!(x.iter().all(|v| v.is_finite()), "block {b}");
            now += block;
        }
        assert!(status.underruns.load(Ordering::Relaxed) > 0);
    }

    /// A host that renders without saying so (blocks far faster than the
    /// clock), one that marks its calls offline, and one activated offline
    /// are all rendered completely; one that marks its calls live is not,
    /// while it keeps pace.
    #[test]
    fn renders_are_recognised_however_the_host_says_so() {
        let params = ReverieParams::new(Arc::new(RwLock::new(Vec::new())));
        let status = Status::default();
        // The workers are dead, so a complete render does not wait.
        let block = Duration::from_secs_f64(512.0 / 48_000.0);
        let rendering = |mixer: &mut Mixer, offline: Option<bool>, step: Duration| {
            let mut now = Instant::now();
            let mut flags = Vec::new();
            for _ in 0..200 {
                let mut x = vec![0.0f32; 512];
                mixer.process(&mut [&mut x], &params, &status, None, BlockClock { now, offline });
                flags.push(status.rendering.load(Ordering::Relaxed));
                now += step;
            }
            flags
        };
        let (mut fast, _i, _o) = silent_workers(64);
        let flags = rendering(&mut fast, None, Duration::from_micros(50));
        let first = flags.iter().position(|&f| f).expect("a fast host is detected");
        assert!(first < 40 && flags[first..].iter().all(|&f| f), "{flags:?}");
        let (mut marked, _i, _o) = silent_workers(64);
        assert!(rendering(&mut marked, Some(true), block).iter().all(|&f| f));
        let (mut live, _i, _o) = silent_workers(64);
        assert!(rendering(&mut live, Some(false), block).iter().all(|&f| !f));
        let (dream, wavenet) = {
            let (mixer, i, o) = silent_workers(64);
            drop((i, o));
            (mixer.dream, mixer.wavenet)
        };
        let mut activated = Mixer::new(dream, wavenet, vec![DelayLine::new(0)], true, 48_000.0);
        assert!(rendering(&mut activated, None, block).iter().all(|&f| f));
    }
}
