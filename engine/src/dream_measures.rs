//! What a dream's change (delta = dreamed − input) sounds like, in numbers
//! a listener's ear agrees with beside a spectrogram: its level against the
//! input's, whether it is noise or tone (spectral flatness), whether it
//! lives in the input's own spectrum, whether its level pumps at the
//! dream's window hop, and whether it is merely a scaled copy of the input.

use rustfft::num_complex::Complex32;
use rustfft::FftPlanner;

/// Flatness is measured between these frequencies (Hz).
pub const FLATNESS_BAND: (f32, f32) = (50.0, 7_000.0);
/// Bins within this many dB of their frame's strongest input bin are "the
/// input's spectrum".
pub const SPECTRUM_RANGE_DB: f32 = 40.0;
/// The level envelope's frame, in seconds.
pub const ENVELOPE_FRAME: f32 = 0.010;
/// The modulation band the hop's share is taken of (Hz).
pub const MODULATION_BAND: (f32, f32) = (0.5, 20.0);

/// The measures of one dream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeltaMeasures {
    /// The delta's RMS level relative to the input's, in dB.
    pub level_db: f32,
    /// The input's spectral flatness (median over frames; 0 tonal, about
    /// 0.5 and more for white noise).
    pub input_flatness: f32,
    /// The delta's spectral flatness, likewise.
    pub delta_flatness: f32,
    /// Share of the delta's energy in bins where the input is within
    /// [`SPECTRUM_RANGE_DB`] of its frame's strongest bin (0 to 1).
    pub in_input_spectrum: f32,
    /// Share of the 0.5–20 Hz modulation power of the delta's level
    /// relative to the input's (10 ms frames) at the hop rate and twice it
    /// (0 to 1).
    pub hop_modulation: f32,
    /// Correlation of the delta with the input (−1 to 1): near ±1 the
    /// "dream" is only a louder or softer copy of the input.
    pub correlation: f32,
}

/// Measures a dream's `delta` against its `input` (mono, same length) at
/// `rate` Hz, whose windows were `hop_seconds` apart.
pub fn measure(input: &[f32], delta: &[f32], rate: u32, hop_seconds: f32) -> DeltaMeasures {
    let n = input.len().min(delta.len());
    let (input, delta) = (&input[..n], &delta[..n]);
    let spectra_in = Spectra::new(input, rate);
    let spectra_delta = Spectra::new(delta, rate);
    DeltaMeasures {
        level_db: 20.0 * (rms(delta) / rms(input).max(1e-12)).max(1e-12).log10(),
        input_flatness: spectra_in.median_flatness(),
        delta_flatness: spectra_delta.median_flatness(),
        in_input_spectrum: in_spectrum_share(&spectra_in, &spectra_delta),
        hop_modulation: hop_modulation(input, delta, rate, hop_seconds),
        correlation: correlation(input, delta),
    }
}

/// The spectral flatness of any sound in [`FLATNESS_BAND`], as
/// [`DeltaMeasures::input_flatness`] reads it: the band a listener hears
/// hiss in, whatever the file's rate (a full-band measure reads a change
/// made at 16 kHz and played at 48 kHz as tonal, for the empty band above
/// 8 kHz).
pub fn flatness(x: &[f32], rate: u32) -> f32 {
    Spectra::new(x, rate).median_flatness()
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len().max(1) as f64).sqrt() as f32
}

/// Pearson correlation of two signals (0 if either is constant).
pub fn correlation(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len()).max(1) as f64;
    let mean = |x: &[f32]| x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa <= 0.0 || bb <= 0.0 {
        0.0
    } else {
        (ab / (aa * bb).sqrt()) as f32
    }
}

/// Power spectra of Hann-windowed frames (about 46 ms, a quarter apart).
struct Spectra {
    frames: Vec<Vec<f32>>,
    bin_hz: f32,
}

impl Spectra {
    fn new(x: &[f32], rate: u32) -> Self {
        let size = ((rate as f32 * 0.046) as usize).next_power_of_two().max(256);
        let hop = size / 4;
        let fft = FftPlanner::new().plan_fft_forward(size);
        let window = crate::stft::hann(size);
        let mut buf = vec![Complex32::default(); size];
        let mut frames = Vec::new();
        let mut start = 0;
        while start + size <= x.len() {
            for ((b, v), w) in buf.iter_mut().zip(&x[start..]).zip(&window) {
                *b = Complex32::new(v * w, 0.0);
            }
            fft.process(&mut buf);
            frames.push(buf[..size / 2 + 1].iter().map(|c| c.norm_sqr()).collect());
            start += hop;
        }
        Self {
            frames,
            bin_hz: rate as f32 / size as f32,
        }
    }

