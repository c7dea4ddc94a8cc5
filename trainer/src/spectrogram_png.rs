//! Spectrograms of several sounds stacked in one picture, each under its
//! label and on its own axes (time in seconds, frequency in Hz on a log
//! scale): a WaveNet's samples beside the music it learnt from, at a
//! glance.

use plotters::coord::combinators::{LogCoord, WithKeyPoints};
use plotters::prelude::*;
use reverie_engine::filters::heat;
use reverie_engine::spectrogram::Spectrogram;

use crate::plot::{draw_err, text_size, Image, PlotError, Rgb, FONT};

/// One sound of the picture.
pub struct Strip<'a> {
    /// Drawn above the spectrogram.
    pub label: String,
    /// Mono samples.
    pub samples: &'a [f32],
    /// Their rate in Hz.
    pub rate: u32,
}

/// Frequency rows of each strip (30 Hz up to 20 kHz or Nyquist, log
/// spaced), one pixel each.
pub const ROWS: usize = 180;
/// Time per pixel column.
pub const HOP_SECONDS: f32 = 0.01;
/// Level drawn black.
const FLOOR_DB: f32 = -80.0;
/// Frequency axis on the left of each strip.
const LEFT: usize = 76;
const RIGHT: usize = 16;
const TOP: usize = 6;
/// Label text size, and the band above each strip it is drawn in.
const LABEL_SIZE: u32 = 16;
const LABEL_BAND: usize = 26;
/// Time axis under each strip; the last one also says what it measures.
const TIME_AXIS: usize = 24;
const LAST_TIME_AXIS: usize = 44;
const BACKGROUND: Rgb = [24, 24, 28];
const INK: RGBColor = RGBColor(220, 220, 220);

/// Where everything of a picture goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Pixel columns of each spectrogram (one per [`HOP_SECONDS`]).
    pub columns: usize,
    /// Top-left pixel of each strip's spectrogram ([`ROWS`] high, lowest
    /// frequency at the bottom).
    pub origins: Vec<(usize, usize)>,
}

