//! `cargo xtask score-tasks`: multiple-choice accuracy of a language model by log-likelihood.
//!
//! Each item of `datasets/tasks/*.jsonl` is scored as `datasets/tasks/README.md` prescribes,
//! exactly as `cargo xtask baselines` scores the n-gram models: `<|endoftext|>` then the
//! context's tokens, then the choice's tokens (the tail of the encoding of
//! `context + choice` after the context's own encoding); a choice's score is the sum of its
//! tokens' log-probabilities, each given everything before it. `acc` picks the choice with
//! the highest sum, `acc_norm` the highest sum per byte of the choice.
//!
//! The scoring itself is `strata_core::eval::tasks`; this command reads the files, runs it
//! and prints or writes the table.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, ensure};
use burn::backend::Flex;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use strata_core::eval::tasks::{read_task_dir, score_task};
use strata_core::{Model, ProbeSet};

use crate::paths::Paths;
use crate::train_tokenizer::END_OF_TEXT;

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
        .unwrap_or_else(|| Paths::workspace().tasks());
    let model =
        Model::<Flex>::load(&args.model, &Default::default()).context("cannot load the model")?;
    let tokenizer = model.tokenizer()?;
    let eot = tokenizer.token_id(END_OF_TEXT).ok_or_else(|| {
        anyhow!(
            "{}: the tokenizer has no {END_OF_TEXT} token",
            args.model.display()
        )
    })?;

    let mut tasks = read_task_dir(&tasks_dir)?;
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
        let accuracy = score_task(
            &model,
            tokenizer,
            eot,
            items,
            &mut ProbeSet::none(),
            &mut |done, _| progress.set_position(done as u64),
        )
        .with_context(|| format!("{name}: scoring"))?;
        progress.finish_and_clear();
        let (acc, acc_norm) = (accuracy.acc(), accuracy.acc_norm());
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
