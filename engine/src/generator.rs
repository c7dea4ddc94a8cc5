//! The WaveNet as a stream: one model sample out per model sample in,
//! inside the same stream shell as the dreamer ([`crate::streaming`], with
//! windows of one sample), so the resampling, the latency and the timing
//! are the shell's, derived and checked there.
//!
//! Modes: off (silence; the network idles), generate (continuous
//! generation), continue (the network listens to the track, teacher-forcing
//! its caches with it, and takes over generating once the track has been
//! silent for [`HOLD_SECONDS`]).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dreamer::DreamError;
use crate::sampler::{Kernels, Sampler};
use crate::streaming::WindowProcessor;

/// Input below this level (-60 dBFS) counts as silence in continue mode.
pub const SILENCE: f32 = 1e-3;
/// Silence that long hands over to generation in continue mode.
pub const HOLD_SECONDS: f32 = 0.25;
/// Every reset starts the generator from the same seed, so renders repeat.
pub const SEED: u64 = 0x5eed_2026;

/// What the generator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GeneratorMode {
    /// Silence; the network does nothing.
    #[default]
    Off,
    /// Generates continuously.
    Generate,
    /// Listens to the input and takes over generating when it falls silent.
    Continue,
}

/// What the generator did with the last sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GeneratorState {
    /// Mode off.
    #[default]
    Off,
    /// Continue mode, following the input.
    Listening,
    /// Producing audio.
    Generating,
}

/// The sampler on the fastest kernels: generation is where speed is
/// headroom for more instances, and the 8-bit (or bfloat16) rounding
/// changes the sound's statistics by far less than any setting does (the
/// built-in model's mean likelihood of its own playing moves by 0.5%).
fn fastest(mut sampler: Sampler) -> Sampler {
    sampler.use_kernels(Kernels::fastest());
    sampler
}

/// A cached WaveNet sampler run one sample at a time.
pub struct Generator {
    sampler: Sampler,
    mode: GeneratorMode,
    /// Sampling temperature (0: always the likeliest sample).
    pub temperature: f32,
    rng: ChaCha8Rng,
    silent_for: usize,
    hold: usize,
    state: GeneratorState,
}

impl Generator {
    /// A generator around `sampler`, off, at temperature 1, running the
    /// fastest kernels this CPU has ([`Kernels::fastest`]).
    pub fn new(sampler: Sampler) -> Self {
        let sampler = fastest(sampler);
        Self {
            hold: (HOLD_SECONDS * sampler.sample_rate() as f32) as usize,
            sampler,
            mode: GeneratorMode::Off,
            temperature: 1.0,
            rng: ChaCha8Rng::seed_from_u64(SEED),
            silent_for: 0,
            state: GeneratorState::Off,
        }
    }

    /// The sampler.
    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }

    /// Replaces the model (same sample rate), starting from a clean context.
    pub fn set_sampler(&mut self, sampler: Sampler) {
        self.sampler = fastest(sampler);
        self.restart();
    }

    /// The mode.
    pub fn mode(&self) -> GeneratorMode {
        self.mode
    }

    /// Switches mode; each mode starts from a clean context.
    pub fn set_mode(&mut self, mode: GeneratorMode) {
        if mode != self.mode {
            self.mode = mode;
            self.restart();
        }
    }

    /// What the last sample was.
    pub fn state(&self) -> GeneratorState {
        self.state
    }

    /// A clean context, keeping the random stream where it is.
    fn restart(&mut self) {
        self.sampler.reset();
        self.silent_for = 0;
    }

    /// The output for one input sample.
    pub fn next(&mut self, x: f32) -> f32 {
        let (y, state) = match self.mode {
            GeneratorMode::Off => (0.0, GeneratorState::Off),
            GeneratorMode::Generate => (
                self.sampler.sample_next(self.temperature, &mut self.rng),
                GeneratorState::Generating,
            ),
            GeneratorMode::Continue => {
                self.silent_for = if x.abs() < SILENCE { self.silent_for + 1 } else { 0 };
                if self.silent_for > self.hold {
                    (
                        self.sampler.sample_next(self.temperature, &mut self.rng),
                        GeneratorState::Generating,
                    )
                } else {
                    // Heard as the model codes audio (pre-emphasis and
                    // all), so generation takes over from the track.
                    self.sampler.feed_audio(x);
                    (0.0, GeneratorState::Listening)
                }
            }
        };
        self.state = state;
        y
    }
}

