//! The one error type of `strata-void`, and its `Result` alias.

/// Everything that can go wrong while measuring voids or decoding with them skipped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `alpha` is not a finite number in `[0, 1]`.
    #[error(
        "alpha {value} is outside [0, 1]: the threshold is alpha x the range of the earlier \
         layers' deltas, so 0 marks only norm-shrinking layers void and 1 the most"
    )]
    Alpha {
        /// The value given.
        value: f64,
    },
    /// The model has fewer blocks than the rule needs.
    #[error(
        "a model of {n_layers} block(s) is too shallow for the void rule: a layer's threshold \
         comes from the deltas of earlier layers, so at least {min} blocks are needed"
    )]
    TooShallow {
        /// Blocks of the model.
        n_layers: usize,
        /// The fewest blocks accepted.
        min: usize,
    },
    /// An input holds nothing to measure.
    #[error("nothing to measure: {what}")]
    EmptyInput {
        /// What was empty.
        what: String,
    },
    /// An argument is out of its range.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// The argument.
        what: String,
        /// Why it is refused and what is accepted.
        reason: String,
    },
    /// The model, a forward pass, the tokenizer or a task file failed.
    #[error(transparent)]
    Core(#[from] strata_core::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
