//! µ-law companding (ITU-T G.711 style, as in WaveNet): audio in [-1, 1] is
//! compressed logarithmically and quantised to a small number of classes,
//! 256 (8 bits) by default. The logarithmic curve spends the classes where
//! the ear is most sensitive (quiet signals), so 8 bits sound far better
//! than linear 8-bit quantisation and the network's softmax stays small.

/// Number of µ-law classes of the default 8-bit quantiser.
pub const CLASSES: usize = 256;

/// The largest number of classes a [`MuLaw`] quantiser accepts (16 bits).
pub const MAX_CLASSES: usize = 65_536;

/// A µ-law quantiser with `classes` levels and µ = `classes - 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MuLaw {
    classes: usize,
    mu: f32,
    ln1p_mu: f32,
}

impl Default for MuLaw {
    /// The 8-bit quantiser (256 classes, µ = 255).
    fn default() -> Self {
        Self::new(CLASSES).expect("256 classes are valid")
    }
}

impl MuLaw {
    /// A quantiser with `classes` levels, or `None` unless
    /// `2 <= classes <= MAX_CLASSES`.
    pub fn new(classes: usize) -> Option<Self> {
        if !(2..=MAX_CLASSES).contains(&classes) {
            return None;
        }
        let mu = (classes - 1) as f32;
        Some(Self {
            classes,
            mu,
            ln1p_mu: mu.ln_1p(),
        })
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The companding curve: maps [-1, 1] onto [-1, 1], steep near zero.
    /// Out-of-range input is clipped; NaN counts as silence.
    pub fn compress(&self, x: f32) -> f32 {
        let x = if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) };
        x.signum() * (self.mu * x.abs()).ln_1p() / self.ln1p_mu
    }

    /// The inverse of [`MuLaw::compress`].
    pub fn expand(&self, y: f32) -> f32 {
        let y = if y.is_nan() { 0.0 } else { y.clamp(-1.0, 1.0) };
        y.signum() * ((y.abs() * self.ln1p_mu).exp() - 1.0) / self.mu
    }

    /// The class of an audio sample: the nearest of `classes` evenly spaced
    /// levels of the compressed signal.
    pub fn encode(&self, x: f32) -> usize {
        let y = self.compress(x);
        let level = ((y + 1.0) * 0.5 * self.mu).round();
        // The clamp guards against rounding at the ends of the range.
        (level.max(0.0) as usize).min(self.classes - 1)
    }

    /// The audio sample a class stands for; classes past the last one are
    /// treated as the last.
    pub fn decode(&self, class: usize) -> f32 {
        let level = class.min(self.classes - 1) as f32;
        self.expand(level / self.mu * 2.0 - 1.0)
    }

    /// The interval of audio values that encode to `class` (its cell):
    /// halfway to the neighbouring levels in the compressed signal, within
    /// [-1, 1].
    pub fn cell(&self, class: usize) -> (f32, f32) {
        let level = class.min(self.classes - 1) as f32 / self.mu * 2.0 - 1.0;
        let half = 1.0 / self.mu;
        (self.expand(level - half), self.expand(level + half))
    }

    /// For each class `j` whose cell, moved by `shift`, overlaps the cell
    /// of `class`: `f(j, share)`, the share of `j`'s moved cell that lies
    /// inside it (a distribution over classes, spread evenly over each
    /// moved cell, puts `sum share_j p_j` in `class`'s cell). Classes with
    /// an empty cell are left out.
    pub fn overlapping_cells(&self, class: usize, shift: f64, mut f: impl FnMut(usize, f64)) {
        let (a, b) = self.cell(class);
        let (a, b) = (f64::from(a), f64::from(b));
        let first = self.encode((a - shift) as f32);
        let last = self.encode((b - shift) as f32);
        for j in first..=last {
            let (lo, hi) = self.cell(j);
            let (lo, hi) = (f64::from(lo) + shift, f64::from(hi) + shift);
            let overlap = (hi.min(b) - lo.max(a)).max(0.0);
            if hi > lo {
                f(j, overlap / (hi - lo));
            }
        }
    }

    /// Encodes a whole signal.
    pub fn encode_all(&self, audio: &[f32]) -> Vec<usize> {
        audio.iter().map(|&x| self.encode(x)).collect()
    }

    /// Decodes a whole class sequence.
    pub fn decode_all(&self, classes: &[usize]) -> Vec<f32> {
        classes.iter().map(|&c| self.decode(c)).collect()
    }
}

/// Encodes one sample with the default 8-bit quantiser.
pub fn encode(x: f32) -> usize {
    MuLaw::default().encode(x)
}

/// Decodes one class of the default 8-bit quantiser.
pub fn decode(class: usize) -> f32 {
    MuLaw::default().decode(class)
}
