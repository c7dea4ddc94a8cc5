//! The WaveNet job: runs the cached sampler at the model rate on its own
//! thread, paced by the track (one generated sample per input sample), so
//! it keeps time with the host and renders deterministically offline.
//!
//! Modes: off (silence, the network idles); generate (continuous
//! generation); continue (teacher-forces the caches with the track and
//! takes over generating once the track has been silent for a moment).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reverie_engine::resample::ChunkResampler;
use reverie_engine::sampler::Sampler;

use crate::params::{ReverieParams, WavenetMode};
use crate::status::Status;
use crate::worker::{Job, Slack};

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

/// Input below this level (-60 dBFS) counts as silence in continue mode.
const SILENCE: f32 = 1e-3;
/// Silence that long hands over to generation in continue mode.
const HOLD_SECONDS: f32 = 0.25;
/// Every reset starts the generator from the same seed, so offline renders
/// repeat exactly.
const SEED: u64 = 0x5eed_2026;

/// Everything the WaveNet thread owns.
pub struct SamplerJob {
    sampler: Sampler,
    /// The file the running model came from (`None`: the embedded default).
    model_path: Option<String>,
    down: ChunkResampler,
    up: ChunkResampler,
    params: Arc<ReverieParams>,
    status: Arc<Status>,
    rng: ChaCha8Rng,
    mode: WavenetMode,
    temperature: f32,
    silent_for: usize,
    hold: usize,
    host_in: Vec<f32>,
    model_in: Vec<f32>,
    model_out: Vec<f32>,
    host_out: VecDeque<f32>,
    scratch: Vec<f32>,
    lead: usize,
    lead_total: usize,
}

impl SamplerJob {
    /// Builds the job for a host rate; `model_path` is where `sampler` came from.
    pub fn new(
        sampler: Sampler,
        model_path: Option<String>,
        host_rate: u32,
        params: Arc<ReverieParams>,
        status: Arc<Status>,
    ) -> Result<Self, String> {
        let model_rate = sampler.sample_rate();
        let down = ChunkResampler::new(host_rate, model_rate, (host_rate as usize / 100).max(32))
            .map_err(|e| e.to_string())?;
        let up = ChunkResampler::new(model_rate, host_rate, (model_rate as usize / 100).max(32))
            .map_err(|e| e.to_string())?;
        // Output is due one sample per input sample; this many leading
        // zeros cover the two resamplers' chunking, so the FIFO never runs dry.
        let lead_total = down.chunk_in() + 2 * up.chunk_out();
        Ok(Self {
            hold: (HOLD_SECONDS * model_rate as f32) as usize,
            model_in: vec![0.0; down.chunk_out()],
            model_out: Vec::with_capacity(up.chunk_in()),
            scratch: vec![0.0; up.chunk_out()],
            host_in: Vec::with_capacity(down.chunk_in()),
            host_out: VecDeque::with_capacity(lead_total + 2 * up.chunk_out()),
            sampler,
            model_path,
            down,
            up,
            params,
            status,
            rng: ChaCha8Rng::seed_from_u64(SEED),
            mode: WavenetMode::Off,
            temperature: 1.0,
            silent_for: 0,
            lead: lead_total,
            lead_total,
        })
    }

    fn next_model_sample(&mut self, x: f32) -> (f32, SamplerState) {
        match self.mode {
            WavenetMode::Off => (0.0, SamplerState::Off),
            WavenetMode::Generate => (
                self.sampler.sample_next(self.temperature, &mut self.rng),
                SamplerState::Generating,
            ),
            WavenetMode::Continue => {
                self.silent_for = if x.abs() < SILENCE { self.silent_for + 1 } else { 0 };
                if self.silent_for > self.hold {
                    (
                        self.sampler.sample_next(self.temperature, &mut self.rng),
                        SamplerState::Generating,
                    )
                } else {
                    let class = self.sampler.mulaw().encode(x);
                    self.sampler.step(class);
                    (0.0, SamplerState::Listening)
                }
            }
        }
    }

    fn run_chunk(&mut self) {
        let mut state = SamplerState::Off;
        for i in 0..self.model_in.len() {
            let (y, s) = self.next_model_sample(self.model_in[i]);
            state = s;
            self.model_out.push(y);
            if self.model_out.len() == self.up.chunk_in() {
                if self.up.process(&self.model_out, &mut self.scratch).is_err() {
                    self.scratch.fill(0.0);
                }
                self.model_out.clear();
                self.host_out.extend(self.scratch.iter().copied());
            }
        }
        self.status.wavenet_state.store(state as u8, Ordering::Relaxed);
    }
}

impl SamplerJob {
    /// Loads another WaveNet (from the editor or a project's state). One at
    /// another rate would need new resamplers and a new stream; it takes
    /// over at the next activation instead.
    fn switch_model(&mut self, path: Option<String>) {
        let (sampler, message) = crate::models::wavenet(path.as_deref());
        self.model_path = path;
        if sampler.sample_rate() != self.sampler.sample_rate() {
            self.status.say(format!(
                "{} runs at {} Hz; it takes over when the host next activates the plugin",
                sampler.meta().name,
                sampler.sample_rate()
            ));
            return;
        }
        self.sampler = sampler;
        self.sampler.reset();
        self.silent_for = 0;
        self.status.say(message);
    }
}

impl Job for SamplerJob {
    fn prepare(&mut self, _: Slack) {
        let wanted = self.params.wavenet_model.read().ok().and_then(|p| p.clone());
        if wanted != self.model_path {
            self.switch_model(wanted);
        }
        let mode = self.params.wavenet_mode.value();
        if mode != self.mode {
            // Each mode starts from a clean context.
            self.sampler.reset();
            self.silent_for = 0;
            self.mode = mode;
        }
        self.temperature = self.params.temperature.value().max(0.0);
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) {
        for &x in input {
            self.host_in.push(x);
            if self.host_in.len() == self.down.chunk_in() {
                if self.down.process(&self.host_in, &mut self.model_in).is_err() {
                    self.model_in.fill(0.0);
                }
                self.host_in.clear();
                self.run_chunk();
            }
        }
        for out in output.iter_mut() {
            *out = if self.lead > 0 {
                self.lead -= 1;
                0.0
            } else {
                self.host_out.pop_front().unwrap_or(0.0)
            };
        }
    }

    fn reset(&mut self) {
        self.sampler.reset();
        self.down.reset();
        self.up.reset();
        self.rng = ChaCha8Rng::seed_from_u64(SEED);
        self.silent_for = 0;
        self.host_in.clear();
        self.model_out.clear();
        self.host_out.clear();
        self.lead = self.lead_total;
    }
}
