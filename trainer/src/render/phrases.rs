//! Generated phrases: a melody, chords, an ostinato or a drum groove in a
//! random key, register, tempo and dynamic, as timed MIDI events.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::families::Family;

/// A MIDI message at a time in seconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Event {
    pub(super) time: f64,
    pub(super) command: i32,
    pub(super) data1: i32,
    pub(super) data2: i32,
}

pub(super) struct Phrase {
    pub(super) channel: i32,
    /// Sorted by time; equal times keep their order (set-up before notes).
    pub(super) events: Vec<Event>,
}

pub(super) const NOTE_ON: i32 = 0x90;
const NOTE_OFF: i32 = 0x80;
const CONTROL: i32 = 0xB0;
const PROGRAM: i32 = 0xC0;

/// Scales as semitone offsets; several colours so melodies are not all major.
const SCALES: [&[i32]; 6] = [
    &[0, 2, 4, 5, 7, 9, 11], // major
    &[0, 2, 3, 5, 7, 8, 10], // natural minor
    &[0, 2, 3, 5, 7, 9, 10], // dorian
    &[0, 2, 4, 7, 9],        // major pentatonic
    &[0, 3, 5, 6, 7, 10],    // blues
    &[0, 2, 3, 5, 7, 8, 11], // harmonic minor
];

/// The musical choices shared by all notes of one phrase.
struct Context {
    beat: f64,
    end: f64,
    low: i32,
    high: i32,
    root: i32,
    scale: &'static [i32],
    velocity: f64,
    /// Velocity change over the phrase (crescendo > 0).
    swell: f64,
    /// Fraction of a note's slot it sounds for (staccato .. legato).
    legato: f64,
    /// Longest note slot in beats: struck and plucked sounds die away, so
    /// long slots would leave silence.
    longest: f64,
}

impl Context {
    /// The MIDI key of scale degree `d` (any integer; 0 = the root in the
    /// lowest octave of the register).
    fn key(&self, d: i32) -> i32 {
        let n = self.scale.len() as i32;
        let octave = d.div_euclid(n);
        self.root + 12 * octave + self.scale[d.rem_euclid(n) as usize]
    }

    /// The degree range whose keys lie in the register.
    fn degrees(&self) -> (i32, i32) {
        let n = self.scale.len() as i32;
        let lo = (-n..).find(|&d| self.key(d) >= self.low).unwrap_or(0);
        let hi = (lo..lo + 12 * n)
            .take_while(|&d| self.key(d) <= self.high)
            .last()
            .unwrap_or(lo);
        (lo, hi)
    }

    /// How long a note whose slot is `slot` seconds sounds: the phrase's
    /// legato, but never leaving more than a quarter second of silence
    /// before the next slot.
    fn hold(&self, slot: f64) -> f64 {
        (slot * self.legato).max(slot - 0.25)
    }

    fn velocity_at(&self, t: f64, rng: &mut ChaCha8Rng, accent: f64) -> i32 {
        let v = self.velocity + self.swell * (t / self.end) + accent + rng.random_range(-8.0..8.0);
        v.round().clamp(15.0, 127.0) as i32
    }
}

