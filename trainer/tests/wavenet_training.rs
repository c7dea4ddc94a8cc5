//! WaveNet training on a tiny network and synthetic tones: the loss falls
//! with both optimisers, clipping bounds the gradient, a resumed run
//! matches an uninterrupted one, the run folder fills up, and bad input
//! gets clear errors.

mod common;

use std::path::Path;

use candle_core::{Device, Var};
use reverie_engine::model_file::{Layout, ModelKind};
use reverie_engine::wavenet::{Padding, WavenetConfig, WavenetModel};
use reverie_trainer::run::{Quiet, RunOptions, RunOutcome, Schedule, TrainError, CHECKPOINT_FILE};
use reverie_trainer::wavenet::{
    adam, clip_grad_norm, file_chunks, grad_norm, read_wavenet_config, rmsprop, Chunk, WavenetCheckpoint,
    WavenetData, WavenetDataSource, WavenetTrainConfig, WavenetTrainer, CSV_HEADER, LOSS_PLOT_FILE,
    METRICS_FILE, SAMPLES_DIR,
};

const RATE: u32 = 8_000;

fn tiny_config(classes: usize) -> WavenetConfig {
    WavenetConfig {
        dilations: vec![1, 2, 4, 8],
        residual_channels: 8,
        dilation_channels: 8,
        skip_channels: 16,
        classes,
        predictor: None,
        pre_emphasis: false,
        emphasis_128ths: reverie_engine::emphasis::LPCNET_128THS,
        residual_target: false,
        tone_aware: false,
        tone_prior: None,
        dc_block: false,
    }
}

fn tiny_model(classes: usize, seed: u64) -> WavenetModel {
    WavenetModel::init(tiny_config(classes), RATE, seed, &Device::Cpu).unwrap()
}

/// 0.25 s of `wave(phase)` at each of `freqs`.
fn periodic(freqs: &[f32], wave: fn(f32) -> f32) -> Vec<Vec<f32>> {
    freqs
        .iter()
        .map(|&f| {
            (0..2000)
                .map(|n| wave(std::f32::consts::TAU * f * n as f32 / RATE as f32))
                .collect()
        })
        .collect()
}

/// A few sine tones (a fundamental and a weaker octave), 0.25 s each.
fn tones(freqs: &[f32]) -> Vec<Vec<f32>> {
    periodic(freqs, |w| 0.5 * w.sin() + 0.2 * (2.0 * w).sin())
}

fn tone_data() -> WavenetData {
    WavenetData::from_signals(RATE, tones(&[220.0, 330.0, 440.0]), tones(&[275.0]))
}

fn tiny_train_config() -> WavenetTrainConfig {
    WavenetTrainConfig {
        schedule: Schedule {
            epochs: 50,
            lr: 3e-3,
            warmup_steps: 0,
            ..WavenetTrainConfig::default().schedule
        },
        batch_size: 2,
        chunk_len: 400,
        optimizer: adam(),
        clip_norm: 1.0,
        eval_every: 0,
        val_chunks: 4,
        sample_every: 0,
        sample_seconds: 0.1,
        ..WavenetTrainConfig::default()
    }
}

