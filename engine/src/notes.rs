//! Notes or bursts: whether audio holds notes the way a piano does (each
//! one struck, then ringing until the next) or clicks out short noisy
//! bursts into silence, or drones on without ever striking anything. Pitch
//! clarity alone cannot tell these apart (a drone scores as high as a
//! note), so these measures look at the level over time instead.
//!
//! Everything is measured in consecutive, non-overlapping frames of
//! [`FRAME_S`] (512 samples at 16 kHz), each without its mean (a constant
//! offset is silence to the ear), at the frame's RMS level in dBFS (0 dBFS
//! is the RMS of a constant ±1; a full-scale sine is −3 dBFS).
//!
//! **Onsets.** Frame `i` is an onset when it is sounding (above
//! [`SOUNDING_DB`]), frame `i − 1` is not itself an onset, and either
//! - it is at least [`RISE_DB`] louder than frame `i − 1`, or
//! - it is louder than frame `i − 1`, which is louder than frame `i − 2`,
//!   and at least [`RISE_DB`] louder than frame `i − 2`.
//!
//! Before the first frame is silence, so audio that starts sounding starts
//! with an onset. The second rule is there because an attack that lands
//! late in a frame splits its rise across two frame boundaries (a note
//! 10 dB over the previous one's tail, starting 30% before a boundary,
//! rises 5.7 dB then 4.3 dB) and would otherwise go unseen; the "not
//! itself an onset" rule keeps the same attack from counting twice, once
//! in the frame where it begins and again in the next, fuller one.
//!
//! **Level.** The frames' levels leave their means out, so a signal that
//! wanders (content below about 30 Hz) or plays against the rails would
//! read as notes; three more measures say so: the median level of the
//! sounding frames, the share of samples at full scale, and the share of
//! the energy in the frames' means.

use rustfft::num_complex::Complex32;
use rustfft::FftPlanner;

/// Frame length in seconds (rounded to whole samples at the audio's rate).
pub const FRAME_S: f32 = 0.032;
/// Frames louder than this (dBFS) are sounding.
pub const SOUNDING_DB: f32 = -45.0;
/// The rise from one frame to the next (or over two rising frames) that
/// makes an onset, in dB.
pub const RISE_DB: f32 = 6.0;
/// How long after an onset its level drop is read, in seconds.
pub const DECAY_S: f32 = 0.3;
/// Levels are floored here (dBFS) when a drop is measured: a note that dies
/// into silence has fallen this far, not to minus infinity. It is where
/// [`crate::pitch`] stops listening too.
pub const FLOOR_DB: f32 = -60.0;
/// The high band of [`NoteMeasures::high_share`] (Hz): where a piano note's
/// harmonics have all but died and a WaveNet's hiss has not.
pub const HIGH_BAND: (f32, f32) = (3_000.0, 8_000.0);
/// The whole band [`NoteMeasures::high_share`] is a share of (Hz).
pub const FULL_BAND: (f32, f32) = (50.0, 8_000.0);
/// A stretch without an onset longer than this (seconds), mostly sounding,
/// is a drone: no piano note rings that long in a melody.
pub const DRONE_S: f32 = 3.0;
/// Samples at or beyond this magnitude are at full scale (the largest
/// 16-bit value is 0.99997).
pub const CLIP_LEVEL: f32 = 0.999;
/// More than this share of samples at full scale is clipping: a recording
/// of an acoustic instrument peaks below full scale, a converter that clips
/// does so for a few samples of a peak, not for one in a thousand.
pub const CLIPPING_SHARE: f32 = 0.001;

/// Lowest rate measured: below it a frame would be under 32 samples.
const MIN_RATE: u32 = 1_000;
/// Levels of exact silence, so that differences stay finite.
const SILENT_DB: f32 = -200.0;

/// Why audio cannot be measured.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotesError {
    /// The sample rate is too low for 32 ms frames to mean anything.
    #[error("sample rate {rate} Hz is too low to measure notes (at least {MIN_RATE} Hz)")]
    RateTooLow {
        /// The rate given.
        rate: u32,
    },
}

