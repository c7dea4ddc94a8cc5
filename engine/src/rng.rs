//! Small deterministic random helpers shared by initialisation and noise.

use rand::Rng;

/// `n` samples of a zero-mean normal distribution with standard deviation
/// `std` (Box-Muller), deterministic for the generator's seed.
pub fn normal_vec(rng: &mut impl Rng, n: usize, std: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1: f32 = rng.random_range(f32::EPSILON..1.0);
            let u2: f32 = rng.random();
            std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect()
}
