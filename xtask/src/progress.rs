//! Progress bars of the long-running commands.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps drawn with `template` (indicatif's syntax), or in
/// indicatif's default style should the template not parse.
pub fn styled_bar(len: u64, template: &str) -> ProgressBar {
    ProgressBar::new(len).with_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    )
}

/// A training run's progress bar: steps, a smoothed loss, and lines of
/// text printed above it.
pub struct LossBar {
    /// The bar: hidden until the run starts, and when stderr is not a
    /// terminal.
    pub bar: ProgressBar,
    smoothed: Option<f32>,
}

impl LossBar {
    /// A hidden bar, until [`LossBar::start`].
    pub fn new() -> Self {
        Self {
            bar: ProgressBar::hidden(),
            smoothed: None,
        }
    }

    /// Shows the bar for a run of `total_steps` that has taken `step` so far.
    pub fn start(&mut self, template: &str, total_steps: u64, step: u64) {
        self.bar = styled_bar(total_steps, template);
        self.bar.set_position(step);
    }

    /// Folds a step's loss into an exponential average in which the newest
    /// loss weighs `weight`, and returns the average: single-batch losses
    /// jump around too much to read.
    pub fn smooth(&mut self, loss: f32, weight: f32) -> f32 {
        let s = self.smoothed.map_or(loss, |s| (1.0 - weight) * s + weight * loss);
        self.smoothed = Some(s);
        s
    }

    /// Says that validation is running, until the next step.
    pub fn validating(&self) {
        self.bar.set_message("validating ...");
    }

    /// Prints above the bar; a hidden bar (output not a terminal, e.g. a
    /// log file) drops the text, so then it goes to stderr directly.
    pub fn say(&self, text: String) {
        if self.bar.is_hidden() {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }
}
