//! Exact-match scoring of generations: greedy continuation of a prompt, scored by the answer
//! it starts with.

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::generate::{GenerateConfig, generate};
use crate::models::Model;
use crate::probe::{Merge, ProbeSet};
use crate::tokenizer::Tokenizer;

/// A prompt and the answer its continuation must start with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactMatchItem {
    /// The text the model continues (e.g. `17+25=`).
    pub prompt: String,
    /// The expected answer (e.g. `42`).
    pub answer: String,
}

impl ExactMatchItem {
    /// Parses an arithmetic line `a+b=c` (or `a-b=c`): prompt `a+b=`, answer `c`.
    pub fn from_equation(line: &str) -> Result<Self> {
        let (lhs, rhs) = line.split_once('=').ok_or_else(|| Error::InvalidArgument {
            what: "arithmetic item".into(),
            reason: format!("{line:?} has no `=`"),
        })?;
        Ok(Self {
            prompt: format!("{lhs}="),
            answer: rhs.trim().to_string(),
        })
    }
}

/// How many generations started with their answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExactMatch {
    /// Items scored.
    pub n_items: usize,
    /// Items whose extracted answer equals the expected one.
    pub n_right: usize,
}

impl ExactMatch {
    /// Share of items answered exactly.
    pub fn accuracy(&self) -> f64 {
        self.n_right as f64 / self.n_items as f64
    }
}

impl Merge for ExactMatch {
    fn merge(self, other: Self) -> Self {
        Self {
            n_items: self.n_items + other.n_items,
            n_right: self.n_right + other.n_right,
        }
    }
}

/// The answer a continuation gives as a number: an optional leading `-`, then digits, after
/// leading whitespace (`"42 and"` gives `"42"`; `12` never counts for `123`).
pub fn leading_number(text: &str) -> String {
    let text = text.trim_start();
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if c.is_ascii_digit() || (i == 0 && c == '-') {
            out.push(c);
        } else {
            break;
        }
    }
    out
}

/// Generates a continuation of `<eot> prompt` for every item with `config` and `probes`,
/// and counts those where `extract(continuation) == answer`.
pub fn exact_match<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    eot: u32,
    items: &[ExactMatchItem],
    config: &GenerateConfig,
    extract: &dyn Fn(&str) -> String,
    probes: &mut ProbeSet<'_, B>,
) -> Result<ExactMatch> {
    if items.is_empty() {
        return Err(Error::EmptyInput {
            what: "no exact-match items".into(),
        });
    }
    let mut result = ExactMatch::default();
    for item in items {
        let mut prompt = vec![eot];
        prompt.extend(tokenizer.encode_plain(&item.prompt)?);
        let new = generate(model, &prompt, config, probes)?;
        let text = tokenizer.decode(&new)?;
        result.n_items += 1;
        result.n_right += usize::from(extract(&text) == item.answer);
    }
    Ok(result)
}
