//! Real-time WaveNet generation in plain Rust (no candle at run time), with
//! the Fast WaveNet algorithm: each layer keeps a queue of its past inputs,
//! so generating a sample is one pass through the layers that reads the
//! input `d` steps back from the queue and pushes the current one, O(1) queue
//! work per layer instead of recomputing the whole receptive field.
//!
//! Everything a step needs (queues, activations, logits) is allocated when
//! the sampler is built; [`Sampler::step`] and [`Sampler::sample_next`] never
//! allocate, lock or do I/O, so they can run on a real-time-ish worker
//! thread. Weights are repacked into column panels so every matrix-vector
//! product streams memory in order and keeps its running sums in vector
//! registers; on x86-64 with AVX2 and FMA (checked at run time) the whole
//! step is compiled for those instructions (its products on f32 weights,
//! or for generation on 8-bit copies of them with [`crate::kernels`]' AVX2
//! kernels: [`Kernels::Avx2Int8`]), and with AVX-512 its products run
//! [`crate::kernels`]' AVX-512 ones (on f32 weights, or for generation on
//! bfloat16 or 8-bit copies of them: see [`Kernels::Avx512Bf16`] and
//! [`Kernels::Avx512Int8`]).
//!
//! [`NaiveSampler`] is the reference the cached sampler is measured and
//! tested against: it recomputes every layer over the receptive field for
//! each sample, with the same kernels.
//!
//! One file, though long: both samplers share the private kernels and the
//! packed weights, and all of it is the per-sample hot path, which reads
//! best (and is checked against the candle network best) in one place.

use std::path::Path;

use rand::Rng;

use crate::kernels::CacheAligned;
use crate::model_file::{Layout, ModelFileError, ModelMeta, RawModel};
use crate::mulaw::MuLaw;
use crate::prediction_inputs::{PredictionInputs, MAX_INPUTS};
use crate::signal_coding::SignalCoding;
use crate::tone_prior::TonePrior;
use crate::tone_sampling::ToneAwareSampler;
use crate::wavenet::{WavenetConfig, WavenetModel, WavenetNet};

/// Output columns per packed panel: 32 floats, four AVX registers of running
/// sums (two sets of them, for two input rows in flight).
const PANEL: usize = 32;

/// Whether the portable build can use fused multiply-add instructions
/// (without them `mul_add` would be a slow library call).
const PORTABLE_FMA: bool = cfg!(target_feature = "fma") || cfg!(target_arch = "aarch64");

/// Kernel levels, the const parameter `K` of the step's functions: plain
/// multiply-adds, fused ones (AVX2 and FMA, or a portable build with FMA),
/// AVX-512 matrix-vector products on top, those with bfloat16 weights,
/// those with 8-bit weights and activations, and the fused level with 8-bit
/// products in AVX2.
const PLAIN: u8 = 0;
const FUSED: u8 = 1;
const WIDE: u8 = 2;
const WIDE_BF16: u8 = 3;
const WIDE_INT8: u8 = 4;
const FUSED_INT8: u8 = 5;
/// The level of the portable build.
const PORTABLE: u8 = if PORTABLE_FMA { FUSED } else { PLAIN };

/// Which build of the kernels a sampler's steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// Plain Rust for any CPU.
    Portable,
    /// Compiled for AVX2 and FMA.
    Avx2,
    /// AVX2 and FMA, with AVX-512 matrix-vector products.
    Avx512,
    /// [`Avx512`](Self::Avx512) with the weights rounded to bfloat16, which
    /// halves the memory they stream per sample (what limits the sampler)
    /// and so nearly doubles its speed. The logits are exactly those of the
    /// model with its weights so rounded (within float summation order).
    /// On the built-in model each sample's likelihood moves by about 1%
    /// either way and the average by 0.02%: the same seed plays another
    /// performance of the same kind of sound. For generation; scoring
    /// ([`crate::likelihood`]) keeps the f32 weights.
    Avx512Bf16,
    /// AVX-512 VNNI products on 8-bit integers: each weight column scaled
    /// to signed bytes, each product's activations to 255 levels of their
    /// largest magnitude, summed exactly in integers and scaled back, which
    /// streams a quarter of the f32 weights' bytes per sample. The
    /// activations' rounding (a level is 1/127 of the largest) moves the
    /// logits more than bfloat16 does; [`crate::kernels::MAX_INT8_ROWS`]
    /// bounds the products done so (larger ones run on bfloat16). For
    /// generation; scoring keeps the f32 weights.
    Avx512Int8,
    /// [`Avx2`](Self::Avx2) with the 8-bit products of
    /// [`Avx512Int8`](Self::Avx512Int8) (the same integer sums, so the same
    /// logits) done with AVX2's byte multiply-adds: for CPUs without
    /// AVX-512, where the f32 weights (0.93 MB for the default model) do not
    /// fit the L2 cache and their quarter does (products over
    /// [`crate::kernels::MAX_INT8_ROWS`] rows run on f32). For generation.
    Avx2Int8,
}

impl Kernels {
    /// The fastest this CPU runs, for generation: the 8-bit kernels where
    /// it has AVX-512 VNNI, else bfloat16 weights where it has AVX-512,
    /// else the AVX2 8-bit kernels where it has AVX2 and FMA, else
    /// [`best`](Self::best).
    pub fn fastest() -> Self {
        [Kernels::Avx512Int8, Kernels::Avx512Bf16, Kernels::Avx2Int8]
            .into_iter()
            .find(|k| k.available())
            .unwrap_or_else(Self::best)
    }

    /// The best this CPU runs with the model's f32 weights as they are.
    pub fn best() -> Self {
        if crate::kernels::has_avx512() {
            Kernels::Avx512
        } else if detect_fma() {
            Kernels::Avx2
        } else {
            Kernels::Portable
        }
    }

    /// Whether this CPU can run them.
    pub fn available(self) -> bool {
        match self {
            Kernels::Portable => true,
            Kernels::Avx2 | Kernels::Avx2Int8 => detect_fma(),
            Kernels::Avx512 | Kernels::Avx512Bf16 => crate::kernels::has_avx512() && detect_fma(),
            Kernels::Avx512Int8 => crate::kernels::has_avx512_vnni() && detect_fma(),
        }
    }
}