/// How a sound's notes come and go; see the [module](self) for the frames
/// and what an onset is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoteMeasures {
    /// Whole frames measured (a partial frame at the end is left out).
    pub frames: usize,
    /// One frame's length in seconds ([`FRAME_S`] in whole samples).
    pub frame_s: f32,
    /// Share of frames sounding (above [`SOUNDING_DB`]), 0 to 1; 0 when
    /// there are no frames.
    pub sounding: f32,
    /// Onsets found.
    pub onsets: usize,
    /// The longest run of consecutive sounding frames with no onset after
    /// its first frame (seconds): how long the longest note rings before
    /// the next onset or silence cuts it off.
    pub longest_ring_s: f32,
    /// The longest run of frames (sounding or not) with no onset after its
    /// first frame (seconds), counting from the start and to the end of the
    /// audio too: the whole length when there is no onset, or one at the
    /// start of an endless tone.
    pub longest_without_onset_s: f32,
    /// Share of that longest onset-free stretch's frames that sound: near
    /// 1 for a drone, near 0 for silence.
    pub longest_without_onset_sounding: f32,
    /// Median over onsets of the level drop in the [`DECAY_S`] after each
    /// (dB, positive when the level falls): from the onset's level (the
    /// louder of its frame and the next, because an attack late in a frame
    /// is heard at full level only in the next) to a frame starting
    /// [`DECAY_S`] after that one, both floored at [`FLOOR_DB`]. A new note
    /// in those 0.3 s counts as what is heard then. `None` when no onset
    /// is early enough for the later frame to fit in the audio.
    pub decay_db: Option<f32>,
    /// How many onsets [`decay_db`](Self::decay_db) is the median of.
    pub decays: usize,
    /// Energy in [`HIGH_BAND`] over energy in [`FULL_BAND`], summed over
    /// the sounding frames (Hann-windowed): about 0.03 to 0.06 for these
    /// piano melodies, 5000/7950 = 0.63 for white noise at 16 kHz or more.
    /// `None` when no frame sounds.
    pub high_share: Option<f32>,
    /// The median level of the sounding frames (dBFS, as the frames'
    /// levels): -17 to -24 for these piano melodies. `None` when no frame
    /// sounds.
    pub sounding_level_db: Option<f32>,
    /// Share of samples at full scale ([`CLIP_LEVEL`] or beyond), 0 to 1;
    /// 0 when there are no samples.
    pub clipped: f32,
    /// Share of the energy in the whole frames that is in their means: what
    /// lies below about 30 Hz, a wandering offset, which the frames' levels
    /// leave out. At most 0.001 for these piano melodies (the part of a low
    /// note's cycle a frame cuts off); 0 for silence.
    pub offset_share: f32,
}

impl NoteMeasures {
    /// The length of the longest onset-free stretch (seconds) when it makes
    /// a drone: longer than [`DRONE_S`] and at least half sounding.
    pub fn drone_s(&self) -> Option<f32> {
        (self.longest_without_onset_s > DRONE_S && self.longest_without_onset_sounding >= 0.5)
            .then_some(self.longest_without_onset_s)
    }

    /// Whether the audio clips: more than [`CLIPPING_SHARE`] of its samples
    /// at full scale.
    pub fn clips(&self) -> bool {
        self.clipped > CLIPPING_SHARE
    }
}

