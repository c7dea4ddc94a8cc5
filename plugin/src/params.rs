//! The host-automatable parameters and the state persisted with a project.

use std::sync::{Arc, RwLock};

use nice_plug::prelude::*;

/// Most dream targets a model can offer through the target parameter.
pub const MAX_TARGETS: usize = 64;

/// What the WaveNet sampler thread does.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavenetMode {
    /// Not running.
    Off,
    /// Generates continuously.
    Generate,
    /// Listens to the track (teacher-forcing its caches) and takes over
    /// generating when the input falls silent.
    Continue,
}

/// How the dream's change is made (the engine's `DreamMode`).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In the input's own spectrum: no hiss between its partials.
    Spectral,
    /// The paper's raw-gradient steps on the samples: broadband.
    Raw,
}

/// The names of the loaded perception model's dream targets, in parameter
/// order; shared with the target parameter's formatter and the editor.
pub type TargetNames = Arc<RwLock<Vec<String>>>;

/// Reverie's parameters.
#[derive(Params)]
pub struct ReverieParams {
    /// How much of the dream delta is added to the dry signal.
    #[id = "strength"]
    pub strength: FloatParam,
    /// How the change is made.
    #[id = "mode"]
    pub mode: EnumParam<Mode>,
    /// Which layer, channel or class the dream pushes on.
    #[id = "target"]
    pub target: IntParam,
    /// Dream away from the target (subtractive) instead of toward it.
    #[id = "away"]
    pub away: BoolParam,
    /// Gradient steps per window.
    #[id = "iterations"]
    pub iterations: IntParam,
    /// Largest per-sample change of one step, relative to the window's peak.
    #[id = "step"]
    pub step: FloatParam,
    /// Weight of the first layer's L1 cost.
    #[id = "sparsity"]
    pub sparsity: FloatParam,
    /// Weight of the first layer's continuity cost.
    #[id = "continuity"]
    pub continuity: FloatParam,
    /// Level of the WaveNet's generated audio in the output.
    #[id = "wn_level"]
    pub wavenet_level: FloatParam,
    /// Sampling temperature of the WaveNet (0 = always the likeliest sample).
    #[id = "wn_temp"]
    pub temperature: FloatParam,
    /// What the WaveNet does.
    #[id = "wn_mode"]
    pub wavenet_mode: EnumParam<WavenetMode>,
    /// Gain applied to the whole output.
    #[id = "gain"]
    pub output_gain: FloatParam,

    /// Path of a user-loaded perception model; `None` means the embedded default.
    #[persist = "perception-model"]
    pub perception_model: Arc<RwLock<Option<String>>>,
    /// Path of a user-loaded WaveNet model; `None` means the embedded default.
    #[persist = "wavenet-model"]
    pub wavenet_model: Arc<RwLock<Option<String>>>,
}

impl ReverieParams {
    /// Parameters at their defaults; `targets` names the target parameter's values.
    pub fn new(targets: TargetNames) -> Self {
        let names = targets.clone();
        Self {
            strength: FloatParam::new("Dream strength", 0.5, FloatRange::Linear { min: 0.0, max: 2.0 })
                .with_smoother(SmoothingStyle::Linear(10.0))
                .with_value_to_string(formatters::v2s_f32_rounded(2)),
            target: IntParam::new(
                "Target",
                0,
                IntRange::Linear {
                    min: 0,
                    max: MAX_TARGETS as i32 - 1,
                },
            )
            .with_value_to_string(Arc::new(move |i| target_name(&names, i)))
            .with_string_to_value(Arc::new({
                let names = targets.clone();
                move |s| target_index(&names, s)
            })),
            mode: EnumParam::new("Dream mode", Mode::Spectral),
            away: BoolParam::new("Dream away", false),
            iterations: IntParam::new("Iterations", 4, IntRange::Linear { min: 0, max: 32 }),
            step: FloatParam::new(
                "Step",
                0.02,
                FloatRange::Skewed {
                    min: 0.001,
                    max: 0.2,
                    factor: FloatRange::skew_factor(-1.5),
                },
            )
            .with_value_to_string(formatters::v2s_f32_rounded(3)),
            sparsity: regulariser_weight("Sparsity"),
            continuity: regulariser_weight("Continuity"),
            wavenet_level: FloatParam::new("WaveNet level", 0.0, FloatRange::Linear { min: 0.0, max: 1.0 })
                .with_smoother(SmoothingStyle::Linear(20.0))
                .with_value_to_string(formatters::v2s_f32_rounded(2)),
            temperature: FloatParam::new("Temperature", 1.0, FloatRange::Linear { min: 0.0, max: 2.0 })
                .with_value_to_string(formatters::v2s_f32_rounded(2)),
            wavenet_mode: EnumParam::new("WaveNet mode", WavenetMode::Off),
            output_gain: FloatParam::new(
                "Output gain",
                util::db_to_gain(0.0),
                FloatRange::Skewed {
                    min: util::db_to_gain(-30.0),
                    max: util::db_to_gain(12.0),
                    factor: FloatRange::gain_skew_factor(-30.0, 12.0),
                },
            )
            .with_smoother(SmoothingStyle::Logarithmic(20.0))
            .with_unit(" dB")
            .with_value_to_string(formatters::v2s_f32_gain_to_db(1))
            .with_string_to_value(formatters::s2v_f32_gain_to_db()),
            perception_model: Arc::new(RwLock::new(None)),
            wavenet_model: Arc::new(RwLock::new(None)),
        }
    }
}

