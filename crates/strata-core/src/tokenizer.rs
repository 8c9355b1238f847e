//! [`Tokenizer`]: `tokenizer.json` through the Hugging Face `tokenizers` crate.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A Hugging Face tokenizer with the file it came from (named in errors).
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .finish()
    }
}

impl Tokenizer {
    /// Loads a `tokenizer.json`.
    ///
    /// Padding and truncation stored in the file are switched off: strata pads batches
    /// itself, and a sequence too long for the model is an error, never silently cut.
    pub fn from_file(path: &Path) -> Result<Self> {
        let mut inner = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            inner,
            path: path.to_path_buf(),
        })
    }

    /// Token ids of `text` (with the tokenizer's own special tokens, if its post-processor
    /// adds any). Empty text is an error.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        if text.is_empty() {
            return Err(Error::EmptyInput {
                what: "text".into(),
            });
        }
        let enc = self.inner.encode(text, true).map_err(|e| self.err(e))?;
        let ids = enc.get_ids().to_vec();
        if ids.is_empty() {
            return Err(Error::EmptyInput {
                what: format!("text {text:?} produced no tokens"),
            });
        }
        Ok(ids)
    }

    /// Wraps a tokenizer built in memory (from GGUF metadata, say); `path` is the file it
    /// describes, named in errors.
    pub fn from_parts(mut inner: tokenizers::Tokenizer, path: PathBuf) -> Self {
        inner.with_padding(None);
        let _ = inner.with_truncation(None);
        Self { inner, path }
    }

    /// Token ids of `text` with no special tokens added (the encoding of a piece of a longer
    /// stream). Empty text gives no ids.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| self.err(e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The id of the token that separates documents: the first of `<|endoftext|>`,
    /// `<|end_of_text|>`, `</s>` and `<eos>` in the vocabulary.
    pub fn end_of_text_id(&self) -> Option<u32> {
        ["<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"]
            .iter()
            .find_map(|t| self.token_id(t))
    }

    /// The file this tokenizer was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Text of token ids, without special tokens such as `<|endoftext|>`.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| self.err(e))
    }

    /// Text of token ids with special tokens kept (`<|endoftext|>` stays visible), for
    /// showing where something sits.
    pub fn decode_with_special(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| self.err(e))
    }

    /// Id of a token string, if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The wrapped `tokenizers` value.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Tokenizer {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }
}
