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
    let a = model
        .net
        .forward(&x)
        .unwrap()
        .logits
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = back
        .net
        .forward(&x)
        .unwrap()
        .logits
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(a, b);
    std::fs::remove_dir_all(&dir).unwrap();
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
