//! Training loop, optimisers, checkpoints and the filter image, on a tiny
//! network and synthetic tones so everything runs in seconds.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::{Device, Tensor, Var};
use candle_nn::Optimizer as _;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reverie_engine::model_file::Layout;
use reverie_engine::perception::{PerceptionConfig, PerceptionModel};
use reverie_trainer::dataset::{Clip, Dataset, SourceFile, Split};
use reverie_trainer::filters::{
    bandpass_kernels, filter_spectra, first_layer_kernels, render_filters, FilterImageOptions,
};
use reverie_trainer::metrics::ConfusionMatrix;
use reverie_trainer::optim::{Optimizer, OptimizerConfig, OptimizerKind, Param};
use reverie_trainer::perception::{
    Example, FrontendInit, Perception, PerceptionCheckpoint, PerceptionTrainer, StepResult, TrainConfig,
    TrainData,
};
use reverie_trainer::run::{
    LrSchedule, Observer, RunOptions, RunOutcome, Schedule, TrainError, CHECKPOINT_FILE,
};

const RATE: u32 = 8_000;

fn tiny_config() -> PerceptionConfig {
    PerceptionConfig {
        window: 2000,
        frontend_filters: 16,
        frontend_kernel: 100,
        frontend_stride: 20,
        channels: vec![12, 12, 12],
        kernel: 3,
        pool: vec![true, true, false, false],
        bn_eps: 1e-5,
    }
}

/// Two classes told apart by pitch: low tones (150-400 Hz) and high tones
/// (1.2-3 kHz), each a few harmonics with a random phase and a little noise.
fn tones(train_per_class: usize, val_per_class: usize, seed: u64) -> TrainData {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ranges = [(150.0f32, 400.0f32), (1200.0, 3000.0)];
    let mut make = |class: usize| {
        let (lo, hi) = ranges[class];
        let f = rng.random_range(lo..hi);
        let phase = rng.random_range(0.0..std::f32::consts::TAU);
        let samples = (0..4000)
            .map(|n| {
                let t = n as f32 / RATE as f32;
                let w = std::f32::consts::TAU * f * t + phase;
                0.6 * w.sin() + 0.25 * (2.0 * w).sin() + 0.02 * rng.random_range(-1.0f32..1.0)
            })
            .collect();
        Example { samples, class }
    };
    let mut train = Vec::new();
    let mut val = Vec::new();
    for class in 0..2 {
        train.extend((0..train_per_class).map(|_| make(class)));
        val.extend((0..val_per_class).map(|_| make(class)));
    }
    TrainData {
        classes: vec!["low".into(), "high".into()],
        sample_rate: RATE,
        train,
        val,
    }
}

fn train_config(kind: OptimizerKind) -> TrainConfig {
    TrainConfig {
        schedule: Schedule {
            epochs: 4,
            lr: 3e-3,
            shape: LrSchedule::Constant,
            warmup_steps: 0,
        },
        batch_size: 4,
        optimizer: OptimizerConfig::new(kind),
        val_windows: 2,
        log_every: 2,
        ..TrainConfig::default()
    }
}

fn new_trainer(data: &TrainData, kind: OptimizerKind) -> PerceptionTrainer {
    let model =
        PerceptionTrainer::init_model(tiny_config(), data, 7, FrontendInit::Random, &Device::Cpu).unwrap();
    PerceptionTrainer::new(model, train_config(kind), data).unwrap()
}

