//! The KappaTune forgetting experiment (`book/src/kappa-method.md`, "Numbers to reproduce",
//! priority 2), on the embedded tiny model or on a pretrained one (SmolLM2-135M).
//!
//! The model is fine-tuned on `datasets/arithmetic` five ways, every selective arm under the
//! same budget of trainable parameters: (a) the lowest-`kappa` 2-D weight tensors
//! (KappaTune); (b) the highest-`kappa`; (c) tensors in a seeded random order; (d) LoRA on
//! every candidate tensor at [`Settings::lora_rank`], whose parameter count *is* the budget;
//! (e) all parameters. Arms (a)-(c) walk their order and take each tensor that still fits
//! the budget (greedy fill), so they train within a few percent of the same count. `kappa`
//! comes from `strata_spectra` under the `strata` convention (2-D linear weights incl. an
//! untied `lm_head`, embeddings excluded). Each run trains until its training loss (mean of
//! the last [`LOSS_WINDOW`] steps) reaches a common target, or a step cap: runs are compared
//! at matched training loss, as the spec advises. Every arm runs once per seed (data order,
//! random order, LoRA initialisation).
//!
//! Per run: exact-match accuracy of the greedy answer after `a+b=` on the first items of the
//! arithmetic test split, the final training loss, and forgetting = perplexity after minus
//! before on two texts the task does not contain: the KJV valid split (first tokens of its
//! stream) and `datasets/heldout/gpl-3.0.txt` (modern legal English), each in windows of
//! [`Settings::ppl_window`] tokens at half-window stride.

use std::collections::BTreeMap;
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
use strata_core::train::{
    FineTuneConfig, LoraAdapters, LoraConfig, TrainableParams, fine_tune_lora, mean_tail,
    named_params,
};
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
    /// Model folder, relative to the workspace root (or absolute).
    pub model: String,
    /// Rank of the LoRA arm; its trainable-parameter count is every selective arm's budget.
    pub lora_rank: usize,
    /// LoRA's `alpha` (the update is scaled by `alpha / rank`).
    pub lora_alpha: f64,
    /// Learning rate of the LoRA arm (adapters start at zero and take a larger rate).
    pub lora_lr: f64,
    /// Tokens per training sequence (packed arithmetic lines).
    pub seq_len: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Step cap per run.
    pub max_steps: usize,
    /// A run stops once the mean loss of its last `LOSS_WINDOW` steps is at or below this.
    pub target_loss: f64,
    /// Peak (and constant, after warmup) learning rate of the tensor-selecting arms and of
    /// full fine-tuning.
    pub lr: f64,
    /// Linear warmup steps.
    pub warmup_steps: usize,
    /// AdamW weight decay (on trainable parameters only).
    pub weight_decay: f64,
    /// One run of every arm per seed (data order, random order, LoRA initialisation).
    pub seeds: Vec<u64>,
    /// Arithmetic test items scored by exact match (the first ones of the split).
    pub n_eval_items: usize,
    /// Leading tokens of each forgetting text.
    pub ppl_tokens: usize,
    /// Perplexity window; 0 = the model's context.
    pub ppl_window: usize,
}

impl Settings {
    /// The full experiment on the tiny model: at most about 3 minutes per run on 2 cores.
    pub fn full() -> Self {
        Self {
            model: "datasets/models/tiny-default".into(),
            lora_rank: 8,
            lora_alpha: 16.0,
            lora_lr: 1e-2,
            seq_len: 64,
            batch_size: 16,
            max_steps: 600,
            target_loss: 4.5,
            lr: 3e-3,
            warmup_steps: 10,
            weight_decay: 0.0,
            seeds: vec![0, 1],
            n_eval_items: 300,
            ppl_tokens: 20_000,
            ppl_window: 0,
        }
    }

    /// The experiment on a pretrained model (settings sized for SmolLM2-135M on 2 cores:
    /// a few minutes per run).
    pub fn pretrained(model: &Path) -> Self {
        Self {
            model: model.display().to_string(),
            lora_rank: 8,
            lora_alpha: 16.0,
            lora_lr: 1e-3,
            seq_len: 64,
            batch_size: 8,
            max_steps: 50,
            target_loss: 1.8,
            lr: 3e-4,
            warmup_steps: 5,
            weight_decay: 0.0,
            seeds: vec![0, 1],
            n_eval_items: 50,
            ppl_tokens: 2048,
            ppl_window: 256,
        }
    }

