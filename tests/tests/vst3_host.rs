//! The built `Reverie.vst3` under a VST3 host that renders as Ardour's
//! exports do (issue 14): set up for real time, then every `process()` call
//! marked `kOffline`, with no pauses. The bounce must be the CLAP offline
//! render bit for bit, hold the dream wherever strength is above 0 and the
//! input delayed by exactly the reported latency wherever it is 0; the
//! same through automation, state, every block size from 1 to 4096 and the
//! standard rates. Every parameter's text parses back in every state,
//! through both formats. The plugin is built with `assert_process_allocs`.

use std::sync::{Mutex, MutexGuard};

use reverie_engine::perception::{PerceptionConfig, PerceptionModel};
use reverie_tests::clap_host::{clap_param_id, ClapPlugin, ParamChange};
use reverie_tests::scratch;
use reverie_tests::signals::{delayed, first_difference, program};
use reverie_tests::vst3_host::{Mode, Vst3Change, Vst3Plugin};

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Strength is 0..2; both formats carry it as `strength / 2`.
fn strength(value: f64) -> f64 {
    value / 2.0
}

/// Strength 0 until `switch`, then 1.
struct Render {
    rate: f64,
    block: usize,
    input: Vec<f32>,
    switch: usize,
}

impl Render {
    fn new(rate: f64, block: usize, seconds_past_latency: f64, latency: usize) -> Self {
        let len = latency + (rate * seconds_past_latency) as usize;
        Self {
            rate,
            block,
            input: program(len, rate, 41),
            switch: latency + (rate * 0.1) as usize,
        }
    }

    /// The CLAP offline render (render extension set before activation).
    fn clap(&self) -> (Vec<Vec<f32>>, usize) {
        let mut plugin = ClapPlugin::new();
        let id = plugin.param("strength");
        plugin.set_params(&[(id, strength(0.0))]);
        plugin.set_offline(true);
        plugin.activate(self.rate, self.block as u32).expect("activates");
        let changes = [ParamChange {
            sample: self.switch,
            id,
            value: strength(1.0),
        }];
        let x = &self.input;
        (
            plugin.process(&[x, x], self.block, &changes),
            plugin.latency() as usize,
        )
    }

    /// The VST3 render: set up as `setup`, every call marked `call`.
    fn vst3(&self, setup: Mode, call: Mode) -> (Vec<Vec<f32>>, usize) {
        let mut plugin = Vst3Plugin::new();
        let id = plugin.param("Dream strength");
        assert_eq!(id, clap_param_id("strength"), "one parameter id in both formats");
        plugin.set_param(id, strength(0.0));
        plugin.activate(self.rate, self.block, setup);
        let changes = [Vst3Change {
            sample: self.switch,
            id,
            value: strength(1.0),
        }];
        let x = &self.input;
        (
            plugin.process(&[x, x], self.block, &changes, call),
            plugin.latency() as usize,
        )
    }
}

/// Checks a bounce: the dry input, delayed by exactly the latency, until
/// strength leaves 0; the dream in every 50 ms from 10 ms after it.
fn check_bounce(what: &str, out: &[Vec<f32>], render: &Render, latency: usize) {
    let dry = delayed(&render.input, latency);
    for (ch, channel) in out.iter().enumerate() {
        assert_eq!(
            first_difference(&channel[..render.switch], &dry[..render.switch]),
            None,
            "{what}, channel {ch}: strength 0 must give the delayed input exactly"
        );
        let ramp = render.switch + (render.rate * 0.01) as usize;
        let stretch = (render.rate * 0.05) as usize;
        for start in (ramp..channel.len() - stretch).step_by(stretch) {
            let dreamed = (start..start + stretch)
                .filter(|&t| (channel[t] - dry[t]).abs() > 1e-5)
                .count();
            assert!(
                dreamed > stretch / 2,
                "{what}, channel {ch}: only {dreamed} of {stretch} samples from {start} hold the dream"
            );
        }
    }
}

fn latency_at(rate: f64) -> usize {
    let mut plugin = ClapPlugin::new();
    plugin.activate(rate, 512).expect("activates");
    plugin.latency() as usize
}

