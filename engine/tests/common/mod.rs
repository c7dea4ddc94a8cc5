//! Tiny models and signals shared by the engine's tests.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use reverie_engine::normal_vec;
use reverie_engine::perception::{PerceptionConfig, PerceptionModel};

/// Model rate of the tiny test models.
pub const RATE: u32 = 16_000;

/// A small network with the real architecture's shape (strided first layer,
/// pooling, several conv layers) at a fraction of its size.
pub fn tiny_config() -> PerceptionConfig {
    PerceptionConfig {
        window: 2_000,
        frontend_filters: 16,
        frontend_kernel: 100,
        frontend_stride: 20,
        channels: vec![12, 12, 12],
        kernel: 3,
        pool: vec![true, true, false, false],
        bn_eps: 1e-5,
    }
}

/// A random tiny model with three classes and batch norm calibrated on noise.
pub fn tiny_model(seed: u64) -> PerceptionModel {
    let classes = vec!["piano".to_string(), "organ".to_string(), "drums".to_string()];
    let mut model = PerceptionModel::init(tiny_config(), RATE, classes, seed, &Device::Cpu).unwrap();
    let noise = noise(8 * 2_000, seed + 100, 0.5);
    let batch = Tensor::from_vec(noise, (8, 2_000), &Device::Cpu).unwrap();
    model.calibrate_batch_norm(&batch).unwrap();
    model
}

/// Deterministic white noise.
pub fn noise(n: usize, seed: u64, std: f32) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    normal_vec(&mut rng, n, std)
}

/// A normalised test window: two tones plus a little noise, peak 1.
pub fn window(n: usize, seed: u64) -> Vec<f32> {
    let hiss = noise(n, seed, 0.05);
    let raw: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            0.6 * (std::f32::consts::TAU * 220.0 * t).sin()
                + 0.3 * (std::f32::consts::TAU * 1_375.0 * t).sin()
                + hiss[i]
        })
        .collect();
    reverie_engine::dreamer::normalise(&raw).0
}
