//! The egui editor: host parameters grouped as a musician thinks of them,
//! the model browser, the engine's status, and live pictures of the dream.
//! It reads the audio and dreaming threads' output from lock-free rings
//! ([`crate::telemetry`]) and lays out what [`crate::view`] and
//! [`crate::model_info`] compute.
//!
//! One file, though long: it is one egui frame laid out top to bottom, and the
//! panels share the frame's state (the selected model, the telemetry drained
//! this frame); what can be computed apart from egui already lives in
//! `view.rs` and `model_info.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use egui::{Color32, ColorImage, RichText, Sense, Stroke, TextureHandle, TextureOptions, Vec2};
use nice_plug::context::gui::{GuiContext, ParamSetter};
use nice_plug::prelude::*;
use nice_plug_egui::resizable_window::ResizableWindow;
use nice_plug_egui::widgets::ParamSlider;
use nice_plug_egui::{baseview, EguiEditor, EguiEditorState, EguiNiceSettings, NiceEguiApp, RepaintNotifier};
use reverie_engine::filters::db_to_level;
use reverie_engine::model_file::ModelKind;

use crate::model_info::ModelInfo;
use crate::params::{Mode, ReverieParams, TargetNames, WavenetMode};
use crate::status::Status;
use crate::telemetry::Taps;
use crate::view::{self, ScoreHistory, StatusSnapshot};
use reverie_engine::spectrogram::Spectrogram;

/// The editor's size when first opened, in logical pixels.
pub const SIZE: (u32, u32) = (980, 700);
/// Smallest useful size.
const MIN_SIZE: Vec2 = Vec2::new(820.0, 560.0);
/// Rows and columns of the spectrograms.
const SPECTRUM_ROWS: usize = 96;
const SPECTRUM_COLUMNS: usize = 300;
/// One spectrogram column every this many seconds (300 columns = 6 s).
const SPECTRUM_HOP: f32 = 0.02;
const FLOOR_DB: f32 = -90.0;
/// The filter spectra picture shows 60 dB below each filter's peak, as
/// `cargo xtask filters` does.
const FILTERS_FLOOR_DB: f32 = -60.0;
/// Dreamed windows in the score plot (about a minute at 0.5 s hops).
const SCORE_WINDOWS: usize = 120;

/// Builds the editor for a plugin instance.
pub fn create(
    state: Arc<EguiEditorState>,
    params: Arc<ReverieParams>,
    status: Arc<Status>,
    targets: TargetNames,
    taps: Taps,
) -> Option<EguiEditor<ReverieEditor>> {
    let settings = EguiNiceSettings::new().with_tile("Reverie").with_resize_hint(
        ResizeHint::resizable()
            .with_min_logical_size(nice_plug::editor::dpi::LogicalSize::new(MIN_SIZE.x, MIN_SIZE.y)),
    );
    let app = ReverieEditor::new(params, status, targets, taps);
    nice_plug_egui::create_egui_editor(state, RepaintNotifier::new(), settings, app)
}

/// The editor's own state (lives as long as the plugin instance).
pub struct ReverieEditor {
    params: Arc<ReverieParams>,
    status: Arc<Status>,
    targets: TargetNames,
    taps: Taps,
    gui: Option<GuiContext>,
    rate: u32,
    input: Spectrogram,
    output: Spectrogram,
    /// Output minus input: where the change lives.
    change: Spectrogram,
    scores: ScoreHistory,
    textures: Option<Textures>,
    perception: Browser,
    wavenet: Browser,
    /// The perception model whose filters the texture shows.
    filters_of: Option<Option<String>>,
}

struct Textures {
    input: TextureHandle,
    output: TextureHandle,
    change: TextureHandle,
    filters: TextureHandle,
    /// The spectrogram versions the input, output and change textures show.
    drawn: [Option<u64>; 3],
}

/// One model slot of the browser: a path field and what is loaded.
struct Browser {
    kind: ModelKind,
    field: String,
    info: Option<ModelInfo>,
    error: Option<String>,
    listing: Option<(PathBuf, Vec<(String, bool)>)>,
    /// The plugin's path for this kind when the browser last loaded it.
    synced: Option<Option<String>>,
}

