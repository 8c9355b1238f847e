//! Contrastive pairs: JSONL, one `{"positive": "...", "negative": "..."}` per line.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One contrastive pair: the same content with the concept (`positive`) and without or with
/// its opposite (`negative`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContrastivePair {
    /// The concept this pair belongs to, when the file names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concept: Option<String>,
    /// The text with the concept.
    pub positive: String,
    /// The text without it (or with its opposite).
    pub negative: String,
}

/// Reads a JSONL file of pairs, keeping those of `concept` when one is given (pairs without a
/// `concept` field are kept only when none is asked for). Blank lines are skipped.
///
/// Fails on a line that is not a JSON object with string `positive` and `negative` fields,
/// on an empty side, and when no pair is left.
pub fn read_pairs(path: &Path, concept: Option<&str>) -> Result<Vec<ContrastivePair>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        file: path.to_path_buf(),
        source,
    })?;
    let mut pairs = Vec::new();
    let mut concepts = std::collections::BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let pair: ContrastivePair = serde_json::from_str(line).map_err(|e| Error::BadPair {
            file: path.to_path_buf(),
            line: i + 1,
            reason: format!("not a {{\"positive\": ..., \"negative\": ...}} object: {e}"),
        })?;
        for (side, value) in [("positive", &pair.positive), ("negative", &pair.negative)] {
            if value.trim().is_empty() {
                return Err(Error::BadPair {
                    file: path.to_path_buf(),
                    line: i + 1,
                    reason: format!("`{side}` is empty"),
                });
            }
        }
        if let Some(c) = &pair.concept {
            concepts.insert(c.clone());
        }
        if concept.is_none_or(|c| pair.concept.as_deref() == Some(c)) {
            pairs.push(pair);
        }
    }
    if pairs.is_empty() {
        let known = if concepts.is_empty() {
            "none".to_string()
        } else {
            concepts.into_iter().collect::<Vec<_>>().join(", ")
        };
        return Err(Error::Unpaired {
            what: format!(
                "{}{}",
                path.display(),
                concept.map_or(String::new(), |c| format!(" (concept `{c}`)"))
            ),
            n_positive: 0,
            n_negative: 0,
            reason: format!("at least one pair is needed (concepts in the file: {known})"),
        });
    }
    Ok(pairs)
}
