//! What both training loops keep in a run folder the same way: the
//! training-loss chart, CSV tables, the text files and charts written after
//! every save, and files written atomically.

use std::path::{Path, PathBuf};

use super::error::{io_err, TrainError};
use crate::plot::{Chart, Series, PALETTE};

/// The training-loss curve and the validation points (both by step) in one
/// chart titled `title`, the loss measured in `unit`.
pub(crate) fn loss_chart(
    title: &str,
    unit: &str,
    loss_log: &[(u64, f64)],
    validation: Vec<(f64, f64)>,
) -> (Chart, Vec<Series>) {
    let chart = Chart {
        title: title.into(),
        x_label: "training step".into(),
        y_label: unit.into(),
        width: 800,
        height: 450,
        y_range: None,
    };
    let series = vec![
        Series {
            label: "train".into(),
            colour: PALETTE[0],
            points: loss_log.iter().map(|&(s, l)| (s as f64, l)).collect(),
        },
        Series {
            label: "validation".into(),
            colour: PALETTE[1],
            points: validation,
        },
    ];
    (chart, series)
}

/// A CSV table: `header`, then `rows`, a line each.
pub(crate) fn csv_table(header: &str, rows: impl IntoIterator<Item = String>) -> String {
    let mut out = String::from(header);
    out.push('\n');
    for row in rows {
        out.push_str(&row);
        out.push('\n');
    }
    out
}

/// Writes a run folder's text files (name, contents) and charts (name,
/// chart, its series as PNG) into `dir`.
pub(crate) fn write_run_files(
    dir: &Path,
    texts: &[(&str, String)],
    charts: &[(&str, (Chart, Vec<Series>))],
) -> Result<(), TrainError> {
    for (name, text) in texts {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io_err(&path))?;
    }
    for (name, (chart, series)) in charts {
        chart.render(series)?.save_png(&dir.join(name))?;
    }
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over
/// `path`, so an interrupted write never destroys the previous file (a
/// checkpoint, or the model so far).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
