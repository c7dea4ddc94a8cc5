//! `cargo xtask`'s first step. The alias runs this tiny program, which
//! builds the real `xtask` binary with cargo and then runs it with the same
//! arguments. When there is compiling to do (the first run on a fresh
//! machine takes minutes) it says so, with a rough time and a count of what
//! has been compiled, instead of the silence of a quiet `cargo run`.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

/// What a build costs, roughly, on the 2-core machines this project is
/// built on (the dependency tree is about 400 crates).
const HOW_LONG: &str = "a first build takes about 5 minutes on 2 cores; a rebuild after a change, seconds";

fn main() -> ExitCode {
    match build() {
        Ok(binary) => run(binary),
        Err(message) => {
            eprintln!("cargo xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Builds `xtask` (a no-op when it is up to date) and returns its path.
fn build() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--package",
            "xtask",
            "--message-format",
            "json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let stdout = child.stdout.take().ok_or("no output from cargo")?;
    let mut progress = Progress::default();
    let mut binary = None;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if !line.contains(r#""reason":"compiler-artifact""#) {
            continue;
        }
        if line.contains(r#""fresh":false"#) {
            progress.compiled(&line);
        }
        if line.contains(r#""name":"xtask""#) {
            binary = json_string(&line, "executable").map(PathBuf::from);
        }
    }
    progress.finish();
    let status = child.wait().map_err(|e| format!("cargo did not finish: {e}"))?;
    if !status.success() {
        return Err("building Reverie's command line failed (cargo's messages are above)".into());
    }
    binary.ok_or_else(|| "cargo built no xtask binary".into())
}

/// Says that compiling is going on, once, then counts crates as they come.
#[derive(Default)]
struct Progress {
    count: usize,
}

impl Progress {
    fn compiled(&mut self, line: &str) {
        let tty = std::io::stderr().is_terminal();
        if self.count == 0 {
            eprintln!("cargo xtask: compiling Reverie's command line first ({HOW_LONG})");
        }
        self.count += 1;
        let name = json_string(line, "name").unwrap_or_default();
        if tty {
            eprint!("\r\x1b[2K  {} crates compiled, last: {name}", self.count);
            let _ = std::io::stderr().flush();
        } else if self.count.is_multiple_of(50) {
            eprintln!("  {} crates compiled", self.count);
        }
    }

    fn finish(&self) {
        if self.count > 0 {
            if std::io::stderr().is_terminal() {
                eprintln!();
            }
            let s = if self.count == 1 { "" } else { "s" };
            eprintln!("cargo xtask: compiled {} crate{s}", self.count);
        }
    }
}

/// The first string value of `"key":"..."` in one line of cargo's JSON.
fn json_string(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut out = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Runs the built command with this program's arguments and exit status.
fn run(binary: PathBuf) -> ExitCode {
    let mut command = Command::new(&binary);
    command.args(std::env::args_os().skip(1));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let error = command.exec();
        eprintln!("cargo xtask: cannot run {}: {error}", binary.display());
        ExitCode::FAILURE
    }
    #[cfg(not(unix))]
    match command.status() {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(error) => {
            eprintln!("cargo xtask: cannot run {}: {error}", binary.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::json_string;

    #[test]
    fn reads_strings_out_of_cargo_messages() {
        let line = r#"{"reason":"compiler-artifact","target":{"name":"xtask","kind":["bin"]},"executable":"/a \"b\"/c\\d\u00e9","fresh":false}"#;
        assert_eq!(json_string(line, "name").as_deref(), Some("xtask"));
        assert_eq!(json_string(line, "executable").as_deref(), Some("/a \"b\"/c\\dé"));
        assert_eq!(json_string(line, "missing"), None);
        assert_eq!(json_string(r#"{"name":"unterminated"#, "name"), None);
    }
}