    /// A few steps per run, one seed and a tiny evaluation.
    pub fn smoke() -> Self {
        Self {
            max_steps: 3,
            warmup_steps: 1,
            batch_size: 4,
            seeds: vec![0],
            n_eval_items: 8,
            ppl_tokens: 600,
            ..Self::full()
        }
    }

    fn train_spec(&self, lr: f64, seed: u64) -> TrainSpec {
        let mut spec = default_preset();
        spec.seq_len = self.seq_len;
        spec.batch_size = self.batch_size;
        spec.n_steps = self.max_steps;
        spec.lr = lr;
        spec.min_lr_ratio = 1.0;
        spec.warmup_steps = self.warmup_steps;
        spec.weight_decay = self.weight_decay;
        spec.seed = seed;
        spec
    }
}

/// The fine-tuning methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Method {
    /// The lowest-`kappa` tensors (KappaTune).
    LowestKappa,
    /// The highest-`kappa` tensors.
    HighestKappa,
    /// Tensors in a random order.
    Random,
    /// LoRA adapters on every candidate tensor.
    Lora,
    /// Every parameter.
    All,
}

impl Method {
    /// Every method, in table order.
    pub const ALL: [Method; 5] = [
        Method::LowestKappa,
        Method::HighestKappa,
        Method::Random,
        Method::Lora,
        Method::All,
    ];

