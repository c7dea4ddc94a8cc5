//! The WaveNet: µ-law companding, the candle network, the cached real-time
//! sampler against the candle full-sequence forward pass and against naive
//! recomputation, sampling, and the model file.
//!
//! One file, though long: every test builds on the same random small models
//! and compares against the same candle full-sequence forward pass, the
//! reference the sampler is checked against for each configuration.

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reverie_engine::kernels::{bf16_bits, bf16_value};
use reverie_engine::likelihood::{nll_of, sequence_nll, Scorer};
use reverie_engine::model_file::{Layout, ModelFileError, ModelKind, RawModel, Role};
use reverie_engine::mulaw::{self, MuLaw};
use reverie_engine::normal_vec;
use reverie_engine::perception::{PerceptionConfig, PerceptionModel};
use reverie_engine::prediction_inputs::PredictionInputs;
use reverie_engine::predictor::PredictorConfig;
use reverie_engine::sampler::{sample_class, sample_class_above_floor, Kernels, NaiveSampler, Sampler};
use reverie_engine::tone_prior::{TonePrior, TonePriorConfig};
use reverie_engine::tone_sampling::ToneAwareSampler;
use reverie_engine::wavenet::{dilation_stacks, Padding, WavenetConfig, WavenetModel};

const RATE: u32 = 16_000;
const TOLERANCE: f32 = 1e-4;

fn config(dilations: &[usize], r: usize, d: usize, s: usize, classes: usize) -> WavenetConfig {
    WavenetConfig {
        dilations: dilations.to_vec(),
        residual_channels: r,
        dilation_channels: d,
        skip_channels: s,
        classes,
        predictor: None,
        pre_emphasis: false,
        emphasis_128ths: reverie_engine::emphasis::LPCNET_128THS,
        residual_target: false,
        tone_aware: false,
        tone_prior: None,
        dc_block: false,
    }
}

/// A randomly initialised model with random (non-zero) biases too, so every
/// tensor the sampler reads matters.
fn random_model(config: WavenetConfig, seed: u64) -> WavenetModel {
    let mut model = WavenetModel::init(config, RATE, seed, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    model.net = model
        .net
        .try_map(|_, role, t| {
            if role == Role::Bias {
                Tensor::from_vec(normal_vec(&mut rng, t.elem_count(), 0.3), t.shape(), t.device())
            } else {
                Ok(t.clone())
            }
        })
        .unwrap();
    model
}

fn random_classes(n: usize, classes: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // A random walk looks more like audio than white noise and visits
    // neighbouring classes, as generated audio does.
    let mut c = classes as i64 / 2;
    (0..n)
        .map(|_| {
            c = (c + rng.random_range(-9..=9)).clamp(0, classes as i64 - 1);
            c as usize
        })
        .collect()
}

/// Candle logits `[time][classes]` of one sequence (with the prediction
/// inputs, teacher-forced from silent history, where the model has them).
fn candle_logits(model: &WavenetModel, classes: &[usize]) -> Vec<Vec<f32>> {
    let ids: Vec<u32> = classes.iter().map(|&c| c as u32).collect();
    let predictions: Vec<Tensor> = match model.config.predictor {
        Some(p) => PredictionInputs::new(p, MuLaw::new(model.config.classes).unwrap())
            .unwrap()
            .for_sequence(&ids)
            .rows
            .into_iter()
            .map(|row| Tensor::from_vec(row, (1, classes.len()), &Device::Cpu).unwrap())
            .collect(),
        None => Vec::new(),
    };
    let x = Tensor::from_vec(ids, (1, classes.len()), &Device::Cpu).unwrap();
    let y = model
        .net
        .forward_with_predictions(&x, &predictions, Padding::Causal)
        .unwrap();
    assert_eq!(y.dims(), &[1, classes.len(), model.config.classes]);
    y.squeeze(0).unwrap().to_vec2::<f32>().unwrap()
}

/// The model with every weight matrix rounded to bfloat16, as the
/// `Avx512Bf16` kernels store them (embeddings and biases stay f32).
fn bf16_rounded(model: &WavenetModel) -> WavenetModel {
    let mut rounded = model.clone();
    rounded.net = model
        .net
        .try_map(|_, role, t| {
            if role != Role::Weight {
                return Ok(t.clone());
            }
            let v: Vec<f32> = t.flatten_all()?.to_vec1::<f32>()?;
            let v = v.iter().map(|&w| bf16_value(bf16_bits(w))).collect();
            Tensor::from_vec(v, t.shape(), t.device())
        })
        .unwrap();
    rounded
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn mulaw_round_trip_is_within_the_quantisation_step() {
    for classes in [256, 16, 1024] {
        let q = MuLaw::new(classes).unwrap();
        let half_step = 1.0 / (classes - 1) as f32;
        for i in 0..=20_000 {
            let x = i as f32 / 10_000.0 - 1.0;
            let c = q.encode(x);
            assert!(c < classes);
            let back = q.decode(c);
            // Half a level in the companded domain ...
            let err = (q.compress(back) - q.compress(x)).abs();
            assert!(err <= half_step + 1e-6, "{classes} classes, x={x}: {err}");
            // ... so in audio the error is within the local quantisation
            // step: the width of the cell of inputs that share the class.
            let y = q.compress(back);
            let cell = q.expand(y + half_step) - q.expand(y - half_step);
            assert!((back - x).abs() <= cell + 1e-6, "x={x} back={back} cell={cell}");
        }
        for c in 0..classes {
            assert_eq!(q.encode(q.decode(c)), c, "levels survive a round trip");
            if c > 0 {
                assert!(q.decode(c) > q.decode(c - 1), "monotonic");
            }
        }
        assert_eq!(q.encode(-1.0), 0);
        assert_eq!(q.encode(1.0), classes - 1);
        assert_eq!(q.encode(7.0), classes - 1, "clipped");
        assert_eq!(q.encode(-7.0), 0, "clipped");
        assert_eq!(q.encode(f32::NAN), q.encode(0.0), "NaN is silence");
        assert_eq!(q.decode(classes + 5), 1.0);
    }
    // The 8-bit curve resolves quiet signals far more finely than loud ones.
    assert_eq!(mulaw::encode(0.0), 128);
    assert!(mulaw::decode(129) - mulaw::decode(128) < 1e-3);
    assert!(mulaw::decode(255) - mulaw::decode(254) > 0.03);
    assert!(mulaw::decode(255) - mulaw::decode(254) < 0.05);
    assert!(MuLaw::new(1).is_none() && MuLaw::new(70_000).is_none());
}

#[test]
fn config_defaults_and_receptive_field() {
    let c = WavenetConfig::default();
    assert_eq!(c.num_layers(), 20);
    assert_eq!(c.receptive_field(), 2 * 1023 + 1);
    assert_eq!(c.macs_per_sample(), 232_448);
    c.validate().unwrap();
    let long = dilation_stacks(1, 16_384);
    assert_eq!(long.len(), 15);
    assert_eq!(*long.last().unwrap(), 16_384);
    let seed_like = config(&long, 32, 32, 128, 256);
    assert_eq!(seed_like.receptive_field(), 32_768);
    seed_like.validate().unwrap();
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["receptive_field"], 2047);
    let back: WavenetConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back, c);
    for bad in [
        config(&[], 4, 4, 4, 16),
        config(&[1, 0], 4, 4, 4, 16),
        config(&[1], 0, 4, 4, 16),
        config(&[1], 4, 4, 4, 1),
        config(&[1 << 21], 4, 4, 4, 16),
        config(&[1 << 20; 300], 4096, 4, 4, 16),
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
        assert!(matches!(
            WavenetModel::init(bad, RATE, 0, &Device::Cpu),
            Err(ModelFileError::InvalidConfig(_))
        ));
    }
}

