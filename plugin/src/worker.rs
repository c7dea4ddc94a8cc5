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
use std::time::Duration;

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

/// A running worker thread; dropping it stops and joins the thread.
pub struct Worker {
    handle: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

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
            below_the_audio_thread();
            // A panic must never reach the audio thread: it just sees the
            // worker die and fades this stream out.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                crate::ring::run(&mut job, &mut input, &mut output, &flags, &stopping, host_rate)
            }));
            flags.alive.store(false, Ordering::Release);
        })?;
        Ok(Self {
            handle: Some(handle),
            stop,
        })
    }
}

/// Lowers the calling thread's priority under the host's threads, so a
/// worker never competes with the audio thread (hosts run that one at a
/// real-time priority; a lowered worker also yields to the host's own
/// normal-priority work). Threads it starts (candle's pool, started by
/// the first dream) inherit it.
fn below_the_audio_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread; raising one's own
    // niceness needs no privilege and cannot fail in a harmful way.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, WORKER_NICENESS);
    }
    #[cfg(target_os = "macos")]
    // SAFETY: sets the calling thread's quality-of-service class.
    unsafe {
        libc::pthread_set_qos_class_self_np(libc::qos_class_t::QOS_CLASS_UTILITY, 0);
    }
}

/// The niceness of worker threads on Linux (0 normal, 19 lowest).
#[cfg(target_os = "linux")]
pub const WORKER_NICENESS: libc::c_int = 5;

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker runs below the threads that start it (the host's audio
    /// and main threads): its niceness is raised by WORKER_NICENESS.
    #[test]
    #[cfg(target_os = "linux")]
    fn workers_run_below_the_host_threads() {
        struct Report(Option<std::sync::mpsc::Sender<i32>>);
        impl Job for Report {
            fn prepare(&mut self, _: Slack) {
                if let Some(tx) = self.0.take() {
                    // SAFETY: reads the calling thread's niceness.
                    let nice = unsafe {
                        libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t)
                    };
                    let _ = tx.send(nice);
                }
            }
            fn process(&mut self, _: &[f32], _: &mut [f32]) {}
            fn reset(&mut self) {}
        }
        // SAFETY: reads this thread's niceness.
        let ours =
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t) };
        let (tx, rx) = std::sync::mpsc::channel();
        let (_, input) = rtrb::RingBuffer::<f32>::new(16);
        let (output, _) = rtrb::RingBuffer::<f32>::new(16);
        let _worker = Worker::spawn(
            "test-nice",
            Report(Some(tx)),
            input,
            output,
            Arc::new(WorkerFlags::default()),
            48_000.0,
        )
        .expect("spawns");
        let theirs = rx.recv().expect("the worker reports");
        assert_eq!(theirs, (ours + WORKER_NICENESS).min(19));
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
}