fn weights(trainer: &WavenetTrainer) -> Vec<Vec<f32>> {
    trainer
        .vars()
        .iter()
        .map(|v| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect()
}

fn trains_down(config: WavenetTrainConfig) {
    let data = tone_data();
    let mut trainer = WavenetTrainer::new(tiny_model(64, 1), config, &data).unwrap();
    // Validation on the held-out tone: a fixed measure before and after.
    let before = trainer.evaluate().unwrap().unwrap();
    let mut losses = Vec::new();
    for _ in 0..30 {
        losses.push(trainer.step().unwrap().loss);
    }
    let after = trainer.evaluate().unwrap().unwrap();
    let first: f32 = losses[..3].iter().sum::<f32>() / 3.0;
    let last: f32 = losses[losses.len() - 3..].iter().sum::<f32>() / 3.0;
    eprintln!("train loss {first:.3} -> {last:.3}, validation {before:.3} -> {after:.3}");
    assert!(last < first - 0.3, "training loss {first} -> {last}");
    assert!(after < before - 0.3, "validation NLL {before} -> {after}");
}

#[test]
fn a_few_adam_steps_lower_the_loss() {
    trains_down(tiny_train_config());
}

#[test]
fn a_few_rmsprop_steps_lower_the_loss() {
    let base = tiny_train_config();
    trains_down(WavenetTrainConfig {
        optimizer: rmsprop(),
        schedule: Schedule {
            lr: 1e-3,
            warmup_steps: 5,
            ..base.schedule.clone()
        },
        ..base
    });
}

#[test]
fn clipping_bounds_the_global_gradient_norm() {
    let data = tone_data();
    let model = tiny_model(64, 2);
    let mut collected: Vec<Var> = Vec::new();
    let net = model
        .net
        .try_map(|_, _, t| {
            let v = Var::from_tensor(t)?;
            collected.push(v.clone());
            candle_core::Result::Ok(v.as_tensor().clone())
        })
        .unwrap();
    let mulaw = reverie_engine::mulaw::MuLaw::new(64).unwrap();
    let classes: Vec<u32> = data.train[0].samples[..300]
        .iter()
        .map(|&x| mulaw.encode(x) as u32)
        .collect();
    let x = candle_core::Tensor::from_vec(classes[..299].to_vec(), (1, 299), &Device::Cpu).unwrap();
    let y = candle_core::Tensor::from_vec(classes[1..].to_vec(), 299, &Device::Cpu).unwrap();
    let logits = net
        .forward(&x, Padding::Causal)
        .unwrap()
        .reshape((299, 64))
        .unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
    let mut grads = loss.backward().unwrap();
    let raw = grad_norm(&grads, &collected).unwrap();
    let max = raw / 10.0;
    let reported = clip_grad_norm(&mut grads, &collected, max).unwrap();
    let clipped = grad_norm(&grads, &collected).unwrap();
    eprintln!("norm {raw:.4} clipped to {clipped:.6} (max {max:.6})");
    assert!((reported - raw).abs() < 1e-9, "returns the norm before clipping");
    assert!(clipped <= max, "{clipped} > {max}");
    assert!(
        clipped > 0.99 * max,
        "clipping scales down to the bound, not below it"
    );
    // A bound above the norm changes nothing.
    let again = clip_grad_norm(&mut grads, &collected, 10.0 * max).unwrap();
    assert!((grad_norm(&grads, &collected).unwrap() - again).abs() < 1e-9);
}

#[test]
fn the_trainer_reports_the_norm_before_clipping() {
    let data = tone_data();
    let config = WavenetTrainConfig {
        clip_norm: 1e-3,
        ..tiny_train_config()
    };
    let mut trainer = WavenetTrainer::new(tiny_model(64, 3), config, &data).unwrap();
    let r = trainer.step().unwrap();
    assert!(
        r.grad_norm > 1e-3,
        "an untrained model's gradient is larger than the tiny bound"
    );
}

#[test]
fn checkpoint_and_resume_continue_exactly() {
    let data = tone_data();
    // 3 files of 2000 samples in chunks of 400, batches of 2: 8 steps per
    // epoch, so 10 steps cross an epoch boundary (a new file order).
    let base = tiny_train_config();
    let config = WavenetTrainConfig {
        optimizer: rmsprop(),
        schedule: Schedule {
            lr: 1e-3,
            warmup_steps: 3,
            ..base.schedule.clone()
        },
        // Drawn per step from the seed, so a resumed run draws the same:
        // the noise, and the free-running row's takeover and draws.
        input_noise: 0.5,
        free_run_rows: 1,
        free_run_span: 500,
        ..base
    };
    let (n, k) = (10, 4);
    let mut straight = WavenetTrainer::new(tiny_model(64, 4), config.clone(), &data).unwrap();
    assert_eq!(straight.steps_per_epoch(), 8);
    for _ in 0..n {
        straight.step().unwrap();
    }

    let mut first = WavenetTrainer::new(tiny_model(64, 4), config, &data).unwrap();
    for _ in 0..k {
        first.step().unwrap();
    }
    first.set_name("étude".into());
    let bytes = first.checkpoint().unwrap().to_bytes().unwrap();
    drop(first);
    let checkpoint = WavenetCheckpoint::from_bytes(&bytes, Path::new("mem"), &Device::Cpu).unwrap();
    assert_eq!(checkpoint.progress.counters.step, k);
    let mut resumed = WavenetTrainer::from_checkpoint(checkpoint, &data).unwrap();
    assert!(!resumed.data_changed(&data));
    assert_eq!(
        resumed.model().meta.name,
        "étude",
        "the run's name survives a resume"
    );
    for _ in k..n {
        resumed.step().unwrap();
    }

    assert_eq!(
        resumed.progress().counters.step,
        straight.progress().counters.step
    );
    assert_eq!(resumed.progress().counters.epoch, 1);
    let worst = weights(&straight)
        .iter()
        .zip(weights(&resumed))
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect::<Vec<_>>())
        .fold(0.0f32, f32::max);
    eprintln!("largest weight difference after resuming: {worst:e}");
    assert!(worst <= 1e-6, "resumed weights differ by {worst}");
}

