//! Where the General MIDI SoundFont is. The library only looks and says
//! what is missing; the commands (`cargo xtask dataset`, `train wavenet
//! --render-piano`) install it.

use std::ffi::OsString;
use std::path::PathBuf;

use super::error::RenderError;

/// Where Debian's `fluid-soundfont-gm` package puts its SoundFont.
pub const SOUNDFONT_PATH: &str = "/usr/share/sounds/sf2/FluidR3_GM.sf2";
/// The Debian package that provides [`SOUNDFONT_PATH`].
pub const SOUNDFONT_PACKAGE: &str = "fluid-soundfont-gm";
/// Environment variable naming another General MIDI SoundFont to use.
pub const SOUNDFONT_ENV: &str = "REVERIE_SOUNDFONT";

/// The General MIDI SoundFont to render with: `$REVERIE_SOUNDFONT` if it is
/// set, else [`SOUNDFONT_PATH`]. When the file is not there, the error
/// names the package to install.
pub fn find_soundfont() -> Result<PathBuf, RenderError> {
    find_in(std::env::var_os(SOUNDFONT_ENV))
}

fn find_in(custom: Option<OsString>) -> Result<PathBuf, RenderError> {
    let (path, reason) = match custom {
        Some(custom) => (PathBuf::from(custom), format!("{SOUNDFONT_ENV} names no file")),
        None => (PathBuf::from(SOUNDFONT_PATH), "it is not installed".into()),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(RenderError::SoundFontMissing { path, reason })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_missing_soundfont_says_what_to_install() {
        let err = find_in(Some("/no/such/font.sf2".into())).unwrap_err();
        assert!(
            matches!(&err, RenderError::SoundFontMissing { path, .. } if path == Path::new("/no/such/font.sf2"))
        );
        let message = err.to_string();
        assert!(
            message.contains("apt-get install -y fluid-soundfont-gm"),
            "{message}"
        );
        assert!(message.contains(SOUNDFONT_ENV), "{message}");
        assert!(message.contains(SOUNDFONT_PACKAGE), "{message}");
        let unreadable = RenderError::SoundFont {
            path: "x.sf2".into(),
            reason: "bad".into(),
        };
        assert!(unreadable.to_string().contains(SOUNDFONT_PACKAGE));
        assert!(unreadable.to_string().contains(SOUNDFONT_ENV));
        // A custom SoundFont that exists is taken as it is (whether it
        // parses is the renderer's business).
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        assert_eq!(find_in(Some(file.clone().into())).unwrap(), file);
    }
}