/// A random phrase of `seconds` for `fam`: its voice, register, tempo,
/// dynamics and style, as MIDI events.
pub(super) fn phrase(fam: &Family, rng: &mut ChaCha8Rng, seconds: f64) -> Phrase {
    let (program, low, high) = fam.voices[rng.random_range(0..fam.voices.len())];
    let channel = if fam.percussion { 9 } else { 0 };
    let mut events = Vec::new();
    let mut cc = |controller: i32, value: i32| {
        events.push(Event {
            time: 0.0,
            command: CONTROL,
            data1: controller,
            data2: value,
        });
    };
    cc(7, rng.random_range(85..=127)); // channel volume
    cc(11, rng.random_range(90..=127)); // expression
    cc(91, rng.random_range(0..=110)); // reverb send
    cc(
        93,
        if rng.random_bool(0.4) {
            rng.random_range(0..=80)
        } else {
            0
        },
    ); // chorus send
    if fam.sustained && rng.random_bool(0.4) {
        cc(1, rng.random_range(10..=60)); // vibrato
    }
    events.push(Event {
        time: 0.0,
        command: PROGRAM,
        data1: i32::from(program),
        data2: 0,
    });

    // A register of an octave and a half or so inside the voice's range, so
    // clips of one family spread over low, middle and high parts.
    let (low, high) = (i32::from(low), i32::from(high));
    let span = rng.random_range(14..=24).min(high - low);
    let reg_low = rng.random_range(low..=high - span);
    let bpm: f64 = rng.random_range(60.0..170.0);
    let velocity = rng.random_range(45.0..115.0);
    let ctx = Context {
        beat: 60.0 / bpm,
        end: seconds,
        low: reg_low,
        high: reg_low + span,
        root: reg_low - (reg_low % 12) + rng.random_range(0..12),
        scale: SCALES[rng.random_range(0..SCALES.len())],
        velocity,
        swell: rng.random_range(-25.0..25.0),
        legato: if fam.sustained {
            rng.random_range(0.75..1.0)
        } else {
            rng.random_range(0.35..1.0)
        },
        longest: if fam.sustained { 4.0 } else { 1.0 },
    };
    // Start a little after zero so onsets do not always sit on the first
    // sample of the clip.
    let start = rng.random_range(0.0..0.25f64.min(seconds * 0.1));

    let mut notes = Vec::new();
    if fam.percussion {
        drums(&ctx, rng, start, &mut notes);
    } else {
        let total: u32 = fam.style_weights.iter().sum();
        let mut pick = rng.random_range(0..total);
        let style = fam.style_weights.iter().position(|&w| {
            let hit = pick < w;
            pick = pick.saturating_sub(w);
            hit
        });
        match style {
            Some(0) => melody(&ctx, rng, start, &mut notes),
            Some(1) => chords(&ctx, rng, start, fam.name == "guitar", &mut notes),
            _ => ostinato(&ctx, rng, start, &mut notes),
        }
    }
    for n in notes {
        events.push(Event {
            time: n.start,
            command: NOTE_ON,
            data1: n.key,
            data2: n.velocity,
        });
        events.push(Event {
            time: n.start + n.length.max(0.02),
            command: NOTE_OFF,
            data1: n.key,
            data2: 0,
        });
    }
    events.sort_by(|a, b| a.time.total_cmp(&b.time));
    Phrase { channel, events }
}

struct Note {
    start: f64,
    length: f64,
    key: i32,
    velocity: i32,
}

/// A random walk over the scale: mostly steps, sometimes leaps, with varied
/// note values and the odd rest.
fn melody(ctx: &Context, rng: &mut ChaCha8Rng, start: f64, notes: &mut Vec<Note>) {
    const VALUES: [f64; 7] = [0.25, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0];
    let (lo, hi) = ctx.degrees();
    let mut degree = rng.random_range(lo..=hi);
    let mut t = start;
    while t < ctx.end {
        let slot = VALUES[rng.random_range(0..VALUES.len())].min(ctx.longest) * ctx.beat;
        // Short rests only, and never before the first note: a clip that
        // opens with a second of silence teaches nothing about its class.
        if t > start && rng.random_bool(0.1) {
            t += slot.min(ctx.beat);
            continue;
        }
        let on_beat = ((t - start) / ctx.beat).fract() < 0.05;
        let velocity = ctx.velocity_at(t, rng, if on_beat { 8.0 } else { 0.0 });
        notes.push(Note {
            start: t,
            length: ctx.hold(slot),
            key: ctx.key(degree),
            velocity,
        });
        let step = if rng.random_bool(0.2) {
            rng.random_range(3..=5)
        } else {
            rng.random_range(1..=2)
        };
        degree += if rng.random_bool(0.5) { step } else { -step };
        // Reflect at the register's edges so the line stays in range
        // without piling up on the boundary.
        if degree > hi {
            degree = (2 * hi - degree).max(lo);
        }
        if degree < lo {
            degree = (2 * lo - degree).min(hi);
        }
        t += slot;
    }
}

