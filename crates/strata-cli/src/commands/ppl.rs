//! `strata ppl`: perplexity of a text corpus with a sliding window.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use strata_core::ProbeSet;
use strata_core::eval::corpus::{self, Framing};
use strata_core::eval::{PerplexityConfig, perplexity};

use super::model_args::ModelArgs;
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
}

/// `--framing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FramingArg {
    /// One end-of-text token, then each non-empty line followed by one.
    Lines,
    /// The whole text at once.
    Raw,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let spec = args.target.device_spec()?;
    with_backend!(spec, ppl_on(args))
}

fn ppl_on<B: Backend>(device: &B::Device, args: &Args) -> Result<()> {
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
    let bar = progress::bar(tokens.len() as u64, "tokens");
    let result = perplexity(
        &model,
        &tokens,
        &config,
        &mut ProbeSet::none(),
        &mut |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    say!(
        "{}: {} tokens, window {window}, stride {stride}: {:.4} nats/token, PPL {:.3}",
        args.corpus.display(),
        result.n_predicted,
        result.nats_per_token(),
        result.ppl()
    );
    Ok(())
}
