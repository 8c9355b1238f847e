//! The one error type of `strata-steer`, and its `Result` alias.

use std::path::PathBuf;

/// Everything that can go wrong while reading pairs, extracting, aggregating, applying or
/// saving a steering vector. Each variant names the file, line, layer or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model, its probes or its evaluation failed.
    #[error(transparent)]
    Core(#[from] strata_core::Error),
    /// A contrastive-pairs file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A line of a contrastive-pairs file is not a pair.
    #[error("{file}, line {line}: {reason}")]
    BadPair {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A contrastive set is empty, or its two sides differ in size.
    #[error("{what}: {n_positive} positive and {n_negative} negative examples; {reason}")]
    Unpaired {
        /// Which set.
        what: String,
        /// Positive examples.
        n_positive: usize,
        /// Negative examples.
        n_negative: usize,
        /// What would have been accepted.
        reason: String,
    },
    /// A vector's width is not the model's residual width.
    #[error("{what} is {width} wide, but the model {model} has d_model = {d_model}")]
    WidthMismatch {
        /// The vector (file and tensor).
        what: String,
        /// Its width.
        width: usize,
        /// The model.
        model: String,
        /// The model's residual width.
        d_model: usize,
    },
    /// A saved vector was extracted from another model.
    #[error(
        "{file} was made for {made_for}, not for {model} ({difference}); pass the \
         allow-other-model option to use it anyway"
    )]
    OtherModel {
        /// The vector file.
        file: PathBuf,
        /// The model it was made for.
        made_for: String,
        /// The model it is applied to.
        model: String,
        /// The metadata that differs: `key: value in the file vs value of this model`.
        difference: String,
    },
    /// A steering-vector file is malformed.
    #[error("{file}: {reason}")]
    BadVectorFile {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
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