/// A predictor small enough to fit and refit many times within the test
/// sequences, with or without its pitch stage.
fn small_predictor(long_term: bool) -> PredictorConfig {
    PredictorConfig {
        order: 4,
        window: 24,
        update_every: 5,
        long_term,
        min_lag: 3,
        max_lag: 17,
        expansion: 1.0,
        pitch_lowpass: 0.0,
    }
}

/// `cfg` with prediction inputs.
fn with_predictor(cfg: WavenetConfig, long_term: bool) -> WavenetConfig {
    WavenetConfig {
        predictor: Some(small_predictor(long_term)),
        ..cfg
    }
}

/// [`test_configs`], then some of them with prediction inputs: short-term
/// only, and both stages.
fn test_configs_with_predictors() -> Vec<WavenetConfig> {
    let base = test_configs();
    let mut all = base.clone();
    all.push(with_predictor(base[1].clone(), false));
    all.push(with_predictor(base[1].clone(), true));
    all.push(with_predictor(base[3].clone(), true));
    all.push(with_predictor(base[2].clone(), true));
    all.extend(coded_configs());
    all
}

/// Models with each signal coding option (pre-emphasis, residual target,
/// both), on prediction inputs, the residual target again with a
/// bandwidth-expanded predictor whose pitch stage has a loss filter, and
/// both with a gentler pre-emphasis.
fn coded_configs() -> Vec<WavenetConfig> {
    let base = with_predictor(config(&[1, 2, 4, 8, 1, 2], 8, 6, 12, 256), true);
    let mut coded: Vec<WavenetConfig> = [(true, false), (false, true), (true, true)]
        .into_iter()
        .map(|(pre_emphasis, residual_target)| WavenetConfig {
            pre_emphasis,
            residual_target,
            ..base.clone()
        })
        .collect();
    let mut expanded = coded[1].clone();
    expanded.predictor = expanded.predictor.map(|p| PredictorConfig {
        expansion: 0.95,
        pitch_lowpass: 0.1,
        ..p
    });
    coded.push(expanded);
    // Both codings with a gentler pre-emphasis than LPCNet's.
    let gentle = WavenetConfig {
        emphasis_128ths: 64,
        ..coded[2].clone()
    };
    coded.push(gentle);
    // DC-blocked feedback, first (the round trip takes the last two).
    let blocked = WavenetConfig {
        dc_block: true,
        ..coded[2].clone()
    };
    coded.insert(0, blocked);
    coded
}

/// Several small architectures: powers of two and not, one layer (no
/// residual convolution at all), the seed's long dilations, channel counts
/// below, at and above the sampler's 32-column panels, odd sizes.
fn test_configs() -> Vec<WavenetConfig> {
    vec![
        config(&[1, 2, 4, 8], 4, 3, 5, 16),
        config(&[1, 3, 9, 2, 1], 8, 8, 16, 256),
        config(&[5], 6, 7, 9, 32),
        config(&[1, 2, 4, 1, 2, 4], 33, 17, 70, 40),
        config(&[1, 16, 256], 32, 32, 64, 256),
        config(&[2, 1], 2, 1, 3, 2),
    ]
}

#[test]
fn sampler_logits_match_candle_at_every_step() {
    for (k, cfg) in test_configs_with_predictors().into_iter().enumerate() {
        let rf = cfg.receptive_field();
        let classes = cfg.classes;
        for seed in [1, 2] {
            let model = random_model(cfg.clone(), 10 * k as u64 + seed);
            // Longer than two receptive fields: the queues wrap around and
            // the early, partly padded context is forgotten.
            let seq = random_classes(2 * rf + 37, classes, seed + 100);
            let expected = candle_logits(&model, &seq);
            // Guard against a vacuous comparison: the logits must change
            // with the input.
            let spread = expected
                .iter()
                .map(|l| max_abs_diff(l, &expected[0]))
                .fold(0.0f32, f32::max);
            assert!(spread > 0.1, "config {k}: logits hardly move ({spread})");
            // Every build of the kernels this CPU runs (AVX-512 where it
            // has it), against candle at every step.
            for kernels in [Kernels::Portable, Kernels::Avx2, Kernels::Avx512] {
                let mut sampler = Sampler::from_model(&model).unwrap();
                if !sampler.use_kernels(kernels) {
                    eprintln!("config {k}: this CPU cannot run {kernels:?}");
                    continue;
                }
                let mut worst = 0.0f32;
                for (t, &c) in seq.iter().enumerate() {
                    let got = sampler.step(c);
                    let diff = max_abs_diff(got, &expected[t]);
                    assert!(
                        diff <= TOLERANCE,
                        "config {k} seed {seed} {kernels:?} step {t}: {diff}"
                    );
                    worst = worst.max(diff);
                }
                eprintln!("config {k} seed {seed} {kernels:?}: max |sampler - candle| = {worst:.2e}");
            }
            bf16_sampler_matches_candle_on_rounded_weights(k, &model, &seq, &expected);
            for kernels in [Kernels::Avx512Int8, Kernels::Avx2Int8] {
                int8_sampler_stays_near_candle(k, kernels, &model, &seq, &expected);
            }
            int8_kernels_agree(k, &model, &seq);
        }
    }
}

/// The bfloat16 kernels give the logits of the model with rounded weights
/// (candle's forward on those, at the f32 tolerance) at every step, and
/// stay close to the f32 model's: rounding moves them, but by far less
/// than they move with the input.
fn bf16_sampler_matches_candle_on_rounded_weights(
    k: usize,
    model: &WavenetModel,
    seq: &[usize],
    expected_f32: &[Vec<f32>],
) {
    let mut sampler = Sampler::from_model(model).unwrap();
    if !sampler.use_kernels(Kernels::Avx512Bf16) {
        eprintln!("config {k}: this CPU cannot run the bfloat16 kernels");
        return;
    }
    let expected = candle_logits(&bf16_rounded(model), seq);
    let (mut worst, mut moved, mut spread) = (0.0f32, 0.0f32, 0.0f32);
    for (t, &c) in seq.iter().enumerate() {
        let got = sampler.step(c);
        let diff = max_abs_diff(got, &expected[t]);
        assert!(diff <= TOLERANCE, "config {k} bf16 step {t}: {diff}");
        worst = worst.max(diff);
        moved = moved.max(max_abs_diff(got, &expected_f32[t]));
        spread = spread.max(max_abs_diff(&expected_f32[t], &expected_f32[0]));
    }
    assert!(moved > 0.0, "config {k}: rounding the weights changed nothing");
    assert!(
        moved < 0.05 * spread,
        "config {k}: bf16 moved the logits {moved} (spread {spread})"
    );
    eprintln!("config {k} bf16: max |sampler - rounded candle| = {worst:.2e}, vs f32 weights {moved:.2e}");
}