    /// Median over frames with energy of the flatness in [`FLATNESS_BAND`]:
    /// geometric over arithmetic mean of the power.
    fn median_flatness(&self) -> f32 {
        let lo = (FLATNESS_BAND.0 / self.bin_hz).ceil() as usize;
        let hi = ((FLATNESS_BAND.1 / self.bin_hz).floor() as usize)
            .min(self.frames.first().map_or(0, |f| f.len() - 1));
        let loudest = self
            .frames
            .iter()
            .map(|f| f[lo..=hi].iter().sum::<f32>())
            .fold(0.0f32, f32::max);
        let mut values: Vec<f32> = self
            .frames
            .iter()
            .filter(|f| {
                // Frames 60 dB below the loudest are silence, not signal.
                f[lo..=hi].iter().sum::<f32>() > loudest * 1e-6 && loudest > 0.0
            })
            .map(|f| {
                let band = &f[lo..=hi];
                let arithmetic = band.iter().map(|&p| f64::from(p)).sum::<f64>() / band.len() as f64;
                let geometric = (band.iter().map(|&p| f64::from(p.max(1e-30)).ln()).sum::<f64>()
                    / band.len() as f64)
                    .exp();
                (geometric / arithmetic.max(1e-30)) as f32
            })
            .collect();
        if values.is_empty() {
            return 0.0;
        }
        values.sort_by(f32::total_cmp);
        values[values.len() / 2]
    }
}

/// Share of the delta's energy in the bins where the input is within
/// [`SPECTRUM_RANGE_DB`] of its frame's strongest bin.
fn in_spectrum_share(input: &Spectra, delta: &Spectra) -> f32 {
    let floor = 10f32.powf(-SPECTRUM_RANGE_DB / 10.0);
    let (mut inside, mut total) = (0.0f64, 0.0f64);
    for (x, d) in input.frames.iter().zip(&delta.frames) {
        let strongest = x.iter().fold(0.0f32, |m, &p| m.max(p));
        for (&px, &pd) in x.iter().zip(d) {
            total += f64::from(pd);
            if strongest > 0.0 && px >= strongest * floor {
                inside += f64::from(pd);
            }
        }
    }
    if total > 0.0 {
        (inside / total) as f32
    } else {
        1.0
    }
}

