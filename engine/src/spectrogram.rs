//! A scrolling spectrogram: short-time spectra of a stream on a
//! logarithmic frequency axis, as levels from 0 (the floor) to 1 (full
//! scale). The editor feeds it what the scope ring delivered (on its own
//! thread, only while open); `cargo xtask spectrogram` feeds it files.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::filters::db_to_level;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

/// Lowest frequency drawn, in Hz.
const LOW_HZ: f32 = 30.0;
/// Highest frequency drawn (or Nyquist, if lower), in Hz.
const HIGH_HZ: f32 = 20_000.0;

/// Short-time spectra of one stream.
pub struct Spectrogram {
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    /// Makes a full-scale sine read 0 dB: 2 / sum of the window.
    scale: f32,
    hop: usize,
    floor_db: f32,
    /// Bins `[start, end)` feeding each row, lowest row first.
    rows: Vec<(usize, usize)>,
    row_hz: Vec<f32>,
    /// Lower edge of the lowest row and upper edge of the highest, in Hz.
    range_hz: (f32, f32),
    pending: VecDeque<f32>,
    since_last: usize,
    buf: Vec<Complex32>,
    columns: VecDeque<Vec<f32>>,
    max_columns: usize,
    /// Bumped whenever `columns` changes, so a picture of them is redrawn
    /// only then.
    version: u64,
}

impl Spectrogram {
    /// A spectrogram of audio at `rate` Hz keeping the last `columns`
    /// columns, one every `hop_seconds`, with `rows` frequency rows and
    /// `floor_db` (negative, dB relative to full scale) drawn as 0.
    pub fn new(rate: u32, rows: usize, columns: usize, hop_seconds: f32, floor_db: f32) -> Self {
        let rate = rate.max(1000) as f32;
        // About 46 ms: resolves neighbouring semitones above ~300 Hz.
        let size = ((rate * 0.046) as usize).next_power_of_two().max(256);
        let fft = FftPlanner::new().plan_fft_forward(size);
        let window = crate::stft::hann(size);
        let scale = 2.0 / window.iter().sum::<f32>();
        let bin_hz = rate / size as f32;
        let high = HIGH_HZ.min(rate / 2.0);
        let rows = rows.max(1);
        let edge = |r: usize| LOW_HZ * (high / LOW_HZ).powf(r as f32 / rows as f32);
        let (bins, row_hz) = (0..rows)
            .map(|r| {
                let (lo, hi) = (edge(r), edge(r + 1));
                let start = (lo / bin_hz).round() as usize;
                // Rows narrower than a bin take the nearest one.
                let end = ((hi / bin_hz).round() as usize).max(start + 1).min(size / 2);
                ((start.min(end - 1), end), (lo * hi).sqrt())
            })
            .unzip();
        Self {
            fft,
            scale,
            hop: ((rate * hop_seconds) as usize).max(1),
            floor_db: floor_db.min(-1.0),
            rows: bins,
            row_hz,
            range_hz: (LOW_HZ, high),
            pending: VecDeque::with_capacity(2 * size),
            since_last: 0,
            buf: vec![Complex32::default(); size],
            window,
            columns: VecDeque::with_capacity(columns),
            max_columns: columns.max(1),
            version: 0,
        }
    }

    /// Adds samples; a column is computed every hop once a window is full.
    pub fn push(&mut self, samples: impl IntoIterator<Item = f32>) {
        let size = self.window.len();
        for x in samples {
            self.pending.push_back(if x.is_finite() { x } else { 0.0 });
            if self.pending.len() > size {
                self.pending.pop_front();
            }
            self.since_last += 1;
            if self.pending.len() == size && self.since_last >= self.hop {
                self.since_last = 0;
                self.compute_column();
            }
        }
    }

