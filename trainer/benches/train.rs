//! Training throughput of the default perception architecture: one AdamW
//! step on a batch of 32 one-second crops at 16 kHz (forward in train mode,
//! backward, update). Clips per second = 32 / the median step time;
//! `cargo xtask bench-report` prints it.

use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion};
use rand::SeedableRng;
use reverie_engine::perception::PerceptionConfig;
use reverie_trainer::perception::{Example, FrontendInit, PerceptionTrainer, TrainConfig, TrainData};
use reverie_trainer::run::Schedule;

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

criterion_group!(benches, bench);
criterion_main!(benches);
