//! `cargo xtask train-tiny`: train strata's tiny language models with burn.
//!
//! Presets: `default` (the embedded model, published to `datasets/models/tiny-default`
//! with its validation perplexity and a sample) and `suite` (six architectures with
//! checkpoint series, into a cache folder). Runs are deterministic (fixed seeds, data order
//! a function of the step) and resumable: run the same command again after an
//! interruption and it continues from the last checkpoint. See `train/` for the pieces.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::backend::{Autodiff, Flex};
use serde_json::json;
use tokenizers::Tokenizer;

use crate::paths::Paths;
use crate::train::data::{Blocks, token_stream};
use crate::train::eval::{EvalRecord, evaluate, read_baselines};
use crate::train::run::{RunIdentity, TrainReport, fnv1a, prepare_run_dir, train};
use crate::train::spec::{TrainSpec, default_preset, suite_preset};
use crate::train_tokenizer::END_OF_TEXT;
use crate::{read_lines, workspace_root};

/// The backend training runs on: burn's pure-Rust CPU backend with autodiff.
type TrainBackend = Autodiff<Flex>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// The embedded default model (Llama-style, 4 layers, width 128).
    Default,
    /// Six architectures with checkpoint series, into a cache folder.
    Suite,
}

#[derive(clap::Args)]
pub struct Args {
    /// Which models to train.
    #[arg(value_enum)]
    preset: Preset,
    /// Run folder [default: target/strata-tiny/default, or target/strata-suite].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace a different run found in the run folder.
    #[arg(long)]
    overwrite: bool,
    /// Training text, one verse per line [default: datasets/kjv/train.txt].
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Validation text [default: datasets/kjv/valid.txt].
    #[arg(long)]
    valid: Option<PathBuf>,
    /// Tokenizer [default: datasets/tokenizer/tokenizer.json].
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Where `default` publishes its final checkpoint [default: datasets/models/tiny-default].
    #[arg(long)]
    publish: Option<PathBuf>,
    /// Do not publish the final checkpoint of `default`.
    #[arg(long)]
    no_publish: bool,
    /// Override the number of optimiser steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Override the checkpoint interval after the log-spaced ones.
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Override the residual width.
    #[arg(long)]
    d_model: Option<usize>,
    /// Override the number of attention heads (and key/value heads).
    #[arg(long)]
    n_heads: Option<usize>,
    /// Override the number of layers.
    #[arg(long)]
    n_layers: Option<usize>,
    /// End the session after the checkpoint of this step (as an interruption would); run
    /// the command again without it to resume.
    #[arg(long)]
    stop_at: Option<usize>,
    /// Train only the suite models whose name contains this.
    #[arg(long)]
    only: Option<String>,
}