/// A resumed run can be given a new base learning rate: the next step uses
/// it (the schedule's warm-up and shape stay), and nonsense is refused.
#[test]
fn a_resumed_run_takes_a_new_learning_rate() {
    let data = tone_data();
    let base = tiny_train_config();
    let config = WavenetTrainConfig {
        schedule: Schedule {
            lr: 1e-3,
            warmup_steps: 0,
            ..base.schedule.clone()
        },
        ..base
    };
    let mut trainer = WavenetTrainer::new(tiny_model(64, 4), config, &data).unwrap();
    trainer.step().unwrap();
    let before = trainer.learning_rate(1);
    trainer.set_learning_rate(2.5e-4).unwrap();
    assert!((trainer.learning_rate(1) / before - 0.25).abs() < 1e-9);
    assert_eq!(
        trainer.config().schedule.lr,
        2.5e-4,
        "saved with the next checkpoint"
    );
    assert!(trainer.set_learning_rate(0.0).is_err());
    assert!(trainer.set_learning_rate(f64::NAN).is_err());
    trainer.step().unwrap();
}

#[test]
fn an_untrained_model_scores_about_ln_256_nats() {
    let data = tone_data();
    let trainer = WavenetTrainer::new(tiny_model(256, 5), tiny_train_config(), &data).unwrap();
    let nll = trainer.evaluate().unwrap().unwrap();
    eprintln!(
        "untrained validation NLL {nll:.3} nats (ln 256 = {:.3})",
        256f64.ln()
    );
    assert!(nll.is_finite());
    assert!((nll - 256f64.ln()).abs() < 0.6, "{nll}");
}

