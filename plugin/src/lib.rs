//! Reverie: a VST3/CLAP plugin in which a neural network dreams on the
//! track's audio. This crate is thin: the engine does the work on worker
//! threads ([`session`]); the audio thread mixes what they deliver
//! ([`mixer::Mixer::process`] holds the whole signal path).

mod delay;
mod dream_worker;
pub mod editor;
pub mod job;
pub mod mixer;
pub mod model_info;
mod models;
pub mod params;
pub mod render_pace;
pub mod ring;
pub mod sampler_worker;
pub mod session;
pub mod status;
pub mod telemetry;
pub mod view;
pub mod vst3_entry;
mod worker;

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use nice_plug::prelude::*;
use nice_plug_egui::{EguiEditor, EguiEditorState};

use crate::mixer::BlockClock;
pub use crate::params::{ReverieParams, TargetNames, WavenetMode};
use crate::session::{HostSetup, Session};
pub use crate::status::Status;
use crate::telemetry::{Feeds, Taps};

/// An environment variable naming a file to which each activation, when it
/// ends, appends one JSON line of what it did (underruns, windows, steps):
/// for benchmarks and for finding out why a session sounded as it did.
pub const STATS_ENV: &str = "REVERIE_STATS";

/// The plugin instance.
pub struct Reverie {
    params: Arc<ReverieParams>,
    status: Arc<Status>,
    targets: TargetNames,
    session: Option<Session>,
    editor_state: Arc<EguiEditorState>,
    feeds: Feeds,
    /// The editor's ends of the rings, until `editor()` takes them.
    taps: Option<Taps>,
}

impl Default for Reverie {
    /// Cheap: no model is loaded and no thread started until `activate()`.
    fn default() -> Self {
        let targets: TargetNames = Arc::new(RwLock::new(Vec::new()));
        let (feeds, taps) = telemetry::connect();
        Self {
            params: Arc::new(ReverieParams::new(targets.clone())),
            status: Arc::new(Status::default()),
            targets,
            session: None,
            editor_state: EguiEditorState::from_size(
                nice_plug::editor::dpi::LogicalSize::new(editor::SIZE.0, editor::SIZE.1),
                1.0,
            ),
            feeds,
            taps: Some(taps),
        }
    }
}

impl Reverie {
    /// Shared status (for the editor).
    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    fn stop(&mut self) {
        if let Some(session) = self.session.take() {
            if let Some(path) = std::env::var_os(STATS_ENV) {
                let _ = status::append_stats(
                    std::path::Path::new(&path),
                    &self.status,
                    &self.params,
                    session.latency,
                );
            }
        }
    }
}

impl Plugin for Reverie {
    const NAME: &'static str = "Reverie";
    const VENDOR: &'static str = "Reverie developers";
    const URL: &'static str = "https://example.invalid/reverie";
    const EMAIL: &'static str = "reverie@example.invalid";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(2),
            main_output_channels: NonZeroU32::new(2),
            ..AudioIOLayout::const_default()
        },
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(1),
            main_output_channels: NonZeroU32::new(1),
            ..AudioIOLayout::const_default()
        },
    ];
    const SAMPLE_ACCURATE_AUTOMATION: bool = true;

    type Editor = EguiEditor<editor::ReverieEditor>;
    type SysExMessage = ();
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        editor::create(
            self.editor_state.clone(),
            self.params.clone(),
            self.status.clone(),
            self.targets.clone(),
            self.taps.take()?,
        )
    }

    fn activate(
        &mut self,
        layout: &AudioIOLayout,
        config: &BufferConfig,
        context: &mut impl ActivateContext<Self>,
    ) -> bool {
        self.stop();
        let host = HostSetup {
            rate: config.sample_rate.round() as u32,
            channels: layout.main_output_channels.map_or(0, NonZeroU32::get) as usize,
            max_block: config.max_buffer_size as usize,
            offline: config.process_mode == ProcessMode::Offline,
        };
        match Session::start(
            host,
            &self.params,
            &self.targets,
            &self.status,
            &self.feeds.scores,
        ) {
            Ok(session) => {
                context.set_latency_samples(session.latency as u32);
                self.session = Some(session);
                true
            }
            Err(e) => {
                self.status.say(e.to_string());
                false
            }
        }
    }

    fn reset(&mut self) {
        if let Some(session) = &mut self.session {
            session.mixer.reset();
        }
    }

    fn deactivate(&mut self) {
        self.stop();
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        _context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        // The editor's pictures are fed only while it is open.
        let open = self.editor_state.is_open();
        self.status.editor_open.store(open, Ordering::Relaxed);
        if let Some(session) = &mut self.session {
            let scope = open.then_some(&mut self.feeds.scope);
            let clock = BlockClock {
                now: Instant::now(),
                offline: vst3_entry::host_process_mode().map(|m| m == vst3_entry::HostProcessMode::Offline),
            };
            session
                .mixer
                .process(buffer.as_slice(), &self.params, &self.status, scope, clock);
        }
        ProcessStatus::Normal
    }
}

impl Drop for Reverie {
    fn drop(&mut self) {
        self.stop();
    }
}

impl ClapPlugin for Reverie {
    const CLAP_ID: &'static str = "org.reverie.dream";
    const CLAP_DESCRIPTION: Option<&'static str> = Some("A neural network dreams on your track");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[
        ClapFeature::AudioEffect,
        ClapFeature::Stereo,
        ClapFeature::Mono,
        ClapFeature::Distortion,
    ];
}

impl Vst3Plugin for Reverie {
    const VST3_CLASS_ID: [u8; 16] = *b"ReverieDreamFx01";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Fx, Vst3SubCategory::Distortion];
}

nice_export_clap!(Reverie);
// The VST3 entry point is `vst3_entry`: nice-plug's factory plus the host's
// per-call process mode.
