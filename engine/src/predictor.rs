//! Backward-adaptive linear prediction of audio from its own past, as ITU
//! G.728 predicts speech without sending any coefficients: an unconditional
//! WaveNet has no features to take a predictor from, so it is fitted to the
//! samples already generated (or, in training and likelihood, already
//! seen), every few milliseconds.
//!
//! Two stages, as LPCNet's and the speech codecs' predictors:
//! - **short-term** (the spectral envelope): order-`order` linear prediction
//!   from the autocorrelation of the last `window` samples (Hann-weighted,
//!   with a small white-noise correction so a pure tone stays well
//!   conditioned), solved by Levinson-Durbin, and optionally
//!   bandwidth-expanded as G.728 does (see [`PredictorConfig::expansion`]);
//! - **long-term** (the pitch): the short-term residual one pitch period
//!   back, scaled; the lag is where the normalised correlation of the last
//!   `window` residuals with their own past peaks, between `min_lag` and
//!   `max_lag`, and the gain is that correlation's least-squares gain,
//!   clamped to 0..1 (a predictor must never amplify); optionally the
//!   period back goes through a string's loss filter (see
//!   [`PredictorConfig::pitch_lowpass`]).
//!
//! Both are refitted every `update_every` samples from history only, so
//! the prediction of a sample never depends on the sample itself. Every
//! buffer is allocated in [`Predictor::new`]: [`Predictor::predict`] and
//! [`Predictor::push`] never allocate, and the same input gives the same
//! predictions bit for bit wherever the predictor runs.

/// How the predictor is built; stored with a model that uses it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PredictorConfig {
    /// Short-term prediction order (16 to 32 for audio at 16 kHz).
    pub order: usize,
    /// Samples of history each fit looks at.
    pub window: usize,
    /// Samples between fits.
    pub update_every: usize,
    /// Whether the long-term (pitch) stage runs.
    pub long_term: bool,
    /// Shortest pitch period searched, in samples.
    pub min_lag: usize,
    /// Longest pitch period searched, in samples.
    pub max_lag: usize,
    /// Bandwidth expansion of the short-term stage, G.728's (which uses
    /// 253/256): coefficient `k` (1-based) is scaled by `expansion^k`,
    /// which moves every pole of the synthesis filter inward by that factor
    /// and widens each resonance by about `(1 - expansion) * rate / pi`
    /// Hz. A backward-adaptive predictor refitted to its own output can
    /// sharpen a resonance fit after fit into a whistle; this bounds that.
    /// 1 (every file before the option, which stores nothing for it):
    /// none.
    #[serde(default = "no_expansion", skip_serializing_if = "is_no_expansion")]
    pub expansion: f32,
    /// Loss filter of the pitch stage, as in a Karplus-Strong string: the
    /// residual one period back is taken through the taps `(a, 1 - 2a, a)`
    /// around the lag, so each period repeats the highs a little weaker
    /// (a harmonic at `w` radians per sample by `1 - 4a sin^2(w / 2)`), as a
    /// piano string's upper partials die sooner than its fundamental. 0
    /// (every file before the option, which stores nothing for it): the
    /// single tap at the lag.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pitch_lowpass: f32,
}

fn is_zero(a: &f32) -> bool {
    *a == 0.0
}

fn no_expansion() -> f32 {
    1.0
}

fn is_no_expansion(e: &f32) -> bool {
    *e == 1.0
}

impl PredictorConfig {
    /// The default for audio at `rate` Hz: order 16, 30 ms windows refitted
    /// every 2.5 ms, pitch periods from 2 ms (500 Hz) to 20 ms (50 Hz).
    pub fn for_rate(rate: u32) -> Self {
        let ms = |m: f32| ((rate as f32 * m / 1000.0).round() as usize).max(1);
        Self {
            order: 16,
            window: ms(30.0),
            update_every: ms(2.5),
            long_term: true,
            min_lag: ms(2.0),
            max_lag: ms(20.0),
            expansion: 1.0,
            pitch_lowpass: 0.0,
        }
    }