    /// The label used in tables.
    pub fn label(self) -> &'static str {
        match self {
            Method::LowestKappa => "lowest-kappa (KappaTune)",
            Method::HighestKappa => "highest-kappa",
            Method::Random => "random",
            Method::Lora => "LoRA",
            Method::All => "all parameters",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRow {
    /// The method.
    pub method: Method,
    /// The run's seed.
    pub seed: u64,
    /// Trainable (or, for LoRA, adapted) tensors; the whole model's count for `All`.
    pub n_tensors: usize,
    /// Trainable parameters.
    pub n_trainable: usize,
    /// The trainable or adapted tensors' HF names (empty for `All`).
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
    /// Held-out text perplexity before fine-tuning.
    pub heldout_ppl_before: f64,
    /// Held-out text perplexity after fine-tuning.
    pub heldout_ppl_after: f64,
    /// `heldout_ppl_after - heldout_ppl_before`.
    pub heldout_forgetting: f64,
    /// Seconds of training steps.
    pub train_seconds: f64,
}

/// The mean over seeds of one method's runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MethodMean {
    /// The method.
    pub method: Method,
    /// Runs averaged.
    pub n_runs: usize,
    /// Mean trainable parameters.
    pub n_trainable: f64,
    /// Mean steps.
    pub steps: f64,
    /// Runs that reached the target loss.
    pub n_reached_target: usize,
    /// Mean exact-match accuracy.
    pub task_accuracy: f64,
    /// Mean KJV forgetting.
    pub forgetting: f64,
    /// Mean held-out forgetting.
    pub heldout_forgetting: f64,
    /// Mean training seconds.
    pub train_seconds: f64,
}

/// The per-method means of `rows`, in table order.
pub fn method_means(rows: &[RunRow]) -> Vec<MethodMean> {
    let mut by_method: BTreeMap<Method, Vec<&RunRow>> = BTreeMap::new();
    for r in rows {
        by_method.entry(r.method).or_default().push(r);
    }
    by_method
        .into_iter()
        .map(|(method, runs)| {
            let n = runs.len() as f64;
            let mean = |f: &dyn Fn(&RunRow) -> f64| runs.iter().map(|r| f(r)).sum::<f64>() / n;
            MethodMean {
                method,
                n_runs: runs.len(),
                n_trainable: mean(&|r| r.n_trainable as f64),
                steps: mean(&|r| r.steps as f64),
                n_reached_target: runs.iter().filter(|r| r.reached_target).count(),
                task_accuracy: mean(&|r| r.task_accuracy),
                forgetting: mean(&|r| r.forgetting),
                heldout_forgetting: mean(&|r| r.heldout_forgetting),
                train_seconds: mean(&|r| r.train_seconds),
            }
        })
        .collect()
}

/// The names taken from `order` (name, parameter count) by a greedy fill of `budget`: each
/// tensor in turn joins if it still fits; the taken names in `order`'s order.
pub fn fill_budget<'a>(
    order: impl IntoIterator<Item = (&'a str, usize)>,
    budget: usize,
) -> Vec<String> {
    let mut used = 0usize;
    let mut taken = Vec::new();
    for (name, n) in order {
        if used + n <= budget {
            used += n;
            taken.push(name.to_string());
        }
    }
    taken
}

/// Paragraphs of a plain text file (blank-line separated, inner whitespace collapsed).
pub fn read_paragraphs(path: &Path) -> Result<Vec<String>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect();
    anyhow::ensure!(
        !paragraphs.is_empty(),
        "{}: the text is empty",
        path.display()
    );
    Ok(paragraphs)
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

/// Perplexity of `stream` in windows of `window` tokens (0: the model's context) at half-window
/// stride.
fn stream_ppl(model: &Model<Flex>, stream: &[u32], window: usize) -> Result<f64> {
    let window = if window == 0 {
        model.config().n_ctx
    } else {
        window.min(model.config().n_ctx)
    };
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

/// What every run shares: data, evaluation items, the base model's scores.
struct Shared {
    model_dir: PathBuf,
    tokenizer: strata_core::Tokenizer,
    eot: u32,
    train_stream: Vec<u32>,
    items: Vec<ExactMatchItem>,
    kjv: Vec<u32>,
    heldout: Vec<u32>,
    ppl_before: f64,
    heldout_ppl_before: f64,
}

impl Shared {
    /// The base model's forgetting texts and task items, scored once.
    fn load(cfg: &Settings, root: &Path) -> Result<(Self, f64)> {
        let model_dir = root.join(&cfg.model);
        let tokenizer_path = model_dir.join("tokenizer.json");
        let tokenizer = strata_core::Tokenizer::from_file(&tokenizer_path)?;
        let eot = tokenizer.token_id(END_OF_TEXT).ok_or_else(|| {
            anyhow!(
                "{}: the tokenizer has no {END_OF_TEXT}",
                tokenizer_path.display()
            )
        })?;
        let paths = Paths::at(root);
        let arith = paths.arithmetic();
        let train_stream = token_stream(
            tokenizer.inner(),
            &read_lines(&arith.join("train.txt"))?,
            eot,
        )?;
        let test_lines = read_lines(&arith.join("test.txt"))?;
        let items = test_lines[..cfg.n_eval_items.min(test_lines.len())]
            .iter()
            .map(|line| ExactMatchItem::from_equation(line))
            .collect::<strata_core::Result<Vec<_>>>()?;
        let mut kjv = token_stream(tokenizer.inner(), &read_lines(&paths.kjv("valid"))?, eot)?;
        kjv.truncate(cfg.ppl_tokens);
        let mut heldout =
            token_stream(tokenizer.inner(), &read_paragraphs(&paths.heldout())?, eot)?;
        heldout.truncate(cfg.ppl_tokens);
        let base = Model::<Flex>::load(&model_dir, &Default::default())?;
        let ppl_before = stream_ppl(&base, &kjv, cfg.ppl_window)?;
        let heldout_ppl_before = stream_ppl(&base, &heldout, cfg.ppl_window)?;
        let acc_before = arithmetic_accuracy(&base, &tokenizer, eot, &items)?;
        eprintln!(
            "before fine-tuning: KJV ppl {ppl_before:.3}, held-out ppl {heldout_ppl_before:.3}, \
             arithmetic exact match {acc_before:.3}"
        );
        Ok((
            Self {
                model_dir,
                tokenizer,
                eot,
                train_stream,
                items,
                kjv,
                heldout,
                ppl_before,
                heldout_ppl_before,
            },
            acc_before,
        ))
    }
}

/// The candidate tensors (ascending `kappa`) with their parameter counts, and the LoRA
/// budget: the trainable values of rank-`rank` adapters on all of them.
fn candidates(
    model_dir: &Path,
    rank_r: usize,
    out: &Path,
) -> Result<(Vec<(String, usize)>, usize)> {
    let spectra = analyze_path(model_dir, &SpectraConfig::strata(), None)?;
    // Every candidate, ascending kappa (the arms take their own budgeted subsets of it).
    let selection = select(&spectra, Budget::Fraction(1.0))?;
    strata_report::write_ranking_csv(&selection, &out.join("ranking.csv"))?;
    let ranking = &selection.ranking;
    // One row per checkpoint tensor (units of a fused tensor share it), in ranking order.
    let mut seen = std::collections::BTreeSet::new();
    let mut ordered = Vec::new();
    for r in ranking {
        if seen.insert(r.tensor.clone()) {
            let n = ranking
                .iter()
                .filter(|u| u.tensor == r.tensor)
                .map(|u| u.n_params)
                .sum();
            ordered.push((r.tensor.clone(), n));
        }
    }
    let device = Default::default();
    let decoder = Model::<Flex>::load(model_dir, &device)?.into_decoder()?;
    let shapes: BTreeMap<String, [usize; 2]> = named_params(&decoder)?
        .into_iter()
        .filter(|p| p.data.shape.len() == 2)
        .map(|p| (p.name, [p.data.shape[0], p.data.shape[1]]))
        .collect();
    let target_shapes = ordered
        .iter()
        .map(|(name, _)| {
            shapes
                .get(name)
                .copied()
                .ok_or_else(|| anyhow!("{name}: ranked by kappa but not a 2-D model parameter"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((ordered, LoraConfig::n_params(rank_r, &target_shapes)))
}

/// Runs the experiment into `out`, returns the rows (also written as `results.json`,
/// `table.csv`, `table.md`, `means.md` and `forgetting.svg`).
pub fn run(cfg: &Settings, root: &Path, out: &Path) -> Result<Vec<RunRow>> {
    anyhow::ensure!(!cfg.seeds.is_empty(), "kappatune: no seed given");
    fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let (shared, acc_before) = Shared::load(cfg, root)?;
    let (ordered, budget) = candidates(&shared.model_dir, cfg.lora_rank, out)?;
    eprintln!(
        "kappatune: {} candidate tensors, budget {budget} trainable parameters (LoRA rank {})",
        ordered.len(),
        cfg.lora_rank
    );
    let names: Vec<String> = ordered.iter().map(|(n, _)| n.clone()).collect();
    let count = |name: &str| {
        ordered
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| *c)
    };
    let mut rows = Vec::new();
    for &seed in &cfg.seeds {
        let blocks = Blocks::new(shared.train_stream.clone(), cfg.seq_len, seed)?;
        for method in Method::ALL {
            let tensors: Vec<String> = match method {
                Method::LowestKappa => {
                    fill_budget(ordered.iter().map(|(n, c)| (n.as_str(), *c)), budget)
                }
                Method::HighestKappa => {
                    fill_budget(ordered.iter().rev().map(|(n, c)| (n.as_str(), *c)), budget)
                }
                Method::Random => {
                    let order = shuffled(&names, seed);
                    fill_budget(order.iter().map(|n| (n.as_str(), count(n))), budget)
                }
                Method::Lora => names.clone(),
                Method::All => Vec::new(),
            };
            let row = run_one(cfg, &shared, &blocks, method, seed, tensors)?;
            eprintln!(
                "{} (seed {seed}): {} tensors, {} params, {} steps, loss {:.4}, acc {:.3}, \
                 KJV ppl {:.3} -> {:.3} ({:+.3}), held-out ppl {:.3} -> {:.3} ({:+.3}), {:.0} s",
                method.label(),
                row.n_tensors,
                row.n_trainable,
                row.steps,
                row.final_train_loss,
                row.task_accuracy,
                row.ppl_before,
                row.ppl_after,
                row.forgetting,
                row.heldout_ppl_before,
                row.heldout_ppl_after,
                row.heldout_forgetting,
                row.train_seconds
            );
            rows.push(row);
            write_outputs(cfg, acc_before, &rows, out)?;
        }
    }
    Ok(rows)
}

/// One fine-tuning run of `method` and its scores.
fn run_one(
    cfg: &Settings,
    shared: &Shared,
    blocks: &Blocks,
    method: Method,
    seed: u64,
    tensors: Vec<String>,
) -> Result<RunRow> {
    let device = Default::default();
    let model = Model::<TrainBackend>::load(&shared.model_dir, &device)?;
    let dir = model.source_path().to_path_buf();
    let decoder = model.into_decoder()?;
    let t0 = Instant::now();
    let (decoder, losses, n_tensors, n_trainable) = match method {
        Method::Lora => {
            let lora = LoraConfig {
                targets: tensors.clone(),
                rank: cfg.lora_rank,
                alpha: cfg.lora_alpha,
                seed,
            };
            let mut adapters = LoraAdapters::new(&decoder, &lora)?;
            let n_trainable = adapters.n_trainable();
            let spec = cfg.train_spec(cfg.lora_lr, seed);
            let config = fine_tune_config(&spec, cfg.target_loss);
            let mut progress = progress_printer();
            let (decoder, losses) = fine_tune_lora(
                decoder,
                &mut adapters,
                &config,
                &mut |step| blocks.batch(step, spec.batch_size),
                &|step| learning_rate(&spec, step),
                &mut progress,
            )?;
            (decoder, losses, tensors.len(), n_trainable)
        }
        _ => {
            let freeze = if method == Method::All {
                TrainableParams::all(&decoder)?
            } else {
                TrainableParams::only(&decoder, &tensors.iter().cloned().collect())?
            };
            let spec = cfg.train_spec(cfg.lr, seed);
            let (decoder, losses) = fine_tune(&spec, cfg.target_loss, blocks, decoder, &freeze)?;
            (
                decoder,
                losses,
                freeze.trainable_names.len(),
                freeze.n_trainable,
            )
        }
    };
    let train_seconds = t0.elapsed().as_secs_f64();
    let tuned = Model::<Flex>::from_decoder(decoder.valid(), None, dir);
    let ppl_after = stream_ppl(&tuned, &shared.kjv, cfg.ppl_window)?;
    let heldout_ppl_after = stream_ppl(&tuned, &shared.heldout, cfg.ppl_window)?;
    let task_accuracy = arithmetic_accuracy(&tuned, &shared.tokenizer, shared.eot, &shared.items)?;
    let final_train_loss = mean_tail(&losses, LOSS_WINDOW);
    Ok(RunRow {
        method,
        seed,
        n_tensors,
        n_trainable,
        tensors,
        steps: losses.len(),
        reached_target: final_train_loss <= cfg.target_loss && losses.len() >= LOSS_WINDOW,
        final_train_loss,
        task_accuracy,
        ppl_before: shared.ppl_before,
        ppl_after,
        forgetting: ppl_after - shared.ppl_before,
        heldout_ppl_before: shared.heldout_ppl_before,
        heldout_ppl_after,
        heldout_forgetting: heldout_ppl_after - shared.heldout_ppl_before,
        train_seconds,
    })
}

/// `names` in a seeded Fisher-Yates order.
pub fn shuffled(names: &[String], seed: u64) -> Vec<String> {
    let rng = SplitMix64::seed_from_u64(seed ^ 0x6b61_7070_6174_756e);
    permutation(names.len(), rng)
        .into_iter()
        .map(|i| names[i].clone())
        .collect()
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
    let config = fine_tune_config(spec, target);
    let mut progress = progress_printer();
    Ok(strata_core::train::fine_tune(
        decoder,
        &config,
        Some(trainable),
        &mut |step| blocks.batch(step, spec.batch_size),
        &|step| learning_rate(spec, step),
        &mut progress,
    )?)
}

/// The library's fine-tuning settings for `spec`, stopping at `target`.
fn fine_tune_config(spec: &TrainSpec, target: f64) -> FineTuneConfig {
    FineTuneConfig {
        max_steps: spec.n_steps,
        target_loss: Some(target),
        loss_window: LOSS_WINDOW,
        adamw: adamw(spec),
    }
}

/// Prints the loss every 10 steps with the mean the stopping rule sees.
fn progress_printer() -> impl FnMut(usize, f64) {
    let mut losses_so_far = Vec::new();
    move |step, loss| {
        losses_so_far.push(loss);
        if (step + 1) % 10 == 0 {
            eprintln!(
                "  step {} loss {loss:.4} (mean of last {LOSS_WINDOW} {:.4})",
                step + 1,
                mean_tail(&losses_so_far, LOSS_WINDOW)
            );
        }
    }
}

/// The table as markdown: one row per run, then the mean of each method over the seeds.
pub fn markdown_table(cfg: &Settings, rows: &[RunRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| method | seed | tensors | trainable params | steps | reached target | final train loss | exact match | KJV PPL before → after | KJV forgetting | held-out PPL before → after | held-out forgetting | train s |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|:-:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.4} | {:.3} | {:.3} → {:.3} | {:+.3} | {:.3} → {:.3} | {:+.3} | {:.0} |",
            r.method.label(),
            r.seed,
            r.n_tensors,
            r.n_trainable,
            r.steps,
            if r.reached_target { "yes" } else { "no" },
            r.final_train_loss,
            r.task_accuracy,
            r.ppl_before,
            r.ppl_after,
            r.forgetting,
            r.heldout_ppl_before,
            r.heldout_ppl_after,
            r.heldout_forgetting,
            r.train_seconds
        );
    }
    let _ = writeln!(
        s,
        "\n| method (mean over seeds) | runs | trainable params | steps | reached target | exact match | KJV forgetting | held-out forgetting |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for m in method_means(rows) {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.1} | {}/{} | {:.3} | {:+.3} | {:+.3} |",
            m.method.label(),
            m.n_runs,
            m.n_trainable,
            m.steps,
            m.n_reached_target,
            m.n_runs,
            m.task_accuracy,
            m.forgetting,
            m.heldout_forgetting
        );
    }
    let _ = writeln!(
        s,
        "\nModel `{}`. Selective arms and LoRA (rank {}, alpha {}) share one budget of trainable parameters. Target loss {} (mean of the last {LOSS_WINDOW} steps), cap {} steps, batch {} x {} tokens, lr {} (LoRA {}) constant after {} warmup steps, weight decay {}, seeds {:?}; exact match on the first {} test items; perplexity on the first {} tokens of each text, window {}.",
        cfg.model,
        cfg.lora_rank,
        cfg.lora_alpha,
        cfg.target_loss,
        cfg.max_steps,
        cfg.batch_size,
        cfg.seq_len,
        cfg.lr,
        cfg.lora_lr,
        cfg.warmup_steps,
        cfg.weight_decay,
        cfg.seeds,
        cfg.n_eval_items,
        cfg.ppl_tokens,
        if cfg.ppl_window == 0 {
            "= the context".to_string()
        } else {
            cfg.ppl_window.to_string()
        }
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
        "method,seed,n_tensors,n_trainable,steps,reached_target,final_train_loss,task_accuracy,ppl_before,ppl_after,forgetting,heldout_ppl_before,heldout_ppl_after,heldout_forgetting,train_seconds\n",
    );
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.1}",
            r.method.label(),
            r.seed,
            r.n_tensors,
            r.n_trainable,
            r.steps,
            r.reached_target,
            r.final_train_loss,
            r.task_accuracy,
            r.ppl_before,
            r.ppl_after,
            r.forgetting,
            r.heldout_ppl_before,
            r.heldout_ppl_after,
            r.heldout_forgetting,
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
        "means": method_means(rows),
    });
    write(
        "results.json",
        &(serde_json::to_string_pretty(&json)? + "\n"),
    )?;
    let points: Vec<strata_report::ForgettingPoint> = method_means(rows)
        .iter()
        .map(|m| strata_report::ForgettingPoint {
            label: m.method.label().into(),
            task_accuracy: m.task_accuracy,
            forgetting: m.forgetting,
        })
        .collect();
    let model_name = Path::new(&cfg.model)
        .file_name()
        .map_or_else(|| cfg.model.clone(), |n| n.to_string_lossy().into_owned());
    strata_report::plot_forgetting_vs_accuracy(
        &points,
        &format!("KappaTune on {model_name}: arithmetic vs KJV forgetting (mean over seeds)"),
        &out.join("forgetting.svg"),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_shuffle_is_seeded_and_a_permutation() {
        let names: Vec<String> = (0..29).map(|i| format!("t{i:02}")).collect();
        let a = shuffled(&names, 0);
        assert_eq!(a, shuffled(&names, 0));
        assert_ne!(a, shuffled(&names, 1));
        let unique: BTreeSet<&String> = a.iter().collect();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn the_budget_is_filled_greedily_in_order() {
        // a (5) fits; b would make 11 > 9; c makes 8; d makes 9; e would overflow.
        let order = [("a", 5), ("b", 6), ("c", 3), ("d", 1), ("e", 1)];
        let taken = fill_budget(order.iter().map(|(n, c)| (*n, *c)), 9);
        assert_eq!(taken, ["a", "c", "d"]);
        assert!(fill_budget(order.iter().map(|(n, c)| (*n, *c)), 0).is_empty());
    }

    #[test]
    fn method_means_average_each_method_over_its_seeds() {
        let row = |method, seed, forgetting: f64, reached| RunRow {
            method,
            seed,
            n_tensors: 1,
            n_trainable: 10 + seed as usize,
            tensors: vec![],
            steps: 4,
            reached_target: reached,
            final_train_loss: 1.0,
            task_accuracy: 0.5,
            ppl_before: 10.0,
            ppl_after: 10.0 + forgetting,
            forgetting,
            heldout_ppl_before: 20.0,
            heldout_ppl_after: 20.0 + 2.0 * forgetting,
            heldout_forgetting: 2.0 * forgetting,
            train_seconds: 1.0,
        };
        let rows = [
            row(Method::Random, 0, 1.0, true),
            row(Method::LowestKappa, 0, 3.0, true),
            row(Method::Random, 1, 2.0, false),
        ];
        let means = method_means(&rows);
        assert_eq!(means.len(), 2);
        assert_eq!(means[0].method, Method::LowestKappa);
        let random = &means[1];
        assert_eq!((random.n_runs, random.n_reached_target), (2, 1));
        assert!((random.forgetting - 1.5).abs() < 1e-12);
        assert!((random.heldout_forgetting - 3.0).abs() < 1e-12);
        assert!((random.n_trainable - 10.5).abs() < 1e-12);
    }

    #[test]
    fn the_smoke_experiment_runs_end_to_end() {
        let root = crate::workspace_root();
        let out = std::env::temp_dir().join(format!("kappatune-smoke-{}", std::process::id()));
        let cfg = Settings::smoke();
        let rows = run(&cfg, &root, &out).unwrap();
        assert_eq!(rows.len(), Method::ALL.len());
        let budget = rows[3].n_trainable;
        assert_eq!(rows[3].method, Method::Lora);
        // LoRA rank 8 on every 2-D weight of tiny-default (4 blocks of d 128, ff 384, and an
        // untied 128 x 4096 head): 8 * (4 * (4 * 256 + 3 * 512) + 128 + 4096).
        assert_eq!(budget, 8 * (4 * (4 * 256 + 3 * 512) + 128 + 4096));
        for r in &rows[..3] {
            assert!(r.n_trainable <= budget, "{:?} over the budget", r.method);
            assert!(
                r.n_trainable * 2 >= budget,
                "{:?} far under the budget",
                r.method
            );
            assert_eq!(r.tensors.len(), r.n_tensors);
            assert!(r.steps >= 1 && r.steps <= cfg.max_steps);
            assert!(r.final_train_loss.is_finite());
            assert!((0.0..=1.0).contains(&r.task_accuracy));
        }
        // Lowest and highest kappa start from opposite ends of the ranking.
        assert_ne!(rows[0].tensors.first(), rows[1].tensors.first());
        assert!(rows[4].n_trainable > budget);
        for r in &rows {
            assert_eq!(r.ppl_before, rows[0].ppl_before);
            assert!((r.forgetting - (r.ppl_after - r.ppl_before)).abs() < 1e-12);
            assert!(r.heldout_ppl_before > 1.0 && r.heldout_ppl_after.is_finite());
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
        assert_eq!(csv.lines().count(), 1 + Method::ALL.len());
        fs::remove_file(out.join("forgetting.svg")).unwrap();
        replot(&out).unwrap();
        assert!(out.join("forgetting.svg").is_file());
        assert_eq!(fs::read_to_string(out.join("table.csv")).unwrap(), csv);
        fs::remove_dir_all(&out).unwrap();
    }
}
