//! The one error type of `strata-massive`, and its `Result` alias.

use std::path::PathBuf;

/// Everything that can go wrong while measuring, reading a checkpoint series, fitting or
/// predicting. Each variant names the folder, checkpoint, layer or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model, its probes or its evaluation failed.
    #[error(transparent)]
    Core(#[from] strata_core::Error),
    /// A checkpoint of a series failed to load or run; the inner error says why.
    #[error("checkpoint {path} (step {step}): {source}")]
    Checkpoint {
        /// The checkpoint folder.
        path: PathBuf,
        /// Its training step.
        step: u64,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
    /// A residual stream held NaN or infinity.
    #[error(
        "block {layer} `hook_resid_post` holds a non-finite value ({value}) at sequence \
         {sequence}, position {position}, dimension {dim}"
    )]
    NonFiniteActivation {
        /// The block.
        layer: usize,
        /// Index of the input sequence.
        sequence: usize,
        /// Token position.
        position: usize,
        /// Feature dimension.
        dim: usize,
        /// The value found.
        value: f32,
    },
    /// A series folder could not be read, or is not a checkpoint series.
    #[error("{dir}: {reason}")]
    Series {
        /// The series folder (or the checkpoint folder at fault).
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint of a series has another architecture than the series' first one.
    #[error(
        "{path}: config `{key}` is {found}, but the first checkpoint of the series ({first}) \
         has {expected}; a series holds one architecture"
    )]
    ArchitectureMismatch {
        /// The checkpoint that differs.
        path: PathBuf,
        /// The first checkpoint.
        first: PathBuf,
        /// The config field that differs.
        key: String,
        /// Its value in the first checkpoint.
        expected: String,
        /// Its value here.
        found: String,
    },
    /// A fit or a regression was given too little, or unusable, data.
    #[error("{what}: {reason}")]
    BadData {
        /// What was being computed (a layer's fit, a regression target).
        what: String,
        /// Why it cannot be.
        reason: String,
    },
    /// An argument is out of its range.
    #[error("`{what}` {reason}")]
    InvalidArgument {
        /// The argument.
        what: String,
        /// What would have been accepted.
        reason: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
