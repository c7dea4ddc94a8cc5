//! The shipped default perception model (models/perception.safetensors,
//! embedded in the engine) on freshly rendered instrument clips: it loads,
//! it names the instrument families, it classifies clips it never saw, and
//! dreaming toward a class raises that class's score.

use candle_core::{Device, Tensor};
use candle_nn::ops::softmax_last_dim;
use reverie_engine::defaults;
use reverie_engine::dreamer::{normalise, Direction, DreamParams, DreamTarget, Dreamer};
use reverie_engine::perception::PerceptionModel;
use reverie_trainer::render::{find_soundfont, RenderConfig, Renderer, FAMILIES};

/// A seed no training run used, so these clips are new to the model.
const FRESH_SEED: u64 = 0xF2E5;

fn model() -> PerceptionModel {
    defaults::perception(&Device::Cpu).expect("the embedded model loads")
}

/// One fresh 3 s clip of `family` at the model's rate.
fn clip(renderer: &Renderer, family: usize, rate: u32) -> Vec<f32> {
    let config = RenderConfig {
        sample_rate: rate,
        clip_seconds: 3.0,
        clips_per_class: 1,
        seed: FRESH_SEED,
        threads: 1,
        colour: true,
    };
    renderer.render_clip(family, 0, &config).expect("renders")
}

/// Class probabilities of one normalised window.
fn probabilities(model: &PerceptionModel, window: &[f32]) -> Vec<f32> {
    let x = Tensor::from_slice(window, (1, window.len()), &Device::Cpu).unwrap();
    let logits = model.net.forward(&x).unwrap().logits;
    softmax_last_dim(&logits)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// The class with the highest mean probability over three windows.
fn classify(model: &PerceptionModel, audio: &[f32]) -> usize {
    let w = model.config.window;
    let mut mean = vec![0.0f32; model.num_classes()];
    for start in [0, (audio.len() - w) / 2, audio.len() - w] {
        let (window, _) = normalise(&audio[start..start + w]);
        for (m, p) in mean.iter_mut().zip(probabilities(model, &window)) {
            *m += p;
        }
    }
    (0..mean.len())
        .max_by(|&a, &b| mean[a].total_cmp(&mean[b]))
        .unwrap()
}

#[test]
fn default_model_knows_the_instrument_families() {
    let model = model();
    let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
    names.sort_unstable();
    // Classes are the dataset's folders, in sorted order.
    assert_eq!(model.meta.class_names, names);
    assert_eq!(model.meta.sample_rate, 16_000);
    assert!(model.meta.training.metrics.contains_key("val_accuracy"));
}

#[test]
fn default_model_classifies_freshly_rendered_clips() {
    let model = model();
    let renderer = Renderer::load(&find_soundfont().unwrap_or_else(|e| panic!("{e}"))).unwrap();
    let mut correct = Vec::new();
    for (family, f) in FAMILIES.iter().enumerate() {
        let audio = clip(&renderer, family, model.meta.sample_rate);
        let guess = &model.meta.class_names[classify(&model, &audio)];
        eprintln!("{:>8} -> {guess}", f.name);
        if guess == f.name {
            correct.push(f.name);
        }
    }
    assert!(
        correct.len() >= 7,
        "only {} of 10 fresh clips classified correctly: {correct:?}",
        correct.len()
    );
}

#[test]
fn dreaming_toward_a_class_raises_its_score() {
    let model = model();
    let renderer = Renderer::load(&find_soundfont().unwrap_or_else(|e| panic!("{e}"))).unwrap();
    let w = model.config.window;
    let piano = FAMILIES.iter().position(|f| f.name == "piano").unwrap();
    let audio = clip(&renderer, piano, model.meta.sample_rate);
    let (window, _) = normalise(&audio[audio.len() / 2 - w / 2..][..w]);
    let dreamer = Dreamer::new(model.clone(), Device::Cpu);
    for target in ["organ", "brass", "drums"] {
        let class = model.meta.class_names.iter().position(|c| c == target).unwrap();
        let before = probabilities(&model, &window)[class];
        let params = DreamParams {
            target: DreamTarget::Class { class },
            direction: Direction::Toward,
            iterations: 10,
            step: 0.01,
            sparsity: 0.0,
            continuity: 0.0,
            ..DreamParams::default()
        };
        let dreamed = dreamer.dream(&window, &params).unwrap();
        let after = probabilities(&model, &dreamed)[class];
        assert!(
            after > before,
            "{target}: probability {before} -> {after} should rise"
        );
    }
}