#[test]
fn the_run_folder_gets_metrics_a_plot_samples_and_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let model_out = dir.path().join("model.safetensors");
    let data = tone_data();
    let config = WavenetTrainConfig {
        eval_every: 2,
        sample_every: 3,
        sample_seconds: 0.05,
        ..tiny_train_config()
    };
    let mut trainer = WavenetTrainer::new(tiny_model(64, 6), config, &data).unwrap();
    trainer.set_name("tones".into());
    let opts = RunOptions {
        dir: Some(run_dir.clone()),
        checkpoint_every: 4,
        stop: None,
        max_steps: Some(7),
        model_out: Some(model_out.clone()),
        description: "test run".into(),
    };
    let outcome = trainer.run(&data, &opts, &mut Quiet).unwrap();
    assert_eq!(outcome, RunOutcome::Stopped);
    assert_eq!(trainer.progress().counters.step, 7);

    let csv = std::fs::read_to_string(run_dir.join(METRICS_FILE)).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], CSV_HEADER);
    // Rows at steps 2, 4, 6 and the final one at 7.
    let steps: Vec<&str> = lines[1..].iter().map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(steps, ["2", "4", "6", "7"], "{csv}");
    for line in &lines[1..] {
        let val: f64 = line.split(',').nth(3).unwrap().parse().unwrap();
        assert!(val.is_finite() && val > 0.0, "{line}");
    }
    let png = std::fs::read(run_dir.join(LOSS_PLOT_FILE)).unwrap();
    assert_eq!(&png[1..4], b"PNG");

    for step in [3, 6] {
        let stem = run_dir.join(SAMPLES_DIR).join(format!("step-{step:08}"));
        let wav = hound::WavReader::open(stem.with_extension("wav")).unwrap();
        assert_eq!(wav.spec().sample_rate, RATE);
        assert_eq!(wav.len(), (0.05 * RATE as f32) as u32);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(stem.with_extension("json")).unwrap()).unwrap();
        assert_eq!(json["step"], step);
        assert_eq!(json["model"]["dilations"], serde_json::json!([1, 2, 4, 8]));
        assert_eq!(json["prime"]["set"], "validation");
        assert_eq!(json["training"]["sample_every"], 3);
        let clarity = json["pitch"]["clarity"].as_f64().expect("pitch clarity recorded");
        let flatness = json["pitch"]["flatness"].as_f64().expect("flatness recorded");
        assert!((0.0..=1.0).contains(&clarity) && (0.0..=1.0).contains(&flatness));
    }
    assert!(!run_dir.join(SAMPLES_DIR).join("step-00000007.wav").exists());

    let checkpoint = WavenetCheckpoint::load(&run_dir.join(CHECKPOINT_FILE), &Device::Cpu).unwrap();
    assert_eq!(checkpoint.progress.counters.step, 7);
    let model = WavenetModel::load(&model_out, &Device::Cpu).unwrap();
    assert_eq!(model.meta.kind, ModelKind::Wavenet);
    assert_eq!(model.meta.name, "tones");
    assert_eq!(model.meta.training.steps, 7);
    assert!(model.meta.training.metrics.contains_key("val_nll"));
    // The engine's sampler loads both the model and the checkpoint.
    reverie_engine::sampler::Sampler::load(&model_out).unwrap();
    reverie_engine::sampler::Sampler::load(&run_dir.join(CHECKPOINT_FILE)).unwrap();
}

#[test]
fn chunks_cover_every_sample_in_order() {
    let c = file_chunks(2, 1000, 400);
    let starts: Vec<i64> = c.iter().map(|c| c.start).collect();
    assert_eq!(starts, [0, 400, 600]);
    assert!(c.iter().all(|c| c.file == 2));
    assert_eq!(file_chunks(0, 800, 400).len(), 2);
    // Shorter than a chunk: one chunk padded with silence before the file.
    assert_eq!(file_chunks(0, 100, 400), [Chunk { file: 0, start: -300 }]);
    assert!(file_chunks(0, 0, 400).is_empty());
}

#[test]
fn a_short_file_still_trains() {
    let data = WavenetData::from_signals(RATE, vec![vec![0.1; 50]], vec![]);
    let mut trainer = WavenetTrainer::new(tiny_model(64, 7), tiny_train_config(), &data).unwrap();
    assert!(trainer.step().unwrap().loss.is_finite());
    assert_eq!(trainer.evaluate().unwrap(), None, "no held-out audio");
}

