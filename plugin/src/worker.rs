//! A worker thread: started in `activate()`, below the host's own threads,
//! running the ring protocol's worker half ([`crate::ring`]) around a
//! [`Job`] (dreaming or the WaveNet), catching any panic so the audio thread
//! only sees the worker die; stopped and joined when dropped.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use rtrb::{Consumer, Producer};

use crate::job::{Job, WorkerFlags};

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
        // Relative to the host's: a host started under `nice` keeps its
        // workers below it too (an absolute value would be refused, or as
        // root would lift the workers above the host's threads). An error
        // reads as -1, which only lowers the worker a little less.
        let host = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (host + WORKER_NICENESS).min(19));
    }
    #[cfg(target_os = "macos")]
    // SAFETY: sets the calling thread's quality-of-service class.
    unsafe {
        libc::pthread_set_qos_class_self_np(libc::qos_class_t::QOS_CLASS_UTILITY, 0);
    }
}

/// How much nicer than the host's threads workers run on Linux (niceness
/// 0 is normal, 19 the lowest).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Slack;

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
}
