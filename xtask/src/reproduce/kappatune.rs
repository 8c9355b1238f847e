//! The KappaTune forgetting experiment (`book/src/kappa-method.md`, "Numbers to reproduce",
//! priority 2) on the embedded tiny model.
//!
//! `datasets/models/tiny-default` (trained on KJV) is fine-tuned on `datasets/arithmetic`
//! four ways: (a) the K lowest-`kappa` 2-D weight tensors trainable, everything else frozen
//! (KappaTune); (b) the K highest-`kappa`; (c) K drawn at random (seeded); (d) all
//! parameters. `kappa` comes from `strata_spectra` under the `strata` convention (2-D linear
//! weights incl. `lm_head`, embeddings excluded) and K = max(1, floor(N top_p)). Each run
//! trains until its training loss (mean of the last [`LOSS_WINDOW`] steps) reaches a common
//! target, or a step cap: runs are compared at matched training loss, as the spec advises.
//!
//! Per run: exact-match accuracy of the greedy answer after `a+b=` on the first items of the
//! arithmetic test split, the final training loss, and forgetting = KJV valid perplexity
//! (first tokens of the `datasets/kjv/baselines.json` stream, window = the model's context,
//! stride half of it, as `train::eval`) after minus before.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use serde::{Deserialize, Serialize};
use strata_core::Model;
use strata_core::eval::{
    ExactMatchItem, PerplexityConfig, exact_match, leading_number, perplexity,
};
use strata_core::generate::{GenerateConfig, Sampling};
use strata_core::models::Decoder;
use strata_core::probe::ProbeSet;
use strata_core::train::{FineTuneConfig, TrainableParams, mean_tail};
use strata_spectra::{Budget, SpectraConfig, analyze_path, select};

use crate::paths::Paths;
use crate::read_lines;
use crate::train::data::{Blocks, permutation, token_stream};
use crate::train::run::adamw;
use crate::train::schedule::learning_rate;
use crate::train::spec::{TrainSpec, default_preset};
use crate::train_tokenizer::END_OF_TEXT;
use rand::SeedableRng;
use rand_xoshiro::SplitMix64;

type TrainBackend = Autodiff<Flex>;

/// Steps averaged for the stopping rule and the reported final training loss.
pub const LOSS_WINDOW: usize = 10;

/// The experiment's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Model folder, relative to the workspace root.
    pub model: String,
    /// Fraction of candidate tensors trained by the selective methods.
    pub top_p: f64,
    /// Tokens per training sequence (packed arithmetic lines).
    pub seq_len: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Step cap per run.
    pub max_steps: usize,
    /// A run stops once the mean loss of its last `LOSS_WINDOW` steps is at or below this.
    pub target_loss: f64,
    /// Peak (and constant, after warmup) learning rate.
    pub lr: f64,
    /// Linear warmup steps.
    pub warmup_steps: usize,
    /// AdamW weight decay (on trainable parameters only).
    pub weight_decay: f64,
    /// Seed of the data order and of the random selection.
    pub seed: u64,
    /// Arithmetic test items scored by exact match (the first ones of the split).
    pub n_eval_items: usize,
    /// Leading KJV valid tokens of the perplexity.
    pub ppl_tokens: usize,
}

impl Settings {
    /// The full experiment: at most about 3 minutes per run on 2 cores.
    pub fn full() -> Self {
        Self {
            model: "datasets/models/tiny-default".into(),
            top_p: 0.2,
            seq_len: 64,
            batch_size: 16,
            max_steps: 600,
            target_loss: 4.5,
            lr: 3e-3,
            warmup_steps: 10,
            weight_decay: 0.0,
            seed: 0,
            n_eval_items: 300,
            ppl_tokens: 20_000,
        }
    }

    /// A few steps per run and a tiny evaluation.
    pub fn smoke() -> Self {
        Self {
            max_steps: 3,
            warmup_steps: 1,
            batch_size: 4,
            n_eval_items: 8,
            ppl_tokens: 600,
            ..Self::full()
        }
    }