/// The 8-bit kernels (exact integer products, tested in the engine's
/// kernels) stay near the f32 model's logits at every step: their rounding
/// of weights and activations moves the logits, but by far less than the
/// input moves them.
fn int8_sampler_stays_near_candle(
    k: usize,
    kernels: Kernels,
    model: &WavenetModel,
    seq: &[usize],
    expected_f32: &[Vec<f32>],
) {
    let mut sampler = Sampler::from_model(model).unwrap();
    if !sampler.use_kernels(kernels) {
        eprintln!("config {k}: this CPU cannot run {kernels:?}");
        return;
    }
    let (mut moved, mut spread) = (0.0f32, 0.0f32);
    for (t, &c) in seq.iter().enumerate() {
        let got = sampler.step(c);
        moved = moved.max(max_abs_diff(got, &expected_f32[t]));
        spread = spread.max(max_abs_diff(&expected_f32[t], &expected_f32[0]));
    }
    eprintln!("config {k} {kernels:?}: max |sampler - candle| = {moved:.2e} (spread {spread:.2e})");
    assert!(moved > 0.0, "config {k}: {kernels:?} changed nothing");
    assert!(
        moved < 0.1 * spread,
        "config {k}: {kernels:?} moved the logits {moved} (spread {spread})"
    );
}

/// The two 8-bit builds quantise alike and sum the same integers (VNNI's
/// offset activations less the offset, AVX2's signed ones), so where a CPU
/// runs both their logits agree at the f32 tolerance at every step.
fn int8_kernels_agree(k: usize, model: &WavenetModel, seq: &[usize]) {
    let mut vnni = Sampler::from_model(model).unwrap();
    let mut avx2 = Sampler::from_model(model).unwrap();
    if !(vnni.use_kernels(Kernels::Avx512Int8) && avx2.use_kernels(Kernels::Avx2Int8)) {
        eprintln!("config {k}: this CPU cannot run both 8-bit builds");
        return;
    }
    for (t, &c) in seq.iter().enumerate() {
        let diff = max_abs_diff(vnni.step(c), avx2.step(c));
        assert!(
            diff <= TOLERANCE,
            "config {k} step {t}: the 8-bit builds differ by {diff}"
        );
    }
}

#[test]
fn per_sample_nll_is_the_cross_entropy_of_candles_logits() {
    // Uniform logits give every class 1/n; extreme ones must not overflow.
    assert!((nll_of(&[0.0; 256], 7) - 256f32.ln()).abs() < 1e-5);
    assert!(nll_of(&[1000.0, 0.0], 0).abs() < 1e-5);
    assert!((nll_of(&[1000.0, 0.0], 1) - 1000.0).abs() < 1e-3);
    for (k, cfg) in test_configs().into_iter().enumerate().skip(1).take(3) {
        let model = random_model(cfg.clone(), 70 + k as u64);
        let seq = random_classes(cfg.receptive_field() + 300, cfg.classes, 5);
        let logits = candle_logits(&model, &seq);
        // Log-sum-exp in f64 on candle's logits, independent of nll_of.
        let expected: Vec<f64> = (1..seq.len())
            .map(|t| {
                let l = &logits[t - 1];
                let lse = l.iter().map(|&v| f64::from(v).exp()).sum::<f64>().ln();
                lse - f64::from(l[seq[t]])
            })
            .collect();
        let mut sampler = Sampler::from_model(&model).unwrap();
        // A sampler left mid-sequence must not change the answer.
        sampler.step(3);
        let got = sequence_nll(&mut sampler, &seq);
        assert_eq!(got.len(), seq.len() - 1);
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(&g, &e)| (f64::from(g) - e).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-3, "config {k}: {worst}");
        // Fed in uneven pieces, the scores are the same.
        let mut pieces = Vec::new();
        let mut scorer = Scorer::new(&mut sampler);
        for piece in seq.chunks(97) {
            scorer.push(piece, &mut pieces);
        }
        assert_eq!(pieces, got);
        let mean = expected.iter().sum::<f64>() / expected.len() as f64;
        assert!(mean > 0.1, "config {k}: a random model is unsure ({mean})");
    }
    let mut sampler = Sampler::from_model(&random_model(test_configs()[0].clone(), 1)).unwrap();
    assert!(sequence_nll(&mut sampler, &[4]).is_empty());
}

#[test]
fn batched_forward_matches_one_sequence_at_a_time() {
    let model = random_model(config(&[1, 2, 4, 8, 1], 8, 6, 10, 64), 3);
    let seqs: Vec<Vec<usize>> = (0..3).map(|i| random_classes(40, 64, i)).collect();
    let ids: Vec<u32> = seqs.iter().flatten().map(|&c| c as u32).collect();
    let x = Tensor::from_vec(ids, (3, 40), &Device::Cpu).unwrap();
    let y = model.net.forward(&x, Padding::Causal).unwrap();
    assert_eq!(y.dims(), &[3, 40, 64]);
    for (b, seq) in seqs.iter().enumerate() {
        let alone = candle_logits(&model, seq);
        let batched = y.get(b).unwrap().to_vec2::<f32>().unwrap();
        for t in 0..40 {
            assert!(max_abs_diff(&alone[t], &batched[t]) <= 1e-5, "batch {b} t {t}");
        }
    }
    // Sequences shorter than the dilations only see the padding: the
    // layers whose dilation is at least the length (4 and 8 here) never
    // see an input through their past tap, so its weights cannot matter,
    // and each output is what the same positions of a longer sequence give.
    let short = candle_logits(&model, &seqs[0][..3]);
    assert_eq!(short.len(), 3);
    let long = candle_logits(&model, &seqs[0]);
    for t in 0..3 {
        assert!(max_abs_diff(&short[t], &long[t]) <= 1e-5, "t {t}");
    }
    let without_past_tap = |min_dilation: usize| {
        let mut m = model.clone();
        for layer in &mut m.net.layers {
            if layer.dilation >= min_dilation {
                let (two_r, two_d) = layer.filter_gate_w.dims2().unwrap();
                let now = layer.filter_gate_w.narrow(0, two_r / 2, two_r / 2).unwrap();
                let past = Tensor::zeros((two_r / 2, two_d), DType::F32, &Device::Cpu).unwrap();
                layer.filter_gate_w = Tensor::cat(&[&past, &now], 0).unwrap();
            }
        }
        candle_logits(&m, &seqs[0][..3])
    };
    let padding_only = without_past_tap(3);
    for t in 0..3 {
        assert!(max_abs_diff(&short[t], &padding_only[t]) <= 1e-6, "t {t}");
    }
    // The check can fail: the shorter dilations do see the sequence.
    let all = without_past_tap(1);
    assert!(max_abs_diff(&short[2], &all[2]) > 1e-3);
    // A class index out of range is an error, not a panic.
    let bad = Tensor::from_vec(vec![3u32, 64], (1, 2), &Device::Cpu).unwrap();
    assert!(model.net.forward(&bad, Padding::Causal).is_err());
    // i64 class indices work too.
    let ids: Vec<i64> = seqs[0].iter().map(|&c| c as i64).collect();
    let x = Tensor::from_vec(ids, (1, 40), &Device::Cpu).unwrap();
    let y = model
        .net
        .forward(&x, Padding::Causal)
        .unwrap()
        .squeeze(0)
        .unwrap();
    assert_eq!(y.to_vec2::<f32>().unwrap(), candle_logits(&model, &seqs[0]));
}

