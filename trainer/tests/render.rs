//! Rendering the instrument dataset from the General MIDI SoundFont, which
//! `scripts/test.sh` installs; without it these tests fail with the
//! library's message saying what to install.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use reverie_engine::pitch::pitchedness;
use reverie_trainer::dataset::{load_dataset, DatasetConfig, Split};
use reverie_trainer::render::{
    find_soundfont, render_piano, PianoStyle, RenderConfig, Renderer, DRY_PEAK, FAMILIES, SOLO_PIANO,
};

fn renderer() -> &'static Renderer {
    static R: OnceLock<Renderer> = OnceLock::new();
    R.get_or_init(|| {
        let path = find_soundfont().unwrap_or_else(|e| panic!("{e}"));
        Renderer::load(&path).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn small(seed: u64) -> RenderConfig {
    RenderConfig {
        sample_rate: 16_000,
        clip_seconds: 1.5,
        clips_per_class: 2,
        seed,
        threads: 2,
        colour: true,
    }
}

fn render(dir: &Path, config: &RenderConfig) {
    let calls = AtomicUsize::new(0);
    let summary = renderer()
        .render_dataset(dir, config, &|| {
            calls.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    assert_eq!(
        calls.into_inner(),
        FAMILIES.len() * config.clips_per_class,
        "progress once per clip"
    );
    assert_eq!(summary.files, FAMILIES.len() * config.clips_per_class);
    assert!((summary.audio_seconds - summary.files as f64 * 1.5).abs() < 1e-9);
    // 16-bit mono: 2 bytes a sample plus a 44-byte header.
    assert_eq!(summary.bytes, summary.files as u64 * (24_000 * 2 + 44));
}

/// (class/file name, bytes) of every file under `dir`, sorted.
fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for class in std::fs::read_dir(dir).unwrap() {
        let class = class.unwrap().path();
        for f in std::fs::read_dir(&class).unwrap() {
            let f = f.unwrap().path();
            let name = format!(
                "{}/{}",
                class.file_name().unwrap().to_string_lossy(),
                f.file_name().unwrap().to_string_lossy()
            );
            out.push((name, std::fs::read(&f).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn small_render_has_every_class_audible_and_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    render(&a, &small(7));
    render(&b, &small(7));
    render(&c, &small(8));

    assert!(FAMILIES.len() >= 8);
    for fam in &FAMILIES {
        for n in 0..2 {
            let path = a.join(fam.name).join(format!("{n:04}.wav"));
            let audio = reverie_engine::wav::read(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(audio.spec.channels, 1);
            assert_eq!(audio.spec.sample_rate, 16_000);
            assert_eq!(audio.len(), 24_000, "{}", path.display());
            let x = &audio.channels[0];
            let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let rms = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
            // Levels are drawn between -24 and -1 dBFS.
            assert!((0.06..0.9).contains(&peak), "{}: peak {peak}", path.display());
            assert!(rms > 0.002, "{}: rms {rms}", path.display());
            // Phrases start within the first 0.25 s: no clip opens silent.
            assert!(
                x[..4_000].iter().any(|v| v.abs() > 0.1 * peak),
                "{}: silent start",
                path.display()
            );
        }
    }

    let (ca, cb, cc) = (contents(&a), contents(&b), contents(&c));
    assert_eq!(ca.len(), FAMILIES.len() * 2);
    assert!(ca == cb, "the same seed must give byte-identical files");
    let same = ca.iter().zip(&cc).filter(|(x, y)| x == y).count();
    assert_eq!(same, 0, "a different seed must change every clip");

    // A smaller render into the same folder leaves exactly its own clips.
    render(
        &a,
        &RenderConfig {
            clips_per_class: 1,
            ..small(7)
        },
    );
    let again = contents(&a);
    assert_eq!(again.len(), FAMILIES.len());
    assert!(again
        .iter()
        .all(|(name, bytes)| ca.iter().any(|(n, b)| n == name && b == bytes)));
    std::fs::remove_dir_all(&a).unwrap();

    // The render is a dataset the loader takes as it is: one file of each
    // class for training and one for validation.
    let ds = load_dataset(
        &b,
        &DatasetConfig {
            sample_rate: 16_000,
            clip_seconds: 1.0,
            overlap_seconds: 0.5,
            val_fraction: 0.5,
            seed: 1,
        },
    )
    .unwrap();
    let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
    names.sort_unstable();
    assert_eq!(ds.classes, names);
    assert!(ds.skipped.is_empty());
    assert_eq!(
        ds.files.iter().filter(|f| f.split == Split::Val).count(),
        FAMILIES.len()
    );
    // A 1.5 s file holds 1 s clips at 0 and 0.5 s.
    assert_eq!(ds.train.len(), 2 * FAMILIES.len());
    assert!(ds.train.iter().all(|c| c.offset == 0 || c.offset == 8_000));
}

#[test]
fn clips_are_finite_and_other_rates_have_the_right_length() {
    let r = renderer();
    let cfg = RenderConfig {
        clip_seconds: 0.5,
        ..small(3)
    };
    let first = r.render_clip(0, 0, &cfg).unwrap();
    assert_eq!(first.len(), 8_000);
    assert!(first.iter().all(|v| v.is_finite()));
    assert_eq!(first, r.render_clip(0, 0, &cfg).unwrap());
    assert_ne!(first, r.render_clip(0, 1, &cfg).unwrap());

    // Below the synthesiser's 16 kHz floor the clip is rendered faster and
    // resampled down.
    let low = RenderConfig {
        sample_rate: 8_000,
        ..cfg.clone()
    };
    let clip = r.render_clip(FAMILIES.len() - 1, 0, &low).unwrap();
    assert_eq!(clip.len(), 4_000);
    assert!(clip.iter().all(|v| v.is_finite()) && clip.iter().any(|v| v.abs() > 1e-3));

    assert!(r.render_clip(FAMILIES.len(), 0, &cfg).is_err());
    assert!(r
        .render_clip(
            0,
            0,
            &RenderConfig {
                clips_per_class: 0,
                ..cfg
            }
        )
        .is_err());
}

#[test]
fn dry_clips_are_the_same_notes_without_room_noise_or_level() {
    let r = renderer();
    let cfg = RenderConfig {
        clip_seconds: 1.0,
        ..small(5)
    };
    let dry_cfg = RenderConfig {
        colour: false,
        ..cfg.clone()
    };
    let peak = |x: &[f32]| x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    // Loudness envelope in 50 ms blocks.
    let envelope = |x: &[f32]| -> Vec<f64> {
        x.chunks(800)
            .map(|c| c.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt())
            .collect()
    };
    let (mut dry, mut coloured) = (Vec::new(), Vec::new());
    for index in 0..4 {
        let d = r.render_family_clip(&SOLO_PIANO, 0, index, &dry_cfg).unwrap();
        let c = r.render_family_clip(&SOLO_PIANO, 0, index, &cfg).unwrap();
        assert_eq!(d.len(), 16_000);
        assert!((peak(&d) - DRY_PEAK).abs() < 1e-5, "{}", peak(&d));
        assert_ne!(d, c);
        assert_eq!(d, r.render_family_clip(&SOLO_PIANO, 0, index, &dry_cfg).unwrap());
        dry.push(d);
        coloured.push(c);
    }
    for i in 0..4 {
        // The same phrase: the envelopes rise and fall together (the room
        // and tone only smear and tilt them), more than with another one.
        let same = correlation(&envelope(&dry[i]), &envelope(&coloured[i]));
        let other = correlation(&envelope(&dry[i]), &envelope(&coloured[(i + 1) % 4]));
        assert!(same > 0.8 && same > other, "phrase {i}: {same} vs {other}");
    }
    // Coloured clips vary their level; dry ones never do.
    let levels: Vec<f32> = coloured.iter().map(|c| peak(c)).collect();
    assert!(levels.iter().any(|p| (p - DRY_PEAK).abs() > 0.01), "{levels:?}");
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let var = |x: &[f64], m: f64| x.iter().map(|v| (v - m) * (v - m)).sum::<f64>();
    cov / (var(a, ma) * var(b, mb)).sqrt()
}

/// The WaveNet's piano: numbered files, dry, and the melodies style is a
/// single clear line where the phrases style has chords and wide ranges.
#[test]
fn rendered_piano_styles_are_files_the_wavenet_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut clarity = Vec::new();
    for style in [PianoStyle::Phrases, PianoStyle::Melodies] {
        let out = dir.path().join(format!("{style:?}"));
        let count = AtomicUsize::new(0);
        let done = render_piano(&out, style, 6, 2.0, 16_000, 3, &|| {
            count.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!((done, count.load(Ordering::Relaxed)), (6, 6));
        let mut measures = Vec::new();
        for i in 0..6 {
            let mut r = hound::WavReader::open(out.join(format!("piano-{i:04}.wav"))).unwrap();
            assert_eq!((r.spec().channels, r.spec().sample_rate), (1, 16_000));
            let x: Vec<f32> = r
                .samples::<i16>()
                .map(|s| f32::from(s.unwrap()) / 32_768.0)
                .collect();
            assert_eq!(x.len(), 32_000);
            let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!((peak - DRY_PEAK).abs() < 1e-3, "{peak}");
            measures.push(pitchedness(&x, 16_000).clarity);
        }
        measures.sort_by(f32::total_cmp);
        clarity.push(measures[3]);
    }
    assert!(clarity[1] > 0.75, "melodies: {clarity:?}");
    assert!(clarity[1] > clarity[0], "{clarity:?}");
}