    fn train_spec(&self) -> TrainSpec {
        let mut spec = default_preset();
        spec.seq_len = self.seq_len;
        spec.batch_size = self.batch_size;
        spec.n_steps = self.max_steps;
        spec.lr = self.lr;
        spec.min_lr_ratio = 1.0;
        spec.warmup_steps = self.warmup_steps;
        spec.weight_decay = self.weight_decay;
        spec.seed = self.seed;
        spec
    }
}

/// The fine-tuning methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// The K lowest-`kappa` tensors (KappaTune).
    LowestKappa,
    /// The K highest-`kappa` tensors.
    HighestKappa,
    /// K tensors drawn at random.
    Random,
    /// Every parameter.
    All,
}

impl Method {
    /// Every method, in table order.
    pub const ALL: [Method; 4] = [
        Method::LowestKappa,
        Method::HighestKappa,
        Method::Random,
        Method::All,
    ];

    /// The label used in tables.
    pub fn label(self) -> &'static str {
        match self {
            Method::LowestKappa => "lowest-kappa (KappaTune)",
            Method::HighestKappa => "highest-kappa",
            Method::Random => "random",
            Method::All => "all parameters",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRow {
    /// The method.
    pub method: Method,
    /// Trainable tensors (the whole model's tensor count for `All`).
    pub n_tensors: usize,
    /// Trainable parameters.
    pub n_trainable: usize,
    /// The trainable tensors' HF names (empty for `All`).
    pub tensors: Vec<String>,
    /// Steps taken.
    pub steps: usize,
    /// Whether the target loss was reached before the step cap.
    pub reached_target: bool,
    /// Mean training loss of the last `LOSS_WINDOW` steps.
    pub final_train_loss: f64,
    /// Exact-match accuracy on the arithmetic test items after fine-tuning.
    pub task_accuracy: f64,
    /// KJV valid perplexity before fine-tuning.
    pub ppl_before: f64,
    /// KJV valid perplexity after fine-tuning.
    pub ppl_after: f64,
    /// `ppl_after - ppl_before`.
    pub forgetting: f64,
    /// Seconds of training steps.
    pub train_seconds: f64,
}

/// Fraction of `items` whose greedy continuation (at most 8 tokens, stopping at `eot`) after
/// `<|endoftext|> prompt` starts with exactly the answer (`12` does not count for `123`).
pub fn arithmetic_accuracy(
    model: &Model<Flex>,
    tokenizer: &strata_core::Tokenizer,
    eot: u32,
    items: &[ExactMatchItem],
) -> Result<f64> {
    let config = GenerateConfig {
        max_new_tokens: 8,
        sampling: Sampling::Greedy,
        seed: 0,
        eos_token_id: Some(eot),
    };
    let result = exact_match(
        model,
        tokenizer,
        eot,
        items,
        &config,
        &leading_number,
        &mut ProbeSet::none(),
    )?;
    Ok(result.accuracy())
}

/// KJV perplexity of the stream prefix, window = the model's context, stride half of it.
fn kjv_ppl(model: &Model<Flex>, stream: &[u32]) -> Result<f64> {
    let window = model.config().n_ctx;
    let config = PerplexityConfig::new(window, window / 2)?;
    Ok(perplexity(
        model,
        stream,
        &config,
        &mut ProbeSet::none(),
        &mut |_, _| {},
    )?
    .ppl())
}

/// Runs the experiment into `out`, returns the rows (also written as `results.json`,
/// `table.csv`, `table.md` and `forgetting.svg`).
pub fn run(cfg: &Settings, root: &Path, out: &Path) -> Result<Vec<RunRow>> {
    let model_dir = root.join(&cfg.model);
    let tokenizer_path = model_dir.join("tokenizer.json");
    let tokenizer = strata_core::Tokenizer::from_file(&tokenizer_path)?;
    let eot = tokenizer
        .token_id(END_OF_TEXT)
        .ok_or_else(|| anyhow!("the tokenizer has no {END_OF_TEXT}"))?;
    let arith = Paths::at(root).arithmetic();
    let train_stream = token_stream(
        tokenizer.inner(),
        &read_lines(&arith.join("train.txt"))?,
        eot,
    )?;
    let blocks = Blocks::new(train_stream, cfg.seq_len, cfg.seed)?;
    let test_lines = read_lines(&arith.join("test.txt"))?;
    let items = test_lines[..cfg.n_eval_items.min(test_lines.len())]
        .iter()
        .map(|line| ExactMatchItem::from_equation(line))
        .collect::<strata_core::Result<Vec<_>>>()?;
    let mut kjv = token_stream(
        tokenizer.inner(),
        &read_lines(&Paths::at(root).kjv("valid"))?,
        eot,
    )?;
    kjv.truncate(cfg.ppl_tokens);
    fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;

    // kappa per candidate tensor, ascending; K from top_p.
    let spectra_cfg = SpectraConfig::strata();
    let spectra = analyze_path(&model_dir, &spectra_cfg, None)?;
    let selection = select(&spectra, Budget::Fraction(cfg.top_p))?;
    strata_report::write_ranking_csv(&selection, &out.join("ranking.csv"))?;
    let ranked: Vec<String> = selection.ranking.iter().map(|r| r.tensor.clone()).collect();
    let k = selection.n_selected();
    let chosen = |method: Method| -> Option<Vec<String>> {
        match method {
            Method::LowestKappa => Some(ranked[..k].to_vec()),
            Method::HighestKappa => Some(ranked[ranked.len() - k..].to_vec()),
            Method::Random => Some(random_subset(&ranked, k, cfg.seed)),
            Method::All => None,
        }
    };
    eprintln!(
        "kappatune: {} candidate tensors, K = {k} (top_p {}), {} arithmetic blocks of {} tokens",
        ranked.len(),
        cfg.top_p,
        blocks.n_blocks(),
        cfg.seq_len
    );

    let device = Default::default();
    let base = Model::<Flex>::load(&model_dir, &device)?;
    let ppl_before = kjv_ppl(&base, &kjv)?;
    let acc_before = arithmetic_accuracy(&base, &tokenizer, eot, &items)?;
    eprintln!(
        "before fine-tuning: KJV ppl {ppl_before:.3}, arithmetic exact match {acc_before:.3}"
    );

    let spec = cfg.train_spec();
    let mut rows = Vec::new();
    for method in Method::ALL {
        let tensors = chosen(method);
        let model = Model::<TrainBackend>::load(&model_dir, &device)?;
        let dir = model.source_path().to_path_buf();
        let decoder = model.into_decoder()?;
        let freeze = match &tensors {
            Some(names) => TrainableParams::only(&decoder, &names.iter().cloned().collect())?,
            None => TrainableParams::all(&decoder)?,
        };
        let t0 = Instant::now();
        let (decoder, losses) = fine_tune(&spec, cfg.target_loss, &blocks, decoder, &freeze)?;
        let train_seconds = t0.elapsed().as_secs_f64();
        let tuned = Model::<Flex>::from_decoder(decoder.valid(), None, dir);
        let ppl_after = kjv_ppl(&tuned, &kjv)?;
        let task_accuracy = arithmetic_accuracy(&tuned, &tokenizer, eot, &items)?;
        let final_train_loss = mean_tail(&losses, LOSS_WINDOW);
        let row = RunRow {
            method,
            n_tensors: freeze.trainable_names.len(),
            n_trainable: freeze.n_trainable,
            tensors: tensors.unwrap_or_default(),
            steps: losses.len(),
            reached_target: final_train_loss <= cfg.target_loss && losses.len() >= LOSS_WINDOW,
            final_train_loss,
            task_accuracy,
            ppl_before,
            ppl_after,
            forgetting: ppl_after - ppl_before,
            train_seconds,
        };
        eprintln!(
            "{}: {} tensors, {} params, {} steps, loss {:.4}, acc {:.3}, KJV ppl {:.3} -> {:.3} ({:+.3}), {:.0} s",
            method.label(),
            row.n_tensors,
            row.n_trainable,
            row.steps,
            row.final_train_loss,
            row.task_accuracy,
            row.ppl_before,
            row.ppl_after,
            row.forgetting,
            row.train_seconds
        );
        rows.push(row);
        write_outputs(cfg, acc_before, &rows, out)?;
    }
    Ok(rows)
}

/// `k` of `names` drawn without replacement by a seeded Fisher-Yates shuffle, in `names`
/// order.
pub fn random_subset(names: &[String], k: usize, seed: u64) -> Vec<String> {
    let rng = SplitMix64::seed_from_u64(seed ^ 0x6b61_7070_6174_756e);
    let idx = permutation(names.len(), rng);
    let mut pick: Vec<usize> = idx.into_iter().take(k).collect();
    pick.sort_unstable();
    pick.into_iter().map(|i| names[i].clone()).collect()
}

/// Trains the `trainable` parameters of `decoder` until the mean loss of the last
/// `LOSS_WINDOW` steps is at most `target` or `spec.n_steps` steps are done (the library's
/// fine-tuning loop, on this experiment's batches and schedule); returns the decoder and the
/// loss of every step.
pub fn fine_tune(
    spec: &TrainSpec,
    target: f64,
    blocks: &Blocks,
    decoder: Decoder<TrainBackend>,
    trainable: &TrainableParams,
) -> Result<(Decoder<TrainBackend>, Vec<f64>)> {
    let config = FineTuneConfig {
        max_steps: spec.n_steps,
        target_loss: Some(target),
        loss_window: LOSS_WINDOW,
        adamw: adamw(spec),
    };
    let mut losses_so_far = Vec::new();
    Ok(strata_core::train::fine_tune(
        decoder,
        &config,
        Some(trainable),
        &mut |step| blocks.batch(step, spec.batch_size),
        &|step| learning_rate(spec, step),
        &mut |step, loss| {
            losses_so_far.push(loss);
            if (step + 1) % 25 == 0 {
                eprintln!(
                    "  step {} loss {loss:.4} (mean of last {LOSS_WINDOW} {:.4})",
                    step + 1,
                    mean_tail(&losses_so_far, LOSS_WINDOW)
                );
            }
        },
    )?)
}

/// The table as markdown.
pub fn markdown_table(cfg: &Settings, rows: &[RunRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| method | K tensors | trainable params | steps | reached target | final train loss | exact match | KJV PPL before | KJV PPL after | forgetting |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|:-:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.4} | {:.3} | {:.3} | {:.3} | {:+.3} |",
            r.method.label(),
            r.n_tensors,
            r.n_trainable,
            r.steps,
            if r.reached_target { "yes" } else { "no" },
            r.final_train_loss,
            r.task_accuracy,
            r.ppl_before,
            r.ppl_after,
            r.forgetting
        );
    }
    let _ = writeln!(
        s,
        "\nTarget loss {} (mean of the last {LOSS_WINDOW} steps), cap {} steps, batch {} x {} tokens, lr {} constant after {} warmup steps, weight decay {}; exact match on the first {} test items; KJV PPL on the first {} valid tokens.",
        cfg.target_loss,
        cfg.max_steps,
        cfg.batch_size,
        cfg.seq_len,
        cfg.lr,
        cfg.warmup_steps,
        cfg.weight_decay,
        cfg.n_eval_items,
        cfg.ppl_tokens
    );
    s
}

