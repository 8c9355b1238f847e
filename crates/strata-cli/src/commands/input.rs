//! The `--text` / `--token-ids` input shared by commands that run a forward pass.

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use strata_core::Model;

/// Where a command's tokens come from.
#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// Text to tokenize with the model's tokenizer.json.
    #[arg(long, conflicts_with = "token_ids")]
    pub text: Option<String>,
    /// Comma-separated token ids (for folders without a tokenizer).
    #[arg(long, value_delimiter = ',')]
    pub token_ids: Option<Vec<u32>>,
}

impl InputArgs {
    /// The token ids, checked against the model's vocabulary.
    pub fn tokens<B: Backend>(&self, model: &Model<B>) -> Result<Vec<u32>> {
        let ids = match (&self.text, &self.token_ids) {
            (Some(text), _) => model.tokenizer()?.encode(text)?,
            (None, Some(ids)) => ids.clone(),
            (None, None) => bail!("give the input with --text or --token-ids"),
        };
        if ids.is_empty() {
            bail!("empty input: --token-ids has no ids");
        }
        strata_core::TokenBatch::single(&ids)?
            .check_vocab(model.config().vocab_size)
            .context("checking the input tokens")?;
        Ok(ids)
    }
}
