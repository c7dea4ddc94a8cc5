//! `cargo xtask bench-report`: the medians of the last `cargo bench` run,
//! read from criterion's estimates, with the ratios the README quotes.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Arguments of `cargo xtask bench-report`.
#[derive(clap::Args)]
pub struct BenchReportArgs {
    /// Criterion's output folder.
    #[arg(long, default_value = "target/criterion")]
    pub dir: PathBuf,
}

/// One benchmark's median in nanoseconds, and its throughput elements.
struct Row {
    name: String,
    median_ns: f64,
    elements: Option<f64>,
}

fn read_rows(dir: &Path) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "report") {
                stack.push(path);
            } else if path.ends_with("new/estimates.json") {
                let est: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
                let bench: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(path.with_file_name("benchmark.json"))?)?;
                rows.push(Row {
                    name: bench["full_id"].as_str().unwrap_or("?").to_string(),
                    median_ns: est["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN),
                    elements: bench["throughput"]["Elements"].as_f64(),
                });
            }
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// Runs the command.
pub fn run(args: &BenchReportArgs) -> anyhow::Result<()> {
    let rows = read_rows(&args.dir).context("run `cargo bench` first")?;
    println!("| benchmark | median | throughput |");
    println!("|---|---|---|");
    for r in &rows {
        let per_s = r.elements.map(|e| e / (r.median_ns * 1e-9));
        let thr = per_s.map_or(String::new(), |p| format!("{:.0} elements/s", p));
        println!("| {} | {:.3} ms | {} |", r.name, r.median_ns / 1e6, thr);
    }
    let median = |name: &str| rows.iter().find(|r| r.name == name);
    println!();
    let rtf = |r: &Row, rate: f64| r.elements.unwrap_or(0.0) / rate / (r.median_ns * 1e-9);
    for mode in ["spectral", "raw"] {
        if let Some(r) = median(&format!("stream/dream_48k_{mode}")) {
            println!(
                "dream real-time factor at 48 kHz, default settings, {mode} mode (engine): {:.1}x",
                rtf(r, 48_000.0)
            );
        }
    }
    if let Some(r) = median("session/offline_4s_48k") {
        println!(
            "dream real-time factor with the plugin's session running: {:.1}x",
            rtf(r, 48_000.0)
        );
    }
    if let Some(r) = median("process/block64_stereo_48k") {
        let budget_ns = 64.0 / 48_000.0 * 1e9;
        println!(
            "process(): {:.3}% of a 64-sample block's real-time budget",
            100.0 * r.median_ns / budget_ns
        );
    }
    if let Some(r) = median("wavenet_default/cached_sampler") {
        println!(
            "WaveNet sampler real-time factor at 16 kHz: {:.1}x",
            rtf(r, 16_000.0)
        );
        for other in [
            "wavenet_default/naive_recompute",
            "wavenet_default/candle_per_step",
        ] {
            if let Some(o) = median(other) {
                let speedup =
                    (r.elements.unwrap_or(0.0) / r.median_ns) / (o.elements.unwrap_or(0.0) / o.median_ns);
                println!("  {speedup:.0}x faster than {other}");
            }
        }
    }
    if let (Some(f), Some(b)) = (median("window/forward"), median("window/forward_backward_step")) {
        println!(
            "one gradient step costs {:.1}x a forward pass",
            b.median_ns / f.median_ns
        );
    }
    if let Some(r) = median("train/adamw_step_batch_32") {
        println!(
            "perception training throughput (default config, batch 32): {:.0} clips/s",
            32.0 / (r.median_ns * 1e-9)
        );
    }
    if let Some(r) = median("train/wavenet_adam_step_4x8000") {
        println!(
            "WaveNet training throughput (default config, batch 4 x 8000 scored samples): {:.0} samples/s",
            32_000.0 / (r.median_ns * 1e-9)
        );
    }
    Ok(())
}
