//! `cargo xtask score-tasks`: multiple-choice accuracy of a language model by log-likelihood.
//!
//! Each item of `datasets/tasks/*.jsonl` is scored as `datasets/tasks/README.md` prescribes,
//! exactly as `cargo xtask baselines` scores the n-gram models: `<|endoftext|>` then the
//! context's tokens, then the choice's tokens (the tail of the encoding of
//! `context + choice` after the context's own encoding); a choice's score is the sum of its
//! tokens' log-probabilities, each given everything before it. `acc` picks the choice with
//! the highest sum, `acc_norm` the highest sum per byte of the choice.
//!
//! The four choices of an item run as one right-padded batch: with causal attention a real
//! token never sees the padding after it, so each row's log-probabilities are those of the
//! row alone.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, ensure};
use burn::backend::Flex;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use strata_core::weights::HostTensor;
use strata_core::{Model, PadSide, TokenBatch};
use tokenizers::Tokenizer;

use crate::baselines::{TaskItem, accuracy, read_tasks};
use crate::train_tokenizer::END_OF_TEXT;
use crate::workspace_root;

/// Arguments of `cargo xtask score-tasks`.
#[derive(clap::Args)]
pub struct Args {
    /// Model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Which task set to score.
    #[arg(long, value_enum, default_value_t = TaskName::All)]
    task: TaskName,
    /// Score only the first N items of each task.
    #[arg(long)]
    limit: Option<usize>,
    /// Folder of multiple-choice task files (*.jsonl) [default: datasets/tasks].
    #[arg(long)]
    tasks: Option<PathBuf>,
    /// Where to write the accuracies as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The task sets of `datasets/tasks/`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskName {
    /// `kjv_cloze.jsonl`: the last word of a held-out verse.
    #[value(name = "kjv_cloze")]
    KjvCloze,
    /// `arithmetic.jsonl`: the answer of an addition or subtraction.
    Arithmetic,
    /// Every `*.jsonl` file of the task folder.
    All,
}

/// What `--out` records.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreReport {
    /// The model folder scored.
    pub model: String,
    /// Its number of parameters.
    pub n_params: usize,
    /// How each choice was scored.
    pub scoring: String,
    /// Items scored per task at most (`--limit`); `None` means all.
    pub limit: Option<usize>,
    /// One row per task file.
    pub tasks: Vec<TaskScore>,
}

/// Accuracies on one task file.
#[derive(Debug, Clone, Serialize)]
pub struct TaskScore {
    /// The file's stem (`kjv_cloze`, `arithmetic`).
    pub task: String,
    /// Number of items scored.
    pub n_items: usize,
    /// Share of items whose right choice has the highest summed log-probability.
    pub acc: f64,
    /// The same with each sum divided by the choice's length in UTF-8 bytes.
    pub acc_norm: f64,
}