/// Measures `x` (mono, at `rate` Hz): frames, onsets, how long notes ring
/// and how fast they fall, and how much of their energy is high.
pub fn measure_notes(x: &[f32], rate: u32) -> Result<NoteMeasures, NotesError> {
    if rate < MIN_RATE {
        return Err(NotesError::RateTooLow { rate });
    }
    let len = (FRAME_S * rate as f32).round() as usize;
    let frame_s = len as f32 / rate as f32;
    let levels: Vec<f32> = x.chunks_exact(len).map(level_db).collect();
    let n = levels.len();
    let sounding: Vec<bool> = levels.iter().map(|&l| l > SOUNDING_DB).collect();
    let onset = onsets(&levels, &sounding);
    let onset_frames: Vec<usize> = (0..n).filter(|&i| onset[i]).collect();

    let mut longest_ring = 0usize;
    let mut ring = 0usize;
    for i in 0..n {
        ring = match (sounding[i], onset[i]) {
            (false, _) => 0,
            (true, true) => 1,
            (true, false) => ring + 1,
        };
        longest_ring = longest_ring.max(ring);
    }

    // The stretches between consecutive onsets, and those before the first
    // and after the last; the first of the longest wins.
    let mut bounds = Vec::with_capacity(onset_frames.len() + 2);
    bounds.push(0);
    bounds.extend(onset_frames.iter().copied().filter(|&i| i > 0));
    bounds.push(n);
    let (start, end) = bounds.windows(2).map(|w| (w[0], w[1])).fold((0, 0), |best, s| {
        if s.1 - s.0 > best.1 - best.0 {
            s
        } else {
            best
        }
    });
    let stretch_sounding = if end > start {
        sounding[start..end].iter().filter(|&&s| s).count() as f32 / (end - start) as f32
    } else {
        0.0
    };

    let lag = (DECAY_S * rate as f32).round() as usize;
    let mut drops: Vec<f32> = onset_frames
        .iter()
        .filter_map(|&i| {
            let peak = if i + 1 < n && levels[i + 1] > levels[i] {
                i + 1
            } else {
                i
            };
            let later = peak * len + lag;
            let frame = x.get(later..later + len)?;
            Some(levels[peak].max(FLOOR_DB) - level_db(frame).max(FLOOR_DB))
        })
        .collect();
    drops.sort_by(f32::total_cmp);

    Ok(NoteMeasures {
        frames: n,
        frame_s,
        sounding: if n == 0 {
            0.0
        } else {
            sounding.iter().filter(|&&s| s).count() as f32 / n as f32
        },
        onsets: onset_frames.len(),
        longest_ring_s: longest_ring as f32 * frame_s,
        longest_without_onset_s: (end - start) as f32 * frame_s,
        longest_without_onset_sounding: stretch_sounding,
        decays: drops.len(),
        decay_db: median(&drops),
        high_share: high_share(x, len, rate, &sounding),
        sounding_level_db: {
            let mut l: Vec<f32> = levels
                .iter()
                .zip(&sounding)
                .filter(|(_, &s)| s)
                .map(|(&l, _)| l)
                .collect();
            l.sort_by(f32::total_cmp);
            median(&l)
        },
        clipped: if x.is_empty() {
            0.0
        } else {
            x.iter().filter(|v| v.abs() >= CLIP_LEVEL).count() as f32 / x.len() as f32
        },
        offset_share: offset_share(x, len),
    })
}

/// Energy of the frames' means over the energy of the whole frames.
fn offset_share(x: &[f32], len: usize) -> f32 {
    let (mut offsets, mut total) = (0.0f64, 0.0f64);
    // A broken sample counts as silence.
    let value = |v: &f32| if v.is_finite() { f64::from(*v) } else { 0.0 };
    for frame in x.chunks_exact(len) {
        let mean = frame.iter().map(value).sum::<f64>() / len as f64;
        offsets += mean * mean * len as f64;
        total += frame.iter().map(|v| value(v).powi(2)).sum::<f64>();
    }
    if total > 0.0 {
        (offsets / total) as f32
    } else {
        0.0
    }
}

/// The RMS level of a frame without its mean, in dBFS; exact silence (and
/// a broken frame whose level is NaN) reads [`SILENT_DB`].
fn level_db(frame: &[f32]) -> f32 {
    let len = frame.len().max(1) as f64;
    let mean = frame.iter().map(|&v| f64::from(v)).sum::<f64>() / len;
    let power = frame.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / len;
    let db = 10.0 * power.log10() as f32;
    if db.is_nan() {
        SILENT_DB
    } else {
        db.max(SILENT_DB)
    }
}

/// Which frames are onsets, by the rules in the module's documentation.
fn onsets(levels: &[f32], sounding: &[bool]) -> Vec<bool> {
    let level = |i: usize, back: usize| i.checked_sub(back).map_or(SILENT_DB, |j| levels[j]);
    let mut onset = vec![false; levels.len()];
    for i in 0..levels.len() {
        if !sounding[i] || (i > 0 && onset[i - 1]) {
            continue;
        }
        let (now, one, two) = (levels[i], level(i, 1), level(i, 2));
        onset[i] = now - one >= RISE_DB || (now > one && one > two && now - two >= RISE_DB);
    }
    onset
}