/// A weight matrix `[in, out]` repacked as panels of [`PANEL`] output
/// columns: panel `p` holds, input row by input row, the weights of columns
/// `p * PANEL ..`, contiguous, zero-padded at the right edge. The same
/// panels in bfloat16 sit beside them, rows in pairs
/// ([`crate::kernels::panel_product_avx512_bf16`]'s layout). A row of a
/// panel is two whole cache lines in f32 (a pair of rows in bfloat16), and
/// every panel starts on a line.
#[derive(Debug, Clone)]
struct Packed {
    rows: usize,
    cols: usize,
    data: CacheAligned<f32>,
    bf16: CacheAligned<u32>,
    /// The panels in signed bytes, rows in quads
    /// ([`crate::kernels::panel_product_avx512_int8`]'s layout), each
    /// column scaled by its own step.
    int8: CacheAligned<u32>,
    /// Each (padded) column's step between byte levels.
    int8_step: Vec<f32>,
    /// 128 times each column's byte weight sum: what the activations'
    /// offset adds to the integer sums.
    int8_offset: Vec<i32>,
}

impl Packed {
    fn new(w: &[f32], rows: usize, cols: usize) -> Self {
        let panels = cols.div_ceil(PANEL);
        let mut data = vec![0.0; panels * rows * PANEL];
        for (p, panel) in data.chunks_exact_mut(rows * PANEL).enumerate() {
            let start = p * PANEL;
            let width = PANEL.min(cols - start);
            for (i, dst) in panel.chunks_exact_mut(PANEL).enumerate() {
                dst[..width].copy_from_slice(&w[i * cols + start..i * cols + start + width]);
            }
        }
        let pairs = rows.div_ceil(2);
        let mut bf16 = Vec::with_capacity(data.len().div_ceil(2 * rows * PANEL) * pairs * PANEL);
        for panel in data.chunks_exact(rows * PANEL) {
            for pair in 0..pairs {
                let upper = &panel[2 * pair * PANEL..][..PANEL];
                // An odd last row's partner is a row of zeros.
                let lower = panel.get((2 * pair + 1) * PANEL..(2 * pair + 2) * PANEL);
                bf16.extend(
                    (0..PANEL).map(|l| crate::kernels::bf16_pair(upper[l], lower.map_or(0.0, |w| w[l]))),
                );
            }
        }
        let (int8, int8_step, int8_offset) = int8_panels(&data, rows);
        Self {
            rows,
            cols,
            data: CacheAligned::from_slice(&data),
            bf16: CacheAligned::from_slice(&bf16),
            int8: CacheAligned::from_slice(&int8),
            int8_step,
            int8_offset,
        }
    }

    fn panels(&self) -> usize {
        self.cols.div_ceil(PANEL)
    }

    /// `out += x · W` for `x` of `rows` and `out` of `cols` floats;
    /// `spare` holds the 8-bit level's activations (a quarter of `rows`,
    /// rounded up).
    #[inline(always)]
    fn matvec_acc<const K: u8>(&self, x: &[f32], out: &mut [f32], spare: &mut [u32]) {
        debug_assert_eq!(x.len(), self.rows);
        debug_assert_eq!(out.len(), self.cols);
        // The 8-bit levels quantise the activations once for all panels
        // (their products too large for the integer sums run on bfloat16
        // or f32).
        let int8 = (K == WIDE_INT8 || K == FUSED_INT8) && self.rows <= crate::kernels::MAX_INT8_ROWS;
        let quads = &mut spare[..if int8 { self.rows.div_ceil(4) } else { 0 }];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: level WIDE_INT8 runs only in functions the CPU was checked
        // to support AVX-512F, BW and VNNI for, FUSED_INT8 in ones checked
        // for AVX2; `quads` holds the rows.
        let step = match (int8, K) {
            (false, _) => 0.0,
            (true, WIDE_INT8) => unsafe { crate::kernels::quantise_activations(x, quads) },
            (true, _) => unsafe { crate::kernels::quantise_activations_signed(x, quads) },
        };
        #[cfg(not(target_arch = "x86_64"))]
        let step = 0.0;
        let quads = &*quads;
        for p in 0..self.panels() {
            let start = p * PANEL;
            if let Some(o) = out.get_mut(start..start + PANEL) {
                // Fixed size: the sums move straight into registers, with no
                // copy through a temporary.
                let full: &mut [f32; PANEL] = o.try_into().expect("PANEL long");
                *full = self.panel_with::<K>(p, x, (quads, step), *full);
            } else {
                let width = self.cols - start;
                let mut acc = [0.0f32; PANEL];
                acc[..width].copy_from_slice(&out[start..]);
                let acc = self.panel_with::<K>(p, x, (quads, step), acc);
                out[start..].copy_from_slice(&acc[..width]);
            }
        }
    }

    /// `acc + x · panel p` on the 8-bit panels, `x` quantised to `quads`
    /// with levels `step` apart: the exact integer sums (less the
    /// activations' offset, on AVX-512 VNNI), scaled back to f32.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn int8_panel<const K: u8>(&self, p: usize, quads: &[u32], step: f32, acc: [f32; PANEL]) -> [f32; PANEL] {
        let len = quads.len() * PANEL;
        let panel = &self.int8[p * len..][..len];
        // SAFETY: as in `matvec_acc`; the panel holds `quads.len() * PANEL`.
        let sums = unsafe {
            if K == WIDE_INT8 {
                let sums = crate::kernels::panel_product_avx512_int8(quads, panel, [0; PANEL]);
                let offsets = &self.int8_offset[p * PANEL..][..PANEL];
                std::array::from_fn(|l| sums[l] - offsets[l])
            } else {
                crate::kernels::panel_product_avx2_int8(quads, panel, [0; PANEL])
            }
        };
        let steps: &[f32; PANEL] = self.int8_step[p * PANEL..][..PANEL]
            .try_into()
            .expect("PANEL long");
        std::array::from_fn(|l| acc[l] + step * steps[l] * sums[l] as f32)
    }

    /// `acc + x · panel p` with the level's kernel and weight format; the
    /// 8-bit level takes `x` quantised (the quads and their step; no quads
    /// where the product runs on bfloat16).
    #[inline(always)]
    fn panel_with<const K: u8>(
        &self,
        p: usize,
        x: &[f32],
        quantised: (&[u32], f32),
        acc: [f32; PANEL],
    ) -> [f32; PANEL] {
        let f32_panel = &self.data[p * self.rows * PANEL..][..self.rows * PANEL];
        #[cfg(not(target_arch = "x86_64"))]
        let _ = quantised;
        #[cfg(target_arch = "x86_64")]
        {
            if (K == WIDE_INT8 || K == FUSED_INT8) && !quantised.0.is_empty() {
                return self.int8_panel::<K>(p, quantised.0, quantised.1, acc);
            }
            // SAFETY: levels WIDE, WIDE_BF16 and WIDE_INT8 run only in
            // functions the CPU was checked to support AVX-512F for (see
            // `Kernels::available`); the panels have the sizes the kernels
            // read.
            if K == WIDE {
                return unsafe { crate::kernels::panel_product_avx512(x, f32_panel, acc) };
            }
            // The 8-bit level's products too large for its integer sums.
            if K == WIDE_BF16 || K == WIDE_INT8 {
                let len = self.rows.div_ceil(2) * PANEL;
                let panel = &self.bf16[p * len..][..len];
                return unsafe { crate::kernels::panel_product_avx512_bf16(x, panel, acc) };
            }
        }
        panel_product::<K>(x, f32_panel, acc)
    }
}

