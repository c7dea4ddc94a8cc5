//! What several trainer tests share.

/// A tensor of a file: name, shape, data.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// The state JSON and tensors (sorted by name) of a checkpoint file, to
/// compare checkpoint formats.
pub fn checkpoint_parts(bytes: &[u8]) -> (serde_json::Value, Vec<NamedTensor>) {
    let raw = reverie_engine::model_file::RawModel::from_bytes(bytes).unwrap();
    let state = serde_json::from_str(&raw.extra_metadata["reverie_checkpoint"]).unwrap();
    let mut tensors: Vec<_> = raw.tensors.into_iter().map(|(n, (s, d))| (n, s, d)).collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    (state, tensors)
}
