//! Bounds on a [`ModelConfig`] and on the memory a model and a forward pass will take,
//! checked before anything is allocated.
//!
//! The size limits are far above any published transformer (the largest have about 128
//! layers, width 16k to 25k, vocabularies of 256k) and far below what would overflow or
//! exhaust memory in a computation of sizes; a config beyond them is damaged, not big.

use std::path::Path;

use super::ModelConfig;
use crate::error::{Error, Result};

/// Most blocks a config may declare.
pub const MAX_LAYERS: usize = 1024;
/// Widest residual stream, MLP or head a config may declare.
pub const MAX_WIDTH: usize = 1 << 18;
/// Largest vocabulary.
pub const MAX_VOCAB: usize = 1 << 22;
/// Most heads.
pub const MAX_HEADS: usize = 4096;
/// Longest context (position table or `max_position_embeddings`).
pub const MAX_CONTEXT: usize = 1 << 22;

/// Rejects sizes beyond the limits above and values no model can run with (non-positive
/// norm epsilon, token ids outside the vocabulary, ...), naming the config key.
pub fn check(config: &ModelConfig, file: &Path) -> Result<()> {
    let bad = |key: &str, reason: String| Error::BadConfig {
        file: file.to_path_buf(),
        key: key.to_string(),
        reason,
    };
    let sizes = [
        ("num_hidden_layers", config.n_layers, MAX_LAYERS),
        ("hidden_size", config.d_model, MAX_WIDTH),
        ("intermediate_size", config.d_mlp, MAX_WIDTH),
        ("head_dim", config.d_head, MAX_WIDTH),
        ("num_attention_heads", config.n_heads, MAX_HEADS),
        ("num_key_value_heads", config.n_kv_heads, MAX_HEADS),
        ("vocab_size", config.vocab_size, MAX_VOCAB),
        ("max_position_embeddings", config.n_ctx, MAX_CONTEXT),
    ];
    for (key, value, limit) in sizes {
        if value == 0 {
            return Err(bad(key, "is zero".into()));
        }
        if value > limit {
            return Err(bad(
                key,
                format!(
                    "{value} is beyond any real model (strata's limit is {limit}); the config is damaged"
                ),
            ));
        }
    }
    if config.n_kv_heads > config.n_heads {
        return Err(bad(
            "num_key_value_heads",
            format!(
                "{} key/value heads for {} query heads",
                config.n_kv_heads, config.n_heads
            ),
        ));
    }
    let eps = config.norm_eps();
    if !(eps.is_finite() && eps > 0.0) {
        let key = match config.norm {
            super::Norm::RmsNorm { .. } => "rms_norm_eps",
            super::Norm::LayerNorm { .. } => "layer_norm_eps",
        };
        return Err(bad(
            key,
            format!("{eps}; a norm epsilon must be a small positive number"),
        ));
    }
    if config.sliding_window == Some(0) {
        return Err(bad("sliding_window", "is zero".into()));
    }
    for (key, id) in [
        ("eos_token_id", config.eos_token_id),
        ("bos_token_id", config.bos_token_id),
    ] {
        if let Some(id) = id
            && id as usize >= config.vocab_size
        {
            return Err(bad(
                key,
                format!("{id} is outside the vocabulary of {}", config.vocab_size),
            ));
        }
    }
    Ok(())
}

/// Number of parameters the config implies (embeddings, blocks, final norm, unembedding).
pub fn n_params(config: &ModelConfig) -> u128 {
    let c = |v: usize| v as u128;
    let (d, d_mlp, dh) = (c(config.d_model), c(config.d_mlp), c(config.d_head));
    let (h, kvh, vocab) = (
        c(config.n_heads),
        c(config.n_kv_heads),
        c(config.vocab_size),
    );
    let attention = d * dh * (h + 2 * kvh) + h * dh * d;
    let mlp = d * d_mlp * if config.gated_mlp { 3 } else { 2 };
    let norms = 4 * d;
    let block = attention + mlp + norms;
    let embed = vocab * d
        + if config.has_learned_positions() {
            c(config.n_ctx) * d
        } else {
            0
        };
    let unembed = if config.tied_embeddings { 0 } else { vocab * d };
    embed + c(config.n_layers) * block + 2 * d + unembed
}

/// Refuses a config that implies far more parameters than the weights hold (a damaged
/// `num_hidden_layers` or `hidden_size`), before anything is allocated. `file` is the config,
/// `weights` the file or index holding `n_stored` elements.
pub fn check_weights_fit(
    config: &ModelConfig,
    n_stored: usize,
    file: &Path,
    weights: &Path,
) -> Result<()> {
    let implied = n_params(config);
    let stored = n_stored as u128;
    // Biases and norm shifts are not in the estimate; fused projections count the same.
    if implied > stored + stored / 4 + 4096 {
        return Err(Error::BadConfig {
            file: file.to_path_buf(),
            key: "num_hidden_layers / hidden_size / intermediate_size / vocab_size".into(),
            reason: format!(
                "these sizes imply {implied} parameters ({} layers of width {}), but {} holds \
                 only {stored}",
                config.n_layers,
                config.d_model,
                weights.display()
            ),
        });
    }
    Ok(())
}

/// Bytes a forward pass over `batch x pos` new tokens (with `n_keys` keys per query,
/// cache included) allocates at its peak, roughly: a few residual-width activations, the MLP's
/// hidden activations, the attention scores and softmax of one layer, and the logits.
pub fn forward_bytes(config: &ModelConfig, batch: usize, pos: usize, n_keys: usize) -> u128 {
    let c = |v: usize| v as u128;
    let tokens = c(batch) * c(pos);
    let per_token = 8 * c(config.d_model) + 4 * c(config.d_mlp) + 2 * c(config.vocab_size);
    let attention = 3 * c(batch) * c(config.n_heads) * c(pos) * c(n_keys);
    4 * (tokens * per_token + attention)
}

/// Memory the operating system reports as available (`MemAvailable` of `/proc/meminfo`), or
/// `None` where that cannot be read.
pub fn available_memory() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The process-wide limit set by [`set_memory_limit`] (0: none set).
static MEMORY_LIMIT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Caps what [`check_memory`] allows, for every later load and forward pass of this process
/// (the CLI's `--max-memory`).
pub fn set_memory_limit(bytes: u128) {
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX).max(1);
    MEMORY_LIMIT.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// The limit set by [`set_memory_limit`], if any.
pub fn memory_limit() -> Option<u128> {
    match MEMORY_LIMIT.load(std::sync::atomic::Ordering::Relaxed) {
        0 => None,
        n => Some(u128::from(n)),
    }
}

/// Fails with a message naming `what` if `bytes` exceeds `limit`, else the limit set by
/// [`set_memory_limit`], else the available memory.
pub fn check_memory(what: &str, bytes: u128, limit: Option<u128>) -> Result<()> {
    let Some(limit) = limit.or_else(memory_limit).or_else(available_memory) else {
        return Ok(());
    };
    if bytes > limit {
        return Err(Error::OutOfMemory {
            what: what.to_string(),
            needed: bytes,
            limit,
        });
    }
    Ok(())
}