#[inline(always)]
fn fmadd<const K: u8>(a: f32, b: f32, c: f32) -> f32 {
    if K >= FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `acc + x · panel` for one panel. Two input rows go through separate sums
/// so consecutive multiply-adds do not wait on each other's latency.
#[inline(always)]
fn panel_product<const K: u8>(x: &[f32], panel: &[f32], acc: [f32; PANEL]) -> [f32; PANEL] {
    let mut a0 = acc;
    let mut a1 = [0.0f32; PANEL];
    let mut rows = panel.chunks_exact(2 * PANEL);
    let mut xs = x.chunks_exact(2);
    for (w, x2) in (&mut rows).zip(&mut xs) {
        // Fixed-size views let the compiler drop bounds checks and unroll.
        let w: &[f32; 2 * PANEL] = w.try_into().expect("chunks are exact");
        let (x0, x1) = (x2[0], x2[1]);
        for l in 0..PANEL {
            a0[l] = fmadd::<K>(x0, w[l], a0[l]);
            a1[l] = fmadd::<K>(x1, w[PANEL + l], a1[l]);
        }
    }
    if let (&[x0], w) = (xs.remainder(), rows.remainder()) {
        for l in 0..PANEL.min(w.len()) {
            a0[l] = fmadd::<K>(x0, w[l], a0[l]);
        }
    }
    for l in 0..PANEL {
        a0[l] += a1[l];
    }
    a0
}

/// The 8-bit panels of f32 panels of `rows` rows (see [`Packed::int8`]):
/// each column's weights rounded to the nearest of 255 levels spanning its
/// largest magnitude; with each column's step and offset.
fn int8_panels(data: &[f32], rows: usize) -> (Vec<u32>, Vec<f32>, Vec<i32>) {
    let quads = rows.div_ceil(4);
    let (mut int8, mut steps, mut offsets) = (Vec::new(), Vec::new(), Vec::new());
    for panel in data.chunks_exact(rows * PANEL) {
        let column = |l: usize| (0..rows).map(move |r| panel[r * PANEL + l]);
        let step: [f32; PANEL] =
            std::array::from_fn(|l| column(l).fold(0.0f32, |m, w| m.max(w.abs())) / 127.0);
        let level = |r: usize, l: usize| match panel.get(r * PANEL + l) {
            Some(&w) if step[l] > 0.0 => (w / step[l]).round().clamp(-127.0, 127.0) as i8,
            _ => 0,
        };
        for q in 0..quads {
            int8.extend(
                (0..PANEL).map(|l| crate::kernels::int8_quad(std::array::from_fn(|j| level(4 * q + j, l)))),
            );
        }
        steps.extend(step);
        offsets.extend((0..PANEL).map(|l| 128 * (0..rows).map(|r| i32::from(level(r, l))).sum::<i32>()));
    }
    (int8, steps, offsets)
}

/// The most input rows any of the network's products has.
fn most_rows(c: &WavenetConfig) -> usize {
    let d = c.dilation_channels;
    (2 * c.residual_channels)
        .max(d)
        .max(c.num_layers() * d)
        .max(c.skip_channels)
}

/// `e^x` to about 1e-7 relative error, branch-free so loops over it
/// vectorise (the library `exp` is a scalar call). Inputs are clamped to
/// [-87, 88], where the result stays a normal finite float.
#[inline(always)]
fn exp_approx<const K: u8>(x: f32) -> f32 {
    // Adding 1.5 * 2^23 rounds to an integer and leaves it in the low
    // mantissa bits, which become the exponent of 2^k below.
    const ROUND: f32 = 12_582_912.0;
    // 355 / 512 has few mantissa bits, so k * LN2_HI is exact.
    const LN2_HI: f32 = 355.0 / 512.0;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let t = fmadd::<K>(x, std::f32::consts::LOG2_E, ROUND);
    let k = t - ROUND;
    // x - k ln2 in two parts (Cody-Waite) so the reduction stays exact.
    let r = fmadd::<K>(k, -LN2_HI, x);
    let r = fmadd::<K>(k, -LN2_LO, r);
    // Taylor series to r^7: |r| <= ln2 / 2 keeps the truncation below 1e-8.
    let mut p = 1.0 / 5040.0;
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = fmadd::<K>(p, r, c);
    }
    let k_int = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    p * f32::from_bits(((k_int + 127) << 23) as u32)
}

/// The gated activation `tanh(filter) * sigmoid(gate)` of `z = [filter,
/// gate]`, written to `a`.
#[inline(always)]
fn gate<const K: u8>(z: &[f32], a: &mut [f32]) {
    let (filter, gate) = z.split_at(a.len());
    for ((a, &f), &g) in a.iter_mut().zip(filter).zip(gate) {
        let e2f = exp_approx::<K>(2.0 * f);
        let eg = exp_approx::<K>(-g);
        *a = (1.0 - 2.0 / (e2f + 1.0)) / (1.0 + eg);
    }
}

/// Lanes of the vectorised reductions in [`draw`].
const LANES: usize = 8;

