//! The one error type of `strata-report`, and its `Result` alias.

use std::path::PathBuf;

/// Everything that can go wrong while writing a table or a figure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be written.
    #[error("{path}: cannot write the file")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The plotting backend failed while drawing a figure.
    #[error("{path}: cannot draw figure: {reason}")]
    Plot {
        /// The figure file.
        path: PathBuf,
        /// The backend's message.
        reason: String,
    },
    /// A figure has nothing to show.
    #[error("{path}: nothing to plot: {reason}")]
    NothingToPlot {
        /// The figure file.
        path: PathBuf,
        /// Why there is no data.
        reason: String,
    },
    /// Writing the file failed (the previous file, if any, is left as it was).
    #[error(transparent)]
    Write(#[from] strata_core::Error),
    /// An analysis result holds nothing a report section could read.
    #[error("{analysis}: nothing to report: {reason}")]
    NothingToReport {
        /// The analysis.
        analysis: String,
        /// Why there is nothing.
        reason: String,
    },
    /// A table row could not be serialised.
    #[error("{path}: cannot write a table row: {reason}")]
    Table {
        /// The table file.
        path: std::path::PathBuf,
        /// The serialiser's message.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
