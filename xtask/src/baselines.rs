//! `cargo xtask baselines`: unigram and bigram perplexities of the KJV splits.
//!
//! These are the numbers a tiny language model must beat. Both models are fitted on the
//! train split's token counts and scored on each split, at the token level, under
//! `datasets/tokenizer/tokenizer.json`.
//!
//! **The token stream.** Each verse (one line) is encoded on its own and followed by
//! `<|endoftext|>`; the stream starts with one `<|endoftext|>`, which is context only. So a
//! split of `n_verses` verses has `n_tokens = sum(len(verse ids)) + n_verses` predicted
//! tokens, the end of each verse included, and each verse's first token is predicted after
//! `<|endoftext|>`. Perplexity is `exp(-sum(ln p) / n_tokens)`.
//!
//! **Smoothing.**
//! - Unigram: add-one (Laplace), `p(w) = (c(w) + 1) / (N + V)` with `V` the vocabulary size.
//! - Bigram: interpolated Kneser-Ney with one absolute discount `D = n1 / (n1 + 2 n2)`
//!   (`n1`, `n2`: bigram types seen once and twice in train), interpolated down to the
//!   continuation unigram, which is itself discounted and interpolated with the uniform
//!   distribution, so every token has a non-zero probability. Nothing is tuned on the
//!   scored splits.
//!
//! **Multiple-choice tasks.** Each item of `datasets/tasks/*.jsonl` is scored the way
//! `datasets/tasks/README.md` prescribes for a language model: the choice's tokens are those
//! of `context + choice` after the context's tokens, the context is preceded by
//! `<|endoftext|>`, and a choice's score is the sum of its tokens' log-probabilities
//! (`acc`), or that sum divided by the choice's length in bytes (`acc_norm`).

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, ensure};
use serde_json::json;
use strata_core::Tokenizer;
use strata_core::eval::tasks::{MultipleChoiceAccuracy, TaskItem, item_tokens, read_task_dir};

use crate::paths::Paths;
use crate::read_lines;
use crate::train::data::token_stream;
use crate::train_tokenizer::END_OF_TEXT;

const SPLITS: [&str; 3] = ["train", "valid", "test"];

