//! `cargo xtask bundle` and `cargo xtask install`: plugin bundles via
//! nice-plug-xtask (names from bundler.toml), copied to the user's plugin
//! folders.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Arguments of `cargo xtask bundle`: passed on to nice-plug-xtask
/// (e.g. `reverie --release`).
#[derive(clap::Args)]
pub struct BundleArgs {
    /// Package and cargo options, e.g. `reverie --release`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Arguments of `cargo xtask install`.
#[derive(clap::Args)]
pub struct InstallArgs {
    /// Install a debug build (faster to build, slower to run).
    #[arg(long)]
    pub debug: bool,
    /// Cargo features of the plugin to build with (the tests install with
    /// `assert_process_allocs`, so the build is the one their hosts use).
    #[arg(long)]
    pub features: Option<String>,
}

/// Builds the bundles into target/bundled/, after checking (or
/// installing) the system packages the plugin's build needs.
pub fn bundle(args: &BundleArgs) -> anyhow::Result<()> {
    crate::system_packages::ensure("building the plugin", crate::system_packages::PLUGIN_BUILD)?;
    let args = std::iter::once("bundle".to_string()).chain(args.args.iter().cloned());
    nice_plug_xtask::main_with_args("cargo xtask", args)
}

/// Bundles Reverie and copies Reverie.clap to ~/.clap and Reverie.vst3 to ~/.vst3.
pub fn install(args: &InstallArgs) -> anyhow::Result<()> {
    let mut bundle_args = vec!["reverie".to_string()];
    if !args.debug {
        bundle_args.push("--release".into());
    }
    if let Some(features) = &args.features {
        bundle_args.extend(["--features".into(), features.clone()]);
    }
    bundle(&BundleArgs { args: bundle_args })?;
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set")?;
    let bundled = Path::new("target/bundled");
    for (name, folder) in [("Reverie.clap", ".clap"), ("Reverie.vst3", ".vst3")] {
        let from = bundled.join(name);
        if !from.exists() {
            bail!(
                "{} was not built; run `cargo xtask bundle reverie --release`",
                from.display()
            );
        }
        let to_dir = home.join(folder);
        std::fs::create_dir_all(&to_dir).with_context(|| format!("creating {}", to_dir.display()))?;
        let to = to_dir.join(name);
        copy_all(&from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        eprintln!("installed {}", to.display());
    }
    Ok(())
}

/// Copies a file or a folder tree, replacing what is there.
fn copy_all(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        if to.is_file() {
            std::fs::remove_file(to)?;
        }
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_all(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        if to.is_dir() {
            std::fs::remove_dir_all(to)?;
        }
        std::fs::copy(from, to).map(|_| ())
    }
}
