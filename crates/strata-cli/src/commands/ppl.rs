//! `strata ppl`: perplexity of a text corpus with a sliding window.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use strata_core::eval::corpus::{self, Framing};
use strata_core::eval::{Perplexity, PerplexityConfig, perplexity_of_windows};
use strata_core::io::{RunManifest, write_json_atomic};
use strata_core::probe::Merge;
use strata_core::{ProbeSet, Shard};

use super::merge::ShardFile;
use super::model_args::ModelArgs;
use super::shard::{self, ShardState};
use crate::progress;
use crate::with_backend;

/// Arguments of `strata ppl`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: ModelArgs,
    /// Plain-text corpus.
    #[arg(long)]
    pub corpus: PathBuf,
    /// Window length in tokens (default: the model's context, at most 1024).
    #[arg(long)]
    pub window: Option<usize>,
    /// Stride in tokens (default: half the window).
    #[arg(long)]
    pub stride: Option<usize>,
    /// Evaluate only the first N tokens of the corpus.
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// How the text becomes tokens: `lines` (one end-of-text token, then each non-empty line
    /// followed by one: the convention of `datasets/kjv/baselines.json` and of the
    /// analyses) or `raw` (the whole text encoded at once).
    #[arg(long, value_enum, default_value_t = FramingArg::Lines)]
    pub framing: FramingArg,
    /// Evaluate only shard `i/n` of the windows (numbered from 1: `1/4` to `4/4`, contiguous
    /// shares) and write its state to `OUT/shard.json` for `strata merge`. Needs `--out`.
    #[arg(long, value_parser = shard::parse_shard)]
    pub shard: Option<Shard>,
    /// Output folder: `ppl.json` (the settings, the summed log-likelihood and the
    /// perplexity) and `manifest.json`.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `--framing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FramingArg {
    /// One end-of-text token, then each non-empty line followed by one.
    Lines,
    /// The whole text at once.
    Raw,
}

/// `ppl.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PplSummary {
    /// The model as given.
    model: String,
    /// The corpus as given.
    corpus: String,
    framing: FramingArg,
    window: usize,
    stride: usize,
    /// Tokens of the framed (and truncated) corpus.
    n_tokens: usize,
    /// Windows of the whole corpus.
    n_windows: usize,
    /// The shard these numbers cover (absent for a whole run and a merged one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shard: Option<Shard>,
    /// Windows evaluated: all of them, or a shard's.
    windows: std::ops::Range<usize>,
    /// Predicted tokens.
    n_predicted: usize,
    /// Summed negative log-likelihood, in nats.
    nll_sum: f64,
    nats_per_token: f64,
    ppl: f64,
}

impl PplSummary {
    fn result(&self) -> Perplexity {
        Perplexity {
            nll_sum: self.nll_sum,
            n_predicted: self.n_predicted,
        }
    }

    /// The same summary with `result` over `windows`.
    fn with_result(self, result: &Perplexity, windows: std::ops::Range<usize>) -> Self {
        Self {
            windows,
            n_predicted: result.n_predicted,
            nll_sum: result.nll_sum,
            nats_per_token: result.nats_per_token(),
            ppl: result.ppl(),
            ..self
        }
    }
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let spec = args.target.device_spec()?;
    with_backend!(spec, ppl_on(args))
}

fn ppl_on<B: Backend>(device: &B::Device, args: &Args) -> Result<()> {
    let shard_out = match args.shard {
        Some(s) => Some((s, shard::require_out(s, args.out.as_deref())?)),
        None => None,
    };
    let text = std::fs::read_to_string(&args.corpus)
        .with_context(|| format!("reading corpus {}", args.corpus.display()))?;
    if text.trim().is_empty() {
        bail!("{}: the corpus is empty", args.corpus.display());
    }
    let model = args.target.load::<B>(device)?;
    let framing = match args.framing {
        FramingArg::Lines => Framing::Lines,
        FramingArg::Raw => Framing::Raw,
    };
    let mut tokens = corpus::frame(model.tokenizer()?, &text, framing)?;
    if let Some(n) = args.max_tokens {
        tokens.truncate(n);
    }
    let window = args.window.unwrap_or(model.config().n_ctx.min(1024));
    let stride = args.stride.unwrap_or((window / 2).max(1));
    let config = PerplexityConfig::new(window, stride)?;
    config.check_fits(model.config())?;
    let n_windows = config.n_windows(tokens.len());
    let windows = match args.shard {
        Some(s) => shard::take(s, n_windows, "windows")?,
        None => 0..n_windows,
    };
    let bar = progress::bar(tokens.len() as u64, "tokens");
    let result = perplexity_of_windows(
        &model,
        &tokens,
        &config,
        windows.clone(),
        &mut ProbeSet::none(),
        &mut |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let summary = PplSummary {
        model: args.target.model.display().to_string(),
        corpus: args.corpus.display().to_string(),
        framing: args.framing,
        window,
        stride,
        n_tokens: tokens.len(),
        n_windows,
        shard: args.shard,
        windows: 0..0,
        n_predicted: 0,
        nll_sum: 0.0,
        nats_per_token: 0.0,
        ppl: 0.0,
    }
    .with_result(&result, windows.clone());
    say_summary(&summary)?;
    if let Some(out) = &args.out {
        write_outputs(out, &summary, args.shard.is_some())?;
    }
    if let Some((s, out)) = shard_out {
        let settings = BTreeMap::from([
            ("tokens".into(), shard::tokens_fingerprint(&tokens).into()),
            ("n_tokens".into(), tokens.len().into()),
            ("window".into(), window.into()),
            ("stride".into(), stride.into()),
        ]);
        ShardState::new(
            "ppl",
            s,
            &args.target.model,
            settings,
            "windows",
            n_windows,
            windows,
            &summary,
        )?
        .write(out)?;
    }
    if let Some(out) = &args.out {
        say!("wrote {}", out.display());
    }
    Ok(())
}

fn say_summary(summary: &PplSummary) -> Result<()> {
    let part = summary
        .shard
        .map_or_else(String::new, |s| format!(" (shard {s})"));
    say!(
        "{}{part}: {} tokens, window {}, stride {}: {:.4} nats/token, PPL {:.3}",
        summary.corpus,
        summary.n_predicted,
        summary.window,
        summary.stride,
        summary.nats_per_token,
        summary.ppl
    );
    Ok(())
}

/// Writes `ppl.json` and `manifest.json` (which lists `shard.json` too for a shard).
fn write_outputs(out: &Path, summary: &PplSummary, sharded: bool) -> Result<()> {
    write_json_atomic(&out.join("ppl.json"), summary)?;
    let mut files = vec!["ppl.json".to_string()];
    if sharded {
        files.push(shard::STATE_FILE.into());
    }
    RunManifest::new(summary.model.clone(), files).write(out)?;
    Ok(())
}

/// `strata merge` of `ppl` shards (checked to be one run, in shard order): the summed
/// log-likelihoods of every shard's windows.
pub fn merge_shards(shards: &[ShardFile], out: &Path) -> Result<()> {
    let summaries = shards
        .iter()
        .map(|s| s.state.state::<PplSummary>(&s.path))
        .collect::<Result<Vec<_>>>()?;
    let result = summaries
        .iter()
        .map(PplSummary::result)
        .reduce(Merge::merge)
        .context("no shards to merge")?;
    let first = summaries[0].clone();
    let n_windows = first.n_windows;
    let merged = PplSummary {
        shard: None,
        ..first
    }
    .with_result(&result, 0..n_windows);
    say_summary(&merged)?;
    write_outputs(out, &merged, false)?;
    say!("wrote {}", out.display());
    Ok(())
}
