//! Loading the models the plugin runs: a user's file, or the embedded
//! default when there is none or it cannot be loaded (the user is told why,
//! and nothing else changes).

use candle_core::Device;
use reverie_engine::defaults;
use reverie_engine::perception::PerceptionModel;
use reverie_engine::sampler::Sampler;

/// Loads the perception model at `path`, falling back to the embedded
/// default; returns the model and a message for the user.
pub fn perception(path: Option<&str>, device: &Device) -> (PerceptionModel, String) {
    let Some(p) = path else {
        return (
            default_perception(device),
            "using the built-in perception model".into(),
        );
    };
    match PerceptionModel::load(std::path::Path::new(p), device) {
        Ok(m) => (m, format!("loaded {p}")),
        Err(e) => (
            default_perception(device),
            format!("{e}; using the built-in perception model instead"),
        ),
    }
}

/// Loads the WaveNet at `path` (or the embedded default) as a sampler.
pub fn wavenet(path: Option<&str>) -> (Sampler, String) {
    let Some(p) = path else {
        return (default_wavenet(), "using the built-in WaveNet".into());
    };
    match Sampler::load(std::path::Path::new(p)) {
        Ok(s) => (s, format!("loaded {p}")),
        Err(e) => (
            default_wavenet(),
            format!("{e}; using the built-in WaveNet instead"),
        ),
    }
}

// The embedded models are checked by the engine's tests; failing here would
// mean a broken build, not a user error.
fn default_perception(device: &Device) -> PerceptionModel {
    defaults::perception(device).expect("the embedded default perception model loads")
}

fn default_wavenet() -> Sampler {
    defaults::wavenet().expect("the embedded default WaveNet loads")
}
