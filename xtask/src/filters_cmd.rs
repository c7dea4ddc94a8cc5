//! `cargo xtask filters`: draw what a perception model's first layer
//! listens for (the magnitude spectrum of each first-layer filter, sorted by
//! peak frequency, as in the Audio DeepDream paper's figures 2 and 3).

use std::path::PathBuf;

use anyhow::Context;
use candle_core::Device;
use reverie_engine::perception::PerceptionModel;
use reverie_trainer::filters::{
    default_fft_len, filter_spectra, first_layer_kernels, render_filters, FilterImageOptions,
};

/// Arguments of `cargo xtask filters`.
#[derive(clap::Args, Debug)]
pub struct FiltersArgs {
    /// A perception model file (or a training checkpoint).
    pub model: PathBuf,
    /// Where to write the PNG image.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Pixels per filter column.
    #[arg(long, default_value_t = 3)]
    pub column_width: usize,
    /// FFT length (kernels are zero-padded to it) [default: the kernel
    /// length rounded up to a power of two, at least 256]. Rows = FFT / 2.
    #[arg(long)]
    pub fft: Option<usize>,
    /// Level below each filter's peak that is drawn black, in dB.
    #[arg(long, default_value_t = -60.0, allow_negative_numbers = true)]
    pub floor_db: f32,
    /// Draw only the spectra, without title and axis labels.
    #[arg(long)]
    pub no_labels: bool,
}

/// Runs `cargo xtask filters`.
pub fn run(args: &FiltersArgs) -> anyhow::Result<()> {
    let model = PerceptionModel::load(&args.model, &Device::Cpu)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let kernels = first_layer_kernels(&model)?;
    let fft_len = args
        .fft
        .unwrap_or_else(|| default_fft_len(model.config.frontend_kernel));
    let spectra = filter_spectra(&kernels, model.meta.sample_rate, fft_len)?;
    let opts = FilterImageOptions {
        column_width: args.column_width,
        floor_db: args.floor_db,
        labels: !args.no_labels,
    };
    let image = render_filters(&spectra, &opts)?;
    image.save_png(&args.output)?;
    let (lo, hi) = (
        spectra.peak_hz.first().copied().unwrap_or(0.0),
        spectra.peak_hz.last().copied().unwrap_or(0.0),
    );
    let median = spectra
        .peak_hz
        .get(spectra.peak_hz.len() / 2)
        .copied()
        .unwrap_or(0.0);
    println!(
        "wrote {} ({}x{} px): {} filters of {} samples at {} Hz, peak frequencies {:.0} to {:.0} Hz (median {:.0} Hz)",
        args.output.display(),
        image.width,
        image.height,
        kernels.len(),
        model.config.frontend_kernel,
        model.meta.sample_rate,
        lo,
        hi,
        median
    );
    Ok(())
}
