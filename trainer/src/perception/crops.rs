//! Windows cut from labelled clips: random training crops (drawn again
//! when too quiet, then augmented) and the fixed validation windows.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reverie_engine::dreamer::normalise;

use super::config::TrainConfig;

/// How often a too-quiet crop is drawn again before it is kept anyway.
const CROP_RETRIES: usize = 3;

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>() / x.len().max(1) as f64).sqrt() as f32
}

/// A random `window`-sample crop; shorter clips are zero-padded at a random
/// place instead.
pub(crate) fn random_crop(samples: &[f32], window: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    if samples.len() >= window {
        let start = rng.random_range(0..=samples.len() - window);
        samples[start..start + window].to_vec()
    } else {
        let mut out = vec![0.0; window];
        let start = rng.random_range(0..=window - samples.len());
        out[start..start + samples.len()].copy_from_slice(samples);
        out
    }
}

/// A training crop of `samples`: a random window, drawn again (a few times
/// at most) while it is quieter than the configured share of the clip's
/// RMS, then augmented and normalised the way the dreamer normalises.
pub(crate) fn training_crop(
    samples: &[f32],
    window: usize,
    config: &TrainConfig,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let mut crop = random_crop(samples, window, rng);
    if config.min_crop_level > 0.0 {
        let floor = config.min_crop_level * rms(samples);
        for _ in 0..CROP_RETRIES {
            if rms(&crop) >= floor {
                break;
            }
            crop = random_crop(samples, window, rng);
        }
    }
    augment(&mut crop, config, rng);
    normalise(&crop).0
}

fn augment(crop: &mut [f32], config: &TrainConfig, rng: &mut ChaCha8Rng) {
    // Draw every random number whether or not it is used, so turning
    // one augmentation off does not change the others' choices.
    let flip = rng.random_bool(0.5);
    let level: f32 = rng.random_range(0.0..=1.0) * config.noise;
    let noise_seed: u64 = rng.random();
    if config.flip_polarity && flip {
        crop.iter_mut().for_each(|v| *v = -*v);
    }
    if level > 0.0 {
        let peak = crop.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let noise = reverie_engine::normal_vec(
            &mut ChaCha8Rng::seed_from_u64(noise_seed),
            crop.len(),
            level * peak,
        );
        crop.iter_mut().zip(noise).for_each(|(v, n)| *v += n);
    }
}

/// `k` normalised windows spread evenly over the clip (one centred window
/// when `k` is 1), zero-padded when the clip is short.
pub(crate) fn fixed_windows(samples: &[f32], window: usize, k: usize) -> Vec<Vec<f32>> {
    let span = samples.len().saturating_sub(window);
    (0..k)
        .map(|i| {
            let start = if k == 1 { span / 2 } else { span * i / (k - 1) };
            let mut w = vec![0.0; window];
            let end = (start + window).min(samples.len());
            w[..end - start].copy_from_slice(&samples[start..end]);
            normalise(&w).0
        })
        .collect()
}