#[derive(clap::Args)]
pub struct Args {
    /// Tokenizer file [default: datasets/tokenizer/tokenizer.json].
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Folder holding train.txt, valid.txt and test.txt [default: datasets/kjv].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Folder of multiple-choice task files (*.jsonl) [default: datasets/tasks].
    #[arg(long)]
    tasks: Option<PathBuf>,
    /// Where to write the results as JSON [default: <data>/baselines.json].
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    let tokenizer_path = args
        .tokenizer
        .clone()
        .unwrap_or_else(|| Paths::workspace().tokenizer());
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| Paths::workspace().kjv_dir());
    let tasks_dir = args
        .tasks
        .clone()
        .unwrap_or_else(|| Paths::workspace().tasks());
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| data.join("baselines.json"));

    let tokenizer = Tokenizer::from_file(&tokenizer_path)?;
    let n_vocab = tokenizer.vocab_size();
    let eot = tokenizer.token_id(END_OF_TEXT).ok_or_else(|| {
        anyhow!(
            "{}: the tokenizer has no {END_OF_TEXT} token",
            tokenizer_path.display()
        )
    })?;

    let mut streams = Vec::new();
    for split in SPLITS {
        let path = data.join(format!("{split}.txt"));
        let lines = read_lines(&path)?;
        let n_bytes: usize = lines.iter().map(|line| line.len() + 1).sum();
        let stream = token_stream(tokenizer.inner(), &lines, eot)
            .with_context(|| format!("{}: cannot encode", path.display()))?;
        streams.push((split, lines.len(), n_bytes, stream));
    }

    let train = &streams[0].3;
    let unigram = Unigram::fit(train, n_vocab);
    let bigram = BigramKneserNey::fit(train, n_vocab);
    for context in [eot, train[1], train[train.len() / 2]] {
        let total: f64 = (0..n_vocab as u32).map(|w| bigram.prob(context, w)).sum();
        ensure!(
            (total - 1.0).abs() < 1e-9,
            "bigram probabilities after token {context} sum to {total}, not 1"
        );
    }

    println!(
        "token-level perplexities under {} (vocabulary {n_vocab}), fitted on train",
        tokenizer_path.display()
    );
    println!("bigram discount D = {:.4}", bigram.discount);
    println!(
        "{:<6} {:>8} {:>9} {:>9} {:>12} {:>14} {:>12} {:>14}",
        "split",
        "verses",
        "bytes",
        "tokens",
        "unigram ppl",
        "unigram bits/B",
        "bigram ppl",
        "bigram bits/B"
    );
    let mut rows = Vec::new();
    for (split, n_verses, n_bytes, stream) in &streams {
        let n_tokens = stream.len() - 1;
        let unigram_nll: f64 = stream[1..].iter().map(|&w| -unigram.prob(w).ln()).sum();
        let bigram_nll: f64 = stream
            .windows(2)
            .map(|pair| -bigram.prob(pair[0], pair[1]).ln())
            .sum();
        let ppl = |nll: f64| (nll / n_tokens as f64).exp();
        let bits_per_byte = |nll: f64| nll / std::f64::consts::LN_2 / *n_bytes as f64;
        println!(
            "{split:<6} {n_verses:>8} {n_bytes:>9} {n_tokens:>9} {:>12.2} {:>14.4} {:>12.2} {:>14.4}",
            ppl(unigram_nll),
            bits_per_byte(unigram_nll),
            ppl(bigram_nll),
            bits_per_byte(bigram_nll)
        );
        rows.push(json!({
            "split": split,
            "n_verses": n_verses,
            "n_bytes": n_bytes,
            "n_tokens": n_tokens,
            "unigram_ppl": ppl(unigram_nll),
            "unigram_bits_per_byte": bits_per_byte(unigram_nll),
            "bigram_ppl": ppl(bigram_nll),
            "bigram_bits_per_byte": bits_per_byte(bigram_nll),
        }));
    }

    println!("multiple-choice accuracy (chance 0.25)");
    println!(
        "{:<16} {:>6} {:>12} {:>16} {:>12} {:>16}",
        "task", "items", "unigram acc", "unigram acc_norm", "bigram acc", "bigram acc_norm"
    );
    let mut task_rows = Vec::new();
    for (name, items) in read_task_dir(&tasks_dir)? {
        let unigram = score_choices(&tokenizer, &items, eot, |_, w| unigram.prob(w))?;
        let bigram = score_choices(&tokenizer, &items, eot, |v, w| bigram.prob(v, w))?;
        let (unigram_acc, unigram_acc_norm) = (unigram.acc(), unigram.acc_norm());
        let (bigram_acc, bigram_acc_norm) = (bigram.acc(), bigram.acc_norm());
        println!(
            "{name:<16} {:>6} {unigram_acc:>12.3} {unigram_acc_norm:>16.3} {bigram_acc:>12.3} {bigram_acc_norm:>16.3}",
            items.len()
        );
        task_rows.push(json!({
            "task": name,
            "n_items": items.len(),
            "unigram_acc": unigram_acc,
            "unigram_acc_norm": unigram_acc_norm,
            "bigram_acc": bigram_acc,
            "bigram_acc_norm": bigram_acc_norm,
        }));
    }

    let report = json!({
        "tokenizer": "datasets/tokenizer/tokenizer.json",
        "n_vocab": n_vocab,
        "stream": "each verse encoded alone and followed by <|endoftext|>; one leading <|endoftext|> as context; n_bytes counts one newline per verse",
        "unigram": "add-one (Laplace)",
        "bigram": "interpolated Kneser-Ney, absolute discount D = n1 / (n1 + 2 n2), continuation unigram interpolated with uniform",
        "bigram_discount": bigram.discount,
        "splits": rows,
        "tasks": task_rows,
    });
    let text = serde_json::to_string_pretty(&report)? + "\n";
    fs::write(&json_path, text)
        .with_context(|| format!("{}: cannot write", json_path.display()))?;
    println!("wrote {}", json_path.display());
    Ok(())
}

/// Multiple-choice accuracy of an n-gram model given by `prob(previous, token)`, scored as
/// `strata_core::eval::tasks` scores a language model.
fn score_choices(
    tokenizer: &Tokenizer,
    items: &[TaskItem],
    eot: u32,
    prob: impl Fn(u32, u32) -> f64,
) -> Result<MultipleChoiceAccuracy> {
    let mut accuracy = MultipleChoiceAccuracy::default();
    for item in items {
        let (context_ids, continuations) = item_tokens(tokenizer, eot, item)?;
        let item_scores = continuations
            .iter()
            .zip(&item.choices)
            .map(|(continuation, choice)| {
                let mut previous = *context_ids.last().expect("the context starts with eot");
                let log_prob: f64 = continuation
                    .iter()
                    .map(|&token| {
                        let ln_p = prob(previous, token).ln();
                        previous = token;
                        ln_p
                    })
                    .sum();
                (log_prob, choice.len())
            })
            .collect::<Vec<_>>();
        accuracy.add(&item_scores, item.answer);
    }
    Ok(accuracy)
}

