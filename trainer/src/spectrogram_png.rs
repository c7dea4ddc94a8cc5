//! Spectrograms of several sounds stacked in one picture, each under its
//! label: a WaveNet's samples beside the music it learnt from, at a glance.

use reverie_engine::filters::heat;
use reverie_engine::spectrogram::Spectrogram;

use crate::plot::{text_width, Image, Rgb};

/// One sound of the picture.
pub struct Strip<'a> {
    /// Drawn above the spectrogram (the built-in font: letters, digits and
    /// a little punctuation).
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
const MARGIN: usize = 8;
/// Label text scale (the font is 5 pixels high).
const TEXT: usize = 2;
const LABEL_BAND: usize = 5 * TEXT + 6;
const BACKGROUND: Rgb = [24, 24, 28];
const INK: Rgb = [220, 220, 220];

/// The first `seconds` of every strip as a spectrogram, stacked top to
/// bottom in order; shorter sounds leave the rest of their strip black.
pub fn spectrogram_picture(strips: &[Strip<'_>], seconds: f32) -> Image {
    let columns = ((seconds.max(HOP_SECONDS) / HOP_SECONDS).round() as usize).max(1);
    let strip_height = LABEL_BAND + ROWS + MARGIN;
    // Wide enough for the longest label, so none is cut off.
    let label_width = strips
        .iter()
        .map(|s| text_width(&s.label, TEXT as i64).max(0) as usize)
        .max()
        .unwrap_or(0);
    let mut image = Image::new(
        2 * MARGIN + columns.max(label_width),
        MARGIN + strips.len() * strip_height,
        BACKGROUND,
    );
    for (i, strip) in strips.iter().enumerate() {
        let top = MARGIN + i * strip_height;
        image.text(MARGIN as i64, top as i64, &strip.label, TEXT as i64, INK);
        let y0 = top + LABEL_BAND;
        image.fill_rect(MARGIN as i64, y0 as i64, columns as i64, ROWS as i64, heat(0.0));
        let mut spectrogram = Spectrogram::new(strip.rate, ROWS, columns, HOP_SECONDS, FLOOR_DB);
        let n = ((seconds * strip.rate as f32) as usize).min(strip.samples.len());
        spectrogram.push(strip.samples[..n].iter().copied());
        for (x, column) in spectrogram.columns().iter().enumerate() {
            for (row, &level) in column.iter().enumerate() {
                // Low frequencies at the bottom.
                image.set((MARGIN + x) as i64, (y0 + ROWS - 1 - row) as i64, heat(level));
            }
        }
    }
    image
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
        let image = spectrogram_picture(&strips, 1.0);
        assert_eq!(image.width, 2 * MARGIN + 100);
        let long = [Strip {
            label: "a label much longer than a second of spectrogram".into(),
            samples: &silence,
            rate,
        }];
        let wide = spectrogram_picture(&long, 1.0);
        assert_eq!(
            wide.width,
            2 * MARGIN + text_width(&long[0].label, TEXT as i64) as usize
        );
        assert_eq!(image.height, MARGIN + 2 * (LABEL_BAND + ROWS + MARGIN));

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
        let y0 = MARGIN + LABEL_BAND;
        let x = MARGIN + 50;
        let brightest = (0..ROWS)
            .max_by_key(|&r| brightness(image.get(x, y0 + ROWS - 1 - r)))
            .unwrap();
        assert!(brightest.abs_diff(want) <= 1, "row {brightest}, want {want}");
        // A sine at -6 dBFS is drawn near the top of the colour scale.
        assert!(brightness(image.get(x, y0 + ROWS - 1 - want)) > brightness(heat(0.75)));
        // Far from the tone, near black.
        assert!(brightness(image.get(x, y0 + ROWS - 1 - want / 3)) < 60);

        // The silent strip is black everywhere.
        let y1 = y0 + ROWS + MARGIN + LABEL_BAND;
        for r in 0..ROWS {
            for c in 0..100 {
                assert_eq!(image.get(MARGIN + c, y1 + r), heat(0.0));
            }
        }
    }
}
