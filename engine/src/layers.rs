//! Network building blocks written for candle's strengths: convolutions as
//! frame-stacking plus one matrix multiply (fast forward *and* input
//! gradient on the CPU), batch norm with train/eval modes, and overlapping
//! max pooling from shifted slices (candle has no max_pool1d with
//! overlapping windows and no backward for it).
//!
//! Activations are laid out channels-last, `[batch, time, channels]`, so
//! every layer is a plain `[rows, k] x [k, out]` matmul.

use candle_core::{DType, Result, Tensor, D};

/// A strided convolution whose kernel is a whole number `m` of strides long,
/// on a mono signal `[batch, samples]`.
///
/// The signal is cut into stride-sized blocks; frame `t` is blocks
/// `t..t+m` side by side. `weight` is `[out, 1, m * stride]`.
/// Returns `[batch, frames, out]`.
pub fn strided_frontend(x: &Tensor, weight: &Tensor, stride: usize) -> Result<Tensor> {
    let (batch, samples) = x.dims2()?;
    let (out, _, kernel) = weight.dims3()?;
    let m = kernel / stride;
    let blocks = samples / stride;
    if blocks < m {
        candle_core::bail!("input of {samples} samples is shorter than one {kernel}-sample frame");
    }
    let frames = blocks - m + 1;
    let x = x
        .narrow(1, 0, blocks * stride)?
        .reshape((batch, blocks, stride))?;
    let parts = (0..m)
        .map(|j| x.narrow(1, j, frames))
        .collect::<Result<Vec<_>>>()?;
    let stacked = Tensor::cat(&parts, 2)?.reshape((batch * frames, kernel))?;
    let w = weight.reshape((out, kernel))?.t()?;
    stacked.matmul(&w)?.reshape((batch, frames, out))
}

/// A stride-1 "valid" convolution over time on `[batch, time, in]` with
/// `weight` `[out, in, kernel]`. Returns `[batch, time - kernel + 1, out]`.
pub fn conv_valid(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let (batch, time, chans) = x.dims3()?;
    let (out, _, kernel) = weight.dims3()?;
    if time < kernel {
        candle_core::bail!("{time} frames are fewer than the kernel size {kernel}");
    }
    let frames = time - kernel + 1;
    let parts = (0..kernel)
        .map(|k| x.narrow(1, k, frames))
        .collect::<Result<Vec<_>>>()?;
    let stacked = Tensor::cat(&parts, 2)?.reshape((batch * frames, kernel * chans))?;
    // [out, in, k] -> [k, in, out] so rows match the (k, channel) stacking.
    let w = weight.permute((2, 1, 0))?.reshape((kernel * chans, out))?;
    stacked.matmul(&w)?.reshape((batch, frames, out))
}

/// Overlapping max pooling over time (kernel 3, stride 2) on
/// `[batch, time, chans]`, built from shifted slices so its gradient exists.
/// Returns `floor((time - 2) / 2)` frames.
pub fn max_pool_3_2(x: &Tensor) -> Result<Tensor> {
    let (batch, time, chans) = x.dims3()?;
    if time < 4 {
        candle_core::bail!("{time} frames are too few to pool");
    }
    let span = time - 2;
    let m = x
        .narrow(1, 0, span)?
        .maximum(&x.narrow(1, 1, span)?)?
        .maximum(&x.narrow(1, 2, span)?)?;
    let out = span / 2;
    m.narrow(1, 0, out * 2)?
        .reshape((batch, out, 2, chans))?
        .narrow(2, 0, 1)?
        .reshape((batch, out, chans))
}

/// Batch-norm parameters and running statistics for one layer; `T` is
/// what stands in each tensor's place (see [`crate::model_file::Layout`]).
#[derive(Debug, Clone)]
pub struct BatchNorm<T = Tensor> {
    /// Learned scale, `[chans]`.
    pub gamma: T,
    /// Learned shift, `[chans]`.
    pub beta: T,
    /// Running mean, `[chans]`.
    pub running_mean: T,
    /// Running variance, `[chans]`.
    pub running_var: T,
    /// Numerical floor added to the variance.
    pub eps: f64,
}

impl BatchNorm {
    /// Normalises with the running statistics (inference, dreaming).
    pub fn forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let scale = (&self.gamma / (&self.running_var + self.eps)?.sqrt()?)?;
        let shift = (&self.beta - (&self.running_mean * &scale)?)?;
        x.broadcast_mul(&scale)?.broadcast_add(&shift)
    }

    /// Normalises with the batch's own statistics (training) and returns the
    /// batch mean and (biased) variance so the caller can update the running
    /// statistics.
    pub fn forward_train(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let chans = x.dim(D::Minus1)?;
        let flat = x.reshape(((), chans))?;
        let mean = flat.mean(0)?;
        let centred = flat.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean(0)?;
        let y = centred
            .broadcast_div(&(&var + self.eps)?.sqrt()?)?
            .broadcast_mul(&self.gamma)?
            .broadcast_add(&self.beta)?;
        Ok((y.reshape(x.shape())?, mean.detach(), var.detach()))
    }
}

/// Mean absolute value of a tensor, as an f32.
pub fn mean_abs(x: &Tensor) -> Result<f32> {
    x.abs()?.mean_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()
}
