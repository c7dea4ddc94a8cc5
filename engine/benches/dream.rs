//! Dreaming speed at default settings on the CPU: one window's forward pass,
//! one gradient step (forward + backward + update), and the whole streaming
//! pipeline's real-time factor in each dream mode (audio seconds per wall
//! second = throughput in samples/s divided by the host rate, 48 kHz here).

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::SeedableRng;
use reverie_engine::dreamer::{DreamMode, DreamParams, Dreamer};
use reverie_engine::normal_vec;
use reverie_engine::perception::{PerceptionConfig, PerceptionModel};
use reverie_engine::streaming::{DreamWindows, ModelStream, StreamConfig};

/// The default architecture; speed does not depend on the weights' values.
fn model() -> PerceptionModel {
    let config = PerceptionConfig::default();
    let window = config.window;
    let classes = (0..10).map(|i| format!("class{i}")).collect();
    let mut m = PerceptionModel::init(config, 16_000, classes, 1, &Device::Cpu).unwrap();
    let noise = normal_vec(&mut rand_chacha::ChaCha8Rng::seed_from_u64(2), 4 * window, 0.3);
    m.calibrate_batch_norm(&Tensor::from_vec(noise, (4, window), &Device::Cpu).unwrap())
        .unwrap();
    m
}

fn music(n: usize, rate: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f32 / rate;
            0.5 * (std::f32::consts::TAU * 220.0 * t).sin()
                * (1.0 + (std::f32::consts::TAU * 2.0 * t).sin())
                * 0.5
                + 0.2 * (std::f32::consts::TAU * 1_320.0 * t).sin()
        })
        .collect()
}

fn window_costs(c: &mut Criterion) {
    let dreamer = Dreamer::new(model(), Device::Cpu);
    let x = reverie_engine::dreamer::normalise(&music(16_000, 16_000.0)).0;
    let input = Tensor::from_slice(&x, (1, x.len()), &Device::Cpu).unwrap();
    let mut g = c.benchmark_group("window");
    g.bench_function("forward", |b| {
        b.iter(|| dreamer.model().net.forward(&input).unwrap())
    });
    let one_step = DreamParams {
        iterations: 1,
        ..DreamParams::default()
    };
    g.bench_function("forward_backward_step", |b| {
        b.iter(|| dreamer.dream(&x, &one_step).unwrap())
    });
    g.finish();
}

fn stream_rtf(c: &mut Criterion) {
    let rate = 48_000u32;
    let seconds = 4;
    let input = music(rate as usize * seconds, rate as f32);
    let mut g = c.benchmark_group("stream");
    g.sample_size(10);
    g.throughput(Throughput::Elements(input.len() as u64));
    for mode in DreamMode::ALL {
        g.bench_function(format!("dream_48k_{}", mode.name()), |b| {
            b.iter_batched(
                || {
                    let params = DreamParams {
                        mode,
                        ..DreamParams::default()
                    };
                    let windows = DreamWindows::new(Dreamer::new(model(), Device::Cpu), params);
                    let config = StreamConfig {
                        host_rate: rate,
                        model_rate: 16_000,
                        window: 16_000,
                        hop: 8_000,
                    };
                    (ModelStream::new(config, windows).unwrap(), vec![0.0f32; 512])
                },
                |(mut stream, mut out)| {
                    for block in input.chunks(512) {
                        stream.process(block, &mut out[..block.len()]).unwrap();
                    }
                    stream.windows_done()
                },
                criterion::BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, window_costs, stream_rtf);
criterion_main!(benches);
