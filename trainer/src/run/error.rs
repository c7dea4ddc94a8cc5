//! The one error type of both training loops.

use std::path::PathBuf;

use reverie_engine::model_file::ModelFileError;
use reverie_engine::wav::WavError;

use crate::dataset::DatasetError;
use crate::optim::OptimError;
use crate::plot::PlotError;
use crate::render::RenderError;

/// Why training (perception or WaveNet) could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data folder is missing.
    #[error("the data folder {path} does not exist or is not a folder; point --data at a folder of .wav/.flac/.mp3/.ogg files (or add --render-piano N to render solo piano into it)")]
    DataMissing {
        /// The folder given.
        path: PathBuf,
    },
    /// The data folder holds no audio files.
    #[error("no .wav, .flac, .mp3 or .ogg files found in {path} (searched all subfolders); add some audio, or render solo piano with --render-piano N")]
    NoAudio {
        /// The folder given.
        path: PathBuf,
    },
    /// Audio files exist but none could be decoded.
    #[error("none of the {count} audio files in {path} could be read (first: {first}); fix or replace them")]
    Unreadable {
        /// The folder given.
        path: PathBuf,
        /// Files tried.
        count: usize,
        /// The first file's error.
        first: String,
    },
    /// There is nothing to train on; the text says why.
    #[error("nothing to train on: {0}")]
    NoTrainingData(&'static str),
    /// The data's classes differ from the model's.
    #[error("the data has classes [{data}] but the model was made for [{model}]; train on the same class folders the checkpoint was trained on")]
    ClassMismatch {
        /// The model's class names.
        model: String,
        /// The data's class names.
        data: String,
    },
    /// The data is at another rate than the model.
    #[error("the data is at {data} Hz but the model runs at {model} Hz")]
    RateMismatch {
        /// Model rate.
        model: u32,
        /// Data rate.
        data: u32,
    },
    /// A clip names a class that does not exist.
    #[error("a clip has class index {class}, but there are only {classes} classes")]
    BadLabel {
        /// The index found.
        class: usize,
        /// The number of classes.
        classes: usize,
    },
    /// The settings are inconsistent.
    #[error("invalid training settings: {0}")]
    BadConfig(String),
    /// The loss became NaN or infinite.
    #[error("training diverged at step {step} (the loss is {loss}); {advice}")]
    Diverged {
        /// The step that produced it.
        step: u64,
        /// The loss value.
        loss: f32,
        /// What to change (the trainer's own settings).
        advice: &'static str,
    },
    /// Resampling a file to the model rate failed.
    #[error("cannot resample {path} from {from} Hz to {to} Hz: {reason}")]
    Resample {
        /// The file.
        path: PathBuf,
        /// Its rate.
        from: u32,
        /// The model rate.
        to: u32,
        /// What the resampler said.
        reason: String,
    },
    /// Reading or writing a checkpoint failed.
    #[error("cannot access checkpoint {path}: {source}")]
    CheckpointIo {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The checkpoint's model part is unreadable or of another kind.
    #[error("bad checkpoint {path}: {source}")]
    CheckpointModel {
        /// The file.
        path: PathBuf,
        /// What is wrong with the model part.
        #[source]
        source: ModelFileError,
    },
    /// A valid model file without training state.
    #[error("{path} is a model file, not a checkpoint: it holds no optimiser state or progress, so training cannot resume from it; pass the checkpoint.safetensors from the run folder instead")]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
    },
    /// The checkpoint's training state is malformed, from another version
    /// or from another trainer.
    #[error("bad checkpoint {path}: {reason}")]
    BadCheckpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The dataset folder could not be loaded.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A model-file problem (reading a config, building or writing a model).
    #[error(transparent)]
    Model(#[from] ModelFileError),
    /// An optimiser problem (e.g. a checkpoint from another architecture).
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// A plot could not be written.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// Rendering training data failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// A generated sample could not be written.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// A run file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The Ctrl-C handler could not be installed.
    #[error("cannot install the Ctrl-C handler: {0}")]
    Signal(String),
    /// An error inside candle.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Maps an I/O error on `path` to [`TrainError::Io`].
pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}
