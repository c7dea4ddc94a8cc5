//! The model browser's view of a model file: loaded and validated exactly
//! as the workers will load it, so that a file the browser accepts is one
//! the plugin can run, and a bad one is refused with the loader's own words
//! before it replaces anything.

use std::path::Path;

use candle_core::Device;
use reverie_engine::defaults;
use reverie_engine::filters::{default_fft_len, filter_spectra, first_layer_kernels, FilterSpectra};
use reverie_engine::model_file::{ModelKind, ModelMeta};
use reverie_engine::perception::PerceptionModel;
use reverie_engine::sampler::Sampler;

/// What the browser shows about one model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Where it came from: a path, or `None` for the embedded default.
    pub path: Option<String>,
    /// The stored metadata.
    pub meta: ModelMeta,
    /// Label and text, in display order.
    pub lines: Vec<(&'static str, String)>,
    /// First-layer filter spectra (perception models only).
    pub filters: Option<FilterSpectra>,
}

impl ModelInfo {
    /// Loads the perception model at `path` (or the embedded default).
    pub fn perception(path: Option<&str>) -> Result<Self, String> {
        let model = match path {
            Some(p) => PerceptionModel::load(Path::new(p), &Device::Cpu),
            None => defaults::perception(&Device::Cpu),
        }
        .map_err(|e| e.to_string())?;
        let c = &model.config;
        let rate = model.meta.sample_rate;
        let mut lines = common_lines(&model.meta, path);
        lines.push((
            "Classes",
            format!(
                "{}: {}",
                model.meta.class_names.len(),
                model.meta.class_names.join(", ")
            ),
        ));
        lines.push(("Window", duration(c.window, rate)));
        lines.push(("Receptive field", duration(c.receptive_field(), rate)));
        lines.push((
            "Layers",
            format!(
                "{} filters of {} every {}, then {} layers",
                c.frontend_filters,
                duration_short(c.frontend_kernel, rate),
                duration_short(c.frontend_stride, rate),
                c.channels.len()
            ),
        ));
        lines.push(("Training", training_text(&model.meta)));
        // A model without readable filters still dreams; the picture is
        // just left out.
        let filters = first_layer_kernels(&model)
            .ok()
            .and_then(|k| filter_spectra(&k, rate, default_fft_len(c.frontend_kernel)).ok());
        Ok(Self {
            path: path.map(String::from),
            meta: model.meta.clone(),
            lines,
            filters,
        })
    }

    /// Loads the WaveNet at `path` (or the embedded default).
    pub fn wavenet(path: Option<&str>) -> Result<Self, String> {
        let sampler = match path {
            Some(p) => Sampler::load(Path::new(p)),
            None => defaults::wavenet(),
        }
        .map_err(|e| e.to_string())?;
        let meta = sampler.meta().clone();
        let c = sampler.config();
        let mut lines = common_lines(&meta, path);
        lines.push((
            "Receptive field",
            duration(sampler.receptive_field(), meta.sample_rate),
        ));
        lines.push((
            "Layers",
            format!(
                "{} layers, {} residual / {} dilation / {} skip channels",
                c.num_layers(),
                c.residual_channels,
                c.dilation_channels,
                c.skip_channels
            ),
        ));
        lines.push(("Options", c.options_text()));
        lines.push(("Training", training_text(&meta)));
        Ok(Self {
            path: path.map(String::from),
            meta,
            lines,
            filters: None,
        })
    }

    /// Loads a model of `kind` (perception or WaveNet).
    pub fn load(kind: ModelKind, path: Option<&str>) -> Result<Self, String> {
        match kind {
            ModelKind::Perception => Self::perception(path),
            ModelKind::Wavenet => Self::wavenet(path),
        }
    }
}

fn common_lines(meta: &ModelMeta, path: Option<&str>) -> Vec<(&'static str, String)> {
    vec![
        ("Name", meta.name.clone()),
        ("File", path.map_or_else(|| "built in".to_string(), String::from)),
        ("Kind", meta.kind.to_string()),
        ("Sample rate", format!("{} Hz", meta.sample_rate)),
    ]
}

/// "12640 samples (790 ms)".
fn duration(samples: usize, rate: u32) -> String {
    format!("{samples} samples ({})", duration_short(samples, rate))
}

/// "790 ms" or "1.50 s".
fn duration_short(samples: usize, rate: u32) -> String {
    let seconds = samples as f64 / f64::from(rate.max(1));
    if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1000.0)
    } else {
        format!("{seconds:.2} s")
    }
}

