//! `cargo xtask install` builds the bundles named in bundler.toml, puts
//! them in ~/.clap and ~/.vst3, and the installed CLAP bundle loads and
//! processes audio in a host.

use std::process::Command;

use clack_host::prelude::PluginEntry;
use reverie_tests::clap_host::ClapPlugin;
use reverie_tests::{scratch, workspace_root};

#[test]
fn install_puts_loadable_bundles_in_the_users_plugin_folders() {
    let home = scratch("install-home");
    let out = Command::new(env!("CARGO"))
        // The features the CLAP and VST3 tests build with: one build of the
        // plugin serves all of them.
        .args([
            "xtask",
            "install",
            "--debug",
            "--features",
            "assert_process_allocs",
        ])
        .env("HOME", &home)
        .current_dir(workspace_root())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "install failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clap = home.join(".clap/Reverie.clap");
    let vst3 = home.join(".vst3/Reverie.vst3/Contents/x86_64-linux/Reverie.so");
    assert!(clap.is_file(), "{} missing", clap.display());
    assert!(vst3.is_file(), "{} missing", vst3.display());

    // SAFETY: loading our own freshly built plugin library.
    let entry = unsafe { PluginEntry::load(&clap) }.expect("the installed bundle loads");
    let mut plugin = ClapPlugin::from_entry(&entry);
    plugin.activate(48_000.0, 256).expect("activates");
    assert!(plugin.latency() > 0);
    let input: Vec<f32> = (0..1024).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
    let out = plugin.process(&[&input, &input], 256, &[]);
    assert_eq!(out.len(), 2);
    assert!(out.iter().flatten().all(|v| v.is_finite()));
    plugin.deactivate();
    std::fs::remove_dir_all(&home).unwrap();
}