impl ReverieEditor {
    fn new(params: Arc<ReverieParams>, status: Arc<Status>, targets: TargetNames, taps: Taps) -> Self {
        let rate = 48_000;
        Self {
            params,
            status,
            targets,
            taps,
            gui: None,
            rate,
            input: spectrogram(rate),
            output: spectrogram(rate),
            change: spectrogram(rate),
            scores: ScoreHistory::new(SCORE_WINDOWS),
            textures: None,
            perception: Browser::new(ModelKind::Perception),
            wavenet: Browser::new(ModelKind::Wavenet),
            filters_of: None,
        }
    }

    /// Takes what the rings hold. Runs only while the window is open.
    fn drain(&mut self) {
        let rate = self.status.host_rate.load(Ordering::Relaxed);
        if rate != 0 && rate != self.rate {
            self.rate = rate;
            self.input = spectrogram(rate);
            self.output = spectrogram(rate);
            self.change = spectrogram(rate);
        }
        let waiting = self.taps.scope.slots();
        if let Ok(chunk) = self.taps.scope.read_chunk(waiting) {
            let (a, b) = chunk.as_slices();
            self.input.push(a.iter().chain(b).map(|f| f[0]));
            self.output.push(a.iter().chain(b).map(|f| f[1]));
            self.change.push(a.iter().chain(b).map(|f| f[1] - f[0]));
            chunk.commit_all();
        }
        while let Ok(p) = self.taps.scores.pop() {
            self.scores.push(p);
        }
    }

    /// Where the plugin keeps the chosen path of a model kind.
    fn slot(&self, kind: ModelKind) -> &std::sync::RwLock<Option<String>> {
        match kind {
            ModelKind::Perception => &self.params.perception_model,
            ModelKind::Wavenet => &self.params.wavenet_model,
        }
    }

    fn current_path(&self, kind: ModelKind) -> Option<String> {
        self.slot(kind).read().ok().and_then(|p| p.clone())
    }

    /// Makes the browser show the models the plugin is set to use (also
    /// after a host restored a project).
    fn sync_browsers(&mut self) {
        for kind in [ModelKind::Perception, ModelKind::Wavenet] {
            let path = self.current_path(kind);
            let browser = self.browser_mut(kind);
            // Once per change, so a broken saved path is not reloaded every frame.
            if browser.synced.as_ref() != Some(&path) {
                match ModelInfo::load(kind, path.as_deref()) {
                    Ok(info) => browser.show(Ok(info)),
                    // The worker falls back to the built-in model; so does the view.
                    Err(e) => {
                        browser.show(ModelInfo::load(kind, None));
                        browser.error = Some(format!("{e}; the built-in model plays instead"));
                    }
                }
                browser.synced = Some(path);
            }
        }
    }

    fn browser_mut(&mut self, kind: ModelKind) -> &mut Browser {
        match kind {
            ModelKind::Perception => &mut self.perception,
            ModelKind::Wavenet => &mut self.wavenet,
        }
    }

    /// Switches the plugin to `path` (`None`: the embedded default) if the
    /// file loads; otherwise shows why and keeps the current model.
    fn choose(&mut self, kind: ModelKind, path: Option<String>) {
        match ModelInfo::load(kind, path.as_deref()) {
            Ok(info) => {
                if let Ok(mut p) = self.slot(kind).write() {
                    p.clone_from(&path);
                }
                let browser = self.browser_mut(kind);
                browser.show(Ok(info));
                browser.synced = Some(path);
            }
            Err(e) => self.browser_mut(kind).error = Some(format!("{e}. The current model stays.")),
        }
    }