    fn compute_column(&mut self) {
        for ((b, x), w) in self.buf.iter_mut().zip(&self.pending).zip(&self.window) {
            *b = Complex32::new(x * w, 0.0);
        }
        self.fft.process(&mut self.buf);
        let column = self
            .rows
            .iter()
            .map(|&(start, end)| {
                let peak = self.buf[start..end]
                    .iter()
                    .map(|c| c.norm())
                    .fold(0.0f32, f32::max);
                db_to_level(20.0 * (peak * self.scale).max(1e-12).log10(), self.floor_db)
            })
            .collect();
        if self.columns.len() == self.max_columns {
            self.columns.pop_front();
        }
        self.columns.push_back(column);
        self.version += 1;
    }

    /// The columns so far, oldest first; each is a level per row, lowest
    /// frequency first.
    pub fn columns(&self) -> &VecDeque<Vec<f32>> {
        &self.columns
    }

    /// Changes whenever the columns do.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Most columns kept.
    pub fn capacity(&self) -> usize {
        self.max_columns
    }

    /// Centre frequency of each row, in Hz.
    pub fn row_hz(&self) -> &[f32] {
        &self.row_hz
    }

    /// The frequencies the rows span, in Hz: the lower edge of the lowest
    /// row and the upper edge of the highest, log-spaced between.
    pub fn range_hz(&self) -> (f32, f32) {
        self.range_hz
    }

    /// Level (0..1) of a sine at `db` dB relative to full scale.
    pub fn level_of_db(&self, db: f32) -> f32 {
        db_to_level(db, self.floor_db)
    }

    /// Forgets everything (e.g. when the host's rate changes).
    pub fn clear(&mut self) {
        self.pending.clear();
        self.columns.clear();
        self.since_last = 0;
        self.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, hz: f32, amplitude: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| amplitude * (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn a_sine_lights_its_own_row_at_its_level() {
        for (rate, hz) in [(44_100, 1_000.0), (48_000, 220.0), (96_000, 5_000.0)] {
            let mut s = Spectrogram::new(rate, 96, 100, 0.02, -90.0);
            s.push(sine(rate, hz, 0.5, rate as usize / 2));
            let column = s.columns().back().expect("columns after half a second");
            let loudest = (0..column.len())
                .max_by(|&a, &b| column[a].total_cmp(&column[b]))
                .unwrap();
            let row_hz = s.row_hz()[loudest];
            assert!(
                (row_hz / hz).log2().abs() < 0.1,
                "{hz} Hz lit the {row_hz} Hz row"
            );
            // -6 dBFS within 1.5 dB (the Hann window's scalloping).
            let want = s.level_of_db(-6.0);
            assert!(
                (column[loudest] - want).abs() < 1.5 / 90.0,
                "{} vs {want}",
                column[loudest]
            );
            // Far from the tone, close to the floor.
            let far = if loudest > 48 { 0 } else { 95 };
            assert!(column[far] < 0.3, "row {far}: {}", column[far]);
        }
    }

    #[test]
    fn columns_come_one_per_hop_and_scroll() {
        let rate = 48_000;
        let mut s = Spectrogram::new(rate, 64, 10, 0.01, -90.0);
        let size = s.window.len();
        s.push(vec![0.0; size]);
        assert_eq!(s.columns().len(), 1, "the first full window makes a column");
        s.push(vec![0.0; 3 * 480]);
        assert_eq!(s.columns().len(), 4);
        s.push(vec![0.0; 100 * 480]);
        assert_eq!(s.columns().len(), 10, "only the last 10 are kept");
        let version = s.version();
        s.push(vec![0.0; 479]);
        assert_eq!(s.version(), version, "no new column, same version");
        s.push(vec![0.0; 1]);
        assert_ne!(s.version(), version);
    }

    #[test]
    fn silence_and_garbage_sit_at_the_floor() {
        let mut s = Spectrogram::new(44_100, 32, 5, 0.02, -90.0);
        let mut x = vec![0.0; 8192];
        x[100] = f32::NAN;
        x[200] = f32::INFINITY;
        s.push(x);
        assert!(s.columns().iter().flatten().all(|&v| v == 0.0));
    }
}
