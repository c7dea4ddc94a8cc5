mod common;

use candle_core::Device;
use reverie_engine::dreamer::{DreamError, DreamMode, DreamParams, Dreamer};
use reverie_engine::streaming::{DreamWindows, ModelStream, StreamConfig, WindowProcessor};

const HOST_RATES: [u32; 3] = [44_100, 48_000, 96_000];
const BLOCKS: [usize; 6] = [1, 7, 64, 333, 1024, 4096];

fn config(host_rate: u32) -> StreamConfig {
    StreamConfig {
        host_rate,
        model_rate: common::RATE,
        window: common::tiny_config().window,
        hop: common::tiny_config().window / 2,
    }
}

fn dream_windows(iterations: usize) -> DreamWindows {
    DreamWindows::new(
        Dreamer::new(common::tiny_model(3), Device::Cpu),
        DreamParams {
            iterations,
            ..DreamParams::default()
        },
    )
}

/// Runs `input` through the stream in blocks of `block` samples.
fn run<P: WindowProcessor>(stream: &mut ModelStream<P>, input: &[f32], block: usize) -> Vec<f32> {
    let mut out = vec![0.0; input.len()];
    for (i, o) in input.chunks(block).zip(out.chunks_mut(block)) {
        stream.process(i, o).unwrap();
    }
    out
}

fn tones(n: usize, rate: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            0.5 * (std::f32::consts::TAU * 440.0 * t).sin()
                + 0.25 * (std::f32::consts::TAU * 1_234.5 * t).sin()
        })
        .collect()
}

/// No steps, no change: the delta is exactly zero in both modes, at every
/// rate and block size. (That dry plus this delta is the input delayed by
/// the latency, through the plugin's own delay line, is the CLAP host's
/// null test.)
#[test]
fn zero_iterations_give_an_exactly_zero_delta() {
    for mode in DreamMode::ALL {
        for rate in HOST_RATES {
            for block in BLOCKS {
                let mut windows = dream_windows(0);
                windows.params.mode = mode;
                let mut stream = ModelStream::new(config(rate), windows).unwrap();
                let latency = stream.latency();
                let input = common::noise(rate as usize / 2 + latency, u64::from(rate), 0.3);
                let delta = run(&mut stream, &input, block);
                assert!(
                    delta.iter().all(|d| *d == 0.0),
                    "{mode:?}, rate {rate} block {block}: non-zero delta"
                );
            }
        }
    }
}

/// Hands the window's first half back as its change, so the delta stream
/// is the input itself, resampled twice: this is what tells whether the
/// reported latency is where the audio really comes out.
struct Identity;

impl WindowProcessor for Identity {
    fn process(&mut self, window: &[f32], out: &mut [f32]) -> Result<(), DreamError> {
        out.copy_from_slice(&window[..out.len()]);
        Ok(())
    }
}

fn alignment_error(input: &[f32], out: &[f32], lag: usize, from: usize) -> f32 {
    (from..out.len())
        .map(|n| (out[n] - input[n - lag]).abs())
        .fold(0.0, f32::max)
}

#[test]
fn delta_path_comes_out_exactly_at_the_reported_latency() {
    for rate in HOST_RATES {
        let mut stream = ModelStream::new(config(rate), Identity).unwrap();
        let latency = stream.latency();
        let input = tones(rate as usize + latency, rate);
        let out = run(&mut stream, &input, 512);
        // Skip the start-up and the first window, which has no left neighbour.
        let from = latency + rate as usize / 4;
        let at = alignment_error(&input, &out, latency, from);
        assert!(
            at < 2e-3,
            "rate {rate}: error {at} at the reported latency {latency}"
        );
        for off in [latency - 1, latency + 1] {
            let e = alignment_error(&input, &out, off, from);
            assert!(e > 10.0 * at, "rate {rate}: lag {off} fits as well ({e} vs {at})");
        }
    }
}

#[test]
fn block_size_does_not_change_a_single_sample() {
    for rate in HOST_RATES {
        let input = tones(rate as usize, rate);
        let reference = run(
            &mut ModelStream::new(config(rate), Identity).unwrap(),
            &input,
            4096,
        );
        for block in [1, 63, 1000] {
            let out = run(
                &mut ModelStream::new(config(rate), Identity).unwrap(),
                &input,
                block,
            );
            assert_eq!(out, reference, "rate {rate} block {block}");
        }
    }
}

