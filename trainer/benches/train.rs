//! Training throughput of the default architectures: one AdamW step of the
//! perception network on a batch of 32 one-second crops at 16 kHz (forward
//! in train mode, backward, update; clips per second = 32 / the median step
//! time, which `cargo xtask bench-report` prints), and one Adam step of the
//! default WaveNet on its default batch of 4 x 8000 scored samples
//! (samples per second = 32,000 / the median step time).

use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion};
use rand::SeedableRng;
use reverie_engine::perception::PerceptionConfig;
use reverie_engine::wavenet::{WavenetConfig, WavenetModel};
use reverie_trainer::perception::{Example, FrontendInit, PerceptionTrainer, TrainConfig, TrainData};
use reverie_trainer::run::Schedule;
use reverie_trainer::wavenet::{WavenetData, WavenetTrainConfig, WavenetTrainer};

/// Ten classes of four-second noise clips with class-dependent colour:
/// the step's cost does not depend on what the clips hold.
fn data() -> TrainData {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let clip = |class: usize, rng: &mut rand_chacha::ChaCha8Rng| {
        let mut prev = 0.0f32;
        let samples = (0..4 * 16_000)
            .map(|_| {
                let white: f32 = rand::Rng::random_range(rng, -1.0..1.0);
                prev = 0.1 * class as f32 * prev + white;
                prev * 0.3
            })
            .collect();
        Example { samples, class }
    };
    let classes: Vec<String> = (0..10).map(|c| format!("class{c}")).collect();
    let train = (0..64).map(|i| clip(i % 10, &mut rng)).collect();
    let val = (0..10).map(|i| clip(i, &mut rng)).collect();
    TrainData {
        classes,
        sample_rate: 16_000,
        train,
        val,
    }
}

fn bench(c: &mut Criterion) {
    let data = data();
    let model = PerceptionTrainer::init_model(
        PerceptionConfig::default(),
        &data,
        0,
        FrontendInit::Bandpass,
        &Device::Cpu,
    )
    .expect("model");
    let defaults = TrainConfig::default();
    let config = TrainConfig {
        schedule: Schedule {
            epochs: 1000,
            ..defaults.schedule.clone()
        },
        ..defaults
    };
    let mut trainer = PerceptionTrainer::new(model, config, &data).expect("trainer");
    let mut group = c.benchmark_group("train");
    group.sample_size(10);
    group.bench_function("adamw_step_batch_32", |b| {
        b.iter(|| trainer.step(&data).expect("step"))
    });
    group.finish();
}

/// Eight seconds of decaying harmonic tones over a little noise per file:
/// what a step costs does not depend on the audio, only on its length.
fn wavenet_data() -> WavenetData {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let mut file = |f0: f32| -> Vec<f32> {
        (0..8 * 16_000)
            .map(|n| {
                let t = n as f32 / 16_000.0;
                let tone: f32 = (1..=4)
                    .map(|h| (std::f32::consts::TAU * f0 * h as f32 * t).sin() / h as f32)
                    .sum();
                let noise: f32 = rand::Rng::random_range(&mut rng, -1.0..1.0);
                0.3 * (-(t % 1.0) * 2.0).exp() * tone + 0.01 * noise
            })
            .collect()
    };
    let train = [196.0, 262.0, 330.0, 392.0].map(&mut file).to_vec();
    let val = vec![file(220.0)];
    WavenetData::from_signals(16_000, train, val)
}

fn wavenet_bench(c: &mut Criterion) {
    let data = wavenet_data();
    let model = WavenetModel::init(WavenetConfig::default(), 16_000, 0, &Device::Cpu).expect("model");
    let defaults = WavenetTrainConfig::default();
    let config = WavenetTrainConfig {
        schedule: Schedule {
            epochs: 1000,
            ..defaults.schedule.clone()
        },
        eval_every: 0,
        sample_every: 0,
        ..defaults
    };
    let mut trainer = WavenetTrainer::new(model, config, &data).expect("trainer");
    let mut group = c.benchmark_group("train");
    group.sample_size(10);
    group.bench_function("wavenet_adam_step_4x8000", |b| {
        b.iter(|| trainer.step().expect("step"))
    });
    group.finish();
}

criterion_group!(benches, bench, wavenet_bench);
criterion_main!(benches);