fn write_tone(path: &Path, freq: f32, rate: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..rate / 4 {
        let v = 0.3 * (std::f32::consts::TAU * freq * n as f32 / rate as f32).sin();
        w.write_sample((v * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn a_folder_is_read_recursively_resampled_normalised_and_split() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a").join("b");
    std::fs::create_dir_all(&nested).unwrap();
    write_tone(&dir.path().join("flat.wav"), 300.0, 16_000);
    write_tone(&nested.join("deep.wav"), 400.0, 22_050);
    write_tone(&dir.path().join("a").join("mid.wav"), 500.0, 8_000);
    std::fs::write(dir.path().join("notes.txt"), "not audio").unwrap();
    std::fs::write(dir.path().join("broken.wav"), "not a wav").unwrap();
    let source = WavenetDataSource {
        val_fraction: 0.3,
        ..WavenetDataSource::new(dir.path().to_path_buf(), RATE)
    };
    let data = source.load().unwrap();
    assert_eq!(data.train.len() + data.val.len(), 3);
    assert_eq!(data.val.len(), 1);
    assert_eq!(data.skipped.len(), 1, "the broken WAV is skipped with a reason");
    for f in data.train.iter().chain(&data.val) {
        assert!((f.samples.len() as i64 - 2000).abs() <= 2, "{}", f.samples.len());
        let peak = f.samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((peak - 0.95).abs() < 1e-3, "peak {peak}");
    }
    let again = source.load().unwrap();
    assert_eq!(again, data, "loading is deterministic");
}

#[test]
fn clear_errors_for_missing_or_empty_data_and_bad_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let missing = WavenetDataSource::new(dir.path().join("nope"), RATE)
        .load()
        .unwrap_err();
    assert!(matches!(missing, TrainError::DataMissing { .. }), "{missing}");
    assert!(missing.to_string().contains("does not exist"));

    std::fs::write(dir.path().join("readme.txt"), "hello").unwrap();
    let empty = WavenetDataSource::new(dir.path().to_path_buf(), RATE)
        .load()
        .unwrap_err();
    assert!(matches!(empty, TrainError::NoAudio { .. }), "{empty}");
    assert!(empty.to_string().contains("no .wav"));

    std::fs::write(dir.path().join("bad.wav"), "garbage").unwrap();
    let unreadable = WavenetDataSource::new(dir.path().to_path_buf(), RATE)
        .load()
        .unwrap_err();
    assert!(
        matches!(unreadable, TrainError::Unreadable { .. }),
        "{unreadable}"
    );

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"definitely not safetensors").unwrap();
    let e = WavenetCheckpoint::load(&garbage, &Device::Cpu).unwrap_err();
    assert!(matches!(e, TrainError::CheckpointModel { .. }), "{e}");

    let plain = dir.path().join("model.safetensors");
    tiny_model(64, 8).save(&plain).unwrap();
    let e = WavenetCheckpoint::load(&plain, &Device::Cpu).unwrap_err();
    assert!(matches!(e, TrainError::NotACheckpoint { .. }), "{e}");
    eprintln!("{e}");

    let absent = WavenetCheckpoint::load(&dir.path().join("absent.safetensors"), &Device::Cpu).unwrap_err();
    assert!(matches!(absent, TrainError::CheckpointIo { .. }), "{absent}");
}

#[test]
fn an_architecture_file_may_leave_out_the_receptive_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arch.json");
    std::fs::write(
        &path,
        r#"{"dilations":[1,2,4],"residual_channels":4,"dilation_channels":4,"skip_channels":8,"classes":32}"#,
    )
    .unwrap();
    assert_eq!(read_wavenet_config(&path).unwrap().receptive_field(), 8);
    std::fs::write(
        &path,
        r#"{"dilations":[1,2,4],"residual_channels":4,"dilation_channels":4,"skip_channels":8,"classes":32,"receptive_field":9}"#,
    )
    .unwrap();
    assert!(read_wavenet_config(&path).is_err());
    // Every option of a model file's config reads as the model file's
    // reader reads it: the committed order-64 config, with a gentler
    // pre-emphasis added.
    let committed =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/training/wavenet-order64.json");
    let text = std::fs::read_to_string(&committed).unwrap();
    let config = read_wavenet_config(&committed).unwrap();
    let p = config.predictor.unwrap();
    assert_eq!((p.order, p.window, p.min_lag, p.max_lag), (64, 800, 23, 80));
    assert_eq!((p.expansion, p.pitch_lowpass), (0.9883, 0.03));
    assert!(config.pre_emphasis && config.residual_target && !config.tone_aware);
    assert_eq!(config.emphasis_128ths, reverie_engine::emphasis::LPCNET_128THS);
    let gentler = text.replacen(
        "\"pre_emphasis\": true",
        "\"pre_emphasis\": true, \"emphasis_128ths\": 64",
        1,
    );
    assert_ne!(gentler, text);
    std::fs::write(&path, gentler).unwrap();
    assert_eq!(read_wavenet_config(&path).unwrap().emphasis_128ths, 64);
    // A config the engine refuses is refused here, with the file named.
    std::fs::write(&path, text.replacen("\"order\": 64", "\"order\": 0", 1)).unwrap();
    let err = read_wavenet_config(&path).unwrap_err().to_string();
    assert!(err.contains("arch.json") && err.contains("order"), "{err}");
}

#[test]
fn a_wrong_rate_is_refused() {
    let data = WavenetData::from_signals(16_000, tones(&[220.0]), vec![]);
    let e = WavenetTrainer::new(tiny_model(64, 9), tiny_train_config(), &data).unwrap_err();
    assert!(matches!(e, TrainError::RateMismatch { .. }), "{e}");
}

