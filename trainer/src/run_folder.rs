//! What both training loops keep in a run folder the same way: the
//! training-loss curve and its plot, and files written atomically.

use std::path::{Path, PathBuf};

use crate::plot::{Chart, PlotError, Series, PALETTE};

/// Adds one step's loss to a training-loss curve. Losses gather in
/// `pending` (sum, count); once `every` of them are in (at least 1), their
/// mean becomes the curve's point at `step`, so the plot stays readable
/// however long the run.
pub(crate) fn log_loss(
    loss_log: &mut Vec<(u64, f64)>,
    pending: &mut (f64, u64),
    step: u64,
    loss: f32,
    every: u64,
) {
    pending.0 += f64::from(loss);
    pending.1 += 1;
    if pending.1 >= every.max(1) {
        loss_log.push((step, pending.0 / pending.1 as f64));
        *pending = (0.0, 0);
    }
}

/// Draws the training-loss curve and the validation points (both by step)
/// in one chart titled `title`, and saves it as a PNG at `path`.
pub(crate) fn write_loss_plot(
    path: &Path,
    title: &str,
    loss_log: &[(u64, f64)],
    validation: Vec<(f64, f64)>,
) -> Result<(), PlotError> {
    let chart = Chart {
        title: title.into(),
        x_label: "step".into(),
        width: 800,
        height: 450,
        y_range: None,
    };
    let series = [
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
    chart.render(&series).save_png(path)
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