/// Energy in [`HIGH_BAND`] over [`FULL_BAND`], over the sounding frames.
fn high_share(x: &[f32], len: usize, rate: u32, sounding: &[bool]) -> Option<f32> {
    let fft = FftPlanner::<f32>::new().plan_fft_forward(len);
    let window = crate::stft::hann(len);
    // Each bin of the one-sided spectrum stands for itself and its mirror
    // image, except 0 Hz and (for an even length) the Nyquist frequency.
    let weights: Vec<(f64, bool, bool)> = (0..=len / 2)
        .map(|k| {
            let f = k as f64 * f64::from(rate) / len as f64;
            let weight = if k == 0 || 2 * k == len { 1.0 } else { 2.0 };
            let within = |(lo, hi): (f32, f32)| f >= f64::from(lo) && f <= f64::from(hi);
            (weight, within(HIGH_BAND), within(FULL_BAND))
        })
        .collect();
    let mut buf = vec![Complex32::default(); len];
    let (mut high, mut full) = (0.0f64, 0.0f64);
    for (frame, _) in x.chunks_exact(len).zip(sounding).filter(|(_, &s)| s) {
        let mean = frame.iter().sum::<f32>() / len as f32;
        for ((b, &v), &w) in buf.iter_mut().zip(frame).zip(&window) {
            *b = Complex32::new((v - mean) * w, 0.0);
        }
        fft.process(&mut buf);
        for (c, &(weight, in_high, in_full)) in buf.iter().zip(&weights) {
            let e = weight * f64::from(c.norm_sqr());
            if in_high {
                high += e;
            }
            if in_full {
                full += e;
            }
        }
    }
    (full > 0.0).then(|| (high / full) as f32)
}