    fn update_textures(&mut self, ctx: &egui::Context) {
        let textures = self.textures.get_or_insert_with(|| {
            let blank = || ColorImage::new([1, 1], vec![Color32::BLACK]);
            Textures {
                input: ctx.load_texture("input", blank(), TextureOptions::LINEAR),
                output: ctx.load_texture("output", blank(), TextureOptions::LINEAR),
                change: ctx.load_texture("change", blank(), TextureOptions::LINEAR),
                filters: ctx.load_texture("filters", blank(), TextureOptions::LINEAR),
                drawn: [None; 3],
            }
        });
        for ((spectrogram, texture), drawn) in [
            (&self.input, &mut textures.input),
            (&self.output, &mut textures.output),
            (&self.change, &mut textures.change),
        ]
        .into_iter()
        .zip(&mut textures.drawn)
        {
            // Most frames bring no new column (one every 20 ms, a frame
            // every 33 ms or less): keep the texture as it is then.
            if *drawn == Some(spectrogram.version()) {
                continue;
            }
            *drawn = Some(spectrogram.version());
            let columns: Vec<&[f32]> = spectrogram.columns().iter().map(Vec::as_slice).collect();
            let rgba = view::columns_to_rgba(&columns, spectrogram.capacity(), SPECTRUM_ROWS);
            texture.set(
                ColorImage::from_rgba_unmultiplied([spectrogram.capacity(), SPECTRUM_ROWS], &rgba),
                TextureOptions::LINEAR,
            );
        }
        let shown = self.perception.info.as_ref().map(|i| i.path.clone());
        if shown != self.filters_of {
            if let Some(spectra) = self.perception.info.as_ref().and_then(|i| i.filters.as_ref()) {
                let levels: Vec<Vec<f32>> = spectra
                    .db
                    .iter()
                    .map(|db| db.iter().map(|&v| db_to_level(v, FILTERS_FLOOR_DB)).collect())
                    .collect();
                let columns: Vec<&[f32]> = levels.iter().map(Vec::as_slice).collect();
                let (w, h) = (columns.len(), spectra.bins());
                let rgba = view::columns_to_rgba(&columns, w, h);
                textures.filters.set(
                    ColorImage::from_rgba_unmultiplied([w, h], &rgba),
                    TextureOptions::LINEAR,
                );
            }
            self.filters_of = shown;
        }
    }

    fn controls(&self, ui: &mut egui::Ui, setter: &ParamSetter) {
        let p = &self.params;
        section(ui, "Dream", |ui| {
            slider(ui, "Strength", &p.strength, setter);
            choice_buttons(
                ui,
                "Mode",
                &p.mode,
                &[(Mode::Spectral, "Spectral"), (Mode::Raw, "Raw (paper)")],
                setter,
            );
            self.target_menu(ui, setter);
            toggle(ui, "Away from target", &p.away, setter);
            slider(ui, "Iterations", &p.iterations, setter);
            slider(ui, "Step", &p.step, setter);
            slider(ui, "Sparsity", &p.sparsity, setter);
            slider(ui, "Continuity", &p.continuity, setter);
        });
        section(ui, "WaveNet", |ui| {
            choice_buttons(
                ui,
                "Mode",
                &p.wavenet_mode,
                &[
                    (WavenetMode::Off, "Off"),
                    (WavenetMode::Generate, "Generate"),
                    (WavenetMode::Continue, "Continue"),
                ],
                setter,
            );
            slider(ui, "Level", &p.wavenet_level, setter);
            slider(ui, "Temperature", &p.temperature, setter);
        });
        section(ui, "Output", |ui| {
            slider(ui, "Gain", &p.output_gain, setter);
        });
    }

    fn target_menu(&self, ui: &mut egui::Ui, setter: &ParamSetter) {
        let names = self.targets.read().map(|n| n.clone()).unwrap_or_default();
        let param = &self.params.target;
        let current = view::target_choice(&names, param.value());
        ui.horizontal(|ui| {
            ui.add_sized([92.0, 18.0], egui::Label::new("Target"));
            let text = current.map_or("(activate to list targets)", |i| names[i].as_str());
            egui::ComboBox::from_id_salt("target")
                .width(180.0)
                .selected_text(text)
                .show_ui(ui, |ui| {
                    for (i, name) in names.iter().enumerate() {
                        if ui.selectable_label(current == Some(i), name).clicked() {
                            setter.begin_set_parameter(param);
                            setter.set_parameter(param, i as i32);
                            setter.end_set_parameter(param);
                        }
                    }
                });
        });
    }

    fn status_panel(&self, ui: &mut egui::Ui) {
        section(ui, "Status", |ui| {
            egui::Grid::new("status")
                .num_columns(2)
                .spacing([8.0, 3.0])
                .show(ui, |ui| {
                    let asked = self.params.iterations.value().max(0) as u32;
                    for (label, text) in view::status_lines(&StatusSnapshot::read(&self.status, asked)) {
                        ui.label(RichText::new(label).strong());
                        ui.add(egui::Label::new(text).wrap());
                        ui.end_row();
                    }
                });
        });
    }

