//! A fixed delay line for the dry signal, allocated once in `activate()`.

/// Delays one channel by a fixed number of samples.
pub struct DelayLine {
    buffer: Vec<f32>,
    pos: usize,
}

impl DelayLine {
    /// A delay of `samples` samples (0 passes straight through).
    pub fn new(samples: usize) -> Self {
        Self {
            buffer: vec![0.0; samples],
            pos: 0,
        }
    }

    /// Pushes `x` and returns the sample from `samples` ago.
    #[inline]
    pub fn process(&mut self, x: f32) -> f32 {
        if self.buffer.is_empty() {
            return x;
        }
        let out = std::mem::replace(&mut self.buffer[self.pos], x);
        self.pos += 1;
        if self.pos == self.buffer.len() {
            self.pos = 0;
        }
        out
    }

    /// Clears the history.
    pub fn reset(&mut self) {
        self.buffer.fill(0.0);
        self.pos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::DelayLine;

    #[test]
    fn delays_by_exactly_its_length() {
        for len in [0, 1, 5] {
            let mut d = DelayLine::new(len);
            let out: Vec<f32> = (1..=10).map(|i| d.process(i as f32)).collect();
            for (n, y) in out.iter().enumerate() {
                let expected = if n >= len { (n - len + 1) as f32 } else { 0.0 };
                assert_eq!(*y, expected, "len {len} sample {n}");
            }
        }
    }
}
