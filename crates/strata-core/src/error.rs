//! The one error type of `strata-core`, and its `Result` alias.

use std::path::PathBuf;

/// Everything that can go wrong while loading, running or probing a model.
///
/// Each variant names the file, key or value at fault, so a message is enough to fix the input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A model folder lacks a file it needs.
    #[error("{dir}: no `{file}` in this folder (expected a Hugging Face model folder)")]
    MissingFile {
        /// The model folder.
        dir: PathBuf,
        /// The file name that was looked for.
        file: String,
    },
    /// A JSON file (config.json, an index) did not parse.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// `model_type` names a family strata does not implement.
    #[error("{file}: unknown model_type `{value}`; strata knows {known}")]
    UnknownModelType {
        /// The config file.
        file: PathBuf,
        /// The value found.
        value: String,
        /// The accepted values.
        known: String,
    },
    /// A config key is missing or holds a value strata cannot use.
    #[error("{file}: config key `{key}`: {reason}")]
    BadConfig {
        /// The config file.
        file: PathBuf,
        /// The key at fault.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A safetensors file is corrupt, truncated or not safetensors at all.
    #[error("{file}: not a valid safetensors file: {reason}")]
    Safetensors {
        /// The weights file.
        file: PathBuf,
        /// The parser's explanation.
        reason: String,
    },
    /// A tensor the model needs is not in the weights.
    #[error("{file}: tensor `{key}` is missing")]
    MissingTensor {
        /// The weights file (or index) that was searched.
        file: PathBuf,
        /// The tensor name.
        key: String,
    },
    /// A tensor has a shape that does not fit the config.
    #[error("{file}: tensor `{key}` has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// The weights file.
        file: PathBuf,
        /// The tensor name.
        key: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a dtype strata cannot read.
    #[error("{file}: tensor `{key}` has dtype {dtype}; strata reads F32, F16, BF16 and F64")]
    TensorDtype {
        /// The weights file.
        file: PathBuf,
        /// The tensor name.
        key: String,
        /// The dtype found.
        dtype: String,
    },
    /// The tokenizer file could not be loaded or used.
    #[error("{path}: tokenizer error: {reason}")]
    Tokenizer {
        /// The tokenizer.json path.
        path: PathBuf,
        /// The tokenizers crate's message.
        reason: String,
    },
    /// A token id is outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size}")]
    TokenOutOfRange {
        /// The offending id.
        id: u32,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// The input is longer than the model's learned position table.
    #[error("sequence of {n_tokens} tokens is longer than the position limit of {n_ctx}")]
    SequenceTooLong {
        /// Tokens requested.
        n_tokens: usize,
        /// The model's maximum number of positions.
        n_ctx: usize,
    },
    /// Empty input where text or tokens are required.
    #[error("empty input: {what}")]
    EmptyInput {
        /// What was empty.
        what: String,
    },
    /// A hook site name that does not parse or does not exist in this model.
    #[error("unknown site `{name}`; valid sites are {valid}")]
    UnknownSite {
        /// The name given.
        name: String,
        /// The valid names for this model.
        valid: String,
    },
    /// A device that this build cannot use.
    #[error("device `{name}` is not available: {reason}")]
    DeviceUnavailable {
        /// The device string given.
        name: String,
        /// Why, and which cargo feature enables it.
        reason: String,
    },
    /// An argument outside its valid range.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// The argument.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
