//! Numbered jobs on a few worker threads, stopping at the first error: the
//! way both the dataset renderer and the piano renderer write their clips.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `job(0)` to `job(jobs - 1)` on `threads` worker threads, each
/// taking the next number left. `progress` is called after every job that
/// succeeds, from the thread that ran it. After the first error no new job
/// starts, and that error is returned once the running ones are done.
pub(crate) fn run_jobs<E: Send>(
    jobs: usize,
    threads: usize,
    job: impl Fn(usize) -> Result<(), E> + Sync,
    progress: &(dyn Fn() + Sync),
) -> Result<(), E> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    let work = || {
        while !failed.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= jobs {
                break;
            }
            match job(index) {
                Ok(()) => progress(),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    first_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e);
                }
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(work);
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
