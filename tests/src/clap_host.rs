//! A small CLAP host for end-to-end tests of the built plugin, on `clack-host`.
//!
//! [`reverie_bundle`] builds the plugin once per test binary (debug, with
//! `assert_process_allocs`, so an allocation in `process()` aborts) and
//! [`ClapPlugin`] drives one instance the way a DAW would: parameters through
//! the params extension and sample-accurate value events, render mode,
//! activation, processing on a separate audio thread, latency, state.
//! Host callbacks are counted in [`HostShared`] and otherwise ignored, except
//! `request_callback`, answered with `on_main_thread` after each call into the
//! plugin, and a restart requested during activation, which
//! [`ClapPlugin::activate`] honours as a DAW would.
//!
//! One file, though long: the host's callbacks, its extensions and the
//! instance's lifecycle are one FFI surface, each part meaningful only with
//! the others.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use clack_extensions::latency::{HostLatency, HostLatencyImpl, PluginLatency};
use clack_extensions::params::{
    HostParams, HostParamsImplMainThread, HostParamsImplShared, ParamClearFlags, ParamInfoBuffer,
    ParamInfoFlags, ParamRescanFlags, PluginParams,
};
use clack_extensions::render::{PluginRender, RenderMode};
use clack_extensions::state::{HostState, HostStateImpl, PluginState};
use clack_host::events::event_types::ParamValueEvent;
use clack_host::prelude::*;

/// The plugin's CLAP id.
pub const PLUGIN_ID: &str = "org.reverie.dream";

/// The built plugin, built with `assert_process_allocs`: its CLAP entry,
/// loaded from a private copy of the `.so` (deleted once loaded), so that a
/// concurrent rebuild of `target/debug/libreverie.so` cannot change it under
/// a running test, and a private copy of the standalone binary.
pub struct Bundle {
    /// The loaded CLAP entry.
    pub entry: PluginEntry,
    /// The `reverie-standalone` binary built in the same run.
    pub standalone: PathBuf,
    /// A `Reverie.vst3` bundle of the same build (see `vst3_host`).
    pub vst3: PathBuf,
}

/// Builds the plugin (once per process) and loads its CLAP entry.
pub fn reverie_bundle() -> &'static Bundle {
    static BUNDLE: OnceLock<Bundle> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let root = crate::workspace_root();
        crate::succeeds(&mut crate::cargo(&[
            "build",
            "-p",
            "reverie",
            "--features",
            "assert_process_allocs",
        ]));
        let built = target_dir(&root).join("debug");
        remove_stale_copies();
        let dir = std::env::temp_dir().join(format!("{COPY_PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let library = dir.join("reverie.clap");
        std::fs::copy(built.join("libreverie.so"), &library).expect("copy the built plugin");
        let standalone = dir.join("reverie-standalone");
        std::fs::copy(built.join("reverie-standalone"), &standalone).expect("copy the built standalone");
        // The layout `cargo xtask bundle` gives a Linux VST3 bundle.
        let vst3 = dir.join("Reverie.vst3");
        let vst3_binary = vst3.join("Contents/x86_64-linux");
        std::fs::create_dir_all(&vst3_binary).expect("vst3 bundle folder");
        std::fs::copy(built.join("libreverie.so"), vst3_binary.join("Reverie.so"))
            .expect("copy the vst3 binary");
        // SAFETY: loading a CLAP library runs its initialisers; this is the
        // plugin we just built, loaded once and never unloaded.
        let entry = unsafe { PluginEntry::load(&library) }.expect("the plugin's CLAP entry loads");
        // The mapping outlives the file.
        let _ = std::fs::remove_file(&library);
        Bundle {
            entry,
            standalone,
            vst3,
        }
    })
}

const COPY_PREFIX: &str = "reverie-clap-host-";

/// Removes the copies made by test processes that are gone.
fn remove_stale_copies() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(COPY_PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => root.join(d),
        None => root.join("target"),
    }
}