fn weights(model: &PerceptionModel) -> Vec<(String, Vec<f32>)> {
    model
        .net
        .named()
        .into_iter()
        .map(|(n, _, t)| (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

fn max_abs_diff(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|((na, va), (nb, vb))| {
            assert_eq!(na, nb);
            va.iter().zip(vb).map(|(x, y)| (x - y).abs())
        })
        .fold(0.0, f32::max)
}

#[test]
fn a_few_steps_lower_the_loss_with_adamw_and_rmsprop() {
    let data = tones(8, 4, 1);
    for kind in [OptimizerKind::AdamW, OptimizerKind::RmsProp] {
        let mut trainer = new_trainer(&data, kind);
        let before = trainer.evaluate(&data).unwrap().unwrap().loss;
        let losses: Vec<f32> = (0..16).map(|_| trainer.step(&data).unwrap().loss).collect();
        let after = trainer.evaluate(&data).unwrap().unwrap().loss;
        let first: f32 = losses[..4].iter().sum::<f32>() / 4.0;
        let last: f32 = losses[12..].iter().sum::<f32>() / 4.0;
        assert!(after < before, "{kind}: validation loss {before} -> {after}");
        assert!(
            last < first,
            "{kind}: training loss {first} -> {last} ({losses:?})"
        );
    }
}

#[test]
fn rmsprop_step_matches_a_hand_computed_step() {
    let w0 = [1.0f32, -2.0, 0.5];
    let c = [0.5f32, 3.0, -1.0];
    let var = Var::new(&w0, &Device::Cpu).unwrap();
    let config = OptimizerConfig {
        beta2: 0.9,
        eps: 1e-8,
        ..OptimizerConfig::new(OptimizerKind::RmsProp)
    };
    let param = Param {
        name: "w".into(),
        var: var.clone(),
        decay: true,
    };
    let mut opt = Optimizer::new(config, vec![param]).unwrap();
    // loss = sum(w * c), so the gradient is c.
    let coeff = Tensor::new(&c, &Device::Cpu).unwrap();
    let loss = var.as_tensor().mul(&coeff).unwrap().sum_all().unwrap();
    opt.step(&loss.backward().unwrap(), 0.01).unwrap();
    // Mean square after one step: 0.1 * g^2, so the step is
    // lr * g / |g| / sqrt(0.1) = 0.01 * sign(g) * 3.16228.
    let expected = [1.0 - 0.0316228, -2.0 - 0.0316228, 0.5 + 0.0316228];
    let got = var.as_tensor().to_vec1::<f32>().unwrap();
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() < 1e-6, "{got:?} vs {expected:?}");
    }
    // A second step: the mean square is now 0.9 * 0.1 g^2 + 0.1 g^2 = 0.19 g^2.
    let loss = var.as_tensor().mul(&coeff).unwrap().sum_all().unwrap();
    opt.step(&loss.backward().unwrap(), 0.01).unwrap();
    let step2 = 0.01 / 0.19f32.sqrt();
    let got = var.as_tensor().to_vec1::<f32>().unwrap();
    for ((g, e), ci) in got.iter().zip(expected).zip(c) {
        let want = e - step2 * ci.signum();
        assert!((g - want).abs() < 1e-6, "second step: {g} vs {want}");
    }
    let state = opt.state().unwrap();
    assert_eq!(state.step, 2);
    assert!(state.tensors.iter().any(|(n, _)| n == "w.square_avg"));
}

#[test]
fn rmsprop_momentum_and_weight_decay_follow_the_formula() {
    let (lr, alpha, mom, wd, eps) = (0.05f64, 0.95f64, 0.9f64, 0.1f64, 1e-8f64);
    let var = Var::new(&[0.3f32, -0.7], &Device::Cpu).unwrap();
    let config = OptimizerConfig {
        beta2: alpha,
        eps,
        momentum: mom,
        weight_decay: wd,
        ..OptimizerConfig::new(OptimizerKind::RmsProp)
    };
    let param = Param {
        name: "w".into(),
        var: var.clone(),
        decay: true,
    };
    let mut opt = Optimizer::new(config, vec![param]).unwrap();
    let (mut w, mut sq, mut buf) = ([0.3f64, -0.7], [0.0f64; 2], [0.0f64; 2]);
    for _ in 0..3 {
        // loss = sum(w^2), gradient 2w.
        let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap(), lr).unwrap();
        for i in 0..2 {
            let g = 2.0 * w[i] + wd * w[i];
            sq[i] = alpha * sq[i] + (1.0 - alpha) * g * g;
            buf[i] = mom * buf[i] + g / (sq[i].sqrt() + eps);
            w[i] -= lr * buf[i];
        }
    }
    let got = var.as_tensor().to_vec1::<f32>().unwrap();
    for (g, e) in got.iter().zip(w) {
        assert!((f64::from(*g) - e).abs() < 1e-5, "{got:?} vs {w:?}");
    }
}