/// The median of sorted values; `None` when there are none.
fn median(sorted: &[f32]) -> Option<f32> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some(0.5 * (sorted[n / 2 - 1] + sorted[n / 2])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const RATE: u32 = 16_000;

    /// A tone of five harmonics (1/h) at `f0`, `t` seconds into it.
    fn tone(f0: f32, t: f32) -> f32 {
        (1..=5)
            .map(|h| 0.35 / h as f32 * (std::f32::consts::TAU * f0 * h as f32 * t).sin())
            .sum()
    }

    /// `count` struck tones one every `every` seconds from `first`, each
    /// falling `drop_db` per `DECAY_S` until the next replaces it.
    fn struck(rate: u32, first: f32, every: f32, count: usize, drop_db: f32) -> Vec<f32> {
        let pitches = [220.0, 262.0, 294.0, 330.0, 349.0, 392.0, 440.0, 494.0];
        let len = ((first + every * count as f32) * rate as f32) as usize;
        (0..len)
            .map(|i| {
                let t = i as f32 / rate as f32;
                if t < first {
                    return 0.0;
                }
                let k = ((t - first) / every) as usize;
                let since = t - first - k as f32 * every;
                let gain = 10f32.powf(-drop_db / 20.0 * since / DECAY_S);
                gain * tone(pitches[k % pitches.len()], since)
            })
            .collect()
    }

    #[test]
    fn struck_tones_ring_until_the_next_and_decay_as_made() {
        // Onsets at 0.1 s + k 0.6 s fall 1/8, 7/8, 5/8 and 3/8 of the way
        // into their frames: some attacks are split across a boundary.
        let x = struck(RATE, 0.1, 0.6, 8, 15.0);
        let m = measure_notes(&x, RATE).unwrap();
        assert_eq!(m.frames, x.len() / 512);
        assert_eq!(m.frame_s, 0.032);
        assert_eq!(m.onsets, 8, "{m:?}");
        assert!((m.sounding - (1.0 - 3.0 / m.frames as f32)).abs() < 0.01, "{m:?}");
        assert!((m.longest_ring_s - 0.6).abs() <= 0.033, "{m:?}");
        assert!((m.longest_without_onset_s - 0.6).abs() <= 0.033, "{m:?}");
        assert_eq!(m.decays, 8);
        let decay = m.decay_db.unwrap();
        assert!((decay - 15.0).abs() < 1.0, "{m:?}");
        assert!(m.high_share.unwrap() < 0.01, "{m:?}");
        assert_eq!(m.drone_s(), None);
        // Tones well below full scale, without an offset.
        assert_eq!(m.clipped, 0.0);
        assert!(!m.clips());
        assert!(m.offset_share < 1e-3, "{m:?}");

        // A steeper fall reads steeper, and the same notes at 44.1 kHz read
        // the same: nothing depends on the rate but the frame's rounding.
        let steep = measure_notes(&struck(RATE, 0.1, 0.6, 8, 30.0), RATE).unwrap();
        assert!((steep.decay_db.unwrap() - 30.0).abs() < 1.5, "{steep:?}");
        let fast = measure_notes(&struck(44_100, 0.1, 0.6, 8, 15.0), 44_100).unwrap();
        assert_eq!(fast.onsets, 8, "{fast:?}");
        assert!((fast.decay_db.unwrap() - 15.0).abs() < 1.0, "{fast:?}");
        assert!((fast.longest_ring_s - 0.6).abs() <= 0.033, "{fast:?}");
    }

    #[test]
    fn a_drone_has_one_onset_and_no_end() {
        let x: Vec<f32> = (0..5 * RATE as usize)
            .map(|i| tone(220.0, i as f32 / RATE as f32))
            .collect();
        let m = measure_notes(&x, RATE).unwrap();
        assert_eq!((m.onsets, m.sounding), (1, 1.0), "{m:?}");
        assert!((m.longest_without_onset_s - 5.0).abs() < 0.04, "{m:?}");
        assert_eq!(m.longest_ring_s, m.longest_without_onset_s);
        assert!(m.decay_db.unwrap().abs() < 0.5, "{m:?}");
        assert!((m.drone_s().unwrap() - 5.0).abs() < 0.04, "{m:?}");
        // The same tone starting after a second of silence is still a
        // drone; the silence before it is not.
        let late: Vec<f32> = vec![0.0; RATE as usize].into_iter().chain(x).collect();
        let m = measure_notes(&late, RATE).unwrap();
        assert_eq!(m.onsets, 1, "{m:?}");
        assert!((m.drone_s().unwrap() - 5.0).abs() < 0.04, "{m:?}");
    }

    #[test]
    fn noise_bursts_ring_briefly_with_high_energy() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let noise = crate::rng::normal_vec(&mut rng, 4 * RATE as usize, 0.2);
        // 0.1 s of white noise every 0.5 s, from 0.05 s, silence between.
        let x: Vec<f32> = noise
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let t = i as f32 / RATE as f32 - 0.05;
                if t >= 0.0 && t % 0.5 < 0.1 {
                    v
                } else {
                    0.0
                }
            })
            .collect();
        let m = measure_notes(&x, RATE).unwrap();
        assert_eq!(m.onsets, 8, "{m:?}");
        // 0.1 s touches four or five frames.
        assert!(m.longest_ring_s <= 0.161 && m.longest_ring_s >= 0.127, "{m:?}");
        assert!((m.sounding - 33.0 / 125.0).abs() < 0.04, "{m:?}");
        let white = 5_000.0 / 7_950.0;
        assert!((m.high_share.unwrap() - white).abs() < 0.02, "{m:?}");
        // From the noise's -14 dBFS to the floor.
        let decay = m.decay_db.unwrap();
        assert!((decay - (20.0 * 0.2f32.log10() - FLOOR_DB)).abs() < 1.0, "{m:?}");
        assert!(m.longest_without_onset_s <= 0.513, "{m:?}");
        assert_eq!(m.drone_s(), None);
    }

    #[test]
    fn a_wandering_offset_and_full_scale_read_as_such() {
        // A tone at -12 dBFS: its level, no clipping, no offset.
        let x: Vec<f32> = (0..2 * RATE as usize)
            .map(|i| 0.25 * 2f32.sqrt() * (std::f32::consts::TAU * 440.0 * i as f32 / RATE as f32).sin())
            .collect();
        let m = measure_notes(&x, RATE).unwrap();
        assert!((m.sounding_level_db.unwrap() + 12.04).abs() < 0.1, "{m:?}");
        assert_eq!((m.clipped, m.clips()), (0.0, false));
        assert!(m.offset_share < 1e-4, "{m:?}");
        // The same over a 2 Hz swing of 0.5: the frames' levels hardly
        // move (each frame's mean is left out), the offset holds the
        // swing's power over the total, 0.125 / (0.125 + 0.0625).
        let wandering: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| v + 0.5 * (std::f32::consts::TAU * 2.0 * i as f32 / RATE as f32).sin())
            .collect();
        let w = measure_notes(&wandering, RATE).unwrap();
        assert!(
            (w.sounding_level_db.unwrap() - m.sounding_level_db.unwrap()).abs() < 1.0,
            "{w:?}"
        );
        assert!((w.offset_share - 2.0 / 3.0).abs() < 0.02, "{w:?}");
        // Driven past full scale and clamped, as a converter would: a
        // third of the samples sit at the rails.
        let driven: Vec<f32> = x.iter().map(|&v| (v * 8.0).clamp(-1.0, 1.0)).collect();
        let d = measure_notes(&driven, RATE).unwrap();
        assert!(d.clips() && d.clipped > 0.7, "{d:?}");
        // One full-scale sample in two seconds is a peak, not clipping.
        let mut peak = x.clone();
        peak[1_000] = 1.0;
        let p = measure_notes(&peak, RATE).unwrap();
        assert!(p.clipped > 0.0 && !p.clips(), "{p:?}");
    }

    #[test]
    fn silence_has_no_sound_and_no_onsets() {
        let m = measure_notes(&vec![0.0; 2 * RATE as usize], RATE).unwrap();
        assert_eq!((m.frames, m.sounding, m.onsets, m.decays), (62, 0.0, 0, 0));
        assert_eq!((m.decay_db, m.high_share, m.longest_ring_s), (None, None, 0.0));
        assert_eq!((m.sounding_level_db, m.clipped, m.offset_share), (None, 0.0, 0.0));
        assert!((m.longest_without_onset_s - 62.0 * 0.032).abs() < 1e-4, "{m:?}");
        assert_eq!(m.drone_s(), None, "silence is no drone");
        // A constant offset, NaN and no samples at all are silence too.
        let stuck = measure_notes(&vec![-0.3; RATE as usize], RATE).unwrap();
        assert_eq!((stuck.sounding, stuck.onsets), (0.0, 0));
        let broken = measure_notes(&vec![f32::NAN; RATE as usize], RATE).unwrap();
        assert_eq!((broken.sounding, broken.onsets), (0.0, 0));
        let empty = measure_notes(&[], RATE).unwrap();
        assert_eq!(
            (empty.frames, empty.sounding, empty.longest_without_onset_s),
            (0, 0.0, 0.0)
        );
        assert_eq!(
            measure_notes(&[0.0; 10], 0),
            Err(NotesError::RateTooLow { rate: 0 })
        );
    }

    #[test]
    fn an_attack_split_across_a_frame_boundary_is_one_onset() {
        // Over a held tone's tail at -30 dB, a new one 10 dB louder than
        // the tail starting 30% before a frame boundary rises 5.7 dB into
        // that frame and 4.3 dB into the next: one onset, not none or two.
        let tail = 10f32.powf(-30.0 / 20.0);
        let start = 40 * 512 - 154;
        let x: Vec<f32> = (0..80 * 512)
            .map(|i| {
                let t = i as f32 / RATE as f32;
                let gain = if i < start { tail } else { tail * 10f32.powf(0.5) };
                gain * tone(220.0, t)
            })
            .collect();
        let m = measure_notes(&x, RATE).unwrap();
        assert_eq!(m.onsets, 2, "{m:?}");
        assert!((m.longest_ring_s - 40.0 * 0.032).abs() < 0.04, "{m:?}");
        // An onset needs a sounding frame: the same rise far below -45 dBFS
        // is none.
        let quiet: Vec<f32> = x.iter().map(|v| v * 0.01).collect();
        assert_eq!(measure_notes(&quiet, RATE).unwrap().onsets, 0);
    }
}