/// Draws a class from `softmax(logits / temperature)`, using `probs` (as
/// long as `logits`) as scratch, after taking `floor` of the total from
/// every probability (0: none). A temperature of 0 (or negative, or NaN)
/// takes the most likely class.
#[inline(always)]
fn draw<const K: u8, R: Rng>(
    logits: &[f32],
    temperature: f32,
    floor: f32,
    probs: &mut [f32],
    rng: &mut R,
) -> usize {
    // Reductions run in LANES independent lanes so they vectorise; a single
    // running max or sum would be a serial chain of dependent operations.
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = logits.chunks_exact(LANES);
    for ch in &mut chunks {
        for k in 0..LANES {
            lanes[k] = lanes[k].max(ch[k]);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let argmax = || logits.iter().position(|&l| l == max).unwrap_or(0);
    let inv_t = 1.0 / temperature;
    // NaN, zero, negative or vanishingly small temperatures all mean "no
    // randomness".
    if !(temperature > 0.0 && inv_t.is_finite() && max.is_finite()) {
        return argmax();
    }
    for (p, &l) in probs.iter_mut().zip(logits) {
        *p = exp_approx::<K>((l - max) * inv_t);
    }
    let mut lanes = [0.0f32; LANES];
    let mut chunks = probs.chunks_exact(LANES);
    for ch in &mut chunks {
        for k in 0..LANES {
            lanes[k] += ch[k];
        }
    }
    let mut sum: f32 = chunks.remainder().iter().chain(&lanes).sum();
    if floor > 0.0 {
        // The most likely class holds at least 1/len of the total, more
        // than any floor below that, so something always survives.
        let cut = floor * sum;
        probs.iter_mut().for_each(|p| *p = (*p - cut).max(0.0));
        sum = probs.iter().sum();
    }
    let mut u = rng.random::<f32>() * sum;
    // Skip whole chunks first: their sums are independent of each other.
    for (c, ch) in probs.chunks(LANES).enumerate() {
        let in_chunk: f32 = ch.iter().sum();
        if u < in_chunk {
            for (i, &p) in ch.iter().enumerate() {
                if u < p {
                    return c * LANES + i;
                }
                u -= p;
            }
            // Rounding inside the chunk: its last class is the nearest.
            return c * LANES + ch.len() - 1;
        }
        u -= in_chunk;
    }
    // Rounding in the sums can leave u just above the total; the most
    // likely class is then as good as any.
    argmax()
}

/// Draws a class from `softmax(logits / temperature)`; `scratch` is
/// overwritten. A temperature of 0 (or below, or NaN) returns the arg-max.
/// Never allocates.
///
/// # Panics
///
/// If `scratch` is shorter than `logits`.
pub fn sample_class<R: Rng>(logits: &[f32], temperature: f32, scratch: &mut [f32], rng: &mut R) -> usize {
    sample_class_above_floor(logits, temperature, 0.0, scratch, rng)
}

/// [`sample_class`], after taking `floor` of the total probability from
/// every class's (those below it are never drawn). Never allocates.
///
/// # Panics
///
/// If `scratch` is shorter than `logits`.
pub fn sample_class_above_floor<R: Rng>(
    logits: &[f32],
    temperature: f32,
    floor: f32,
    scratch: &mut [f32],
    rng: &mut R,
) -> usize {
    let probs = &mut scratch[..logits.len()];
    draw::<PORTABLE, R>(logits, temperature, floor, probs, rng)
}

#[cfg(target_arch = "x86_64")]
fn detect_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_fma() -> bool {
    false
}

/// One layer's weights, packed.
#[derive(Debug, Clone)]
struct LayerWeights {
    dilation: usize,
    /// `[2r, 2d]`: past-input rows, then current-input rows.
    filter_gate: Packed,
    filter_gate_b: Vec<f32>,
    residual: Option<(Packed, Vec<f32>)>,
}

impl LayerWeights {
    /// The gated activation `a` of the layer for the inputs `x2 = [past,
    /// current]`, with `z` as scratch.
    #[inline(always)]
    fn activate<const K: u8>(&self, x2: &[f32], z: &mut [f32], a: &mut [f32], spare: &mut [u32]) {
        z.copy_from_slice(&self.filter_gate_b);
        self.filter_gate.matvec_acc::<K>(x2, z, spare);
        gate::<K>(z, a);
    }
}

/// The whole network's weights in sampler layout, shared by [`Sampler`] and
/// [`NaiveSampler`].
#[derive(Debug, Clone)]
struct Weights {
    meta: ModelMeta,
    config: WavenetConfig,
    embedding: Vec<f32>,
    /// One `[classes, residual]` table per prediction input.
    prediction_embeddings: Vec<Vec<f32>>,
    layers: Vec<LayerWeights>,
    /// Every layer's skip weights stacked, `[layers * d, s]`: the summed
    /// skip outputs are one product with all layers' activations side by
    /// side, one long pass instead of a short one per layer.
    skip: Packed,
    /// The sum of every layer's skip bias: adding it once is the same sum.
    skip_bias: Vec<f32>,
    head1: Packed,
    head1_b: Vec<f32>,
    head2: Packed,
    head2_b: Vec<f32>,
    mulaw: MuLaw,
}

impl Weights {
    /// Checks kind, config and tensors as [`WavenetModel::from_raw`] does
    /// (through the same walk over the tensors), then packs the weights.
    fn from_raw(raw: &RawModel) -> Result<Self, ModelFileError> {
        let config = raw.config::<WavenetNet>()?;
        let (d, s, c) = (config.dilation_channels, config.skip_channels, config.classes);
        let shapes = config.shapes();
        let net = shapes
            .try_map(|name, role, shape| raw.data(name, role, shape).map(|data| (data, shape.as_slice())))?;
        let packed = |(w, shape): (&[f32], &[usize])| Packed::new(w, shape[0], shape[1]);
        let mut skip_bias = vec![0.0; s];
        let mut skip = Vec::with_capacity(config.num_layers() * d * s);
        let mut layers = Vec::with_capacity(config.num_layers());
        for l in &net.layers {
            for (acc, b) in skip_bias.iter_mut().zip(l.skip_b.0) {
                *acc += b;
            }
            skip.extend_from_slice(l.skip_w.0);
            layers.push(LayerWeights {
                dilation: l.dilation,
                filter_gate: packed(l.filter_gate_w),
                filter_gate_b: l.filter_gate_b.0.to_vec(),
                residual: l.residual.map(|(w, b)| (packed(w), b.0.to_vec())),
            });
        }
        let mulaw = MuLaw::new(c)
            .ok_or_else(|| ModelFileError::InvalidConfig(format!("{c} classes cannot be µ-law levels")))?;
        Ok(Self {
            meta: raw.meta.clone(),
            embedding: net.embedding.0.to_vec(),
            prediction_embeddings: net.prediction_embeddings.iter().map(|e| e.0.to_vec()).collect(),
            skip: Packed::new(&skip, layers.len() * d, s),
            layers,
            skip_bias,
            head1: packed(net.head1_w),
            head1_b: net.head1_b.0.to_vec(),
            head2: packed(net.head2_w),
            head2_b: net.head2_b.0.to_vec(),
            mulaw,
            config,
        })
    }

    fn embedding_row<'a>(&self, table: &'a [f32], class: usize) -> &'a [f32] {
        let r = self.config.residual_channels;
        let class = class.min(self.config.classes - 1);
        &table[class * r..(class + 1) * r]
    }

    /// The first layer's input for `class` and the prediction classes that
    /// go with it: the sum of their embeddings, written to `out`.
    #[inline(always)]
    fn input_row(&self, class: usize, predictions: &[usize], out: &mut [f32]) {
        out.copy_from_slice(self.embedding_row(&self.embedding, class));
        for (table, &p) in self.prediction_embeddings.iter().zip(predictions) {
            for (o, &e) in out.iter_mut().zip(self.embedding_row(table, p)) {
                *o += e;
            }
        }
    }

    /// The running prediction inputs the model needs, if any.
    fn prediction_inputs(&self) -> Result<Option<PredictionInputs>, ModelFileError> {
        PredictionInputs::of_model(&self.config, self.mulaw)
            .map_err(|e| ModelFileError::InvalidConfig(e.to_string()))
    }

    /// Logits from every layer's gated activations `acts`: summed skip
    /// outputs, then ReLU, 1x1, ReLU, 1x1.
    #[inline(always)]
    fn head<const K: u8>(&self, s: &mut Scratch) {
        let (acts, skip, hidden, logits, spare) =
            (&s.acts, &mut s.skip, &mut s.hidden, &mut s.logits, &mut s.spare);
        skip.copy_from_slice(&self.skip_bias);
        self.skip.matvec_acc::<K>(acts, skip, spare);
        for v in skip.iter_mut() {
            *v = v.max(0.0);
        }
        hidden.copy_from_slice(&self.head1_b);
        self.head1.matvec_acc::<K>(skip, hidden, spare);
        for v in hidden.iter_mut() {
            *v = v.max(0.0);
        }
        logits.copy_from_slice(&self.head2_b);
        self.head2.matvec_acc::<K>(hidden, logits, spare);
    }
}