/// Scores the task files of `args.task` with the model of `args.model`.
pub fn run(args: &Args) -> Result<()> {
    let tasks_dir = args
        .tasks
        .clone()
        .unwrap_or_else(|| workspace_root().join("datasets/tasks"));
    let model =
        Model::<Flex>::load(&args.model, &Default::default()).context("cannot load the model")?;
    let tokenizer = model.tokenizer()?.inner();
    let eot = tokenizer.token_to_id(END_OF_TEXT).ok_or_else(|| {
        anyhow!(
            "{}: the tokenizer has no {END_OF_TEXT} token",
            args.model.display()
        )
    })?;

    let mut tasks = read_tasks(&tasks_dir)?;
    if let Some(wanted) = wanted_stem(args.task) {
        tasks.retain(|(name, _)| name == wanted);
        ensure!(
            !tasks.is_empty(),
            "{}: no task file {wanted}.jsonl",
            tasks_dir.display()
        );
    }
    if let Some(limit) = args.limit {
        ensure!(limit > 0, "--limit must be at least 1");
        for (_, items) in &mut tasks {
            items.truncate(limit);
        }
    }

    println!(
        "{}: {} parameters; multiple-choice accuracy (chance 0.25)",
        args.model.display(),
        model.n_params()
    );
    let mut rows = Vec::new();
    for (name, items) in &tasks {
        let progress = ProgressBar::new(items.len() as u64).with_style(
            ProgressStyle::with_template("{msg:<12} {bar:30} {pos}/{len} items, {elapsed}")
                .expect("the progress template is valid"),
        );
        progress.set_message(name.clone());
        let mut scores = Vec::with_capacity(items.len());
        for (item_idx, item) in items.iter().enumerate() {
            let item_scores = score_item(&model, tokenizer, eot, item)
                .with_context(|| format!("{name}: item {}", item_idx + 1))?;
            scores.push(item_scores);
            progress.inc(1);
        }
        progress.finish_and_clear();
        let (acc, acc_norm) = accuracy(items, &scores);
        rows.push(TaskScore {
            task: name.clone(),
            n_items: items.len(),
            acc,
            acc_norm,
        });
    }

    println!(
        "{:<16} {:>6} {:>8} {:>9}",
        "task", "items", "acc", "acc_norm"
    );
    for row in &rows {
        println!(
            "{:<16} {:>6} {:>8.3} {:>9.3}",
            row.task, row.n_items, row.acc, row.acc_norm
        );
    }
    if let Some(out) = &args.out {
        let report = ScoreReport {
            model: args.model.display().to_string(),
            n_params: model.n_params(),
            scoring: "datasets/tasks/README.md: <|endoftext|> + context, then the choice's tokens (tail of the encoding of context + choice); acc by the sum of ln p over the choice's tokens, acc_norm by that sum per UTF-8 byte of the choice".into(),
            limit: args.limit,
            tasks: rows,
        };
        let text = serde_json::to_string_pretty(&report)? + "\n";
        fs::write(out, text).with_context(|| format!("{}: cannot write", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

/// The file stem `task` selects, or `None` for every file.
fn wanted_stem(task: TaskName) -> Option<&'static str> {
    match task {
        TaskName::KjvCloze => Some("kjv_cloze"),
        TaskName::Arithmetic => Some("arithmetic"),
        TaskName::All => None,
    }
}

/// For each choice of `item`: (sum of its tokens' ln p, its length in bytes), as
/// `baselines::score_choices` returns them for the n-gram models.
fn score_item<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    eot: u32,
    item: &TaskItem,
) -> Result<Vec<(f64, usize)>> {
    let (context_ids, continuations) = crate::baselines::item_tokens(tokenizer, eot, item)?;
    let log_probs = continuation_log_probs(model, &context_ids, &continuations)?;
    Ok(log_probs
        .into_iter()
        .zip(&item.choices)
        .map(|(log_prob, choice)| (log_prob, choice.len()))
        .collect())
}

/// `sum ln p(token | everything before it)` over the tokens of each continuation after
/// `context`, from one right-padded forward pass of all `context + continuation` rows.
fn continuation_log_probs<B: Backend>(
    model: &Model<B>,
    context: &[u32],
    continuations: &[Vec<u32>],
) -> Result<Vec<f64>> {
    ensure!(
        !context.is_empty(),
        "the context has no tokens; a continuation's first token needs one before it"
    );
    ensure!(
        !continuations.is_empty() && continuations.iter().all(|c| !c.is_empty()),
        "there are no continuations, or one of them has no tokens"
    );
    let rows: Vec<Vec<u32>> = continuations
        .iter()
        .map(|continuation| [context, continuation].concat())
        .collect();
    let batch = TokenBatch::padded(&rows, 0, PadSide::Right)?;
    let (n_rows, n_pos) = (batch.batch, batch.pos);
    let logits = model.forward(&batch)?;
    let [_, _, d_vocab] = logits.dims();
    // Position `pos` predicts the token at `pos + 1`, so the last position is not needed.
    let log_probs = log_softmax(logits.slice([0..n_rows, 0..n_pos - 1, 0..d_vocab]), 2);
    let targets: Vec<i64> = (0..n_rows)
        .flat_map(|row| (1..n_pos).map(move |pos| (row, pos)))
        .map(|(row, pos)| batch.ids[row * n_pos + pos] as i64)
        .collect();
    let targets = Tensor::<B, 3, Int>::from_data(
        TensorData::new(targets, [n_rows, n_pos - 1, 1]),
        &log_probs.device(),
    );
    // `[batch, pos - 1]`: ln p of each next token, padding included (ignored below).
    let picked = HostTensor::from_tensor(log_probs.gather(2, targets));
    Ok(rows
        .iter()
        .enumerate()
        .map(|(row_idx, row)| {
            let row_start = row_idx * (n_pos - 1);
            picked.data[row_start + context.len() - 1..row_start + row.len() - 1]
                .iter()
                .map(|&x| f64::from(x))
                .sum()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train_tokenizer::encode;

    /// The Llama parity fixture (vocabulary 96, no tokenizer).
    fn fixture_model() -> Model<Flex> {
        let dir = workspace_root().join("tests/fixtures/llama-tiny");
        Model::<Flex>::load(&dir, &Default::default()).expect("the llama-tiny fixture loads")
    }

    /// The reference: one unpadded forward pass of `context + continuation`, the log-softmax
    /// read back to the host, and the entries of the continuation's tokens summed by hand.
    fn reference_log_prob(model: &Model<Flex>, context: &[u32], continuation: &[u32]) -> f64 {
        let ids = [context, continuation].concat();
        let logits = model
            .forward(&TokenBatch::single(&ids).expect("ids are not empty"))
            .expect("the forward pass runs");
        let log_probs = HostTensor::from_tensor(log_softmax(logits, 2));
        let d_vocab = log_probs.shape[2];
        (context.len()..ids.len())
            .map(|pos| f64::from(log_probs.data[(pos - 1) * d_vocab + ids[pos] as usize]))
            .sum()
    }

    #[test]
    fn batched_continuation_log_probs_match_one_forward_pass_each() {
        let model = fixture_model();
        let context = [1, 17, 42, 5, 88, 23];
        // Lengths 1, 4, 2 and 7, so three of the four rows are padded.
        let continuations = vec![
            vec![9],
            vec![60, 3, 3, 71],
            vec![95, 0],
            vec![12, 34, 56, 78, 90, 11, 2],
        ];
        let scored = continuation_log_probs(&model, &context, &continuations)
            .expect("the continuations are scored");
        assert_eq!(scored.len(), continuations.len());
        for (continuation, &log_prob) in continuations.iter().zip(&scored) {
            let expected = reference_log_prob(&model, &context, continuation);
            assert!(
                log_prob < 0.0,
                "a log-probability sum is negative: {log_prob}"
            );
            assert!(
                (log_prob - expected).abs() <= 1e-4 * expected.abs().max(1.0),
                "continuation {continuation:?}: batched {log_prob}, one pass {expected}"
            );
        }
    }

    #[test]
    fn a_continuation_scored_alone_matches_the_batch() {
        let model = fixture_model();
        let context = [4, 8, 15, 16, 23, 42];
        let continuations = vec![vec![7, 7], vec![81, 2, 64, 30, 5]];
        let batched = continuation_log_probs(&model, &context, &continuations).unwrap();
        for (continuation, &in_batch) in continuations.iter().zip(&batched) {
            let alone =
                continuation_log_probs(&model, &context, std::slice::from_ref(continuation))
                    .unwrap()[0];
            assert!(
                (alone - in_batch).abs() <= 1e-4 * alone.abs().max(1.0),
                "continuation {continuation:?}: alone {alone}, in a batch {in_batch}"
            );
        }
    }

    #[test]
    fn a_cloze_item_is_scored_on_the_tokens_after_its_context() {
        let dir = workspace_root().join("datasets/models/tiny-default");
        let model = Model::<Flex>::load(&dir, &Default::default()).expect("tiny-default loads");
        let tokenizer = model
            .tokenizer()
            .expect("tiny-default has a tokenizer")
            .inner();
        let item = TaskItem {
            context: "And the LORD spake unto Moses, saying, Speak unto the".into(),
            choices: vec![" children".into(), " wilderness".into()],
            answer: 0,
        };
        let scores = score_item(&model, tokenizer, 0, &item).expect("the item is scored");
        let context = [vec![0], encode(tokenizer, &item.context).unwrap()].concat();
        for (choice, &(log_prob, n_bytes)) in item.choices.iter().zip(&scores) {
            let full = encode(tokenizer, &format!("{}{choice}", item.context)).unwrap();
            let expected = reference_log_prob(&model, &context, &full[context.len() - 1..]);
            assert_eq!(n_bytes, choice.len());
            assert!(
                (log_prob - expected).abs() <= 1e-4 * expected.abs().max(1.0),
                "choice {choice:?}: scored {log_prob}, one pass {expected}"
            );
        }
    }

    #[test]
    fn empty_context_or_continuation_is_an_error() {
        let model = fixture_model();
        let empty_context = continuation_log_probs(&model, &[], &[vec![3]]);
        assert!(empty_context.unwrap_err().to_string().contains("context"));
        let empty_choice = continuation_log_probs(&model, &[1, 2], &[vec![3], vec![]]);
        assert!(
            empty_choice
                .unwrap_err()
                .to_string()
                .contains("continuations")
        );
    }

    #[test]
    fn acc_and_acc_norm_follow_the_sum_and_the_sum_per_byte() {
        let items = vec![TaskItem {
            context: "1+1=".into(),
            choices: vec!["2".into(), "11".into()],
            answer: 1,
        }];
        // Sums -2.0 and -3.0 favour choice 0; per byte, -2.0 and -1.5 favour choice 1.
        let scores = vec![vec![(-2.0, 1), (-3.0, 2)]];
        assert_eq!(accuracy(&items, &scores), (0.0, 1.0));
    }
}
