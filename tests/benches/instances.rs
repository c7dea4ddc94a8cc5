//! Eight instances in one process through the CLAP host, as a busy project
//! runs them: 48 kHz stereo, 512-sample blocks, every instance's block
//! processed in turn on one audio thread that keeps to the audio clock
//! (like a live host), default settings, strength 1, the WaveNet off.
//!
//! Two phases: silence (what idle instances cost) and music (noise plus a
//! tone, what dreaming instances cost). For each: the process's CPU time
//! against the wall clock (100% = one core), the workers' own CPU time, and
//! from each activation's statistics (`REVERIE_STATS`) the underruns and
//! the gradient steps the windows got. `cargo bench -p reverie-tests --bench
//! instances`; prints a table.

use std::time::{Duration, Instant};

use reverie_tests::clap_host::{BlockHost, ClapPlugin, CHANNELS};
use reverie_tests::signals::program;
use reverie_tests::STATS_ENV;

const INSTANCES: usize = 8;
const RATE: f64 = 48_000.0;
const BLOCK: usize = 512;
const SECONDS: f64 = 12.0;

/// CPU seconds used so far by the whole process.
fn process_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// CPU seconds used so far by the threads whose names start with `prefix`
/// (a thread's children inherit its name: candle's pool threads started
/// by a dream worker count as the worker's).
fn threads_cpu(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|n| n.trim().starts_with(prefix))
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        * 1e-9
}

struct Phase {
    name: &'static str,
    cpu: f64,
    workers: f64,
    dream: f64,
    late_blocks: usize,
}

/// Plays `signal` on every instance for its length, block by block on the
/// audio clock.
fn play(hosts: &mut [BlockHost<'_>], signal: &[f32], name: &'static str) -> Phase {
    let (cpu0, workers0, dream0) = (
        process_cpu(),
        threads_cpu("reverie-"),
        threads_cpu("reverie-dream"),
    );
    let start = Instant::now();
    let mut late_blocks = 0;
    for (b, block) in signal.chunks(BLOCK).enumerate() {
        for host in hosts.iter_mut() {
            let input: [&[f32]; CHANNELS] = [block, block];
            host.process(&input, &[], 0).for_each(drop);
        }
        let due = start + Duration::from_secs_f64(((b + 1) * BLOCK) as f64 / RATE);
        match due.checked_duration_since(Instant::now()) {
            Some(wait) => std::thread::sleep(wait),
            None => late_blocks += 1,
        }
    }
    let wall = start.elapsed().as_secs_f64();
    Phase {
        name,
        cpu: (process_cpu() - cpu0) / wall,
        workers: (threads_cpu("reverie-") - workers0) / wall,
        dream: (threads_cpu("reverie-dream") - dream0) / wall,
        late_blocks,
    }
}

fn main() {
    let stats = std::env::temp_dir().join(format!("reverie-instances-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&stats);
    // Read by each instance when its activation ends; set before any
    // plugin thread exists.
    std::env::set_var(STATS_ENV, &stats);
    let mut plugins: Vec<ClapPlugin> = (0..INSTANCES).map(|_| ClapPlugin::new()).collect();
    for p in &mut plugins {
        p.set_params(&[(p.param("strength"), 0.5)]);
        p.activate(RATE, BLOCK as u32).expect("activates");
    }
    let len = (RATE * SECONDS) as usize;
    let silence = vec![0.0f32; len];
    let music = program(len, RATE, 3);
    let phases = std::thread::scope(|s| {
        let processors: Vec<_> = plugins.iter_mut().map(|p| p.audio_processor()).collect();
        s.spawn(move || {
            let mut hosts: Vec<BlockHost<'_>> = processors
                .into_iter()
                .map(|p| BlockHost::new(p, BLOCK, 0))
                .collect();
            // Settle (models loaded, pools started) before measuring.
            play(&mut hosts, &silence[..RATE as usize * 2], "warm-up");
            [
                play(&mut hosts, &silence, "silence"),
                play(&mut hosts, &music, "music"),
            ]
        })
        .join()
        .expect("the audio thread")
    });
    for p in &mut plugins {
        p.deactivate();
    }
    let lines = std::fs::read_to_string(&stats).unwrap_or_default();
    let field = |line: &str, key: &str| -> u64 {
        let at = line.find(&format!("\"{key}\":")).map(|i| i + key.len() + 3);
        at.and_then(|i| line[i..].split([',', '}']).next()?.parse().ok())
            .unwrap_or(0)
    };
    let sessions: Vec<&str> = lines.lines().collect();
    let underruns: u64 = sessions.iter().map(|l| field(l, "underruns")).sum();
    let windows: u64 = sessions.iter().map(|l| field(l, "windows")).sum();
    let cut: u64 = sessions.iter().map(|l| field(l, "cut_windows")).sum();
    let skipped: u64 = sessions.iter().map(|l| field(l, "skipped_windows")).sum();
    let steps: Vec<u64> = sessions.iter().map(|l| field(l, "steps_last")).collect();
    println!(
        "{INSTANCES} instances, {} Hz, blocks of {BLOCK}, {SECONDS} s per phase",
        RATE as u32
    );
    println!("| phase | process CPU (100% = one core) | of which workers | per instance: dream worker | WaveNet worker | late blocks |");
    println!("|---|---|---|---|---|---|");
    for p in &phases {
        let per = |x: f64| 100.0 * x / INSTANCES as f64;
        println!(
            "| {} | {:.1}% | {:.1}% | {:.2}% | {:.2}% | {} |",
            p.name,
            100.0 * p.cpu,
            100.0 * p.workers,
            per(p.dream),
            per(p.workers - p.dream),
            p.late_blocks
        );
    }
    println!(
        "underruns: {underruns}; windows dreamed: {windows}, {cut} with fewer steps than asked ({skipped} not dreamed); steps of each instance's last window: {steps:?} of {}",
        field(sessions.first().copied().unwrap_or(""), "steps_asked")
    );
    let _ = std::fs::remove_file(&stats);
}