/// Add-one unigram model over the predicted tokens (`stream[1..]`).
struct Unigram {
    counts: Vec<u64>,
    n_tokens: u64,
}

impl Unigram {
    fn fit(stream: &[u32], n_vocab: usize) -> Self {
        let mut counts = vec![0u64; n_vocab];
        for &w in &stream[1..] {
            counts[w as usize] += 1;
        }
        Self {
            counts,
            n_tokens: (stream.len() - 1) as u64,
        }
    }

    fn prob(&self, w: u32) -> f64 {
        (self.counts[w as usize] + 1) as f64 / (self.n_tokens + self.counts.len() as u64) as f64
    }
}

/// Interpolated Kneser-Ney bigram model.
struct BigramKneserNey {
    /// The absolute discount `D`.
    discount: f64,
    /// `c(v, w)`, keyed by `(v, w)`.
    pair_counts: HashMap<(u32, u32), u64>,
    /// `c(v, ·)`: how often each token is a context.
    context_counts: Vec<u64>,
    /// `N1+(v ·)`: how many distinct tokens follow each context.
    n_followers: Vec<u64>,
    /// `N1+(· w)`: how many distinct contexts precede each token.
    n_predecessors: Vec<u64>,
    /// `N1+(· ·)`: the number of distinct bigram types.
    n_types: u64,
    /// How many tokens have at least one predecessor.
    n_continued: u64,
}

impl BigramKneserNey {
    fn fit(stream: &[u32], n_vocab: usize) -> Self {
        let mut pair_counts: HashMap<(u32, u32), u64> = HashMap::new();
        for pair in stream.windows(2) {
            *pair_counts.entry((pair[0], pair[1])).or_default() += 1;
        }
        let mut context_counts = vec![0u64; n_vocab];
        let mut n_followers = vec![0u64; n_vocab];
        let mut n_predecessors = vec![0u64; n_vocab];
        let (mut n1, mut n2) = (0u64, 0u64);
        for (&(v, w), &count) in &pair_counts {
            context_counts[v as usize] += count;
            n_followers[v as usize] += 1;
            n_predecessors[w as usize] += 1;
            match count {
                1 => n1 += 1,
                2 => n2 += 1,
                _ => {}
            }
        }
        let n_continued = n_predecessors.iter().filter(|&&n| n > 0).count() as u64;
        Self {
            discount: n1 as f64 / (n1 + 2 * n2) as f64,
            n_types: pair_counts.len() as u64,
            pair_counts,
            context_counts,
            n_followers,
            n_predecessors,
            n_continued,
        }
    }

    /// The continuation unigram, interpolated with the uniform distribution.
    fn continuation_prob(&self, w: u32) -> f64 {
        let n_types = self.n_types as f64;
        let discounted =
            (self.n_predecessors[w as usize] as f64 - self.discount).max(0.0) / n_types;
        let uniform_weight = self.discount * self.n_continued as f64 / n_types;
        discounted + uniform_weight / self.context_counts.len() as f64
    }

    /// `p(w | v)`.
    fn prob(&self, v: u32, w: u32) -> f64 {
        let context_count = self.context_counts[v as usize];
        if context_count == 0 {
            return self.continuation_prob(w);
        }
        let context_count = context_count as f64;
        let pair_count = self.pair_counts.get(&(v, w)).copied().unwrap_or(0) as f64;
        let discounted = (pair_count - self.discount).max(0.0) / context_count;
        let backoff_weight = self.discount * self.n_followers[v as usize] as f64 / context_count;
        discounted + backoff_weight * self.continuation_prob(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream over 5 tokens where token 4 never occurs.
    const STREAM: [u32; 12] = [0, 1, 2, 0, 1, 3, 0, 2, 2, 1, 0, 3];

    #[test]
    fn bigram_probabilities_sum_to_one_for_every_context() {
        let model = BigramKneserNey::fit(&STREAM, 5);
        for v in 0..5 {
            let total: f64 = (0..5).map(|w| model.prob(v, w)).sum();
            assert!((total - 1.0).abs() < 1e-12, "context {v}: {total}");
        }
        assert!(model.prob(0, 4) > 0.0);
    }

    #[test]
    fn unigram_is_add_one() {
        let model = Unigram::fit(&STREAM, 5);
        // Token 2 is predicted 3 times among 11 predicted tokens: (3 + 1) / (11 + 5).
        assert!((model.prob(2) - 4.0 / 16.0).abs() < 1e-12);
        assert!((model.prob(4) - 1.0 / 16.0).abs() < 1e-12);
    }
}
