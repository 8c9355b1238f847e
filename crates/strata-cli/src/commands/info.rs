//! `strata info`: architecture, sizes, dtype and parameter count of a model folder.

use std::path::PathBuf;

use anyhow::Result;
use strata_core::weights::WeightStore;
use strata_core::{Model, Site};

/// Arguments of `strata info`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Hugging Face model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints the model's description (no forward pass; the weights are only indexed).
pub fn run(args: &Args) -> Result<()> {
    let cfg = Model::<burn::backend::Flex>::read_config(&args.model)?;
    let store = WeightStore::open(&args.model)?;
    let n_params = store.n_elements();
    let dtype = store.dominant_dtype().unwrap_or_else(|| "none".into());
    if args.json {
        let mut value = serde_json::to_value(&cfg)?;
        value["n_params"] = n_params.into();
        value["stored_dtype"] = dtype.into();
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let sites = Site::all(&cfg);
    println!("model        {}", args.model.display());
    println!(
        "family       {:?} (model_type `{}`)",
        cfg.family, cfg.model_type
    );
    println!("parameters   {n_params} ({:.2} M)", n_params as f64 / 1e6);
    println!("stored dtype {dtype} (config: {})", cfg.dtype);
    println!("d_model      {}", cfg.d_model);
    println!("n_layers     {}", cfg.n_layers);
    println!(
        "n_heads      {} (kv heads {}, d_head {})",
        cfg.n_heads, cfg.n_kv_heads, cfg.d_head
    );
    println!(
        "d_mlp        {} ({}, {})",
        cfg.d_mlp,
        cfg.activation.hf_name(),
        if cfg.gated_mlp { "gated" } else { "plain" }
    );
    println!("d_vocab      {}", cfg.vocab_size);
    println!("n_ctx        {}", cfg.n_ctx);
    println!("norm         {:?}", cfg.norm);
    println!("positions    {:?}", cfg.positions);
    println!(
        "residual     {}",
        if cfg.parallel_residual {
            "parallel"
        } else {
            "serial"
        }
    );
    println!("tied embed   {}", cfg.tied_embeddings);
    println!(
        "sites        {} ({} .. {})",
        sites.len(),
        sites[0],
        sites[sites.len() - 1]
    );
    Ok(())
}
