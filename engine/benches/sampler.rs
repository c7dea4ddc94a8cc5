//! WaveNet generation speed for the default model (20 layers, 32 residual,
//! 32 dilation, 128 skip channels, 256 classes) on one CPU core, in one run:
//!
//! - `cached_sampler`: the Fast WaveNet sampler drawing and feeding back
//!   samples with the fastest kernels this CPU runs (8-bit products with
//!   AVX-512 VNNI, bfloat16 weights with AVX-512 alone, 8-bit products with
//!   AVX2), and beside it with each other build: AVX-512 with f32 weights,
//!   AVX2 with f32 weights, portable;
//! - `cached_prime`: teacher forcing existing audio through the queues;
//! - `naive_recompute`: recomputing every layer over the receptive field per
//!   sample, same kernels;
//! - `candle_per_step`: a candle forward pass over the receptive field per
//!   sample;
//! - `predictor/predict_push`: the backward-adaptive predictor
//!   (`engine::predictor`, default for 16 kHz: order 16, pitch 2-20 ms,
//!   refitted every 2.5 ms) alone, per sample, to set beside the sampler,
//!   and `predict_push_order64` the order-64 runs' (50 ms windows);
//!   the summary also times the sampler of a model with prediction inputs
//!   (the predictor and its embeddings inside the step), and with every
//!   option of issue 17 (also pre-emphasis, a residual target and
//!   tone-aware sampling, whose pitch predictor is a second one), the
//!   order-64 runs' model (those options but tone-aware sampling, with
//!   the order-64 predictor), and with
//!   prediction inputs and the tone prior; `predictor/tone_prior_push_shape`:
//!   the tone prior alone where it shapes every step (on a tone).
//!
//! - the summary's last lines: the ceiling the memory sets, the AVX-512
//!   panel products alone streaming weights held in L1 (32 KB) and in L2
//!   (the default model's 0.93 MB of f32 weights), in GMAC/s and GB/s, and
//!   the AVX2 8-bit products alone (32 KB, and the default model's 0.23 MB
//!   of 8-bit weights).
//!
//! Criterion reports samples per second (`Throughput::Elements`); a summary
//! at the end prints medians, the real-time factor at 16 kHz (samples/s /
//! 16 000), multiply-adds per second and the speed-ups, all measured in the
//! same run.
//!
//! Run: `cargo bench --workspace --bench sampler -- --warm-up-time 1
//! --measurement-time 5`. Candle's matmul runs on rayon; this bench sets
//! `RAYON_NUM_THREADS=1` itself before candle starts, so every line is one
//! core.

use std::hint::black_box;
use std::time::Instant;