#[test]
fn the_valid_forward_pass_is_the_causal_one_where_the_field_is_full() {
    // Uneven dilations and channel counts, random weights and biases:
    // every weight counts.
    let config = config(&[1, 2, 4, 8, 1, 3], 6, 5, 7, 32);
    let mut model = WavenetModel::init(config, RATE, 11, &Device::Cpu).unwrap();
    let mut seed = 0u64;
    model.net = model
        .net
        .try_map(|_, _, t| {
            seed += 1;
            let noise = normal_vec(&mut ChaCha8Rng::seed_from_u64(seed), t.elem_count(), 0.3);
            t + Tensor::from_vec(noise, t.shape(), t.device())?
        })
        .unwrap();
    let field = model.receptive_field();
    assert_eq!(model.net.receptive_field(), field);
    let (batch, time) = (3, field - 1 + 50);
    let classes: Vec<u32> = (0..batch * time).map(|i| ((i * 7919) % 97 % 32) as u32).collect();
    let x = Tensor::from_vec(classes, (batch, time), &Device::Cpu).unwrap();
    let causal = model
        .net
        .forward(&x, Padding::Causal)
        .unwrap()
        .narrow(1, field - 1, 50)
        .unwrap();
    let valid = model.net.forward(&x, Padding::Valid).unwrap();
    assert_eq!(valid.dims(), &[batch, 50, 32]);
    let diff = (causal - valid)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    eprintln!("largest logit difference, valid against causal: {diff:e}");
    assert!(diff < 1e-4, "{diff}");
    let short = Tensor::zeros((1, field - 1), DType::U32, &Device::Cpu).unwrap();
    assert!(
        model.net.forward(&short, Padding::Valid).is_err(),
        "shorter than the receptive field"
    );
}

#[test]
fn gradients_reach_every_weight() {
    let model = random_model(config(&[1, 2, 4], 4, 4, 8, 16), 4);
    let mut vars = Vec::new();
    let net = model
        .net
        .try_map(|name, _, t| {
            let v = candle_core::Var::from_tensor(t)?;
            vars.push((name.to_string(), v.clone()));
            candle_core::Result::Ok(v.as_tensor().clone())
        })
        .unwrap();
    // Every tensor the architecture has, by name and shape.
    let shapes = model.config.shapes();
    let shapes = shapes.named();
    assert_eq!(vars.len(), shapes.len());
    for ((name, v), (expected, _, shape)) in vars.iter().zip(&shapes) {
        assert_eq!((name, v.dims()), (expected, shape.as_slice()));
    }
    let seq = random_classes(33, 16, 5);
    let ids: Vec<u32> = seq.iter().map(|&c| c as u32).collect();
    let x = Tensor::from_vec(ids[..32].to_vec(), (1, 32), &Device::Cpu).unwrap();
    let target = Tensor::from_vec(ids[1..].to_vec(), 32, &Device::Cpu).unwrap();
    let logits = net.forward(&x, Padding::Causal).unwrap().squeeze(0).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &target).unwrap();
    let grads = loss.backward().unwrap();
    for (name, v) in &vars {
        let g = grads.get(v).unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(norm.is_finite() && norm > 0.0, "{name}: gradient norm {norm}");
    }
}

#[test]
fn naive_recomputation_matches_the_cached_sampler() {
    for cfg in [
        config(&[1, 2, 4, 8, 1, 2], 8, 6, 12, 32),
        config(&[3, 1, 7], 5, 9, 33, 64),
        with_predictor(config(&[1, 2, 4, 8, 1, 2], 8, 6, 12, 32), true),
        with_predictor(config(&[3, 1, 7], 5, 9, 33, 64), false),
    ] {
        let rf = cfg.receptive_field();
        let model = random_model(cfg, 6);
        let mut fast = Sampler::from_model(&model).unwrap();
        let mut naive = NaiveSampler::from_model(&model).unwrap();
        assert_eq!(naive.receptive_field(), rf);
        let seq = random_classes(3 * rf, model.config.classes, 7);
        for round in 0..2 {
            for (t, &c) in seq.iter().enumerate() {
                let a = fast.step(c).to_vec();
                let b = naive.step(c);
                let diff = max_abs_diff(&a, b);
                assert!(diff <= TOLERANCE, "round {round} step {t}: {diff}");
            }
            fast.reset();
            naive.reset();
        }
        // Priming the naive generator only records the context.
        let (head, tail) = seq.split_at(seq.len() - 5);
        fast.reset();
        fast.prime_classes(head);
        naive.prime_classes(head);
        assert!(naive.use_kernels(Kernels::Portable));
        for &c in tail {
            let a = fast.step(c).to_vec();
            assert!(max_abs_diff(&a, naive.step(c)) <= TOLERANCE);
        }
    }
}

#[test]
fn generated_audio_is_what_candle_predicts() {
    let model = random_model(config(&[1, 2, 4, 8, 16], 8, 8, 16, 256), 8);
    let mut sampler = Sampler::from_model(&model).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let q = sampler.mulaw();
    // Generation starts by feeding one sample of silence.
    let mut fed = vec![q.encode(0.0)];
    let mut logits = Vec::new();
    for _ in 0..120 {
        let x = sampler.sample_next(1.0, &mut rng);
        assert!((-1.0..=1.0).contains(&x));
        fed.push(q.encode(x));
        logits.push(sampler.logits().to_vec());
    }
    let expected = candle_logits(&model, &fed);
    for (t, got) in logits.iter().enumerate() {
        let diff = max_abs_diff(got, &expected[t + 1]);
        assert!(diff <= TOLERANCE, "sample {t}: {diff}");
    }
    let distinct: std::collections::BTreeSet<_> = fed.iter().collect();
    assert!(distinct.len() > 5, "sampling at temperature 1 varies");
}

/// Tone-aware sampling draws from the same logits the plain sampler does:
/// at temperature 0 both take the most likely class, so they generate the
/// same audio; at temperature 1 it is deterministic by seed and every
/// sample it returns is a class's value, heard by the tone sampler.
#[test]
fn tone_aware_sampling_runs_on_the_samplers_logits() {
    let model = random_model(config(&[1, 2, 4, 8], 8, 8, 16, 256), 12);
    let audio: Vec<f32> = (0..200).map(|i| 0.5 * (i as f32 * 0.07).sin()).collect();
    let (mut plain, mut toned) = (
        Sampler::from_model(&model).unwrap(),
        Sampler::from_model(&model).unwrap(),
    );
    let mut tone = ToneAwareSampler::new(16_000, 256).unwrap();
    plain.prime(&audio);
    toned.prime(&audio);
    audio.iter().for_each(|&x| tone.push(x));
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for t in 0..300 {
        let a = plain.sample_next(0.0, &mut rng);
        let b = tone.sample_next(&mut toned, 0.0, &mut rng);
        assert_eq!(a.to_bits(), b.to_bits(), "sample {t}");
        assert_eq!(plain.logits(), toned.logits(), "sample {t}");
    }
    let run = |seed: u64| {
        let mut s = Sampler::from_model(&model).unwrap();
        let mut tone = ToneAwareSampler::new(16_000, 256).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..300)
            .map(|_| tone.sample_next(&mut s, 1.0, &mut rng))
            .collect::<Vec<f32>>()
    };
    let (a, b, c) = (run(1), run(1), run(2));
    assert_eq!(a, b, "same seed, same audio");
    assert_ne!(a, c, "another seed, other audio");
    let q = MuLaw::new(256).unwrap();
    assert!(
        a.iter().all(|&x| q.decode(q.encode(x)) == x),
        "every sample is a class's value"
    );
}