#[test]
fn an_ardour_style_bounce_is_the_clap_offline_render_bit_for_bit() {
    let _serial = serial();
    let rate = 48_000.0;
    let latency = latency_at(rate);
    let render = Render::new(rate, 512, 1.5, latency);
    let (clap, clap_latency) = render.clap();
    assert_eq!(clap_latency, latency);
    check_bounce("CLAP offline", &clap, &render, latency);
    // Ardour: setupProcessing(kRealtime), then each call kOffline.
    let (vst3, vst3_latency) = render.vst3(Mode::Realtime, Mode::Offline);
    assert_eq!(vst3_latency, latency, "VST3 reports the CLAP latency");
    for ch in 0..2 {
        assert_eq!(
            first_difference(&vst3[ch], &clap[ch]),
            None,
            "channel {ch}: the VST3 bounce differs from the CLAP render"
        );
    }
    // The same bounce again, and one set up offline from the start.
    let (again, _) = render.vst3(Mode::Realtime, Mode::Offline);
    let (setup_offline, _) = render.vst3(Mode::Offline, Mode::Offline);
    for ch in 0..2 {
        assert_eq!(first_difference(&again[ch], &vst3[ch]), None, "bounces differ");
        assert_eq!(
            first_difference(&setup_offline[ch], &vst3[ch]),
            None,
            "setup offline differs"
        );
    }
}

#[test]
fn strength_automation_lands_on_the_same_sample_in_both_formats() {
    let _serial = serial();
    let rate = 44_100.0;
    let latency = latency_at(rate);
    let render = Render::new(rate, 256, 0.4, latency);
    let (clap, _) = render.clap();
    let (vst3, _) = render.vst3(Mode::Realtime, Mode::Offline);
    let dry = delayed(&render.input, latency);
    let onset = |out: &[f32]| first_difference(out, &dry);
    // Strength multiplies the delta at output time, so its automation
    // lands on the very sample of the output it is sent for.
    assert_eq!(onset(&clap[0]), Some(render.switch));
    assert_eq!(onset(&vst3[0]), Some(render.switch));
}

#[test]
fn every_block_size_and_rate_bounces_like_the_clap_render() {
    let _serial = serial();
    for rate in [44_100.0, 48_000.0, 96_000.0] {
        let latency = latency_at(rate);
        let reference = Render::new(rate, 512, 0.3, latency);
        let (clap, _) = reference.clap();
        check_bounce(&format!("CLAP at {rate} Hz"), &clap, &reference, latency);
        for block in [1, 64, 333, 4096] {
            let render = Render {
                block,
                input: reference.input.clone(),
                ..reference
            };
            let (vst3, _) = render.vst3(Mode::Realtime, Mode::Offline);
            for ch in 0..2 {
                assert_eq!(
                    first_difference(&vst3[ch], &clap[ch]),
                    None,
                    "{rate} Hz, blocks of {block}, channel {ch}"
                );
            }
        }
    }
}

#[test]
fn state_saves_and_restores_through_vst3() {
    let _serial = serial();
    let source = {
        let mut p = Vst3Plugin::new();
        let values: Vec<(u32, f64)> = p
            .params()
            .iter()
            .map(|q| {
                // One step (or 0.3) away from the default.
                let step = if q.step_count > 0 {
                    1.0 / f64::from(q.step_count)
                } else {
                    0.3
                };
                let v = if q.default + step <= 1.0 {
                    q.default + step
                } else {
                    q.default - step
                };
                (q.id, v)
            })
            .collect();
        for &(id, v) in &values {
            p.set_param(id, v);
        }
        (p, values)
    };
    let (plugin, values) = source;
    let state = plugin.save_state();
    let mut restored = Vst3Plugin::new();
    for &(id, v) in &values {
        assert_ne!(restored.param_value(id), v, "param {id} starts elsewhere");
    }
    restored.load_state(&state);
    for &(id, v) in &values {
        let now = restored.param_value(id);
        assert!((now - v).abs() < 1e-6, "param {id}: saved {v}, restored {now}");
    }
    assert_eq!(
        restored.save_state(),
        state,
        "saving the restored instance gives the same state"
    );
    // The restored instance runs: activation, a short render, finite output.
    restored.activate(48_000.0, 512, Mode::Realtime);
    let x = program(4_800, 48_000.0, 5);
    let out = restored.process(&[&x, &x], 512, &[], Mode::Offline);
    assert!(out.iter().flatten().all(|v| v.is_finite()));
}

/// A plugin under test in one format: the parameter ids and the two
/// conversions, with values in the format's own units.
trait Texts {
    fn ids(&self) -> Vec<(u32, String, f64, f64, bool)>;
    fn to_text(&mut self, id: u32, value: f64) -> Option<String>;
    fn to_value(&mut self, id: u32, text: &str) -> Option<f64>;
}

impl Texts for ClapPlugin {
    fn ids(&self) -> Vec<(u32, String, f64, f64, bool)> {
        self.params()
            .iter()
            .map(|p| (p.id, p.name.clone(), p.min, p.max, p.stepped))
            .collect()
    }

    fn to_text(&mut self, id: u32, value: f64) -> Option<String> {
        self.value_to_text(id, value)
    }

    fn to_value(&mut self, id: u32, text: &str) -> Option<f64> {
        self.text_to_value(id, text)
    }
}

