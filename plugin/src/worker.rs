//! A worker thread between two SPSC rings: it reads the audio thread's
//! mono input, turns it into an equally long stream of output samples, and
//! hands them back. The two workers (dreaming, WaveNet) are both this loop
//! around a different [`Job`].
//!
//! Ring protocol: the input ring carries finite samples; a NaN marks a
//! reset, which the worker answers by resetting its job and putting a NaN
//! into the output ring, so the audio thread knows where the new stream's
//! output begins.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use atomic_float::AtomicF32;
use rtrb::{Consumer, Producer};

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
}

/// Flags a worker shares with the audio thread and the editor.
#[derive(Default)]
pub struct WorkerFlags {
    /// Whether the thread is running (false after a panic or a stop).
    pub alive: AtomicBool,
    /// Seconds of audio processed per wall-clock second (smoothed).
    pub realtime_factor: AtomicF32,
}

/// A running worker thread; dropping it stops and joins the thread.
pub struct Worker {
    handle: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

/// Most samples handled per loop turn.
const CHUNK: usize = 1024;

impl Worker {
    /// Starts `job` on a thread named `name`.
    pub fn spawn(
        name: &str,
        mut job: impl Job,
        mut input: Consumer<f32>,
        mut output: Producer<f32>,
        flags: Arc<WorkerFlags>,
        host_rate: f32,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        flags.alive.store(true, Ordering::Release);
        let handle = std::thread::Builder::new().name(name.into()).spawn(move || {
            // A panic must never reach the audio thread: it just sees the
            // worker die and fades this stream out.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                run(&mut job, &mut input, &mut output, &flags, &stopping, host_rate)
            }));
            flags.alive.store(false, Ordering::Release);
        })?;
        Ok(Self {
            handle: Some(handle),
            stop,
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(
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
            std::thread::sleep(Duration::from_millis(1));
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
    use super::*;

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
}