    fn pictures(&self, ui: &mut egui::Ui) {
        let Some(t) = &self.textures else {
            return;
        };
        let width = ui.available_width();
        let third = ((width - 18.0) / 3.0).max(90.0);
        section(
            ui,
            "Spectrograms (last 6 s, 30 Hz to 20 kHz, log frequency)",
            |ui| {
                ui.horizontal(|ui| {
                    for (title, texture) in [
                        ("Input", &t.input),
                        ("Dreamed output", &t.output),
                        ("Change (output - input)", &t.change),
                    ] {
                        ui.vertical(|ui| {
                            ui.label(title);
                            ui.image((texture.id(), Vec2::new(third - 8.0, 130.0)));
                        });
                    }
                });
            },
        );
        let names = self.targets.read().map(|n| n.clone()).unwrap_or_default();
        let target = self
            .scores
            .target()
            .and_then(|i| view::target_choice(&names, i as i32))
            .map_or("the target".to_string(), |i| names[i].clone());
        section(
            ui,
            &format!("Score of {target} per window: input (grey) and dreamed (orange)"),
            |ui| {
                score_plot(ui, &self.scores, Vec2::new(width - 16.0, 90.0));
            },
        );
    }

    fn browser(&mut self, ui: &mut egui::Ui, kind: ModelKind) {
        let title = match kind {
            ModelKind::Perception => "Perception model (what the dream listens through)",
            ModelKind::Wavenet => "WaveNet model (what generates)",
        };
        let mut choose = None;
        section(ui, title, |ui| {
            let b = self.browser_mut(kind);
            ui.horizontal(|ui| {
                ui.add(
                    egui::TextEdit::singleline(&mut b.field)
                        .hint_text("path to a .safetensors model file")
                        .desired_width(ui.available_width() - 210.0),
                );
                if ui.button("Load").clicked() {
                    choose = Some(Some(b.field.trim().to_string()));
                }
                if ui.button("Browse").clicked() {
                    b.toggle_listing();
                }
                if ui.button("Built-in").clicked() {
                    choose = Some(None);
                }
            });
            if let Some(picked) = b.listing_ui(ui) {
                choose = Some(Some(picked));
            }
            if let Some(e) = &b.error {
                ui.colored_label(Color32::from_rgb(255, 140, 120), e);
            }
            if let Some(info) = &b.info {
                egui::Grid::new(("info", title))
                    .num_columns(2)
                    .spacing([8.0, 2.0])
                    .show(ui, |ui| {
                        for (label, text) in &info.lines {
                            ui.label(RichText::new(*label).strong());
                            ui.add(egui::Label::new(text.as_str()).wrap());
                            ui.end_row();
                        }
                    });
            }
        });
        if let Some(path) = choose {
            self.choose(kind, path);
        }
    }

    fn filters(&self, ui: &mut egui::Ui) {
        let (Some(t), Some(info)) = (&self.textures, &self.perception.info) else {
            return;
        };
        let Some(spectra) = &info.filters else {
            return;
        };
        section(
            ui,
            &format!(
                "First-layer filters: {} spectra sorted by peak, 0 to {} kHz (bottom to top)",
                spectra.db.len(),
                spectra.sample_rate / 2000
            ),
            |ui| {
                ui.image((t.filters.id(), Vec2::new(ui.available_width() - 8.0, 150.0)));
            },
        );
    }
}

impl Browser {
    fn new(kind: ModelKind) -> Self {
        Self {
            kind,
            field: String::new(),
            info: None,
            error: None,
            listing: None,
            synced: None,
        }
    }