/// Scratch activations of one step.
#[derive(Debug, Clone)]
struct Scratch {
    /// `[past input, current input]` of the layer being computed.
    x2: Vec<f32>,
    z: Vec<f32>,
    /// Every layer's gated activation, layer after layer.
    acts: Vec<f32>,
    /// One gated activation (the naive sampler's older rows).
    a: Vec<f32>,
    skip: Vec<f32>,
    hidden: Vec<f32>,
    logits: Vec<f32>,
    /// The logits shaped by the tone prior (unused without one).
    shaped: Vec<f32>,
    probs: Vec<f32>,
    /// The 8-bit level's activations of one product, four rows a value.
    spare: Vec<u32>,
}

impl Scratch {
    /// The logits drawn and scored from: shaped when the model has a tone
    /// prior.
    fn distribution(&self, shaped: bool) -> &[f32] {
        if shaped {
            &self.shaped
        } else {
            &self.logits
        }
    }

    /// [`distribution`](Self::distribution) and the probabilities' scratch
    /// a draw from it writes.
    fn draw_buffers(&mut self, shaped: bool) -> (&[f32], &mut [f32]) {
        let logits = if shaped { &self.shaped } else { &self.logits };
        (logits, &mut self.probs)
    }

    fn new(c: &WavenetConfig) -> Self {
        Self {
            x2: vec![0.0; 2 * c.residual_channels],
            z: vec![0.0; 2 * c.dilation_channels],
            acts: vec![0.0; c.num_layers() * c.dilation_channels],
            a: vec![0.0; c.dilation_channels],
            skip: vec![0.0; c.skip_channels],
            hidden: vec![0.0; c.skip_channels],
            logits: vec![0.0; c.classes],
            shaped: vec![0.0; c.classes],
            probs: vec![0.0; c.classes],
            spare: vec![0; most_rows(c).div_ceil(4)],
        }
    }
}

/// The cached (Fast WaveNet) sampler. Build it once, outside the real-time
/// path; then [`step`](Self::step), [`sample_next`](Self::sample_next),
/// [`prime`](Self::prime) and [`reset`](Self::reset) never allocate.
#[derive(Debug, Clone)]
pub struct Sampler {
    w: Weights,
    /// Every layer's queue of its last `dilation` inputs, back to back.
    queues: Vec<f32>,
    /// Where each layer's queue starts in `queues`.
    queue_start: Vec<usize>,
    /// Each layer's oldest entry (the input `dilation` steps back), which is
    /// also where the current input goes.
    queue_pos: Vec<usize>,
    scratch: Scratch,
    /// The predictor behind the model's prediction inputs, if it has them.
    inputs: Option<PredictionInputs>,
    /// How audio becomes the model's classes and back.
    coding: SignalCoding,
    /// The input class fed last.
    last_input: usize,
    /// Tone-aware sampling, if the model asks for it; it hears every input.
    tone: Option<ToneAwareSampler>,
    /// The predictor as a prior on the next sample, if the model has one;
    /// it hears every input.
    prior: Option<TonePrior>,
    /// Whether any input has been fed since the last reset.
    fed: bool,
    kernels: Kernels,
}

/// The tone prior `w`'s config asks for, from silence.
fn tone_prior(w: &Weights) -> Result<Option<TonePrior>, ModelFileError> {
    w.config
        .tone_prior
        .map(|p| TonePrior::new(p, w.meta.sample_rate, w.mulaw))
        .transpose()
        .map_err(|e| ModelFileError::InvalidConfig(e.to_string()))
}

impl Sampler {
    /// Builds a sampler from a parsed model file, checking kind, config and
    /// tensor shapes as [`WavenetModel::from_raw`] does.
    pub fn from_raw(raw: &RawModel) -> Result<Self, ModelFileError> {
        let w = Weights::from_raw(raw)?;
        let r = w.config.residual_channels;
        let mut queue_start = Vec::with_capacity(w.layers.len());
        let mut total = 0;
        for l in &w.layers {
            queue_start.push(total);
            total += l.dilation * r;
        }
        Ok(Self {
            queues: vec![0.0; total],
            queue_pos: vec![0; w.layers.len()],
            queue_start,
            scratch: Scratch::new(&w.config),
            inputs: w.prediction_inputs()?,
            coding: SignalCoding::new(&w.config, w.mulaw),
            last_input: 0,
            tone: w
                .config
                .tone_aware
                .then(|| ToneAwareSampler::new(w.meta.sample_rate, w.config.classes))
                .transpose()
                .map_err(|e| ModelFileError::InvalidConfig(e.to_string()))?,
            prior: tone_prior(&w)?,
            fed: false,
            kernels: Kernels::best(),
            w,
        })
    }

