//! Why rendering failed.

use std::path::PathBuf;

/// Why rendering failed. (The messages name the SoundFont's package and
/// variable as [`super::SOUNDFONT_PACKAGE`] and [`super::SOUNDFONT_ENV`]
/// do; a test checks that they agree.)
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No SoundFont could be found; the message says what to install.
    #[error("the General MIDI SoundFont {path} is missing ({reason}); install the package fluid-soundfont-gm (Debian/Ubuntu: `sudo apt-get update && sudo apt-get install -y fluid-soundfont-gm`; `cargo xtask dataset` installs it when run as root), or set REVERIE_SOUNDFONT to the path of any General MIDI .sf2 file")]
    SoundFontMissing {
        /// The path looked for.
        path: PathBuf,
        /// Why it was not found.
        reason: String,
    },
    /// The SoundFont exists but could not be parsed.
    #[error("cannot read SoundFont {path}: {reason}; reinstall it (`apt-get install --reinstall fluid-soundfont-gm`) or point REVERIE_SOUNDFONT at a valid .sf2 file")]
    SoundFont {
        /// The file.
        path: PathBuf,
        /// What rustysynth said.
        reason: String,
    },
    /// The synthesiser refused its settings.
    #[error("synthesiser: {0}")]
    Synth(String),
    /// The render settings are inconsistent.
    #[error("invalid render settings: {0}")]
    BadConfig(String),
    /// The output could not be written.
    #[error(
        "cannot write {path}: {reason}; check that the output folder is writable and the disk has space"
    )]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The OS or encoder error.
        reason: String,
    },
    /// Resampling to the requested rate failed.
    #[error("resampling the rendered audio: {0}")]
    Resample(String),
}
