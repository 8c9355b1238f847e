//! Multiple-choice tasks scored by log-likelihood, as `datasets/tasks/README.md` prescribes.
//!
//! A task file holds one JSON object per line: `{"id", "context", "choices", "answer"}`.
//! Each choice is scored on the sequence `<eot> context choice`: the sum of the log
//! probabilities of the choice's tokens (the tail of the encoding of `context + choice`
//! after the context's own encoding), each given everything before it. `acc` picks the
//! choice with the highest sum, `acc_norm` the highest sum per UTF-8 byte of the choice.

use std::path::{Path, PathBuf};

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::{PadSide, TokenBatch};
use crate::models::Model;
use crate::probe::{Merge, ProbeSet};
use crate::tokenizer::Tokenizer;
use crate::weights::HostTensor;

/// One multiple-choice item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskItem {
    /// Unique id (optional in files; the line number stands in).
    #[serde(default)]
    pub id: String,
    /// The text before the gap.
    pub context: String,
    /// The candidate continuations of `context` (each the exact text that follows it).
    pub choices: Vec<String>,
    /// Index of the right choice.
    pub answer: usize,
}

/// Reads a task file (`*.jsonl`): every line an item; errors name the file and line.
pub fn read_task_file(path: &Path) -> Result<Vec<TaskItem>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut items = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| Error::BadTaskItem {
            file: path.to_path_buf(),
            line: idx + 1,
            reason,
        };
        let mut item: TaskItem = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if item.choices.len() < 2 {
            return Err(bad(format!(
                "{} choices; an item needs at least 2",
                item.choices.len()
            )));
        }
        if item.answer >= item.choices.len() {
            return Err(bad(format!(
                "`answer` {} is out of range for {} choices",
                item.answer,
                item.choices.len()
            )));
        }
        if item.choices.iter().any(String::is_empty) {
            return Err(bad("a choice is empty".into()));
        }
        if item.id.is_empty() {
            item.id = format!("line-{}", idx + 1);
        }
        items.push(item);
    }
    if items.is_empty() {
        return Err(Error::EmptyInput {
            what: format!("task file {} has no items", path.display()),
        });
    }
    Ok(items)
}

/// Every `*.jsonl` file of `dir`, sorted by name, as (file stem, items).
pub fn read_task_dir(dir: &Path) -> Result<Vec<(String, Vec<TaskItem>)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Error::EmptyInput {
            what: format!("task folder {} has no *.jsonl file", dir.display()),
        });
    }
    paths
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((name, read_task_file(&path)?))
        })
        .collect()
}

/// The token ids of an item's context (after a leading `eot`) and of each choice's
/// continuation; fails if appending a choice changes the context's own tokens.
pub fn item_tokens(
    tokenizer: &Tokenizer,
    eot: u32,
    item: &TaskItem,
) -> Result<(Vec<u32>, Vec<Vec<u32>>)> {
    let mut context_ids = vec![eot];
    context_ids.extend(tokenizer.encode_plain(&item.context)?);
    let mut continuations = Vec::with_capacity(item.choices.len());
    for choice in &item.choices {
        let mut ids = vec![eot];
        ids.extend(tokenizer.encode_plain(&format!("{}{choice}", item.context))?);
        if !(ids.starts_with(&context_ids) && ids.len() > context_ids.len()) {
            return Err(Error::InvalidArgument {
                what: format!("item {}", item.id),
                reason: format!(
                    "choice {choice:?} changes the tokens of the context {:?}",
                    item.context
                ),
            });
        }
        continuations.push(ids[context_ids.len()..].to_vec());
    }
    Ok((context_ids, continuations))
}

