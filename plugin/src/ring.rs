//! The ring protocol between the audio thread and a worker thread: both
//! halves in one place.
//!
//! Each worker has two preallocated SPSC rings (`rtrb`): input goes out,
//! one mono sample per host sample, and an equally long output stream
//! comes back. The audio thread's half is [`Link`], the worker's half is
//! [`run`]'s loop around a [`Job`].
//!
//! - The input ring carries finite samples; a NaN marks a reset (a new
//!   stream: the host reset the plugin, or input was lost because the ring
//!   was full). The worker answers a marker by resetting its job and
//!   putting a NaN into the output ring, so the audio thread knows where the
//!   new stream's output begins; output before the last echo belongs to an
//!   old stream and is dropped.
//! - The first `headroom` output samples of a stream are silence on the
//!   audio side (the preroll): the worker's headroom, part of the latency.
//! - A sample the worker has not delivered when it is due is an underrun:
//!   the last value fades out over 5 ms (and back in afterwards), the
//!   stretch is counted, and the late samples are dropped when they come
//!   so the stream stays aligned. When the host renders faster than real
//!   time the audio side waits for the worker instead.
//! - If the input ring is full (the worker fell seconds behind), the input
//!   that does not fit is lost; the audio side then starts a new stream
//!   with a marker as soon as one fits, and the worker skips the stale
//!   backlog before that marker unprocessed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtrb::{Consumer, Producer};

use crate::job::{Job, Pace, Slack, WorkerFlags};

