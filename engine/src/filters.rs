//! What a perception model's first layer listens for: the magnitude
//! spectrum of every first-layer kernel, sorted by dominant frequency (the
//! Audio DeepDream paper's figures 2 and 3). The trainer draws it as a PNG,
//! the plugin's editor as a live picture.

use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::FftPlanner;

use crate::perception::PerceptionModel;

/// Why the spectra could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum FiltersError {
    /// The first-layer weights could not be read.
    #[error("cannot read the first-layer weights: {0}")]
    Tensor(#[from] candle_core::Error),
    /// There are no kernels, or they are empty.
    #[error("the model's first layer has no filters")]
    Empty,
}

/// Magnitude spectra of a set of kernels, sorted by dominant frequency.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterSpectra {
    /// Sample rate the kernels run at, in Hz.
    pub sample_rate: u32,
    /// FFT length (kernels are zero-padded to it).
    pub fft_len: usize,
    /// Original index of each sorted filter.
    pub order: Vec<usize>,
    /// Frequency of each sorted filter's strongest bin, in Hz.
    pub peak_hz: Vec<f32>,
    /// Per sorted filter: magnitude in dB relative to its own peak, for bins
    /// `0..fft_len / 2` (DC up to just below Nyquist).
    pub db: Vec<Vec<f32>>,
}

impl FilterSpectra {
    /// Number of frequency bins per filter.
    pub fn bins(&self) -> usize {
        self.fft_len / 2
    }

    /// Centre frequency of bin `b`, in Hz.
    pub fn bin_hz(&self, b: usize) -> f32 {
        b as f32 * self.sample_rate as f32 / self.fft_len as f32
    }
}

/// The first layer's kernels of a perception model, one `Vec` per filter.
pub fn first_layer_kernels(model: &PerceptionModel) -> Result<Vec<Vec<f32>>, FiltersError> {
    let w = &model.net.convs[0];
    let (filters, _, kernel) = w.dims3()?;
    let flat = w.flatten_all()?.to_vec1::<f32>()?;
    Ok((0..filters)
        .map(|f| flat[f * kernel..(f + 1) * kernel].to_vec())
        .collect())
}

/// The FFT length used when none is given: a power of two at least as long
/// as the kernel and at least 256, so short kernels still get a smooth
/// spectrum.
pub fn default_fft_len(kernel: usize) -> usize {
    kernel.next_power_of_two().max(256)
}

/// Spectra of `kernels` (zero-padded to `fft_len`, no window: the layer
/// applies the kernel as it is), normalised per filter and sorted by the
/// frequency of their strongest bin (ties keep the original order).
pub fn filter_spectra(
    kernels: &[Vec<f32>],
    sample_rate: u32,
    fft_len: usize,
) -> Result<FilterSpectra, FiltersError> {
    let kernel = kernels.first().map(Vec::len).unwrap_or(0);
    if kernel == 0 {
        return Err(FiltersError::Empty);
    }
    let fft_len = fft_len.max(kernel).max(2);
    let fft: Arc<dyn rustfft::Fft<f32>> = FftPlanner::new().plan_fft_forward(fft_len);
    let bins = fft_len / 2;
    let mut spectra: Vec<(usize, usize, Vec<f32>)> = kernels
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut buf = vec![Complex32::new(0.0, 0.0); fft_len];
            for (b, &v) in buf.iter_mut().zip(k) {
                b.re = v;
            }
            fft.process(&mut buf);
            let mag: Vec<f32> = buf[..bins].iter().map(|c| c.norm()).collect();
            let (peak_bin, peak) =
                mag.iter().enumerate().fold(
                    (0, 0.0f32),
                    |best, (b, &m)| if m > best.1 { (b, m) } else { best },
                );
            // An all-zero kernel has no peak; keep it at 0 dB rather than
            // dividing by zero.
            let reference = if peak > 0.0 { peak } else { 1.0 };
            let db = mag
                .iter()
                .map(|&m| 20.0 * (m / reference).max(1e-10).log10())
                .collect();
            (i, peak_bin, db)
        })
        .collect();
    spectra.sort_by_key(|&(i, peak_bin, _)| (peak_bin, i));
    let hz = |b: usize| b as f32 * sample_rate as f32 / fft_len as f32;
    Ok(FilterSpectra {
        sample_rate,
        fft_len,
        order: spectra.iter().map(|s| s.0).collect(),
        peak_hz: spectra.iter().map(|s| hz(s.1)).collect(),
        db: spectra.into_iter().map(|s| s.2).collect(),
    })
}

/// A level in dB (0 at the top, `floor_db` < 0 at the bottom) as 0..1 for
/// [`heat`]: how every spectra picture maps magnitude to brightness.
pub fn db_to_level(db: f32, floor_db: f32) -> f32 {
    ((db - floor_db) / -floor_db).clamp(0.0, 1.0)
}

/// The colour scale of the spectra pictures: 0..1 to black, violet, red,
/// orange, pale yellow. Brightness rises steadily, so it reads in grey too.
pub fn heat(v: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [0.0, 0.0, 0.0],
        [60.0, 15.0, 110.0],
        [180.0, 40.0, 100.0],
        [245.0, 125.0, 40.0],
        [252.0, 245.0, 180.0],
    ];
    let x = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 } * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let mut out = [0u8; 3];
    for (c, o) in out.iter_mut().enumerate() {
        *o = (STOPS[i][c] + f * (STOPS[i + 1][c] - STOPS[i][c])).round() as u8;
    }
    out
}
