//! `cargo xtask pitch`: how pitched some audio files are, and whether they
//! hold notes or click out bursts (or drone), as numbers, so a WaveNet's
//! generated samples can be compared with the music it learnt from without
//! listening to every one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use reverie_engine::notes::{measure_notes, NoteMeasures, DRONE_S};
use reverie_engine::pitch::{pitchedness, Pitchedness};
use reverie_trainer::MonoAudio;

/// Arguments of `cargo xtask pitch`.
#[derive(clap::Args, Debug)]
pub struct PitchArgs {
    /// Audio files (.wav/.flac/.mp3/.ogg), mixed to mono and measured at
    /// their own rate.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Runs `cargo xtask pitch`: two lines per file (pitch, then notes), then
/// the medians.
pub fn run(args: &PitchArgs) -> anyhow::Result<()> {
    let mut all: Vec<Pitchedness> = Vec::new();
    let mut notes: Vec<NoteMeasures> = Vec::new();
    for path in &args.files {
        let (audio, p) = read_and_measure(path)?;
        let n = measure_notes(&audio.samples, audio.sample_rate)
            .with_context(|| format!("measuring {}", path.display()))?;
        println!(
            "{}: clarity {:.2}, flatness {:.3}, {} frames",
            path.display(),
            p.clarity,
            p.flatness,
            p.frames
        );
        println!("{}", notes_line(&n));
        all.push(p);
        notes.push(n);
    }
    if all.len() > 1 {
        let median = |f: fn(&Pitchedness) -> f32| {
            let mut v: Vec<f32> = all.iter().map(f).collect();
            v.sort_by(f32::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "median of {} files: clarity {:.2}, flatness {:.3}",
            all.len(),
            median(|p| p.clarity),
            median(|p| p.flatness)
        );
        println!("{}", median_notes_line(&notes));
    }
    println!(
        "(notes: clarity about 0.5 or more, flatness near 0; noise: clarity under 0.3, flatness about 0.2 or more)"
    );
    println!(
        "(piano melodies: sounding 95% or more, longest ring 0.5 s or more, drop under 10 dB, 3-8 kHz share \
         under 0.07, level -17 to -24 dBFS, none clipped, offset share at most 0.001; bursts: sounding about half, \
         rings under 0.3 s, drops of 20 dB and more; a drone: no onset for over {DRONE_S:.0} s; clipping: over \
         {:.1}% of the samples at full scale)",
        100.0 * reverie_engine::notes::CLIPPING_SHARE
    );
    Ok(())
}

/// One file's note measures: `  notes: sounding S%, O onsets in F frames
/// of 32 ms, longest ring R s, longest without onset W s, drop D dB in
/// 0.3 s (over K onsets), 3-8 kHz share H, level L dBFS, clipped C%, offset
/// share O`, then `, drone: no onset for N s` when it drones and `, clips`
/// when it clips; `-` stands for a number that cannot be measured (no
/// onset early enough, no sounding frame).
fn notes_line(n: &NoteMeasures) -> String {
    let mut line = format!(
        "  notes: sounding {:.0}%, {} onsets in {} frames of {:.0} ms, longest ring {:.2} s, \
         longest without onset {:.2} s, drop {} dB in 0.3 s (over {} onsets), 3-8 kHz share {}, \
         level {} dBFS, clipped {:.1}%, offset share {:.5}",
        100.0 * n.sounding,
        n.onsets,
        n.frames,
        1000.0 * n.frame_s,
        n.longest_ring_s,
        n.longest_without_onset_s,
        or_dash(n.decay_db, 1),
        n.decays,
        or_dash(n.high_share, 3),
        or_dash(n.sounding_level_db, 1),
        100.0 * n.clipped,
        n.offset_share,
    );
    if let Some(s) = n.drone_s() {
        line.push_str(&format!(", drone: no onset for {s:.1} s"));
    }
    if n.clips() {
        line.push_str(", clips");
    }
    line
}

/// The medians of the files' note measures (each over the files where it
/// could be measured), and how many files drone and how many clip.
fn median_notes_line(notes: &[NoteMeasures]) -> String {
    let median = |f: &dyn Fn(&NoteMeasures) -> Option<f32>| -> Option<f32> {
        let mut v: Vec<f32> = notes.iter().filter_map(f).collect();
        v.sort_by(f32::total_cmp);
        (!v.is_empty()).then(|| v[v.len() / 2])
    };
    let drones = notes.iter().filter(|n| n.drone_s().is_some()).count();
    let clipping = notes.iter().filter(|n| n.clips()).count();
    format!(
        "  notes median: sounding {:.0}%, {} onsets, longest ring {:.2} s, longest without onset {:.2} s, \
         drop {} dB in 0.3 s, 3-8 kHz share {}, level {} dBFS, clipped {:.1}%, offset share {:.5}; \
         {drones} of {} files drone, {clipping} clip",
        100.0 * median(&|n| Some(n.sounding)).unwrap_or(0.0),
        median(&|n| Some(n.onsets as f32)).unwrap_or(0.0),
        median(&|n| Some(n.longest_ring_s)).unwrap_or(0.0),
        median(&|n| Some(n.longest_without_onset_s)).unwrap_or(0.0),
        or_dash(median(&|n| n.decay_db), 1),
        or_dash(median(&|n| n.high_share), 3),
        or_dash(median(&|n| n.sounding_level_db), 1),
        100.0 * median(&|n| Some(n.clipped)).unwrap_or(0.0),
        median(&|n| Some(n.offset_share)).unwrap_or(0.0),
        notes.len(),
    )
}

/// `value` with `digits` decimals, or `-` when there is none.
fn or_dash(value: Option<f32>, digits: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

/// An audio file mixed to mono at its own rate, and its pitch measures.
pub fn read_and_measure(path: &Path) -> anyhow::Result<(MonoAudio, Pitchedness)> {
    if !path.is_file() {
        bail!("{} does not exist", path.display());
    }
    let audio = reverie_trainer::decode_mono(path).with_context(|| format!("reading {}", path.display()))?;
    let p = pitchedness(&audio.samples, audio.sample_rate);
    Ok((audio, p))
}
