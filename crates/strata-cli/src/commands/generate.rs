//! `strata generate`: KV-cached text generation.

use anyhow::Result;
use burn::tensor::backend::Backend;
use strata_core::ProbeSet;
use strata_core::generate::{GenerateConfig, Sampling, generate};

use super::input::InputArgs;
use super::model_args::ModelArgs;
use crate::with_backend;

/// Arguments of `strata generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: ModelArgs,
    #[command(flatten)]
    pub input: InputArgs,
    /// Number of tokens to generate.
    #[arg(long, default_value_t = 40)]
    pub max_new_tokens: usize,
    /// Sampling temperature; without it decoding is greedy.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Nucleus mass for sampling.
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let spec = args.target.device_spec()?;
    with_backend!(spec, generate_on(args))
}

fn generate_on<B: Backend>(device: &B::Device, args: &Args) -> Result<()> {
    let model = args.target.load::<B>(device)?;
    let prompt = args.input.tokens(&model)?;
    let config = GenerateConfig {
        max_new_tokens: args.max_new_tokens,
        sampling: match args.temperature {
            Some(temperature) => Sampling::TopP {
                temperature,
                top_p: args.top_p,
            },
            None => Sampling::Greedy,
        },
        seed: args.seed,
        eos_token_id: model.config().eos_token_id,
    };
    let start = std::time::Instant::now();
    let new = generate(&model, &prompt, &config, &mut ProbeSet::none())?;
    if new.is_empty() {
        tracing::warn!("the model generated no tokens");
    }
    let secs = start.elapsed().as_secs_f64();
    match model.tokenizer_if_any() {
        Some(tok) => {
            say!("{}{}", tok.decode(&prompt)?, tok.decode(&new)?);
        }
        None => say!("{new:?}"),
    }
    tracing::info!(
        n_new = new.len(),
        tokens_per_s = new.len() as f64 / secs,
        "generated"
    );
    Ok(())
}
