//! How well a WaveNet predicts real audio, sample by sample: the negative
//! log-likelihood its next-sample distribution gives the sample that
//! actually came next. Training reports one mean over held-out chunks; per
//! sample it shows *where* a model is unsure (onsets, sustained notes,
//! silence), which is what decides whether its own audio sounds like notes
//! or hiss.

use crate::sampler::Sampler;

/// `-ln p(class)` in nats under the softmax of `logits`.
///
/// # Panics
/// If `class` is not an index into `logits`.
pub fn nll_of(logits: &[f32], class: usize) -> f32 {
    // Shifting by the largest logit keeps exp() finite for any logits.
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    max + sum.ln() - logits[class]
}

/// `-ln p(classes[t] | classes[..t])` for every `t` from 1: the sampler is
/// reset and teacher-forced with the sequence, so the first samples are
/// predicted with nothing before them (zero padding, as in the training
/// forward pass) and only samples a receptive field in have full context.
/// One value fewer than `classes` (none for fewer than two).
pub fn sequence_nll(sampler: &mut Sampler, classes: &[usize]) -> Vec<f32> {
    sampler.reset();
    classes
        .windows(2)
        .map(|pair| nll_of(sampler.step(pair[0]), pair[1]))
        .collect()
}