use candle_core::{Device, Tensor};
use criterion::{criterion_group, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reverie_engine::predictor::{Predictor, PredictorConfig};
use reverie_engine::sampler::{Kernels, NaiveSampler, Sampler};
use reverie_engine::tone_prior::{TonePrior, TonePriorConfig};
use reverie_engine::wavenet::{Padding, WavenetConfig, WavenetModel};

const RATE: f32 = 16_000.0;
/// A tone prior with both its parts (product and mixture) at work.
const TONE_PRIOR: TonePriorConfig = TonePriorConfig {
    weight: 1.0,
    max_trust: 0.9,
    mix: 0.1,
};
/// Samples generated per cached-sampler iteration.
const BLOCK: usize = 1_024;

/// The default architecture with random weights: speed does not depend on
/// the values.
fn model() -> WavenetModel {
    WavenetModel::init(WavenetConfig::default(), RATE as u32, 1, &Device::Cpu).unwrap()
}

/// A receptive field's worth of context: a quiet tone.
fn context(model: &WavenetModel) -> Vec<usize> {
    let q = reverie_engine::mulaw::MuLaw::new(model.config.classes).unwrap();
    (0..model.receptive_field())
        .map(|i| q.encode(0.3 * (i as f32 * 0.05).sin()))
        .collect()
}

fn candle_step(model: &WavenetModel, window: &[u32]) -> Tensor {
    let x = Tensor::from_slice(window, (1, window.len()), &Device::Cpu).unwrap();
    let logits = model.net.forward(&x, Padding::Causal).unwrap();
    logits.narrow(1, window.len() - 1, 1).unwrap()
}

fn bench(c: &mut Criterion) {
    let model = model();
    let ctx = context(&model);
    let mut group = c.benchmark_group("wavenet_default");

    group.throughput(Throughput::Elements(BLOCK as u64));
    for kernels in builds() {
        let mut sampler = Sampler::from_model(&model).unwrap();
        if !sampler.use_kernels(kernels) {
            continue;
        }
        sampler.prime_classes(&ctx);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // The fastest this CPU has is the headline; the others beside it.
        let name = if kernels == Kernels::fastest() {
            "cached_sampler".to_string()
        } else {
            format!("cached_sampler_{}", format!("{kernels:?}").to_lowercase())
        };
        group.bench_function(&name, |b| {
            b.iter(|| {
                for _ in 0..BLOCK {
                    black_box(sampler.sample_next(1.0, &mut rng));
                }
            })
        });
    }
    let mut sampler = Sampler::from_model(&model).unwrap();
    let prime_block: Vec<usize> = ctx.iter().copied().cycle().take(BLOCK).collect();
    group.bench_function("cached_prime", |b| {
        b.iter(|| sampler.prime_classes(black_box(&prime_block)))
    });

    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    let mut naive = NaiveSampler::from_model(&model).unwrap();
    naive.prime_classes(&ctx);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    group.bench_function("naive_recompute", |b| {
        b.iter(|| black_box(naive.step(rng.random_range(100..156))[0]))
    });
    let window: Vec<u32> = ctx.iter().map(|&c| c as u32).collect();
    group.bench_function("candle_per_step", |b| {
        b.iter(|| black_box(candle_step(&model, &window)))
    });
    group.finish();

    predictor_cost(c);
}

/// The predictor of the order-64 runs (models/README): 64 coefficients
/// fitted over 50 ms, damped, with the string loop's pitch stage; each fit
/// costs about four times the default's.
fn long_predictor_config() -> PredictorConfig {
    PredictorConfig {
        order: 64,
        window: 800,
        expansion: 0.9883,
        min_lag: 23,
        max_lag: 80,
        pitch_lowpass: 0.03,
        ..PredictorConfig::for_rate(RATE as u32)
    }
}

/// The predictor's cost per sample on a periodic signal (every refit runs
/// the full pitch search), as a group of its own.
fn predictor_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("predictor");
    group.throughput(Throughput::Elements(BLOCK as u64));
    let signal: Vec<f32> = (0..BLOCK * 16)
        .map(|i| 0.3 * (i as f32 * std::f32::consts::TAU * 220.0 / RATE).sin())
        .collect();
    let mut at = 0;
    for (name, config) in [
        ("predict_push", PredictorConfig::for_rate(RATE as u32)),
        ("predict_push_order64", long_predictor_config()),
    ] {
        let mut p = Predictor::new(config).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..BLOCK {
                    black_box(p.predict());
                    p.push(signal[at]);
                    at = (at + 1) % signal.len();
                }
            })
        });
    }
    // The tone prior on a tone, where it is trusted and shapes every
    // step (its worst case): its predictor, the Gaussian and the mixture.
    let mut prior = TonePrior::new(TONE_PRIOR, RATE as u32, reverie_engine::mulaw::MuLaw::default()).unwrap();
    let logits: Vec<f32> = (0..256).map(|c| -((c as f32 - 128.0) / 40.0).powi(2)).collect();
    let mut shaped = vec![0.0; 256];
    group.bench_function("tone_prior_push_shape", |b| {
        b.iter(|| {
            for _ in 0..BLOCK {
                prior.push(signal[at]);
                prior.shape(black_box(&logits), &mut shaped);
                at = (at + 1) % signal.len();
            }
        })
    });
    group.finish();
}

/// Every build of the sampler's kernels, the fastest first, each once.
fn builds() -> Vec<Kernels> {
    let mut all = vec![Kernels::fastest()];
    for k in [
        Kernels::Avx512Int8,
        Kernels::Avx512Bf16,
        Kernels::Avx512,
        Kernels::Avx2Int8,
        Kernels::Avx2,
        Kernels::Portable,
    ] {
        if k.available() && !all.contains(&k) {
            all.push(k);
        }
    }
    all
}

/// Median and fastest seconds of `runs` timings of `f`.
fn timings(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[runs / 2], t[0])
}

