//! Where in a sequence an activation is read: [`ReadPosition`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which token positions of a sequence an activation is read at. Positions count real tokens
/// only (padding is never read); when several are read, their mean is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadPosition {
    /// The last real token (`last`; steering-vectors' and repeng's default).
    Last,
    /// One index: from the start when non-negative, from the end when negative, so `-1` is
    /// the last token and `-2` the one before (the TA2 code reads `-2`).
    Index(i64),
    /// The mean over the tokens from this index on (`mean` is `mean:0`; `mean:k` averages
    /// the answer tokens after a prompt of `k` tokens).
    MeanFrom(usize),
    /// The mean over these indices (`explicit:3,5,8`).
    Explicit(Vec<usize>),
}

impl ReadPosition {
    /// The indices read in a sequence of `n_tokens` real tokens; fails when the rule points
    /// outside it.
    pub fn resolve(&self, n_tokens: usize) -> Result<Vec<usize>> {
        let outside = |what: String| Error::InvalidArgument {
            what: "position".into(),
            reason: format!("{what} is outside a sequence of {n_tokens} tokens"),
        };
        if n_tokens == 0 {
            return Err(outside(self.to_string()));
        }
        match self {
            ReadPosition::Last => Ok(vec![n_tokens - 1]),
            ReadPosition::Index(i) => {
                let idx = if *i < 0 { n_tokens as i64 + i } else { *i };
                if idx < 0 || idx >= n_tokens as i64 {
                    return Err(outside(format!("index {i}")));
                }
                Ok(vec![idx as usize])
            }
            ReadPosition::MeanFrom(k) => {
                if *k >= n_tokens {
                    return Err(outside(format!("mean from token {k}")));
                }
                Ok((*k..n_tokens).collect())
            }
            ReadPosition::Explicit(list) => {
                if list.is_empty() {
                    return Err(Error::InvalidArgument {
                        what: "position".into(),
                        reason: "`explicit:` needs at least one index".into(),
                    });
                }
                if let Some(bad) = list.iter().find(|&&i| i >= n_tokens) {
                    return Err(outside(format!("index {bad}")));
                }
                Ok(list.clone())
            }
        }
    }
}

impl fmt::Display for ReadPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadPosition::Last => write!(f, "last"),
            ReadPosition::Index(i) => write!(f, "{i}"),
            ReadPosition::MeanFrom(0) => write!(f, "mean"),
            ReadPosition::MeanFrom(k) => write!(f, "mean:{k}"),
            ReadPosition::Explicit(list) => {
                let list: Vec<String> = list.iter().map(usize::to_string).collect();
                write!(f, "explicit:{}", list.join(","))
            }
        }
    }
}

impl FromStr for ReadPosition {
    type Err = Error;

    /// Parses `last`, an integer (`-2`, `3`), `mean`, `mean:K` or `explicit:I,J,...`.
    fn from_str(text: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument {
            what: "position".into(),
            reason: format!(
                "`{text}` is not one of `last`, an index like `-2`, `mean`, `mean:K`, \
                 `explicit:I,J`"
            ),
        };
        let text = text.trim();
        if text == "last" {
            return Ok(ReadPosition::Last);
        }
        if text == "mean" {
            return Ok(ReadPosition::MeanFrom(0));
        }
        if let Some(k) = text.strip_prefix("mean:") {
            return k.parse().map(ReadPosition::MeanFrom).map_err(|_| bad());
        }
        if let Some(list) = text.strip_prefix("explicit:") {
            let list: std::result::Result<Vec<usize>, _> =
                list.split(',').map(|s| s.trim().parse()).collect();
            return list.map(ReadPosition::Explicit).map_err(|_| bad());
        }
        text.parse().map(ReadPosition::Index).map_err(|_| bad())
    }
}