impl WindowProcessor for Generator {
    fn process(&mut self, window: &[f32], out: &mut [f32]) -> Result<(), DreamError> {
        for (o, &x) in out.iter_mut().zip(window) {
            *o = self.next(x);
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.restart();
        self.rng = ChaCha8Rng::seed_from_u64(SEED);
    }

    /// Off, it makes nothing and keeps nothing.
    fn quiescent(&self) -> bool {
        self.mode == GeneratorMode::Off
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wavenet::{WavenetConfig, WavenetModel};

    fn generator() -> Generator {
        let config = WavenetConfig {
            dilations: vec![1, 2, 4, 8],
            residual_channels: 8,
            dilation_channels: 8,
            skip_channels: 8,
            classes: 32,
            predictor: None,
            pre_emphasis: false,
            emphasis_128ths: crate::emphasis::LPCNET_128THS,
            residual_target: false,
            tone_aware: false,
            tone_prior: None,
            dc_block: false,
        };
        let model = WavenetModel::init(config, 16_000, 3, &candle_core::Device::Cpu).expect("a model");
        Generator::new(Sampler::from_model(&model).expect("a sampler"))
    }

    fn run(g: &mut Generator, input: &[f32]) -> Vec<f32> {
        input.iter().map(|&x| g.next(x)).collect()
    }

    #[test]
    fn off_is_silent_and_generate_repeats_after_a_reset() {
        let mut g = generator();
        assert!(run(&mut g, &[0.3; 500]).iter().all(|&y| y == 0.0));
        assert_eq!(g.state(), GeneratorState::Off);
        g.set_mode(GeneratorMode::Generate);
        let first = run(&mut g, &[0.0; 800]);
        assert!(first.iter().any(|&y| y != 0.0), "it generates");
        assert_eq!(g.state(), GeneratorState::Generating);
        WindowProcessor::reset(&mut g);
        assert_eq!(run(&mut g, &[0.0; 800]), first, "a reset replays from the seed");
    }

    #[test]
    fn continue_listens_while_the_input_sounds_and_takes_over_after_the_hold() {
        let mut g = generator();
        g.set_mode(GeneratorMode::Continue);
        let hold = (HOLD_SECONDS * 16_000.0) as usize;
        let tone: Vec<f32> = (0..4_000).map(|i| 0.5 * (i as f32 * 0.07).sin()).collect();
        assert!(
            run(&mut g, &tone).iter().all(|&y| y == 0.0),
            "silent while listening"
        );
        assert_eq!(g.state(), GeneratorState::Listening);
        // Silence: still listening for the hold, then generating.
        let quiet = run(&mut g, &vec![0.0; hold + 2_000]);
        assert!(quiet[..hold].iter().all(|&y| y == 0.0));
        assert_eq!(g.state(), GeneratorState::Generating);
        // The track comes back: listening again at once.
        g.next(0.4);
        assert_eq!(g.state(), GeneratorState::Listening);
        // Listening fed the track into the network's context: after the
        // tone its prediction differs from one that heard silence.
        let mut tone_heard = generator();
        tone_heard.set_mode(GeneratorMode::Continue);
        run(&mut tone_heard, &tone);
        let mut silence_heard = generator();
        silence_heard.set_mode(GeneratorMode::Continue);
        run(&mut silence_heard, &vec![0.0; tone.len()]);
        assert_eq!(
            silence_heard.state(),
            GeneratorState::Listening,
            "4000 samples are within the hold"
        );
        assert_ne!(tone_heard.sampler().logits(), silence_heard.sampler().logits());
    }
}