/// A parameter with a learning-rate multiplier takes steps that much
/// larger: Adam's first step moves each weight by the rate (the moments'
/// ratio is one), so by ten times it with a scale of 10.
#[test]
fn a_learning_rate_scale_multiplies_one_parameters_steps() {
    let (a, b) = (
        Var::new(&[0.5f32, -0.5], &Device::Cpu).unwrap(),
        Var::new(&[0.5f32, -0.5], &Device::Cpu).unwrap(),
    );
    let config = OptimizerConfig {
        weight_decay: 0.0,
        lr_scales: [("scaled".to_string(), 10.0)].into(),
        ..OptimizerConfig::new(OptimizerKind::AdamW)
    };
    let param = |name: &str, var: &Var| Param {
        name: name.into(),
        var: var.clone(),
        decay: true,
    };
    let mut opt = Optimizer::new(config, vec![param("plain", &a), param("scaled", &b)]).unwrap();
    let loss = (a.as_tensor().sqr().unwrap().sum_all().unwrap()
        + b.as_tensor().sqr().unwrap().sum_all().unwrap())
    .unwrap();
    opt.step(&loss.backward().unwrap(), 0.001).unwrap();
    let moved = |v: &Var| (f64::from(v.as_tensor().to_vec1::<f32>().unwrap()[0]) - 0.5).abs();
    assert!((moved(&a) - 0.001).abs() < 1e-6, "{}", moved(&a));
    assert!((moved(&b) - 0.01).abs() < 1e-5, "{}", moved(&b));
}

#[test]
fn adamw_matches_candle_nn_adamw() {
    let init = [0.3f32, -0.7, 1.5, 0.02];
    let ours = Var::new(&init, &Device::Cpu).unwrap();
    let theirs = Var::new(&init, &Device::Cpu).unwrap();
    let mut opt = Optimizer::new(
        OptimizerConfig::new(OptimizerKind::AdamW),
        vec![Param {
            name: "w".into(),
            var: ours.clone(),
            decay: true,
        }],
    )
    .unwrap();
    let mut reference = candle_nn::AdamW::new_lr(vec![theirs.clone()], 0.01).unwrap();
    let loss = |v: &Var| v.as_tensor().sqr().unwrap().sum_all().unwrap().sqrt().unwrap();
    for _ in 0..5 {
        opt.step(&loss(&ours).backward().unwrap(), 0.01).unwrap();
        reference.backward_step(&loss(&theirs)).unwrap();
    }
    let a = ours.as_tensor().to_vec1::<f32>().unwrap();
    let b = theirs.as_tensor().to_vec1::<f32>().unwrap();
    assert_ne!(a, init.to_vec(), "the weights moved");
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-7, "{a:?} vs {b:?}");
    }
}

#[test]
fn resuming_from_a_checkpoint_continues_exactly() {
    // 10 clips in batches of 4: 3 steps per epoch, so the runs below cross
    // epoch boundaries before and after the checkpoint.
    let data = tones(5, 2, 2);
    for kind in [OptimizerKind::AdamW, OptimizerKind::RmsProp] {
        let (n, k) = (8, 4);
        let mut straight = new_trainer(&data, kind);
        assert_eq!(straight.steps_per_epoch(), 3);
        let straight_losses: Vec<f32> = (0..n).map(|_| straight.step(&data).unwrap().loss).collect();

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.safetensors");
        let mut first = new_trainer(&data, kind);
        let mut losses: Vec<f32> = (0..k).map(|_| first.step(&data).unwrap().loss).collect();
        first.checkpoint().unwrap().save(&path).unwrap();
        drop(first);

        let loaded = PerceptionCheckpoint::load(&path, &Device::Cpu).unwrap();
        assert_eq!(loaded.progress.counters.step, k as u64);
        let mut resumed = PerceptionTrainer::from_checkpoint(loaded, &data).unwrap();
        assert!(!resumed.data_changed(&data));
        assert_eq!(resumed.progress().counters.step, k as u64);
        assert_eq!(resumed.progress().counters.epoch, 1);
        losses.extend((k..n).map(|_| resumed.step(&data).unwrap().loss));

        assert_eq!(resumed.progress().counters.step, n as u64);
        let diff = max_abs_diff(&weights(straight.model()), &weights(resumed.model()));
        assert!(diff < 1e-6, "{kind}: weights differ by {diff}");
        for (a, b) in straight_losses.iter().zip(&losses) {
            assert!(
                (a - b).abs() < 1e-5,
                "{kind}: losses {straight_losses:?} vs {losses:?}"
            );
        }
    }
}

struct StopAfter {
    steps: u64,
    flag: Arc<AtomicBool>,
    epochs_seen: usize,
}

