//! What the first layer listens for: the magnitude spectrum of every
//! first-layer kernel, sorted by dominant frequency and drawn as an image
//! (x = filter, sorted; y = frequency, low at the bottom; brightness =
//! magnitude in dB), as in figures 2 and 3 of the Audio DeepDream paper.

pub use reverie_engine::filters::{
    db_to_level, default_fft_len, filter_spectra, first_layer_kernels, heat, FilterSpectra, FiltersError,
};

use plotters::prelude::*;

use crate::plot::{colour, draw_err, tick, Image, PlotError, FONT};

/// How to draw the spectra.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterImageOptions {
    /// Pixels per filter column.
    pub column_width: usize,
    /// Magnitude (dB below each filter's peak) drawn as black.
    pub floor_db: f32,
    /// Whether to add a title, axes and a colour scale around the spectra.
    /// Without, the image is exactly the spectra: `filters * column_width`
    /// by `fft_len / 2` pixels.
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

/// Space around the spectra when labels are drawn: left (frequency axis),
/// right (colour scale), top (title), bottom (filter axis).
const MARGINS: (usize, usize, usize, usize) = (80, 100, 44, 64);
/// Space left of the frequency axis's description.
const EDGE: usize = 14;
/// Text and axes on the dark background.
const INK: RGBColor = RGBColor(230, 230, 230);

/// Draws the spectra (see [`FilterImageOptions::labels`] for the size).
pub fn render_filters(spectra: &FilterSpectra, opts: &FilterImageOptions) -> Result<Image, PlotError> {
    let cw = opts.column_width.max(1);
    let bins = spectra.bins();
    let plot_w = spectra.db.len() * cw;
    let (l, r, t, b) = if opts.labels { MARGINS } else { (0, 0, 0, 0) };
    let mut img = Image::new(plot_w + l + r, bins + t + b, [0, 0, 0]);
    if opts.labels {
        draw_labels(&mut img, spectra, plot_w, opts.floor_db)?;
    }
    let floor = opts.floor_db.min(-1e-3);
    for (col, db) in spectra.db.iter().enumerate() {
        for (bin, &v) in db.iter().enumerate() {
            let level = db_to_level(v, floor);
            // Low frequencies at the bottom, as on a spectrogram.
            let y = t + bins - 1 - bin;
            for dx in 0..cw {
                img.set(l + col * cw + dx, y, heat(level));
            }
        }
    }
    Ok(img)
}

/// Title, frequency axis (kHz), filter axis and the dB colour scale around
/// the area the spectra fill.
fn draw_labels(
    img: &mut Image,
    spectra: &FilterSpectra,
    plot_w: usize,
    floor_db: f32,
) -> Result<(), PlotError> {
    let (l, r, t, b) = MARGINS;
    let bins = spectra.bins();
    let filters = spectra.db.len();
    let nyquist_khz = spectra.sample_rate as f64 / 2000.0;
    let text = |size: u32| (FONT, size).into_font().color(&INK);
    img.draw(|root| {
        root.draw_text(
            &format!("first-layer filters: magnitude spectra, sorted by peak frequency ({filters} filters)"),
            &text(18),
            (l as i32, 12),
        )
        .map_err(draw_err)?;
        // The axis description is drawn at the label area's outer edge:
        // keep it inside the picture.
        let mut chart = ChartBuilder::on(root)
            .margin_top(t as u32)
            .margin_right(r as u32)
            .margin_left(EDGE as u32)
            .x_label_area_size(b as u32)
            .y_label_area_size((l - EDGE) as u32)
            .build_cartesian_2d(0.0..filters as f64, 0.0..nyquist_khz)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .axis_style(INK)
            .label_style(text(14))
            .axis_desc_style(text(15))
            .x_desc("filter (sorted by peak frequency)")
            .y_desc("frequency (kHz)")
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .draw()
            .map_err(draw_err)?;
        // The colour scale: 0 dB (each filter's peak) at the top.
        let x0 = (l + plot_w + 24) as i32;
        for y in 0..bins {
            let level = 1.0 - y as f32 / (bins.max(2) - 1) as f32;
            let y = (t + y) as i32;
            root.draw(&Rectangle::new(
                [(x0, y), (x0 + 14, y + 1)],
                colour(heat(level)).filled(),
            ))
            .map_err(draw_err)?;
        }
        let label_x = x0 + 20;
        root.draw_text("0 dB", &text(14), (label_x, t as i32 - 6))
            .map_err(draw_err)?;
        root.draw_text(
            &format!("{floor_db:.0} dB"),
            &text(14),
            (label_x, (t + bins) as i32 - 10),
        )
        .map_err(draw_err)
    })
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
