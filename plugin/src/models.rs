//! Loading the models the plugin runs: a user's file, or the embedded
//! default when there is none or it cannot be loaded (the user is told why).

use candle_core::Device;
use reverie_engine::defaults;
use reverie_engine::perception::PerceptionModel;

/// Loads the perception model at `path`, falling back to the embedded
/// default; returns the model and a message for the user.
pub fn perception(path: Option<&str>, device: &Device) -> (PerceptionModel, String) {
    if let Some(p) = path {
        match PerceptionModel::load(std::path::Path::new(p), device) {
            Ok(m) => {
                let msg = format!("loaded {p}");
                return (m, msg);
            }
            Err(e) => {
                let model = default_perception(device);
                return (model, format!("{e}; using the built-in model instead"));
            }
        }
    }
    (default_perception(device), "using the built-in model".to_string())
}

fn default_perception(device: &Device) -> PerceptionModel {
    // The embedded model is checked by the engine's tests; failing here would
    // mean a broken build, not a user error.
    defaults::perception(device).expect("the embedded default perception model loads")
}