/// Diatonic triads and sevenths, held, arpeggiated or (for guitar) strummed.
fn chords(ctx: &Context, rng: &mut ChaCha8Rng, start: f64, strum: bool, notes: &mut Vec<Note>) {
    let (lo, hi) = ctx.degrees();
    let n = ctx.scale.len() as i32;
    let bar = (rng.random_range(1..=4) as f64).min(2.0 * ctx.longest) * ctx.beat;
    let arpeggio = rng.random_bool(0.35);
    let sub = if rng.random_bool(0.5) { 0.5 } else { 0.25 } * ctx.beat;
    let seventh = rng.random_bool(0.3);
    let mut t = start;
    while t < ctx.end {
        let base = lo + rng.random_range(0..n.min(hi - lo + 1).max(1));
        let mut keys: Vec<i32> = [0, 2, 4]
            .iter()
            .chain(if seventh { &[6][..] } else { &[][..] })
            .map(|i| ctx.key(base + i))
            .collect();
        keys.retain(|&k| k <= ctx.high + 7);
        if keys.is_empty() {
            keys.push(ctx.key(base));
        }
        if arpeggio {
            let mut s = t;
            let mut i = 0;
            while s < t + bar && s < ctx.end {
                let key = keys[i % keys.len()];
                notes.push(Note {
                    start: s,
                    length: sub * ctx.legato.max(0.6),
                    key,
                    velocity: ctx.velocity_at(s, rng, 0.0),
                });
                s += sub;
                i += 1;
            }
        } else {
            let hits = if !strum || rng.random_bool(0.5) {
                1
            } else {
                rng.random_range(2..=4)
            };
            let hit_len = bar / f64::from(hits);
            for h in 0..hits {
                let at = t + f64::from(h) * hit_len;
                let down = h % 2 == 0;
                let spread = if strum {
                    rng.random_range(0.008..0.03)
                } else {
                    rng.random_range(0.0..0.006)
                };
                let accent = if h == 0 { 6.0 } else { 0.0 };
                let velocity = ctx.velocity_at(at, rng, accent);
                for (j, &key) in keys.iter().enumerate() {
                    let order = if down { j } else { keys.len() - 1 - j };
                    let s = at + spread * order as f64;
                    let v = (velocity + rng.random_range(-5..=5)).clamp(15, 127);
                    notes.push(Note {
                        start: s,
                        length: ctx.hold(hit_len),
                        key,
                        velocity: v,
                    });
                }
            }
        }
        t += bar;
    }
}

/// A repeating one-bar pattern over a few pitches (root, fifth, octave):
/// riffs, pedal tones, pulses.
fn ostinato(ctx: &Context, rng: &mut ChaCha8Rng, start: f64, notes: &mut Vec<Note>) {
    let (lo, hi) = ctx.degrees();
    let n = ctx.scale.len() as i32;
    let root = rng.random_range(lo..=hi.max(lo));
    let pool: Vec<i32> = [0, 4, n, 2].iter().map(|d| (root + d).min(hi)).collect();
    let steps = 16;
    let step = ctx.beat / 4.0;
    let density = rng.random_range(0.25..0.7);
    let pattern: Vec<Option<(i32, f64)>> = (0..steps)
        .map(|i| {
            let strong = i % 4 == 0;
            (i == 0 || strong && rng.random_bool(0.8) || rng.random_bool(density)).then(|| {
                (
                    pool[rng.random_range(0..pool.len().min(3))],
                    if i % 8 == 0 { 10.0 } else { 0.0 },
                )
            })
        })
        .collect();
    let mut t = start;
    let mut i = 0;
    while t < ctx.end {
        if let Some((degree, accent)) = pattern[i % steps] {
            let gap = (1..steps)
                .find(|k| pattern[(i + k) % steps].is_some())
                .unwrap_or(steps);
            let length = ctx.hold(gap as f64 * step);
            notes.push(Note {
                start: t,
                length,
                key: ctx.key(degree),
                velocity: ctx.velocity_at(t, rng, accent),
            });
        }
        t += step;
        i += 1;
    }
}

