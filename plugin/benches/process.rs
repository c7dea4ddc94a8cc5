//! The audio thread's cost and the dream worker's speed, with the plugin's
//! real session (models, worker thread, rings) running.
//!
//! - `process/block64_stereo_48k`: one 64-sample stereo block at 48 kHz
//!   through `Mixer::process` while the worker runs. The real-time budget
//!   of such a block is 1333 us; the target is under 1% of it.
//! - `session/offline_4s_48k`: 4 s of stereo audio in offline mode, where
//!   process() waits for the worker: the end-to-end dreaming speed (real-time
//!   factor = 4 s / median).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use reverie::mixer::BlockClock;
use reverie::session::{HostSetup, Session};
use reverie::{ReverieParams, Status};

fn music(n: usize, rate: f32, phase: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f32 / rate;
            0.4 * (std::f32::consts::TAU * 220.0 * t + phase).sin()
                + 0.1 * (std::f32::consts::TAU * 1_760.0 * t).sin()
        })
        .collect()
}

fn setup(offline: bool) -> (Session, Arc<ReverieParams>, Arc<Status>) {
    let targets = Arc::new(RwLock::new(Vec::new()));
    let params = Arc::new(ReverieParams::new(targets.clone()));
    let status = Arc::new(Status::default());
    let host = HostSetup {
        rate: 48_000,
        channels: 2,
        max_block: 4096,
        offline,
    };
    let (feeds, _taps) = reverie::telemetry::connect();
    let mut session =
        Session::start(host, &params, &targets, &status, &feeds.scores).expect("session starts");
    session.mixer.reset();
    (session, params, status)
}

fn block_cost(c: &mut Criterion) {
    let (mut session, params, status) = setup(false);
    let left = music(64, 48_000.0, 0.0);
    let right = music(64, 48_000.0, 1.0);
    let (mut l, mut r) = (left.clone(), right.clone());
    // A live host's clock: one block's time per block, however fast the
    // benchmark loop calls, so process() never takes it for a render.
    let mut now = Instant::now();
    let block = Duration::from_secs_f64(64.0 / 48_000.0);
    let mut g = c.benchmark_group("process");
    g.throughput(Throughput::Elements(64));
    g.bench_function("block64_stereo_48k", |b| {
        b.iter(|| {
            l.copy_from_slice(&left);
            r.copy_from_slice(&right);
            now += block;
            let clock = BlockClock { now, offline: None };
            session
                .mixer
                .process(&mut [&mut l, &mut r], &params, &status, None, clock);
        })
    });
    g.finish();
}

fn offline_rtf(c: &mut Criterion) {
    let seconds = 4;
    let left = music(48_000 * seconds, 48_000.0, 0.0);
    let right = music(48_000 * seconds, 48_000.0, 1.0);
    let mut g = c.benchmark_group("session");
    g.sample_size(10);
    g.throughput(Throughput::Elements(left.len() as u64));
    g.bench_function("offline_4s_48k", |b| {
        b.iter_batched(
            || (setup(true), left.clone(), right.clone()),
            |((mut session, params, status), mut l, mut r)| {
                for (a, b) in l.chunks_mut(512).zip(r.chunks_mut(512)) {
                    let clock = BlockClock {
                        now: Instant::now(),
                        offline: None,
                    };
                    session.mixer.process(&mut [a, b], &params, &status, None, clock);
                }
                status.windows.load(std::sync::atomic::Ordering::Relaxed)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, block_cost, offline_rtf);
criterion_main!(benches);