pub fn run(args: &Args) -> Result<()> {
    let root = workspace_root();
    let corpus = args
        .corpus
        .clone()
        .unwrap_or_else(|| Paths::workspace().kjv("train"));
    let valid = args
        .valid
        .clone()
        .unwrap_or_else(|| Paths::workspace().kjv("valid"));
    let tokenizer_path = args
        .tokenizer
        .clone()
        .unwrap_or_else(|| Paths::workspace().tokenizer());
    let mut specs = match args.preset {
        Preset::Default => vec![default_preset()],
        Preset::Suite => suite_preset(),
    };
    if let Some(only) = &args.only {
        specs.retain(|s| s.arch.name.contains(only.as_str()));
        if specs.is_empty() {
            bail!("--only {only:?} matches no model of the preset");
        }
    }
    for spec in &mut specs {
        apply_overrides(spec, args);
    }

    let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| {
        anyhow!(
            "{}: cannot load the tokenizer: {e}",
            tokenizer_path.display()
        )
    })?;
    let vocab_size = tokenizer.get_vocab_size(true);
    let eot = tokenizer.token_to_id(END_OF_TEXT).ok_or_else(|| {
        anyhow!(
            "{}: the tokenizer has no {END_OF_TEXT} token",
            tokenizer_path.display()
        )
    })?;
    // Check every config before spending time on the corpus.
    let configs = specs
        .iter()
        .map(|s| s.model_config(vocab_size, eot))
        .collect::<Result<Vec<_>>>()?;

    let lines = read_lines(&corpus)?;
    let stream = token_stream(&tokenizer, &lines, eot)
        .with_context(|| format!("{}: cannot encode", corpus.display()))?;
    let corpus_hash = fnv1a(stream.iter().flat_map(|t| t.to_le_bytes()));
    let tokenizer_hash = fnv1a(
        fs::read(&tokenizer_path)
            .with_context(|| format!("{}: cannot read", tokenizer_path.display()))?,
    );
    let valid_stream = token_stream(&tokenizer, &read_lines(&valid)?, eot)
        .with_context(|| format!("{}: cannot encode", valid.display()))?;
    let baselines = read_baselines(&Paths::workspace().baselines(), "valid")?;
    eprintln!(
        "corpus {}: {} verses, {} tokens",
        corpus.display(),
        lines.len(),
        stream.len()
    );

    let out_root = args.out.clone().unwrap_or_else(|| match args.preset {
        Preset::Default => root.join("target/strata-tiny/default"),
        Preset::Suite => root.join("target/strata-suite"),
    });
    let device = Default::default();
    let suite_start = Instant::now();
    let mut results = Vec::new();
    for (spec, cfg) in specs.iter().zip(&configs) {
        let out = match args.preset {
            Preset::Default => out_root.clone(),
            Preset::Suite => out_root.join(&spec.arch.name),
        };
        let identity = RunIdentity {
            spec: spec.clone(),
            corpus_tokens: stream.len(),
            corpus_hash: corpus_hash.clone(),
            tokenizer_hash: tokenizer_hash.clone(),
        };
        let resume = prepare_run_dir(&out, &identity, args.overwrite)?;
        let blocks = Blocks::new(stream.clone(), spec.seq_len, spec.seed)?;
        eprintln!(
            "{}: {} blocks of {} tokens per epoch, {} steps of {} tokens ({:.2} epochs){}",
            spec.arch.name,
            blocks.n_blocks(),
            spec.seq_len,
            spec.n_steps,
            spec.tokens_per_step(),
            (spec.n_steps * spec.batch_size) as f64 / blocks.n_blocks() as f64,
            if resume { ", resuming" } else { "" }
        );
        let report = train::<TrainBackend>(
            spec,
            cfg,
            &blocks,
            &out,
            &tokenizer_path,
            resume,
            args.stop_at,
            &device,
        )?;
        if report.n_steps < spec.n_steps {
            eprintln!(
                "{}: stopped at step {} as asked; run again without --stop-at to resume",
                spec.arch.name, report.n_steps
            );
            return Ok(());
        }
        let final_dir = out.join(format!("step{}", spec.n_steps));
        let eval = evaluate(
            &final_dir,
            &valid_stream,
            spec.seq_len,
            baselines,
            args.preset == Preset::Default,
        )?;
        // Only the default preset is scored on the whole split (NaN otherwise).
        let whole_split = if eval.ppl.is_nan() {
            "not measured".to_string()
        } else {
            format!("{:.2}", eval.ppl)
        };
        eprintln!(
            "{}: {} params, final train loss {:.4}, {:.0} tokens/s, valid ppl {} (first {} tokens {:.2}; bigram {:.2})",
            spec.arch.name,
            report.n_params,
            report.final_train_loss,
            report.tokens_per_second,
            whole_split,
            eval.prefix_tokens,
            eval.prefix_ppl,
            baselines.1
        );
        let summary = json!({ "spec": spec, "report": report, "eval": eval });
        fs::write(
            out.join("summary.json"),
            serde_json::to_string_pretty(&summary)? + "\n",
        )?;
        if args.preset == Preset::Default && !args.no_publish {
            let publish = args
                .publish
                .clone()
                .unwrap_or_else(|| Paths::workspace().tiny_default());
            publish_model(&final_dir, &publish, spec, &report, &eval)?;
        }
        results.push(summary);
    }
    if args.preset == Preset::Suite {
        let wall = suite_start.elapsed().as_secs_f64();
        let summary = json!({ "wall_seconds": wall, "models": results });
        fs::write(
            out_root.join("suite.json"),
            serde_json::to_string_pretty(&summary)? + "\n",
        )?;
        eprintln!(
            "suite: {} models in {:.1} min, written to {}",
            specs.len(),
            wall / 60.0,
            out_root.display()
        );
    }
    Ok(())
}

fn apply_overrides(spec: &mut TrainSpec, args: &Args) {
    if let Some(steps) = args.steps {
        spec.n_steps = steps;
        spec.warmup_steps = spec.warmup_steps.min(steps / 2).max(1);
    }
    if let Some(every) = args.checkpoint_every {
        spec.checkpoint_every = every;
    }
    if let Some(d) = args.d_model {
        spec.arch.d_model = d;
        spec.arch.d_mlp = 3 * d;
    }
    if let Some(h) = args.n_heads {
        spec.arch.n_heads = h;
        spec.arch.n_kv_heads = h;
    }
    if let Some(l) = args.n_layers {
        spec.arch.n_layers = l;
    }
}

/// Copies the final checkpoint to `dest` with `eval.json` and `training.json` beside it.
fn publish_model(
    final_dir: &Path,
    dest: &Path,
    spec: &TrainSpec,
    report: &TrainReport,
    eval: &EvalRecord,
) -> Result<()> {
    fs::create_dir_all(dest).with_context(|| format!("{}: cannot create", dest.display()))?;
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        fs::copy(final_dir.join(file), dest.join(file))
            .with_context(|| format!("{}: cannot copy {file}", dest.display()))?;
    }
    fs::write(
        dest.join("eval.json"),
        serde_json::to_string_pretty(eval)? + "\n",
    )?;
    let training = json!({
        "command": "cargo xtask train-tiny default",
        "spec": spec,
        "report": report,
    });
    fs::write(
        dest.join("training.json"),
        serde_json::to_string_pretty(&training)? + "\n",
    )?;
    eprintln!("published {}", dest.display());
    Ok(())
}