/// Drum-kit grooves (kick, snare, hats or ride, fills, crashes) or hand
/// percussion, with swing and a little timing looseness.
fn drums(ctx: &Context, rng: &mut ChaCha8Rng, start: f64, notes: &mut Vec<Note>) {
    const TOMS: [i32; 6] = [41, 43, 45, 47, 48, 50];
    const HAND: [i32; 10] = [60, 61, 62, 63, 64, 54, 56, 69, 70, 75];
    let step = ctx.beat / 4.0;
    let swing = if rng.random_bool(0.3) {
        rng.random_range(0.1..0.3) * step
    } else {
        0.0
    };
    let hand = rng.random_bool(0.25);
    let cymbal = if rng.random_bool(0.7) {
        42
    } else if rng.random_bool(0.5) {
        51
    } else {
        46
    };
    let hat_every = if rng.random_bool(0.5) { 2 } else { 1 };
    let kick_extra = rng.random_range(0.05..0.35);
    let hand_pattern: Vec<Option<i32>> = (0..16)
        .map(|i| (i == 0 || rng.random_bool(0.5)).then(|| HAND[rng.random_range(0..HAND.len())]))
        .collect();
    let fill_bar = rng.random_range(1..4);
    let mut t = start;
    let mut i = 0usize;
    while t < ctx.end {
        let s = i % 16;
        let bar = i / 16;
        let at = t + if s % 2 == 1 { swing } else { 0.0 } + rng.random_range(-0.004..0.004);
        let mut hit = |key: i32, accent: f64, rng: &mut ChaCha8Rng| {
            notes.push(Note {
                start: at.max(0.0),
                length: 0.1,
                key,
                velocity: ctx.velocity_at(t, rng, accent),
            });
        };
        if hand {
            if let Some(key) = hand_pattern[s] {
                hit(key, if s.is_multiple_of(4) { 10.0 } else { 0.0 }, rng);
            }
        } else if bar % 4 == fill_bar && s >= 12 {
            hit(TOMS[(s - 12 + bar) % TOMS.len()], 5.0, rng);
        } else {
            if s == 0 && bar.is_multiple_of(4) && rng.random_bool(0.4) {
                hit(49, 10.0, rng);
            }
            if s.is_multiple_of(8) || rng.random_bool(kick_extra * f64::from(u8::from(s.is_multiple_of(2)))) {
                hit(if rng.random_bool(0.5) { 36 } else { 35 }, 10.0, rng);
            }
            if s == 4 || s == 12 {
                hit(if rng.random_bool(0.8) { 38 } else { 40 }, 12.0, rng);
            } else if rng.random_bool(0.08) {
                hit(38, -30.0, rng);
            }
            if s.is_multiple_of(hat_every) {
                hit(cymbal, if s.is_multiple_of(4) { 0.0 } else { -15.0 }, rng);
            }
        }
        t += step;
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::render::renderer::clip_seed;
    use crate::render::FAMILIES;

    #[test]
    fn phrases_stay_in_range_and_start_early() {
        for (f, fam) in FAMILIES.iter().enumerate() {
            for i in 0..20 {
                let mut rng = ChaCha8Rng::seed_from_u64(clip_seed(0, f, i, 0));
                let p = phrase(fam, &mut rng, 2.0);
                let ons: Vec<&Event> = p.events.iter().filter(|e| e.command == NOTE_ON).collect();
                assert!(!ons.is_empty(), "{} {i}: no notes", fam.name);
                assert!(
                    ons[0].time < 0.25,
                    "{} {i}: first note at {}",
                    fam.name,
                    ons[0].time
                );
                assert!(p.events.windows(2).all(|w| w[0].time <= w[1].time));
                for e in &ons {
                    assert!((1..=127).contains(&e.data2), "velocity {}", e.data2);
                    if !fam.percussion {
                        let lo = fam.voices.iter().map(|v| i32::from(v.1)).min().unwrap();
                        let hi = fam.voices.iter().map(|v| i32::from(v.2)).max().unwrap();
                        // Chord tones may stack a fifth above the register.
                        assert!((lo..=hi + 7).contains(&e.data1), "{}: key {}", fam.name, e.data1);
                    }
                }
            }
        }
    }
}