/// Host callbacks, counted; safe to read from any thread.
#[derive(Default)]
pub struct HostShared {
    /// `request_restart` calls.
    pub restart_requests: AtomicUsize,
    /// `request_process` calls.
    pub process_requests: AtomicUsize,
    /// `request_callback` calls.
    pub callback_requests: AtomicUsize,
    /// Set by `request_callback`, cleared when the host runs `on_main_thread`.
    pub callback_pending: AtomicBool,
    /// `latency.changed` calls.
    pub latency_changes: AtomicUsize,
    /// `params.request_flush` calls.
    pub flush_requests: AtomicUsize,
    /// `params.rescan` calls.
    pub param_rescans: AtomicUsize,
    /// `state.mark_dirty` calls.
    pub dirty_marks: AtomicUsize,
}

impl SharedHandler<'_> for HostShared {
    fn request_restart(&self) {
        self.restart_requests.fetch_add(1, Ordering::SeqCst);
    }

    fn request_process(&self) {
        self.process_requests.fetch_add(1, Ordering::SeqCst);
    }

    fn request_callback(&self) {
        self.callback_requests.fetch_add(1, Ordering::SeqCst);
        self.callback_pending.store(true, Ordering::SeqCst);
    }
}

impl HostParamsImplShared for HostShared {
    fn request_flush(&self) {
        self.flush_requests.fetch_add(1, Ordering::SeqCst);
    }
}

/// The main-thread side of the host: forwards to [`HostShared`].
pub struct HostMainThread<'a> {
    shared: &'a HostShared,
}

impl<'a> MainThreadHandler<'a> for HostMainThread<'a> {}

impl HostLatencyImpl for HostMainThread<'_> {
    fn changed(&self) {
        self.shared.latency_changes.fetch_add(1, Ordering::SeqCst);
    }
}

impl HostParamsImplMainThread for HostMainThread<'_> {
    fn rescan(&self, _flags: ParamRescanFlags) {
        self.shared.param_rescans.fetch_add(1, Ordering::SeqCst);
    }

    fn clear(&self, _param_id: ClapId, _flags: ParamClearFlags) {}
}

impl HostStateImpl for HostMainThread<'_> {
    fn mark_dirty(&self) {
        self.shared.dirty_marks.fetch_add(1, Ordering::SeqCst);
    }
}

/// The host's handler types.
pub struct TestHost;

impl HostHandlers for TestHost {
    type Shared<'a> = HostShared;
    type MainThread<'a> = HostMainThread<'a>;
    type AudioProcessor<'a> = ();

    fn declare_extensions(builder: &mut HostExtensions<Self>, _shared: &Self::Shared<'_>) {
        builder
            .register::<HostLatency>()
            .register::<HostParams>()
            .register::<HostState>();
    }
}

/// One parameter as the params extension describes it. Values are CLAP
/// values: nice-plug exposes every parameter as its normalised value times
/// its step count (`0..=1` for continuous parameters, `0..=steps` for
/// stepped ones).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDesc {
    /// The CLAP id (nice-plug: a hash of the string id).
    pub id: u32,
    /// Display name.
    pub name: String,
    /// Module (group) path.
    pub module: String,
    /// Smallest CLAP value.
    pub min: f64,
    /// Largest CLAP value (the step count for stepped parameters).
    pub max: f64,
    /// Default CLAP value.
    pub default: f64,
    /// Whether the parameter takes whole values only.
    pub stepped: bool,
}

/// The CLAP id nice-plug gives the parameter with string id `id` (the hash
/// in nice-plug's `wrapper::util::hash_param_id`).
pub fn clap_param_id(id: &str) -> u32 {
    let mut hash: u32 = 0;
    for byte in id.bytes() {
        hash = hash.wrapping_mul(31).wrapping_add(u32::from(byte));
    }
    hash & !(1 << 31)
}

