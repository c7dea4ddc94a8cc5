//! System packages a command needs, on Debian and Ubuntu: installed with
//! apt-get when running as root (as `scripts/test.sh` does), otherwise
//! named in an error with the exact `apt-get install` line to run.

use std::process::{Command, Stdio};

use anyhow::bail;

/// One package and how to tell that what it provides is there.
pub struct Need {
    /// The Debian package.
    pub package: &'static str,
    /// What it provides, for the message on other systems.
    pub provides: &'static str,
    /// A command that succeeds when it is there.
    pub check: &'static [&'static str],
}

/// What building the plugin (its standalone's ALSA and JACK backends)
/// needs besides Rust.
pub const PLUGIN_BUILD: &[Need] = &[
    Need {
        package: "pkg-config",
        provides: "pkg-config",
        check: &["pkg-config", "--version"],
    },
    Need {
        package: "libasound2-dev",
        provides: "the ALSA development files",
        check: &["pkg-config", "--exists", "alsa"],
    },
    Need {
        package: "libjack-jackd2-dev",
        provides: "the JACK development files",
        check: &["pkg-config", "--exists", "jack"],
    },
];

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
    let missing: Vec<&Need> = needs.iter().filter(|n| !succeeds(n.check)).collect();
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
                .filter(|n| !succeeds(n.check))
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
    fn this_machine_can_build_the_plugin() {
        // The test script installs the packages; the checks must see them.
        let missing: Vec<&str> = PLUGIN_BUILD
            .iter()
            .filter(|n| !succeeds(n.check))
            .map(|n| n.package)
            .collect();
        assert!(missing.is_empty(), "checks fail for {missing:?}");
    }
}
