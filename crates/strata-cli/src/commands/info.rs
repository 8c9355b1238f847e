//! `strata info`: architecture, sizes, dtype and parameter count of a model folder.

use std::path::PathBuf;

use anyhow::Result;
use strata_core::{Model, Site};

/// Arguments of `strata info`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Hugging Face model folder or `.gguf` file.
    #[arg(long)]
    pub model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints the model's description (no forward pass; the weights are only indexed).
pub fn run(args: &Args) -> Result<()> {
    let (cfg, store) = Model::<burn::backend::Flex>::open_weights(&args.model)?;
    let n_params = store.n_elements();
    strata_core::config::limits::check_weights_fit(
        &cfg,
        n_params,
        &if strata_core::models::is_gguf(&args.model) {
            args.model.clone()
        } else {
            args.model.join("config.json")
        },
        store.source(),
    )?;
    // transformers ties the unembedding to the embedding whenever the config says so, even
    // if the file also holds a separate head.
    let ignored_head = ["lm_head.weight", "embed_out.weight"]
        .into_iter()
        .find(|name| cfg.tied_embeddings && store.contains(name));
    let dtype = store.dominant_dtype().unwrap_or_else(|| "none".into());
    if args.json {
        let mut value = serde_json::to_value(&cfg)?;
        value["n_params"] = n_params.into();
        value["stored_dtype"] = dtype.into();
        value["ignored_tensors"] = ignored_head.into_iter().collect::<Vec<_>>().into();
        say!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let sites = Site::all(&cfg);
    say!("model        {}", args.model.display());
    say!(
        "family       {:?} (model_type `{}`)",
        cfg.family,
        cfg.model_type
    );
    say!("parameters   {n_params} ({:.2} M)", n_params as f64 / 1e6);
    say!("stored dtype {dtype} (config: {})", cfg.dtype);
    say!("d_model      {}", cfg.d_model);
    say!("n_layers     {}", cfg.n_layers);
    say!(
        "n_heads      {} (kv heads {}, d_head {})",
        cfg.n_heads,
        cfg.n_kv_heads,
        cfg.d_head
    );
    say!(
        "d_mlp        {} ({}, {})",
        cfg.d_mlp,
        cfg.activation.hf_name(),
        if cfg.gated_mlp { "gated" } else { "plain" }
    );
    say!("d_vocab      {}", cfg.vocab_size);
    say!("n_ctx        {}", cfg.n_ctx);
    say!("norm         {:?}", cfg.norm);
    say!("positions    {:?}", cfg.positions);
    say!(
        "residual     {}",
        if cfg.parallel_residual {
            "parallel"
        } else {
            "serial"
        }
    );
    match ignored_head {
        Some(name) => {
            say!("tied embed   true (the file's separate `{name}` is not used, as in transformers)")
        }
        None => say!("tied embed   {}", cfg.tied_embeddings),
    }
    say!(
        "sites        {} ({} .. {})",
        sites.len(),
        sites[0],
        sites[sites.len() - 1]
    );
    Ok(())
}