/// How long a worker's stream fades out (and back in) around an underrun.
const FADE_MS: f32 = 5.0;

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
    pub(crate) waited: Duration,
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

    /// Restarts the worker's stream (a reset marker).
    pub(crate) fn reset(&mut self) {
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

/// Most samples handled per loop turn.
const CHUNK: usize = 1024;

/// The worker's loop: reads input in chunks, runs the job, hands the output
/// back, until `stop` is set.
pub(crate) fn run(
    job: &mut impl Job,
    input: &mut Consumer<f32>,
    output: &mut Producer<f32>,
    flags: &WorkerFlags,
    stop: &AtomicBool,
    host_rate: f32,
) {
    let mut inp = vec![0.0f32; CHUNK];
    let mut out = vec![0.0f32; CHUNK];
    let mut pace = Pace::default();
    // Waiting input known to hold no reset marker (see skip_stale_input).
    let mut clean = 0;
    let capacity = output.buffer().capacity();
    while !stop.load(Ordering::Acquire) {
        job.prepare(Slack {
            queued_output: capacity - output.slots(),
        });
        skip_stale_input(job, input, output, &mut clean);
        let n = input.slots().min(output.slots()).min(CHUNK);
        if n == 0 {
            // Idle: nothing to do until the audio thread sends more.
            let slack = (capacity - output.slots()) as f64 / f64::from(host_rate);
            std::thread::sleep(job.idle_wait(slack));
            continue;
        }
        let chunk = input.read_chunk(n).expect("n slots are readable");
        let (a, b) = chunk.as_slices();
        inp[..a.len()].copy_from_slice(a);
        inp[a.len()..n].copy_from_slice(b);
        chunk.commit_all();
        clean = clean.saturating_sub(n);
        let began = Instant::now();
        // Split at reset markers so each segment belongs to one stream.
        let mut start = 0;
        while start < n {
            let end = inp[start..n]
                .iter()
                .position(|v| v.is_nan())
                .map_or(n, |p| start + p);
            job.process(&inp[start..end], &mut out[start..end]);
            // A NaN on the way back would read as a reset marker.
            for v in &mut out[start..end] {
                if !v.is_finite() {
                    *v = 0.0;
                }
            }
            if end < n {
                job.reset();
                out[end] = f32::NAN;
            }
            start = end + 1;
        }
        let slots = output.write_chunk_uninit(n).expect("slots were counted");
        slots.fill_from_iter(out[..n].iter().copied());
        pace.add(n as f64 / f64::from(host_rate), began.elapsed().as_secs_f64());
        flags
            .realtime_factor
            .store(pace.factor() as f32, Ordering::Relaxed);
    }
}

/// After a stall the input ring can hold seconds of audio followed by a
/// reset marker. Everything before the last marker belongs to streams whose
/// output the audio thread discards anyway, so it is dropped unprocessed
/// (the markers are echoed): the new stream starts at once instead of after
/// the worker has worked through the backlog.
fn skip_stale_input(
    job: &mut impl Job,
    input: &mut Consumer<f32>,
    output: &mut Producer<f32>,
    clean: &mut usize,
) {
    let waiting = input.slots();
    if waiting <= CHUNK {
        return;
    }
    let Ok(chunk) = input.read_chunk(waiting) else {
        return;
    };
    let (a, b) = chunk.as_slices();
    let at = |i: usize| if i < a.len() { a[i] } else { b[i - a.len()] };
    // The first `clean` samples were scanned on an earlier turn: while the
    // worker is behind, each sample is looked at once, not once per turn.
    let from = (*clean).min(waiting);
    let Some(last) = (from..waiting).rev().find(|&i| at(i).is_nan()) else {
        *clean = waiting;
        return;
    };
    let markers = (from..=last).filter(|&i| at(i).is_nan()).count();
    if output.slots() < markers {
        *clean = from;
        return;
    }
    chunk.commit(last + 1);
    *clean = waiting - last - 1;
    job.reset();
    for _ in 0..markers {
        let _ = output.push(f32::NAN);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::worker::Worker;

    /// Counts what it is asked to do; outputs its input plus one.
    #[derive(Default)]
    struct Counting {
        processed: usize,
        resets: usize,
    }

    impl Job for Counting {
        fn prepare(&mut self, _: Slack) {}
        fn process(&mut self, input: &[f32], output: &mut [f32]) {
            self.processed += input.len();
            for (o, i) in output.iter_mut().zip(input) {
                *o = i + 1.0;
            }
        }
        fn reset(&mut self) {
            self.resets += 1;
        }
    }

    #[test]
    fn a_backlog_before_a_marker_is_skipped_and_the_markers_echoed() {
        let (mut tx, mut input) = rtrb::RingBuffer::new(4 * CHUNK);
        let (mut output, mut rx) = rtrb::RingBuffer::new(4 * CHUNK);
        for i in 0..2 * CHUNK {
            tx.push(if i == 100 { f32::NAN } else { 0.5 }).unwrap();
        }
        tx.push(f32::NAN).unwrap();
        for _ in 0..10 {
            tx.push(2.0).unwrap();
        }
        let mut job = Counting::default();
        let mut clean = 0;
        skip_stale_input(&mut job, &mut input, &mut output, &mut clean);
        assert_eq!((job.processed, job.resets), (0, 1));
        assert_eq!(input.slots(), 10, "only the new stream is left");
        assert_eq!(clean, 10, "and it holds no marker");
        let echoed: Vec<f32> = std::iter::from_fn(|| rx.pop().ok()).collect();
        assert_eq!(echoed.len(), 2);
        assert!(echoed.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn a_short_queue_or_one_without_a_marker_is_left_alone() {
        let (mut tx, mut input) = rtrb::RingBuffer::new(4 * CHUNK);
        let (mut output, rx) = rtrb::RingBuffer::<f32>::new(4 * CHUNK);
        for _ in 0..3 * CHUNK {
            tx.push(0.25).unwrap();
        }
        let mut job = Counting::default();
        let mut clean = 0;
        skip_stale_input(&mut job, &mut input, &mut output, &mut clean);
        assert_eq!((input.slots(), rx.slots(), job.resets), (3 * CHUNK, 0, 0));
        assert_eq!(clean, 3 * CHUNK);
        // Under a chunk waiting: the marker is handled in order by `run`.
        let (mut tx, mut input) = rtrb::RingBuffer::new(4 * CHUNK);
        tx.push(f32::NAN).unwrap();
        tx.push(0.25).unwrap();
        let mut clean = 0;
        skip_stale_input(&mut job, &mut input, &mut output, &mut clean);
        assert_eq!((input.slots(), job.resets), (2, 0));
    }

    /// A marker arriving after the backlog was scanned is still found, and
    /// the scanned part is trusted: a NaN planted in it (which the audio
    /// thread never sends unannounced) is not looked for again.
    #[test]
    fn only_new_input_is_scanned_for_markers() {
        let (mut tx, mut input) = rtrb::RingBuffer::new(8 * CHUNK);
        let (mut output, mut rx) = rtrb::RingBuffer::new(8 * CHUNK);
        let mut job = Counting::default();
        let mut clean = 0;
        for _ in 0..2 * CHUNK {
            tx.push(0.5).unwrap();
        }
        skip_stale_input(&mut job, &mut input, &mut output, &mut clean);
        assert_eq!((clean, job.resets), (2 * CHUNK, 0));
        // `run` reads a chunk: the clean count follows the read position.
        input.read_chunk(CHUNK).unwrap().commit_all();
        clean -= CHUNK;
        tx.push(f32::NAN).unwrap();
        for _ in 0..CHUNK {
            tx.push(1.0).unwrap();
        }
        skip_stale_input(&mut job, &mut input, &mut output, &mut clean);
        assert_eq!((job.resets, input.slots(), clean), (1, CHUNK, CHUNK));
        assert!(rx.pop().unwrap().is_nan() && rx.pop().is_err());
        // Told that 2 chunks are clean, it does not look there again.
        let (mut tx, mut input) = rtrb::RingBuffer::new(8 * CHUNK);
        tx.push(f32::NAN).unwrap();
        for _ in 0..2 * CHUNK {
            tx.push(0.5).unwrap();
        }
        let mut clean = 2 * CHUNK;
        skip_stale_input(&mut job, &mut input, &mut output, &mut clean);
        assert_eq!(
            (job.resets, input.slots(), clean),
            (1, 2 * CHUNK + 1, 2 * CHUNK + 1)
        );
    }

    /// The real worker loop around a job that stalls (it waits on a gate
    /// the test opens) while a live stream keeps coming: the input ring
    /// overflows, the missing output fades out and is counted, and once the
    /// job runs again the stream restarts and the job's output comes back,
    /// in step with the input.
    #[test]
    fn a_live_stream_recovers_after_the_worker_stalls() {
        use std::sync::mpsc;

        use crate::job::{Job, WorkerFlags};
        use crate::worker::Worker;

        /// Adds 1 to every sample, after waiting for the gate once.
        struct Gated(Option<mpsc::Receiver<()>>);

        impl Job for Gated {
            fn prepare(&mut self, _: crate::job::Slack) {}
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
    /// marker; and the worker reset its job for each marker. The real
    /// worker loop, held back by a gate until everything was sent; the
    /// audio side waits for it (as when rendering).
    #[test]
    fn output_of_superseded_streams_never_plays() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::mpsc;

        /// Scales by ten; counts resets; waits for the gate once.
        struct Scaled(Option<mpsc::Receiver<()>>, Arc<AtomicUsize>);
        impl Job for Scaled {
            fn prepare(&mut self, _: Slack) {
                if let Some(gate) = self.0.take() {
                    let _ = gate.recv();
                }
            }
            fn process(&mut self, input: &[f32], output: &mut [f32]) {
                for (o, i) in output.iter_mut().zip(input) {
                    *o = i * 10.0;
                }
            }
            fn reset(&mut self) {
                self.1.fetch_add(1, Ordering::SeqCst);
            }
        }

        let (open, gate) = mpsc::channel::<()>();
        let resets = Arc::new(AtomicUsize::new(0));
        let (tx, worker_in) = rtrb::RingBuffer::new(64);
        let (worker_out, rx) = rtrb::RingBuffer::new(64);
        let flags = Arc::new(WorkerFlags::default());
        let _worker = Worker::spawn(
            "test-superseded",
            Scaled(Some(gate), resets.clone()),
            worker_in,
            worker_out,
            flags.clone(),
            48_000.0,
        )
        .expect("spawns");
        let open = open;
        let mut link = Link::new(tx, rx, 4, 48_000.0);
        let underruns = AtomicU64::new(0);
        for _ in 0..3 {
            link.send(1.0, &underruns);
        }
        link.reset();
        link.send(2.0, &underruns);
        link.reset();
        for _ in 0..10 {
            link.send(3.0, &underruns);
        }
        drop(open);
        let got: Vec<f32> = (0..14)
            .map(|_| link.receive(true, &flags.alive, &underruns))
            .collect();
        let mut want = vec![0.0; 4];
        want.extend([30.0; 10]);
        assert_eq!(got, want);
        assert_eq!(underruns.load(Ordering::Relaxed), 0);
        assert_eq!(resets.load(Ordering::SeqCst), 2, "one job reset per marker");
    }
}
