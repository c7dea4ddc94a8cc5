//! `cargo xtask install` builds the bundles named in bundler.toml, puts
//! them in ~/.clap and ~/.vst3, and the installed CLAP bundle loads and
//! processes audio in a host; and those builds reuse the test build's
//! dependencies.

use std::collections::BTreeSet;

use clack_host::prelude::PluginEntry;
use reverie_tests::clap_host::ClapPlugin;
use reverie_tests::{cargo, scratch, succeeds};

#[test]
fn install_puts_loadable_bundles_in_the_users_plugin_folders() {
    let home = scratch("install-home");
    // The features the CLAP and VST3 tests build with: one build of the
    // plugin serves all of them.
    succeeds(
        cargo(&[
            "xtask",
            "install",
            "--debug",
            "--features",
            "assert_process_allocs",
        ])
        .env("HOME", &home),
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

/// Every package of `cargo tree ARGS` with the features it is built with,
/// one `name version [features]` line each (build and proc-macro
/// dependencies on lines of their own where their features differ).
fn packages_with_features(args: &[&str]) -> BTreeSet<String> {
    let out = succeeds(cargo(&["tree", "--prefix", "none", "-f", "{p} [{f}]"]).args(args));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| line.trim_end_matches(" (*)").to_string())
        .filter(|line| !line.is_empty())
        .collect()
}

/// A dependency built with other features than the workspace's build gives
/// it is compiled again, with everything above it: before the
/// workspace-hack crate, `cargo xtask` and the bundle rebuilt about 300
/// crates after `cargo test` (ten minutes of CI). Only the plugin's
/// `assert_process_allocs` may differ, and the crates it switches on.
#[test]
fn the_plugin_and_xtask_builds_ask_for_no_features_the_workspace_build_lacks() {
    let workspace = packages_with_features(&["--workspace", "-e", "normal,build,dev"]);
    let allowed = [
        "reverie ",
        "nice-plug ",
        "nice-plug-core ",
        "nice-assert-no-alloc ",
    ];
    for args in [
        &[
            "-p",
            "reverie",
            "--features",
            "assert_process_allocs",
            "-e",
            "normal,build",
        ][..],
        &["-p", "xtask", "-e", "normal,build"][..],
    ] {
        let own = packages_with_features(args);
        assert!(own.len() > 100, "{args:?}: only {} packages", own.len());
        let extra: Vec<&String> = own
            .difference(&workspace)
            .filter(|line| !allowed.iter().any(|name| line.starts_with(name)))
            .collect();
        assert!(
            extra.is_empty(),
            "{args:?} builds these with features the workspace build does not give them, \
             so it compiles them (and all above them) again; add them to \
             workspace-hack/Cargo.toml: {extra:#?}"
        );
    }
}
