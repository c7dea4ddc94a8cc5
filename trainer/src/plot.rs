//! Small raster plots written as PNG without system fonts or a plotting
//! stack: an RGB canvas, lines, a built-in 3×5 pixel font for axis labels,
//! and a line chart for training curves.

use std::io::BufWriter;
use std::path::Path;

/// An RGB colour.
pub type Rgb = [u8; 3];

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Creating or writing the file failed.
    #[error("cannot write image {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The PNG encoder failed.
    #[error("cannot encode PNG {path}: {reason}")]
    Encode {
        /// The file.
        path: String,
        /// What the encoder said.
        reason: String,
    },
}

/// An RGB image, row-major, top row first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` bytes.
    pub pixels: Vec<u8>,
}

impl Image {
    /// A canvas filled with `colour`.
    pub fn new(width: usize, height: usize, colour: Rgb) -> Self {
        Self {
            width,
            height,
            pixels: colour.repeat(width * height),
        }
    }

    /// The colour at `(x, y)`.
    ///
    /// # Panics
    /// Outside the image.
    pub fn get(&self, x: usize, y: usize) -> Rgb {
        let i = 3 * (y * self.width + x);
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Sets a pixel; coordinates outside the image are ignored so callers
    /// can draw shapes that overhang the edge.
    pub fn set(&mut self, x: i64, y: i64, colour: Rgb) {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
            return;
        }
        let i = 3 * (y as usize * self.width + x as usize);
        self.pixels[i..i + 3].copy_from_slice(&colour);
    }

    /// Fills a rectangle (clipped to the image).
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, colour: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, colour);
            }
        }
    }

    /// A straight line, `thickness` pixels wide (Bresenham with a square pen).
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), thickness: i64, colour: Rgb) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        let half = thickness / 2;
        loop {
            self.fill_rect(x - half, y - half, thickness.max(1), thickness.max(1), colour);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Draws `text` with the built-in font, top-left at `(x, y)`, each font
    /// pixel `scale` pixels square. Lower case is drawn as upper case;
    /// characters the font lacks are drawn as blanks.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, colour: Rgb) {
        for (i, ch) in text.chars().enumerate() {
            let rows = glyph(ch);
            let left = x + i as i64 * 4 * scale;
            for (r, bits) in rows.iter().enumerate() {
                for c in 0..3 {
                    if bits & (0b100 >> c) != 0 {
                        self.fill_rect(left + c * scale, y + r as i64 * scale, scale, scale, colour);
                    }
                }
            }
        }
    }

    /// Writes the image as an 8-bit RGB PNG.
    pub fn save_png(&self, path: &Path) -> Result<(), PlotError> {
        let name = path.display().to_string();
        let file = std::fs::File::create(path).map_err(|source| PlotError::Io {
            path: name.clone(),
            source,
        })?;
        let encode = |e: png::EncodingError| PlotError::Encode {
            path: name.clone(),
            reason: e.to_string(),
        };
        let mut encoder = png::Encoder::new(BufWriter::new(file), self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(encode)?;
        writer.write_image_data(&self.pixels).map_err(encode)?;
        writer.finish().map_err(encode)
    }
}

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: i64) -> i64 {
    (text.chars().count() as i64 * 4 - 1).max(0) * scale
}

/// Height in pixels of a line of text drawn at `scale`.
pub fn text_height(scale: i64) -> i64 {
    5 * scale
}

/// The 3×5 glyph of `ch`: five rows, the top first, bit 2 = left column.
fn glyph(ch: char) -> [u8; 5] {
    match ch.to_ascii_uppercase() {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b001, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        'A' => [0b010, 0b101, 0b111, 0b101, 0b101],
        'B' => [0b110, 0b101, 0b110, 0b101, 0b110],
        'C' => [0b011, 0b100, 0b100, 0b100, 0b011],
        'D' => [0b110, 0b101, 0b101, 0b101, 0b110],
        'E' => [0b111, 0b100, 0b110, 0b100, 0b111],
        'F' => [0b111, 0b100, 0b110, 0b100, 0b100],
        'G' => [0b011, 0b100, 0b101, 0b101, 0b011],
        'H' => [0b101, 0b101, 0b111, 0b101, 0b101],
        'I' => [0b111, 0b010, 0b010, 0b010, 0b111],
        'J' => [0b001, 0b001, 0b001, 0b101, 0b010],
        'K' => [0b101, 0b101, 0b110, 0b101, 0b101],
        'L' => [0b100, 0b100, 0b100, 0b100, 0b111],
        'M' => [0b101, 0b111, 0b111, 0b101, 0b101],
        'N' => [0b110, 0b101, 0b101, 0b101, 0b101],
        'O' => [0b010, 0b101, 0b101, 0b101, 0b010],
        'P' => [0b110, 0b101, 0b110, 0b100, 0b100],
        'Q' => [0b010, 0b101, 0b101, 0b110, 0b011],
        'R' => [0b110, 0b101, 0b110, 0b101, 0b101],
        'S' => [0b011, 0b100, 0b010, 0b001, 0b110],
        'T' => [0b111, 0b010, 0b010, 0b010, 0b010],
        'U' => [0b101, 0b101, 0b101, 0b101, 0b111],
        'V' => [0b101, 0b101, 0b101, 0b101, 0b010],
        'W' => [0b101, 0b101, 0b111, 0b111, 0b101],
        'X' => [0b101, 0b101, 0b010, 0b101, 0b101],
        'Y' => [0b101, 0b101, 0b010, 0b010, 0b010],
        'Z' => [0b111, 0b001, 0b010, 0b100, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        ',' => [0b000, 0b000, 0b000, 0b010, 0b100],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        '+' => [0b000, 0b010, 0b111, 0b010, 0b000],
        ':' => [0b000, 0b010, 0b000, 0b010, 0b000],
        '%' => [0b101, 0b001, 0b010, 0b100, 0b101],
        '/' => [0b001, 0b001, 0b010, 0b100, 0b100],
        '=' => [0b000, 0b111, 0b000, 0b111, 0b000],
        '(' => [0b010, 0b100, 0b100, 0b100, 0b010],
        ')' => [0b010, 0b001, 0b001, 0b001, 0b010],
        '_' => [0b000, 0b000, 0b000, 0b000, 0b111],
        _ => [0; 5],
    }
}

/// One curve of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Line colour.
    pub colour: Rgb,
    /// Points `(x, y)`, in x order. Non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
}

