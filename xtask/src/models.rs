//! Finding the perception model a command should use.

use std::path::Path;

use anyhow::{bail, Context};
use candle_core::Device;
use reverie_engine::perception::PerceptionModel;

/// Loads `path`, or the default model when none is given.
pub fn perception(path: Option<&Path>, device: &Device) -> anyhow::Result<PerceptionModel> {
    match path {
        Some(p) => PerceptionModel::load(p, device)
            .with_context(|| format!("loading perception model {}", p.display())),
        None => bail!(
            "no trained default perception model ships with this build yet; pass --model FILE \
             (for example one written by `cargo xtask init-model -o untrained.safetensors`)"
        ),
    }
}