    fn show(&mut self, info: Result<ModelInfo, String>) {
        match info {
            Ok(info) => {
                self.field = info.path.clone().unwrap_or_default();
                self.info = Some(info);
                self.error = None;
                self.listing = None;
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// Opens a listing of the field's folder (or the home folder).
    fn toggle_listing(&mut self) {
        if self.listing.is_some() {
            self.listing = None;
            return;
        }
        let field = PathBuf::from(self.field.trim());
        let dir = if field.is_dir() {
            field
        } else {
            field
                .parent()
                .filter(|p| p.is_dir())
                .map(Path::to_path_buf)
                .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("/"))
        };
        self.list(dir);
    }

    fn list(&mut self, dir: PathBuf) {
        match list_models(&dir) {
            Ok(entries) => self.listing = Some((dir, entries)),
            Err(e) => self.error = Some(format!("cannot list {}: {e}", dir.display())),
        }
    }

    /// The listing, if open; returns a picked file.
    fn listing_ui(&mut self, ui: &mut egui::Ui) -> Option<String> {
        let (dir, entries) = self.listing.as_ref()?;
        let mut go = None;
        let mut picked = None;
        ui.label(format!("{} ({:?} models and folders)", dir.display(), self.kind));
        egui::ScrollArea::vertical()
            .max_height(120.0)
            .id_salt(("listing", self.kind as u8))
            .show(ui, |ui| {
                if let Some(parent) = dir.parent() {
                    if ui.selectable_label(false, "..").clicked() {
                        go = Some(parent.to_path_buf());
                    }
                }
                for (name, is_dir) in entries {
                    let text = if *is_dir { format!("{name}/") } else { name.clone() };
                    if ui.selectable_label(false, text).clicked() {
                        if *is_dir {
                            go = Some(dir.join(name));
                        } else {
                            picked = Some(dir.join(name).display().to_string());
                        }
                    }
                }
            });
        if let Some(d) = go {
            self.list(d);
        }
        picked
    }
}

/// Sub-folders and `.safetensors` files of `dir`, folders first, by name.
pub fn list_models(dir: &Path) -> std::io::Result<Vec<(String, bool)>> {
    let mut entries: Vec<(String, bool)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_dir = e.file_type().ok()?.is_dir();
            let model = name.ends_with(".safetensors");
            ((is_dir && !name.starts_with('.')) || model).then_some((name, is_dir))
        })
        .collect();
    entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(entries)
}

fn spectrogram(rate: u32) -> Spectrogram {
    Spectrogram::new(rate, SPECTRUM_ROWS, SPECTRUM_COLUMNS, SPECTRUM_HOP, FLOOR_DB)
}

fn section(ui: &mut egui::Ui, title: &str, body: impl FnOnce(&mut egui::Ui)) {
    // The group's frame adds its margin and stroke outside the content.
    let inner = ui.available_width() - 16.0;
    ui.group(|ui| {
        ui.set_width(inner);
        ui.label(
            RichText::new(title)
                .strong()
                .color(Color32::from_rgb(240, 190, 110)),
        );
        body(ui);
    });
    ui.add_space(4.0);
}

fn slider<P: Param>(ui: &mut egui::Ui, label: &str, param: &P, setter: &ParamSetter) {
    ui.horizontal(|ui| {
        ui.add_sized([92.0, 18.0], egui::Label::new(label));
        ui.add(ParamSlider::for_param(param, setter).with_width(180.0));
    });
}

/// The WaveNet's mode as three buttons: clearer than a slider over an enum.
/// One button per value of an enum parameter, the current one lit.
fn choice_buttons<T: Enum + PartialEq + Copy + Send + Sync + 'static>(
    ui: &mut egui::Ui,
    label: &str,
    param: &EnumParam<T>,
    choices: &[(T, &str)],
    setter: &ParamSetter,
) {
    ui.horizontal(|ui| {
        ui.add_sized([92.0, 18.0], egui::Label::new(label));
        let current = param.value();
        for &(value, text) in choices {
            if ui.selectable_label(current == value, text).clicked() && current != value {
                setter.begin_set_parameter(param);
                setter.set_parameter(param, value);
                setter.end_set_parameter(param);
            }
        }
    });
}

fn toggle(ui: &mut egui::Ui, label: &str, param: &BoolParam, setter: &ParamSetter) {
    let mut on = param.value();
    if ui.checkbox(&mut on, label).changed() {
        setter.begin_set_parameter(param);
        setter.set_parameter(param, on);
        setter.end_set_parameter(param);
    }
}