#[test]
fn priming_generation_and_reset_are_deterministic() {
    let model = random_model(config(&[1, 2, 4, 8], 8, 8, 16, 256), 10);
    let mut sampler = Sampler::from_model(&model).unwrap();
    let audio: Vec<f32> = (0..200).map(|i| 0.5 * (i as f32 * 0.07).sin()).collect();

    // Priming equals stepping through the same classes.
    sampler.prime(&audio);
    let primed = sampler.logits().to_vec();
    let mut stepped = Sampler::from_model(&model).unwrap();
    let classes = sampler.mulaw().encode_all(&audio);
    for &c in &classes {
        stepped.step(c);
    }
    assert_eq!(primed, stepped.logits());
    let mut by_class = Sampler::from_model(&model).unwrap();
    by_class.prime_classes(&classes);
    assert_eq!(primed, by_class.logits());
    // Priming computes only the last receptive field (200 samples are more
    // than 16), yet every later step is exactly what stepping through all
    // of them gives.
    for c in random_classes(50, 256, 77) {
        assert_eq!(by_class.step(c), stepped.step(c));
    }
    // Priming continues from the current state rather than resetting, and
    // a long priming input makes the earlier state irrelevant.
    by_class.prime(&audio[..7]);
    by_class.prime(&audio);
    stepped.reset();
    stepped.prime_classes(&classes);
    assert_eq!(by_class.logits(), stepped.logits());

    let run = |s: &mut Sampler, seed: u64, t: f32| {
        s.reset();
        s.prime(&audio);
        s.generate(300, t, &mut ChaCha8Rng::seed_from_u64(seed))
    };
    let a = run(&mut sampler, 1, 1.0);
    let b = run(&mut sampler, 1, 1.0);
    let c = run(&mut sampler, 2, 1.0);
    assert_eq!(a, b, "same seed, same audio");
    assert_ne!(a, c, "another seed, other audio");
    assert_eq!(sampler.logits().len(), 256);

    // Temperature 0 always takes the most likely class.
    sampler.reset();
    sampler.prime(&audio);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..50 {
        let argmax = argmax(sampler.logits());
        let x = sampler.sample_next(0.0, &mut rng);
        assert_eq!(x, sampler.mulaw().decode(argmax));
    }

    // A reset forgets everything: the first steps match a fresh sampler.
    sampler.reset();
    assert!(sampler.logits().iter().all(|&v| v == 0.0));
    let mut fresh = Sampler::from_model(&model).unwrap();
    for &c in &classes[..20] {
        assert_eq!(sampler.step(c).to_vec(), fresh.step(c));
    }
    // Out-of-range classes are clamped, not a panic.
    assert_eq!(
        sampler.step(10_000).to_vec(),
        fresh.step(255).to_vec(),
        "clamped to the last class"
    );
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[test]
fn sampling_follows_the_tempered_softmax() {
    let logits = [0.0f32, 1.0, 2.0, -1.0];
    let mut scratch = [0.0f32; 4];
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for temperature in [1.0f32, 0.5, 2.0] {
        let z: Vec<f32> = logits.iter().map(|l| (l / temperature).exp()).collect();
        let total: f32 = z.iter().sum();
        let mut counts = [0usize; 4];
        let n = 40_000;
        for _ in 0..n {
            counts[sample_class(&logits, temperature, &mut scratch, &mut rng)] += 1;
        }
        for i in 0..4 {
            let freq = counts[i] as f32 / n as f32;
            let p = z[i] / total;
            assert!(
                (freq - p).abs() < 0.01,
                "T={temperature} class {i}: {freq} vs {p}"
            );
        }
    }
    for t in [0.0, -1.0, f32::NAN, 1e-40] {
        assert_eq!(sample_class(&logits, t, &mut scratch, &mut rng), 2);
    }
}

/// A floor takes its share of the total from every class: the classes
/// below it are never drawn, the rest keep their proportions.
#[test]
fn sampling_above_a_floor_follows_the_rest_of_the_softmax() {
    let logits = [0.0f32, 1.0, 2.0, -1.0];
    let mut scratch = [0.0f32; 4];
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let z: Vec<f32> = logits.iter().map(|l| l.exp()).collect();
    let total: f32 = z.iter().sum();
    // Class 3 holds 3.2% and class 0 8.7% of the total: a 5% floor cuts
    // class 3 only.
    let kept: Vec<f32> = z.iter().map(|p| (p / total - 0.05).max(0.0)).collect();
    let kept_total: f32 = kept.iter().sum();
    let mut counts = [0usize; 4];
    let n = 40_000;
    for _ in 0..n {
        counts[sample_class_above_floor(&logits, 1.0, 0.05, &mut scratch, &mut rng)] += 1;
    }
    assert_eq!(counts[3], 0, "a class below the floor was drawn");
    for i in 0..3 {
        let freq = counts[i] as f32 / n as f32;
        let p = kept[i] / kept_total;
        assert!((freq - p).abs() < 0.01, "class {i}: {freq} vs {p}");
    }
    // No floor is the plain draw, class for class.
    let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(13), ChaCha8Rng::seed_from_u64(13));
    for _ in 0..1_000 {
        assert_eq!(
            sample_class_above_floor(&logits, 0.7, 0.0, &mut scratch, &mut a),
            sample_class(&logits, 0.7, &mut scratch, &mut b)
        );
    }
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("reverie-wavenet-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn model_file_round_trip_gives_identical_logits() {
    for predictor in [false, true] {
        let mut cfg = config(&[1, 2, 4, 8, 1, 2, 4, 8], 8, 8, 16, 256);
        if predictor {
            cfg = with_predictor(cfg, true);
        }
        model_file_round_trip(random_model(cfg, 12), predictor);
    }
    // The options of the signal coding and the predictor come back from
    // the file; each is stored only where it differs from what files
    // before it meant.
    let coded = coded_configs();
    let (gentle, filtered) = (coded[coded.len() - 1].clone(), coded[coded.len() - 2].clone());
    for (cfg, stored, absent) in [
        (gentle, "\"emphasis_128ths\":64", "pitch_lowpass"),
        (filtered, "\"pitch_lowpass\":0.1", "emphasis_128ths"),
        (coded[0].clone(), "\"dc_block\":true", "emphasis_128ths"),
    ] {
        let model = random_model(cfg.clone(), 15);
        let bytes = model.to_raw().unwrap().to_bytes().unwrap();
        let back = WavenetModel::from_bytes(&bytes, &Device::Cpu).unwrap();
        assert_eq!(back.config, cfg);
        let json = back.meta.config.to_string();
        assert!(json.contains(stored) && !json.contains(absent), "{json}");
        let seq = random_classes(64, 256, 16);
        assert_eq!(candle_logits(&back, &seq), candle_logits(&model, &seq));
    }
}

fn model_file_round_trip(mut model: WavenetModel, predictor: bool) {
    model.meta.name = "test net".into();
    model.meta.training.description = "unit test".into();
    model.meta.training.metrics.insert("val_nll".into(), 3.5);
    let dir = temp_dir("rt");
    let path = dir.join("w.safetensors");
    model.save(&path).unwrap();

    let back = WavenetModel::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.meta, model.meta);
    assert_eq!(back.config, model.config);
    assert_eq!(back.meta.kind, ModelKind::Wavenet);
    assert_eq!(back.meta.config["receptive_field"], model.receptive_field());
    // A plain model's file says nothing of predictors: files from before
    // the option and after it are the same.
    assert_eq!(back.meta.config.get("predictor").is_some(), predictor);
    assert!(back.meta.config.get("emphasis_128ths").is_none());
    assert_eq!(back.config.prediction_inputs(), if predictor { 2 } else { 0 });
    let seq = random_classes(64, 256, 13);
    assert_eq!(candle_logits(&back, &seq), candle_logits(&model, &seq));

    let mut from_file = Sampler::load(&path).unwrap();
    let mut in_memory = Sampler::from_model(&model).unwrap();
    assert_eq!(from_file.sample_rate(), RATE);
    assert_eq!(from_file.config(), &model.config);
    assert_eq!(from_file.meta().name, "test net");
    for &c in &seq {
        assert_eq!(from_file.step(c).to_vec(), in_memory.step(c));
    }
    let bytes = std::fs::read(&path).unwrap();
    assert!(Sampler::from_bytes(&bytes).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tiny_raw() -> RawModel {
    random_model(config(&[1, 2, 4], 4, 4, 8, 16), 14)
        .to_raw()
        .unwrap()
}

/// Both loaders must reject the bytes the same way; returns the candle
/// loader's error.
fn reject(raw: &RawModel) -> ModelFileError {
    let bytes = raw.to_bytes().unwrap();
    let sampler_err = Sampler::from_bytes(&bytes).expect_err("the sampler must reject it");
    let model_err = WavenetModel::from_bytes(&bytes, &Device::Cpu).expect_err("must be rejected");
    assert_eq!(
        std::mem::discriminant(&sampler_err),
        std::mem::discriminant(&model_err),
        "{sampler_err} vs {model_err}"
    );
    model_err
}

#[test]
fn a_perception_model_is_the_wrong_kind() {
    let perception = PerceptionConfig {
        window: 2_000,
        frontend_filters: 8,
        frontend_kernel: 100,
        frontend_stride: 20,
        channels: vec![8, 8],
        kernel: 3,
        pool: vec![true, false, false],
        bn_eps: 1e-5,
    };
    let model =
        PerceptionModel::init(perception, RATE, vec!["a".into(), "b".into()], 0, &Device::Cpu).unwrap();
    let raw = model.to_raw().unwrap();
    let err = reject(&raw);
    assert!(
        matches!(
            err,
            ModelFileError::WrongKind {
                expected: ModelKind::Wavenet,
                found: ModelKind::Perception
            }
        ),
        "{err}"
    );
    // And the other way round.
    let bytes = tiny_raw().to_bytes().unwrap();
    let err = PerceptionModel::from_bytes(&bytes, &Device::Cpu).unwrap_err();
    assert!(matches!(
        err,
        ModelFileError::WrongKind {
            expected: ModelKind::Perception,
            found: ModelKind::Wavenet
        }
    ));
}

#[test]
fn wrong_or_missing_tensors_are_rejected() {
    let mut raw = tiny_raw();
    let (_, data) = raw.tensors.remove("layer1.skip.weight").unwrap();
    raw.tensors
        .insert("layer1.skip.weight".into(), (vec![8, 4], data.clone()));
    match reject(&raw) {
        ModelFileError::WrongShape {
            name,
            expected,
            found,
        } => {
            assert_eq!(name, "layer1.skip.weight");
            assert_eq!(expected, vec![4, 8]);
            assert_eq!(found, vec![8, 4]);
        }
        other => panic!("{other}"),
    }

    let mut raw = tiny_raw();
    raw.tensors.remove("head2.bias");
    assert!(matches!(reject(&raw), ModelFileError::MissingTensor(n) if n == "head2.bias"));

    // The last layer has no residual convolution; a middle one must.
    let mut raw = tiny_raw();
    assert!(!raw.tensors.contains_key("layer2.residual.weight"));
    raw.tensors.remove("layer0.residual.bias");
    assert!(matches!(reject(&raw), ModelFileError::MissingTensor(_)));

    // Channel counts in the config that the tensors do not have.
    let mut raw = tiny_raw();
    raw.meta.config["skip_channels"] = 9.into();
    assert!(matches!(reject(&raw), ModelFileError::WrongShape { .. }));
}

#[test]
fn inconsistent_configs_are_rejected() {
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "receptive field that does not match the dilations",
            Box::new(|c| c["receptive_field"] = 9.into()),
        ),
        (
            "dilations changed but not the receptive field",
            Box::new(|c| c["dilations"] = serde_json::json!([1, 2, 8])),
        ),
        (
            "no receptive field",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("receptive_field");
            }),
        ),
        (
            "zero dilation",
            Box::new(|c| {
                c["dilations"] = serde_json::json!([1, 0, 4]);
                c["receptive_field"] = 6.into();
            }),
        ),
        (
            "absurd dilation (must not exhaust memory)",
            Box::new(|c| {
                c["dilations"] = serde_json::json!([1, 2, 1u64 << 40]);
                c["receptive_field"] = ((1u64 << 40) + 4).into();
            }),
        ),
        ("one class", Box::new(|c| c["classes"] = 1.into())),
        ("no channels", Box::new(|c| c["residual_channels"] = 0.into())),
        ("not an object", Box::new(|c| *c = serde_json::json!("big"))),
        ("negative", Box::new(|c| c["skip_channels"] = (-8).into())),
        (
            "a predictor whose order is not below its window",
            Box::new(
                |c| c["predictor"] = serde_json::json!({"order": 40, "window": 24, "update_every": 5, "long_term": false, "min_lag": 3, "max_lag": 17}),
            ),
        ),
        (
            "a predictor with an absurd window (must not exhaust memory)",
            Box::new(
                |c| c["predictor"] = serde_json::json!({"order": 4, "window": 1u64 << 40, "update_every": 5, "long_term": true, "min_lag": 3, "max_lag": 17}),
            ),
        ),
        (
            "a predictor with fields missing",
            Box::new(|c| c["predictor"] = serde_json::json!({"order": 4})),
        ),
    ];
    for (what, edit) in edits {
        let mut raw = tiny_raw();
        edit(&mut raw.meta.config);
        let err = reject(&raw);
        assert!(matches!(err, ModelFileError::InvalidConfig(_)), "{what}: {err}");
        eprintln!("{what}: {err}");
    }
}