/// A parameter change inside a render: `value` (a CLAP value) takes effect
/// at sample `sample` of the rendered signal, sent as a
/// `CLAP_EVENT_PARAM_VALUE` event at that offset of the block holding it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamChange {
    /// Index in the rendered signal.
    pub sample: usize,
    /// CLAP parameter id.
    pub id: u32,
    /// New CLAP value.
    pub value: f64,
}

/// One plugin instance with its host.
pub struct ClapPlugin {
    instance: PluginInstance<TestHost>,
    processor: Option<PluginAudioProcessor<TestHost>>,
    params_ext: PluginParams,
    latency_ext: PluginLatency,
    state_ext: PluginState,
    render_ext: PluginRender,
    params: Vec<ParamDesc>,
    config: Option<PluginAudioConfiguration>,
    steady_time: u64,
}

/// Stereo: the plugin's first (default) audio layout.
pub const CHANNELS: usize = 2;

impl ClapPlugin {
    /// Instantiates the plugin from the built bundle and reads its parameters.
    pub fn new() -> Self {
        Self::from_entry(&reverie_bundle().entry)
    }

    /// Instantiates [`PLUGIN_ID`] from `entry`.
    pub fn from_entry(entry: &PluginEntry) -> Self {
        let info = HostInfo::new(
            "reverie-tests",
            "Reverie developers",
            "https://example.invalid",
            "0.1.0",
        )
        .expect("host info");
        let factory = entry
            .get_plugin_factory()
            .expect("the entry has a plugin factory");
        let id = CString::new(PLUGIN_ID).expect("id");
        assert!(
            factory
                .plugin_descriptors()
                .any(|d| d.id() == Some(id.as_c_str())),
            "the factory lists {PLUGIN_ID}"
        );
        let mut instance = PluginInstance::<TestHost>::new(
            |_| HostShared::default(),
            |shared| HostMainThread { shared },
            entry,
            &id,
            &info,
        )
        .expect("the plugin instantiates");
        let shared = instance.plugin_shared_handle();
        let params_ext: PluginParams = shared.get_extension().expect("params extension");
        let latency_ext: PluginLatency = shared.get_extension().expect("latency extension");
        let state_ext: PluginState = shared.get_extension().expect("state extension");
        let render_ext: PluginRender = shared.get_extension().expect("render extension");
        let params = {
            let handle = instance.plugin_handle();
            let count = params_ext.count(&handle);
            let mut buffer = ParamInfoBuffer::new();
            (0..count)
                .map(|i| {
                    let p = params_ext.get_info(&handle, i, &mut buffer).expect("param info");
                    ParamDesc {
                        id: p.id.get(),
                        name: String::from_utf8_lossy(p.name).into_owned(),
                        module: String::from_utf8_lossy(p.module).into_owned(),
                        min: p.min_value,
                        max: p.max_value,
                        default: p.default_value,
                        stepped: p.flags.contains(ParamInfoFlags::IS_STEPPED),
                    }
                })
                .collect()
        };
        Self {
            instance,
            processor: None,
            params_ext,
            latency_ext,
            state_ext,
            render_ext,
            params,
            config: None,
            steady_time: 0,
        }
    }

    /// The parameters the plugin exposes, in its order.
    pub fn params(&self) -> &[ParamDesc] {
        &self.params
    }

    /// The CLAP id of the parameter with nice-plug string id `id`; panics if
    /// the plugin exposes no such parameter.
    pub fn param(&self, id: &str) -> u32 {
        let hash = clap_param_id(id);
        assert!(
            self.params.iter().any(|p| p.id == hash),
            "the plugin exposes no parameter with id {id:?} (CLAP id {hash})"
        );
        hash
    }

    /// The description of the parameter with string id `id`.
    pub fn param_desc(&self, id: &str) -> &ParamDesc {
        let hash = self.param(id);
        self.params.iter().find(|p| p.id == hash).expect("listed")
    }