    /// Builds a sampler from model file bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelFileError> {
        Self::from_raw(&RawModel::from_bytes(bytes)?)
    }

    /// Loads a sampler from a model file on disk.
    pub fn load(path: &Path) -> Result<Self, ModelFileError> {
        Self::from_raw(&RawModel::read(path)?)
    }

    /// Builds a sampler from a candle model in memory (copies its weights).
    pub fn from_model(model: &WavenetModel) -> Result<Self, ModelFileError> {
        Self::from_raw(&model.to_raw()?)
    }

    /// The model's metadata (name, sample rate, training summary).
    pub fn meta(&self) -> &ModelMeta {
        &self.w.meta
    }

    /// The architecture.
    pub fn config(&self) -> &WavenetConfig {
        &self.w.config
    }

    /// The rate the model generates at, in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.w.meta.sample_rate
    }

    /// Samples of context each prediction sees; priming with more than this
    /// changes nothing.
    pub fn receptive_field(&self) -> usize {
        self.w.config.receptive_field()
    }

    /// The µ-law quantiser of the model's classes.
    pub fn mulaw(&self) -> MuLaw {
        self.w.mulaw
    }

    /// The build of the kernels the steps run (the best the CPU supports,
    /// unless [`use_kernels`](Self::use_kernels) chose another).
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Runs `kernels` (for tests and benchmarks comparing them); false,
    /// and nothing changes, if this CPU cannot run them.
    pub fn use_kernels(&mut self, kernels: Kernels) -> bool {
        let ok = kernels.available();
        if ok {
            self.kernels = kernels;
        }
        ok
    }

    /// Forgets all context, as if nothing had been fed.
    pub fn reset(&mut self) {
        self.queues.fill(0.0);
        self.queue_pos.fill(0);
        self.scratch.logits.fill(0.0);
        if let Some(p) = &mut self.inputs {
            p.reset();
        }
        self.coding.reset();
        if let Some(t) = &mut self.tone {
            t.reset();
        }
        if let Some(p) = &mut self.prior {
            p.reset();
        }
        self.fed = false;
    }

    /// Logits of the next sample's class, as left by the last step (zeros
    /// before any input): the network's own, before any tone prior.
    pub fn logits(&self) -> &[f32] {
        &self.scratch.logits
    }

    /// The logits the next sample is drawn and scored from: the network's
    /// shaped by the model's tone prior ([`crate::tone_prior`]), or the
    /// network's own without one.
    pub fn distribution(&self) -> &[f32] {
        self.scratch.distribution(self.prior.is_some())
    }

    /// Replaces the model's tone prior (`None`: none), for trying one on a
    /// model without it. The new prior starts from silence: set it before
    /// priming, since it must hear the audio it shapes.
    pub fn set_tone_prior(
        &mut self,
        prior: Option<crate::tone_prior::TonePriorConfig>,
    ) -> Result<(), ModelFileError> {
        let mut config = self.w.config.clone();
        config.tone_prior = prior;
        config.validate().map_err(ModelFileError::InvalidConfig)?;
        let previous = std::mem::replace(&mut self.w.config, config);
        match tone_prior(&self.w) {
            Ok(p) => {
                self.prior = p;
                Ok(())
            }
            Err(e) => {
                self.w.config = previous;
                Err(e)
            }
        }
    }

    /// Feeds one input class (clamped to the class range) and returns the
    /// logits of the class of the sample that follows it.
    pub fn step(&mut self, input_class: usize) -> &[f32] {
        self.dispatch(input_class, true);
        &self.scratch.logits
    }

    /// Teacher-forces the queues with existing audio (coded here as the
    /// model codes it: µ-law, after pre-emphasis if it has that), without
    /// sampling; afterwards [`logits`](Self::logits) and
    /// [`sample_next`](Self::sample_next) continue from its end. Only the
    /// last receptive field of `audio` goes through the network.
    pub fn prime(&mut self, audio: &[f32]) {
        self.prime_with(audio.len(), |coding, i| coding.input_class(audio[i]));
    }

    /// [`prime`](Self::prime) with input classes instead of audio.
    pub fn prime_classes(&mut self, classes: &[usize]) {
        self.prime_with(classes.len(), |_, i| classes[i]);
    }

    /// Primes with `n` input classes, the `i`-th from `class(coding, i)`.
    fn prime_with(&mut self, n: usize, mut class: impl FnMut(&mut SignalCoding, usize) -> usize) {
        // No later output depends on anything before the last receptive
        // field of the priming input (not even on the current state): every
        // cached value a later step reads lies inside that window and is
        // computed from it alone. So older input is skipped, which makes
        // priming with a long file cost one receptive field.
        // The predictor behind prediction inputs is the exception: it
        // hears all of it (at a small fraction of a network step each).
        // So are the signal coding's filters.
        let skip = n.saturating_sub(self.receptive_field());
        for i in 0..n {
            let c = class(&mut self.coding, i);
            if i < skip {
                if let Some(p) = &mut self.inputs {
                    p.push(c);
                }
                let audio = self.coding.fed(c);
                if let Some(t) = &mut self.tone {
                    t.push(audio);
                }
                if let Some(p) = &mut self.prior {
                    p.push(audio);
                }
                continue;
            }
            // Only the last input's prediction is ever read, so the skip
            // path and head are skipped for the others.
            self.dispatch(c, i + 1 == n);
        }
    }

    /// Draws the next sample at `temperature` (0 = always the most likely
    /// class), the tone-aware way if the model says so, feeds it back, and
    /// returns its audio value in [-1, 1]. Before any input the model is
    /// first fed one sample of silence.
    pub fn sample_next<R: Rng>(&mut self, temperature: f32, rng: &mut R) -> f32 {
        self.feed_silence_first();
        let target = match &mut self.tone {
            Some(t) => t.draw(self.scratch.distribution(self.prior.is_some()), temperature, rng),
            None => self.draw(temperature, rng),
        };
        self.feed_target(target)
    }

    /// Whether [`sample_next`](Self::sample_next) samples the tone-aware
    /// way (the model's option).
    pub fn is_tone_aware(&self) -> bool {
        self.tone.is_some()
    }

    /// Feeds the input class a drawn output class makes (see
    /// [`crate::signal_coding`]); returns the audio it makes.
    fn feed_target(&mut self, target: usize) -> f32 {
        let drawn = self.coding.input_from_target(target, self.prediction());
        let class = self.coding.feedback_class(drawn);
        self.dispatch(class, true);
        self.coding.audio()
    }

    /// The predictor's prediction of the next sample (0 without one).
    fn prediction(&self) -> f32 {
        self.inputs.as_ref().map_or(0.0, PredictionInputs::prediction)
    }

    /// `-ln p` of the µ-law cell (of the model's classes) that the next
    /// audio sample `x` falls in, under the current logits, whatever the
    /// model's coding: comparable across models with and without
    /// pre-emphasis or a residual target
    /// ([`SignalCoding::signal_nll`]). Never allocates.
    pub fn signal_nll(&self, x: f32) -> f32 {
        self.coding.signal_nll(self.distribution(), x, self.prediction())
    }

    /// The input class the network heard last: with a signal coding, the
    /// class a drawn output made ([`crate::signal_coding`]).
    pub fn last_input_class(&self) -> usize {
        self.last_input
    }

    /// Feeds the next audio sample, coded as the model codes it; returns
    /// the logits of the sample after it.
    pub fn feed_audio(&mut self, x: f32) -> &[f32] {
        let class = self.coding.input_class(x);
        self.step(class)
    }

    /// [`sample_next`](Self::sample_next) with the class chosen by `draw`
    /// from the logits (a sampling rule of the caller's, such as
    /// [`crate::tone_sampling`]'s).
    pub fn sample_next_with(&mut self, draw: impl FnOnce(&[f32]) -> usize) -> f32 {
        self.feed_silence_first();
        let target = draw(self.distribution()).min(self.w.config.classes - 1);
        self.feed_target(target)
    }

    /// Before any input the model hears one sample of silence, so that
    /// there are logits to draw from.
    fn feed_silence_first(&mut self) {
        if !self.fed {
            let silence = self.w.mulaw.encode(0.0);
            self.dispatch(silence, true);
        }
    }

    /// Generates `out.len()` samples into `out` with [`sample_next`](Self::sample_next).
    pub fn generate_into<R: Rng>(&mut self, out: &mut [f32], temperature: f32, rng: &mut R) {
        for v in out.iter_mut() {
            *v = self.sample_next(temperature, rng);
        }
    }

    /// Generates `n` samples (allocates the returned vector).
    pub fn generate<R: Rng>(&mut self, n: usize, temperature: f32, rng: &mut R) -> Vec<f32> {
        let mut out = vec![0.0; n];
        self.generate_into(&mut out, temperature, rng);
        out
    }

    fn draw<R: Rng>(&mut self, temperature: f32, rng: &mut R) -> usize {
        #[cfg(target_arch = "x86_64")]
        if self.kernels != Kernels::Portable {
            // SAFETY: a SIMD build is only chosen when the CPU reports AVX2
            // and FMA (`Kernels::available`).
            return unsafe { self.draw_fma(temperature, rng) };
        }
        let (logits, probs) = self.scratch.draw_buffers(self.prior.is_some());
        draw::<PORTABLE, R>(logits, temperature, 0.0, probs, rng)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn draw_fma<R: Rng>(&mut self, temperature: f32, rng: &mut R) -> usize {
        let (logits, probs) = self.scratch.draw_buffers(self.prior.is_some());
        draw::<FUSED, R>(logits, temperature, 0.0, probs, rng)
    }

    /// Feeds one input class through the network (the head only if
    /// `output`), and the tone prior's shaping after it.
    fn dispatch(&mut self, class: usize, output: bool) {
        self.run_network(class, output);
        if output {
            if let Some(p) = &mut self.prior {
                p.shape(&self.scratch.logits, &mut self.scratch.shaped);
            }
        }
    }

    fn run_network(&mut self, class: usize, output: bool) {
        self.fed = true;
        self.last_input = class;
        let audio = self.coding.fed(class);
        if let Some(t) = &mut self.tone {
            t.push(audio);
        }
        if let Some(p) = &mut self.prior {
            p.push(audio);
        }
        if let Some(p) = &mut self.inputs {
            p.push(class);
        }
        // SAFETY: a build is only chosen when the CPU reports what it needs
        // (`Kernels::available`).
        #[cfg(target_arch = "x86_64")]
        match self.kernels {
            Kernels::Avx512 => return unsafe { self.step_avx512(class, output) },
            Kernels::Avx512Bf16 => return unsafe { self.step_avx512_bf16(class, output) },
            Kernels::Avx512Int8 => return unsafe { self.step_avx512_int8(class, output) },
            Kernels::Avx2 => return unsafe { self.step_fma(class, output) },
            Kernels::Avx2Int8 => return unsafe { self.step_fma_int8(class, output) },
            Kernels::Portable => {}
        }
        self.step_impl::<PORTABLE>(class, output);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn step_fma(&mut self, class: usize, output: bool) {
        self.step_impl::<FUSED>(class, output);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn step_fma_int8(&mut self, class: usize, output: bool) {
        self.step_impl::<FUSED_INT8>(class, output);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn step_avx512(&mut self, class: usize, output: bool) {
        self.step_impl::<WIDE>(class, output);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn step_avx512_bf16(&mut self, class: usize, output: bool) {
        self.step_impl::<WIDE_BF16>(class, output);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
    unsafe fn step_avx512_int8(&mut self, class: usize, output: bool) {
        self.step_impl::<WIDE_INT8>(class, output);
    }

    /// One pass through the layers. With `output` false only the residual
    /// stream and the queues advance (teacher forcing).
    #[inline(always)]
    fn step_impl<const K: u8>(&mut self, class: usize, output: bool) {
        let w = &self.w;
        let s = &mut self.scratch;
        let r = w.config.residual_channels;
        let d = w.config.dilation_channels;
        let predictions = self.inputs.as_ref().map_or(&[][..], |p| p.classes());
        w.input_row(class, predictions, &mut s.x2[r..]);
        for (i, layer) in w.layers.iter().enumerate() {
            // The oldest queue entry is the input `dilation` steps back; the
            // current input takes its place.
            let pos = self.queue_pos[i];
            let slot = self.queue_start[i] + pos * r;
            let entry = &mut self.queues[slot..slot + r];
            let (past, now) = s.x2.split_at_mut(r);
            past.copy_from_slice(entry);
            entry.copy_from_slice(now);
            self.queue_pos[i] = if pos + 1 == layer.dilation { 0 } else { pos + 1 };

            let a = &mut s.acts[i * d..(i + 1) * d];
            layer.activate::<K>(&s.x2, &mut s.z, a, &mut s.spare);
            if let Some((res, bias)) = &layer.residual {
                let now = &mut s.x2[r..];
                for (h, b) in now.iter_mut().zip(bias) {
                    *h += b;
                }
                res.matvec_acc::<K>(a, now, &mut s.spare);
            }
        }
        if output {
            w.head::<K>(s);
        }
    }
}

/// The prediction classes `inputs` gives now, in a fixed-size array.
fn current(inputs: &PredictionInputs) -> [usize; MAX_INPUTS] {
    let mut out = [0; MAX_INPUTS];
    out[..inputs.count()].copy_from_slice(inputs.classes());
    out
}

/// The reference generator: for every sample it recomputes each layer over
/// the whole receptive field (the window of the last `receptive_field`
/// inputs), as a convolutional network without caches would. Same weights
/// layout and kernels as [`Sampler`], so the two differ only in the
/// algorithm. Never allocates after construction.
#[derive(Debug, Clone)]
pub struct NaiveSampler {
    w: Weights,
    /// The last `receptive_field` input classes, oldest first.
    history: Vec<usize>,
    /// The prediction classes that went with each of them.
    predicted: Vec<[usize; MAX_INPUTS]>,
    /// The predictor behind them, if the model has prediction inputs.
    inputs: Option<PredictionInputs>,
    /// Inputs fed since the last reset (saturating at the receptive field).
    seen: usize,
    /// Each window position's layer input, `[receptive_field, residual]`.
    window: Vec<f32>,
    /// For each layer, how many samples before the newest its output is
    /// still needed: the sum of the later layers' dilations.
    reach: Vec<usize>,
    scratch: Scratch,
    kernels: Kernels,
}

impl NaiveSampler {
    /// Builds the reference generator from a parsed model file.
    pub fn from_raw(raw: &RawModel) -> Result<Self, ModelFileError> {
        let w = Weights::from_raw(raw)?;
        let rf = w.config.receptive_field();
        let mut reach = vec![0; w.layers.len()];
        let mut later = 0;
        for (i, l) in w.layers.iter().enumerate().rev() {
            reach[i] = later;
            later += l.dilation;
        }
        Ok(Self {
            history: vec![0; rf],
            predicted: vec![[0; MAX_INPUTS]; rf],
            inputs: w.prediction_inputs()?,
            seen: 0,
            window: vec![0.0; rf * w.config.residual_channels],
            reach,
            scratch: Scratch::new(&w.config),
            kernels: Kernels::best(),
            w,
        })
    }

    /// Builds the reference generator from a candle model in memory.
    pub fn from_model(model: &WavenetModel) -> Result<Self, ModelFileError> {
        Self::from_raw(&model.to_raw()?)
    }

    /// Samples of context each prediction sees.
    pub fn receptive_field(&self) -> usize {
        self.w.config.receptive_field()
    }

    /// Forgets all context.
    pub fn reset(&mut self) {
        self.seen = 0;
        self.scratch.logits.fill(0.0);
        if let Some(p) = &mut self.inputs {
            p.reset();
        }
    }

    /// Makes `classes` the context, as if they had been fed after a reset.
    /// Nothing is computed (the next step recomputes everything anyway),
    /// so this is cheap.
    pub fn prime_classes(&mut self, classes: &[usize]) {
        self.reset();
        let rf = self.history.len();
        let older = classes.len().saturating_sub(rf);
        // Only the predictor behind prediction inputs hears the older ones.
        if let Some(p) = &mut self.inputs {
            classes[..older].iter().for_each(|&c| p.push(c));
        }
        let recent = &classes[older..];
        let first = rf - recent.len();
        self.history[first..].copy_from_slice(recent);
        for (slot, &c) in self.predicted[first..].iter_mut().zip(recent) {
            *slot = self.inputs.as_mut().map_or([0; MAX_INPUTS], |p| {
                p.push(c);
                current(p)
            });
        }
        self.seen = recent.len();
    }

    /// Runs `kernels`; false, and nothing changes, if this CPU cannot.
    pub fn use_kernels(&mut self, kernels: Kernels) -> bool {
        let ok = kernels.available();
        if ok {
            self.kernels = kernels;
        }
        ok
    }

    /// Feeds one input class and returns the logits of the next sample's
    /// class, recomputing everything from the stored window.
    pub fn step(&mut self, input_class: usize) -> &[f32] {
        let rf = self.history.len();
        self.history.copy_within(1.., 0);
        self.history[rf - 1] = input_class;
        self.predicted.copy_within(1.., 0);
        self.predicted[rf - 1] = self.inputs.as_mut().map_or([0; MAX_INPUTS], |p| {
            p.push(input_class);
            current(p)
        });
        self.seen = (self.seen + 1).min(rf);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a build is only chosen when the CPU reports what it needs.
        match self.kernels {
            Kernels::Avx512 => unsafe { self.step_avx512() },
            Kernels::Avx512Bf16 => unsafe { self.step_avx512_bf16() },
            Kernels::Avx512Int8 => unsafe { self.step_avx512_int8() },
            Kernels::Avx2 => unsafe { self.step_fma() },
            Kernels::Avx2Int8 => unsafe { self.step_fma_int8() },
            Kernels::Portable => self.step_impl::<PORTABLE>(),
        }
        &self.scratch.logits
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn step_avx512(&mut self) {
        self.step_impl::<WIDE>();
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn step_avx512_bf16(&mut self) {
        self.step_impl::<WIDE_BF16>();
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
    unsafe fn step_avx512_int8(&mut self) {
        self.step_impl::<WIDE_INT8>();
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn step_fma(&mut self) {
        self.step_impl::<FUSED>();
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn step_fma_int8(&mut self) {
        self.step_impl::<FUSED_INT8>();
    }

    #[inline(always)]
    fn step_impl<const K: u8>(&mut self) {
        let w = &self.w;
        let s = &mut self.scratch;
        let r = w.config.residual_channels;
        let rf = self.history.len();
        // Window rows before the first input are causal padding: zero in
        // every layer, never computed.
        let first = rf - self.seen;
        self.window[..first * r].fill(0.0);
        for j in first..rf {
            let predictions = &self.predicted[j][..w.config.prediction_inputs()];
            w.input_row(self.history[j], predictions, &mut self.window[j * r..(j + 1) * r]);
        }
        let dc = w.config.dilation_channels;
        for (i, (layer, &reach)) in w.layers.iter().zip(&self.reach).enumerate() {
            let d = layer.dilation;
            let lo = (rf - 1 - reach).max(first);
            // Newest first, so row j - d still holds this layer's input
            // when row j reads it.
            for j in (lo..rf).rev() {
                let (past, now) = s.x2.split_at_mut(r);
                past.copy_from_slice(&self.window[(j - d) * r..(j - d + 1) * r]);
                now.copy_from_slice(&self.window[j * r..(j + 1) * r]);
                // Only the newest row's activation feeds the skip path.
                let a = if j == rf - 1 {
                    &mut s.acts[i * dc..(i + 1) * dc]
                } else {
                    &mut s.a[..]
                };
                layer.activate::<K>(&s.x2, &mut s.z, a, &mut s.spare);
                if let Some((res, bias)) = &layer.residual {
                    let row = &mut self.window[j * r..(j + 1) * r];
                    for (h, b) in row.iter_mut().zip(bias) {
                        *h += b;
                    }
                    res.matvec_acc::<K>(a, row, &mut s.spare);
                }
            }
        }
        w.head::<K>(s);
    }
}
