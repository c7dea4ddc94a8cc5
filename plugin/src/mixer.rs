//! The audio thread's side of the plugin: everything `process()` touches,
//! allocated before processing starts. No allocation, lock, wait or log in
//! here, except the deliberate wait for the workers when the host renders
//! faster than real time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtrb::{Consumer, Producer};

use crate::delay::DelayLine;
use crate::params::ReverieParams;
use crate::render_pace::RenderPace;
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
    /// Time spent waiting for the worker since the mixer last asked.
    waited: Duration,
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
            waited: Duration::ZERO,
        }
    }

    /// Sends one input sample. If the worker has fallen so far behind that
    /// its ring is full, the stream restarts (a reset marker), because a
    /// dropped input sample would misalign every later output.
    #[inline]
    pub(crate) fn send(&mut self, x: f32, underruns: &AtomicU64) {
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

    /// The output sample due now. With `complete` (the host renders faster
    /// than real time), waits for the worker while it lives, so renders are
    /// complete and repeatable.
    #[inline]
    pub(crate) fn receive(&mut self, complete: bool, alive: &AtomicBool, underruns: &AtomicU64) -> f32 {
        let mut next = self.try_receive();
        if next.is_none() && complete && self.preroll == 0 && !self.marker_pending {
            let began = Instant::now();
            while alive.load(Ordering::Acquire) {
                next = self.try_receive();
                if next.is_some() || self.preroll > 0 {
                    break;
                }
                std::thread::yield_now();
            }
            self.waited += began.elapsed();
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

    /// The real worker loop around a job that stalls (it waits on a gate
    /// the test opens) while a live stream keeps coming: the input ring
    /// overflows, the missing output fades out and is counted, and once the
    /// job runs again the stream restarts and the job's output comes back,
    /// in step with the input.
    #[test]
    fn a_live_stream_recovers_after_the_worker_stalls() {
        use std::sync::mpsc;

        use crate::worker::{Job, Worker, WorkerFlags};

        /// Adds 1 to every sample, after waiting for the gate once.
        struct Gated(Option<mpsc::Receiver<()>>);

        impl Job for Gated {
            fn prepare(&mut self, _: crate::worker::Slack) {}
            fn process(&mut self, input: &[f32], output: &mut [f32]) {
                if let Some(gate) = self.0.take() {
                    // Closed until the test drops its end.
                    let _ = gate.recv();
                }
                for (o, i) in output.iter_mut().zip(input) {
                    *o = i + 1.0;
                }
            }
            fn reset(&mut self) {}
        }

        let (open, gate) = mpsc::channel::<()>();
        let (tx, worker_in) = rtrb::RingBuffer::new(4_096);
        let (worker_out, rx) = rtrb::RingBuffer::new(4_096);
        let flags = Arc::new(WorkerFlags::default());
        let _worker = Worker::spawn(
            "test-gated",
            Gated(Some(gate)),
            worker_in,
            worker_out,
            flags.clone(),
            48_000.0,
        )
        .expect("spawns");
        // Declared after the worker so that it is dropped (the gate opened)
        // before the worker is joined, also when an assertion fails.
        let open = open;
        let mut link = Link::new(tx, rx, 64, 48_000.0);
        let underruns = AtomicU64::new(0);
        // Three ring-fulls of live input while the job is stuck: nothing
        // comes back but silence.
        for i in 0..3 * 4_096 {
            link.send(i as f32, &underruns);
            assert_eq!(link.receive(false, &flags.alive, &underruns), 0.0, "sample {i}");
        }
        // One for the output that stopped, one for the input that overflowed.
        let lost = underruns.load(Ordering::Relaxed);
        assert!(lost >= 2, "only {lost} underruns counted");
        drop(open);
        // Live again, in blocks of 16 that start once the worker has read
        // everything sent, or cannot go on before its output is taken (a
        // stand-in for an audio clock slow enough for the worker): with 64
        // samples of headroom every output due was written two blocks ago.
        // The output returns to input + 1, 64 samples late.
        let (mut sent, mut back) = (Vec::new(), Vec::new());
        'blocks: for block in 0..20_000 {
            let mut turns = 0u64;
            while link.input.slots() < 4_096 && link.output.slots() < 4_096 {
                turns += 1;
                assert!(turns < 100_000_000, "the worker stopped reading");
                std::thread::yield_now();
            }
            for i in 0..16 {
                let x = ((block * 16 + i) % 1_000) as f32 * 1e-3;
                link.send(x, &underruns);
                sent.push(x);
                back.push(link.receive(false, &flags.alive, &underruns));
            }
            let n = back.len();
            if n > 4_000 && (n - 2_000..n).all(|t| back[t] == sent[t - 64] + 1.0) {
                break 'blocks;
            }
            assert!(block < 19_999, "the stream never came back");
        }
    }

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