/// `tests/data/wavenet-checkpoint.safetensors` was written by the WaveNet
/// trainer before its run core was shared with the perception trainer
/// (commit ba9c954): the tiny network (seed 4), Adam, 6 steps on
/// `tone_data()` with a metrics row at step 5. Runs such as the built-in
/// model's are resumed from such files: it must still load, resume as that
/// run went on, and be written back in the same format.
#[test]
fn a_checkpoint_of_the_earlier_trainer_resumes() {
    let bytes = include_bytes!("data/wavenet-checkpoint.safetensors");
    let checkpoint =
        WavenetCheckpoint::from_bytes(bytes, Path::new("wavenet-checkpoint"), &Device::Cpu).unwrap();
    assert_eq!(checkpoint.model.meta.name, "fixture");
    assert_eq!(checkpoint.progress.counters.step, 6);
    assert_eq!(checkpoint.progress.history.len(), 1);
    assert_eq!(checkpoint.progress.history[0].step, 5);
    assert_eq!(
        checkpoint.progress.source.as_ref().map(|s| s.root.clone()),
        Some("/nonexistent/tones".into())
    );
    let c = &checkpoint.config;
    assert_eq!(
        (
            c.schedule.epochs,
            c.schedule.warmup_steps,
            c.batch_size,
            c.chunk_len
        ),
        (50, 2, 2, 400)
    );
    assert_eq!((c.schedule.lr, c.eval_every), (3e-3, 3));

    let again = checkpoint.to_bytes().unwrap();
    assert_eq!(common::checkpoint_parts(&again), common::checkpoint_parts(bytes));

    let data = tone_data();
    let mut trainer = WavenetTrainer::from_checkpoint(checkpoint, &data).unwrap();
    assert!(!trainer.data_changed(&data));
    let losses: Vec<f32> = (0..3).map(|_| trainer.step().unwrap().loss).collect();
    for (got, then) in losses.iter().zip([4.188843f32, 4.1539273, 4.1418786]) {
        assert!((got - then).abs() < 1e-4, "{losses:?}");
    }
    // Either trainer refuses the other's checkpoints with its own message.
    let perception =
        reverie_trainer::perception::PerceptionCheckpoint::from_bytes(bytes, Path::new("w"), &Device::Cpu);
    assert!(matches!(perception, Err(TrainError::CheckpointModel { .. })));
}

/// Bright periodic tones (eight harmonics at 1/h, fixed phases) whose pitch
/// period (53 to 80 samples) is far beyond the tiny network's 16-sample
/// receptive field: only a predictor that looks a period back can know
/// what comes next.
fn bright_tones(freqs: &[f32]) -> Vec<Vec<f32>> {
    periodic(freqs, |w| {
        (1..=8)
            .map(|h| 0.3 * ((h as f32) * w + 0.7 * (h * h) as f32).sin() / h as f32)
            .sum()
    })
}

/// Trained the same way from the same start, the network with the pitch
/// predictor's input predicts a periodic tone at an unseen pitch far better
/// than the one with only the short-term prediction or none (which learn
/// the training pitches and not the next one): the prediction inputs carry
/// what the receptive field cannot see.
#[test]
fn the_pitch_predictor_input_predicts_a_periodic_tone_better() {
    use reverie_engine::predictor::PredictorConfig;
    let data = WavenetData::from_signals(RATE, bright_tones(&[100.0, 125.0, 150.0]), bright_tones(&[110.0]));
    let default = PredictorConfig::for_rate(RATE);
    let mut scores = Vec::new();
    for predictor in [
        None,
        Some(PredictorConfig {
            long_term: false,
            ..default
        }),
        Some(default),
    ] {
        let config = WavenetConfig {
            predictor,
            ..tiny_config(64)
        };
        let model = WavenetModel::init(config, RATE, 1, &Device::Cpu).unwrap();
        let mut trainer = WavenetTrainer::new(model, tiny_train_config(), &data).unwrap();
        for _ in 0..400 {
            trainer.step().unwrap();
        }
        let nll = trainer.evaluate().unwrap().unwrap();
        eprintln!(
            "predictor {:?}: validation NLL {nll:.3}",
            predictor.map(|p| p.long_term)
        );
        scores.push(nll);
    }
    let (plain, short_term, both) = (scores[0], scores[1], scores[2]);
    assert!(
        both < short_term - 0.3,
        "with the pitch stage {both}, short-term only {short_term}"
    );
    assert!(both < plain - 0.3, "with the pitch stage {both}, plain {plain}");
}

