//! Helpers for Reverie's end-to-end tests: running `cargo xtask` and making
//! scratch folders and files.

pub mod clap_host;
pub mod screenshot;
pub mod signals;
pub mod vst3_host;
pub mod xvfb;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The variable naming the file the plugin appends each activation's
/// statistics to (the plugin's `STATS_ENV`; the plugin crate is not a
/// dependency here, the tests load its bundle).
pub const STATS_ENV: &str = "REVERIE_STATS";

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `cargo ARGS` from the workspace root, as a user would run it.
pub fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO"));
    command.args(args).current_dir(workspace_root());
    command
}

/// Runs `command` (a [`cargo`] command) and returns its output, failing
/// the test with cargo's messages if it does not succeed.
pub fn succeeds(command: &mut Command) -> Output {
    let out = command.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cargo xtask ARGS` from the workspace root, exactly as a user would.
pub fn cargo_xtask(args: &[&str]) -> Output {
    cargo(&["xtask"]).args(args).output().expect("cargo runs")
}

/// Runs `cargo xtask ARGS` and checks it fails the way a user should see:
/// a non-zero exit, a message on stderr that mentions `needle`, no panic.
pub fn cargo_xtask_fails(args: &[&str], needle: &str) {
    let out = cargo_xtask(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(
        err.contains(needle),
        "{args:?}: `{err}` should mention `{needle}`"
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
}

/// A fresh, empty scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reverie-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
