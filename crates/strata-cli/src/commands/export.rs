//! `strata export`: a model (a `.gguf` file, or any folder strata loads) written as a Hugging
//! Face folder: `config.json`, `model.safetensors` (f32) and `tokenizer.json`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::backend::Flex;
use strata_core::Model;
use strata_core::io::{RunManifest, write_bytes_atomic};
use strata_core::models::save_hf;

/// Arguments of `strata export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model to export: a `.gguf` file or a model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// The Hugging Face folder to write (created if needed).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs the command (on the CPU: exporting is reading and writing host tensors).
pub fn run(args: &Args) -> Result<()> {
    let model = Model::<Flex>::load(&args.model, &Default::default())?;
    save_hf(model.decoder()?, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let mut files = vec!["config.json".to_string(), "model.safetensors".to_string()];
    if let Some(tokenizer) = model.tokenizer_if_any() {
        let json = tokenizer
            .inner()
            .to_string(true)
            .map_err(|e| anyhow::anyhow!("cannot serialise the tokenizer: {e}"))?;
        write_bytes_atomic(&args.out.join("tokenizer.json"), json.as_bytes())?;
        files.push("tokenizer.json".into());
    }
    RunManifest::new(args.model.display().to_string(), files).write(&args.out)?;
    say!(
        "wrote {} ({} parameters, f32) as a Hugging Face folder",
        args.out.display(),
        model.n_params()
    );
    Ok(())
}