impl Texts for Vst3Plugin {
    fn ids(&self) -> Vec<(u32, String, f64, f64, bool)> {
        self.params()
            .iter()
            .map(|p| (p.id, p.title.clone(), 0.0, 1.0, p.step_count > 0))
            .collect()
    }

    fn to_text(&mut self, id: u32, value: f64) -> Option<String> {
        self.value_to_text(id, value)
    }

    fn to_value(&mut self, id: u32, text: &str) -> Option<f64> {
        self.text_to_value(id, text)
    }
}

/// clap-validator's check, for 25 values of every parameter (the ends and
/// evenly spread ones; every step of a stepped parameter up to 64): value
/// -> text -> value -> text gives the same text, and the last text parses
/// to the same value.
fn conversion_failures(plugin: &mut impl Texts, state: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for (id, name, min, max, stepped) in plugin.ids() {
        let values: Vec<f64> = if stepped && max - min <= 64.0 {
            let steps = (max - min) as usize;
            (0..=steps)
                .map(|i| {
                    if min == 0.0 && max == 1.0 {
                        i as f64 / steps as f64
                    } else {
                        min + i as f64
                    }
                })
                .collect()
        } else {
            (0..25).map(|i| min + (max - min) * i as f64 / 24.0).collect()
        };
        for value in values {
            let Some(text) = plugin.to_text(id, value) else {
                failures.push(format!("{state}: {name} {value} has no text"));
                continue;
            };
            let Some(back) = plugin.to_value(id, &text) else {
                failures.push(format!("{state}: {name} {value} -> {text:?} does not parse"));
                continue;
            };
            let again = plugin.to_text(id, back);
            let last = again.as_deref().and_then(|t| plugin.to_value(id, t));
            if again.as_deref() != Some(text.as_str()) || last != Some(back) {
                failures.push(format!(
                    "{state}: {name} {value} -> {text:?} -> {back} -> {again:?} -> {last:?}"
                ));
            }
        }
    }
    failures
}

#[test]
fn every_parameter_text_parses_back_in_every_state_in_both_formats() {
    let _serial = serial();
    let dir = scratch("param-texts");
    let other = dir.join("other-classes.safetensors");
    PerceptionModel::init(
        PerceptionConfig::default(),
        16_000,
        vec!["kazoo".into(), "theremin".into(), "ocarina".into()],
        3,
        &candle_core::Device::Cpu,
    )
    .expect("a model")
    .save(&other)
    .expect("saved");
    let other = other.to_str().expect("utf-8 path").to_string();

    let mut failures = Vec::new();
    let mut clap = ClapPlugin::new();
    let mut vst3 = Vst3Plugin::new();
    failures.extend(conversion_failures(&mut clap, "CLAP before activation"));
    failures.extend(conversion_failures(&mut vst3, "VST3 before activation"));
    let target_clap = clap.param("target");
    let target_vst3 = vst3.param("Target");
    for (model, state) in [
        (None, "built-in model"),
        (Some(other.as_str()), "3-class model"),
        (None, "built-in again"),
    ] {
        // Each model through a saved project, as a host restores one.
        let saved = (clap.save_state(), vst3.save_state());
        clap.load_state(&with_model(&saved.0, model, true));
        vst3.load_state(&with_model(&saved.1, model, false));
        clap.activate(48_000.0, 512).expect("activates");
        vst3.activate(48_000.0, 512, Mode::Realtime);
        failures.extend(conversion_failures(&mut clap, &format!("CLAP, {state}")));
        failures.extend(conversion_failures(&mut vst3, &format!("VST3, {state}")));
        // The target shows the loaded model's names (layers 1-6 first).
        let class_text = clap.to_text(target_clap, 6.0);
        let vst3_text = vst3.to_text(target_vst3, 6.0 / 63.0);
        let want = if model.is_some() {
            "class:kazoo"
        } else {
            "class:bass"
        };
        assert_eq!(
            class_text.as_deref(),
            Some(want),
            "CLAP target 6 with the {state}"
        );
        assert_eq!(vst3_text.as_deref(), Some(want), "VST3 target 6 with the {state}");
        clap.deactivate();
        vst3.deactivate();
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A saved state with the perception model path set (or cleared). CLAP's
/// state has an 8-byte length in front of the JSON; VST3's is the JSON.
fn with_model(state: &[u8], path: Option<&str>, length_prefix: bool) -> Vec<u8> {
    let body = if length_prefix { &state[8..] } else { state };
    let mut json: serde_json::Value = serde_json::from_slice(body).expect("the state is JSON");
    json["fields"]["perception-model"] =
        serde_json::Value::String(serde_json::to_string(&path).expect("json"));
    let body = serde_json::to_vec(&json).expect("json");
    let mut out = Vec::new();
    if length_prefix {
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    }
    out.extend_from_slice(&body);
    out
}