impl Observer<Perception> for StopAfter {
    fn step(&mut self, result: &StepResult) {
        if result.step == self.steps {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
    fn metrics(&mut self, metrics: &reverie_trainer::metrics::EpochMetrics, classes: &[String]) {
        assert_eq!(metrics.confusion.total(), 4);
        assert_eq!(classes.len(), 2);
        self.epochs_seen += 1;
    }
}

#[test]
fn run_stops_on_the_flag_saves_and_resumes_to_the_end() {
    let data = tones(5, 2, 3);
    let dir = tempfile::tempdir().unwrap();
    let run_dir: PathBuf = dir.path().join("run");
    let flag = Arc::new(AtomicBool::new(false));
    let opts = RunOptions {
        dir: Some(run_dir.clone()),
        checkpoint_every: 0,
        stop: Some(flag.clone()),
        max_steps: None,
        ..RunOptions::default()
    };
    let mut trainer = new_trainer(&data, OptimizerKind::AdamW);
    let mut observer = StopAfter {
        steps: 4,
        flag: flag.clone(),
        epochs_seen: 0,
    };
    let outcome = trainer.run(&data, &opts, &mut observer).unwrap();
    assert_eq!(outcome, RunOutcome::Stopped);
    assert_eq!(
        trainer.progress().counters.step,
        4,
        "the step in flight when the flag was set finishes"
    );
    assert_eq!(observer.epochs_seen, 1);
    let ckpt = PerceptionCheckpoint::load(&run_dir.join(CHECKPOINT_FILE), &Device::Cpu).unwrap();
    assert_eq!(ckpt.progress.counters.step, 4);

    flag.store(false, Ordering::SeqCst);
    let mut resumed = PerceptionTrainer::from_checkpoint(ckpt, &data).unwrap();
    observer.steps = u64::MAX;
    let outcome = resumed.run(&data, &opts, &mut observer).unwrap();
    assert_eq!(outcome, RunOutcome::Finished);
    assert_eq!(resumed.progress().counters.step, 12);
    assert_eq!(resumed.progress().history.len(), 4);
    assert_eq!(observer.epochs_seen, 4);

    let csv = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.starts_with("epoch,step,train_loss"));
    let confusion = std::fs::read_to_string(run_dir.join("confusion.txt")).unwrap();
    assert_eq!(confusion.matches("confusion matrix").count(), 4);
    for png in ["loss.png", "accuracy.png"] {
        let (w, h, _) = decode_png(&run_dir.join(png));
        assert_eq!((w, h), (800, 450));
    }
}

#[test]
fn batch_norm_running_stats_change_and_are_saved() {
    let data = tones(8, 2, 4);
    let mut trainer = new_trainer(&data, OptimizerKind::AdamW);
    let running = |m: &PerceptionModel| -> Vec<(String, Vec<f32>)> {
        weights(m)
            .into_iter()
            .filter(|(n, _)| n.contains("running"))
            .collect()
    };
    let before = running(trainer.model());
    assert_eq!(before.len(), 8, "mean and variance for 4 layers");
    for _ in 0..5 {
        trainer.step(&data).unwrap();
    }
    let after = running(trainer.model());
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        let moved = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(moved > 1e-4, "{name} did not move ({moved})");
        if name.ends_with("running_var") {
            assert!(b.iter().all(|v| *v >= 0.0), "{name} must stay non-negative");
        }
    }
    trainer.finish_epoch(&data).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let model = trainer.finish("test run, seed 7".into()).unwrap();
    model.save(&path).unwrap();
    let loaded = PerceptionModel::load(&path, &Device::Cpu).unwrap();
    assert_eq!(max_abs_diff(&running(&loaded), &after), 0.0);
    assert_eq!(max_abs_diff(&weights(&loaded), &weights(trainer.model())), 0.0);
    let summary = &loaded.meta.training;
    assert_eq!(summary.steps, 5);
    assert!(summary.description.contains("seed 7"));
    assert!(summary.metrics["clips_per_second"] > 0.0);
    assert!((0.0..=1.0).contains(&summary.metrics["val_accuracy"]));
    assert_eq!(loaded.meta.class_names, data.classes);
    assert_eq!(loaded.config, tiny_config());
}

