//! Screenshots of an X display for the editor tests: `xwd` dumps the root
//! window, this reads the dump (TrueColor, 24 or 32 bits per pixel) and
//! writes a PNG, so no image tool beyond x11-apps is needed.

use std::path::Path;
use std::process::Command;

/// An RGB image.
#[derive(Debug, Clone, PartialEq)]
pub struct Shot {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `width * height` RGB triples, row by row from the top.
    pub rgb: Vec<u8>,
}

impl Shot {
    /// Dumps the root window of `display` with `xwd`.
    pub fn take(display: &str) -> Result<Self, String> {
        let out = Command::new("xwd")
            .args(["-root", "-silent", "-display", display])
            .output()
            .map_err(|e| format!("cannot run xwd (apt-get install x11-apps): {e}"))?;
        if !out.status.success() {
            return Err(format!("xwd failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Self::from_xwd(&out.stdout)
    }

    /// Reads an XWD dump.
    pub fn from_xwd(bytes: &[u8]) -> Result<Self, String> {
        let field = |i: usize| -> Result<u32, String> {
            let b = bytes.get(4 * i..4 * i + 4).ok_or("truncated XWD header")?;
            Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let header_size = field(0)? as usize;
        let (width, height) = (field(4)? as usize, field(5)? as usize);
        let byte_order = field(7)?;
        let bits_per_pixel = field(11)? as usize;
        let bytes_per_line = field(12)? as usize;
        let (red_mask, green_mask, blue_mask) = (field(14)?, field(15)?, field(16)?);
        let colours = field(19)? as usize;
        if bits_per_pixel != 32 && bits_per_pixel != 24 {
            return Err(format!("unsupported XWD depth: {bits_per_pixel} bits per pixel"));
        }
        let start = header_size + 12 * colours;
        let data = bytes
            .get(start..start + bytes_per_line * height)
            .ok_or("truncated XWD pixels")?;
        let channel = |v: u32, mask: u32| -> u8 {
            if mask == 0 {
                return 0;
            }
            ((v & mask) >> mask.trailing_zeros()) as u8
        };
        let step = bits_per_pixel / 8;
        let mut rgb = Vec::with_capacity(width * height * 3);
        for row in data.chunks_exact(bytes_per_line) {
            for px in row[..width * step].chunks_exact(step) {
                let mut b = [0u8; 4];
                b[..step].copy_from_slice(px);
                // byte_order 0: least significant byte first.
                let v = if byte_order == 0 {
                    u32::from_le_bytes(b)
                } else {
                    u32::from_be_bytes(b) >> (8 * (4 - step))
                };
                rgb.extend([
                    channel(v, red_mask),
                    channel(v, green_mask),
                    channel(v, blue_mask),
                ]);
            }
        }
        Ok(Self { width, height, rgb })
    }

    /// Writes the image as PNG.
    pub fn save_png(&self, path: &Path) -> Result<(), String> {
        let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut encoder = png::Encoder::new(
            std::io::BufWriter::new(file),
            self.width as u32,
            self.height as u32,
        );
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(&self.rgb).map_err(|e| e.to_string())
    }

    /// The pixel at (x, y).
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = 3 * (y * self.width + x);
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// The smallest rectangle (x, y, width, height) holding every pixel
    /// that differs from the background colour `bg`, if any.
    pub fn content_box(&self, bg: [u8; 3]) -> Option<(usize, usize, usize, usize)> {
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for y in 0..self.height {
            for x in 0..self.width {
                if self.pixel(x, y) != bg {
                    x0 = x0.min(x);
                    y0 = y0.min(y);
                    x1 = x1.max(x);
                    y1 = y1.max(y);
                }
            }
        }
        (x0 != usize::MAX).then(|| (x0, y0, x1 - x0 + 1, y1 - y0 + 1))
    }

    /// A copy of the rectangle (x, y, width, height).
    pub fn crop(&self, (x, y, w, h): (usize, usize, usize, usize)) -> Self {
        let mut rgb = Vec::with_capacity(w * h * 3);
        for row in y..y + h {
            rgb.extend_from_slice(&self.rgb[3 * (row * self.width + x)..3 * (row * self.width + x + w)]);
        }
        Self {
            width: w,
            height: h,
            rgb,
        }
    }

    /// How many distinct colours the image uses.
    pub fn distinct_colours(&self) -> usize {
        let mut seen: Vec<u32> = self
            .rgb
            .chunks_exact(3)
            .map(|p| u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2]))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made 2x2 dump, 32 bits per pixel, least significant byte first.
    #[test]
    fn reads_a_truecolor_dump() {
        let mut header = [0u32; 25];
        header[0] = 100 + 4; // header plus a 4-byte window name
        header[4] = 2;
        header[5] = 2;
        header[7] = 0;
        header[11] = 32;
        header[12] = 8;
        header[14] = 0xff0000;
        header[15] = 0x00ff00;
        header[16] = 0x0000ff;
        header[19] = 0;
        let mut bytes: Vec<u8> = header.iter().flat_map(|v| v.to_be_bytes()).collect();
        bytes.extend(b"x\0\0\0");
        for px in [0x102030u32, 0xff0000, 0x000000, 0x000000] {
            bytes.extend(px.to_le_bytes());
        }
        let shot = Shot::from_xwd(&bytes).unwrap();
        assert_eq!((shot.width, shot.height), (2, 2));
        assert_eq!(shot.pixel(0, 0), [0x10, 0x20, 0x30]);
        assert_eq!(shot.pixel(1, 0), [0xff, 0, 0]);
        assert_eq!(shot.pixel(1, 1), [0, 0, 0]);
        assert_eq!(shot.distinct_colours(), 3);
        assert_eq!(shot.content_box([0, 0, 0]), Some((0, 0, 2, 1)));
        assert_eq!(shot.content_box([0x10, 0x20, 0x30]), Some((0, 0, 2, 2)));
        assert!(Shot::from_xwd(&bytes[..50]).is_err());
    }
}