fn score_plot(ui: &mut egui::Ui, scores: &ScoreHistory, size: Vec2) {
    let (response, painter) = ui.allocate_painter(size, Sense::hover());
    let rect = response.rect;
    painter.rect_filled(rect, 2.0, Color32::from_gray(18));
    if scores.points().is_empty() {
        painter.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "no dreamed windows yet: play some audio",
            egui::FontId::proportional(13.0),
            Color32::GRAY,
        );
        return;
    }
    let (lo, hi) = scores.range();
    let n = scores.capacity().max(2);
    let start = n - scores.points().len();
    let at = |i: usize, v: f32| {
        egui::pos2(
            rect.left() + rect.width() * (start + i) as f32 / (n - 1) as f32,
            rect.bottom() - rect.height() * (v - lo) / (hi - lo),
        )
    };
    let series = |pick: fn(&(f32, f32)) -> f32| -> Vec<egui::Pos2> {
        scores
            .points()
            .iter()
            .enumerate()
            .map(|(i, p)| at(i, pick(p)))
            .collect()
    };
    let (before, after) = (series(|p| p.0), series(|p| p.1));
    painter.add(egui::Shape::line(
        before,
        Stroke::new(1.5, Color32::from_gray(160)),
    ));
    painter.add(egui::Shape::line(
        after,
        Stroke::new(2.0, Color32::from_rgb(245, 150, 50)),
    ));
    let rise = scores.mean_rise().unwrap_or(0.0);
    painter.text(
        rect.left_top() + Vec2::new(6.0, 4.0),
        egui::Align2::LEFT_TOP,
        format!("{hi:.2}   (mean change per window {rise:+.3})"),
        egui::FontId::proportional(12.0),
        Color32::LIGHT_GRAY,
    );
    painter.text(
        rect.left_bottom() + Vec2::new(6.0, -4.0),
        egui::Align2::LEFT_BOTTOM,
        format!("{lo:.2}"),
        egui::FontId::proportional(12.0),
        Color32::LIGHT_GRAY,
    );
}

impl NiceEguiApp for ReverieEditor {
    fn build(
        &mut self,
        egui_ctx: egui::Context,
        nice_gui_ctx: GuiContext,
        _frame: &mut nice_plug_egui::Frame,
    ) -> Result<(), baseview::HandlerError> {
        egui_ctx.set_visuals(egui::Visuals::dark());
        self.gui = Some(nice_gui_ctx);
        self.textures = None;
        self.filters_of = None;
        self.input.clear();
        self.output.clear();
        Ok(())
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut nice_plug_egui::Frame) {
        self.drain();
        self.sync_browsers();
        self.update_textures(ui.ctx());
        let Some(gui) = self.gui.clone() else {
            return;
        };
        let setter = gui.param_setter();
        ResizableWindow::new("reverie").min_size(MIN_SIZE).show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading(RichText::new("Reverie").strong());
                ui.label("a neural network dreams on your track");
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    for zoom in [2.0, 1.5, 1.0] {
                        let on = (ui.ctx().zoom_factor() - zoom).abs() < 0.01;
                        if ui.selectable_label(on, format!("{zoom}x")).clicked() {
                            ui.ctx().set_zoom_factor(zoom);
                        }
                    }
                    ui.label("Zoom");
                });
            });
            ui.separator();
            ui.columns(2, |cols| {
                let (left, right) = cols.split_at_mut(1);
                let left = &mut left[0];
                let right = &mut right[0];
                egui::ScrollArea::vertical().id_salt("left").show(left, |ui| {
                    self.controls(ui, &setter);
                    self.status_panel(ui);
                });
                egui::ScrollArea::vertical().id_salt("right").show(right, |ui| {
                    self.pictures(ui);
                    self.filters(ui);
                    self.browser(ui, ModelKind::Perception);
                    self.browser(ui, ModelKind::Wavenet);
                });
            });
        });
        // Live pictures: redraw at about 30 frames per second.
        ui.ctx().request_repaint_after(Duration::from_millis(33));
    }

    fn editor_closed(&mut self) {
        self.textures = None;
        self.gui = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_lists_folders_then_model_files() {
        let dir = std::env::temp_dir().join(format!("reverie-browse-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("runs")).unwrap();
        std::fs::create_dir_all(dir.join(".hidden")).unwrap();
        for f in ["b.safetensors", "a.safetensors", "notes.txt"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        let entries = list_models(&dir).unwrap();
        assert_eq!(
            entries,
            vec![
                ("runs".to_string(), true),
                ("a.safetensors".to_string(), false),
                ("b.safetensors".to_string(), false)
            ]
        );
        assert!(list_models(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
