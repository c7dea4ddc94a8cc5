//! Ingestion of labelled folders: decoding, resampling, clipping,
//! normalisation, file-level splitting and error reporting, on tiny folders
//! written into a temporary directory.

use std::collections::BTreeSet;
use std::f32::consts::TAU;
use std::path::{Path, PathBuf};

use reverie_trainer::dataset::{load_dataset, DatasetConfig, DatasetError, Split};
use reverie_trainer::decode::{decode_mono, DecodeError};

/// Writes `channels` (equal lengths) as a WAV: 16-bit integer or 32-bit float.
fn write_wav(path: &Path, rate: u32, channels: &[Vec<f32>], float: bool) {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: rate,
        bits_per_sample: if float { 32 } else { 16 },
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..channels[0].len() {
        for c in channels {
            if float {
                w.write_sample(c[i]).unwrap();
            } else {
                w.write_sample((c[i] * 32767.0).round() as i16).unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

fn sine(rate: u32, seconds: f32, freq: f32, amp: f32, dc: f32) -> Vec<f32> {
    let n = (seconds * rate as f32).round() as usize;
    (0..n)
        .map(|i| dc + amp * (TAU * freq * i as f32 / rate as f32).sin())
        .collect()
}

fn mkdir(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(clip: f32, overlap: f32, val: f32, seed: u64) -> DatasetConfig {
    DatasetConfig {
        sample_rate: 16_000,
        clip_seconds: clip,
        overlap_seconds: overlap,
        val_fraction: val,
        seed,
    }
}

fn mean_and_peak(x: &[f32]) -> (f64, f32) {
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len() as f64;
    (mean, x.iter().fold(0.0f32, |m, v| m.max(v.abs())))
}

/// Zero crossings per second, an estimate of twice a sine's frequency.
fn crossings_per_second(x: &[f32], rate: u32) -> f32 {
    let n = x.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
    n as f32 / (x.len() as f32 / rate as f32)
}

#[test]
fn clips_have_the_right_length_count_level_and_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let a = mkdir(tmp.path(), "a");
    let b = mkdir(tmp.path(), "b");
    // 5.2 s of stereo at 8 kHz with a DC offset: mono = 0.1 + 0.4 sin.
    write_wav(
        &a.join("long.wav"),
        8_000,
        &[
            sine(8_000, 5.2, 440.0, 0.5, 0.1),
            sine(8_000, 5.2, 440.0, 0.3, 0.1),
        ],
        false,
    );
    // 3 s of float at the model rate, 1 s (shorter than a clip), and silence.
    write_wav(
        &b.join("three.wav"),
        16_000,
        &[sine(16_000, 3.0, 300.0, 0.9, 0.0)],
        true,
    );
    write_wav(
        &b.join("short.wav"),
        16_000,
        &[sine(16_000, 1.0, 300.0, 0.2, 0.05)],
        true,
    );
    write_wav(&b.join("silent.wav"), 16_000, &[vec![0.0; 40_000]], false);

    // 2 s clips overlapping by 0.5 s: 32000 samples every 24000.
    let ds = load_dataset(tmp.path(), &config(2.0, 0.5, 0.0, 0)).unwrap();
    assert_eq!(ds.classes, ["a", "b"]);
    assert_eq!(ds.clip_len, 32_000);
    assert!(ds.val.is_empty(), "val_fraction 0 holds nothing out");
    assert!(ds.skipped.is_empty(), "{:?}", ds.skipped);

    let file = |name: &str| ds.files.iter().position(|f| f.path.ends_with(name)).unwrap();
    let clips_of = |name: &str| {
        ds.train
            .iter()
            .filter(|c| c.file == file(name))
            .collect::<Vec<_>>()
    };

    // Resampled to the model rate: 5.2 s at 16 kHz.
    let long_len = ds.files[file("long.wav")].samples;
    assert!((83_199..=83_201).contains(&long_len), "length {long_len}");
    let long = clips_of("long.wav");
    assert_eq!(
        long.iter().map(|c| c.offset).collect::<Vec<_>>(),
        [0, 24_000, 48_000]
    );
    for c in &long {
        assert_eq!(c.class, 0);
        assert_eq!(c.samples.len(), 32_000);
        let (mean, peak) = mean_and_peak(&c.samples);
        assert!(mean.abs() < 1e-4, "mean {mean}");
        assert!((peak - 1.0).abs() < 1e-6, "peak {peak}");
        // The mono mix-down's sine has amplitude 0.4 before scaling.
        assert!((c.scale - 0.4).abs() < 0.01, "scale {}", c.scale);
        // 440 Hz at the model rate crosses zero 880 times a second; had the
        // file not been resampled it would read as 880 Hz.
        let zc = crossings_per_second(&c.samples, 16_000);
        assert!((zc - 880.0).abs() < 3.0, "crossings/s {zc}");
    }

    let three = clips_of("three.wav");
    assert_eq!(
        three.len(),
        1,
        "48000 samples hold one 32000-sample clip at hop 24000"
    );
    assert!((three[0].scale - 0.9).abs() < 1e-3);

    // Shorter than a clip: one clip, zero-padded, so its tail is constant.
    let short = clips_of("short.wav");
    assert_eq!(short.len(), 1);
    let tail = &short[0].samples[16_000..];
    assert!(tail.iter().all(|&v| v == tail[0]));
    let (mean, peak) = mean_and_peak(&short[0].samples);
    assert!(mean.abs() < 1e-4 && (peak - 1.0).abs() < 1e-6);

    // Silence stays finite and zero: no division by a zero peak.
    let silent = clips_of("silent.wav");
    assert_eq!(silent.len(), 1);
    assert!(silent[0].samples.iter().all(|&v| v == 0.0));
    assert_eq!(silent[0].scale, 0.0);

    assert_eq!(ds.train.len(), 3 + 1 + 1 + 1);
}

#[test]
fn unreadable_and_foreign_files_are_reported_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let a = mkdir(tmp.path(), "a");
    let b = mkdir(tmp.path(), "b");
    write_wav(
        &a.join("good.wav"),
        16_000,
        &[sine(16_000, 1.0, 200.0, 0.5, 0.0)],
        false,
    );
    std::fs::write(
        a.join("x.wav"),
        b"this is not a RIFF file at all, just garbage bytes",
    )
    .unwrap();
    std::fs::write(a.join("notes.txt"), b"hello").unwrap();
    std::fs::write(a.join(".DS_Store"), b"junk").unwrap();
    write_wav(
        &b.join("good.wav"),
        16_000,
        &[sine(16_000, 1.0, 200.0, 0.5, 0.0)],
        false,
    );
    std::fs::write(b.join("broken.ogg"), [0u8; 300]).unwrap();
    write_wav(&tmp.path().join("loose.wav"), 16_000, &[vec![0.1; 100]], false);

    let ds = load_dataset(tmp.path(), &config(0.5, 0.0, 0.0, 0)).unwrap();
    let reason = |name: &str| {
        ds.skipped
            .iter()
            .find(|s| s.path.file_name().unwrap() == name)
            .unwrap_or_else(|| panic!("{name} not reported: {:?}", ds.skipped))
            .reason
            .clone()
    };
    let x = reason("x.wav");
    assert!(x.contains("x.wav") && x.contains("not a readable"), "{x}");
    assert!(reason("broken.ogg").contains("broken.ogg"));
    assert!(reason("notes.txt").contains("not a .wav"));
    assert!(reason("loose.wav").contains("no class"));
    assert_eq!(
        ds.skipped.len(),
        4,
        "hidden files are not reported: {:?}",
        ds.skipped
    );
    assert_eq!(ds.files.len(), 2);
    assert!(ds.files.iter().all(|f| f.path.ends_with("good.wav")));
    assert_eq!(ds.train.len(), 4, "1 s files give two 0.5 s clips each");

    match decode_mono(&a.join("x.wav")) {
        Err(e @ DecodeError::Format { .. }) => assert_eq!(e.path(), a.join("x.wav")),
        other => panic!("expected a format error, got {other:?}"),
    }
    assert!(matches!(
        decode_mono(&a.join("notes.txt")),
        Err(DecodeError::Unsupported { .. })
    ));
    assert!(matches!(
        decode_mono(&a.join("gone.flac")),
        Err(DecodeError::Open { .. })
    ));
}

#[test]
fn empty_classes_and_roots_are_errors_of_their_own() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(0.5, 0.0, 0.0, 0);

    let missing = tmp.path().join("nope");
    let err = load_dataset(&missing, &cfg).unwrap_err();
    assert!(
        matches!(&err, DatasetError::RootMissing { path } if *path == missing),
        "{err}"
    );

    let root = mkdir(tmp.path(), "root");
    let err = load_dataset(&root, &cfg).unwrap_err();
    assert!(matches!(err, DatasetError::NoClasses { .. }), "{err}");
    std::fs::write(root.join("readme.txt"), b"no classes here").unwrap();
    assert!(matches!(
        load_dataset(&root, &cfg),
        Err(DatasetError::NoClasses { .. })
    ));

    let a = mkdir(&root, "a");
    write_wav(&a.join("ok.wav"), 16_000, &[vec![0.5; 8_000]], false);
    let b = mkdir(&root, "b");
    std::fs::write(b.join("cover.jpg"), b"jpeg").unwrap();
    let err = load_dataset(&root, &cfg).unwrap_err();
    match &err {
        DatasetError::EmptyClass { class, path } => assert_eq!((class.as_str(), path), ("b", &b)),
        other => panic!("expected EmptyClass, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains(".wav") && message.contains("`b`"), "{message}");

    std::fs::write(b.join("bad.flac"), b"fLaC but nothing else").unwrap();
    let err = load_dataset(&root, &cfg).unwrap_err();
    assert!(
        matches!(&err, DatasetError::UnreadableClass { class, count: 1, .. } if class == "b"),
        "{err}"
    );

    let bad = DatasetConfig {
        overlap_seconds: 0.5,
        ..cfg
    };
    assert!(matches!(
        load_dataset(&root, &bad),
        Err(DatasetError::BadConfig(_))
    ));
}

/// Two classes of several 1.2 s files, each giving several clips.
fn split_fixture(root: &Path) {
    for (class, n) in [("a", 10), ("b", 7)] {
        let d = mkdir(root, class);
        for i in 0..n {
            let f = 100.0 + 37.0 * i as f32;
            write_wav(
                &d.join(format!("{i}.wav")),
                16_000,
                &[sine(16_000, 1.2, f, 0.5, 0.0)],
                false,
            );
        }
    }
}

#[test]
fn split_is_by_file_and_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    split_fixture(tmp.path());
    let load = |seed| load_dataset(tmp.path(), &config(0.4, 0.1, 0.3, seed)).unwrap();
    let ds = load(5);

    // Every clip is on its file's side, and no file has clips on both.
    let train_files: BTreeSet<usize> = ds.train.iter().map(|c| c.file).collect();
    let val_files: BTreeSet<usize> = ds.val.iter().map(|c| c.file).collect();
    assert!(train_files.is_disjoint(&val_files));
    assert!(ds.train.iter().all(|c| ds.files[c.file].split == Split::Train));
    assert!(ds.val.iter().all(|c| ds.files[c.file].split == Split::Val));
    assert_eq!(train_files.len() + val_files.len(), 17);
    // 0.4 s clips every 0.3 s in 1.2 s: offsets 0, 0.3 and 0.6 s; a fourth
    // would end past the file.
    assert_eq!(ds.train.len() + ds.val.len(), 17 * 3);

    // Per class: round(10 * 0.3) = 3 and round(7 * 0.3) = 2 files held out.
    let held = |class| {
        ds.files
            .iter()
            .filter(|f| f.class == class && f.split == Split::Val)
            .count()
    };
    assert_eq!((held(0), held(1)), (3, 2));

    let sides = |ds: &reverie_trainer::Dataset| {
        ds.files
            .iter()
            .map(|f| (f.path.clone(), f.split))
            .collect::<Vec<_>>()
    };
    assert_eq!(sides(&ds), sides(&load(5)), "same seed, same split");
    assert_eq!(ds.train, load(5).train);
    assert!(
        (6..10).any(|s| sides(&load(s)) != sides(&ds)),
        "other seeds choose other files"
    );
}

// ---------------------------------------------------------------------------
// A minimal FLAC writer (verbatim subframes), to check the symphonia path on
// a real FLAC stream without shipping binary fixtures.

fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x8005
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn write_flac(path: &Path, rate: u32, channels: &[Vec<i16>]) {
    const BLOCK: usize = 1024;
    let n = channels[0].len();
    let ch = channels.len() as u64;
    let mut out = b"fLaC".to_vec();
    out.extend([0x80, 0, 0, 34]); // last metadata block, STREAMINFO, 34 bytes
    out.extend((BLOCK as u16).to_be_bytes());
    out.extend((BLOCK as u16).to_be_bytes());
    out.extend([0u8; 6]); // frame sizes unknown
    let packed = (u64::from(rate) << 44) | ((ch - 1) << 41) | (15u64 << 36) | n as u64;
    out.extend(packed.to_be_bytes());
    out.extend([0u8; 16]); // no MD5
    for (frame, start) in (0..n).step_by(BLOCK).enumerate() {
        assert!(frame < 128, "one-byte frame numbers only");
        let len = BLOCK.min(n - start);
        let mut f = vec![0xFF, 0xF8, 0x70, (((ch - 1) as u8) << 4) | 0x08, frame as u8];
        f.extend(((len - 1) as u16).to_be_bytes());
        f.push(crc8(&f));
        for c in channels {
            f.push(0x02); // verbatim subframe, no wasted bits
            for &s in &c[start..start + len] {
                f.extend(s.to_be_bytes());
            }
        }
        let crc = crc16(&f);
        f.extend(crc.to_be_bytes());
        out.extend(f);
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn flac_is_decoded_and_mixed_down() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tone.FLAC");
    let n = 5_000;
    let left: Vec<i16> = (0..n)
        .map(|i| ((i as f32 * 0.05).sin() * 16_000.0) as i16)
        .collect();
    let right: Vec<i16> = left.iter().map(|&v| -(v / 2)).collect();
    write_flac(&path, 22_050, &[left.clone(), right.clone()]);

    let audio = decode_mono(&path).unwrap();
    assert_eq!(audio.sample_rate, 22_050);
    assert_eq!(audio.samples.len(), n);
    for (i, &got) in audio.samples.iter().enumerate() {
        let want = (f32::from(left[i]) + f32::from(right[i])) / 2.0 / 32_768.0;
        assert!((got - want).abs() < 1e-6, "sample {i}: {got} vs {want}");
    }

    // And it takes part in a dataset like any WAV.
    let class = mkdir(tmp.path(), "root/tones");
    std::fs::rename(&path, class.join("tone.flac")).unwrap();
    let ds = load_dataset(&tmp.path().join("root"), &config(0.1, 0.0, 0.0, 0)).unwrap();
    assert_eq!(ds.files.len(), 1);
    // 5000 samples at 22.05 kHz = 0.2268 s, about 3628 at 16 kHz: two 0.1 s clips.
    assert_eq!(ds.train.len(), 2);
}
