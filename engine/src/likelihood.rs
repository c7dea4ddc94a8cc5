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

/// Scores a sequence of classes fed in pieces of any size, so long files
/// can report progress: every class but the very first is scored given all
/// the classes before it.
pub struct Scorer<'a> {
    sampler: &'a mut Sampler,
    last: Option<usize>,
    /// Whether audio has been pushed (its first sample is not scored).
    started: bool,
}

impl<'a> Scorer<'a> {
    /// Resets `sampler`: the first samples are predicted with nothing before
    /// them (zero padding, as in the training forward pass), and only
    /// samples a receptive field in have full context.
    pub fn new(sampler: &'a mut Sampler) -> Self {
        sampler.reset();
        Self {
            sampler,
            last: None,
            started: false,
        }
    }

    /// Appends `-ln p(class | everything before it)` for each of `classes`
    /// to `out` (one fewer for the first piece).
    pub fn push(&mut self, classes: &[usize], out: &mut Vec<f32>) {
        for &class in classes {
            if let Some(last) = self.last {
                self.sampler.step(last);
                out.push(nll_of(self.sampler.distribution(), class));
            }
            self.last = Some(class);
        }
    }

    /// Appends `-ln p` of each sample's µ-law class given the audio before
    /// it (one fewer for the first piece), coded as the model codes it:
    /// [`Sampler::signal_nll`], comparable across models whatever their
    /// coding (the same as [`push`](Self::push) of the classes for a plain
    /// model). Do not mix with [`push`](Self::push) on one scorer.
    pub fn push_audio(&mut self, audio: &[f32], out: &mut Vec<f32>) {
        for &x in audio {
            if self.started {
                out.push(self.sampler.signal_nll(x));
            }
            self.sampler.feed_audio(x);
            self.started = true;
        }
    }
}

/// `-ln p(classes[t] | classes[..t])` for every `t` from 1, from a reset
/// sampler (see [`Scorer::new`]). One value fewer than `classes`.
pub fn sequence_nll(sampler: &mut Sampler, classes: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(classes.len().saturating_sub(1));
    Scorer::new(sampler).push(classes, &mut out);
    out
}
