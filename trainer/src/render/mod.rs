//! Rendering a labelled instrument dataset from a General MIDI SoundFont.
//!
//! Each clip is a short generated phrase ([`phrases`]: a melody, chords or
//! a rhythm, in a random key, register, tempo and dynamic) played by one
//! program of one instrument family ([`families`]) through rustysynth, then
//! coloured by a random room, tone and level ([`colour`]) so that the
//! families are told apart by timbre rather than by loudness or reverb.
//! Every clip draws its randomness from its own generator, seeded by (seed,
//! family, index): the output is the same for a seed whatever the number of
//! threads or clips. [`piano`] renders the dry solo piano a WaveNet learns
//! from. The SoundFont is found, never installed, here ([`soundfont`]).

mod colour;
mod error;
mod families;
mod phrases;
mod piano;
mod renderer;
mod soundfont;

pub use error::RenderError;
pub use families::{Family, FAMILIES, PIANO_MELODIES, SOLO_PIANO};
pub use piano::{render_piano, PianoStyle};
pub use renderer::{RenderConfig, RenderSummary, Renderer, DRY_PEAK};
pub use soundfont::{find_soundfont, SOUNDFONT_ENV, SOUNDFONT_PACKAGE, SOUNDFONT_PATH};