#[test]
fn the_default_model_builds_and_runs() {
    let model = WavenetModel::init(WavenetConfig::default(), RATE, 0, &Device::Cpu).unwrap();
    assert_eq!(model.receptive_field(), 2047);
    // The tensors are those the architecture has, 245 472 parameters.
    let shapes = model.config.shapes();
    let shapes = shapes.named();
    let tensors = model.net.named();
    assert_eq!(tensors.len(), shapes.len());
    for ((name, role, t), (expected, expected_role, shape)) in tensors.iter().zip(&shapes) {
        assert_eq!(
            (name, role, t.dims()),
            (expected, expected_role, shape.as_slice())
        );
    }
    let n: usize = tensors.iter().map(|(_, _, t)| t.elem_count()).sum();
    assert_eq!(n, 245_472);
    let mut sampler = Sampler::from_model(&model).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let audio = sampler.generate(500, 1.0, &mut rng);
    assert!(audio.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
    let logits = candle_logits(&model, &[128; 4]);
    assert!(logits.iter().flatten().all(|v| v.is_finite()));
    assert_eq!(
        model.net.embedding.dtype(),
        DType::F32,
        "weights are f32 like every model file"
    );
}

/// On the built-in model, the bfloat16 weights score audio almost exactly
/// as the f32 ones: what the model itself generates (the sound the fast
/// kernels are for) and a synthetic tone it has not learnt (where its
/// logits are extreme). The rounding moves each sample's likelihood by
/// about a percent either way, and the average by far less.
#[test]
fn reduced_precision_hardly_moves_the_built_in_models_likelihood() {
    let mut exact = reverie_engine::defaults::wavenet().unwrap();
    let q = exact.mulaw();
    let rate = exact.sample_rate() as f32;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let generated: Vec<usize> = exact
        .generate(6_000, 1.0, &mut rng)
        .iter()
        .map(|&x| q.encode(x))
        .collect();
    let tone: Vec<usize> = (0..6_000)
        .map(|i| {
            let t = i as f32 / rate;
            let env = 0.5 * (-3.0 * t).exp();
            let x: f32 = (1..5)
                .map(|h| (std::f32::consts::TAU * 220.0 * h as f32 * t).sin() / h as f32)
                .sum();
            q.encode(env * x)
        })
        .collect();
    // (kernels, bound on the mean |difference| per sample, bound on the
    // difference of the means), both relative to the f32 model's NLL.
    for (kernels, per_sample, of_mean) in [
        (Kernels::Avx512Bf16, 0.01, 0.002),
        (Kernels::Avx512Int8, 0.08, 0.01),
        (Kernels::Avx2Int8, 0.08, 0.01),
    ] {
        let mut fast = exact.clone();
        if !fast.use_kernels(kernels) {
            eprintln!("skipped: this CPU cannot run {kernels:?}");
            continue;
        }
        for (what, classes) in [("its own generation", &generated), ("a synthetic tone", &tone)] {
            let a = sequence_nll(&mut exact, classes);
            let b = sequence_nll(&mut fast, classes);
            let n = a.len() as f64;
            let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
            let mean_abs: f64 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| f64::from(x - y).abs())
                .sum::<f64>()
                / n;
            eprintln!(
                "built-in model, {what}: NLL f32 {:.4}, {kernels:?} {:.4}, mean |difference| {mean_abs:.2e} nats",
                mean(&a),
                mean(&b)
            );
            assert!(mean_abs > 0.0, "{kernels:?} did not run");
            assert!(
                mean_abs < per_sample * mean(&a),
                "{kernels:?}, {what}: {mean_abs}"
            );
            assert!(
                (mean(&a) - mean(&b)).abs() < of_mean * mean(&a),
                "{kernels:?}, {what}"
            );
        }
    }
}

