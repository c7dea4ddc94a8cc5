//! What `train dreamer` and `train wavenet` do alike around their trainers:
//! where the run folder and the model go, what a resumed run keeps, and how
//! a run reports its end.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use reverie_trainer::run::RunOutcome;

/// The stem of `path`'s file name, or `fallback` when it has none.
pub fn file_stem_or(path: &Path, fallback: &str) -> String {
    path.file_stem()
        .map_or_else(|| fallback.into(), |s| s.to_string_lossy().into_owned())
}

/// Creates the folder `path` goes in, unless that is the current one.
pub fn create_parent_dir(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// The run folder of a fresh run: `run_dir` (--run-dir) if given, else
/// `runs/<name of out>` (`fallback` when `out` has no name).
pub fn fresh_run_dir(run_dir: Option<&PathBuf>, out: &Path, fallback: &str) -> PathBuf {
    run_dir
        .cloned()
        .unwrap_or_else(|| PathBuf::from("runs").join(file_stem_or(out, fallback)))
}

/// The run folder of a resumed run: `run_dir` (--run-dir) if given, else
/// the folder the checkpoint is in.
pub fn resumed_run_dir(run_dir: Option<&PathBuf>, checkpoint: &Path) -> PathBuf {
    run_dir.cloned().unwrap_or_else(|| {
        checkpoint
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    })
}

/// Notes each flag given (`true`) that a resumed run does not use: the
/// checkpoint's settings win, and saying so beats ignoring it silently.
pub fn note_ignored_on_resume(flags: &[(&str, bool)]) {
    for &(flag, given) in flags {
        if given {
            eprintln!(
                "note: {flag} is ignored with --resume; the run continues with the checkpoint's settings"
            );
        }
    }
}

/// The data source of a resumed run: the checkpoint's (`saved`), or a
/// `fresh` one for `data` (--data) when the checkpoint does not say; either
/// way in the folder `data` names, if given, which `root` reaches.
pub fn resumed_source<S: Clone>(
    saved: Option<&S>,
    data: Option<&PathBuf>,
    fresh: impl FnOnce(PathBuf) -> S,
    root: impl FnOnce(&mut S) -> &mut PathBuf,
) -> anyhow::Result<S> {
    let mut source = match (saved, data) {
        (Some(s), _) => s.clone(),
        (None, Some(folder)) => fresh(folder.clone()),
        (None, None) => bail!("the checkpoint does not say where its data is; pass --data DIR"),
    };
    if let Some(folder) = data {
        *root(&mut source) = folder.clone();
    }
    Ok(source)
}

/// Warns when a resumed run's data (`what`: "data", "audio") in `root` is
/// not what the checkpoint was trained on (`changed`): training goes on,
/// but no longer as the original run would have.
pub fn warn_if_data_changed(changed: bool, what: &str, root: &Path) {
    if changed {
        eprintln!(
            "warning: the {what} in {} differs from what the checkpoint was trained on; training continues, but not exactly as the original run would have",
            root.display()
        );
    }
}

/// This process's command line as the user typed it, quoted, for the
/// description stored in a model file.
pub fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("`cargo xtask {}`", args.join(" "))
}

/// "finished" or "stopped", to start a run's closing line.
pub fn outcome_word(outcome: RunOutcome) -> &'static str {
    if outcome == RunOutcome::Finished {
        "finished"
    } else {
        "stopped"
    }
}

/// Says where the model and the run folder are and, after a stop, how to
/// go on: `cargo xtask train <command> --resume …` from `checkpoint_file`
/// in the run folder.
pub fn print_written(outcome: RunOutcome, out: &Path, run_dir: &Path, command: &str, checkpoint_file: &str) {
    println!("wrote {} (run folder {})", out.display(), run_dir.display());
    if outcome == RunOutcome::Stopped {
        println!(
            "resume with: cargo xtask train {command} --resume {} --out {}",
            run_dir.join(checkpoint_file).display(),
            out.display()
        );
    }
}
