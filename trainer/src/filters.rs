//! What the first layer listens for: the magnitude spectrum of every
//! first-layer kernel, sorted by dominant frequency and drawn as an image
//! (x = filter, sorted; y = frequency, low at the bottom; brightness =
//! magnitude in dB), as in figures 2 and 3 of the Audio DeepDream paper.

pub use reverie_engine::filters::{
    db_to_level, default_fft_len, filter_spectra, first_layer_kernels, heat, FilterSpectra, FiltersError,
};

use crate::plot::{text_height, text_width, Image};

/// How to draw the spectra.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterImageOptions {
    /// Pixels per filter column.
    pub column_width: usize,
    /// Magnitude (dB below each filter's peak) drawn as black.
    pub floor_db: f32,
    /// Whether to add a title, a frequency axis and an x label around the
    /// spectra. Without, the image is exactly the spectra:
    /// `filters * column_width` by `fft_len / 2` pixels.
    pub labels: bool,
}

impl Default for FilterImageOptions {
    fn default() -> Self {
        Self {
            column_width: 3,
            floor_db: -60.0,
            labels: true,
        }
    }
}

/// Margins around the spectra when labels are drawn: left, right, top, bottom.
const MARGINS: (usize, usize, usize, usize) = (64, 12, 34, 34);
const FONT: i64 = 2;

/// Draws the spectra (see [`FilterImageOptions::labels`] for the size).
pub fn render_filters(spectra: &FilterSpectra, opts: &FilterImageOptions) -> Image {
    let cw = opts.column_width.max(1);
    let bins = spectra.bins();
    let plot_w = spectra.db.len() * cw;
    let (l, r, t, b) = if opts.labels { MARGINS } else { (0, 0, 0, 0) };
    let mut img = Image::new(plot_w + l + r, bins + t + b, [0, 0, 0]);
    let floor = opts.floor_db.min(-1e-3);
    for (col, db) in spectra.db.iter().enumerate() {
        for (bin, &v) in db.iter().enumerate() {
            let level = db_to_level(v, floor);
            let colour = heat(level);
            // Low frequencies at the bottom, as on a spectrogram.
            let y = (t + bins - 1 - bin) as i64;
            for dx in 0..cw {
                img.set((l + col * cw + dx) as i64, y, colour);
            }
        }
    }
    if opts.labels {
        draw_labels(&mut img, spectra, plot_w, opts.floor_db);
    }
    img
}

fn draw_labels(img: &mut Image, spectra: &FilterSpectra, plot_w: usize, floor_db: f32) {
    let (l, _, t, _) = MARGINS;
    let ink = [230, 230, 230];
    let bins = spectra.bins();
    let nyquist_khz = spectra.sample_rate as f64 / 2000.0;
    for tick in crate::plot::nice_ticks(0.0, nyquist_khz, 6) {
        let bin = tick / nyquist_khz * bins as f64;
        let y = (t + bins) as i64 - 1 - bin.round() as i64;
        img.line((l as i64 - 5, y), (l as i64 - 1, y), 1, ink);
        let label = format!("{tick}");
        let x = l as i64 - 8 - text_width(&label, FONT);
        img.text(x, y - text_height(FONT) / 2, &label, FONT, ink);
    }
    img.text(4, 4, "KHZ", FONT, ink);
    let title = format!("first-layer filters, magnitude in dB (0 to {floor_db:.0})");
    img.text(l as i64, 10, &title, FONT, ink);
    let x_label = format!("{} filters sorted by peak frequency", spectra.db.len());
    let y = (t + bins) as i64 + 12;
    img.text(
        l as i64 + (plot_w as i64 - text_width(&x_label, FONT)) / 2,
        y,
        &x_label,
        FONT,
        ink,
    );
}

/// Band-pass first-layer kernels: `filters` Hann-windowed sinusoids at
/// mel-spaced centre frequencies from 40 Hz to 90% of Nyquist, in pairs of
/// cosine and sine phase so that ReLU and max pooling can follow the band's
/// envelope whatever the signal's phase. Each window is as long as the band
/// is narrow (at most the kernel), centred in the kernel. Every kernel has
/// the L2 norm of a He-normal one (sqrt(2)), so the optimiser's step sizes
/// mean the same as with a random start.
///
/// Raw-audio networks learn band-pass filters like these anyway (the seed
/// paper's figures 2 and 3); starting from them saves most of the steps a
/// random first layer needs to get there.
pub fn bandpass_kernels(filters: usize, kernel: usize, sample_rate: u32) -> Vec<Vec<f32>> {
    let sr = f64::from(sample_rate);
    let mel = |hz: f64| 2595.0 * (1.0 + hz / 700.0).log10();
    let hz = |m: f64| 700.0 * (10f64.powf(m / 2595.0) - 1.0);
    let bands = filters.div_ceil(2).max(1);
    let (lo, hi) = (mel(40.0f64.min(0.1 * sr)), mel(0.45 * sr));
    let centre = |i: f64| hz(lo + (hi - lo) * i / bands.max(2).saturating_sub(1) as f64);
    (0..filters)
        .map(|f| {
            let band = f / 2;
            let fc = centre(band as f64);
            // The band reaches halfway to its neighbours; a Hann window of
            // length L passes about 2 sr / L around its centre.
            let width = (centre(band as f64 + 0.5) - centre(band as f64 - 0.5))
                .abs()
                .max(1.0);
            let len = ((2.0 * sr / width).round() as usize).clamp(8.min(kernel), kernel);
            let start = (kernel - len) / 2;
            let phase = if f % 2 == 0 {
                0.0
            } else {
                std::f64::consts::FRAC_PI_2
            };
            let mut k = vec![0.0f64; kernel];
            for (n, v) in k[start..start + len].iter_mut().enumerate() {
                let w = 0.5 - 0.5 * (std::f64::consts::TAU * (n as f64 + 0.5) / len as f64).cos();
                let t = (n as f64 - len as f64 / 2.0) / sr;
                *v = w * (std::f64::consts::TAU * fc * t + phase).cos();
            }
            let norm = k.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            k.iter()
                .map(|v| (v / norm * std::f64::consts::SQRT_2) as f32)
                .collect()
        })
        .collect()
}
