//! System packages a command needs, on Debian and Ubuntu: installed with
//! apt-get when running as root (as `scripts/test.sh` does), otherwise
//! named in an error with the exact `apt-get install` line to run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::bail;
use reverie_trainer::render::{find_soundfont, SOUNDFONT_ENV, SOUNDFONT_PACKAGE, SOUNDFONT_PATH};

/// One package and how to tell that what it provides is there.
pub struct Need {
    /// The Debian package.
    pub package: &'static str,
    /// What it provides, for the message on other systems.
    pub provides: &'static str,
    /// How to tell that it is there.
    pub check: Check,
}

/// How to tell that a package's part is there.
pub enum Check {
    /// This command succeeds.
    Command(&'static [&'static str]),
    /// This file exists.
    File(&'static str),
}

impl Check {
    fn passes(&self) -> bool {
        match self {
            Check::Command(args) => succeeds(args),
            Check::File(path) => Path::new(path).is_file(),
        }
    }
}

/// What building the plugin (its standalone's ALSA and JACK backends)
/// needs besides Rust.
pub const PLUGIN_BUILD: &[Need] = &[
    Need {
        package: "pkg-config",
        provides: "pkg-config",
        check: Check::Command(&["pkg-config", "--version"]),
    },
    Need {
        package: "libasound2-dev",
        provides: "the ALSA development files",
        check: Check::Command(&["pkg-config", "--exists", "alsa"]),
    },
    Need {
        package: "libjack-jackd2-dev",
        provides: "the JACK development files",
        check: Check::Command(&["pkg-config", "--exists", "jack"]),
    },
];

/// The General MIDI SoundFont the dataset renderer plays.
pub const SOUNDFONT: &[Need] = &[Need {
    package: SOUNDFONT_PACKAGE,
    provides: "the General MIDI SoundFont",
    check: Check::File(SOUNDFONT_PATH),
}];

/// The SoundFont to render with (see [`find_soundfont`]), installing
/// Debian's when it is missing and may be: never when `$REVERIE_SOUNDFONT`
/// names another, which is then used or reported as it is.
pub fn ensure_soundfont(what: &str) -> anyhow::Result<PathBuf> {
    if std::env::var_os(SOUNDFONT_ENV).is_none() {
        ensure(what, SOUNDFONT)?;
    }
    Ok(find_soundfont()?)
}

fn succeeds(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What to do about the missing packages.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Nothing is missing.
    Nothing,
    /// Install these with apt-get.
    Install(Vec<&'static str>),
    /// Stop with this message.
    Refuse(String),
}

fn plan(what: &str, missing: &[&Need], root: bool, apt: bool) -> Plan {
    if missing.is_empty() {
        return Plan::Nothing;
    }
    let packages: Vec<&'static str> = missing.iter().map(|n| n.package).collect();
    if root && apt {
        return Plan::Install(packages);
    }
    let line = format!("apt-get install -y {}", packages.join(" "));
    let provides: Vec<&str> = missing.iter().map(|n| n.provides).collect();
    Plan::Refuse(if apt {
        format!(
            "{what} needs {}; install them with `sudo apt-get update && sudo {line}` (or run this as root)",
            provides.join(", ")
        )
    } else {
        format!(
            "{what} needs {} (on Debian and Ubuntu: `{line}`); install them with your system's package manager",
            provides.join(", ")
        )
    })
}

/// Makes sure `needs` are there for `what`, installing them where it may.
pub fn ensure(what: &str, needs: &[Need]) -> anyhow::Result<()> {
    let missing: Vec<&Need> = needs.iter().filter(|n| !n.check.passes()).collect();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = succeeds(&["apt-get", "--version"]);
    match plan(what, &missing, root, apt) {
        Plan::Nothing => Ok(()),
        Plan::Refuse(message) => bail!(message),
        Plan::Install(packages) => {
            eprintln!(
                "{what} needs {}: installing them with apt-get",
                packages.join(" ")
            );
            for args in [
                vec!["update", "-qq"],
                [vec!["install", "-y", "-qq"], packages.clone()].concat(),
            ] {
                let status = Command::new("apt-get")
                    .args(&args)
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .status()?;
                if !status.success() {
                    bail!(
                        "`apt-get {}` failed ({status}); install {} by hand",
                        args.join(" "),
                        packages.join(" ")
                    );
                }
            }
            let still: Vec<&str> = needs
                .iter()
                .filter(|n| !n.check.passes())
                .map(|n| n.package)
                .collect();
            if !still.is_empty() {
                bail!("installed, but {} still cannot be found", still.join(" "));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_as_root_and_otherwise_names_the_exact_command() {
        let missing: Vec<&Need> = PLUGIN_BUILD[1..].iter().collect();
        assert_eq!(plan("bundling", &[], false, true), Plan::Nothing);
        assert_eq!(
            plan("bundling", &missing, true, true),
            Plan::Install(vec!["libasound2-dev", "libjack-jackd2-dev"])
        );
        let Plan::Refuse(user) = plan("bundling", &missing, false, true) else {
            panic!("not root: refused")
        };
        assert!(
            user.contains("sudo apt-get install -y libasound2-dev libjack-jackd2-dev"),
            "{user}"
        );
        let Plan::Refuse(other) = plan("bundling", &missing, true, false) else {
            panic!("no apt-get: refused")
        };
        assert!(
            other.contains("ALSA") && other.contains("JACK") && other.contains("libasound2-dev"),
            "{other}"
        );
    }

    #[test]
    fn this_machine_can_build_the_plugin_and_render() {
        // The test script installs the packages; the checks must see them.
        let missing: Vec<&str> = PLUGIN_BUILD
            .iter()
            .chain(SOUNDFONT)
            .filter(|n| !n.check.passes())
            .map(|n| n.package)
            .collect();
        assert!(missing.is_empty(), "checks fail for {missing:?}");
    }

    #[test]
    fn a_file_check_looks_for_the_file() {
        assert!(Check::File(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).passes());
        assert!(!Check::File("/no/such/file.sf2").passes());
        let missing: Vec<&Need> = SOUNDFONT.iter().collect();
        let Plan::Refuse(user) = plan("rendering", &missing, false, true) else {
            panic!("not root: refused")
        };
        assert!(
            user.contains("sudo apt-get install -y fluid-soundfont-gm"),
            "{user}"
        );
        assert!(user.contains("General MIDI SoundFont"), "{user}");
    }
}
