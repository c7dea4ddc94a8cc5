//! Charts and pictures written as PNG. plotters draws them on an RGB
//! buffer, with a font that ships inside a crate (Ubuntu Light from
//! `epaint_default_fonts`, registered with plotters' ab_glyph text), so
//! nothing depends on the system's fonts.

use std::io::BufWriter;
use std::path::Path;
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, ScaleFont};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendTextStyle, DrawingErrorKind};

/// An RGB colour.
pub type Rgb = [u8; 3];

/// The font family every picture's text is drawn in.
pub const FONT: &str = "sans-serif";

/// The font's file.
const FONT_BYTES: &[u8] = epaint_default_fonts::UBUNTU_LIGHT;

/// Why an image could not be drawn or written.
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
    /// Drawing failed (e.g. the built-in font could not be loaded).
    #[error("cannot draw the picture: {0}")]
    Draw(String),
}

/// Turns any drawing error into a [`PlotError::Draw`].
pub(crate) fn draw_err(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
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

    /// Sets a pixel; coordinates outside the image are ignored.
    pub fn set(&mut self, x: usize, y: usize, colour: Rgb) {
        if x < self.width && y < self.height {
            let i = 3 * (y * self.width + x);
            self.pixels[i..i + 3].copy_from_slice(&colour);
        }
    }

    /// Draws on the image with plotters: `draw` gets the whole image as a
    /// drawing area, with the built-in font registered.
    pub fn draw(
        &mut self,
        draw: impl FnOnce(&DrawingArea<Canvas<'_>, Shift>) -> Result<(), PlotError>,
    ) -> Result<(), PlotError> {
        register_builtin_font()?;
        let font = FontRef::try_from_slice(FONT_BYTES).map_err(draw_err)?;
        let size = (self.width as u32, self.height as u32);
        let bitmap = BitMapBackend::with_buffer(&mut self.pixels, size);
        let root = Canvas { bitmap, font }.into_drawing_area();
        draw(&root)?;
        root.present().map_err(draw_err)
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

/// Registers the built-in font with plotters, once per process.
fn register_builtin_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(PlotError::Draw("the built-in font does not load".into()))
    }
}

/// plotters' bitmap backend, but with text drawn by ab_glyph here: plotters
/// 0.3.7 draws each glyph of ab_glyph text where its advance starts,
/// without the glyph's side bearing, so letters run into each other. The
/// layout (plotters' own, from the same font) and everything else are
/// plotters'.
pub struct Canvas<'a> {
    bitmap: BitMapBackend<'a>,
    font: FontRef<'static>,
}

type CanvasError<'a> = DrawingErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

impl<'a> DrawingBackend for Canvas<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.bitmap.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), CanvasError<'a>> {
        self.bitmap.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), CanvasError<'a>> {
        self.bitmap.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), CanvasError<'a>> {
        self.bitmap.draw_pixel(point, color)
    }

    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), CanvasError<'a>> {
        self.bitmap.draw_line(from, to, style)
    }

    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), CanvasError<'a>> {
        self.bitmap.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), CanvasError<'a>> {
        self.bitmap.draw_path(path, style)
    }

    fn fill_polygon<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), CanvasError<'a>> {
        self.bitmap.fill_polygon(vert, style)
    }

    /// As plotters' default, anchored and turned the same way, with each
    /// glyph at its own bounds.
    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        pos: BackendCoord,
    ) -> Result<(), CanvasError<'a>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let ((min_x, min_y), (max_x, max_y)) = style
            .layout_box(text)
            .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => min_x - max_x,
            HPos::Center => (min_x - max_x) / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => (min_y - max_y) / 2,
            VPos::Bottom => min_y - max_y,
        };
        let size = style.size() as f32;
        let font = self.font.as_scaled(size);
        let mut coverage = Vec::new();
        let mut advance = 0.0f32;
        let mut previous = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = previous {
                advance += font.kern(p, id);
            }
            previous = Some(id);
            if let Some(glyph) = font.outline_glyph(font.scaled_glyph(c)) {
                let bounds = glyph.px_bounds();
                // plotters' vertical placement: half the size below the top.
                let (gx, gy) = (
                    (advance + bounds.min.x) as i32,
                    (size / 2.0 + bounds.min.y) as i32,
                );
                glyph.draw(|x, y, a| coverage.push((gx + x as i32, gy + y as i32, a)));
            }
            advance += font.h_advance(id);
        }
        let transform = style.transform();
        let (w, h) = self.get_size();
        for (x, y, a) in coverage {
            let (x, y) = transform.transform(x + dx - min_x, y + dy - min_y);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && x < w as i32 && y >= 0 && y < h as i32 {
                let ink = BackendColor {
                    alpha: color.alpha * f64::from(a),
                    rgb: color.rgb,
                };
                self.bitmap.draw_pixel((x, y), ink)?;
            }
        }
        Ok(())
    }
}

/// Width and height in pixels of `text` at `size` in the built-in font.
pub fn text_size(text: &str, size: u32) -> Result<(u32, u32), PlotError> {
    register_builtin_font()?;
    (FONT, size).into_font().box_size(text).map_err(draw_err)
}

/// A plotters colour.
pub(crate) fn colour(c: Rgb) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
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
    /// What the x axis measures, with its unit.
    pub x_label: String,
    /// What the y axis measures, with its unit.
    pub y_label: String,
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Fixed y range; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
}

/// Colours for successive series, distinguishable in print.
pub const PALETTE: [Rgb; 4] = [[31, 119, 180], [214, 39, 40], [44, 160, 44], [255, 127, 14]];