/// Redraws `forgetting.svg` and rewrites the tables from `out/results.json`.
pub fn replot(out: &Path) -> Result<()> {
    let path = out.join("results.json");
    let text =
        fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let cfg: Settings = serde_json::from_value(json["settings"].clone())
        .with_context(|| format!("{}: bad settings", path.display()))?;
    let rows: Vec<RunRow> = serde_json::from_value(json["runs"].clone())
        .with_context(|| format!("{}: bad runs", path.display()))?;
    let acc_before = json["exact_match_before"]
        .as_f64()
        .ok_or_else(|| anyhow!("{}: no exact_match_before", path.display()))?;
    write_outputs(&cfg, acc_before, &rows, out)
}

fn write_outputs(cfg: &Settings, acc_before: f64, rows: &[RunRow], out: &Path) -> Result<()> {
    let mut csv = String::from(
        "method,n_tensors,n_trainable,steps,reached_target,final_train_loss,task_accuracy,ppl_before,ppl_after,forgetting,train_seconds\n",
    );
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.1}",
            r.method.label(),
            r.n_tensors,
            r.n_trainable,
            r.steps,
            r.reached_target,
            r.final_train_loss,
            r.task_accuracy,
            r.ppl_before,
            r.ppl_after,
            r.forgetting,
            r.train_seconds
        );
    }
    let write = |name: &str, text: &str| -> Result<PathBuf> {
        let path = out.join(name);
        fs::write(&path, text).with_context(|| format!("{}: cannot write", path.display()))?;
        Ok(path)
    };
    write("table.csv", &csv)?;
    let md = format!(
        "{}\nBefore fine-tuning: exact match {acc_before:.3}.\n",
        markdown_table(cfg, rows)
    );
    write("table.md", &md)?;
    let json = serde_json::json!({
        "settings": cfg,
        "exact_match_before": acc_before,
        "runs": rows,
    });
    write(
        "results.json",
        &(serde_json::to_string_pretty(&json)? + "\n"),
    )?;
    let points: Vec<strata_report::ForgettingPoint> = rows
        .iter()
        .map(|r| strata_report::ForgettingPoint {
            label: r.method.label().into(),
            task_accuracy: r.task_accuracy,
            forgetting: r.forgetting,
        })
        .collect();
    strata_report::plot_forgetting_vs_accuracy(
        &points,
        "KappaTune on tiny-default: arithmetic vs KJV forgetting",
        &out.join("forgetting.svg"),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_random_subset_is_seeded_and_without_repeats() {
        let names: Vec<String> = (0..29).map(|i| format!("t{i:02}")).collect();
        let a = random_subset(&names, 5, 0);
        assert_eq!(a, random_subset(&names, 5, 0));
        assert_ne!(a, random_subset(&names, 5, 1));
        let unique: BTreeSet<&String> = a.iter().collect();
        assert_eq!(unique.len(), 5);
    }

    #[test]
    fn the_smoke_experiment_runs_end_to_end() {
        let root = crate::workspace_root();
        let out = std::env::temp_dir().join(format!("kappatune-smoke-{}", std::process::id()));
        let cfg = Settings::smoke();
        let rows = run(&cfg, &root, &out).unwrap();
        assert_eq!(rows.len(), 4);
        let k = rows[0].n_tensors;
        assert!(k >= 1);
        for r in &rows[..3] {
            assert_eq!(r.n_tensors, k, "{:?}", r.method);
            assert_eq!(r.tensors.len(), k);
            assert!(r.steps >= 1 && r.steps <= cfg.max_steps);
            assert!(r.final_train_loss.is_finite());
            assert!((0.0..=1.0).contains(&r.task_accuracy));
        }
        // Lowest and highest kappa are disjoint selections of the same size.
        assert!(rows[0].tensors.iter().all(|t| !rows[1].tensors.contains(t)));
        assert!(rows[3].n_trainable > rows[0].n_trainable);
        for r in &rows {
            assert_eq!(r.ppl_before, rows[0].ppl_before);
            assert!((r.forgetting - (r.ppl_after - r.ppl_before)).abs() < 1e-12);
        }
        for f in [
            "table.csv",
            "table.md",
            "results.json",
            "forgetting.svg",
            "ranking.csv",
        ] {
            assert!(out.join(f).is_file(), "{f} missing");
        }
        let csv = fs::read_to_string(out.join("table.csv")).unwrap();
        assert_eq!(csv.lines().count(), 5);
        fs::remove_file(out.join("forgetting.svg")).unwrap();
        replot(&out).unwrap();
        assert!(out.join("forgetting.svg").is_file());
        assert_eq!(fs::read_to_string(out.join("table.csv")).unwrap(), csv);
        fs::remove_dir_all(&out).unwrap();
    }
}