/// Layout and axes of a line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title drawn above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Fixed y range; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
}

const BACKGROUND: Rgb = [255, 255, 255];
const INK: Rgb = [40, 40, 40];
const GRID: Rgb = [225, 225, 225];
const FONT: i64 = 2;

/// Colours for successive series, distinguishable in print.
pub const PALETTE: [Rgb; 4] = [[31, 119, 180], [214, 39, 40], [44, 160, 44], [255, 127, 14]];

impl Chart {
    /// Draws the series with axes, tick labels and a legend.
    pub fn render(&self, series: &[Series]) -> Image {
        let mut img = Image::new(self.width, self.height, BACKGROUND);
        let finite = |&&(x, y): &&(f64, f64)| x.is_finite() && y.is_finite();
        let all: Vec<(f64, f64)> = series
            .iter()
            .flat_map(|s| s.points.iter().filter(finite).copied())
            .collect();
        let (x0, x1) = padded_range(all.iter().map(|p| p.0), false);
        let (y0, y1) = self
            .y_range
            .unwrap_or_else(|| padded_range(all.iter().map(|p| p.1), true));

        let (left, right, top, bottom) = (70i64, 20i64, 40i64, 45i64);
        let (w, h) = (self.width as i64, self.height as i64);
        let (pw, ph) = ((w - left - right).max(1), (h - top - bottom).max(1));
        let to_px = |x: f64, y: f64| {
            let px = left as f64 + (x - x0) / (x1 - x0) * pw as f64;
            let py = (top + ph) as f64 - (y - y0) / (y1 - y0) * ph as f64;
            (px.round() as i64, py.round() as i64)
        };

        for tick in nice_ticks(y0, y1, 6) {
            let (_, py) = to_px(x0, tick);
            img.line((left, py), (left + pw, py), 1, GRID);
            let label = format_tick(tick);
            let tx = left - 6 - text_width(&label, FONT);
            img.text(tx, py - text_height(FONT) / 2, &label, FONT, INK);
        }
        for tick in nice_ticks(x0, x1, 6) {
            let (px, _) = to_px(tick, y0);
            img.line((px, top), (px, top + ph), 1, GRID);
            let label = format_tick(tick);
            img.text(px - text_width(&label, FONT) / 2, top + ph + 6, &label, FONT, INK);
        }
        img.line((left, top), (left, top + ph), 1, INK);
        img.line((left, top + ph), (left + pw, top + ph), 1, INK);
        img.text(
            left + (pw - text_width(&self.x_label, FONT)) / 2,
            h - 6 - text_height(FONT),
            &self.x_label,
            FONT,
            INK,
        );
        img.text(left, 8, &self.title, FONT, INK);

        let mut legend_x = left + pw;
        for s in series.iter().rev() {
            legend_x -= text_width(&s.label, FONT) + 26;
            img.fill_rect(legend_x, 26, 14, 4, s.colour);
            img.text(legend_x + 18, 24, &s.label, FONT, s.colour);
        }

        for s in series {
            let pts: Vec<(i64, i64)> = s
                .points
                .iter()
                .filter(finite)
                .map(|&(x, y)| to_px(x, y))
                .collect();
            if pts.len() == 1 {
                img.fill_rect(pts[0].0 - 2, pts[0].1 - 2, 5, 5, s.colour);
            }
            for pair in pts.windows(2) {
                img.line(pair[0], pair[1], 2, s.colour);
            }
        }
        img
    }
}

/// The data's range with a little margin, never empty.
fn padded_range(values: impl Iterator<Item = f64>, pad: bool) -> (f64, f64) {
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        lo -= 0.5;
        hi += 0.5;
    } else if pad {
        let m = 0.05 * (hi - lo);
        lo -= m;
        hi += m;
    }
    (lo, hi)
}

/// Round tick values (1, 2 or 5 × a power of ten apart) inside `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) || max_ticks < 2 {
        return vec![];
    }
    let raw = (hi - lo) / (max_ticks - 1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn format_tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.0e}")
    } else if a >= 10.0 || (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trim(format!("{v:.2}"))
    } else {
        trim(format!("{v:.3}"))
    }
}

fn trim(s: String) -> String {
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