/// Share of the 0.5–20 Hz modulation power of the delta's level relative to
/// the input's (10 ms frames) at the hop rate and twice it. The envelope is
/// cut to a whole number of hops, so a modulation that repeats every hop
/// falls exactly on two bins of its spectrum and nothing of it leaks out;
/// an unmodulated level spreads evenly over the band and puts only about
/// 2 / (19.5 x seconds) of its power there.
fn hop_modulation(input: &[f32], delta: &[f32], rate: u32, hop_seconds: f32) -> f32 {
    let frame = ((rate as f32 * ENVELOPE_FRAME).round() as usize).max(1);
    let per_hop = (hop_seconds / ENVELOPE_FRAME).round() as usize;
    let frames = input.len() / frame;
    let hops = frames / per_hop.max(1);
    if per_hop == 0 || hops < 2 {
        return 0.0;
    }
    let len = hops * per_hop;
    let ratio: Vec<f64> = (0..len)
        .map(|i| {
            let r = |x: &[f32]| f64::from(rms(&x[i * frame..(i + 1) * frame]));
            let (a, b) = (r(input), r(delta));
            if a > 1e-9 {
                b / a
            } else {
                0.0
            }
        })
        .collect();
    let mean = ratio.iter().sum::<f64>() / len as f64;
    let mut buf: Vec<Complex32> = ratio
        .iter()
        .map(|&r| Complex32::new((r - mean) as f32, 0.0))
        .collect();
    FftPlanner::new().plan_fft_forward(len).process(&mut buf);
    let bin_hz = 1.0 / (len as f32 * ENVELOPE_FRAME);
    let (mut band, mut at_hop) = (0.0f64, 0.0f64);
    for (k, c) in buf.iter().enumerate().take(len / 2 + 1) {
        let f = k as f32 * bin_hz;
        if (MODULATION_BAND.0..=MODULATION_BAND.1).contains(&f) {
            let p = f64::from(c.norm_sqr());
            band += p;
            if k == hops || k == 2 * hops {
                at_hop += p;
            }
        }
    }
    if band > 0.0 {
        (at_hop / band) as f32
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16_000;

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn chord(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / RATE as f32;
                [220.0f32, 277.2, 329.6]
                    .iter()
                    .map(|f| 0.2 * (std::f32::consts::TAU * f * t).sin())
                    .sum()
            })
            .collect()
    }

    fn clicks(n: usize) -> Vec<f32> {
        (0..n).map(|i| if i % 800 == 0 { 1.0 } else { 0.0 }).collect()
    }

    fn mix(a: &[f32], b: &[f32], gain: f32) -> Vec<f32> {
        a.iter().zip(b).map(|(x, y)| x + gain * y).collect()
    }

    #[test]
    fn flatness_tells_noise_from_tones_and_clicks() {
        let n = 4 * RATE as usize;
        let white = measure(&noise(n, 1), &noise(n, 2), RATE, 0.5);
        assert!(
            white.input_flatness > 0.45,
            "white noise {}",
            white.input_flatness
        );
        let c = measure(&chord(n), &chord(n), RATE, 0.5);
        assert!(c.input_flatness < 0.01, "chord {}", c.input_flatness);
        // A click train is a line spectrum at 20 Hz spacing: flat in the band.
        let k = measure(&clicks(n), &clicks(n), RATE, 0.5);
        assert!(k.input_flatness > 0.3, "clicks {}", k.input_flatness);
        let noisy = measure(&mix(&chord(n), &noise(n, 3), 0.01), &chord(n), RATE, 0.5);
        assert!(
            noisy.input_flatness > c.input_flatness && noisy.input_flatness < white.input_flatness,
            "chord plus noise {}",
            noisy.input_flatness
        );
    }

    #[test]
    fn flatness_reads_band_limited_hiss_at_any_rate() {
        // White noise made at 16 kHz and played at 48 kHz (each sample held
        // three times, then smoothed by a 3-tap mean: nothing above 8 kHz),
        // as the dream's change comes out of the plugin. It is still hiss
        // to the ear, and in the band; the full-band pitch measure reads
        // it as tonal, because two thirds of its spectrum are empty.
        let white = noise(4 * RATE as usize, 7);
        let held: Vec<f32> = white.iter().flat_map(|&v| [v; 3]).collect();
        let smooth: Vec<f32> = held.windows(3).map(|w| (w[0] + w[1] + w[2]) / 3.0).collect();
        let banded = flatness(&smooth, 3 * RATE);
        assert!(banded > 0.3, "banded {banded}");
        let full = crate::pitch::pitchedness(&smooth, 3 * RATE).flatness;
        assert!(full < 0.5 * banded, "full band {full}, banded {banded}");
        assert!(flatness(&chord(4 * RATE as usize), RATE) < 0.01);
    }

    #[test]
    fn energy_in_the_inputs_spectrum() {
        let n = 2 * RATE as usize;
        // The chord's own partials: all inside.
        let own = measure(&chord(n), &mix(&chord(n), &chord(n), -1.5), RATE, 0.5);
        assert!(own.in_input_spectrum > 0.99, "{}", own.in_input_spectrum);
        // White noise against a chord: most of it between the partials.
        let hiss = measure(&chord(n), &noise(n, 4), RATE, 0.5);
        assert!(hiss.in_input_spectrum < 0.3, "{}", hiss.in_input_spectrum);
        // Noise against noise: everywhere is the input's spectrum.
        let both = measure(&noise(n, 5), &noise(n, 6), RATE, 0.5);
        assert!(both.in_input_spectrum > 0.95, "{}", both.in_input_spectrum);
    }

    #[test]
    fn level_and_correlation() {
        let n = RATE as usize;
        let x = chord(n);
        let half: Vec<f32> = x.iter().map(|v| 0.5 * v).collect();
        let m = measure(&x, &half, RATE, 0.5);
        assert!((m.level_db + 6.02).abs() < 0.05, "{}", m.level_db);
        assert!((m.correlation - 1.0).abs() < 1e-4, "{}", m.correlation);
        let other = measure(&x, &noise(n, 7), RATE, 0.5);
        assert!(other.correlation.abs() < 0.05, "{}", other.correlation);
    }

    #[test]
    fn pumping_at_the_hop_is_caught_and_steady_change_is_not() {
        let n = 6 * RATE as usize;
        let x = mix(&chord(n), &noise(n, 8), 0.05);
        let hiss = noise(n, 9);
        // A delta whose level swells and dips twice a second.
        let pumped: Vec<f32> = hiss
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let t = i as f32 / RATE as f32;
                0.05 * v * (1.0 + 0.8 * (std::f32::consts::TAU * 2.0 * t).cos())
            })
            .collect();
        let steady: Vec<f32> = hiss.iter().map(|v| 0.05 * v).collect();
        let p = measure(&x, &pumped, RATE, 0.5);
        let s = measure(&x, &steady, RATE, 0.5);
        assert!(p.hop_modulation > 0.5, "pumped {}", p.hop_modulation);
        assert!(s.hop_modulation < 0.05, "steady {}", s.hop_modulation);
        // Pumping at another rate (3 Hz) is not the hop's.
        let other: Vec<f32> = hiss
            .iter()
            .enumerate()
            .map(|(i, v)| {
                0.05 * v * (1.0 + 0.8 * (std::f32::consts::TAU * 3.0 * i as f32 / RATE as f32).cos())
            })
            .collect();
        assert!(measure(&x, &other, RATE, 0.5).hop_modulation < 0.05);
    }
}
