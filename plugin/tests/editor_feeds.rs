//! What the editor is fed: with the editor open, the audio thread's scope
//! ring carries the aligned dry input and the output, and the dream worker
//! sends a score per dreamed window that shows the target rising; with it
//! closed, nothing is sent. Offline sessions, so the workers are waited
//! for deterministically.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use reverie::mixer::BlockClock;
use reverie::session::{HostSetup, Session};
use reverie::telemetry::{self, ScopeFrame, ScorePoint};
use reverie::{ReverieParams, Status};

const RATE: u32 = 48_000;

fn tone(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            0.3 * (std::f32::consts::TAU * 220.0 * t).sin()
                + 0.2 * (std::f32::consts::TAU * 1_310.0 * t).sin()
        })
        .collect()
}

/// Runs `input` through an offline mono session; returns the output, the
/// latency, the scope frames and the scores the editor would have read.
fn run(editor_open: bool, input: &[f32]) -> (Vec<f32>, usize, Vec<ScopeFrame>, Vec<ScorePoint>) {
    let targets = Arc::new(RwLock::new(Vec::new()));
    let params = Arc::new(ReverieParams::new(targets.clone()));
    let status = Arc::new(Status::default());
    status.editor_open.store(editor_open, Ordering::Relaxed);
    let (mut feeds, mut taps) = telemetry::connect();
    let host = HostSetup {
        rate: RATE,
        channels: 1,
        max_block: 4_800,
        offline: true,
    };
    let mut session = Session::start(host, &params, &targets, &status, &feeds.scores).expect("starts");
    let (mut out, mut frames, mut scores) = (Vec::new(), Vec::new(), Vec::new());
    for block in input.chunks(4_800) {
        let mut buf = block.to_vec();
        let scope = editor_open.then_some(&mut feeds.scope);
        let clock = BlockClock {
            now: Instant::now(),
            offline: None,
        };
        session
            .mixer
            .process(&mut [&mut buf], &params, &status, scope, clock);
        out.extend_from_slice(&buf);
        // The editor drains every frame it draws; here every block.
        while let Ok(f) = taps.scope.pop() {
            frames.push(f);
        }
        while let Ok(s) = taps.scores.pop() {
            scores.push(s);
        }
    }
    let latency = session.latency;
    drop(session);
    while let Ok(s) = taps.scores.pop() {
        scores.push(s);
    }
    (out, latency, frames, scores)
}

#[test]
fn an_open_editor_gets_aligned_audio_and_rising_scores() {
    let input = tone(4 * RATE as usize);
    let (out, latency, frames, scores) = run(true, &input);
    assert_eq!(frames.len(), input.len(), "one scope frame per sample");
    for (t, f) in frames.iter().enumerate() {
        let dry = if t >= latency { input[t - latency] } else { 0.0 };
        assert_eq!(
            f[0], dry,
            "scope input at {t} is the input delayed by the latency"
        );
        assert_eq!(f[1], out[t], "scope output at {t} is what the host got");
    }
    // Windows that reached the worker in 4 s: at least 4 (0.5 s hops).
    assert!(scores.len() >= 4, "{} scores", scores.len());
    for s in &scores {
        assert_eq!(s.target, 0);
        assert!(s.after > s.before, "dreaming toward the target raises it: {s:?}");
    }
}

#[test]
fn a_closed_editor_is_sent_nothing_and_the_sound_is_the_same() {
    let input = tone(3 * RATE as usize);
    let (closed, _, frames, scores) = run(false, &input);
    assert!(frames.is_empty() && scores.is_empty());
    let (open, _, _, _) = run(true, &input);
    assert_eq!(closed, open, "feeding the editor never changes the audio");
}