#[test]
fn checkpoint_errors_say_what_is_wrong() {
    let data = tones(2, 1, 5);
    let trainer = new_trainer(&data, OptimizerKind::AdamW);
    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("model.safetensors");
    trainer.finish(String::new()).unwrap().save(&model_path).unwrap();
    let err = PerceptionCheckpoint::load(&model_path, &Device::Cpu).unwrap_err();
    assert!(matches!(err, TrainError::NotACheckpoint { .. }), "{err}");
    assert!(err.to_string().contains("not a checkpoint"));

    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"definitely not a checkpoint").unwrap();
    let err = PerceptionCheckpoint::load(&junk, &Device::Cpu).unwrap_err();
    assert!(matches!(err, TrainError::CheckpointModel { .. }), "{err}");
    let missing = PerceptionCheckpoint::load(&dir.path().join("absent"), &Device::Cpu).unwrap_err();
    assert!(matches!(missing, TrainError::CheckpointIo { .. }));

    // A checkpoint whose data no longer matches: other classes.
    let path = dir.path().join("ckpt.safetensors");
    trainer.checkpoint().unwrap().save(&path).unwrap();
    let mut other = data.clone();
    other.classes = vec!["a".into(), "b".into()];
    let err =
        PerceptionTrainer::from_checkpoint(PerceptionCheckpoint::load(&path, &Device::Cpu).unwrap(), &other)
            .unwrap_err();
    assert!(err.to_string().contains("classes"), "{err}");
}

#[test]
fn dataset_padding_is_trimmed_for_training() {
    let clip_len = 10 * RATE as usize;
    let file_len = 3 * RATE as usize;
    let mut samples = vec![0.5f32; file_len];
    samples.resize(clip_len, 0.0);
    let ds = Dataset {
        classes: vec!["only".into()],
        sample_rate: RATE,
        clip_len,
        files: vec![SourceFile {
            path: "x.wav".into(),
            class: 0,
            split: Split::Train,
            samples: file_len,
        }],
        train: vec![Clip {
            class: 0,
            file: 0,
            offset: 0,
            samples,
            scale: 1.0,
        }],
        val: vec![],
        skipped: vec![],
    };
    let data = TrainData::from_dataset(ds);
    assert_eq!(data.train[0].samples.len(), file_len);
    assert_eq!(data.fingerprint().train_clips, 1);
}

#[test]
fn confusion_matrix_counts_and_prints() {
    let mut m = ConfusionMatrix::new(2);
    for (t, p) in [(0, 0), (0, 1), (1, 1), (1, 1)] {
        m.add(t, p);
    }
    assert_eq!(m.accuracy(), 0.75);
    assert_eq!(m.recall(), vec![0.5, 1.0]);
    let table = m.to_table(&["low".into(), "high".into()]);
    assert!(table.contains("accuracy 75.00% (3 of 4)"), "{table}");
}

#[test]
fn filter_spectra_are_sorted_by_peak_frequency() {
    // Sine kernels at known frequencies come out sorted, each peaking at
    // its own frequency.
    let freqs = [3000.0f32, 500.0, 1500.0];
    let kernels: Vec<Vec<f32>> = freqs
        .iter()
        .map(|f| {
            (0..200)
                .map(|n| (std::f32::consts::TAU * f * n as f32 / RATE as f32).sin())
                .collect()
        })
        .collect();
    let spectra = filter_spectra(&kernels, RATE, 512).unwrap();
    assert_eq!(spectra.order, vec![1, 2, 0]);
    let bin = RATE as f32 / 512.0;
    for (got, want) in spectra.peak_hz.iter().zip([500.0, 1500.0, 3000.0]) {
        assert!((got - want).abs() <= bin, "{got} vs {want}");
    }
    assert_eq!(spectra.db[0].len(), 256);
    assert!(spectra
        .db
        .iter()
        .all(|d| d.iter().cloned().fold(f32::MIN, f32::max).abs() < 1e-4));
}

#[test]
fn bandpass_init_gives_mel_spaced_filters_of_he_norm() {
    let kernels = bandpass_kernels(32, 400, RATE);
    assert_eq!((kernels.len(), kernels[0].len()), (32, 400));
    for k in &kernels {
        let norm = k.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - std::f32::consts::SQRT_2).abs() < 1e-4, "norm {norm}");
    }
    let spectra = filter_spectra(&kernels, RATE, 1024).unwrap();
    // Centre frequencies rise with the index, so sorting keeps the order
    // (up to the cosine/sine partner of each band).
    for (sorted, &original) in spectra.order.iter().enumerate() {
        assert_eq!(sorted / 2, original / 2, "order {:?}", spectra.order);
    }
    assert!(
        spectra.peak_hz[0] < 100.0 && spectra.peak_hz[31] > 3000.0,
        "{:?}",
        spectra.peak_hz
    );
    // Mel spacing: the bands are closer together at the bottom than at the top.
    let gap = |i: usize| spectra.peak_hz[i + 2] - spectra.peak_hz[i];
    assert!(gap(2) < gap(28));

    let data = tones(2, 1, 6);
    let model =
        PerceptionTrainer::init_model(tiny_config(), &data, 3, FrontendInit::Bandpass, &Device::Cpu).unwrap();
    let first = first_layer_kernels(&model).unwrap();
    assert_eq!(first, bandpass_kernels(16, 100, RATE));
}

