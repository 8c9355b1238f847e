//! Corpus framing: how a text becomes the token stream that perplexity is measured on.
//!
//! strata's convention (that of `datasets/kjv/baselines.json`): one end-of-text token as
//! context, then each non-empty line encoded alone (no special tokens) and followed by an
//! end-of-text token. The first token is never predicted, so a stream of `n` tokens scores
//! `n - 1` predictions.

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// How `strata ppl` and the analyses turn a text into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// One end-of-text token, then each non-empty line followed by one ([`frame_lines`]).
    #[default]
    Lines,
    /// The whole text encoded at once, with the tokenizer's own special tokens.
    Raw,
}

/// The stream of `lines` under [`Framing::Lines`]: `eot`, then each non-empty line's ids
/// followed by `eot`. Fails if the tokenizer has no end-of-text token or no line has text.
pub fn frame_lines<'a>(
    tokenizer: &Tokenizer,
    lines: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<u32>> {
    let eot = tokenizer.end_of_text_id().ok_or_else(|| Error::Tokenizer {
        path: tokenizer.path().to_path_buf(),
        reason: "no end-of-text token (<|endoftext|>, <|end_of_text|>, </s>, <eos>) to frame \
                 lines with; use raw framing"
            .into(),
    })?;
    frame_lines_with(lines, eot, |line| tokenizer.encode_plain(line))
}

/// [`frame_lines`] with any encoder (for tools that hold a bare `tokenizers` tokenizer):
/// `eot`, then each non-empty line's `encode(line)` followed by `eot`. Errors of `encode`
/// name the 1-based line.
pub fn frame_lines_with<'a, E: std::fmt::Display>(
    lines: impl IntoIterator<Item = &'a str>,
    eot: u32,
    mut encode: impl FnMut(&str) -> std::result::Result<Vec<u32>, E>,
) -> Result<Vec<u32>> {
    let mut stream = vec![eot];
    for (idx, line) in lines.into_iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ids = encode(line).map_err(|e| Error::InvalidArgument {
            what: format!("corpus line {}", idx + 1),
            reason: e.to_string(),
        })?;
        stream.extend(ids);
        stream.push(eot);
    }
    if stream.len() < 2 {
        return Err(Error::EmptyInput {
            what: "a corpus with no non-empty line".into(),
        });
    }
    Ok(stream)
}

/// The stream of `text` under `framing`.
pub fn frame(tokenizer: &Tokenizer, text: &str, framing: Framing) -> Result<Vec<u32>> {
    match framing {
        Framing::Lines => frame_lines(tokenizer, text.lines()),
        Framing::Raw => tokenizer.encode(text),
    }
}