    /// Whether the numbers make a predictor.
    pub fn validate(&self) -> Result<(), PredictorError> {
        let bad = |why: &'static str| Err(PredictorError::Config { why });
        if self.order == 0 || self.order >= self.window {
            return bad("the order must be at least 1 and below the window");
        }
        if self.update_every == 0 {
            return bad("update_every must be at least 1");
        }
        // A model file sets these: it must not make the loader allocate
        // without bound.
        if self.window > MAX_SPAN || self.max_lag > MAX_SPAN || self.update_every > MAX_SPAN {
            return bad("the window, the refit interval and the pitch lags must be at most 65536 samples");
        }
        if self.long_term && (self.min_lag == 0 || self.min_lag > self.max_lag) {
            return bad("the pitch lags must satisfy 1 <= min_lag <= max_lag");
        }
        if !(self.expansion > 0.0 && self.expansion <= 1.0) {
            return bad("the bandwidth expansion must be above 0 and at most 1");
        }
        if !(0.0..=0.25).contains(&self.pitch_lowpass) {
            return bad("the pitch stage's loss filter must be between 0 and 0.25");
        }
        if self.pitch_lowpass > 0.0 && self.long_term && self.min_lag < 2 {
            return bad("the pitch stage's loss filter needs pitch lags of at least 2");
        }
        Ok(())
    }

    /// Samples of history the predictor keeps.
    fn history(&self) -> usize {
        let lags = if self.long_term { self.max_lag } else { 0 };
        (self.window + lags + self.order + 1).next_power_of_two()
    }
}

/// The longest window, refit interval or pitch lag a predictor may have.
pub const MAX_SPAN: usize = 1 << 16;

/// Why a predictor cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PredictorError {
    /// The configuration does not make a predictor.
    #[error("bad predictor configuration: {why}")]
    Config {
        /// What is wrong.
        why: &'static str,
    },
}

/// A backward-adaptive predictor; see the [module](self).
#[derive(Debug, Clone)]
pub struct Predictor {
    config: PredictorConfig,
    /// Past samples and past short-term residuals, rings of `mask + 1`.
    samples: Vec<f32>,
    residuals: Vec<f32>,
    mask: usize,
    /// Samples pushed so far.
    pushed: u64,
    /// Short-term coefficients: prediction = sum of `lpc[k] * s[t-1-k]`.
    lpc: Vec<f32>,
    /// Pitch lag (samples) and gain.
    lag: usize,
    gain: f32,
    /// Scratch for a fit.
    windowed: Vec<f64>,
    taper: Vec<f64>,
    autocorrelation: Vec<f64>,
    levinson: Vec<f64>,
    previous: Vec<f64>,
    recent: Vec<f32>,
}

/// Relative white-noise correction added to the autocorrelation at lag 0
/// (-40 dB): keeps the normal equations well conditioned on a pure tone.
const NOISE_CORRECTION: f64 = 1e-4;
/// Below this energy per sample a window is silence: no prediction.
const SILENCE: f64 = 1e-12;

