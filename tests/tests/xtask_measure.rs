//! `cargo xtask pitch` tells a note from noise in real files, at any rate
//! and channel count; `cargo xtask spectrogram` draws them; `cargo xtask
//! nll` says how well a WaveNet predicts them.

use std::path::Path;

use hound::{SampleFormat, WavSpec};
use reverie_tests::{cargo_xtask, cargo_xtask_fails, scratch};

fn write(path: &Path, rate: u32, channels: u16, sample: impl Fn(usize) -> f32) {
    write_samples(path, rate, channels, rate as usize, sample);
}

/// Writes `len` frames of `sample` to a 16-bit WAV file.
fn write_samples(path: &Path, rate: u32, channels: u16, len: usize, sample: impl Fn(usize) -> f32) {
    let spec = WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..len {
        let v = sample(i);
        for _ in 0..channels {
            w.write_sample((v * 32_000.0) as i16).unwrap();
        }
    }
    w.finalize().unwrap();
}

/// The line of a per-file report that starts `PATH:`.
fn line_for<'a>(stdout: &'a str, file: &Path) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{}:", file.display())))
        .unwrap_or_else(|| panic!("no line for {}:\n{stdout}", file.display()))
}

/// One second of deterministic white-ish noise at 16 kHz in [-0.5, 0.5)
/// (a linear congruential generator).
fn white_noise(seed: u32) -> Vec<f32> {
    let mut state = seed;
    (0..16_000)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

/// Renders two 1.5 s piano melodies into `dir` with `cargo xtask dataset
/// piano` and any `extra` arguments.
fn render_two_melodies(dir: &Path, extra: &[&str]) {
    let mut args = vec![
        "dataset",
        "piano",
        "--out",
        dir.to_str().unwrap(),
        "--clips",
        "2",
        "--seconds",
        "1.5",
        "--style",
        "melodies",
    ];
    args.extend_from_slice(extra);
    let out = cargo_xtask(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// (clarity, flatness) from a line `PATH: clarity C, flatness F, N frames`.
fn measures(stdout: &str, file: &Path) -> (f32, f32) {
    let line = line_for(stdout, file);
    let number = |key: &str| -> f32 {
        let rest = &line[line.find(key).unwrap() + key.len()..];
        rest.split(|c: char| c == ',' || c.is_whitespace())
            .find(|s| !s.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    (number("clarity "), number("flatness "))
}

#[test]
fn pitch_tells_a_note_from_noise() {
    let dir = scratch("xtask-pitch");
    let note = dir.join("note.wav");
    let noise = dir.join("noise.wav");
    // A 330 Hz tone with harmonics, stereo at 48 kHz.
    write(&note, 48_000, 2, |i| {
        let t = i as f32 / 48_000.0;
        (1..5)
            .map(|h| 0.2 / h as f32 * (std::f32::consts::TAU * 330.0 * h as f32 * t).sin())
            .sum()
    });
    let values = white_noise(12_345);
    write(&noise, 16_000, 1, |i| 0.5 * values[i]);

    let out = cargo_xtask(&["pitch", note.to_str().unwrap(), noise.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (clarity, flatness) = measures(&stdout, &note);
    assert!(clarity > 0.85 && flatness < 0.05, "note: {clarity} {flatness}");
    let (clarity, flatness) = measures(&stdout, &noise);
    assert!(clarity < 0.3 && flatness > 0.2, "noise: {clarity} {flatness}");
    assert!(stdout.contains("median of 2 files"), "{stdout}");

    let missing = dir.join("missing.wav");
    cargo_xtask_fails(&["pitch", missing.to_str().unwrap()], "does not exist");

    // One strip per file, 10 ms per pixel column (past the end of these
    // 1 s files too, wider than the labels), between a 76-pixel frequency
    // axis and a 16-pixel margin; each strip a 26-pixel label, 180 rows and
    // a 24-pixel time axis, the last one 20 pixels more for its title, all
    // below a 6-pixel margin.
    let png = dir.join("pictures/both.png");
    let out = cargo_xtask(&[
        "spectrogram",
        note.to_str().unwrap(),
        noise.to_str().unwrap(),
        "--seconds",
        "5",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!(
        (info.width, info.height),
        (76 + 500 + 16, 6 + 2 * (26 + 180 + 24) + 20)
    );
    cargo_xtask_fails(
        &[
            "spectrogram",
            note.to_str().unwrap(),
            "--seconds",
            "0",
            "-o",
            "x.png",
        ],
        "--seconds",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `dataset piano` renders only (no training), the clips it promises, and
/// the melodies style measures as notes with the same `pitch` command.
#[test]
fn dataset_piano_renders_pitched_melodies() {
    let dir = scratch("xtask-dataset-piano");
    render_two_melodies(&dir, &["--rate", "22050"]);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["piano-0000.wav", "piano-0001.wav"]);
    for name in &names {
        let reader = hound::WavReader::open(dir.join(name)).unwrap();
        let spec = reader.spec();
        assert_eq!((spec.channels, spec.sample_rate), (1, 22_050));
        assert_eq!(reader.duration(), 33_075, "{name}: 1.5 s at 22.05 kHz");
    }
    let paths: Vec<String> = names.iter().map(|n| dir.join(n).display().to_string()).collect();
    let mut args = vec!["pitch"];
    args.extend(paths.iter().map(String::as_str));
    let out = cargo_xtask(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for path in &paths {
        let (clarity, flatness) = measures(&stdout, Path::new(path));
        assert!(clarity > 0.6 && flatness < 0.05, "{path}: {clarity} {flatness}");
    }

    // Refused before anything is installed or written: no folder appears.
    let refused: [(&[&str], &str); 3] = [
        (&["piano", "--clips", "0"], "at least 1 clip"),
        (&["piano", "--seconds", "0"], "clip length 0 s"),
        (
            &["instruments", "--style", "melodies"],
            "--style is for `dataset piano`",
        ),
    ];
    for (i, (args, needle)) in refused.into_iter().enumerate() {
        let out = dir.join(format!("refused-{i}"));
        let mut all = vec!["dataset", "--out", out.to_str().unwrap()];
        all.extend_from_slice(args);
        cargo_xtask_fails(&all, needle);
        assert!(!out.exists(), "{args:?} left {} behind", out.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The note measures line `  notes: ...` printed right after `file`'s line.
fn notes_line<'a>(stdout: &'a str, file: &Path) -> &'a str {
    let first = line_for(stdout, file);
    let mut lines = stdout.lines().skip_while(|l| *l != first).skip(1);
    lines
        .next()
        .filter(|l| l.starts_with("  notes: "))
        .unwrap_or_else(|| panic!("no notes line after {first}:\n{stdout}"))
}

/// The number after `key` in `line` (up to a space, comma, `%` or `)`).
fn number_after(line: &str, key: &str) -> f32 {
    let at = line.find(key).unwrap_or_else(|| panic!("no `{key}` in {line}"));
    line[at + key.len()..]
        .split(|c: char| c == ',' || c == '%' || c == ')' || c.is_whitespace())
        .find(|s| !s.is_empty())
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("`{key}` in {line}: {e}"))
}

/// `pitch` also says whether audio holds notes: rendered piano melodies
/// sound almost throughout, strike several notes and let each ring, while
/// a synthetic drone (one tone under a hiss, never struck again) is named
/// as one, and the same tone driven against the rails over a slow swing
/// reads as clipping and as an offset, which the notes' levels leave out.
#[test]
fn pitch_tells_piano_notes_from_a_drone() {
    let dir = scratch("xtask-notes");
    render_two_melodies(&dir, &["--seed", "23"]);
    let pianos = [dir.join("piano-0000.wav"), dir.join("piano-0001.wav")];
    let drone = dir.join("drone.wav");
    let hiss = white_noise(99);
    write_samples(&drone, 16_000, 1, 5 * 16_000, |i| {
        let t = i as f32 / 16_000.0;
        let tone: f32 = (1..5)
            .map(|h| 0.2 / h as f32 * (std::f32::consts::TAU * 262.0 * h as f32 * t).sin())
            .sum();
        tone + 0.05 * hiss[i % hiss.len()]
    });
    let railed = dir.join("railed.wav");
    write_samples(&railed, 16_000, 1, 5 * 16_000, |i| {
        let t = i as f32 / 16_000.0;
        let swing = 0.4 * (std::f32::consts::TAU * 1.5 * t).sin();
        // At the rails: the writer's 32 000 times this is 16-bit full scale.
        (4.0 * (0.2 * (std::f32::consts::TAU * 262.0 * t).sin() + swing)).clamp(-1.0, 1.0)
            * (32_767.0 / 32_000.0)
    });

    let out = cargo_xtask(&[
        "pitch",
        pianos[0].to_str().unwrap(),
        pianos[1].to_str().unwrap(),
        drone.to_str().unwrap(),
        railed.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Seed 23's first melody is played legato, its second detached (rests
    // between notes): both strike notes that ring, only the first sounds
    // throughout.
    let legato = notes_line(&stdout, &pianos[0]);
    assert!(number_after(legato, "sounding ") > 80.0, "{legato}");
    assert!(number_after(legato, "drop ") < 10.0, "{legato}");
    for piano in &pianos {
        let line = notes_line(&stdout, piano);
        assert!(number_after(line, "frames of ") == 32.0, "{line}");
        assert!(number_after(line, "sounding ") <= 100.0, "{line}");
        // 1.5 s of melody at 60 to 170 beats a minute: a few notes at least.
        assert!(number_after(line, "%, ") >= 2.0, "{line}");
        assert!(number_after(line, "longest ring ") > 0.3, "{line}");
        assert!(number_after(line, "3-8 kHz share ") < 0.1, "{line}");
        assert!(!line.contains("drone"), "{line}");
        let level = number_after(line, "level ");
        assert!((-35.0..-8.0).contains(&level), "{line}");
        assert_eq!(number_after(line, "clipped "), 0.0, "{line}");
        assert!(number_after(line, "offset share ") < 5e-3, "{line}");
        assert!(!line.contains(", clips"), "{line}");
    }
    let line = notes_line(&stdout, &drone);
    assert!(
        number_after(line, "%, ") == 1.0,
        "one onset, at the start: {line}"
    );
    let droning = number_after(line, "drone: no onset for ");
    assert!((4.9..=5.0).contains(&droning), "{line}");
    assert!(number_after(line, "drop ").abs() < 1.0, "{line}");
    assert!(!line.contains(", clips"), "{line}");
    let line = notes_line(&stdout, &railed);
    assert!(line.ends_with(", clips"), "{line}");
    assert!(number_after(line, "clipped ") > 20.0, "{line}");
    assert!(number_after(line, "offset share ") > 0.1, "{line}");
    assert!(number_after(line, "level ") > -14.0, "{line}");
    assert!(stdout.contains("1 of 4 files drone, 1 clip"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Nats per sample from a line `PATH: N nats (B bits) per sample over ...`.
fn nats(stdout: &str, file: &Path) -> f32 {
    line_for(stdout, file)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// `cargo xtask nll` with the built-in WaveNet: silence is foreseen almost
/// exactly, unseen piano melodies (what it learnt) well, white noise worse
/// than a blind guess among 256 classes.
#[test]
fn nll_scores_the_default_wavenet_on_piano_silence_and_noise() {
    let dir = scratch("xtask-nll");
    render_two_melodies(&dir, &["--seed", "31"]);
    let pianos = [dir.join("piano-0000.wav"), dir.join("piano-0001.wav")];
    // Stereo at 44.1 kHz: mixed down and resampled to the model's 16 kHz.
    let silence = dir.join("silence.wav");
    write(&silence, 44_100, 2, |_| 0.0);
    let noise = dir.join("noise.wav");
    let values = white_noise(777);
    write(&noise, 16_000, 1, |i| 0.5 * values[i]);

    let files = [&pianos[0], &pianos[1], &silence, &noise];
    let mut args = vec!["nll"];
    args.extend(files.iter().map(|p| p.to_str().unwrap()));
    let out = cargo_xtask(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let blind_guess = 256f32.ln();
    let noise_nats = nats(&stdout, &noise);
    assert!(noise_nats > blind_guess, "noise: {noise_nats}\n{stdout}");
    for piano in &pianos {
        let n = nats(&stdout, piano);
        assert!(
            n < 3.2 && n < noise_nats - 2.0,
            "{}: {n}\n{stdout}",
            piano.display()
        );
    }
    let s = nats(&stdout, &silence);
    assert!(s < 0.1, "silence: {s}\n{stdout}");
    // The split by level: (share of samples, mean nats) of each level.
    let level = |name: &str| -> (f64, f64) {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line\n{stdout}"));
        let share = line
            .split('%')
            .next()
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap();
        let nats = line
            .split("nats")
            .next()
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        (share, nats)
    };
    let levels: Vec<(f64, f64)> = ["onsets", "loud", "moderate", "quiet", "silence"]
        .iter()
        .map(|l| level(l))
        .collect();
    // The levels' means, weighted by their shares, are the overall mean:
    // every score counted once, in one level.
    let overall: f64 = line_for(&stdout, std::path::Path::new("all 4 files"))
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no overall mean\n{stdout}"));
    let weighted: f64 = levels.iter().map(|(share, n)| share / 100.0 * n).sum();
    assert!(
        (weighted - overall).abs() < 0.01,
        "{weighted} vs {overall}\n{stdout}"
    );
    // The silent file (a quarter of the 16 kHz samples here, as long as a
    // melody) lands in the silence level, and its near-zero loss with it;
    // the loud white noise in the loud level.
    let seconds = |p: &std::path::Path| {
        let r = hound::WavReader::open(p).unwrap();
        f64::from(r.duration()) / f64::from(r.spec().sample_rate)
    };
    let all: f64 = files.iter().map(|p| seconds(p)).sum();
    let (silent_share, silent_nats) = levels[4];
    assert!(
        silent_share + 1.0 >= 100.0 * seconds(&silence) / all,
        "{silent_share}%\n{stdout}"
    );
    assert!(silent_nats < 0.1, "{silent_nats}\n{stdout}");
    let (loud_share, loud_nats) = levels[1];
    assert!(
        loud_share + 1.0 >= 100.0 * seconds(&noise) / all,
        "{loud_share}%\n{stdout}"
    );
    assert!(loud_nats > 2.0, "{loud_nats}\n{stdout}");

    let missing = dir.join("missing.wav");
    cargo_xtask_fails(&["nll", missing.to_str().unwrap()], "does not exist");
    let perception = reverie_tests::workspace_root().join("models/perception.safetensors");
    cargo_xtask_fails(
        &[
            "nll",
            "--model",
            perception.to_str().unwrap(),
            silence.to_str().unwrap(),
        ],
        "a wavenet model is needed",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