    /// The current CLAP value of parameter `id` (a CLAP id).
    pub fn param_value(&mut self, id: u32) -> f64 {
        let handle = self.instance.plugin_handle();
        self.params_ext
            .get_value(&handle, ClapId::new(id))
            .unwrap_or_else(|| panic!("no value for parameter {id}"))
    }

    /// Sets parameters (CLAP ids and values) outside processing, through
    /// `params.flush` (on the main thread while inactive, on this thread as
    /// the audio thread while active and not rendering).
    pub fn set_params(&mut self, values: &[(u32, f64)]) {
        let mut events = EventBuffer::with_capacity(values.len());
        for &(id, value) in values {
            events.push(&ParamValueEvent::new(
                0,
                ClapId::new(id),
                Pckn::match_all(),
                value,
            ));
        }
        let mut out = EventBuffer::new();
        match self.processor.as_mut() {
            None => {
                let mut handle = self.instance.inactive_plugin_handle().expect("inactive");
                self.params_ext
                    .flush(&mut handle, &events.as_input(), &mut out.as_output());
            }
            Some(processor) => {
                let mut handle = processor.plugin_handle();
                self.params_ext
                    .flush_active(&mut handle, &events.as_input(), &mut out.as_output());
            }
        }
        self.run_main_thread_callbacks();
    }

    /// The plugin's text for a CLAP value of parameter `id`.
    pub fn value_to_text(&mut self, id: u32, value: f64) -> Option<String> {
        let mut buffer = [0u8; 256];
        let handle = self.instance.plugin_handle();
        let text = self
            .params_ext
            .value_to_text(&handle, ClapId::new(id), value, &mut buffer)
            .ok()?;
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        Some(String::from_utf8_lossy(&text[..end]).into_owned())
    }

    /// The CLAP value the plugin reads from `text` for parameter `id`.
    pub fn text_to_value(&mut self, id: u32, text: &str) -> Option<f64> {
        let text = CString::new(text).ok()?;
        let handle = self.instance.plugin_handle();
        self.params_ext.text_to_value(&handle, ClapId::new(id), &text)
    }

    /// Chooses realtime or offline rendering (the render extension); call it
    /// before [`activate`](Self::activate): nice-plug passes the mode to the
    /// plugin in `activate()`.
    pub fn set_offline(&mut self, offline: bool) {
        let mode = if offline {
            RenderMode::Offline
        } else {
            RenderMode::Realtime
        };
        let handle = self.instance.plugin_handle();
        self.render_ext
            .set(&handle, mode)
            .expect("the plugin accepts the render mode");
    }

    /// Activates at `sample_rate` with blocks of at most `max_block` frames.
    ///
    /// Like a DAW, it honours a restart the plugin requests while activating
    /// (nice-plug requests one whenever the latency it reports changes, and
    /// tells the host `latency.changed` on the next activation).
    pub fn activate(&mut self, sample_rate: f64, max_block: u32) -> Result<(), PluginInstanceError> {
        assert!(self.processor.is_none(), "already active");
        let config = PluginAudioConfiguration {
            sample_rate,
            min_frames_count: 1,
            max_frames_count: max_block,
        };
        for _ in 0..3 {
            let restarts = self.host().restart_requests.load(Ordering::SeqCst);
            let processor = self.instance.activate(|_, _| (), config)?;
            self.processor = Some(processor.into());
            self.config = Some(config);
            self.steady_time = 0;
            self.run_main_thread_callbacks();
            if self.host().restart_requests.load(Ordering::SeqCst) == restarts {
                return Ok(());
            }
            self.deactivate();
        }
        panic!("the plugin keeps requesting restarts on activation");
    }

    /// Whether the instance is active.
    pub fn is_active(&self) -> bool {
        self.processor.is_some()
    }

    /// Stops processing (if started) and deactivates.
    pub fn deactivate(&mut self) {
        if let Some(mut processor) = self.processor.take() {
            // Stopping belongs on the audio thread.
            std::thread::scope(|s| {
                s.spawn(|| {
                    processor.ensure_processing_stopped();
                })
                .join()
                .expect("audio thread");
            });
            let PluginAudioProcessor::Stopped(stopped) = processor else {
                unreachable!("just stopped")
            };
            self.instance.deactivate(stopped);
            self.config = None;
        }
        self.run_main_thread_callbacks();
    }