/// Each signal coding option (pre-emphasis, a residual target on the
/// predictor, both) trains: the loss on its own targets falls, and the
/// model file keeps the options.
#[test]
fn every_signal_coding_option_trains() {
    use reverie_engine::predictor::PredictorConfig;
    let data = tone_data();
    for (pre_emphasis, residual_target) in [(true, false), (false, true), (true, true)] {
        let config = WavenetConfig {
            predictor: Some(PredictorConfig::for_rate(RATE)),
            pre_emphasis,
            residual_target,
            ..tiny_config(64)
        };
        let model = WavenetModel::init(config.clone(), RATE, 2, &Device::Cpu).unwrap();
        let mut trainer = WavenetTrainer::new(model, tiny_train_config(), &data).unwrap();
        let before = trainer.evaluate().unwrap().unwrap();
        for _ in 0..40 {
            trainer.step().unwrap();
        }
        let after = trainer.evaluate().unwrap().unwrap();
        eprintln!(
            "emphasis {pre_emphasis}, residual {residual_target}: validation {before:.3} -> {after:.3}"
        );
        assert!(
            after < before - 0.3,
            "emphasis {pre_emphasis}, residual {residual_target}: {before} -> {after}"
        );
        let bytes = trainer
            .finish("test".into())
            .unwrap()
            .to_raw()
            .unwrap()
            .to_bytes()
            .unwrap();
        let back = WavenetModel::from_bytes(&bytes, &Device::Cpu).unwrap();
        assert_eq!(back.config, config);
    }
}

/// With the signal loss a model whose classes are not the audio's (each
/// coding option) learns, and its validation is the engine's likelihood
/// of the held-out audio, the measure `cargo xtask nll` reports. They are
/// compared after the first chunk: the trainer hears silence before a
/// file, the engine's sampler starts from the network's zero padding, so
/// the two differ over the first receptive field. The output classes' own
/// cross-entropy is another number.
#[test]
fn the_signal_loss_trains_and_scores_as_the_engine_does() {
    use reverie_engine::likelihood::Scorer;
    use reverie_engine::predictor::PredictorConfig;
    use reverie_engine::sampler::Sampler;
    let data = tone_data();
    let settings = WavenetTrainConfig {
        signal_loss: true,
        val_chunks: 16,
        ..tiny_train_config()
    };
    let chunk = settings.chunk_len;
    for (pre_emphasis, residual_target) in [(true, false), (false, true), (true, true)] {
        let what = format!("emphasis {pre_emphasis}, residual {residual_target}");
        let config = WavenetConfig {
            predictor: Some(PredictorConfig::for_rate(RATE)),
            pre_emphasis,
            residual_target,
            ..tiny_config(64)
        };
        let model = WavenetModel::init(config, RATE, 3, &Device::Cpu).unwrap();
        let mut trainer = WavenetTrainer::new(model, settings.clone(), &data).unwrap();
        let before = trainer.evaluate().unwrap().unwrap();
        for _ in 0..40 {
            trainer.step().unwrap();
        }
        let after = trainer.evaluate().unwrap().unwrap();
        eprintln!("{what}: signal loss {before:.3} -> {after:.3}");
        assert!(after < before - 0.3, "{what}: {before} -> {after}");

        // The validation file is 5 chunks: all of them, then the first.
        let audio = &data.val[0].samples;
        assert_eq!(audio.len(), 5 * chunk);
        let model = trainer.finish("test".into()).unwrap();
        let first_chunk = WavenetTrainConfig {
            val_chunks: 1,
            ..settings.clone()
        };
        let first = WavenetTrainer::new(model.clone(), first_chunk, &data)
            .unwrap()
            .evaluate()
            .unwrap()
            .unwrap();
        let trainer_rest = after * audio.len() as f64 - first * chunk as f64;
        let mut sampler = Sampler::from_model(&model).unwrap();
        let mut nll = Vec::new();
        Scorer::new(&mut sampler).push_audio(audio, &mut nll);
        // nll[i] scores sample i + 1.
        let engine_rest: f64 = nll[chunk - 1..].iter().map(|&v| f64::from(v)).sum();
        assert!(
            (trainer_rest - engine_rest).abs() < 0.05,
            "{what}: the trainer's sum {trainer_rest} against the engine's {engine_rest}"
        );

        let cross_entropy = WavenetTrainConfig {
            signal_loss: false,
            ..settings.clone()
        };
        let classes = WavenetTrainer::new(model, cross_entropy, &data)
            .unwrap()
            .evaluate()
            .unwrap()
            .unwrap();
        assert!(
            (classes - after).abs() > 0.2,
            "{what}: the output classes' cross-entropy {classes} is the signal loss {after}"
        );
    }
    let Err(err) = WavenetTrainer::new(tiny_model(64, 1), settings, &data) else {
        panic!("a plain model with the signal loss is refused");
    };
    let err = err.to_string();
    assert!(err.contains("residual target or pre-emphasis"), "{err}");
}