#[test]
fn dreaming_stream_is_silent_on_silence_and_moves_real_audio() {
    let rate = 48_000;
    let mut stream = ModelStream::new(config(rate), dream_windows(3)).unwrap();
    let silent = vec![0.0f32; rate as usize];
    assert!(run(&mut stream, &silent, 256).iter().all(|d| *d == 0.0));
    let mut stream = ModelStream::new(config(rate), dream_windows(3)).unwrap();
    let input = tones(rate as usize, rate);
    let delta = run(&mut stream, &input, 256);
    assert!(delta.iter().all(|d| d.is_finite()));
    let energy: f32 = delta.iter().map(|d| d * d).sum();
    assert!(
        energy > 1e-6,
        "dreaming should change the audio (energy {energy})"
    );
    assert!(stream.windows_done() > 0);
}

#[test]
fn reset_replays_identically() {
    let rate = 44_100;
    let input = tones(rate as usize / 2, rate);
    let mut stream = ModelStream::new(config(rate), Identity).unwrap();
    let first = run(&mut stream, &input, 100);
    stream.reset();
    let second = run(&mut stream, &input, 100);
    assert_eq!(first, second);
}

#[test]
fn clip_resampling_keeps_length_ratio_and_timing() {
    let input = tones(44_100, 44_100);
    let out = reverie_engine::resample::resample_clip(&input, 44_100, 16_000).unwrap();
    assert_eq!(out.len(), 16_000);
    let expected = tones(16_000, 16_000);
    // The clip's ends see the zero padding beyond them; judge the middle.
    let err = out[500..14_500]
        .iter()
        .zip(&expected[500..14_500])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err < 2e-3, "error {err}");
}

/// Fails every other window, as a broken device or model might.
struct Flaky(u32);

impl WindowProcessor for Flaky {
    fn process(&mut self, window: &[f32], out: &mut [f32]) -> Result<(), DreamError> {
        self.0 += 1;
        if self.0.is_multiple_of(2) {
            out.fill(0.0);
            return Err(DreamError::BadTarget("injected failure".into()));
        }
        out.copy_from_slice(&window[..out.len()]);
        Ok(())
    }
}

#[test]
fn failing_windows_are_reported_but_the_stream_keeps_time() {
    let rate = 48_000;
    let input = tones(rate as usize * 2, rate);
    let mut stream = ModelStream::new(config(rate), Flaky(0)).unwrap();
    let mut out = vec![0.0; input.len()];
    let mut errors = 0;
    for (i, o) in input.chunks(4096).zip(out.chunks_mut(4096)) {
        errors += usize::from(stream.process(i, o).is_err());
    }
    assert!(errors > 0, "failures must be reported");
    // 2 s at 16 kHz with 2000-sample windows and a 1000-sample hop is 31
    // windows; all must have been consumed despite the failures.
    assert_eq!(stream.windows_done(), 31);
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn non_finite_and_huge_input_never_reach_the_model() {
    let rate = 44_100;
    let mut input = tones(rate as usize, rate);
    for (i, v) in input.iter_mut().enumerate().step_by(97) {
        *v = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 3e38][i % 4];
    }
    let mut stream = ModelStream::new(config(rate), dream_windows(2)).unwrap();
    let out = run(&mut stream, &input, 512);
    assert!(out.iter().all(|v| v.is_finite()));
    assert!(out.iter().any(|v| *v != 0.0));
}