impl Predictor {
    /// A predictor with empty (silent) history.
    pub fn new(config: PredictorConfig) -> Result<Self, PredictorError> {
        config.validate()?;
        let len = config.history();
        let taper = (0..config.window)
            .map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * (i as f64 + 0.5) / config.window as f64).cos())
            .collect();
        Ok(Self {
            config,
            samples: vec![0.0; len],
            residuals: vec![0.0; len],
            mask: len - 1,
            pushed: 0,
            lpc: vec![0.0; config.order],
            lag: config.min_lag.max(1),
            gain: 0.0,
            windowed: vec![0.0; config.window],
            taper,
            autocorrelation: vec![0.0; config.order + 1],
            levinson: vec![0.0; config.order + 1],
            previous: vec![0.0; config.order + 1],
            recent: vec![0.0; config.window + config.max_lag + 1],
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &PredictorConfig {
        &self.config
    }

    /// Back to silent history.
    pub fn reset(&mut self) {
        self.samples.fill(0.0);
        self.residuals.fill(0.0);
        self.pushed = 0;
        self.lpc.fill(0.0);
        self.gain = 0.0;
        self.lag = self.config.min_lag.max(1);
    }

    /// The sample `back` steps before the next one (1 = the last pushed).
    fn sample(&self, back: usize) -> f32 {
        self.samples[(self.pushed as usize).wrapping_sub(back) & self.mask]
    }

    fn residual(&self, back: usize) -> f32 {
        self.residuals[(self.pushed as usize).wrapping_sub(back) & self.mask]
    }

    /// The short-term part of the next sample's prediction.
    fn short_term(&self) -> f32 {
        let mut sum = 0.0f32;
        for (k, &a) in self.lpc.iter().enumerate() {
            sum += a * self.sample(k + 1);
        }
        sum
    }

    /// The prediction of the next sample from the history so far.
    pub fn predict(&self) -> f32 {
        let short_term = self.short_term();
        if !self.config.long_term {
            return short_term;
        }
        let a = self.config.pitch_lowpass;
        if a == 0.0 {
            short_term + self.gain * self.residual(self.lag)
        } else {
            let past = a * self.residual(self.lag - 1)
                + (1.0 - 2.0 * a) * self.residual(self.lag)
                + a * self.residual(self.lag + 1);
            short_term + self.gain * past
        }
    }

    /// The next sample's prediction by the short-term stage alone, and by
    /// both stages (the same as [`predict`](Self::predict); equal to the
    /// first when the long-term stage is off).
    pub fn predict_stages(&self) -> (f32, f32) {
        (self.short_term(), self.predict())
    }

    /// The current short-term coefficients (`s[t] ≈ Σ lpc[k] s[t-1-k]`).
    pub fn coefficients(&self) -> &[f32] {
        &self.lpc
    }

    /// The current pitch lag in samples and its gain (0 when the long-term
    /// stage is off or found nothing periodic).
    pub fn pitch(&self) -> (usize, f32) {
        (self.lag, self.gain)
    }

    /// Appends the sample that came (whether or not its prediction was
    /// asked for: priming pushes only) and refits when it is time.
    pub fn push(&mut self, sample: f32) {
        // A predictor fitted to an overflow would predict overflows.
        let sample = if sample.is_finite() {
            sample.clamp(-crate::streaming::MAX_INPUT, crate::streaming::MAX_INPUT)
        } else {
            0.0
        };
        let residual = sample - self.short_term();
        let at = self.pushed as usize & self.mask;
        self.samples[at] = sample;
        self.residuals[at] = residual;
        self.pushed += 1;
        if self.pushed.is_multiple_of(self.config.update_every as u64) {
            self.fit();
        }
    }

    /// Predicts every sample of `signal` in turn (each from the ones before
    /// it), as a teacher-forced pass does.
    pub fn predict_all(&mut self, signal: &[f32], predictions: &mut [f32]) {
        for (p, &s) in predictions.iter_mut().zip(signal) {
            *p = self.predict();
            self.push(s);
        }
    }

    fn fit(&mut self) {
        let (order, window) = (self.config.order, self.config.window);
        for i in 0..window {
            self.windowed[i] = f64::from(self.sample(window - i)) * self.taper[i];
        }
        for lag in 0..=order {
            self.autocorrelation[lag] = self.windowed[lag..]
                .iter()
                .zip(&self.windowed)
                .map(|(a, b)| a * b)
                .sum();
        }
        if self.autocorrelation[0] <= SILENCE * window as f64 {
            self.lpc.fill(0.0);
            self.gain = 0.0;
            return;
        }
        self.autocorrelation[0] *= 1.0 + NOISE_CORRECTION;
        levinson(&self.autocorrelation, &mut self.levinson, &mut self.previous);
        let expansion = f64::from(self.config.expansion);
        let mut scale = 1.0f64;
        for (c, &a) in self.lpc.iter_mut().zip(&self.levinson[1..]) {
            scale *= expansion;
            *c = (a * scale) as f32;
        }
        if self.config.long_term {
            self.fit_pitch();
        }
    }

    /// The lag whose past residuals best predict the last `window` ones.
    fn fit_pitch(&mut self) {
        let (window, min_lag, max_lag) = (self.config.window, self.config.min_lag, self.config.max_lag);
        // Oldest first, contiguous, so each lag's correlation is one dot
        // product of two slices; one more at the start for the loss
        // filter's tap beyond the longest lag.
        let len = window + max_lag + 1;
        let (ring, mask, pushed) = (&self.residuals, self.mask, self.pushed as usize);
        for (j, r) in self.recent.iter_mut().enumerate() {
            *r = ring[pushed.wrapping_sub(len - j) & mask];
        }
        let now = &self.recent[len - window..];
        let at = |lag: usize| &self.recent[len - window - lag..len - lag];
        let mut energy: f64 = at(min_lag).iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let (mut best, mut best_score, mut best_gain) = (min_lag, 0.0f64, 0.0f64);
        for lag in min_lag..=max_lag {
            if lag > min_lag {
                // The window one step further back: one residual in, one out.
                let (enter, leave) = (
                    f64::from(self.recent[len - window - lag]),
                    f64::from(self.recent[len - lag]),
                );
                energy += enter * enter - leave * leave;
            }
            let cross = f64::from(dot(now, at(lag)));
            if cross > 0.0 && energy > SILENCE * window as f64 {
                let score = cross * cross / energy;
                if score > best_score {
                    (best, best_score, best_gain) = (lag, score, cross / energy);
                }
            }
        }
        self.lag = best;
        let a = f64::from(self.config.pitch_lowpass);
        if a > 0.0 && best_score > 0.0 {
            // The gain for what the prediction repeats: the filtered past.
            let start = len - window - best;
            let (mut cross, mut energy) = (0.0f64, 0.0f64);
            for (i, &n) in now.iter().enumerate() {
                let r = |j: usize| f64::from(self.recent[j]);
                let past = a * r(start + i + 1) + (1.0 - 2.0 * a) * r(start + i) + a * r(start + i - 1);
                cross += f64::from(n) * past;
                energy += past * past;
            }
            best_gain = if energy > SILENCE * window as f64 {
                cross / energy
            } else {
                0.0
            };
        }
        self.gain = best_gain.clamp(0.0, 1.0) as f32;
    }
}

/// A dot product in eight running sums, which the compiler keeps in one
/// vector register (one sum would be a chain of dependent additions).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (chunks_a, chunks_b) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in chunks_a.zip(chunks_b) {
        for k in 0..8 {
            sums[k] += x[k] * y[k];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Levinson-Durbin: solves the normal equations of order `r.len() - 1`
/// for the Toeplitz autocorrelation `r`. Writes `a` with `a[0] = 1` unused
/// and `a[1..]` the predictor (`x[t] ≈ Σ a[k] x[t-k]`); `scratch` is the
/// previous order's solution.
pub fn levinson(r: &[f64], a: &mut [f64], scratch: &mut [f64]) {
    let order = r.len() - 1;
    a.fill(0.0);
    a[0] = 1.0;
    let mut error = r[0];
    for m in 1..=order {
        if error <= 0.0 {
            break;
        }
        let mut acc = r[m];
        for k in 1..m {
            acc -= a[k] * r[m - k];
        }
        let reflection = acc / error;
        scratch[..m].copy_from_slice(&a[..m]);
        a[m] = reflection;
        for k in 1..m {
            a[k] = scratch[k] - reflection * scratch[m - k];
        }
        error *= 1.0 - reflection * reflection;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The normal equations `R a = r` solved directly (Gaussian elimination
    /// with partial pivoting), the reference Levinson-Durbin must equal.
    fn solve_normal_equations(r: &[f64]) -> Vec<f64> {
        let n = r.len() - 1;
        let mut m: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                let mut row: Vec<f64> = (0..n).map(|j| r[i.abs_diff(j)]).collect();
                row.push(r[i + 1]);
                row
            })
            .collect();
        for col in 0..n {
            let pivot = (col..n)
                .max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
                .unwrap();
            m.swap(col, pivot);
            let pivot_row = m[col].clone();
            for (row, values) in m.iter_mut().enumerate() {
                if row != col {
                    let f = values[col] / pivot_row[col];
                    for (v, p) in values[col..].iter_mut().zip(&pivot_row[col..]) {
                        *v -= f * p;
                    }
                }
            }
        }
        (0..n).map(|i| m[i][n] / m[i][i]).collect()
    }

    fn autocorrelation(x: &[f64], order: usize) -> Vec<f64> {
        (0..=order)
            .map(|lag| x[lag..].iter().zip(x).map(|(a, b)| a * b).sum())
            .collect()
    }

    #[test]
    fn levinson_solves_the_normal_equations() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for order in [1, 2, 8, 16, 32] {
            // Coloured noise, so the system is not trivially diagonal.
            let mut state = 0.0f64;
            let x: Vec<f64> = (0..2_000)
                .map(|_| {
                    state = 0.9 * state + rng.random_range(-1.0..1.0);
                    state
                })
                .collect();
            let r = autocorrelation(&x, order);
            let (mut a, mut scratch) = (vec![0.0; order + 1], vec![0.0; order + 1]);
            levinson(&r, &mut a, &mut scratch);
            let direct = solve_normal_equations(&r);
            for (k, (l, d)) in a[1..].iter().zip(&direct).enumerate() {
                assert!(
                    (l - d).abs() < 1e-9 * (1.0 + d.abs()),
                    "order {order}, a[{k}]: {l} vs {d}"
                );
            }
        }
    }

    #[test]
    fn short_term_prediction_finds_an_ar2_process() {
        // x[t] = 1.6 x[t-1] - 0.9 x[t-2] + e[t]: a resonance at 16 kHz of
        // about 1.4 kHz. The predictor must find the two coefficients and
        // leave about the innovation's energy.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let config = PredictorConfig {
            long_term: false,
            ..PredictorConfig::for_rate(16_000)
        };
        let mut p = Predictor::new(config).unwrap();
        let (mut x1, mut x2) = (0.0f32, 0.0f32);
        let (mut innovation, mut residual, mut signal) = (0.0f64, 0.0f64, 0.0f64);
        for t in 0..16_000 {
            let e: f32 = 0.01 * rng.random_range(-1.0f32..1.0);
            let x = 1.6 * x1 - 0.9 * x2 + e;
            let guess = p.predict();
            p.push(x);
            if t > 1_000 {
                innovation += f64::from(e * e);
                residual += f64::from((x - guess).powi(2));
                signal += f64::from(x * x);
            }
            (x2, x1) = (x1, x);
        }
        let c = p.coefficients();
        assert!((c[0] - 1.6).abs() < 0.1 && (c[1] + 0.9).abs() < 0.1, "{c:?}");
        assert!(
            residual < 1.3 * innovation,
            "residual {residual}, innovation {innovation}"
        );
        // The innovation is 4.4% of this process's power: a 13 dB prediction gain.
        assert!(residual < 0.08 * signal, "residual {residual}, signal {signal}");
    }

    /// The AR(2) process of the test above, `n` samples.
    fn ar2(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (mut x1, mut x2) = (0.0f32, 0.0f32);
        (0..n)
            .map(|_| {
                let x = 1.6 * x1 - 0.9 * x2 + 0.01 * rng.random_range(-1.0f32..1.0);
                (x2, x1) = (x1, x);
                x
            })
            .collect()
    }

    #[test]
    fn bandwidth_expansion_scales_coefficient_k_by_the_kth_power() {
        let x = ar2(4_000, 8);
        let plain = PredictorConfig::for_rate(16_000);
        let expanded = PredictorConfig {
            expansion: 0.98,
            ..plain
        };
        let (mut a, mut b) = (Predictor::new(plain).unwrap(), Predictor::new(expanded).unwrap());
        let mut checked = 0;
        for (t, &v) in x.iter().enumerate() {
            a.push(v);
            b.push(v);
            if t % 97 == 0 && t > 1_000 {
                for (k, (&ca, &cb)) in a.coefficients().iter().zip(b.coefficients()).enumerate() {
                    let want = f64::from(ca) * 0.98f64.powi(k as i32 + 1);
                    assert!(
                        (f64::from(cb) - want).abs() <= 1e-6 * (1.0 + want.abs()),
                        "sample {t}, coefficient {k}: {cb} against {want}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked > 20);
        // The fitted resonance (poles at radius sqrt(0.9) for the process):
        // the product of the two poles is -c[1], which shrinks by 0.98^2.
        let (ca, cb) = (a.coefficients(), b.coefficients());
        assert!(
            ca[1] < -0.8 && (cb[1] / ca[1] - 0.98 * 0.98).abs() < 1e-4,
            "{ca:?} {cb:?}"
        );
    }

    #[test]
    fn the_pitch_loss_filter_predicts_the_filtered_period_back() {
        let x = noise_loop(170, 6_000, 11);
        let config = PredictorConfig {
            pitch_lowpass: 0.2,
            ..PredictorConfig::for_rate(16_000)
        };
        let mut p = Predictor::new(config).unwrap();
        for &v in &x[..4_000] {
            p.push(v);
        }
        let (lag, gain) = p.pitch();
        assert_eq!(lag, 170);
        // A white-noise loop through (0.2, 0.6, 0.2): its correlation with
        // the filtered past is 0.6 of its power, the filtered power 0.44
        // of it, so the least-squares gain 1.36 is clamped to 1.
        assert!(gain > 0.9 && gain <= 1.0, "{gain}");
        let e = |back: usize| p.residual(back);
        let want = p.short_term() + gain * (0.2 * e(169) + 0.6 * e(170) + 0.2 * e(171));
        assert_eq!(p.predict(), want);
        // The taps weaken the highs of each period: a loop of the
        // Nyquist-rate alternation is repeated at 1 - 4a = 0.2 of its size
        // through the filter, so the prediction of it from the pitch stage
        // alone is far weaker than without the filter.
        let alternating: Vec<f32> = (0..6_000).map(|i| if i % 2 == 0 { 0.3 } else { -0.3 }).collect();
        let single = PredictorConfig {
            order: 1,
            expansion: 0.01,
            ..PredictorConfig::for_rate(16_000)
        };
        let filtered = PredictorConfig {
            pitch_lowpass: 0.2,
            ..single
        };
        let (r_single, signal) = residual_energy(single, &alternating, 2_000);
        let (r_filtered, _) = residual_energy(filtered, &alternating, 2_000);
        assert!(r_single < 0.05 * signal, "single tap: {r_single} of {signal}");
        assert!(r_filtered > 0.3 * signal, "filtered: {r_filtered} of {signal}");
    }

    #[test]
    fn no_expansion_predicts_bit_for_bit_as_before_and_is_not_stored() {
        let x = ar2(3_000, 9);
        let plain = PredictorConfig::for_rate(16_000);
        let mut p = Predictor::new(plain).unwrap();
        let mut guesses = vec![0.0; x.len()];
        p.predict_all(&x, &mut guesses);
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("expansion"), "{json}");
        // A file from before the option reads back as no expansion.
        let back: PredictorConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plain);
        let stored = serde_json::to_string(&PredictorConfig {
            expansion: 0.99,
            ..plain
        })
        .unwrap();
        assert!(stored.contains("\"expansion\":0.99"), "{stored}");
        // The expansion multiplies by exactly 1: the same predictions.
        let mut again = Predictor::new(back).unwrap();
        let mut repeat = vec![0.0; x.len()];
        again.predict_all(&x, &mut repeat);
        assert_eq!(guesses, repeat);
    }

    /// A loop of white noise `period` samples long: no short-term
    /// predictor can guess it, a pitch predictor can.
    fn noise_loop(period: usize, len: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let cycle: Vec<f32> = (0..period)
            .map(|_| 0.3 * rng.random_range(-1.0f32..1.0))
            .collect();
        (0..len).map(|i| cycle[i % period]).collect()
    }

    fn residual_energy(config: PredictorConfig, x: &[f32], skip: usize) -> (f64, f64) {
        let mut p = Predictor::new(config).unwrap();
        let mut guesses = vec![0.0; x.len()];
        p.predict_all(x, &mut guesses);
        let residual = x[skip..]
            .iter()
            .zip(&guesses[skip..])
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum();
        let signal = x[skip..].iter().map(|&a| f64::from(a).powi(2)).sum();
        (residual, signal)
    }

    #[test]
    fn the_pitch_stage_predicts_a_periodic_sound_the_short_term_cannot() {
        let x = noise_loop(170, 8_000, 5);
        let with = PredictorConfig::for_rate(16_000);
        let without = PredictorConfig {
            long_term: false,
            ..with
        };
        let (r_with, signal) = residual_energy(with, &x, 2_000);
        let (r_without, _) = residual_energy(without, &x, 2_000);
        assert!(
            r_without > 0.5 * signal,
            "short-term alone: {r_without} of {signal}"
        );
        assert!(r_with < 0.02 * signal, "with pitch: {r_with} of {signal}");
        let mut p = Predictor::new(with).unwrap();
        let mut guesses = vec![0.0; x.len()];
        p.predict_all(&x, &mut guesses);
        let (lag, gain) = p.pitch();
        assert_eq!(lag, 170);
        assert!(gain > 0.9 && gain <= 1.0, "{gain}");
    }

    #[test]
    fn the_pitch_search_is_the_best_lag_by_brute_force() {
        // The residual one lag back that explains the last window best, by
        // direct least squares over every lag, is the lag the fit keeps.
        // Periods whose multiples are out of the searched range (320).
        let x: Vec<f32> = noise_loop(167, 4_000, 6)
            .iter()
            .zip(noise_loop(61, 4_000, 7))
            .map(|(a, b)| a + 0.5 * b)
            .collect();
        let config = PredictorConfig::for_rate(16_000);
        let mut p = Predictor::new(config).unwrap();
        let mut guesses = vec![0.0; x.len()];
        p.predict_all(&x, &mut guesses);
        // 4000 is a multiple of update_every (40): the last fit saw all.
        let e: Vec<f64> = (1..=config.window + config.max_lag)
            .map(|back| f64::from(p.residual(back)))
            .collect();
        let gain_error = |lag: usize| {
            let cross: f64 = (0..config.window).map(|i| e[i] * e[i + lag]).sum();
            let energy: f64 = (0..config.window).map(|i| e[i + lag] * e[i + lag]).sum();
            let g = (cross / energy).clamp(0.0, 1.0);
            (0..config.window)
                .map(|i| (e[i] - g * e[i + lag]).powi(2))
                .sum::<f64>()
        };
        let best = (config.min_lag..=config.max_lag)
            .min_by(|&a, &b| gain_error(a).total_cmp(&gain_error(b)))
            .unwrap();
        assert_eq!(p.pitch().0, best);
        assert_eq!(best, 167);
    }

    #[test]
    fn silence_and_broken_input_predict_nothing() {
        let mut p = Predictor::new(PredictorConfig::for_rate(16_000)).unwrap();
        for _ in 0..2_000 {
            assert_eq!(p.predict(), 0.0);
            p.push(0.0);
        }
        for v in [f32::NAN, f32::INFINITY, 1e30, -1e30] {
            for _ in 0..100 {
                assert!(p.predict().is_finite());
                p.push(v);
            }
        }
        // The same input, the same predictions, bit for bit; reset forgets.
        let x = noise_loop(90, 3_000, 8);
        let (mut a, mut b) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        p.reset();
        p.predict_all(&x, &mut a);
        let mut q = Predictor::new(PredictorConfig::for_rate(16_000)).unwrap();
        q.predict_all(&x, &mut b);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn bad_configurations_are_errors() {
        let good = PredictorConfig::for_rate(16_000);
        assert_eq!((good.order, good.window, good.update_every), (16, 480, 40));
        assert_eq!((good.min_lag, good.max_lag), (32, 320));
        for bad in [
            PredictorConfig { order: 0, ..good },
            PredictorConfig { order: 480, ..good },
            PredictorConfig {
                update_every: 0,
                ..good
            },
            PredictorConfig { min_lag: 400, ..good },
            PredictorConfig {
                expansion: 0.0,
                ..good
            },
            PredictorConfig {
                expansion: 1.01,
                ..good
            },
            PredictorConfig {
                expansion: f32::NAN,
                ..good
            },
        ] {
            assert!(
                matches!(Predictor::new(bad), Err(PredictorError::Config { .. })),
                "{bad:?}"
            );
        }
    }
}