/// Free-running rows (histories the model generates itself, scored
/// against the recording): they change the step's loss from the
/// teacher-forced one (after a model's own history the tone's next samples
/// are less likely than after the tone), the run keeps them in its checkpoint, and
/// settings that cannot work are refused with what to do.
#[test]
fn free_running_rows_score_the_models_own_history_and_bad_settings_are_refused() {
    use reverie_engine::predictor::PredictorConfig;
    let data = tone_data();
    let forced = tiny_train_config();
    let free = WavenetTrainConfig {
        free_run_rows: 2,
        free_run_span: 300,
        ..forced.clone()
    };
    // A model that has learnt the tones a little, then one step of each
    // kind from it, on the same chunks.
    let mut teacher = WavenetTrainer::new(tiny_model(64, 6), forced.clone(), &data).unwrap();
    for _ in 0..30 {
        teacher.step().unwrap();
    }
    let trained = teacher.finish("tones".into()).unwrap();
    let mut a = WavenetTrainer::new(trained.clone(), forced, &data).unwrap();
    let mut b = WavenetTrainer::new(trained, free.clone(), &data).unwrap();
    let (la, lb) = (a.step().unwrap().loss, b.step().unwrap().loss);
    eprintln!("first step: teacher-forced {la:.3}, free-running {lb:.3}");
    assert!(
        lb.is_finite() && lb > la + 0.05,
        "teacher-forced {la}, free-running {lb}"
    );
    let saved = b.checkpoint().unwrap().to_bytes().unwrap();
    let back = WavenetCheckpoint::from_bytes(&saved, Path::new("mem"), &Device::Cpu).unwrap();
    assert_eq!((back.config.free_run_rows, back.config.free_run_span), (2, 300));

    let too_many = WavenetTrainConfig {
        free_run_rows: 3,
        ..free.clone()
    };
    let e = WavenetTrainer::new(tiny_model(64, 6), too_many, &data).unwrap_err();
    assert!(e.to_string().contains("--batch"), "{e}");
    for (rows, span) in [(0, 300), (2, 0)] {
        let half = WavenetTrainConfig {
            free_run_rows: rows,
            free_run_span: span,
            ..free.clone()
        };
        let e = WavenetTrainer::new(tiny_model(64, 6), half, &data).unwrap_err();
        assert!(e.to_string().contains("--free-run-span"), "{e}");
    }
    let emphasis = WavenetConfig {
        predictor: Some(PredictorConfig::for_rate(RATE)),
        pre_emphasis: true,
        residual_target: true,
        ..tiny_config(64)
    };
    let model = WavenetModel::init(emphasis, RATE, 6, &Device::Cpu).unwrap();
    let e = WavenetTrainer::new(model.clone(), free.clone(), &data).unwrap_err();
    assert!(e.to_string().contains("--signal-loss"), "{e}");
    let signal = WavenetTrainConfig {
        signal_loss: true,
        ..free
    };
    let mut c = WavenetTrainer::new(model, signal, &data).unwrap();
    assert!(c.step().unwrap().loss.is_finite());
}
