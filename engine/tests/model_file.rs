mod common;

use candle_core::Device;
use reverie_engine::model_file::{ModelFileError, ModelKind, RawModel};
use reverie_engine::perception::PerceptionModel;

fn bytes() -> Vec<u8> {
    common::tiny_model(1).to_raw().unwrap().to_bytes().unwrap()
}

#[test]
fn round_trip_keeps_metadata_and_outputs() {
    let mut model = common::tiny_model(1);
    model.meta.training.description = "unit test".into();
    model.meta.training.metrics.insert("val_accuracy".into(), 0.5);
    let dir = std::env::temp_dir().join(format!("reverie-mf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    model.save(&path).unwrap();
    let back = PerceptionModel::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.meta, model.meta);
    assert_eq!(back.config, model.config);
    let x = candle_core::Tensor::from_vec(common::window(2_000, 3), (1, 2_000), &Device::Cpu).unwrap();
    assert_eq!(logits(&model, &x), logits(&back, &x));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The class logits of `model` for the windows `x`, flat.
fn logits(model: &PerceptionModel, x: &candle_core::Tensor) -> Vec<f32> {
    let logits = model.net.forward(x).unwrap().logits;
    logits.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn load(bytes: &[u8]) -> ModelFileError {
    PerceptionModel::from_bytes(bytes, &Device::Cpu).expect_err("must be rejected")
}

fn raw() -> RawModel {
    RawModel::from_bytes(&bytes()).unwrap()
}

#[test]
fn truncated_file() {
    let b = bytes();
    assert!(matches!(load(&b[..b.len() - 100]), ModelFileError::Truncated(_)));
    assert!(matches!(load(&b[..4]), ModelFileError::Truncated(_)));
    assert!(matches!(load(&[]), ModelFileError::Truncated(_)));
}

#[test]
fn not_safetensors() {
    assert!(matches!(
        load(b"RIFF....WAVEfmt this is a wav file, not a model"),
        ModelFileError::NotSafetensors(_)
    ));
}

#[test]
fn missing_metadata() {
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &[0, 0, 0, 0]).unwrap();
    let b = safetensors::serialize(vec![("a", view)], None).unwrap();
    assert!(matches!(load(&b), ModelFileError::MissingMetadata));
}

#[test]
fn wrong_kind() {
    let mut r = raw();
    r.meta.kind = ModelKind::Wavenet;
    assert!(matches!(
        load(&r.to_bytes().unwrap()),
        ModelFileError::WrongKind {
            expected: ModelKind::Perception,
            found: ModelKind::Wavenet
        }
    ));
}

#[test]
fn unsupported_version() {
    let mut r = raw();
    r.meta.format_version = 99;
    assert!(matches!(
        load(&r.to_bytes().unwrap()),
        ModelFileError::UnsupportedVersion { found: 99, .. }
    ));
}

#[test]
fn missing_tensor() {
    let mut r = raw();
    r.tensors.remove("conv2.weight");
    match load(&r.to_bytes().unwrap()) {
        ModelFileError::MissingTensor(name) => assert_eq!(name, "conv2.weight"),
        e => panic!("wrong error {e}"),
    }
}

#[test]
fn wrongly_shaped_tensor() {
    let mut r = raw();
    r.tensors.insert("bn1.weight".into(), (vec![3], vec![1.0; 3]));
    match load(&r.to_bytes().unwrap()) {
        ModelFileError::WrongShape {
            name,
            expected,
            found,
        } => {
            assert_eq!(
                (name.as_str(), expected, found),
                ("bn1.weight", vec![12], vec![3])
            );
        }
        e => panic!("wrong error {e}"),
    }
}

#[test]
fn non_finite_weights() {
    let mut r = raw();
    r.tensors.get_mut("head.weight").unwrap().1[4] = f32::NAN;
    assert!(matches!(load(&r.to_bytes().unwrap()), ModelFileError::NonFinite(n) if n == "head.weight"));
    let mut r = raw();
    r.tensors.get_mut("conv0.weight").unwrap().1[0] = f32::INFINITY;
    assert!(matches!(load(&r.to_bytes().unwrap()), ModelFileError::NonFinite(n) if n == "conv0.weight"));
}

#[test]
fn invalid_config() {
    let mut r = raw();
    r.meta.config["frontend_stride"] = serde_json::json!(33);
    assert!(matches!(
        load(&r.to_bytes().unwrap()),
        ModelFileError::InvalidConfig(_)
    ));
}

#[test]
fn missing_file_is_io_error() {
    let e = PerceptionModel::load(
        std::path::Path::new("/nonexistent/model.safetensors"),
        &Device::Cpu,
    );
    assert!(matches!(e, Err(ModelFileError::Io { .. })));
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let b = bytes();
    for cut in (0..b.len()).step_by(997) {
        assert!(PerceptionModel::from_bytes(&b[..cut], &Device::Cpu).is_err());
    }
}

#[test]
fn embedded_default_perception_model_loads() {
    let model = reverie_engine::defaults::perception(&Device::Cpu).unwrap();
    assert_eq!(model.meta.kind, ModelKind::Perception);
    assert!(model.num_classes() >= 2);
    assert!(model.config.validate().is_ok());
}

#[test]
fn negative_running_variance() {
    let mut r = raw();
    r.tensors.get_mut("bn2.running_var").unwrap().1[1] = -0.5;
    match load(&r.to_bytes().unwrap()) {
        ModelFileError::InvalidConfig(why) => assert!(why.contains("bn2.running_var"), "{why}"),
        e => panic!("wrong error {e}"),
    }
}

#[test]
fn other_metadata_entries_are_kept() {
    let mut r = raw();
    r.extra_metadata
        .insert("reverie_checkpoint".into(), "{\"step\":3}".into());
    let back = RawModel::from_bytes(&r.to_bytes().unwrap()).unwrap();
    assert_eq!(back.extra_metadata, r.extra_metadata);
    assert_eq!(back.meta, r.meta);
    // The engine reads the model as it is.
    PerceptionModel::from_raw(&back, &Device::Cpu).unwrap();
}

/// Whether `got` is `want` up to float rounding in the kernels.
fn close(got: f32, want: f32) -> bool {
    (got - want).abs() <= 1e-3 * want.abs().max(1.0)
}

/// Written and read again, `model` has `file`'s metadata and tensors.
fn assert_rewritten_unchanged(model: &RawModel, file: &RawModel) {
    let again = RawModel::from_bytes(&model.to_bytes().unwrap()).unwrap();
    assert_eq!(again.meta, file.meta);
    assert_eq!(again.tensors, file.tensors);
    assert!(again.extra_metadata.is_empty());
}

/// The shipped models load to exactly the tensors in their files, are
/// written back unchanged, and compute what they computed when the loaders
/// were two hand-written copies (values recorded then, commit ba9c954).
#[test]
fn embedded_defaults_load_unchanged() {
    use reverie_engine::defaults::{PERCEPTION_BYTES, WAVENET_BYTES};
    use reverie_engine::wavenet::WavenetModel;

    let raw = RawModel::from_bytes(PERCEPTION_BYTES).unwrap();
    let model = PerceptionModel::from_bytes(PERCEPTION_BYTES, &Device::Cpu).unwrap();
    let back = model.to_raw().unwrap();
    assert_eq!(back.tensors, raw.tensors);
    assert_rewritten_unchanged(&back, &raw);
    let w = model.config.window;
    let x: Vec<f32> = (0..w)
        .map(|n| {
            let t = n as f32 / 16_000.0;
            0.5 * (std::f32::consts::TAU * 440.0 * t).sin()
                + 0.3 * (std::f32::consts::TAU * 1250.0 * t).sin() * (t * 7.0).cos()
        })
        .collect();
    let x = candle_core::Tensor::from_vec(x, (1, w), &Device::Cpu).unwrap();
    let logits = logits(&model, &x);
    let then = [
        -9.033145,
        0.501916,
        -8.038287,
        -2.1723604,
        0.2638195,
        -4.97414,
        2.6244664,
        0.022025669,
        0.8153179,
        3.2391167,
    ];
    assert!(logits.iter().zip(then).all(|(&g, w)| close(g, w)), "{logits:?}");

    let raw = RawModel::from_bytes(WAVENET_BYTES).unwrap();
    let wavenet = WavenetModel::from_bytes(WAVENET_BYTES, &Device::Cpu).unwrap();
    let back = wavenet.to_raw().unwrap();
    assert_eq!(back.tensors, raw.tensors);
    assert_rewritten_unchanged(&back, &raw);
    let mut sampler = reverie_engine::defaults::wavenet().unwrap();
    let classes = (0..3000).map(|i| {
        let i = i as f32;
        (128.0 + 100.0 * (i * 0.031).sin() * (i * 0.0017).cos()) as usize
    });
    let then: [[f32; 4]; 5] = [
        [14.56278, 9.553836, 5.9165354, -20.314636],
        [-0.0959034, 11.672346, 11.953993, -18.952255],
        [-1.6446962, -1.5093215, -1.353949, 5.5777593],
        [-0.078967094, 6.3884053, 7.4990077, -18.105896],
        [33.781895, 14.468435, 0.08869207, -27.27517],
    ];
    for (i, c) in classes.enumerate() {
        let l = sampler.step(c);
        if i % 600 == 599 {
            let got = [l[100], l[128], l[140], l[200]];
            let want = then[i / 600];
            assert!(
                got.iter().zip(want).all(|(&g, w)| close(g, w)),
                "step {i}: {got:?}"
            );
        }
    }
}
