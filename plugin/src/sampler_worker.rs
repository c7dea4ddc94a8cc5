//! The WaveNet job: the engine's generator in the engine's stream shell
//! (one model sample out per model sample in, resampled to and from the
//! host rate), on its own thread and paced by the track, so it keeps time
//! with the host and renders deterministically offline. The job only picks
//! up the host's parameters and model changes.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use reverie_engine::generator::{Generator, GeneratorMode, GeneratorState};
use reverie_engine::sampler::Sampler;
use reverie_engine::streaming::{ModelStream, StreamConfig, StreamError};

use crate::job::{Job, Slack};
use crate::params::{ReverieParams, WavenetMode};
use crate::status::Status;

/// What the sampler is doing, for the editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SamplerState {
    /// Mode off.
    Off = 0,
    /// Continue mode, following the track.
    Listening = 1,
    /// Producing audio.
    Generating = 2,
}

impl SamplerState {
    /// Reads the state from its atomic.
    pub fn load(a: &AtomicU8) -> Self {
        match a.load(Ordering::Relaxed) {
            1 => SamplerState::Listening,
            2 => SamplerState::Generating,
            _ => SamplerState::Off,
        }
    }
}

impl From<GeneratorState> for SamplerState {
    fn from(s: GeneratorState) -> Self {
        match s {
            GeneratorState::Off => SamplerState::Off,
            GeneratorState::Listening => SamplerState::Listening,
            GeneratorState::Generating => SamplerState::Generating,
        }
    }
}

/// The engine's mode for the parameter's.
fn mode(m: WavenetMode) -> GeneratorMode {
    match m {
        WavenetMode::Off => GeneratorMode::Off,
        WavenetMode::Generate => GeneratorMode::Generate,
        WavenetMode::Continue => GeneratorMode::Continue,
    }
}

/// Everything the WaveNet thread owns.
pub struct SamplerJob {
    stream: ModelStream<Generator>,
    /// The file the running model came from (`None`: the embedded default).
    model_path: Option<String>,
    params: Arc<ReverieParams>,
    status: Arc<Status>,
}

impl SamplerJob {
    /// Builds the job for a host rate; `model_path` is where `sampler` came from.
    pub fn new(
        sampler: Sampler,
        model_path: Option<String>,
        host_rate: u32,
        params: Arc<ReverieParams>,
        status: Arc<Status>,
    ) -> Result<Self, StreamError> {
        let config = StreamConfig {
            host_rate,
            model_rate: sampler.sample_rate(),
            window: 1,
            hop: 1,
        };
        Ok(Self {
            stream: ModelStream::new(config, Generator::new(sampler))?,
            model_path,
            params,
            status,
        })
    }

    /// Samples from the track's input to the generator's output.
    pub fn latency(&self) -> usize {
        self.stream.latency()
    }

    /// Loads another WaveNet (from the editor or a project's state). One at
    /// another rate would need another stream; it takes over at the next
    /// activation instead.
    fn switch_model(&mut self, path: Option<String>) {
        let (sampler, message) = crate::models::wavenet(path.as_deref());
        self.model_path = path;
        let generator = self.stream.processor_mut();
        if sampler.sample_rate() != generator.sampler().sample_rate() {
            self.status.say(format!(
                "{} runs at {} Hz; it takes over when the host next activates the plugin",
                sampler.meta().name,
                sampler.sample_rate()
            ));
            return;
        }
        generator.set_sampler(sampler);
        self.status.say(message);
    }
}

impl Job for SamplerJob {
    fn prepare(&mut self, _: Slack) {
        let wanted = self.params.wavenet_model.read().ok().and_then(|p| p.clone());
        if wanted != self.model_path {
            self.switch_model(wanted);
        }
        let wanted = mode(self.params.wavenet_mode.value());
        if wanted != GeneratorMode::Off && self.stream.processor().mode() == GeneratorMode::Off {
            // Off, the stream was not fed: start it afresh.
            self.stream.reset();
        }
        let generator = self.stream.processor_mut();
        generator.set_mode(wanted);
        generator.temperature = self.params.temperature.value().max(0.0);
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) {
        if self.stream.processor().mode() == GeneratorMode::Off {
            // Nothing to make: not even the resamplers need to run.
            output.fill(0.0);
            self.status
                .wavenet_state
                .store(SamplerState::Off as u8, Ordering::Relaxed);
            return;
        }
        // A generator never fails; the resamplers cannot with fixed chunks.
        if self.stream.process(input, output).is_err() {
            output.fill(0.0);
        }
        let state = SamplerState::from(self.stream.processor().state());
        self.status.wavenet_state.store(state as u8, Ordering::Relaxed);
    }

    fn reset(&mut self) {
        self.stream.reset();
    }

    fn idle_wait(&self, slack: f64) -> std::time::Duration {
        crate::job::idle_wait(slack, self.status.rendering.load(Ordering::Relaxed))
    }
}