/// "6000 steps in 68.7 min; val_accuracy 0.884".
fn training_text(meta: &ModelMeta) -> String {
    let t = &meta.training;
    let mut text = if t.steps == 0 {
        "untrained".to_string()
    } else {
        format!("{} steps in {:.1} min", t.steps, t.seconds / 60.0)
    };
    for (k, v) in &t.metrics {
        text.push_str(&format!("; {k} {v:.3}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(info: &'a ModelInfo, label: &str) -> &'a str {
        &info.lines.iter().find(|(l, _)| *l == label).unwrap().1
    }

    #[test]
    fn the_built_in_perception_model_is_described_in_full() {
        let info = ModelInfo::perception(None).unwrap();
        let model = defaults::perception(&Device::Cpu).unwrap();
        assert_eq!(line(&info, "File"), "built in");
        assert_eq!(line(&info, "Kind"), "perception");
        assert_eq!(
            line(&info, "Sample rate"),
            format!("{} Hz", model.meta.sample_rate)
        );
        let classes = line(&info, "Classes");
        assert!(
            classes.starts_with(&format!("{}: ", model.meta.class_names.len())),
            "{classes}"
        );
        for name in &model.meta.class_names {
            assert!(classes.contains(name.as_str()), "{classes}");
        }
        let field = model.config.receptive_field();
        assert!(line(&info, "Receptive field").starts_with(&format!("{field} samples (")));
        let training = line(&info, "Training");
        assert!(
            training.contains(&format!("{} steps", model.meta.training.steps)),
            "{training}"
        );
        let filters = info.filters.expect("filter spectra");
        assert_eq!(filters.db.len(), model.config.frontend_filters);
        assert!(filters.peak_hz.windows(2).all(|w| w[0] <= w[1]), "sorted by peak");
    }

    #[test]
    fn the_built_in_wavenet_is_described_with_its_receptive_field() {
        let info = ModelInfo::wavenet(None).unwrap();
        let sampler = defaults::wavenet().unwrap();
        assert_eq!(line(&info, "Kind"), "wavenet");
        assert!(line(&info, "Receptive field").starts_with(&format!("{} samples", sampler.receptive_field())));
        assert_eq!(line(&info, "Options"), "none");
        assert!(info.filters.is_none());
    }

    #[test]
    fn a_wavenets_options_are_named() {
        use reverie_engine::predictor::PredictorConfig;
        use reverie_engine::wavenet::{WavenetConfig, WavenetModel};
        let config = WavenetConfig {
            dilations: vec![1, 2],
            residual_channels: 4,
            dilation_channels: 4,
            skip_channels: 4,
            classes: 16,
            predictor: Some(PredictorConfig::for_rate(16_000)),
            pre_emphasis: true,
            emphasis_128ths: reverie_engine::emphasis::LPCNET_128THS,
            residual_target: true,
            tone_aware: false,
            tone_prior: None,
            dc_block: false,
        };
        let dir = std::env::temp_dir().join(format!("reverie-model-options-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.safetensors");
        WavenetModel::init(config, 16_000, 1, &Device::Cpu)
            .unwrap()
            .save(&path)
            .unwrap();
        let info = ModelInfo::wavenet(Some(path.to_str().unwrap())).unwrap();
        assert_eq!(
            line(&info, "Options"),
            "prediction inputs (short-term and pitch), pre-emphasis, residual target"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_are_refused_in_plain_words() {
        let dir = std::env::temp_dir().join(format!("reverie-model-info-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.safetensors");
        std::fs::write(&junk, b"this is not a model").unwrap();
        let err = ModelInfo::perception(Some(junk.to_str().unwrap())).unwrap_err();
        assert!(err.contains("not a safetensors model file"), "{err}");
        let missing = dir.join("missing.safetensors");
        let err = ModelInfo::wavenet(Some(missing.to_str().unwrap())).unwrap_err();
        assert!(err.contains("cannot read model file"), "{err}");
        // A perception model is not a WaveNet.
        let perception = dir.join("perception.safetensors");
        std::fs::write(&perception, defaults::PERCEPTION_BYTES).unwrap();
        let err = ModelInfo::wavenet(Some(perception.to_str().unwrap())).unwrap_err();
        assert!(err.to_lowercase().contains("perception"), "{err}");
        assert!(ModelInfo::perception(Some(perception.to_str().unwrap())).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12_640, 16_000), "12640 samples (790 ms)");
        assert_eq!(duration_short(24_000, 16_000), "1.50 s");
    }
}
