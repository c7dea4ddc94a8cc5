//! What the editor's panels show for a given state, as plain data: status
//! lines, the target menu, the score history. No window needed, so all of
//! it is unit tested; `editor` only lays it out.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

pub use reverie_engine::filters::heat;

use crate::sampler_worker::SamplerState;
use crate::status::Status;
use crate::telemetry::ScorePoint;

/// A copy of the shared status at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusSnapshot {
    /// Compute device of the dream worker ("" before the first activation).
    pub device: String,
    /// Whether the dream worker runs.
    pub dream_alive: bool,
    /// Audio seconds dreamed per wall-clock second (0 before any work).
    pub dream_rtf: f32,
    /// Whether the WaveNet worker runs.
    pub wavenet_alive: bool,
    /// Audio seconds the WaveNet worker handles per second.
    pub wavenet_rtf: f32,
    /// What the WaveNet does.
    pub wavenet: SamplerState,
    /// Samples the workers delivered late (see `Status::underruns`).
    pub underruns: u64,
    /// Latency reported to the host, in samples.
    pub latency_samples: u32,
    /// Host sample rate (0 before the first activation).
    pub host_rate: u32,
    /// Windows dreamed since activation.
    pub windows: u64,
    /// Gradient steps the last window got, and the steps asked for.
    pub steps: (u32, u32),
    /// Windows given fewer steps than asked, and windows not dreamed, to
    /// keep up with live playback.
    pub cut: (u64, u64),
    /// Whether the host is rendering (the audio thread waits for the workers).
    pub rendering: bool,
    /// The last message about models.
    pub message: String,
}

impl StatusSnapshot {
    /// Reads the shared status (atomics; the two strings are written only
    /// by non-real-time threads).
    pub fn read(status: &Status, asked_steps: u32) -> Self {
        let text = |s: &std::sync::RwLock<String>| s.read().map(|s| s.clone()).unwrap_or_default();
        Self {
            device: text(&status.device),
            dream_alive: status.dream.alive.load(Ordering::Acquire),
            dream_rtf: status.dream.realtime_factor.load(Ordering::Relaxed),
            wavenet_alive: status.wavenet.alive.load(Ordering::Acquire),
            wavenet_rtf: status.wavenet.realtime_factor.load(Ordering::Relaxed),
            wavenet: SamplerState::load(&status.wavenet_state),
            underruns: status.underruns.load(Ordering::Relaxed),
            latency_samples: status.latency_samples.load(Ordering::Relaxed),
            host_rate: status.host_rate.load(Ordering::Relaxed),
            windows: status.windows.load(Ordering::Relaxed),
            steps: (status.dream_steps.load(Ordering::Relaxed), asked_steps),
            cut: (
                status.cut_windows.load(Ordering::Relaxed),
                status.skipped_windows.load(Ordering::Relaxed),
            ),
            rendering: status.rendering.load(Ordering::Relaxed),
            message: text(&status.model_message),
        }
    }
}

/// The status panel's lines: label and text.
pub fn status_lines(s: &StatusSnapshot) -> Vec<(&'static str, String)> {
    if s.host_rate == 0 {
        return vec![(
            "Engine",
            "not running: the host has not activated the plugin yet".into(),
        )];
    }
    let pace = |alive: bool, rtf: f32| {
        if !alive {
            "stopped (the output stays dry)".to_string()
        } else if rtf <= 0.0 {
            "waiting for audio".to_string()
        } else {
            format!("{rtf:.1}x real time")
        }
    };
    let wavenet = match s.wavenet {
        SamplerState::Off => "off".to_string(),
        SamplerState::Listening => format!("listening ({})", pace(s.wavenet_alive, s.wavenet_rtf)),
        SamplerState::Generating => format!("generating ({})", pace(s.wavenet_alive, s.wavenet_rtf)),
    };
    vec![
        ("Device", s.device.clone()),
        (
            "Dreaming",
            format!("{}, {} windows", pace(s.dream_alive, s.dream_rtf), s.windows),
        ),
        ("Steps", steps_text(s)),
        ("Latency", latency_text(s.latency_samples, s.host_rate)),
        (
            "Host",
            if s.rendering {
                "rendering: every block waits for the dream".into()
            } else {
                "playing live".into()
            },
        ),
        ("Underruns", s.underruns.to_string()),
        ("WaveNet", wavenet),
        ("Models", s.message.clone()),
    ]
}