/// With each coding option, what the sampler generates is what candle
/// predicts: the audio, coded back into input classes (pre-emphasis of
/// the de-emphasised output gives the fed classes back), gives candle's
/// logits at every step, and a fresh sampler fed that audio sample by
/// sample gives them too.
#[test]
fn coded_generation_is_what_candle_predicts() {
    use reverie_engine::signal_coding::SignalCoding;
    for (k, cfg) in coded_configs().into_iter().enumerate() {
        let model = random_model(cfg.clone(), 40 + k as u64);
        let mut sampler = Sampler::from_model(&model).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let q = MuLaw::new(cfg.classes).unwrap();
        // Generation starts by feeding one sample of silence.
        let mut fed = vec![q.encode(0.0)];
        let mut audio = Vec::new();
        let mut logits = Vec::new();
        for _ in 0..300 {
            let x = sampler.sample_next(1.0, &mut rng);
            assert!(x.is_finite() && x.abs() <= 1.0, "{x}");
            audio.push(x);
            fed.push(sampler.last_input_class());
            logits.push(sampler.logits().to_vec());
        }
        let expected = candle_logits(&model, &fed);
        for (t, got) in logits.iter().enumerate() {
            let diff = max_abs_diff(got, &expected[t + 1]);
            assert!(diff <= TOLERANCE, "config {k} sample {t}: {diff}");
        }
        // The audio codes back into the classes that made it, wherever
        // the random model's noise did not drive the de-emphasis into
        // clipping (the filter goes on from the clipped value, as
        // pre-emphasis of the clipped audio does).
        let mut coding = SignalCoding::new(&cfg, q);
        coding.input_class(0.0);
        let mut checked = 0;
        for (t, &x) in audio.iter().enumerate() {
            let class = coding.input_class(x);
            if x.abs() < 1.0 {
                assert_eq!(class, fed[t + 1], "config {k} sample {t}");
                checked += 1;
            }
        }
        assert!(checked > 150, "config {k}: {checked} unclipped samples");
        let distinct: std::collections::BTreeSet<_> = fed.iter().collect();
        assert!(distinct.len() > 5, "config {k}: sampling at temperature 1 varies");
    }
}

/// The comparable likelihood is a distribution over the audio's µ-law
/// classes with every coding (it sums to one, but for the mass a shift
/// carries past full scale), reaches every class, and for a plain model
/// is the cross-entropy of the logits.
#[test]
fn the_signal_likelihood_is_a_distribution_over_the_audios_classes() {
    let mut cfgs = vec![config(&[1, 2, 4], 8, 8, 16, 256)];
    cfgs.extend(coded_configs());
    for (k, cfg) in cfgs.into_iter().enumerate() {
        let model = random_model(cfg.clone(), 60 + k as u64);
        let mut sampler = Sampler::from_model(&model).unwrap();
        let q = MuLaw::new(cfg.classes).unwrap();
        let audio: Vec<f32> = (0..400).map(|i| 0.4 * (i as f32 * 0.11).sin()).collect();
        for (t, &x) in audio.iter().enumerate().take(audio.len() - 1) {
            sampler.feed_audio(x);
            if t % 50 != 49 {
                continue;
            }
            let mut total = 0.0f64;
            let mut worst = 0.0f64;
            for class in 0..cfg.classes {
                let nll = f64::from(sampler.signal_nll(q.decode(class)));
                assert!(nll.is_finite() && nll >= -1e-5, "config {k}: {nll}");
                total += (-nll).exp();
                // Near silence every coding's shifted cells overlap the
                // audio's (at the edges a shift can leave full scale out
                // of reach, as the coding cannot make it).
                if q.decode(class).abs() < 0.1 {
                    worst = worst.max(nll);
                }
            }
            // A random model's distribution is broad: no class near
            // silence is anywhere near out of reach.
            assert!(worst < 20.0, "config {k} sample {t}: a class at {worst} nats");
            assert!(
                total <= 1.0 + 1e-4,
                "config {k} sample {t}: the classes sum to {total}"
            );
            if cfg.pre_emphasis || cfg.residual_target {
                assert!(total > 0.9, "config {k} sample {t}: the classes sum to {total}");
                eprintln!("config {k} sample {t}: classes sum to {total:.4}, least likely {worst:.1} nats");
            } else {
                assert!(
                    (total - 1.0).abs() < 1e-4,
                    "config {k} sample {t}: the classes sum to {total}"
                );
                let next = q.encode(audio[t + 1]);
                let direct = nll_of(sampler.logits(), next);
                assert!((sampler.signal_nll(audio[t + 1]) - direct).abs() < 1e-5);
            }
        }
    }
}

/// A model stored with tone-aware sampling samples exactly as the plain
/// model does through [`ToneAwareSampler`], primed or not, and after a
/// reset; the option is kept in the model file.
#[test]
fn the_tone_aware_option_samples_as_the_tone_aware_sampler() {
    let plain_config = config(&[1, 2, 4, 8, 16], 8, 8, 16, 256);
    let plain = random_model(plain_config.clone(), 21);
    let mut option = plain.clone();
    option.config.tone_aware = true;
    let option = WavenetModel::from_raw(&option.to_raw().unwrap(), &Device::Cpu).unwrap();
    assert!(option.config.tone_aware);
    let mut inside = Sampler::from_model(&option).unwrap();
    assert!(inside.is_tone_aware());
    let mut outside = Sampler::from_model(&plain).unwrap();
    assert!(!outside.is_tone_aware());
    let mut tone = ToneAwareSampler::new(RATE, 256).unwrap();
    let prime: Vec<f32> = (0..500).map(|i| 0.3 * (i as f32 * 0.08).sin()).collect();
    let q = MuLaw::new(256).unwrap();
    for round in 0..2 {
        inside.prime(&prime);
        outside.prime(&prime);
        // The sampler's own tone-aware draw hears what the network hears:
        // the primed audio as its classes decode.
        prime.iter().for_each(|&x| tone.push(q.decode(q.encode(x))));
        let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(round), ChaCha8Rng::seed_from_u64(round));
        let mut sharpened = 0;
        for t in 0..400 {
            sharpened += usize::from(tone.power() > 1.0);
            let x = inside.sample_next(1.0, &mut a);
            let y = tone.sample_next(&mut outside, 1.0, &mut b);
            assert_eq!(x, y, "round {round} sample {t}");
        }
        assert!(
            sharpened > 0,
            "round {round}: the primed tone never sharpened a draw"
        );
        inside.reset();
        outside.reset();
        tone.reset();
    }
}

