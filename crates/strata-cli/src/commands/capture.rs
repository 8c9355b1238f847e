//! `strata capture`: run a forward pass and save activations at chosen sites.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use strata_core::probe::{Capture, ProbeSet, ensure_finite};
use strata_core::weights::write_safetensors;
use strata_core::{Site, TokenBatch};

use super::input::InputArgs;
use super::model_args::ModelArgs;
use crate::with_backend;

/// Arguments of `strata capture`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: ModelArgs,
    #[command(flatten)]
    pub input: InputArgs,
    /// Comma-separated sites; `blocks.*.X` expands to every layer
    /// (e.g. `hook_embed,blocks.*.hook_resid_post,logits`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub sites: Vec<String>,
    /// Output safetensors file: one f32 tensor per site, named as the site, [1, T, width].
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let spec = args.target.device_spec()?;
    with_backend!(spec, capture_on(args))
}

fn capture_on<B: Backend>(device: &B::Device, args: &Args) -> Result<()> {
    let model = args.target.load::<B>(device)?;
    let ids = args.input.tokens(&model)?;
    // A site named twice (or by a glob and by name) is captured and written once.
    let mut sites: Vec<Site> = Vec::new();
    for pattern in &args.sites {
        for site in Site::expand(pattern.trim(), model.config())? {
            if !sites.contains(&site) {
                sites.push(site);
            }
        }
    }
    let batch = TokenBatch::single(&ids)?;
    let mut capture = Capture::new(sites.iter().copied());
    model.forward_with(&batch, None, &mut ProbeSet::one(&mut capture))?;
    let mut tensors: Vec<(String, _)> = Vec::with_capacity(sites.len());
    for site in &sites {
        let tensor = capture
            .captured
            .remove(site)
            .with_context(|| format!("site {site} was not reached by the forward pass"))?;
        // Never write NaN silently: say where the first non-finite value appears.
        ensure_finite(&model, &batch, &tensor.data)?;
        tensors.push((site.to_string(), tensor));
    }
    let metadata = HashMap::from([
        ("model".to_string(), args.target.model.display().to_string()),
        ("token_ids".to_string(), format!("{ids:?}")),
        ("device".to_string(), args.target.device.clone()),
    ]);
    write_safetensors(&args.out, &tensors, Some(metadata))
        .with_context(|| format!("writing {}", args.out.display()))?;
    say!(
        "wrote {} sites x {} tokens to {}",
        tensors.len(),
        ids.len(),
        args.out.display()
    );
    Ok(())
}