/// Medians (and, for the fast paths, the best run, which shows the speed
/// on a quiet core) measured directly, so the ratios and real-time factors
/// come from one run on one machine state.
fn summary() {
    let model = model();
    let ctx = context(&model);
    let macs = model.config.macs_per_sample() as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let n = 8_000;
    let per = |(median, best): (f64, f64), n: usize| (median / n as f64, best / n as f64);
    // Each build in turn, interleaved round by round so that a change in
    // the machine's state (another process, the clock) touches all alike.
    let kinds = builds();
    let mut samplers: Vec<Sampler> = kinds
        .iter()
        .map(|&k| {
            let mut s = Sampler::from_model(&model).unwrap();
            assert!(s.use_kernels(k));
            s.prime_classes(&ctx);
            s
        })
        .collect();
    let mut runs = vec![Vec::new(); kinds.len()];
    for _ in 0..11 {
        for (s, r) in samplers.iter_mut().zip(&mut runs) {
            r.push(timings(1, || {
                for _ in 0..n {
                    black_box(s.sample_next(1.0, &mut rng));
                }
            }));
        }
    }
    let per_build: Vec<(f64, f64)> = runs
        .into_iter()
        .map(|mut r| {
            r.sort_by(|a, b| a.0.total_cmp(&b.0));
            per((r[r.len() / 2].0, r[0].0), n)
        })
        .collect();
    let cached = per_build[0];
    let mut sampler = samplers.swap_remove(0);
    // The same network with prediction inputs (issue 17: the predictor's
    // two stages embedded beside each input), on the fastest kernels.
    let predicting_model = WavenetModel::init(
        WavenetConfig {
            predictor: Some(PredictorConfig::for_rate(RATE as u32)),
            ..WavenetConfig::default()
        },
        RATE as u32,
        1,
        &Device::Cpu,
    )
    .unwrap();
    // And with every option of issue 17: prediction inputs, pre-emphasis,
    // a residual target and tone-aware sampling (a second predictor).
    let mut all_options = predicting_model.clone();
    all_options.config.pre_emphasis = true;
    all_options.config.residual_target = true;
    all_options.config.tone_aware = true;
    let all_options = WavenetModel::from_raw(&all_options.to_raw().unwrap(), &Device::Cpu).unwrap();
    // The order-64 runs' model (models/README): prediction inputs from the
    // order-64 predictor, pre-emphasis and a residual target, sampled
    // plainly (one predictor).
    let mut long_predictor = all_options.clone();
    long_predictor.config.predictor = Some(long_predictor_config());
    long_predictor.config.tone_aware = false;
    let mut time_model = |model: &WavenetModel| {
        let mut s = Sampler::from_model(model).unwrap();
        s.use_kernels(Kernels::fastest());
        s.prime_classes(&ctx);
        per(
            timings(11, || {
                for _ in 0..n {
                    black_box(s.sample_next(1.0, &mut rng));
                }
            }),
            n,
        )
    };
    // The prediction-input model with the tone prior (its own predictor,
    // a third one here, and the shaping of every trusted step).
    let mut toned = predicting_model.clone();
    toned.config.tone_prior = Some(TONE_PRIOR);
    let with_predictor = time_model(&predicting_model);
    let with_tone_prior = time_model(&toned);
    let with_all_options = time_model(&all_options);
    let with_long_predictor = time_model(&long_predictor);
    let step_only = per(
        timings(11, || {
            for i in 0..n {
                black_box(sampler.step(100 + (i & 31))[0]);
            }
        }),
        n,
    );
    let prime_block: Vec<usize> = ctx.iter().copied().cycle().take(1_000).collect();
    let prime = per(
        timings(11, || {
            for _ in 0..n / 1_000 {
                sampler.prime_classes(black_box(&prime_block));
            }
        }),
        n,
    );
    let mut naive = NaiveSampler::from_model(&model).unwrap();
    naive.prime_classes(&ctx);
    let naive_steps = 10;
    let naive_t = per(
        timings(5, || {
            for i in 0..naive_steps {
                black_box(naive.step(120 + i)[0]);
            }
        }),
        naive_steps,
    );
    let window: Vec<u32> = ctx.iter().map(|&c| c as u32).collect();
    let candle_steps = 5;
    let candle_t = per(
        timings(5, || {
            for _ in 0..candle_steps {
                black_box(candle_step(&model, &window));
            }
        }),
        candle_steps,
    );

    println!("\nWaveNet sampler summary (default model, one core):");
    println!(
        "  receptive field {} samples, {} multiply-adds per cached sample, kernels: {:?}",
        model.receptive_field(),
        macs,
        sampler.kernels()
    );
    println!(
        "  {:<46} {:>12} {:>12} {:>14} {:>10}",
        "", "median us", "best us", "samples/s", "RTF 16k"
    );
    let build_rows: Vec<(String, (f64, f64))> = kinds
        .iter()
        .zip(&per_build)
        .map(|(k, &t)| (format!("cached sampler, {k:?}"), t))
        .collect();
    for (name, (median, best)) in build_rows.into_iter().chain([
        (
            format!("same, with prediction inputs, {:?}", Kernels::fastest()),
            with_predictor,
        ),
        (
            format!(
                "same, with prediction inputs + tone prior, {:?}",
                Kernels::fastest()
            ),
            with_tone_prior,
        ),
        (
            format!("same, with every issue-17 option, {:?}", Kernels::fastest()),
            with_all_options,
        ),
        (
            format!(
                "same, order-64 runs' model (no tone-aware), {:?}",
                Kernels::fastest()
            ),
            with_long_predictor,
        ),
        ("cached step only (no sampling)".to_string(), step_only),
        ("cached priming (teacher forcing)".to_string(), prime),
        ("naive recompute per sample".to_string(), naive_t),
        ("candle forward per sample".to_string(), candle_t),
    ]) {
        println!(
            "  {name:<46} {:>12.2} {:>12.2} {:>14.0} {:>10.3}",
            median * 1e6,
            best * 1e6,
            1.0 / median,
            1.0 / median / f64::from(RATE)
        );
    }
    println!(
        "  cached sampler: {:.2} GMAC/s (median), {:.2} GMAC/s (best); {:.0}x faster than naive recomputation, {:.0}x faster than a candle forward per sample (medians)",
        macs / cached.0 / 1e9,
        macs / cached.1 / 1e9,
        naive_t.0 / cached.0,
        candle_t.0 / cached.0
    );
    if let Some(avx2) = kinds.iter().position(|&k| k == Kernels::Avx2) {
        for (k, t) in kinds.iter().zip(&per_build) {
            println!(
                "  {k:?}: {:.2} GMAC/s (median), {:.2}x the AVX2 kernels' speed in this run",
                macs / t.0 / 1e9,
                per_build[avx2].0 / t.0
            );
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        stream_ceiling();
        avx2_int8_ceiling();
    }
}

/// Rows of the panels the kernels alone are timed on (the default layers'
/// shape).
#[cfg(target_arch = "x86_64")]
const CEILING_ROWS: usize = 64;

/// The median seconds of `reps` passes of 8-bit panel products over
/// `octets` (panels of [`CEILING_ROWS`] rows), each pass quantising `x`
/// first, as the sampler does per product.
///
/// # Safety
/// The CPU must run `quantise` and `product`.
#[cfg(target_arch = "x86_64")]
unsafe fn int8_seconds(
    x: &[f32],
    octets: &[u32],
    reps: usize,
    quantise: unsafe fn(&[f32], &mut [u32]) -> f32,
    product: reverie_engine::kernels::Int8Product,
) -> f64 {
    use reverie_engine::kernels::PANEL;
    let mut quads = [0u32; CEILING_ROWS / 4];
    let mut sums = [0i32; PANEL];
    let t = timings(5, || {
        for _ in 0..reps {
            // SAFETY: the caller's CPU runs both; quads holds the rows,
            // each panel CEILING_ROWS / 4 x PANEL quads.
            unsafe { quantise(black_box(x), &mut quads) };
            for p in octets.chunks_exact(CEILING_ROWS / 4 * PANEL) {
                sums = unsafe { product(&quads, p, black_box(sums)) };
            }
        }
    })
    .0;
    black_box(sums);
    t
}

/// The AVX2 8-bit panel products alone, quantising as the sampler does,
/// over 32 KB of 8-bit weights (L1) and the default model's 232,448 (its
/// 0.23 MB, in L2), 64-row panels, cycled: multiply-adds (= weight bytes)
/// per second.
#[cfg(target_arch = "x86_64")]
fn avx2_int8_ceiling() {
    use reverie_engine::kernels::{
        int8_quad, panel_product_avx2_int8, quantise_activations_signed, CacheAligned, PANEL,
    };
    if !Kernels::Avx2Int8.available() {
        return;
    }
    const ROWS: usize = CEILING_ROWS;
    let x: Vec<f32> = (0..ROWS).map(|i| (i as f32 * 0.37).sin()).collect();
    print!("  AVX2 8-bit panel products alone (64-row panels):");
    for (place, bytes) in [("L1", 32 << 10), ("L2", 232_448)] {
        let panels = bytes / (ROWS * PANEL);
        let octets: Vec<u32> = (0..panels * ROWS / 4 * PANEL)
            .map(|i| int8_quad(std::array::from_fn(|j| ((i * 4 + j) * 37 % 255) as i8)))
            .collect();
        let octets = CacheAligned::from_slice(&octets);
        let macs = (panels * ROWS * PANEL) as f64;
        let reps = 2_000_000_000 / (panels * ROWS * PANEL);
        // SAFETY: AVX2 checked.
        let t = unsafe {
            int8_seconds(
                &x,
                &octets,
                reps,
                quantise_activations_signed,
                panel_product_avx2_int8,
            )
        };
        print!(
            " weights in {place} ({} KB): {:.1} GMAC/s = {:.1} GB/s;",
            bytes >> 10,
            reps as f64 * macs / t / 1e9,
            reps as f64 * macs / t / 1e9
        );
    }
    println!();
}

/// The AVX-512 panel products alone, over `bytes` of f32 weights (half
/// that in bfloat16) in 64-row panels, the default layers' shape, cycled:
/// multiply-adds per second and weight bytes per second.
#[cfg(target_arch = "x86_64")]
fn stream_ceiling() {
    use reverie_engine::kernels::{
        bf16_pair, has_avx512_vnni, int8_quad, panel_product_avx512, panel_product_avx512_bf16,
        panel_product_avx512_int8, quantise_activations, CacheAligned, PANEL,
    };
    if !Kernels::Avx512.available() {
        return;
    }
    const ROWS: usize = CEILING_ROWS;
    let x: Vec<f32> = (0..ROWS).map(|i| (i as f32 * 0.37).sin()).collect();
    println!("  AVX-512 panel products alone (64-row panels), the memory's ceiling:");
    for (place, bytes) in [("L1", 32 << 10), ("L2", 232_448 * 4)] {
        let panels = bytes / 4 / (ROWS * PANEL);
        let w: Vec<f32> = (0..panels * ROWS * PANEL)
            .map(|i| (i as f32 * 0.01).cos())
            .collect();
        let half: Vec<u32> = w
            .chunks_exact(2 * PANEL)
            .flat_map(|r| (0..PANEL).map(move |l| bf16_pair(r[l], r[PANEL + l])))
            .collect();
        let octets: Vec<u32> = w
            .chunks_exact(4 * PANEL)
            .flat_map(|r| {
                (0..PANEL).map(move |l| int8_quad(std::array::from_fn(|j| (r[j * PANEL + l] * 127.0) as i8)))
            })
            .collect();
        // On cache lines, as the sampler keeps its panels.
        let (w, half, octets) = (
            CacheAligned::from_slice(&w),
            CacheAligned::from_slice(&half),
            CacheAligned::from_slice(&octets),
        );
        let macs = (panels * ROWS * PANEL) as f64;
        let reps = 2_000_000_000 / (panels * ROWS * PANEL);
        let mut acc = [0.0f32; PANEL];
        // SAFETY: AVX-512 checked above; every panel holds ROWS x PANEL
        // weights (ROWS / 2 x PANEL pairs).
        let f32_t = timings(5, || {
            for _ in 0..reps {
                for p in w.chunks_exact(ROWS * PANEL) {
                    acc = unsafe { panel_product_avx512(&x, p, black_box(acc)) };
                }
            }
        })
        .0;
        let bf16_t = timings(5, || {
            for _ in 0..reps {
                for p in half.chunks_exact(ROWS / 2 * PANEL) {
                    acc = unsafe { panel_product_avx512_bf16(&x, p, black_box(acc)) };
                }
            }
        })
        .0;
        // SAFETY: VNNI checked.
        let int8 = has_avx512_vnni().then(|| unsafe {
            int8_seconds(&x, &octets, reps, quantise_activations, panel_product_avx512_int8)
        });
        black_box(acc);
        let n = reps as f64 * macs;
        let int8 = int8.map_or_else(String::new, |t| {
            format!("; 8-bit {:.1} GMAC/s = {:.0} GB/s", n / t / 1e9, n / t / 1e9)
        });
        println!(
            "    weights in {place} ({} KB of f32): f32 {:.1} GMAC/s = {:.0} GB/s; bfloat16 {:.1} GMAC/s = {:.0} GB/s{int8}",
            bytes >> 10,
            n / f32_t / 1e9,
            4.0 * n / f32_t / 1e9,
            n / bf16_t / 1e9,
            2.0 * n / bf16_t / 1e9
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    // Before anything starts rayon's pool: candle's matmul then runs on
    // one thread, like the sampler.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    benches();
    Criterion::default().configure_from_args().final_summary();
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    if !quick {
        summary();
    }
}