/// Scores (for the editor's picture) come one per dreamed window, show the
/// target rising (every window in raw mode; on average in spectral mode,
/// whose random shifts make single windows of this tiny random model go
/// either way), skip silent windows, and do not change the audio.
#[test]
fn scores_follow_the_dreamed_windows_without_changing_them() {
    let config = StreamConfig {
        host_rate: 16_000,
        model_rate: 16_000,
        window: 2_000,
        hop: 1_000,
    };
    let mut input = common::window(8_000, 5);
    input.extend(std::iter::repeat_n(0.0, 4_000));
    for mode in DreamMode::ALL {
        let windows = || {
            let mut w = dream_windows(3);
            w.params.mode = mode;
            w
        };
        let plain = run(&mut ModelStream::new(config, windows()).unwrap(), &input, 512);
        let mut scored = windows();
        scored.scores = Some(Vec::new());
        let mut stream = ModelStream::new(config, scored).unwrap();
        let with_scores = run(&mut stream, &input, 512);
        assert_eq!(plain, with_scores, "{mode:?}: scoring must not change the delta");
        let scores = stream.processor().scores.clone().unwrap();
        let windows = stream.windows_done() as usize;
        assert!(
            !scores.is_empty() && scores.len() < windows,
            "{mode:?}: {} of {windows}",
            scores.len()
        );
        let rise: f32 = scores.iter().map(|s| s.after - s.before).sum::<f32>() / scores.len() as f32;
        assert!(rise > 0.0, "{mode:?}: the target fell on average: {scores:?}");
        if mode == DreamMode::Raw {
            for s in &scores {
                assert!(s.after > s.before, "the target rose: {s:?}");
            }
        }
    }
}

/// The spectral dream is deterministic and does not depend on how the
/// host cuts the stream into blocks; a reset replays it exactly.
#[test]
fn the_spectral_dream_repeats_exactly_whatever_the_blocks() {
    let rate = 44_100;
    let input = tones(rate as usize, rate);
    let spectral = || {
        let w = dream_windows(2);
        assert_eq!(w.params.mode, DreamMode::Spectral, "the default mode");
        w
    };
    let mut stream = ModelStream::new(config(rate), spectral()).unwrap();
    let reference = run(&mut stream, &input, 512);
    assert!(reference.iter().any(|d| *d != 0.0), "it dreams");
    for block in [1, 333, 4096] {
        let out = run(
            &mut ModelStream::new(config(rate), spectral()).unwrap(),
            &input,
            block,
        );
        assert_eq!(out, reference, "blocks of {block}");
    }
    stream.reset();
    assert_eq!(run(&mut stream, &input, 700), reference, "after a reset");
}

/// Counts the windows a processor computes; with `idle`, it lets the
/// stream skip silence as the processor would, without it never.
struct Counted(DreamWindows, usize, bool);

impl WindowProcessor for Counted {
    fn process(&mut self, window: &[f32], out: &mut [f32]) -> Result<(), DreamError> {
        self.1 += 1;
        self.0.process(window, out)
    }
    fn reset(&mut self) {
        self.0.reset();
    }
    fn asked_steps(&self) -> usize {
        self.0.asked_steps()
    }
    fn limit_next(&mut self, steps: usize) {
        self.0.limit_next(steps);
    }
    fn quiescent(&self) -> bool {
        self.2 && self.0.quiescent()
    }
    fn skip_window(&mut self) {
        self.0.skip_window();
    }
}

/// Long exact silence between two passages: the stream stops computing
/// (silence in, silence out), and what comes out, silence and the second
/// passage alike, is bit for bit what computing every window gives, in
/// both modes and whatever the blocks.
#[test]
fn idle_silence_is_skipped_without_changing_a_sample() {
    let rate = 48_000;
    let mut input = tones(rate as usize, rate);
    input.extend(std::iter::repeat_n(0.0, 6 * rate as usize));
    input.extend(tones(rate as usize, rate));
    for mode in DreamMode::ALL {
        let windows = |idle: bool| {
            let mut w = dream_windows(2);
            w.params.mode = mode;
            Counted(w, 0, idle)
        };
        let mut full = ModelStream::new(config(rate), windows(false)).unwrap();
        let reference = run(&mut full, &input, 512);
        assert!(
            reference[reference.len() - 1_000..].iter().any(|&v| v != 0.0),
            "the second passage dreams"
        );
        for block in [512, 97, 4_096] {
            let mut idle = ModelStream::new(config(rate), windows(true)).unwrap();
            let out = run(&mut idle, &input, block);
            assert_eq!(
                first_difference(&out, &reference),
                None,
                "{mode:?}, blocks of {block}: skipping silence changed the output"
            );
            assert_eq!(idle.windows_done(), full.windows_done());
            // 8 s at 16 kHz with a 1000-sample hop: 127 windows, of which
            // the 6 s of silence are 96, all but the first few skipped.
            let (computed, all) = (idle.processor().1, full.processor().1);
            assert!(computed + 80 < all, "{computed} of {all} windows computed");
        }
    }
}

fn first_difference(a: &[f32], b: &[f32]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits())
}
