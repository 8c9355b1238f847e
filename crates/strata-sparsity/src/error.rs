//! The one error type of the crate.

use std::path::PathBuf;

/// What can go wrong measuring activation sparsity.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error of the model, its weights or a forward pass.
    #[error(transparent)]
    Core(#[from] strata_core::Error),
    /// The allowed perplexity increase is outside `(0, 100]` percent.
    #[error(
        "invalid p = {value}: the allowed perplexity increase is a percentage in (0, 100], \
         e.g. 1 for PPL-1%"
    )]
    InvalidP {
        /// The value given.
        value: f64,
    },
    /// A CETT target outside `[0, 1]`.
    #[error("invalid CETT target {value}: a relative L2 error in [0, 1], e.g. 0.2")]
    InvalidCett {
        /// The value given.
        value: f64,
    },
    /// A setting outside its range.
    #[error("invalid {what} = {value}: {reason}")]
    InvalidConfig {
        /// The setting.
        what: &'static str,
        /// Its value, as given.
        value: String,
        /// What would have been accepted.
        reason: String,
    },
    /// The token stream holds fewer tokens than the windows need.
    #[error(
        "a corpus of {n_tokens} tokens is too short for {n_windows} windows of {window} tokens \
         ({needed} tokens); use a longer corpus, fewer windows or a shorter window"
    )]
    CorpusTooShort {
        /// Tokens in the stream.
        n_tokens: usize,
        /// Tokens per window.
        window: usize,
        /// Windows asked for.
        n_windows: usize,
        /// Tokens needed.
        needed: usize,
    },
    /// The model has no MLP hidden activation of the kind CETT is defined on.
    #[error("{model}: block {layer} has no MLP neurons to sparsify: {reason}")]
    NoMlp {
        /// The model's folder or file.
        model: PathBuf,
        /// The block.
        layer: usize,
        /// Why.
        reason: String,
    },
    /// A tensor handed to the threshold solver has the wrong shape.
    #[error("{what} has shape {found:?}, expected {expected}")]
    Shape {
        /// Which tensor.
        what: String,
        /// The shape it should have.
        expected: String,
        /// The shape it has.
        found: Vec<usize>,
    },
    /// A statistic came out NaN or infinite.
    #[error("{what} is {value}: the model or its activations produce non-finite values")]
    NonFinite {
        /// Which statistic.
        what: String,
        /// Its value.
        value: f64,
    },
    /// Too few points for a law's parameters.
    #[error(
        "too few points to fit the {law} law: {n_points} point(s) after the warm-up, it needs \
         at least {needed} (one more than its parameters); measure more checkpoints"
    )]
    TooFewPoints {
        /// `relu` or `silu`.
        law: &'static str,
        /// Points given.
        n_points: usize,
        /// Points needed.
        needed: usize,
    },
    /// Points a law cannot be fitted to.
    #[error("cannot fit the {law} law: {reason}")]
    BadFitData {
        /// `relu` or `silu`.
        law: &'static str,
        /// Why.
        reason: String,
    },
    /// The optimiser did not converge.
    #[error("the {law} law did not fit: {reason}")]
    FitFailed {
        /// `relu` or `silu`.
        law: &'static str,
        /// Why, with the optimiser's termination reasons.
        reason: String,
    },
    /// A checkpoint series folder that cannot be measured.
    #[error("checkpoint series {}: {reason}", dir.display())]
    Series {
        /// The folder (or the checkpoint in it).
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint of a series failed to load or measure.
    #[error("checkpoint {} (step {step}): {source}", path.display())]
    Checkpoint {
        /// Its folder.
        path: PathBuf,
        /// Its step.
        step: u64,
        /// What went wrong.
        source: Box<Error>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
