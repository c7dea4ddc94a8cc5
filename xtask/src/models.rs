//! Finding the perception model a command should use.

use std::path::Path;

use anyhow::Context;
use candle_core::Device;
use reverie_engine::defaults;
use reverie_engine::perception::PerceptionModel;

/// Loads `path`, or the embedded default model when none is given.
pub fn perception(path: Option<&Path>, device: &Device) -> anyhow::Result<PerceptionModel> {
    match path {
        Some(p) => PerceptionModel::load(p, device)
            .with_context(|| format!("loading perception model {}", p.display())),
        None => defaults::perception(device).context("loading the embedded default perception model"),
    }
}