impl Chart {
    /// Draws the series with labelled axes, a grid and a legend.
    pub fn render(&self, series: &[Series]) -> Result<Image, PlotError> {
        let finite = |&&(x, y): &&(f64, f64)| x.is_finite() && y.is_finite();
        let all: Vec<(f64, f64)> = series
            .iter()
            .flat_map(|s| s.points.iter().filter(finite).copied())
            .collect();
        let (x0, x1) = padded_range(all.iter().map(|p| p.0), false);
        let (y0, y1) = self
            .y_range
            .unwrap_or_else(|| padded_range(all.iter().map(|p| p.1), true));
        let mut image = Image::new(self.width, self.height, [255, 255, 255]);
        image.draw(|root| {
            let mut chart = ChartBuilder::on(root)
                .caption(&self.title, (FONT, 22))
                .margin(12)
                .x_label_area_size(48)
                .y_label_area_size(72)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(draw_err)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .x_label_formatter(&|v| tick(*v))
                .y_label_formatter(&|v| tick(*v))
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 16))
                .light_line_style(RGBColor(235, 235, 235))
                .bold_line_style(RGBColor(215, 215, 215))
                .draw()
                .map_err(draw_err)?;
            for s in series {
                let ink = colour(s.colour);
                let points: Vec<(f64, f64)> = s.points.iter().filter(finite).copied().collect();
                let drawn = if points.len() == 1 {
                    chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, ink.filled())))
                } else {
                    chart.draw_series(LineSeries::new(points, ink.stroke_width(2)))
                };
                drawn
                    .map_err(draw_err)?
                    .label(&s.label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ink.stroke_width(2)));
            }
            chart
                .configure_series_labels()
                .position(quiet_corner(&all, (x0, x1), (y0, y1)))
                .label_font((FONT, 14))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .draw()
                .map_err(draw_err)
        })?;
        Ok(image)
    }
}

/// A tick label: whole numbers without a fraction, others to three
/// decimals at most, tiny ones in scientific notation.
pub(crate) fn tick(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        return format!("{v:.1e}");
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// The corner of the plot with the fewest points near it, for the legend.
fn quiet_corner(points: &[(f64, f64)], (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> SeriesLabelPosition {
    let near = |right: bool, top: bool| {
        points
            .iter()
            .filter(|&&(x, y)| {
                let fx = (x - x0) / (x1 - x0);
                let fy = (y - y0) / (y1 - y0);
                (if right { fx > 0.6 } else { fx < 0.4 }) && (if top { fy > 0.6 } else { fy < 0.4 })
            })
            .count()
    };
    // Ties go to the first: upper right, where readers look for a legend.
    [
        (SeriesLabelPosition::UpperRight, near(true, true)),
        (SeriesLabelPosition::LowerRight, near(true, false)),
        (SeriesLabelPosition::UpperLeft, near(false, true)),
        (SeriesLabelPosition::LowerLeft, near(false, false)),
    ]
    .into_iter()
    .min_by_key(|&(_, n)| n)
    .map_or(SeriesLabelPosition::UpperRight, |(p, _)| p)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_read_as_numbers() {
        assert_eq!(tick(200.0), "200");
        assert_eq!(tick(0.30000000000000004), "0.3");
        assert_eq!(tick(-0.0), "0");
        assert_eq!(tick(2.5e-4), "2.5e-4");
        assert_eq!(tick(1.25), "1.25");
    }

    #[test]
    fn the_legend_goes_where_the_curves_are_not() {
        let rising: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, i as f64)).collect();
        let falling: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 9.0 - i as f64)).collect();
        let range = ((0.0, 9.0), (0.0, 9.0));
        assert_eq!(
            quiet_corner(&rising, range.0, range.1),
            SeriesLabelPosition::LowerRight
        );
        assert_eq!(
            quiet_corner(&falling, range.0, range.1),
            SeriesLabelPosition::UpperRight
        );
    }

    /// Pixels in the rectangle `[x0, x1) x [y0, y1)` that are not white.
    fn inked(image: &Image, (x0, x1): (usize, usize), (y0, y1): (usize, usize)) -> usize {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| image.get(x, y) != [255, 255, 255])
            .count()
    }

    #[test]
    fn a_chart_has_its_curves_axes_and_labels() {
        let chart = Chart {
            title: "loss".into(),
            x_label: "training step".into(),
            y_label: "nats".into(),
            width: 400,
            height: 300,
            y_range: None,
        };
        let series = [Series {
            label: "train".into(),
            colour: PALETTE[1],
            points: vec![(0.0, 3.0), (10.0, 2.0), (20.0, f64::NAN), (30.0, 1.0)],
        }];
        let image = chart.render(&series).unwrap();
        assert_eq!((image.width, image.height), (400, 300));
        let red = (0..300)
            .flat_map(|y| (0..400).map(move |x| (x, y)))
            .filter(|&(x, y)| image.get(x, y) == PALETTE[1])
            .count();
        assert!(red > 200, "the curve is drawn ({red} pixels)");
        // Title above, tick labels and descriptions left of and under the plot.
        assert!(inked(&image, (150, 250), (0, 30)) > 20);
        assert!(inked(&image, (0, 60), (40, 250)) > 100);
        assert!(inked(&image, (100, 350), (260, 300)) > 100);
    }

    #[test]
    fn text_is_measured_in_the_builtin_font() {
        let (w, h) = text_size("accuracy", 20).unwrap();
        let (wide, _) = text_size("WWWWWWWW", 20).unwrap();
        let (narrow, _) = text_size("iiiiiiii", 20).unwrap();
        assert!(w > 40 && h > 10, "{w} x {h}");
        assert!(wide > 2 * narrow, "a proportional font: {wide} vs {narrow}");
    }
}
