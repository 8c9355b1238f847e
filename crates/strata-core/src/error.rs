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
    /// A path given as a model folder is not one (missing, a plain file, a folder where
    /// `config.json` should be, a dangling link).
    #[error("{path}: {reason}")]
    NotAModelFolder {
        /// The path at fault.
        path: PathBuf,
        /// What it is instead.
        reason: String,
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
    /// A weight tensor holds NaN or infinite values.
    #[error(
        "{file}: tensor `{key}` holds {n_bad} NaN/Inf values of {n_total}; the checkpoint is damaged"
    )]
    NonFiniteWeights {
        /// The weights file.
        file: PathBuf,
        /// The tensor name.
        key: String,
        /// How many values are not finite.
        n_bad: usize,
        /// Values in the tensor.
        n_total: usize,
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
    /// The input is longer than the model's context.
    #[error(
        "a sequence of {n_tokens} tokens is longer than the model's context of {n_ctx} \
         (max_position_embeddings / n_positions)"
    )]
    SequenceTooLong {
        /// Tokens requested.
        n_tokens: usize,
        /// The model's maximum number of positions.
        n_ctx: usize,
    },
    /// A generation would run past the model's context.
    #[error(
        "a prompt of {n_prompt} tokens plus {max_new_tokens} new tokens exceeds the model's \
         context of {n_ctx}; ask for at most {} new tokens or shorten the prompt",
        n_ctx.saturating_sub(*n_prompt)
    )]
    GenerationTooLong {
        /// Tokens in the longest prompt.
        n_prompt: usize,
        /// New tokens asked for.
        max_new_tokens: usize,
        /// The model's context.
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
    /// A probe could not handle what it was given (or returned a tensor of the wrong shape).
    #[error("probe at `{site}`: {reason}")]
    Probe {
        /// The site (or block) where it happened.
        site: String,
        /// What went wrong.
        reason: String,
    },
    /// An activation holds NaN or infinity.
    #[error(
        "non-finite value ({value}) at `{site}`, batch row {row}, position {pos}, feature {feature}: \
         the model's weights or config produce NaN/Inf here"
    )]
    NonFinite {
        /// The first site where a non-finite value appears.
        site: String,
        /// Batch row.
        row: usize,
        /// Token position within the call.
        pos: usize,
        /// Feature index.
        feature: usize,
        /// The value (`NaN`, `inf` or `-inf`).
        value: f32,
    },
    /// A computed result is NaN or infinite (the model produced non-finite activations).
    #[error(
        "{what} is {value}: the model produces non-finite values (check its weights and config)"
    )]
    NonFiniteResult {
        /// What was computed.
        what: String,
        /// The value.
        value: f64,
    },
    /// A line of a task file is not a valid item.
    #[error("{file}: line {line}: {reason}")]
    BadTaskItem {
        /// The task file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A computation would need more memory than is available (or than the set limit).
    #[error(
        "{what} would need about {} but only {} is available; use a shorter input, a smaller \
         batch or a machine with more memory",
        human_bytes(*needed), human_bytes(*limit)
    )]
    OutOfMemory {
        /// What was about to be allocated.
        what: String,
        /// Bytes it needs (estimated).
        needed: u128,
        /// Bytes available.
        limit: u128,
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

/// `1.5 GiB`-style sizes for messages.
fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