impl Layout {
    /// The layout of `strips` drawn `seconds` long: wide enough for the
    /// longest label, so none is cut off.
    pub fn new(strips: &[Strip<'_>], seconds: f32) -> Result<Self, PlotError> {
        let columns = ((seconds.max(HOP_SECONDS) / HOP_SECONDS).round() as usize).max(1);
        let mut label_width = 0;
        for s in strips {
            label_width = label_width.max(text_size(&s.label, LABEL_SIZE)?.0 as usize);
        }
        let strip = LABEL_BAND + ROWS + TIME_AXIS;
        let origins = (0..strips.len())
            .map(|i| (LEFT, TOP + i * strip + LABEL_BAND))
            .collect();
        Ok(Self {
            width: LEFT + columns.max(label_width) + RIGHT,
            height: TOP + strips.len() * strip + LAST_TIME_AXIS - TIME_AXIS,
            columns,
            origins,
        })
    }
}

/// The first `seconds` of every strip as a spectrogram, stacked top to
/// bottom in order; shorter sounds leave the rest of their strip black.
pub fn spectrogram_picture(strips: &[Strip<'_>], seconds: f32) -> Result<Image, PlotError> {
    let layout = Layout::new(strips, seconds)?;
    let columns = layout.columns;
    let mut image = Image::new(layout.width, layout.height, BACKGROUND);
    let mut spectra = Vec::with_capacity(strips.len());
    for strip in strips {
        let mut spectrogram = Spectrogram::new(strip.rate, ROWS, columns, HOP_SECONDS, FLOOR_DB);
        let n = ((seconds * strip.rate as f32) as usize).min(strip.samples.len());
        spectrogram.push(strip.samples[..n].iter().copied());
        spectra.push(spectrogram);
    }
    image.draw(|root| {
        let text = |size: u32| (FONT, size).into_font().color(&INK);
        for (i, (strip, spectrogram)) in strips.iter().zip(&spectra).enumerate() {
            let (x0, y0) = layout.origins[i];
            let last = i + 1 == strips.len();
            let axis = if last { LAST_TIME_AXIS } else { TIME_AXIS };
            root.draw_text(
                &strip.label,
                &text(LABEL_SIZE),
                (x0 as i32, (y0 - LABEL_BAND + 4) as i32),
            )
            .map_err(draw_err)?;
            let area = root
                .clone()
                .shrink((0, y0 as u32), (layout.width as u32, (ROWS + axis) as u32));
            let (low, high) = spectrogram.range_hz();
            let mut chart = ChartBuilder::on(&area)
                .margin_right((layout.width - LEFT - columns) as u32)
                .x_label_area_size(axis as u32)
                .y_label_area_size(LEFT as u32)
                .build_cartesian_2d(0.0..f64::from(seconds), frequency_axis(low, high))
                .map_err(draw_err)?;
            let mut mesh = chart.configure_mesh();
            mesh.disable_mesh()
                .axis_style(INK)
                .label_style(text(13))
                .axis_desc_style(text(14))
                .x_label_formatter(&|t| format!("{t} s"))
                .y_label_formatter(&|hz| hertz(*hz))
                .y_labels(FREQUENCY_TICKS.len());
            if last {
                mesh.x_desc("time (s)");
            }
            mesh.draw().map_err(draw_err)?;
        }
        Ok(())
    })?;
    for (spectrogram, &(x0, y0)) in spectra.iter().zip(&layout.origins) {
        for x in 0..columns {
            for row in 0..ROWS {
                image.set(x0 + x, y0 + row, heat(0.0));
            }
        }
        for (x, column) in spectrogram.columns().iter().enumerate() {
            for (row, &level) in column.iter().enumerate() {
                // Low frequencies at the bottom.
                image.set(x0 + x, y0 + ROWS - 1 - row, heat(level));
            }
        }
    }
    Ok(image)
}

/// Frequencies marked on each strip's axis, where they are in range.
const FREQUENCY_TICKS: [f64; 7] = [50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0];

/// A log-frequency axis from `low` to `high` Hz, ticked at
/// [`FREQUENCY_TICKS`] (plotters would tick only the powers of ten).
fn frequency_axis(low: f32, high: f32) -> WithKeyPoints<LogCoord<f64>> {
    let (low, high) = (f64::from(low), f64::from(high));
    let ticks = FREQUENCY_TICKS
        .iter()
        .copied()
        .filter(|f| (low..=high).contains(f))
        .collect();
    (low..high).log_scale().with_key_points(ticks)
}

/// A frequency tick: "300 Hz", "2 kHz", "1.5 kHz".
fn hertz(hz: f64) -> String {
    if hz >= 1000.0 {
        format!("{} kHz", (hz / 100.0).round() / 10.0)
    } else {
        format!("{hz:.0} Hz")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brightness(c: Rgb) -> u32 {
        c.iter().map(|&v| u32::from(v)).sum()
    }

    #[test]
    fn a_tone_draws_its_own_row_and_silence_stays_black() {
        let rate = 16_000;
        let tone: Vec<f32> = (0..rate)
            .map(|i| 0.5 * (std::f32::consts::TAU * 1_000.0 * i as f32 / rate as f32).sin())
            .collect();
        let silence = vec![0.0; rate as usize / 2];
        let strips = [
            Strip {
                label: "tone".into(),
                samples: &tone,
                rate,
            },
            Strip {
                label: "silence".into(),
                samples: &silence,
                rate,
            },
        ];
        let image = spectrogram_picture(&strips, 1.0).unwrap();
        let layout = Layout::new(&strips, 1.0).unwrap();
        assert_eq!((image.width, image.height), (layout.width, layout.height));
        assert_eq!(layout.columns, 100);
        assert_eq!(image.width, LEFT + 100 + RIGHT);
        // A label longer than the spectrogram widens the picture to fit.
        let long = [Strip {
            label: "a label much longer than a second of spectrogram".into(),
            samples: &silence,
            rate,
        }];
        let wide = spectrogram_picture(&long, 1.0).unwrap();
        let label = text_size(&long[0].label, LABEL_SIZE).unwrap().0 as usize;
        assert!(label > 100);
        assert_eq!(wide.width, LEFT + label + RIGHT);

        // The brightest row of a column in the middle of the tone is the
        // row whose band holds 1 kHz.
        let rows_hz = Spectrogram::new(rate, ROWS, 1, HOP_SECONDS, FLOOR_DB)
            .row_hz()
            .to_vec();
        let want = rows_hz
            .iter()
            .enumerate()
            .min_by(|a, b| {
                (a.1.ln() - 1_000f32.ln())
                    .abs()
                    .total_cmp(&(b.1.ln() - 1_000f32.ln()).abs())
            })
            .unwrap()
            .0;
        let (x0, y0) = layout.origins[0];
        let x = x0 + 50;
        let brightest = (0..ROWS)
            .max_by_key(|&r| brightness(image.get(x, y0 + ROWS - 1 - r)))
            .unwrap();
        assert!(brightest.abs_diff(want) <= 1, "row {brightest}, want {want}");
        // A sine at -6 dBFS is drawn near the top of the colour scale.
        assert!(brightness(image.get(x, y0 + ROWS - 1 - want)) > brightness(heat(0.75)));
        // Far from the tone, near black.
        assert!(brightness(image.get(x, y0 + ROWS - 1 - want / 3)) < 60);

        // The silent strip is black everywhere.
        let (x1, y1) = layout.origins[1];
        for r in 0..ROWS {
            for c in 0..100 {
                assert_eq!(image.get(x1 + c, y1 + r), heat(0.0));
            }
        }
        // The labels and axes are drawn: the margins are not empty.
        let inked = (0..layout.height)
            .flat_map(|y| (0..LEFT).map(move |x| (x, y)))
            .filter(|&(x, y)| brightness(image.get(x, y)) > 300)
            .count();
        assert!(inked > 100, "{inked} bright pixels on the frequency axes");
    }

    #[test]
    fn frequency_ticks_read_in_hertz() {
        assert_eq!(hertz(300.0), "300 Hz");
        assert_eq!(hertz(2000.0), "2 kHz");
        assert_eq!(hertz(1500.0), "1.5 kHz");
    }
}
