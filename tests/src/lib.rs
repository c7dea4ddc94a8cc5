//! Helpers for Reverie's end-to-end tests: running `cargo xtask` and making
//! scratch folders and files.

pub mod clap_host;
pub mod screenshot;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Runs `cargo xtask ARGS` from the workspace root, exactly as a user would.
pub fn cargo_xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO"))
        .arg("xtask")
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("cargo runs")
}

/// A fresh, empty scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reverie-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
