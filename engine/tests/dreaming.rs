mod common;

use candle_core::Device;
use reverie_engine::dreamer::{Against, Direction, DreamParams, DreamTarget, Dreamer};

fn dreamer(seed: u64) -> Dreamer {
    Dreamer::new(common::tiny_model(seed), Device::Cpu)
}

fn targets() -> Vec<DreamTarget> {
    vec![
        DreamTarget::LayerMean { layer: 0 },
        DreamTarget::LayerMean { layer: 2 },
        DreamTarget::Channel { layer: 1, channel: 5 },
        DreamTarget::Class { class: 1 },
        DreamTarget::Contrast {
            class: 0,
            against: Against::Class(2),
        },
        DreamTarget::Contrast {
            class: 2,
            against: Against::Others,
        },
    ]
}

fn params(target: DreamTarget, direction: Direction) -> DreamParams {
    DreamParams {
        target,
        direction,
        iterations: 6,
        step: 0.01,
        sparsity: 0.0,
        continuity: 0.0,
        ..DreamParams::default()
    }
}

#[test]
fn every_target_rises_when_dreamed_toward() {
    let d = dreamer(1);
    let x = common::window(2_000, 7);
    for target in targets() {
        let before = d.measure(&x, &target).unwrap().target;
        let dreamed = d.dream(&x, &params(target, Direction::Toward)).unwrap();
        let after = d.measure(&dreamed, &target).unwrap().target;
        assert!(after > before, "{target:?}: {before} -> {after} should rise");
    }
}

#[test]
fn every_target_falls_when_dreamed_away() {
    let d = dreamer(2);
    let x = common::window(2_000, 8);
    for target in targets() {
        let before = d.measure(&x, &target).unwrap().target;
        let dreamed = d.dream(&x, &params(target, Direction::Away)).unwrap();
        let after = d.measure(&dreamed, &target).unwrap().target;
        assert!(after < before, "{target:?}: {before} -> {after} should fall");
    }
}

#[test]
fn each_step_moves_samples_by_at_most_the_step_size() {
    let d = dreamer(3);
    let x = common::window(2_000, 9);
    let p = DreamParams {
        iterations: 3,
        step: 0.01,
        ..params(DreamTarget::Class { class: 0 }, Direction::Toward)
    };
    let dreamed = d.dream(&x, &p).unwrap();
    let max_change = dreamed
        .iter()
        .zip(&x)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_change <= 0.03 + 1e-6, "moved {max_change}");
    assert!(
        max_change >= 0.01 - 1e-6,
        "the normalised gradient should take full steps, moved {max_change}"
    );
}

#[test]
fn sparsity_weight_lowers_first_layer_l1() {
    let d = dreamer(4);
    let x = common::window(2_000, 10);
    let target = DreamTarget::LayerMean { layer: 1 };
    let base = params(target, Direction::Toward);
    let without = d.dream(&x, &base).unwrap();
    let with = d
        .dream(
            &x,
            &DreamParams {
                sparsity: 20.0,
                ..base
            },
        )
        .unwrap();
    let m0 = d.measure(&without, &target).unwrap().sparsity;
    let m1 = d.measure(&with, &target).unwrap().sparsity;
    assert!(m1 < m0, "sparsity {m1} should be below {m0}");
}

#[test]
fn continuity_weight_lowers_first_layer_roughness() {
    let d = dreamer(5);
    let x = common::window(2_000, 11);
    let target = DreamTarget::LayerMean { layer: 1 };
    let base = params(target, Direction::Toward);
    let without = d.dream(&x, &base).unwrap();
    let with = d
        .dream(
            &x,
            &DreamParams {
                continuity: 20.0,
                ..base
            },
        )
        .unwrap();
    let m0 = d.measure(&without, &target).unwrap().continuity;
    let m1 = d.measure(&with, &target).unwrap().continuity;
    assert!(m1 < m0, "continuity {m1} should be below {m0}");
}

#[test]
fn dreaming_is_deterministic() {
    let x = common::window(2_000, 12);
    let p = DreamParams::default();
    let a = dreamer(6).dream(&x, &p).unwrap();
    let b = dreamer(6).dream(&x, &p).unwrap();
    assert_eq!(a, b);
    assert!(a.iter().zip(&x).any(|(u, v)| u != v));
}

#[test]
fn silent_window_gives_zero_delta_and_no_nan() {
    let d = dreamer(7);
    let silent = vec![0.0f32; 2_000];
    let delta = d.dream_delta(&silent, &DreamParams::default(), true).unwrap();
    assert!(delta.iter().all(|v| *v == 0.0));
    // Dreaming *from* silence (ungated) must produce finite sound.
    let from_silence = d.dream_delta(&silent, &DreamParams::default(), false).unwrap();
    assert!(from_silence.iter().all(|v| v.is_finite()));
    assert!(from_silence.iter().any(|v| *v != 0.0));
}

#[test]
fn targets_parse_by_layer_number_and_class_name() {
    let d = dreamer(8);
    let m = d.model();
    assert_eq!(
        DreamTarget::parse("layer:1", m).unwrap(),
        DreamTarget::LayerMean { layer: 0 }
    );
    assert_eq!(
        DreamTarget::parse("channel:2:3", m).unwrap(),
        DreamTarget::Channel { layer: 1, channel: 3 }
    );
    assert_eq!(
        DreamTarget::parse("class:organ", m).unwrap(),
        DreamTarget::Class { class: 1 }
    );
    assert_eq!(
        DreamTarget::parse("contrast:drums:piano", m).unwrap(),
        DreamTarget::Contrast {
            class: 2,
            against: Against::Class(0)
        }
    );
    for bad in [
        "layer:0",
        "layer:5",
        "channel:1:16",
        "class:tuba",
        "contrast:piano:piano",
        "loud",
        "layer:x",
    ] {
        assert!(DreamTarget::parse(bad, m).is_err(), "{bad} should be rejected");
    }
    let t = DreamTarget::parse("contrast:drums", m).unwrap();
    assert_eq!(t.label(&m.meta.class_names), "contrast:drums");
}

/// The receptive field the config reports is the span of input samples
/// that move one frame of the last layer: measured with a gradient.
#[test]
fn receptive_field_is_the_span_a_last_layer_frame_depends_on() {
    use candle_core::{Tensor, Var};
    let model = common::tiny_model(11);
    let config = &model.config;
    let x = Var::from_tensor(&Tensor::from_vec(common::window(2_000, 2), (1, 2_000), &Device::Cpu).unwrap())
        .unwrap();
    let act = model.net.forward(x.as_tensor()).unwrap();
    let last = act.layers.last().unwrap();
    let frame = last.dim(1).unwrap() / 2;
    // ReLU and max pooling block some paths; summed over every channel
    // enough stay open to reach the field's edges.
    let y = last.narrow(1, frame, 1).unwrap().sum_all().unwrap();
    let grads = y.backward().unwrap();
    let g: Vec<f32> = grads
        .get(x.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let first = g.iter().position(|v| *v != 0.0).unwrap();
    let end = g.iter().rposition(|v| *v != 0.0).unwrap();
    assert_eq!(end - first + 1, config.receptive_field());
}