/// "4 of 4 per window", and when live playback made the dream cut steps
/// to keep up, how often.
fn steps_text(s: &StatusSnapshot) -> String {
    let (used, asked) = s.steps;
    let (cut, skipped) = s.cut;
    let mut text = format!("{used} of {asked} per window");
    if cut > 0 {
        text += &format!(" (fewer in {cut} windows to keep up");
        if skipped > 0 {
            text += &format!(", {skipped} not dreamed");
        }
        text += ")";
    }
    text
}

/// "1520 ms (67032 samples at 44100 Hz)".
pub fn latency_text(samples: u32, rate: u32) -> String {
    let ms = f64::from(samples) * 1000.0 / f64::from(rate.max(1));
    format!("{ms:.0} ms ({samples} samples at {rate} Hz)")
}

/// The target menu: the model's target names and which one is selected
/// (the parameter can hold an index past the list; the worker then uses
/// the last target, and so does the menu).
pub fn target_choice(names: &[String], index: i32) -> Option<usize> {
    if names.is_empty() {
        return None;
    }
    Some((index.max(0) as usize).min(names.len() - 1))
}

/// The last dreamed windows' scores for one target, oldest first.
#[derive(Debug, Clone, Default)]
pub struct ScoreHistory {
    target: Option<u32>,
    points: VecDeque<(f32, f32)>,
    capacity: usize,
}

impl ScoreHistory {
    /// Keeps the last `capacity` windows.
    pub fn new(capacity: usize) -> Self {
        Self {
            target: None,
            points: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    /// Adds a window; a point for another target starts a new history,
    /// since scores of different targets are not comparable.
    pub fn push(&mut self, p: ScorePoint) {
        if !(p.before.is_finite() && p.after.is_finite()) {
            return;
        }
        if self.target != Some(p.target) {
            self.points.clear();
            self.target = Some(p.target);
        }
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back((p.before, p.after));
    }

    /// (before, after) per window, oldest first.
    pub fn points(&self) -> &VecDeque<(f32, f32)> {
        &self.points
    }

    /// The target index the history is for.
    pub fn target(&self) -> Option<u32> {
        self.target
    }

    /// Most windows kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The range to draw: every value inside, never empty.
    pub fn range(&self) -> (f32, f32) {
        let (lo, hi) = self
            .points
            .iter()
            .flat_map(|&(a, b)| [a, b])
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        if lo > hi {
            return (0.0, 1.0);
        }
        let pad = ((hi - lo) * 0.1).max(1e-3);
        (lo - pad, hi + pad)
    }

    /// Mean rise of the target per window (after minus before).
    pub fn mean_rise(&self) -> Option<f32> {
        if self.points.is_empty() {
            return None;
        }
        Some(self.points.iter().map(|(a, b)| b - a).sum::<f32>() / self.points.len() as f32)
    }
}

/// An RGBA image `width` x `height` of levels given column by column,
/// lowest row first (drawn at the bottom), through [`heat`].
pub fn columns_to_rgba(columns: &[&[f32]], width: usize, height: usize) -> Vec<u8> {
    let mut rgba = vec![0u8; width * height * 4];
    for px in rgba.chunks_exact_mut(4) {
        px[3] = 255;
    }
    // Right-aligned: the newest column at the right edge.
    let offset = width.saturating_sub(columns.len());
    for (i, column) in columns.iter().rev().take(width).rev().enumerate() {
        let x = offset + i;
        for (row, &v) in column.iter().take(height).enumerate() {
            let y = height - 1 - row;
            let [r, g, b] = heat(v);
            rgba[(y * width + x) * 4..][..3].copy_from_slice(&[r, g, b]);
        }
    }
    rgba
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> StatusSnapshot {
        StatusSnapshot {
            device: "CPU (8 threads)".into(),
            dream_alive: true,
            dream_rtf: 4.26,
            wavenet_alive: true,
            wavenet_rtf: 3.0,
            wavenet: SamplerState::Listening,
            underruns: 7,
            latency_samples: 67_032,
            host_rate: 44_100,
            windows: 12,
            steps: (4, 4),
            cut: (0, 0),
            rendering: false,
            message: "using the built-in perception model".into(),
        }
    }

    #[test]
    fn status_lines_say_device_pace_latency_underruns_and_wavenet_state() {
        let lines = status_lines(&running());
        let get = |k: &str| lines.iter().find(|(l, _)| *l == k).unwrap().1.clone();
        assert_eq!(get("Device"), "CPU (8 threads)");
        assert_eq!(get("Dreaming"), "4.3x real time, 12 windows");
        assert_eq!(get("Latency"), "1520 ms (67032 samples at 44100 Hz)");
        assert_eq!(get("Underruns"), "7");
        assert_eq!(get("WaveNet"), "listening (3.0x real time)");
        assert_eq!(get("Host"), "playing live");
        assert_eq!(get("Steps"), "4 of 4 per window");

        let mut s = running();
        s.steps = (2, 8);
        s.cut = (5, 1);
        assert!(status_lines(&s).contains(&(
            "Steps",
            "2 of 8 per window (fewer in 5 windows to keep up, 1 not dreamed)".into()
        )));
        s.rendering = true;
        s.dream_alive = false;
        s.wavenet = SamplerState::Generating;
        s.wavenet_rtf = 0.0;
        let lines = status_lines(&s);
        let get = |k: &str| lines.iter().find(|(l, _)| *l == k).unwrap().1.clone();
        assert!(get("Dreaming").starts_with("stopped"), "{}", get("Dreaming"));
        assert_eq!(get("WaveNet"), "generating (waiting for audio)");
        assert!(get("Host").starts_with("rendering"), "{}", get("Host"));
        s.wavenet = SamplerState::Off;
        assert!(status_lines(&s).contains(&("WaveNet", "off".into())));
    }

    #[test]
    fn before_activation_the_status_says_so() {
        let mut s = running();
        s.host_rate = 0;
        let lines = status_lines(&s);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].1.contains("not activated"), "{:?}", lines);
    }