/// `sum ln p(token | everything before it)` over the tokens of each continuation after
/// `context`, from one right-padded forward pass of all `context + continuation` rows, with
/// `probes` attached. With causal attention a real token never sees the padding after it,
/// so each row's log-probabilities are those of the row alone.
pub fn continuation_log_probs<B: Backend>(
    model: &Model<B>,
    context: &[u32],
    continuations: &[Vec<u32>],
    probes: &mut ProbeSet<'_, B>,
) -> Result<Vec<f64>> {
    if context.is_empty() {
        return Err(Error::EmptyInput {
            what: "a context with no tokens (a continuation's first token needs one before it)"
                .into(),
        });
    }
    if continuations.is_empty() || continuations.iter().any(Vec::is_empty) {
        return Err(Error::EmptyInput {
            what: "no continuations, or a continuation with no tokens".into(),
        });
    }
    let rows: Vec<Vec<u32>> = continuations
        .iter()
        .map(|continuation| [context, continuation].concat())
        .collect();
    let batch = TokenBatch::padded(&rows, 0, PadSide::Right)?;
    let (n_rows, n_pos) = (batch.batch, batch.pos);
    let logits = model.forward_with(&batch, None, probes)?;
    let [_, _, d_vocab] = logits.dims();
    // Position `pos` predicts the token at `pos + 1`, so the last position is not needed.
    let log_probs = log_softmax(logits.slice([0..n_rows, 0..n_pos - 1, 0..d_vocab]), 2);
    let targets: Vec<i64> = (0..n_rows)
        .flat_map(|row| (1..n_pos).map(move |pos| (row, pos)))
        .map(|(row, pos)| i64::from(batch.ids[row * n_pos + pos]))
        .collect();
    let targets = Tensor::<B, 3, Int>::from_data(
        TensorData::new(targets, [n_rows, n_pos - 1, 1]),
        &log_probs.device(),
    );
    // `[batch, pos - 1]`: ln p of each next token, padding included (ignored below).
    let picked = HostTensor::from_tensor(log_probs.gather(2, targets));
    rows.iter()
        .enumerate()
        .map(|(row_idx, row)| {
            let row_start = row_idx * (n_pos - 1);
            let sum: f64 = picked.data[row_start + context.len() - 1..row_start + row.len() - 1]
                .iter()
                .map(|&x| f64::from(x))
                .sum();
            if sum.is_nan() {
                return Err(Error::NonFiniteResult {
                    what: format!("the log-probability of continuation {row_idx}"),
                    value: sum,
                });
            }
            Ok(sum)
        })
        .collect()
}

/// Multiple-choice accuracy over a set of items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MultipleChoiceAccuracy {
    /// Items scored.
    pub n_items: usize,
    /// Items whose highest-scoring choice (sum of ln p) is right.
    pub n_right: usize,
    /// Items whose highest-scoring choice per UTF-8 byte is right.
    pub n_right_norm: usize,
}

impl MultipleChoiceAccuracy {
    /// Adds one item, given each choice's (sum of ln p, length in bytes).
    pub fn add(&mut self, scores: &[(f64, usize)], answer: usize) {
        let argmax = |values: Vec<f64>| {
            values
                .iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |best, (idx, &v)| {
                    if v > best.1 { (idx, v) } else { best }
                })
                .0
        };
        self.n_items += 1;
        self.n_right += usize::from(argmax(scores.iter().map(|s| s.0).collect()) == answer);
        let per_byte = scores.iter().map(|s| s.0 / s.1.max(1) as f64).collect();
        self.n_right_norm += usize::from(argmax(per_byte) == answer);
    }

    /// `acc`: share of items answered right by the sum of log-probabilities.
    pub fn acc(&self) -> f64 {
        self.n_right as f64 / self.n_items as f64
    }

    /// `acc_norm`: share answered right by log-probability per byte.
    pub fn acc_norm(&self) -> f64 {
        self.n_right_norm as f64 / self.n_items as f64
    }
}

impl Merge for MultipleChoiceAccuracy {
    fn merge(self, other: Self) -> Self {
        Self {
            n_items: self.n_items + other.n_items,
            n_right: self.n_right + other.n_right,
            n_right_norm: self.n_right_norm + other.n_right_norm,
        }
    }
}

/// Each choice's (sum of ln p over its tokens, length in bytes) for one item.
pub fn score_item<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    eot: u32,
    item: &TaskItem,
    probes: &mut ProbeSet<'_, B>,
) -> Result<Vec<(f64, usize)>> {
    let (context, continuations) = item_tokens(tokenizer, eot, item)?;
    let log_probs = continuation_log_probs(model, &context, &continuations, probes)?;
    Ok(log_probs
        .into_iter()
        .zip(&item.choices)
        .map(|(log_prob, choice)| (log_prob, choice.len()))
        .collect())
}

/// Scores every item of a task with `probes` attached; `progress` gets (items done, total).
pub fn score_task<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    eot: u32,
    items: &[TaskItem],
    probes: &mut ProbeSet<'_, B>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<MultipleChoiceAccuracy> {
    let mut accuracy = MultipleChoiceAccuracy::default();
    for (idx, item) in items.iter().enumerate() {
        let scores = score_item(model, tokenizer, eot, item, probes)?;
        accuracy.add(&scores, item.answer);
        progress(idx + 1, items.len());
    }
    Ok(accuracy)
}