    /// The latency the plugin reports, in samples.
    pub fn latency(&mut self) -> u32 {
        let handle = self.instance.plugin_handle();
        self.latency_ext.get(&handle)
    }

    /// The host's record of plugin callbacks.
    pub fn host(&self) -> &HostShared {
        self.instance.access_shared_handler(|s| s)
    }

    /// Renders `input` (one slice per channel, all the same length) in
    /// blocks of `block` frames on an audio thread, starting processing
    /// first if needed, with `changes` sent as parameter value events at
    /// their sample offsets. Returns the output, one vector per channel.
    pub fn process(&mut self, input: &[&[f32]], block: usize, changes: &[ParamChange]) -> Vec<Vec<f32>> {
        let config = self.config.expect("activate before processing");
        assert!(
            block >= 1 && block <= config.max_frames_count as usize,
            "block size {block} out of range"
        );
        assert_eq!(input.len(), CHANNELS, "one input slice per channel");
        let len = input[0].len();
        assert!(input.iter().all(|c| c.len() == len), "channels of equal length");
        assert!(
            changes.windows(2).all(|w| w[0].sample <= w[1].sample),
            "changes in time order"
        );
        assert!(
            changes.iter().all(|c| c.sample < len),
            "changes inside the signal"
        );
        let processor = self.processor.as_mut().expect("active");
        let steady_time = self.steady_time;
        let output = std::thread::scope(|s| {
            s.spawn(|| render(processor, input, block, changes, steady_time))
                .join()
                .expect("the audio thread panicked")
        });
        self.steady_time += len as u64;
        self.run_main_thread_callbacks();
        output
    }

    /// The active instance's audio processor, to host it block by block on
    /// an audio thread of the caller's ([`BlockHost`]).
    pub fn audio_processor(&mut self) -> &mut PluginAudioProcessor<TestHost> {
        self.processor.as_mut().expect("active")
    }

    /// Calls `reset()` on the audio thread (the plugin clears its history).
    pub fn reset(&mut self) {
        let processor = self.processor.as_mut().expect("active");
        std::thread::scope(|s| {
            s.spawn(|| match processor {
                PluginAudioProcessor::Started(p) => p.reset(),
                PluginAudioProcessor::Stopped(p) => p.reset(),
            })
            .join()
            .expect("audio thread");
        });
    }

    /// Saves the plugin state (nice-plug: an 8-byte little-endian length,
    /// then JSON).
    pub fn save_state(&mut self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let handle = self.instance.plugin_handle();
        self.state_ext
            .save(&handle, &mut bytes)
            .expect("the plugin saves its state");
        self.run_main_thread_callbacks();
        bytes
    }

    /// Loads a state saved by [`save_state`](Self::save_state).
    pub fn load_state(&mut self, bytes: &[u8]) {
        let mut reader = bytes;
        let handle = self.instance.plugin_handle();
        self.state_ext
            .load(&handle, &mut reader)
            .expect("the plugin loads the state");
        self.run_main_thread_callbacks();
    }

    /// Runs `on_main_thread` if the plugin asked for it.
    pub fn run_main_thread_callbacks(&mut self) {
        while self.host().callback_pending.swap(false, Ordering::SeqCst) {
            self.instance.call_on_main_thread_callback();
        }
    }
}