    #[test]
    fn target_menu_clamps_like_the_worker() {
        let names: Vec<String> = ["layer 1", "class: piano", "class: organ"]
            .map(String::from)
            .to_vec();
        assert_eq!(target_choice(&names, 1), Some(1));
        assert_eq!(target_choice(&names, 40), Some(2));
        assert_eq!(target_choice(&names, -3), Some(0));
        assert_eq!(target_choice(&[], 0), None);
    }

    #[test]
    fn score_history_restarts_on_a_new_target_and_scrolls() {
        let mut h = ScoreHistory::new(3);
        let p = |target, before, after| ScorePoint {
            target,
            before,
            after,
        };
        h.push(p(1, 0.0, 1.0));
        h.push(p(1, 1.0, 3.0));
        assert_eq!(h.mean_rise(), Some(1.5));
        h.push(p(2, 5.0, 4.0));
        assert_eq!(h.points().len(), 1, "another target starts over");
        assert_eq!(h.target(), Some(2));
        for i in 0..5 {
            h.push(p(2, i as f32, i as f32 + 0.5));
        }
        assert_eq!(
            h.points().iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![2.0, 3.0, 4.0]
        );
        h.push(p(2, f32::NAN, 1.0));
        assert_eq!(h.points().len(), 3, "non-finite scores are ignored");
        let (lo, hi) = h.range();
        assert!(lo < 2.0 && hi > 4.5, "{lo}..{hi}");
        assert_eq!(ScoreHistory::new(4).range(), (0.0, 1.0));
    }

    #[test]
    fn columns_are_drawn_newest_right_lowest_row_at_the_bottom() {
        let a = [1.0f32, 0.0];
        let b = [0.0f32, 0.5];
        let img = columns_to_rgba(&[&a, &b], 3, 2);
        let px = |x: usize, y: usize| &img[(y * 3 + x) * 4..][..4];
        // Column 0 is empty (only two columns for a width of 3).
        assert_eq!(px(0, 0), &[0, 0, 0, 255]);
        assert_eq!(px(0, 1), &[0, 0, 0, 255]);
        // `a`: row 0 (bottom, y = 1) full.
        assert_eq!(&px(1, 1)[..3], &heat(1.0));
        assert_eq!(&px(1, 0)[..3], &heat(0.0));
        // `b`: row 1 (top) half.
        assert_eq!(&px(2, 0)[..3], &heat(0.5));
        assert!(heat(0.5).iter().any(|&c| c > 0) && heat(0.5) != heat(1.0));
    }
}
