//! The stream shell every model runs inside: a continuous stream at the
//! host rate becomes a continuous stream of model output with a fixed,
//! known latency. Resample to the model rate, hand windows (`window`
//! samples, `hop` apart) to a [`WindowProcessor`], which returns `hop`
//! finished output samples for each, resample back. The dreamer runs in it
//! with one-second windows half a window apart ([`DreamWindows`]); the
//! WaveNet with windows of one sample (`crate::generator`).
//!
//! The output for input sample `n` appears at output sample `n + latency()`,
//! whatever the block sizes, so `dry delayed by latency() + delta` lines up.

use std::collections::VecDeque;
use std::time::Instant;

use crate::dreamer::{DreamError, DreamMode, DreamParams, Dreamer, Score};
use crate::effort::Effort;
use crate::resample::{gcd, ChunkResampler, ResampleError};
use crate::spectral_dream::{SpectralDream, SpectralSettings};

/// Errors of the streaming dreamer.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A resampler could not be built or run.
    #[error(transparent)]
    Resample(#[from] ResampleError),
    /// Dreaming a window failed.
    #[error(transparent)]
    Dream(#[from] DreamError),
    /// An impossible configuration.
    #[error("invalid stream settings: {0}")]
    Config(String),
}

/// Input beyond this magnitude (+24 dBFS) is clipped before it reaches the
/// resampler and the model.
pub const MAX_INPUT: f32 = 16.0;

/// Turns a stream into output, one window at a time at the model rate:
/// windows of the stream's window length, `hop` apart.
pub trait WindowProcessor {
    /// Takes the next window and writes the finished output for its first
    /// `hop` samples into `out` (`hop` long). On an error `out` still holds
    /// a usable (possibly silent) output, so the stream keeps time.
    fn process(&mut self, window: &[f32], out: &mut [f32]) -> Result<(), DreamError>;
    /// Forgets the stream's history.
    fn reset(&mut self) {}
    /// Gradient steps its settings ask for per window (0: it takes no
    /// steps a deadline could cut).
    fn asked_steps(&self) -> usize {
        0
    }
    /// Gives the next window `steps` steps instead (at most the asked).
    fn limit_next(&mut self, _steps: usize) {}
    /// Whether its state holds nothing but silence, so that a window of
    /// exact silence would give exact silence and change nothing but
    /// counters. The stream then skips silent windows ([`skip_window`]).
    ///
    /// [`skip_window`]: WindowProcessor::skip_window
    fn quiescent(&self) -> bool {
        false
    }
    /// Counts one window of exact silence as processed, without computing
    /// it (only called while [`quiescent`](WindowProcessor::quiescent)).
    fn skip_window(&mut self) {}
}

/// The dreaming window processor: a [`Dreamer`] with its settings, in
/// either [`DreamMode`].
pub struct DreamWindows {
    /// The dreamer.
    pub dreamer: Dreamer,
    /// Settings used for every window from now on.
    pub params: DreamParams,
    /// Silent windows give a zero delta (silence in, silence out). Off only
    /// when deliberately dreaming from silence.
    pub gate: bool,
    /// When set, every dreamed window's [`Score`] is appended here (costs
    /// one forward pass per window, two in spectral mode); `None` computes
    /// nothing extra.
    pub scores: Option<Vec<Score>>,
    spectral: SpectralDream,
    /// Steps for the next window only, when a deadline cut them.
    limit: Option<usize>,
    /// Windows of exact silence in a row, just before now.
    silent_windows: usize,
    /// Raw mode: each window's change, under a periodic Hann window (the
    /// windows sum to one at a 50% hop), overlap-added.
    ola: Vec<f32>,
    hann: Vec<f32>,
}

impl DreamWindows {
    /// Dreams with `params`, gated, without scores.
    pub fn new(dreamer: Dreamer, params: DreamParams) -> Self {
        let window = dreamer.window();
        Self {
            spectral: SpectralDream::new(window, SpectralSettings::default()),
            limit: None,
            silent_windows: 0,
            ola: vec![0.0; window],
            hann: (0..window)
                .map(|i| {
                    let phase = std::f64::consts::TAU * i as f64 / window as f64;
                    (0.5 - 0.5 * phase.cos()) as f32
                })
                .collect(),
            dreamer,
            params,
            gate: true,
            scores: None,
        }
    }

    /// Dreams spectrally with other settings (for comparing them).
    pub fn with_spectral(mut self, settings: SpectralSettings) -> Self {
        self.spectral = SpectralDream::new(self.dreamer.window(), settings);
        self
    }

    /// Raw mode: the window's whole change, cross-faded into the previous
    /// window's second half.
    fn raw(
        &mut self,
        window: &[f32],
        params: &DreamParams,
        out: &mut [f32],
    ) -> Result<Option<Score>, DreamError> {
        let scoring = self.scores.is_some();
        let result = self
            .dreamer
            .dream_delta_scored(window, params, self.gate, scoring);
        let hop = out.len();
        if let Ok((delta, _)) = &result {
            for ((acc, d), w) in self.ola.iter_mut().zip(delta).zip(&self.hann) {
                *acc += d * w;
            }
        }
        out.copy_from_slice(&self.ola[..hop]);
        self.ola.copy_within(hop.., 0);
        let tail = self.ola.len() - hop;
        self.ola[tail..].fill(0.0);
        result.map(|(_, score)| score)
    }
}

impl WindowProcessor for DreamWindows {
    fn process(&mut self, window: &[f32], out: &mut [f32]) -> Result<(), DreamError> {
        self.silent_windows = if window.iter().all(|&v| v == 0.0) {
            self.silent_windows.saturating_add(1)
        } else {
            0
        };
        let params = DreamParams {
            iterations: self
                .limit
                .take()
                .map_or(self.params.iterations, |l| l.min(self.params.iterations)),
            ..self.params
        };
        let score = match params.mode {
            DreamMode::Raw => self.raw(window, &params, out)?,
            DreamMode::Spectral => self.spectral.process(
                &self.dreamer,
                window,
                &params,
                self.gate,
                self.scores.is_some(),
                out,
            )?,
        };
        if let (Some(list), Some(score)) = (&mut self.scores, score) {
            list.push(score);
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.ola.fill(0.0);
        self.spectral.reset();
        self.limit = None;
        self.silent_windows = 0;
    }

    /// Two silent windows in a row, gated: every frame (spectral) and the
    /// overlap-add (raw) then hold silence, and a silent window is not
    /// dreamed.
    fn quiescent(&self) -> bool {
        self.gate && self.silent_windows >= 2
    }

    fn skip_window(&mut self) {
        self.silent_windows = self.silent_windows.saturating_add(1);
        self.spectral.skip_window();
    }

    fn asked_steps(&self) -> usize {
        self.params.iterations
    }

    fn limit_next(&mut self, steps: usize) {
        self.limit = Some(steps);
    }
}

/// Rates, window and hop of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamConfig {
    /// The host's sample rate in Hz.
    pub host_rate: u32,
    /// The model's sample rate in Hz.
    pub model_rate: u32,
    /// Window length in model samples.
    pub window: usize,
    /// Model samples from one window to the next (at most `window`).
    pub hop: usize,
}

impl StreamConfig {
    /// Windows half a window apart, as dreaming uses them.
    pub fn halves(host_rate: u32, model_rate: u32, window: usize) -> Self {
        Self {
            host_rate,
            model_rate,
            window,
            hop: window / 2,
        }
    }
}

/// The stream shell around a [`WindowProcessor`].
pub struct ModelStream<P> {
    processor: P,
    down: ChunkResampler,
    up: ChunkResampler,
    window: usize,
    hop: usize,
    model_rate: u32,
    /// Zeros put in front of the model-rate stream so the whole path delays
    /// by a whole number of host samples.
    align: usize,
    latency: usize,
    /// Delay of the resamplers and alignment, in host samples.
    intrinsic: usize,
    /// Leading zeros still to emit before the first resampled delta.
    lead: usize,
    host_in: Vec<f32>,
    model_in: VecDeque<f32>,
    model_out: Vec<f32>,
    host_out: VecDeque<f32>,
    scratch_window: Vec<f32>,
    scratch_hop: Vec<f32>,
    scratch_down: Vec<f32>,
    scratch_up: Vec<f32>,
    windows_done: u64,
    /// Seconds until the output of the next `process` call is due, when
    /// the stream must keep up with real time; `None` renders in full.
    deadline: Option<f64>,
    effort: Effort,
    /// Exactly silent input samples in a row, just before now.
    silent_input: usize,
    /// Silent input after which nothing but silence is left anywhere in
    /// the stream (resamplers, windows, output queue).
    memory: usize,
}

impl<P: WindowProcessor> ModelStream<P> {
    /// Builds the pipeline; everything it needs is allocated here.
    pub fn new(config: StreamConfig, processor: P) -> Result<Self, StreamError> {
        let StreamConfig {
            host_rate,
            model_rate,
            window,
            hop,
        } = config;
        if hop == 0 || hop > window {
            return Err(StreamError::Config(format!(
                "a hop of {hop} does not fit windows of {window}"
            )));
        }
        // ~20 ms chunks keep the added latency small without many tiny FFTs.
        let down = ChunkResampler::new(host_rate, model_rate, (host_rate as usize / 50).max(64))?;
        let up = ChunkResampler::new(model_rate, host_rate, (model_rate as usize / 50).max(64))?;
        let (h, m) = (u64::from(host_rate), u64::from(model_rate));
        let step = m / gcd(h, m);
        let align = ((step - down.delay() as u64 % step) % step) as usize;
        let intrinsic = up.delay() as u64 + (down.delay() + align) as u64 * h / m;
        let latency = worst_lag(&down, &up, window, hop, align, intrinsic)?;
        let mut s = Self {
            processor,
            scratch_down: vec![0.0; down.chunk_out()],
            scratch_up: vec![0.0; up.chunk_out()],
            host_in: Vec::with_capacity(down.chunk_in()),
            model_out: Vec::with_capacity(up.chunk_in() + hop),
            model_in: VecDeque::with_capacity(window + down.chunk_out() + align),
            host_out: VecDeque::with_capacity(
                latency + up.chunk_out() * 2 + (hop as u64 * h / m) as usize + 16,
            ),
            down,
            up,
            window,
            hop,
            model_rate,
            align,
            latency,
            intrinsic: intrinsic as usize,
            lead: 0,
            scratch_window: vec![0.0; window],
            scratch_hop: vec![0.0; hop],
            windows_done: 0,
            deadline: None,
            effort: Effort::new(),
            silent_input: 0,
            memory: 0,
        };
        s.memory = 2 * s.latency + (window as u64 * h / m) as usize + 4 * s.down.chunk_in();
        s.reset();
        Ok(s)
    }

    /// Latency of the delta relative to the input, in host samples.
    pub fn latency(&self) -> usize {
        self.latency
    }

    /// Windows processed so far.
    pub fn windows_done(&self) -> u64 {
        self.windows_done
    }

    /// Keep up with real time during the next [`process`](Self::process)
    /// call: its output is due in `seconds`, so windows get no more steps
    /// than fit (see [`Effort`]). `None` (the default) gives every window
    /// all the steps its settings ask for, as an offline render must.
    pub fn set_deadline(&mut self, seconds: Option<f64>) {
        self.deadline = seconds;
    }

    /// The step budget's estimates and what it last gave.
    pub fn effort(&self) -> &Effort {
        &self.effort
    }

    /// The window processor.
    pub fn processor(&self) -> &P {
        &self.processor
    }

    /// The window processor, to change its settings between windows.
    pub fn processor_mut(&mut self) -> &mut P {
        &mut self.processor
    }

    /// Forgets the stream's history, as at construction.
    pub fn reset(&mut self) {
        self.down.reset();
        self.up.reset();
        self.host_in.clear();
        self.model_in.clear();
        self.model_in.extend(std::iter::repeat_n(0.0, self.align));
        self.processor.reset();
        self.model_out.clear();
        self.host_out.clear();
        self.lead = self.latency - self.intrinsic;
        self.silent_input = 0;
        self.windows_done = 0;
    }

    /// Feeds `input` (host rate) and writes the delta for the same span of
    /// time into `delta` (same length), `latency()` samples late.
    pub fn process(&mut self, input: &[f32], delta: &mut [f32]) -> Result<(), StreamError> {
        assert_eq!(input.len(), delta.len(), "input and delta blocks must match");
        let silent = input.iter().all(|&v| v == 0.0);
        if silent && self.silent_input >= self.memory && self.processor.quiescent() {
            // Idle: silence in, silence out, for a fraction of the cost.
            self.skip_silence(input.len());
            delta.fill(0.0);
            self.silent_input = self.silent_input.saturating_add(input.len());
            return Ok(());
        }
        self.silent_input = if silent {
            self.silent_input.saturating_add(input.len())
        } else {
            input.iter().rev().take_while(|&&v| v == 0.0).count()
        };
        let started = self.deadline.map(|d| (d, Instant::now()));
        let mut first_error = None;
        let mut rest = input;
        while !rest.is_empty() {
            let take = (self.down.chunk_in() - self.host_in.len()).min(rest.len());
            // Nothing non-finite or absurdly loud may reach the resampler or
            // the model: one overflow there poisons every later window.
            self.host_in.extend(rest[..take].iter().map(|&v| {
                if v.is_finite() {
                    v.clamp(-MAX_INPUT, MAX_INPUT)
                } else {
                    0.0
                }
            }));
            rest = &rest[take..];
            if self.host_in.len() == self.down.chunk_in() {
                self.down.process(&self.host_in, &mut self.scratch_down)?;
                self.host_in.clear();
                self.model_in.extend(self.scratch_down.iter().copied());
                // Keep going after a failed window so the stream stays aligned.
                if let Err(e) = self.run_windows(started) {
                    first_error.get_or_insert(e);
                }
            }
        }
        for out in delta.iter_mut() {
            *out = if self.lead > 0 {
                self.lead -= 1;
                0.0
            } else {
                // The latency is the worst case over every block pattern,
                // so a sample is always ready; 0.0 only guards a logic error.
                debug_assert!(!self.host_out.is_empty(), "delta stream ran dry");
                self.host_out.pop_front().unwrap_or(0.0)
            };
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Moves the stream on by `n` samples of exact silence, as processing
    /// them would, but only counting: every buffer holds silence, so only
    /// how much of it each holds changes.
    fn skip_silence(&mut self, n: usize) {
        let mut rest = n;
        while rest > 0 {
            let take = (self.down.chunk_in() - self.host_in.len()).min(rest);
            self.host_in.resize(self.host_in.len() + take, 0.0);
            rest -= take;
            if self.host_in.len() == self.down.chunk_in() {
                self.host_in.clear();
                self.model_in
                    .extend(std::iter::repeat_n(0.0, self.down.chunk_out()));
                while self.model_in.len() >= self.window {
                    self.processor.skip_window();
                    self.windows_done += 1;
                    self.model_out.extend(std::iter::repeat_n(0.0, self.hop));
                    self.model_in.drain(..self.hop);
                    while self.model_out.len() >= self.up.chunk_in() {
                        self.model_out.drain(..self.up.chunk_in());
                        self.host_out
                            .extend(std::iter::repeat_n(0.0, self.up.chunk_out()));
                    }
                }
            }
        }
        let from_lead = self.lead.min(n);
        self.lead -= from_lead;
        self.host_out.drain(..(n - from_lead).min(self.host_out.len()));
    }

    fn run_windows(&mut self, deadline: Option<(f64, Instant)>) -> Result<(), StreamError> {
        let mut first_error = None;
        let hop_seconds = self.hop as f64 / f64::from(self.model_rate);
        while self.model_in.len() >= self.window {
            for (dst, src) in self.scratch_window.iter_mut().zip(self.model_in.iter()) {
                *dst = *src;
            }
            let asked = self.processor.asked_steps();
            // Only a stream that keeps up with the clock reads it.
            let planned = match deadline {
                Some((seconds, since)) if asked > 0 => {
                    let left = seconds - since.elapsed().as_secs_f64();
                    let steps = self.effort.plan(asked, left, hop_seconds);
                    self.processor.limit_next(steps);
                    Some((steps, Instant::now()))
                }
                _ => None,
            };
            // A window that fails still hands back what change it has, and
            // the stream moves on: retrying the same window forever would
            // stall it.
            if let Err(e) = self
                .processor
                .process(&self.scratch_window, &mut self.scratch_hop)
            {
                first_error.get_or_insert(e);
            }
            if let Some((steps, started)) = planned {
                self.effort.record(steps, started.elapsed().as_secs_f64());
            }
            self.windows_done += 1;
            self.model_out.extend_from_slice(&self.scratch_hop);
            self.model_in.drain(..self.hop);
            while self.model_out.len() >= self.up.chunk_in() {
                let n = self.up.chunk_in();
                self.up.process(&self.model_out[..n], &mut self.scratch_up)?;
                self.model_out.drain(..n);
                self.host_out.extend(self.scratch_up.iter().copied());
            }
        }
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}

/// The smallest latency at which every delta sample is ready by the time it
/// must be output, for every way of splitting the input into blocks.
///
/// After `n` input samples the pipeline has produced `f(n)` host-rate delta
/// samples, whose first one belongs to input sample `-intrinsic`; output
/// sample `n - 1` needs delta index `n - 1 - latency + intrinsic`, so the
/// latency is the maximum of `n + intrinsic - f(n)`. `n - f(n)` is periodic,
/// so one period past the start-up is enough to find it.
fn worst_lag(
    down: &ChunkResampler,
    up: &ChunkResampler,
    window: usize,
    hop: usize,
    align: usize,
    intrinsic: u64,
) -> Result<usize, StreamError> {
    let (ci_a, co_a) = (down.chunk_in() as u64, down.chunk_out() as u64);
    let (ci_c, co_c) = (up.chunk_in() as u64, up.chunk_out() as u64);
    let (w, h) = (window as u64, hop as u64);
    let produced = |n: u64| -> u64 {
        let y = align as u64 + n / ci_a * co_a;
        let z = if y >= w { ((y - w) / h + 1) * h } else { 0 };
        z / ci_c * co_c
    };
    let q = lcm(h, ci_c);
    let period = ci_a * (q / gcd(co_a, q));
    // Start-up: the first window needs `window` model samples.
    let startup = (w + align as u64) * ci_a / co_a + 2 * ci_a;
    let end = startup + 2 * period;
    if end > 200_000_000 {
        return Err(StreamError::Config(format!(
            "rate ratio too awkward (period {period} samples)"
        )));
    }
    let mut worst = 0u64;
    let mut n = 1u64;
    while n <= end {
        worst = worst.max(n + intrinsic - produced(n).min(n + intrinsic));
        n += 1;
    }
    Ok(worst as usize)
}