impl Default for ClapPlugin {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ClapPlugin {
    fn drop(&mut self) {
        self.deactivate();
    }
}

/// The audio thread's loop: preallocated buffers, one `process()` per block.
fn render(
    processor: &mut PluginAudioProcessor<TestHost>,
    input: &[&[f32]],
    block: usize,
    changes: &[ParamChange],
    steady_time: u64,
) -> Vec<Vec<f32>> {
    let len = input[0].len();
    let mut output: Vec<Vec<f32>> = (0..CHANNELS).map(|_| Vec::with_capacity(len)).collect();
    let mut host = BlockHost::new(processor, block, changes.len());
    host.steady_time = steady_time;
    let mut next_change = 0;
    let mut start = 0;
    while start < len {
        let n = block.min(len - start);
        let end = changes[next_change..]
            .iter()
            .position(|c| c.sample >= start + n)
            .map_or(changes.len(), |p| next_change + p);
        let slices: Vec<&[f32]> = input.iter().map(|c| &c[start..start + n]).collect();
        let out = host.process(&slices, &changes[next_change..end], start);
        for (dst, buf) in output.iter_mut().zip(out) {
            dst.extend_from_slice(buf);
        }
        next_change = end;
        start += n;
    }
    output
}

/// One instance's audio-thread side, block by block: buffers, ports and
/// event lists allocated once, one `process()` call per block, on the
/// thread that makes it (which must be the audio thread: the one every
/// block of this instance comes from).
pub struct BlockHost<'a> {
    processor: &'a mut PluginAudioProcessor<TestHost>,
    ins: Vec<Vec<f32>>,
    outs: Vec<Vec<f32>>,
    in_ports: AudioPorts,
    out_ports: AudioPorts,
    events: EventBuffer,
    out_events: EventBuffer,
    /// The steady-time counter of the next block.
    pub steady_time: u64,
}

impl<'a> BlockHost<'a> {
    /// Block hosting of an active instance's processor (see
    /// [`ClapPlugin::audio_processor`]), blocks of at most `max_block`
    /// frames with up to `max_events` parameter changes each.
    pub fn new(
        processor: &'a mut PluginAudioProcessor<TestHost>,
        max_block: usize,
        max_events: usize,
    ) -> Self {
        Self {
            processor,
            ins: vec![vec![0.0f32; max_block]; CHANNELS],
            outs: vec![vec![0.0f32; max_block]; CHANNELS],
            in_ports: AudioPorts::with_capacity(CHANNELS, 1),
            out_ports: AudioPorts::with_capacity(CHANNELS, 1),
            events: EventBuffer::with_capacity(max_events.max(1)),
            out_events: EventBuffer::with_capacity(64),
            steady_time: 0,
        }
    }

    /// Processes one block (one slice per channel, all the same length),
    /// starting processing first if needed, with `changes` (samples counted
    /// from `offset`, the block's first sample) as parameter value events.
    /// Returns the output, one slice per channel.
    pub fn process(
        &mut self,
        input: &[&[f32]],
        changes: &[ParamChange],
        offset: usize,
    ) -> impl Iterator<Item = &[f32]> {
        let n = input[0].len();
        for (buf, src) in self.ins.iter_mut().zip(input) {
            buf[..n].copy_from_slice(src);
        }
        for buf in &mut self.outs {
            buf[..n].fill(0.0);
        }
        self.events.clear();
        for c in changes {
            let time = u32::try_from(c.sample - offset).expect("offset fits");
            self.events.push(&ParamValueEvent::new(
                time,
                ClapId::new(c.id),
                Pckn::match_all(),
                c.value,
            ));
        }
        self.out_events.clear();
        let processor = self
            .processor
            .ensure_processing_started()
            .expect("the plugin starts processing");
        let audio_in = self.in_ports.with_input_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_input_only(
                self.ins.iter_mut().map(|b| InputChannel::variable(&mut b[..n])),
            ),
        }]);
        let mut audio_out = self.out_ports.with_output_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_output_only(self.outs.iter_mut().map(|b| &mut b[..n])),
        }]);
        processor
            .process(
                &audio_in,
                &mut audio_out,
                &self.events.as_input(),
                &mut self.out_events.as_output(),
                Some(self.steady_time),
                None,
            )
            .expect("process() succeeds");
        self.steady_time += n as u64;
        self.outs.iter().map(move |b| &b[..n])
    }
}