/// A dreaming regulariser's weight: 0 to 10, skewed toward small values.
fn regulariser_weight(name: &str) -> FloatParam {
    FloatParam::new(
        name,
        0.05,
        FloatRange::Skewed {
            min: 0.0,
            max: 10.0,
            factor: FloatRange::skew_factor(-2.0),
        },
    )
    .with_value_to_string(formatters::v2s_f32_rounded(3))
}

/// The name of target `index`; indices past the model's list show the last one,
/// which is also what the worker uses. Before a model has named its targets
/// (the plugin is not active yet) the index itself.
fn target_name(names: &TargetNames, index: i32) -> String {
    match names.read() {
        Ok(list) if !list.is_empty() => list[(index.max(0) as usize).min(list.len() - 1)].clone(),
        _ => index.to_string(),
    }
}

/// The index a text names: one of the loaded model's target names (any
/// case), or a plain index, which is what [`target_name`] shows before a
/// model is loaded and what a host may send at any time. Hosts check that
/// every text the parameter shows parses back.
fn target_index(names: &TargetNames, text: &str) -> Option<i32> {
    let text = text.trim();
    if let Ok(list) = names.read() {
        if let Some(i) = list.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Some(i as i32);
        }
    }
    text.parse::<i32>()
        .ok()
        .filter(|i| (0..MAX_TARGETS as i32).contains(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> TargetNames {
        Arc::new(RwLock::new(list.iter().map(|s| s.to_string()).collect()))
    }

    /// value -> text -> value -> text, as clap-validator checks it: the
    /// texts agree and the second value equals the first parsed one.
    fn round_trips(names: &TargetNames) -> Vec<String> {
        let mut failures = Vec::new();
        for value in 0..MAX_TARGETS as i32 {
            let text = target_name(names, value);
            let Some(back) = target_index(names, &text) else {
                failures.push(format!("{value} -> {text:?} does not parse"));
                continue;
            };
            let again = target_name(names, back);
            if again != text || target_index(names, &again) != Some(back) {
                failures.push(format!("{value} -> {text:?} -> {back} -> {again:?}"));
            }
        }
        failures
    }

    #[test]
    fn every_target_text_parses_back_before_and_after_a_model_names_them() {
        let targets = names(&[]);
        assert_eq!(round_trips(&targets), Vec::<String>::new());
        assert_eq!(target_name(&targets, 7), "7");
        *targets.write().unwrap() = vec!["layer:1".into(), "class:piano".into(), "contrast:piano".into()];
        assert_eq!(round_trips(&targets), Vec::<String>::new());
        assert_eq!(target_index(&targets, " Class:Piano "), Some(1));
        // Past the list: the last target, as the worker clamps it.
        assert_eq!(target_name(&targets, 40), "contrast:piano");
        // A plain index is always understood; nonsense is not.
        assert_eq!(target_index(&targets, "2"), Some(2));
        assert_eq!(target_index(&targets, "class:banjo"), None);
        assert_eq!(target_index(&targets, "64"), None);
    }
}