/// A warm start with prediction inputs computes what the trained model did
/// (its new embeddings are zero) and still learns them: the embeddings are
/// trainable tensors of the new model. A different architecture is refused.
#[test]
fn a_warm_start_begins_exactly_where_its_model_was() {
    let plain = random_model(config(&[1, 2, 4, 8, 1, 2], 8, 6, 12, 256), 31);
    let options = WavenetConfig {
        tone_aware: true,
        ..with_predictor(plain.config.clone(), true)
    };
    let warm = WavenetModel::warm_start(&plain, options.clone()).unwrap();
    assert_eq!(warm.config, options);
    assert_eq!(warm.net.prediction_embeddings.len(), 2);
    let classes = random_classes(300, 256, 32);
    let before = candle_logits(&plain, &classes);
    let after = candle_logits(&warm, &classes);
    for (a, b) in before.iter().zip(&after) {
        assert!(max_abs_diff(a, b) < 1e-5, "{}", max_abs_diff(a, b));
    }
    // The copied tensors are the trained model's, not fresh draws.
    let fresh = WavenetModel::init(options, RATE, 31, &Device::Cpu).unwrap();
    let trained: Vec<f32> = plain.net.head2_w.flatten_all().unwrap().to_vec1().unwrap();
    let warm_head: Vec<f32> = warm.net.head2_w.flatten_all().unwrap().to_vec1().unwrap();
    let fresh_head: Vec<f32> = fresh.net.head2_w.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(warm_head, trained);
    assert!(max_abs_diff(&fresh_head, &trained) > 0.1);

    for other in [
        config(&[1, 2, 4, 8, 1, 2], 8, 6, 16, 256),
        config(&[1, 2, 4, 8, 1], 8, 6, 12, 256),
    ] {
        match WavenetModel::warm_start(&plain, other) {
            Err(ModelFileError::InvalidConfig(why)) => assert!(why.contains("layers"), "{why}"),
            other => panic!("expected the architecture refused, got {other:?}"),
        }
    }
}

/// The tone prior shapes what is scored exactly as a prior fed the same
/// audio shapes the network's logits, it survives the model file, and on a
/// periodic sound it makes the next sample far likelier than the network
/// alone (a random network knows nothing of tones).
#[test]
fn the_tone_prior_shapes_scoring_from_the_audio_heard() {
    let prior = TonePriorConfig {
        weight: 1.0,
        max_trust: 0.9,
        mix: 0.1,
    };
    let toned = WavenetConfig {
        tone_prior: Some(prior),
        ..with_predictor(config(&[1, 2, 4, 8, 16], 8, 6, 12, 256), true)
    };
    let model = random_model(toned.clone(), 41);
    let raw = RawModel::from_bytes(&model.to_raw().unwrap().to_bytes().unwrap()).unwrap();
    let mut with = Sampler::from_raw(&raw).unwrap();
    assert_eq!(with.config(), &toned);
    let mut without = with.clone();
    without.set_tone_prior(None).unwrap();

    let q = MuLaw::default();
    let audio: Vec<f32> = (0..4_000)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            0.4 * (std::f32::consts::TAU * 180.0 * t).sin() * (-t).exp()
        })
        .collect();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    Scorer::new(&mut with).push_audio(&audio, &mut a);
    Scorer::new(&mut without).push_audio(&audio, &mut b);

    // The reference: the network's logits (the sampler without a prior)
    // shaped by a prior that heard the same decoded classes.
    let mut reference = TonePrior::new(prior, RATE, q).unwrap();
    let mut plain = with.clone();
    plain.set_tone_prior(None).unwrap();
    plain.reset();
    let mut shaped = vec![0.0; 256];
    let mut shaped_any = false;
    for (t, &x) in audio.iter().enumerate() {
        if t > 0 {
            reference.shape(plain.logits(), &mut shaped);
            let expected = nll_of(&shaped, q.encode(x));
            assert!(
                (expected - a[t - 1]).abs() < 1e-4,
                "sample {t}: {expected} vs {}",
                a[t - 1]
            );
            shaped_any |= (a[t - 1] - b[t - 1]).abs() > 1e-3;
        }
        reference.push(q.decode(q.encode(x)));
        plain.feed_audio(x);
    }
    assert!(shaped_any, "the prior never shaped a sample");
    let mean = |v: &[f32]| v[2_000..].iter().sum::<f32>() / (v.len() - 2_000) as f32;
    assert!(
        mean(&a) < 0.6 * mean(&b),
        "nats per sample on the tone: with the prior {}, without {}",
        mean(&a),
        mean(&b)
    );

    // A prior on a residual-target model is refused: it shapes audio classes.
    let residual = WavenetConfig {
        residual_target: true,
        ..toned
    };
    assert!(residual.validate().is_err());
}

/// DC-blocked feedback changes only what generation hears of its own
/// output: the same weights score recorded audio exactly alike with and
/// without it, and generated from silence, the model without it drifts
/// further from zero over a second than the one with it.
#[test]
fn dc_blocked_feedback_leaves_scoring_alone_and_keeps_the_offset_out() {
    let base = coded_configs()[3].clone();
    assert!(base.pre_emphasis && base.residual_target && !base.dc_block);
    let blocked = WavenetConfig {
        dc_block: true,
        ..base.clone()
    };
    let plain = random_model(base, 77);
    let with = WavenetModel::new(
        blocked,
        plain.net.clone(),
        "blocked",
        plain.meta.sample_rate,
        Vec::new(),
    )
    .unwrap();
    let audio: Vec<f32> = (0..3_000)
        .map(|i| 0.3 * (i as f32 * 0.05).sin() + 0.05 * (i as f32 * 0.7).sin())
        .collect();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    Scorer::new(&mut Sampler::from_model(&plain).unwrap()).push_audio(&audio, &mut a);
    Scorer::new(&mut Sampler::from_model(&with).unwrap()).push_audio(&audio, &mut b);
    assert_eq!(a, b);

    let offset = |model: &WavenetModel| -> f64 {
        let mut sampler = Sampler::from_model(model).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let out = sampler.generate(16_000, 1.0, &mut rng);
        // The mean of each 50 ms, at its largest over the second half.
        out[8_000..]
            .chunks(800)
            .map(|c| (c.iter().map(|&x| f64::from(x)).sum::<f64>() / c.len() as f64).abs())
            .fold(0.0, f64::max)
    };
    let (free, held) = (offset(&plain), offset(&with));
    eprintln!("largest 50 ms mean: {free:.4} without the blocker, {held:.4} with it");
    assert!(held < 0.05, "with the blocker the offset reaches {held}");
    assert!(free > 4.0 * held, "without {free}, with {held}");
}