#[test]
fn filters_image_has_the_expected_size_and_is_not_blank() {
    let data = tones(2, 1, 6);
    let model =
        PerceptionTrainer::init_model(tiny_config(), &data, 3, FrontendInit::Random, &Device::Cpu).unwrap();
    let kernels = first_layer_kernels(&model).unwrap();
    assert_eq!((kernels.len(), kernels[0].len()), (16, 100));
    let spectra = filter_spectra(&kernels, RATE, 256).unwrap();
    assert!(spectra.peak_hz.windows(2).all(|w| w[0] <= w[1]));

    let bare = FilterImageOptions {
        column_width: 3,
        labels: false,
        ..FilterImageOptions::default()
    };
    let img = render_filters(&spectra, &bare).unwrap();
    assert_eq!((img.width, img.height), (16 * 3, 128));
    let distinct: std::collections::BTreeSet<[u8; 3]> = (0..img.height)
        .flat_map(|y| (0..img.width).map(move |x| (x, y)))
        .map(|(x, y)| img.get(x, y))
        .collect();
    assert!(distinct.len() > 20, "only {} colours", distinct.len());
    // Every column has its peak drawn at full brightness.
    for col in 0..16 {
        let brightest = (0..img.height)
            .map(|y| img.get(col * 3, y).iter().map(|&c| c as u32).sum::<u32>())
            .max();
        assert!(brightest.unwrap() > 600, "column {col} is dark");
    }

    let labelled = render_filters(&spectra, &FilterImageOptions::default()).unwrap();
    assert!(labelled.width > img.width && labelled.height > img.height);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("filters.png");
    labelled.save_png(&path).unwrap();
    let (w, h, pixels) = decode_png(&path);
    assert_eq!((w as usize, h as usize), (labelled.width, labelled.height));
    assert_eq!(pixels, labelled.pixels);
}

fn decode_png(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// `tests/data/perception-checkpoint.safetensors` was written by the
/// trainer before its run core was shared with the WaveNet trainer (commit
/// ba9c954): the tiny network, AdamW, after 4 steps on `tones(5, 2, 2)` and
/// one validated epoch. It must still load, resume as that run went on, and
/// be written back in the same format.
#[test]
fn a_checkpoint_of_the_earlier_trainer_resumes() {
    let bytes = include_bytes!("data/perception-checkpoint.safetensors");
    let path = std::path::Path::new("perception-checkpoint.safetensors");
    let checkpoint = PerceptionCheckpoint::from_bytes(bytes, path, &Device::Cpu).unwrap();
    assert_eq!(checkpoint.progress.counters.step, 4);
    assert_eq!(checkpoint.progress.counters.epoch, 1);
    assert_eq!(checkpoint.progress.history.len(), 1);
    assert_eq!(checkpoint.optimizer.step, 4);
    let c = &checkpoint.config;
    assert_eq!(
        (
            c.schedule.epochs,
            c.schedule.shape,
            c.schedule.warmup_steps,
            c.batch_size
        ),
        (4, LrSchedule::Cosine, 2, 4)
    );
    assert_eq!(c.schedule.lr, 3e-3);
    assert_eq!(c.optimizer.kind, OptimizerKind::AdamW);

    // Written back unchanged: the same state JSON and the same tensors.
    let again = checkpoint.to_bytes().unwrap();
    assert_eq!(common::checkpoint_parts(&again), common::checkpoint_parts(bytes));

    // The steps the earlier trainer took next, from this checkpoint.
    let data = tones(5, 2, 2);
    let mut trainer = PerceptionTrainer::from_checkpoint(checkpoint, &data).unwrap();
    assert!(!trainer.data_changed(&data));
    let losses: Vec<f32> = (0..3).map(|_| trainer.step(&data).unwrap().loss).collect();
    for (got, then) in losses.iter().zip([0.5666642f32, 0.498151, 0.3901405]) {
        assert!((got - then).abs() < 1e-4, "{losses:?}");
    }
}
