//! The one error type of `strata-spectra`, and its `Result` alias.

use std::path::PathBuf;

/// Everything that can stop a spectra run or a KappaTune selection.
///
/// A bad tensor (NaN or Inf values, an all-zero matrix) does not stop a run: it is reported by
/// name in [`crate::TensorStatus`] and the other tensors go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The weights could not be opened (missing folder, not a safetensors file, bad index).
    #[error("{path}: cannot read weights")]
    Open {
        /// The model folder or file that was given.
        path: PathBuf,
        /// What `strata-core` reported.
        #[source]
        source: Box<strata_core::Error>,
    },
    /// One tensor could not be read.
    #[error("{path}: cannot read tensor `{tensor}`")]
    Read {
        /// The model folder or file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// What `strata-core` reported.
        #[source]
        source: Box<strata_core::Error>,
    },
    /// The weights hold no tensor that this configuration analyses.
    #[error(
        "{path}: no 2-D weight tensors to analyse ({n_tensors} tensors, {n_skipped} skipped; \
         first skip: {first_skip})"
    )]
    NoMatrices {
        /// The model folder or file.
        path: PathBuf,
        /// How many tensors the weights hold.
        n_tensors: usize,
        /// How many were skipped by the filter.
        n_skipped: usize,
        /// The first skipped tensor and why, or `none`.
        first_skip: String,
    },
    /// An in-memory matrix does not hold `rows * cols` values.
    #[error("matrix `{name}` has {n_values} values, but {rows} x {cols} needs {}", rows * cols)]
    MatrixShape {
        /// The matrix name.
        name: String,
        /// Declared rows.
        rows: usize,
        /// Declared columns.
        cols: usize,
        /// Values given.
        n_values: usize,
    },
    /// Neither the Gram eigensolver nor the SVD converged on a matrix.
    #[error("matrix `{name}`: singular values did not converge")]
    NoConvergence {
        /// The matrix name.
        name: String,
    },
    /// A budget for KappaTune selection is out of range.
    #[error("invalid budget {budget}: {reason}")]
    InvalidBudget {
        /// The budget as written.
        budget: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No ranked unit was left to select from.
    #[error("nothing to select: no analysed tensor has a finite kappa")]
    EmptyRanking,
    /// A selection or result file could not be written or read.
    #[error("{path}: cannot read or write the file")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A selection or result file is not valid JSON of the expected form.
    #[error("{path}: invalid JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
